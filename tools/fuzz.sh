#!/bin/bash
# tools/fuzz.sh: builds the libFuzzer harnesses (ninja -f fuzz.ninja) and runs
# each for SECONDS (default 60) on a copy of its seed corpus, two at a time
# per core pair. A crash, leak, timeout or OOM fails that harness; its input
# is kept under build/fuzz/artifacts/ and printed. Ends with `N passed, N
# failed` (one test per harness); exits non-zero when any failed.
#   tools/fuzz.sh [SECONDS] [--merge] [HARNESS...]
# --merge adds the inputs that found new coverage to tests/fuzz/corpus/
# (only after a run without failures). FUZZ_JOBS overrides the parallelism.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() { echo "usage: tools/fuzz.sh [SECONDS] [--merge] [frame|schema|pbjson|jwt|config|dispatch|evdec|tls13|http...]" >&2; exit 2; }

seconds=60
merge=0
only=()
for a in "$@"; do
    case "$a" in
        --merge) merge=1 ;;
        -h|--help) usage ;;
        ''|*[!0-9]*) only+=("$a") ;;
        *) seconds=$a ;;
    esac
done
[ "$seconds" -ge 1 ] || usage

# name and -max_len: each a bit above the largest input the code under test
# takes seriously (tokens are capped at 8 KiB, but their structure is found
# within 2 KiB; the dispatcher harness's max_frame is 4 KiB; an event body
# has three strings of at most 255 bytes plus data).
# tls13's input is a program of ops; 2 KiB gives room for a few hundred.
harnesses=(frame:4096 schema:1024 pbjson:2048 jwt:2048 config:4096 dispatch:4096 evdec:2048 tls13:2048
           http:4096)
if ((${#only[@]})); then
    sel=()
    for o in "${only[@]}"; do
        found=0
        for h in "${harnesses[@]}"; do
            [ "${h%%:*}" = "$o" ] && { sel+=("$h"); found=1; }
        done
        [ "$found" -eq 1 ] || { echo "fuzz: no harness named $o" >&2; usage; }
    done
    harnesses=("${sel[@]}")
fi

targets=()
for h in "${harnesses[@]}"; do targets+=("build/fuzz/fuzz/fuzz_${h%%:*}"); done
if ! ninja -f fuzz.ninja "${targets[@]}" >&2; then
    echo "fuzz: build failed"
    echo "0 passed, ${#harnesses[@]} failed"
    exit 1
fi

work=$(mktemp -d /tmp/dlg-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
artifacts=$ROOT/build/fuzz/artifacts
mkdir -p "$artifacts"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

run_one() { # name max_len
    local name=$1 max_len=$2
    local corpus=$work/corpus/$name log=$work/$name.log
    mkdir -p "$corpus" "$artifacts/$name"
    cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
    # timeout is a backstop only: libFuzzer stops itself at max_total_time.
    # FUZZ_RUNS (with FUZZ_SEED) makes a run reproducible: a fixed number of
    # inputs from a fixed seed, as ./dev test wants; otherwise explore for
    # SECONDS with a random seed, as ./dev fuzz wants.
    local budget=(-max_total_time="$seconds")
    if [ -n "${FUZZ_RUNS:-}" ]; then
        budget=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}" -max_total_time=$((seconds * 6)))
    fi
    timeout -k 10 $((seconds * 6 + 120)) "build/fuzz/fuzz/fuzz_$name" \
        "${budget[@]}" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$name/" "$corpus" >"$log" 2>&1
    echo $? >"$work/$name.rc"
}

running=0
for h in "${harnesses[@]}"; do
    run_one "${h%%:*}" "${h##*:}" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

pass=0
fail=0
for h in "${harnesses[@]}"; do
    name=${h%%:*}
    log=$work/$name.log
    rc=$(cat "$work/$name.rc" 2>/dev/null || echo 99)
    execs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    crashes=$(grep -oE 'Test unit written to .*' "$log" | sed 's/^Test unit written to //')
    if [ "$rc" -eq 0 ] && [ -z "$crashes" ]; then
        printf 'fuzz_%-10s PASS  %s runs, %s\n' "$name" "${execs:-?}" "${cov:-cov: ?}"
        pass=$((pass + 1))
        continue
    fi
    fail=$((fail + 1))
    printf 'fuzz_%-10s FAIL  (exit %s) after %s runs\n' "$name" "$rc" "${execs:-?}"
    # The report: the sanitizer's or the check's message and the stack.
    # (libFuzzer's own frames and libc's start-up cut.)
    grep -E 'ERROR: |SUMMARY: |check failed|runtime error|^ +#[0-9]+ ' "$log" |
        grep -vE ' in (fuzzer::|__libc_start|_start |main \()' | head -40 | sed 's/^/    /'
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "    (killed by the backstop timeout)"
    for f in $crashes; do
        echo "    input: $f"
        [ -f "$f" ] && echo "    hex:   $(head -c 256 "$f" | od -An -v -tx1 | tr -d ' \n')"
    done
    echo "    full log: $artifacts/$name/last.log"
    cp "$log" "$artifacts/$name/last.log"
done

if [ "$merge" -eq 1 ]; then
    if [ "$fail" -ne 0 ]; then
        echo "fuzz: --merge skipped: a harness failed"
    else
        for h in "${harnesses[@]}"; do
            name=${h%%:*}
            before=$(ls tests/fuzz/corpus/"$name" | wc -l)
            "build/fuzz/fuzz/fuzz_$name" -merge=1 -max_len="${h##*:}" \
                tests/fuzz/corpus/"$name" "$work/corpus/$name" >"$work/$name.merge.log" 2>&1 ||
                { echo "fuzz: merge of $name failed (see below)"; tail -5 "$work/$name.merge.log"; }
            echo "fuzz_$name: corpus $before -> $(ls tests/fuzz/corpus/"$name" | wc -l) files"
        done
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
