#!/bin/bash
# bench/profile.sh: profiles dialogued on one workload, the way
# docs/benchmarks.md did:
#   bench/profile.sh callgrind W1|W2|W3|L1 [tls|plain|ws]
#       the daemon under valgrind --tool=callgrind, collecting only the hot
#       path (the per-turn flush and frame handling, not the TLS handshakes),
#       on a shortened workload (callgrind runs the daemon ~50x slower);
#       prints the inclusive cost of the daemon's functions.
#   bench/profile.sh perf W1|W2|W3|L1|D [tls|plain|ws]
#       perf record -e cpu-clock -g on the daemon at full speed (this VM has
#       no hardware counters); prints the split by library and the top
#       symbols, kernel included. For D (issue 23's wide fan-out: 10,000
#       TLS subscribers, 1 event/s) the recording starts once the daemon
#       holds every connection, so the handshakes stay out of it.
# ws = plaintext, every connection through WebSocket (--transport ws).
# Output files stay in a temp folder named at the end. Bounded in time.
# (The reports end in `head`: under pipefail its early exit is SIGPIPE for
# perf report, hence the `|| true`.)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${DLG_BUILD:-$ROOT/build}
tool=${1:-}
wl=${2:-}
tr=${3:-tls}
case "$tool" in callgrind|perf) ;; *) sed -n '2,15p' "$0"; exit 2 ;; esac
short=0
[ "$tool" = callgrind ] && short=1
# Same shapes as bench/run.sh; callgrind gets fewer, slower messages.
case "$wl" in
W1) args=(-S 100 -R 1000 -M 5000 -B 128); sargs=(-S 100 -R 100 -M 300 -B 128) ;;
W2) args=(-S 10 -R 0 -M 100000 -B 128); sargs=(-S 10 -R 0 -M 20000 -B 128) ;;
W3) args=(-S 1000 -R 100 -M 1000 -B 256); sargs=(-S 1000 -R 10 -M 30 -B 256) ;;
L1) args=(-S 100 -R 100 -M 1000 -B 128); sargs=(-S 100 -R 50 -M 200 -B 128) ;;
D) args=(-S 10000 -P 1 -R 1 -M 20 -B 128 --warmup 1 --sub-threads 2 --per-event)
   sargs=(-S 1000 -P 1 -R 1 -M 5 -B 128 --warmup 1 --sub-threads 2 --per-event) ;;
*) echo "profile.sh: workload must be W1, W2, W3, L1 or D" >&2; exit 2 ;;
esac
[ "$short" = 1 ] && args=("${sargs[@]}")
for f in "$BUILD/bin/dialogued" "$BUILD/bin/dialogue-bench"; do
    [ -x "$f" ] || { echo "profile.sh: $f is missing (ninja ${f#"$ROOT"/})" >&2; exit 1; }
done
need=$tool
[ "$tool" = callgrind ] && need=valgrind
command -v "$need" >/dev/null || { echo "profile.sh: $need is not installed" >&2; exit 1; }

dir=$(mktemp -d /tmp/dlg-profile-XXXXXX)
"$ROOT/tools/devcerts.sh" "$dir/certs" >/dev/null
{
    echo "log_level: warn"
    echo "listen:"
    echo "  - address: 127.0.0.1:0"
    if [ "$tr" = tls ]; then
        echo "    cert: $dir/certs/server.crt"
        echo "    key: $dir/certs/server.key"
    else
        echo "    tls: false"
    fi
    echo "limits: {heartbeat_ms: 3600000, max_connections: 20000}"
    echo "auth: {anonymous: true}"
    echo "rooms:"
    echo "  - {id: bench, events: [\"*\"], default_subscriptions: [], join: [\"*\"], trigger: [\"*\"]}"
} > "$dir/dialogue.yaml"
DPID=
PPID_=
cleanup() {
    if [ -n "$PPID_" ]; then kill -INT "$PPID_" 2>/dev/null || true; fi
    if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
}
trap cleanup EXIT

# D holds 10,000 connections: descriptors in the daemon and in the bench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
daemon=("$BUILD/bin/dialogued" --config "$dir/dialogue.yaml" --port-file "$dir/port")
if [ "$tool" = callgrind ]; then
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        --toggle-collect=dlg_conn_flush_all --toggle-collect=on_frame \
        --toggle-collect=dlg_tlsio_read --toggle-collect=dlg_ws_feed "${daemon[@]}" >"$dir/dialogued.log" 2>&1 &
else
    "${daemon[@]}" >"$dir/dialogued.log" 2>&1 &
fi
DPID=$!
for _ in $(seq 300); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || { cat "$dir/dialogued.log" >&2; exit 1; }
port=$(cat "$dir/port")
flags=(--server "127.0.0.1:$port")
if [ "$tr" = tls ]; then flags+=(--ca "$dir/certs/ca.crt"); else flags+=(--plaintext); fi
[ "$tr" = ws ] && flags+=(--transport ws)
start_perf() {
    perf record -e cpu-clock -F 4000 -g -p "$DPID" -o "$dir/perf.data" >/dev/null 2>&1 &
    PPID_=$!
    sleep 0.5
}
if [ "$tool" = perf ] && [ "$wl" != D ]; then
    start_perf
fi
timeout -k 5 400 "$BUILD/bin/dialogue-bench" "${flags[@]}" --daemon-pid "$DPID" \
    --time-limit 300 "${args[@]}" &
BPID=$!
if [ "$tool" = perf ] && [ "$wl" = D ]; then
    # The connects first (not what D measures): wait, at most 120 s, until
    # the daemon holds a descriptor per subscriber.
    for _ in $(seq 1200); do
        [ "$(find "/proc/$DPID/fd" -mindepth 1 -maxdepth 1 | wc -l)" -ge "${args[1]}" ] && break
        sleep 0.1
    done
    start_perf
fi
wait "$BPID" || true
if [ "$tool" = perf ]; then
    kill -INT "$PPID_"
    wait "$PPID_" || true
    PPID_=
    kill "$DPID"; wait "$DPID" || true; DPID=
    perf report -i "$dir/perf.data" --no-children --sort dso 2>/dev/null |
        grep '%' | grep -v '^ *|' | grep -v -- '--' | head -10 || true
    perf report -i "$dir/perf.data" --no-children --sort sym 2>/dev/null |
        grep '%' | grep -v '^ *|' | grep -v -- '--' | head -30 || true
else
    kill "$DPID"; wait "$DPID" || true; DPID=
    callgrind_annotate --inclusive=yes "$dir/callgrind.out" 2>/dev/null |
        grep -E 'PROGRAM TOTALS|daemon/|lib/|SSL_write|unpack|pack' | head -40 || true
fi
echo "profile.sh: files in $dir"
