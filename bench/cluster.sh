#!/bin/bash
# bench/cluster.sh: cross-node fan-out (issue 10) next to single-node, with
# dialogue-bench on loopback: a 3-server NATS cluster (JetStream on) and two
# dialogued nodes A and B, in each cluster mode:
#   single  one node, no cluster (the baseline)
#   core    cluster without log (NATS core, per-node numbering)
#   log     cluster.log (a JetStream stream per room, replicas 3)
# and for each, publishers on A with subscribers on A ("same node") and on B
# ("cross-node"). Prints a markdown table (median of --runs).
#
#   bench/cluster.sh [--runs N] [--modes single,core,log] [--keep DIR]
#                    [--workloads X1,X2,X3] [--quiet-wait SEC]
#
# Like run.sh, it waits before each run (up to --quiet-wait SEC, default 60)
# for other processes to use under 10% of a CPU.
# X1: S=100 P=1 R=1000 M=5000 B=128 (W1 of issue 7); X2: S=10 P=1 R=0
# M=50000 B=128 (throughput, Ack window 512); X3: X2 with S=100 (a wide
# room: ten times the deliveries per trigger; only with --workloads X3).
# Needs nats-server and the build (ninja build/bin/dialogued
# build/bin/dialogue-bench). Bounded: every bench run has --time-limit and
# an outer timeout; every process started here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${DLG_BUILD:-$ROOT/build}
DAEMON=$BUILD/bin/dialogued
BENCH=$BUILD/bin/dialogue-bench
PY=/usr/bin/python3
runs=1
modes=single,core,log
workloads=X1,X2
keep=
quiet_wait=60
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --quiet-wait) quiet_wait=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v nats-server >/dev/null || { echo "cluster.sh: nats-server is missing" >&2; exit 1; }
for f in "$DAEMON" "$BENCH"; do
    [ -x "$f" ] || { echo "cluster.sh: $f is missing: ninja ${f#"$ROOT"/}" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/dlg-cbench-XXXXXX)
out=${keep:-$tmp/out}
mkdir -p "$out"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
"$ROOT/tools/devcerts.sh" "$tmp/certs" >/dev/null
# shellcheck source=bench/quiet.sh
. "$ROOT/bench/quiet.sh"

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_ok() { # port path python-condition-on-j
    $PY - "$1" "$2" "$3" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=2) as r:
        j = json.loads(r.read())
    sys.exit(0 if eval(sys.argv[3]) else 1)
except Exception:
    sys.exit(1)
EOF
}
wait_for() { # what seconds command...
    local what=$1 secs=$2
    shift 2
    for _ in $(seq $((secs * 10))); do
        "$@" && return 0
        sleep 0.1
    done
    echo "cluster.sh: timed out waiting for $what" >&2
    exit 1
}

NPORTS=()
NATS_PIDS=()
start_nats() {
    local cports=() mports=() i
    NPORTS=()
    for i in 0 1 2; do NPORTS+=("$(free_port)"); cports+=("$(free_port)"); mports+=("$(free_port)"); done
    for i in 0 1 2; do
        local routes=() j
        for j in 0 1 2; do [ "$j" = "$i" ] || routes+=("nats-route://127.0.0.1:${cports[$j]}"); done
        mkdir -p "$tmp/js$i"
        cat > "$tmp/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${NPORTS[$i]}
http: 127.0.0.1:${mports[$i]}
jetstream { store_dir: "$tmp/js$i" }
cluster {
  name: bench
  listen: 127.0.0.1:${cports[$i]}
  routes: [${routes[0]}, ${routes[1]}]
}
EOF
        nats-server -c "$tmp/n$i.conf" >"$tmp/n$i.log" 2>&1 &
        PIDS+=($!)
        NATS_PIDS+=($!)
    done
    for i in 0 1 2; do
        wait_for "NATS n$i routes" 20 http_ok "${mports[$i]}" /routez 'j.get("num_routes",0)>=2'
        wait_for "NATS n$i JetStream" 40 http_ok "${mports[$i]}" /jsz \
            '(j.get("meta_cluster") or {}).get("leader")'
    done
}
stop_nats() {
    for p in "${NATS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${NATS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    NATS_PIDS=()
    rm -rf "$tmp"/js*
}

write_config() { # file node mode
    {
        echo "log_level: warn"
        echo "listen:"
        echo "  - address: 127.0.0.1:0"
        echo "    cert: $tmp/certs/server.crt"
        echo "    key: $tmp/certs/server.key"
        echo "limits:"
        echo "  heartbeat_ms: 3600000"
        echo "auth:"
        echo "  anonymous: true"
        echo "rooms:"
        echo "  - id: bench"
        echo "    events: [\"*\"]"
        echo "    default_subscriptions: []"
        echo "    join: [\"*\"]"
        echo "    trigger: [\"*\"]"
        if [ "$3" != single ]; then
            echo "cluster:"
            echo "  node_id: $2"
            echo "  nats: [nats://127.0.0.1:${NPORTS[0]}, nats://127.0.0.1:${NPORTS[1]}, nats://127.0.0.1:${NPORTS[2]}]"
            if [ "$3" = log ]; then echo "  log: {replicas: 3}"; fi
        fi
    } > "$1"
}

DPID=()
DPORT=()
start_node() { # node mode
    local f="$tmp/$1.yaml"
    write_config "$f" "$1" "$2"
    rm -f "$tmp/$1.port"
    "$DAEMON" --config "$f" --port-file "$tmp/$1.port" >"$out/$1-$2.dialogued.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    DPID+=($pid)
    wait_for "node $1" 40 test -s "$tmp/$1.port"
    DPORT+=("$(cat "$tmp/$1.port")")
}
stop_nodes() {
    for p in "${DPID[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${DPID[@]}"; do wait "$p" 2>/dev/null || true; done
    DPID=()
    DPORT=()
}

want() { [[ ",$2," == *",$1,"* ]]; }

run_one() { # mode workload placement run
    local mode=$1 w=$2 place=$3 n=$4 args
    case "$w" in
    X1) args=(-S 100 -P 1 -R 1000 -M 5000 -B 128 --warmup 500) ;;
    X2) args=(-S 10 -P 1 -R 0 -M 50000 -B 128 --warmup 2000) ;;
    X3) args=(-S 100 -P 1 -R 0 -M 50000 -B 128 --warmup 2000) ;;
    esac
    local a="127.0.0.1:${DPORT[0]}" b="127.0.0.1:${DPORT[${#DPORT[@]} - 1]}" subs
    [ "$place" = same ] && subs=$a || subs=$b
    local pids
    pids=$(IFS=,; echo "${DPID[*]}")
    local json="$out/$mode-$w-$place-$n.json"
    wait_quiet
    echo "cluster.sh: $mode $w $place run $n/$runs" >&2
    timeout -k 5 90 "$BENCH" --server "$subs" --pub-server "$a" --ca "$tmp/certs/ca.crt" \
        --room bench --daemon-pid "$pids" --json --time-limit 60 "${args[@]}" \
        >"$json" 2>"$out/$mode-$w-$place-$n.err" || true
}

for mode in single core log; do
    want "$mode" "$modes" || continue
    [ "$mode" = single ] || start_nats
    start_node a "$mode"
    [ "$mode" = single ] || start_node b "$mode"
    for w in X1 X2 X3; do
        want "$w" "$workloads" || continue
        for place in same cross; do
            [ "$mode" = single ] && [ "$place" = cross ] && continue
            for n in $(seq "$runs"); do run_one "$mode" "$w" "$place" "$n"; done
        done
    done
    stop_nodes
    [ "$mode" = single ] || stop_nats
done

$PY - "$out" "$runs" <<'EOF'
import glob, json, os, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
print("| mode | workload | subscribers on | delivered | p50 us | p99 us | max us | deliveries/s | daemons' CPU us/delivery |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("single", "core", "log"):
    for w in ("X1", "X2", "X3"):
        for place in ("same", "cross"):
            rs = []
            for n in range(1, runs + 1):
                p = os.path.join(out, "%s-%s-%s-%d.json" % (mode, w, place, n))
                try:
                    with open(p) as f:
                        rs.append(json.load(f))
                except (OSError, ValueError):
                    pass
            if not rs:
                continue
            def med(get):
                v = [get(r) for r in rs]
                v = [x for x in v if x is not None]
                return statistics.median(v) if v else float("nan")
            lat = lambda k: med(lambda r: (r.get("latency_us") or {}).get(k))
            print("| %s | %s | %s | %d/%d | %.0f | %.0f | %.0f | %.0f | %.2f |" % (
                mode, w, "node A (same)" if place == "same" else "node B (cross)",
                med(lambda r: r.get("delivered", 0)), med(lambda r: r.get("expected", 0)),
                lat("p50"), lat("p99"), lat("max"), med(lambda r: r.get("deliveries_per_s")),
                med(lambda r: r.get("daemon_cpu_us_per_delivery"))))
EOF
