#!/bin/bash
# tools/layers.sh BUILD: which layer's objects call which other layer's
# functions (nm), one line per call that goes up the order below; exit 1 if
# any does. The build's `layers` target proves the same by linking each
# layer alone; this names the symbols.
#   lib:    base < wire < tls < stream < jwt < schema
#   daemon: config < net < core < history < cluster < proto < app
set -uo pipefail
b=${1:-build}
order=(base wire tls stream jwt schema config net core history cluster proto app)
declare -A rank
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done
dir_of() { case $1 in base|wire|tls|stream|jwt|schema) echo "$b/obj/lib/$1" ;; *) echo "$b/obj/daemon/$1" ;; esac; }
defs=$(mktemp)
trap 'rm -f "$defs"' EXIT
for l in "${order[@]}"; do
    for o in "$(dir_of "$l")"/*.o; do
        [ -f "$o" ] && nm --defined-only -g "$o" | awk -v l="$l" '{print $3, l}'
    done
done | sort -u > "$defs"
bad=0
for l in "${order[@]}"; do
    for o in "$(dir_of "$l")"/*.o; do
        [ -f "$o" ] || continue
        while read -r sym; do
            d=$(awk -v s="$sym" '$1 == s {print $2; exit}' "$defs")
            if [ -n "$d" ] && [ "${rank[$d]}" -gt "${rank[$l]}" ]; then
                echo "$l ($(basename "$o" .o)) calls up into $d: $sym"
                bad=1
            fi
        done < <(nm -u "$o" | awk '{print $2}')
    done
done
exit $bad
