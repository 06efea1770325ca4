#!/bin/bash
# bench/run.sh: runs issue 7's workloads (W1, W2, W3, L1 and the 10,000
# connection run) and issue 23's wide fan-out D (10,000 TLS subscribers on
# 2 threads, 1 event/s, 20 events, each timed to its last subscriber) with
# dialogue-bench against dialogued instances it starts itself on 127.0.0.1
# (dev certificates in a temp folder, a fresh daemon per run), takes the
# median of N runs, and prints markdown tables. Issue 23 item 3: R, the
# reconnect storm (10,000 TLS clients with a token in a room kept in
# SQLite, 10 events/s, the daemon restarted under them), and H, the daemon
# CPU of a TLS connect + Hello with a token (ES256); RB and HB are the same
# without a ticket_key and with auth.jwt.cache_size 0 (as before issue 23).
#
#   bench/run.sh [--runs N] [--only W1,W2,W3,W3-2T,L1,C10K,D,R,RB,H,HB]
#                [--no-plaintext]
#                [--keep DIR] [--quick] [--extra 'BENCH FLAGS'] [--quiet-wait SEC]
#                [--peers]
#
# --quick = 1 run each, and 1,000 connections in the scale run, D, R and
# H instead of 10,000 (a few minutes instead of many). --keep DIR leaves
# every run's JSON and daemon log in DIR.
# --extra adds flags to every dialogue-bench run (e.g. '--sub-threads 2');
# the environment variable DLG_DAEMON_FLAGS adds flags to every dialogued
# (e.g. DLG_DAEMON_FLAGS=--io-uring).
# Before each run the script waits (up to --quiet-wait SEC, default 60) for
# other processes to use less than 10% of a CPU; the table's "other CPU"
# column says how busy the host still was during the runs.
# --peers (issue 23 item 6) also runs W1, W2 and W3 against Debian's
# nats-server, redis-server and mosquitto (dialogue-bench --target; each
# started here like dialogued, plaintext and TLS where the client has it),
# interleaved run by run with dialogued, and adds a table of both side by
# side (bench/peers_table.py).
# Build first: ninja build/bin/dialogued build/bin/dialogue-bench
# Every step is bounded: each bench run has --time-limit and an outer timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${DLG_BUILD:-$ROOT/build}
DAEMON=$BUILD/bin/dialogued
BENCH=$BUILD/bin/dialogue-bench
PY=/usr/bin/python3

runs=3
only=W1,W2,W3,W3-2T,L1,C10K,D,R,RB,H,HB
plaintext=1
keep=
extra=
quiet_wait=60
conns=10000
peers=()
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-plaintext) plaintext=0; shift ;;
    --keep) keep=$2; shift 2 ;;
    --quick) runs=1; conns=1000; shift ;;
    --extra) extra=$2; shift 2 ;;
    --quiet-wait) quiet_wait=$2; shift 2 ;;
    --peers) peers=(nats redis mqtt); shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for f in "$DAEMON" "$BENCH"; do
    [ -x "$f" ] || { echo "run.sh: $f is missing: ninja ${f#"$ROOT"/}" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/dlg-bench-XXXXXX)
out=${keep:-$tmp/out}
mkdir -p "$out"
DPID=
cleanup() {
    if [ -n "$DPID" ]; then
        kill "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$ROOT/tools/devcerts.sh" "$tmp/certs" >/dev/null
# 10,000 connections (C10K, D) need 10,000 descriptors in the daemon and in
# the bench.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((conns + 200)) ]; then
    echo "run.sh: the open-file hard limit ($hard) is below $((conns + 200)); the" \
         "connection run will report the failures" >&2
fi
ulimit -n "$hard" 2>/dev/null || true

# The room accepts any event (no schema: payloads are timestamps and
# padding) and subscribes nobody by default: the bench subscribes its
# subscribers, so publishers get nothing back. Heartbeats are out of the way.
write_config() { # file tls(true|false)
    {
        echo "log_level: warn"
        echo "listen:"
        echo "  - address: 127.0.0.1:0"
        if [ "$2" = true ]; then
            echo "    cert: $tmp/certs/server.crt"
            echo "    key: $tmp/certs/server.key"
        else
            echo "    tls: false"
        fi
        echo "limits:"
        echo "  max_connections: $((conns + 100))"
        echo "  heartbeat_ms: 3600000"
        echo "auth:"
        echo "  anonymous: true"
        echo "rooms:"
        echo "  - id: bench"
        echo "    events: [\"*\"]"
        echo "    default_subscriptions: []"
        echo "    join: [\"*\"]"
        echo "    trigger: [\"*\"]"
    } > "$1"
}
write_config "$tmp/tls.yaml" true
write_config "$tmp/plain.yaml" false

start_daemon() { # tls|plain logfile
    rm -f "$tmp/port"
    # shellcheck disable=SC2086 # DLG_DAEMON_FLAGS is a list of flags
    "$DAEMON" --config "$tmp/$1.yaml" --port-file "$tmp/port" ${DLG_DAEMON_FLAGS:-} >"$2" 2>&1 &
    DPID=$!
    for _ in $(seq 200); do
        [ -s "$tmp/port" ] && break
        if ! kill -0 "$DPID" 2>/dev/null; then
            cat "$2" >&2
            echo "run.sh: dialogued did not start" >&2
            exit 1
        fi
        sleep 0.05
    done
    [ -s "$tmp/port" ] || { echo "run.sh: dialogued wrote no port file in 10 s" >&2; exit 1; }
    DPORT=$(cat "$tmp/port")
}

stop_daemon() {
    kill "$DPID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=
}

# wait_quiet: before each run, wait (up to $quiet_wait s) for an idle host.
# shellcheck source=bench/quiet.sh
. "$ROOT/bench/quiet.sh"

# shellcheck source=bench/peers.sh
. "$ROOT/bench/peers.sh"

# One bench run against a fresh daemon (or, with $tgt set, a fresh peer
# server); its JSON goes to $out/NAME-TRANSPORT[-TARGET]-RUN.json, or the
# reason there is none to .skip beside it.
tgt=
bench_once() { # name transport run limit args...
    local name=$1 tr=$2 n=$3 limit=$4
    shift 4
    local tag=$name-$tr${tgt:+-$tgt}-$n
    local json="$out/$tag.json" why
    if [ -n "$tgt" ]; then
        why=$(peer_skip_reason "$tgt" "$tr")
        if [ -n "$why" ]; then
            echo "$why" >"$out/$tag.skip"
            return 0
        fi
    fi
    wait_quiet
    if [ -z "$tgt" ]; then
        start_daemon "$tr" "$out/$tag.dialogued.log"
    elif ! start_peer "$tgt" "$tr" "$out/$tag.server.log"; then
        echo "$(peer_program "$tgt") did not start (see run.sh's messages)" >"$out/$tag.skip"
        return 0
    fi
    if [ "$tr" = tls ]; then
        flags=(--server "127.0.0.1:$DPORT" --ca "$tmp/certs/ca.crt")
    else
        flags=(--server "127.0.0.1:$DPORT" --plaintext)
    fi
    [ -n "$tgt" ] && flags+=(--target "$tgt")
    local rc=0
    # shellcheck disable=SC2086 # --extra is a list of flags
    timeout -k 5 $((limit + 30)) "$BENCH" "${flags[@]}" --daemon-pid "$DPID" --json \
        --time-limit "$limit" "$@" $extra >"$json" 2>"$out/$tag.err" || rc=$?
    stop_daemon
    if [ ! -s "$json" ]; then
        echo "run.sh: $name ($tr${tgt:+, $tgt}) run $n produced no result (exit $rc):" >&2
        cat "$out/$tag.err" >&2
    elif [ "$rc" -ne 0 ]; then
        echo "run.sh: $name ($tr${tgt:+, $tgt}) run $n incomplete (exit $rc); see the table" >&2
    fi
}

want() { [[ ",$only," == *",$1,"* ]]; }

workload() { # name limit transports args...
    local name=$1 limit=$2 trs=() tgts=("")
    read -r -a trs <<< "$3"
    shift 3
    want "$name" || return 0
    # --peers: W1, W2 and W3 against each peer too, run by run in turn with
    # dialogued, so a busy moment of the host spreads over all of them.
    case $name in W1|W2|W3) tgts+=("${peers[@]}") ;; esac
    for tr in "${trs[@]}"; do
        [ "$tr" = plain ] && [ "$plaintext" = 0 ] && continue
        for n in $(seq "$runs"); do
            for tgt in "${tgts[@]}"; do
                echo "run.sh: $name $tr${tgt:+ $tgt} run $n/$runs" >&2
                bench_once "$name" "$tr" "$n" "$limit" "$@"
            done
        done
    done
    tgt=
}

# The workloads of issue 7, with the S, R, M, B the peers were measured with
# and, like them, one subscriber thread; the warm-up is extra and not
# measured. W3-2T is W3 with the subscribers spread over two bench threads.
workload W1 60 "tls plain" -S 100 -P 1 -R 1000 -M 5000 -B 128 --warmup 500
workload W2 60 "tls plain" -S 10 -P 1 -R 0 -M 100000 -B 128 --warmup 20000
workload W3 90 "tls plain" -S 1000 -P 1 -R 100 -M 1000 -B 256 --warmup 50
workload W3-2T 90 "tls" -S 1000 -P 1 -R 100 -M 1000 -B 256 --warmup 50 --sub-threads 2
workload L1 60 "tls plain" -S 100 -P 1 -R 100 -M 1000 -B 128 --warmup 50
# D (issue 23 item 2): $conns TLS subscribers on 2 threads, one publisher, 1
# event/s, 20 measured events after 1 warm-up event (it is the first write
# on every connection since its Welcome). The connects come first and are
# not measured; each event is timed to its last and its median subscriber.
# Bounded: about 10 s of connects at C10K's rate, 21 s of events, the drain.
workload D 120 "tls" -S "$conns" -P 1 -R 1 -M 20 -B 128 --warmup 1 --sub-threads 2 \
    --per-event
if want C10K; then
    for n in $(seq "$runs"); do
        echo "run.sh: C10K tls run $n/$runs ($conns connections)" >&2
        bench_once C10K tls "$n" 60 --connections "$conns"
    done
fi

# R and H (issue 23 item 3) authenticate with a token: an ES256 key made
# here, its token minted with Python's cryptography (python3-cryptography,
# in ./dev), valid for 6 hours. One identity for every client, so the
# room-operations budget per identity is off in their configuration (each
# rejoin is a room operation).
make_token() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/jwt.key" 2>/dev/null
    openssl pkey -in "$tmp/jwt.key" -pubout -out "$tmp/jwt.pub" 2>/dev/null
    "$PY" - "$tmp/jwt.key" > "$tmp/jwt.token" <<'PYEOF'
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
head = b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "dashboard", "iss": "bench", "aud": "dialogue",
                       "iat": now, "exp": now + 6 * 3600}).encode())
r, s = utils.decode_dss_signature(key.sign(head + b"." + body, ec.ECDSA(hashes.SHA256())))
sig = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
sys.stdout.write((head + b"." + body + b"." + sig).decode())
PYEOF
}
write_token_config() { # file address sqlite(0|1) improved(0|1)
    {
        echo "log_level: warn"
        echo "listen:"
        echo "  - address: $2"
        echo "    cert: $tmp/certs/server.crt"
        echo "    key: $tmp/certs/server.key"
        if [ "$4" = 1 ]; then
            echo "    ticket_key: $tmp/ticket.key"
        fi
        echo "limits:"
        echo "  max_connections: $((conns + 100))"
        echo "  heartbeat_ms: 3600000"
        echo "  room_ops_per_second: 0"
        echo "auth:"
        echo "  anonymous: false"
        echo "  jwt:"
        echo "    issuer: bench"
        echo "    audience: dialogue"
        if [ "$4" = 0 ]; then
            echo "    cache_size: 0"
        fi
        echo "    keys: [{alg: ES256, public_key_file: $tmp/jwt.pub}]"
        if [ "$3" = 1 ]; then
            echo "store: sqlite"
            echo "store_path: $tmp/storm.db"
        fi
        echo "rooms:"
        echo "  - id: storm"
        echo "    events: [\"*\"]"
        echo "    default_subscriptions: [\"*\"]"
        echo "    join: [\"*\"]"
        echo "    trigger: [\"*\"]"
        echo "    history: [{event: \"*\", limit: 100000}]"
    } > "$1"
}
if want R || want RB || want H || want HB; then
    make_token
    openssl rand 80 > "$tmp/ticket.key"
fi
# H: $conns connections, each a full TLS handshake and a Hello with the
# token; the daemon's CPU while they connect, divided by the connections.
# H with a ticket_key and the token cache (every client has the same token),
# HB without either.
hello_cost() { # name improved(0|1)
    local name=$1
    want "$name" || return 0
    write_token_config "$tmp/h.yaml" 127.0.0.1:0 0 "$2"
    for n in $(seq "$runs"); do
        echo "run.sh: $name tls run $n/$runs ($conns connections with a token)" >&2
        json="$out/$name-tls-$n.json"
        wait_quiet
        start_daemon h "$out/$name-tls-$n.dialogued.log"
        rc=0
        # shellcheck disable=SC2086 # --extra is a list of flags
        timeout -k 5 90 "$BENCH" --server "127.0.0.1:$DPORT" --ca "$tmp/certs/ca.crt" \
            --token "$(cat "$tmp/jwt.token")" --daemon-pid "$DPID" --json --time-limit 60 \
            --connections "$conns" $extra >"$json" 2>"$out/$name-tls-$n.err" || rc=$?
        stop_daemon
        if [ "$rc" -ne 0 ]; then
            echo "run.sh: $name run $n exit $rc:" >&2
            cat "$out/$name-tls-$n.err" >&2
        fi
    done
}
hello_cost H 1
hello_cost HB 0
# R: the storm. The bench connects $conns clients and a publisher (10
# events/s) and makes the ready file once events flow; then the daemon gets
# SIGTERM and a new one starts on the same port and store. The bench
# follows the pid file and reports when every client is back and
# recovered, and every missing or duplicate event per client. R with a
# ticket_key (clients resume) and the token cache, RB without either.
storm() { # name improved(0|1)
    local name=$1
    want "$name" || return 0
    for n in $(seq "$runs"); do
        echo "run.sh: $name tls run $n/$runs ($conns clients, a restart)" >&2
        json="$out/$name-tls-$n.json"
        log="$out/$name-tls-$n.dialogued.log"
        rm -f "$tmp/storm.db" "$tmp/storm.db-wal" "$tmp/storm.db-shm" "$tmp/ready"
        write_token_config "$tmp/r.yaml" 127.0.0.1:0 1 "$2"
        wait_quiet
        start_daemon r "$log"
        echo "$DPID" > "$tmp/pid.new" && mv "$tmp/pid.new" "$tmp/pid"
        # The restart listens on the same port.
        write_token_config "$tmp/r.yaml" "127.0.0.1:$DPORT" 1 "$2"
        # shellcheck disable=SC2086 # --extra is a list of flags
        timeout -k 5 240 "$BENCH" --server "127.0.0.1:$DPORT" --ca "$tmp/certs/ca.crt" \
            --token "$(cat "$tmp/jwt.token")" --room storm --storm -S "$conns" -R 10 -B 64 \
            --sub-threads 2 --daemon-pid-file "$tmp/pid" --ready-file "$tmp/ready" \
            --json --time-limit 200 $extra >"$json" 2>"$out/$name-tls-$n.err" &
        BPID=$!
        for _ in $(seq 2000); do
            [ -e "$tmp/ready" ] && break
            kill -0 "$BPID" 2>/dev/null || break
            sleep 0.1
        done
        if [ -e "$tmp/ready" ]; then
            stop_daemon
            start_daemon r "$log.2"
            echo "$DPID" > "$tmp/pid.new" && mv "$tmp/pid.new" "$tmp/pid"
        fi
        rc=0
        wait "$BPID" || rc=$?
        stop_daemon
        if [ "$rc" -ne 0 ]; then
            echo "run.sh: $name run $n exit $rc:" >&2
            cat "$out/$name-tls-$n.err" >&2
        fi
    done
}
storm R 1
storm RB 0

# The table: the median of the runs, metric by metric.
"$PY" - "$out" "$runs" <<'EOF'
import glob, json, os, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
targets = {
    "W1": ("p99 <= 1 ms, all delivered, <= 5 us daemon CPU/delivery",
           lambda m: m["p99"] <= 1000 and m["all"] and m["dcpu"] <= 5),
    "W2": ("TLS >= 1.5 M/s, plaintext >= 2 M/s, <= 0.4 us daemon CPU/delivery",
           lambda m: m["rate"] >= (1.5e6 if m["tls"] else 2e6) and m["dcpu"] <= 0.4),
    "W3": ("p99 <= 10 ms", lambda m: m["p99"] <= 10000 and m["all"]),
    "W3-2T": ("p99 <= 10 ms", lambda m: m["p99"] <= 10000 and m["all"]),
    "L1": ("p99 <= 1 ms", lambda m: m["p99"] <= 1000 and m["all"]),
}
def load(name, tr):
    rs = []
    for n in range(1, runs + 1):
        p = os.path.join(out, "%s-%s-%d.json" % (name, tr, n))
        try:
            with open(p) as f:
                rs.append(json.load(f))
        except (OSError, ValueError):
            pass
    return rs
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| workload | transport | runs | delivered / expected | p50 | p99 | p99 range | p99.9 | max "
      "| deliveries/s | daemon CPU/delivery | bench CPU/delivery | other CPU | target | met |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
def other(rs, span):
    xs = [r["other_cpu_s"] / r[span] for r in rs if r.get("other_cpu_s") is not None and r[span] > 0]
    return "%.2f CPUs" % med(xs) if xs else "?"
for name in ("W1", "W2", "W3", "W3-2T", "L1"):  # D has a table of its own
    for tr in ("tls", "plain"):
        rs = load(name, tr)
        if not rs:
            continue
        lat = lambda k: med([r["latency_us"][k] for r in rs])
        m = {
            "tls": tr == "tls",
            "p99": lat("p99"),
            "rate": med([r["deliveries_per_s"] for r in rs]),
            "dcpu": med([r["daemon_cpu_us_per_delivery"] or 0 for r in rs]),
            "all": all(r["delivered"] == r["expected"] for r in rs),
        }
        dl = "%s / %s" % (min(r["delivered"] for r in rs), rs[0]["expected"])
        goal, ok = targets[name]
        p99s = [r["latency_us"]["p99"] / 1000 for r in rs]
        print("| %s | %s | %d | %s | %.2f ms | %.2f ms | %.2f-%.2f ms | %.2f ms | %.2f ms | %.2f M/s "
              "| %.2f us | %.2f us | %s | %s | %s |" % (
                  name, "TLS" if tr == "tls" else "plaintext", len(rs), dl,
                  lat("p50") / 1000, m["p99"] / 1000, min(p99s), max(p99s),
                  lat("p99_9") / 1000, lat("max") / 1000,
                  m["rate"] / 1e6, m["dcpu"],
                  med([r["bench_cpu_us_per_delivery"] or 0 for r in rs]), other(rs, "elapsed_s"), goal,
                  "yes" if ok(m) else "**no**"))
rs = load("C10K", "tls")
if rs:
    print()
    print("| connection run | runs | connected | connect time | connects/s "
          "| daemon RSS per connection | daemon CPU per connection | other CPU | target | met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    t = med([r["connect_s"] for r in rs])
    per = med([r["daemon_rss_per_connection_bytes"] or 0 for r in rs])
    ok = all(r["connected"] == r["connections"] for r in rs) and t <= 10 and per <= 10240
    dcpu = med([(r["daemon_cpu_s"] or 0) * 1e6 / max(r["connected"], 1) for r in rs])
    print("| %d idle TLS | %d | %s / %d | %.2f s | %.0f | %.1f KiB | %.0f us | %s "
          "| all within 10 s, <= 10 KiB each | %s |" % (
              rs[0]["connections"], len(rs), min(r["connected"] for r in rs),
              rs[0]["connections"], t, med([r["connects_per_s"] for r in rs]), per / 1024,
              dcpu, other(rs, "connect_s"), "yes" if ok else "**no**"))
rs = [r for r in load("D", "tls") if r.get("per_event")]
if rs:
    print()
    print("| wide fan-out (D) | runs | delivered / expected | events to every subscriber "
          "| last subscriber p50 | p99 | p99 range | max | median subscriber p50 | p99 "
          "| daemon CPU/delivery | other CPU | target | met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    pe = lambda r: r["per_event"]
    last = lambda k: med([pe(r)["last_us"][k] / 1000 for r in rs])
    mid = lambda k: med([pe(r)["median_us"][k] / 1000 for r in rs])
    p99s = [pe(r)["last_us"]["p99"] / 1000 for r in rs]
    every = all(r["delivered"] == r["expected"] and pe(r)["complete"] == pe(r)["events"]
                for r in rs)
    ok = every and last("p99") <= 30
    print("| %d TLS subscribers, 2 threads, %g event/s, %d events | %d | %s / %d | %s "
          "| %.2f ms | %.2f ms | %.2f-%.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f us | %s "
          "| last subscriber p99 <= 30 ms, every event to every subscriber | %s |" % (
              rs[0]["subscribers"], rs[0]["rate"], rs[0]["messages"], len(rs),
              min(r["delivered"] for r in rs), rs[0]["expected"],
              "%d / %d" % (min(pe(r)["complete"] for r in rs), pe(rs[0])["events"]),
              last("p50"), last("p99"), min(p99s), max(p99s), last("max"), mid("p50"),
              mid("p99"), med([r["daemon_cpu_us_per_delivery"] or 0 for r in rs]),
              other(rs, "elapsed_s"), "yes" if ok else "**no**"))
hs = [(n, load(n, "tls")) for n in ("H", "HB")]
if any(rs for _, rs in hs):
    print()
    print("| connect + Hello | runs | connected | connect time | daemon CPU per connect + Hello "
          "| other CPU | target | met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for hname, rs in hs:
    if not rs:
        continue
    dcpu = med([(r["daemon_cpu_s"] or 0) * 1e6 / max(r["connected"], 1) for r in rs])
    ok = all(r["connected"] == r["connections"] for r in rs) and dcpu <= 150
    print("| %s: %d TLS connects, ES256 token%s | %d | %s / %d | %.2f s | %.0f us | %s "
          "| <= 150 us | %s |" % (
        hname, rs[0]["connections"],
        " (cache_size 0)" if hname == "HB" else " (the same token: cache hits)",
        len(rs), min(r["connected"] for r in rs), rs[0]["connections"],
        med([r["connect_s"] for r in rs]), dcpu, other(rs, "connect_s"),
        "yes" if ok else "**no**"))
ss = [(n, [r for r in load(n, "tls") if r.get("mode") == "storm"]) for n in ("R", "RB")]
if any(rs for _, rs in ss):
    print()
    print("| reconnect storm | runs | back / clients | new daemon start -> all back | range "
          "| first Welcome | daemon CPU: start, then storm | storm per client | missing | duplicates "
          "| events per client | target | met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for sname, rs in ss:
    if not rs:
        continue
    backs = [r["back_s"] for r in rs if r["all_back"]]
    clean = all(r["all_back"] and r["missing"] == 0 and r["duplicates"] == 0 and
                r["out_of_order"] == 0 and r["gaps"] == 0 and r["left"] == 0 for r in rs)
    ok = clean and med(backs) <= 5
    print("| %s: %d TLS clients, ES256 token, SQLite store, %g events/s%s | %d | %d / %d | %.2f s "
          "| %.2f-%.2f s | %.2f s | %.2f s, %.2f s | %.0f us | %d | %d | %d | all back, recovered, "
          "nothing missing or twice, within 5 s | %s |" % (
              sname, rs[0]["clients"], rs[0]["rate"],
              ", no ticket_key, cache_size 0" if sname == "RB" else ", ticket_key",
              len(rs), min(r["back"] for r in rs), rs[0]["clients"],
              med(backs), min(backs or [0]), max(backs or [0]),
              med([r["first_welcome_s"] for r in rs]),
              med([r["daemon_start_cpu_s"] or 0 for r in rs]),
              med([(r["daemon_cpu_s"] or 0) - (r["daemon_start_cpu_s"] or 0) for r in rs]),
              med([r["daemon_cpu_us_per_client"] or 0 for r in rs]),
              sum(r["missing"] for r in rs), sum(r["duplicates"] for r in rs),
              min(r["expected_events"] for r in rs), "yes" if ok else "**no**"))
EOF
if [ ${#peers[@]} -gt 0 ]; then
    echo
    "$PY" "$ROOT/bench/peers_table.py" "$out" "$runs" "${peers[@]}"
fi
