#!/bin/bash
# tests/run.sh: runs every suite (cmocka unit binaries and Python integration
# scripts) for the normal build and the ASan+UBSan build, each with its own
# timeout, and ends with the sum: `N passed, N failed`.
#   tests/run.sh [NAME...]   only the suites whose name contains one of the
#                            NAMEs (e.g. `websocket`, `asan:`, `test_room`,
#                            `fuzz`, `layers`, `demo`); the names are those
#                            of the summary lines.
# DLG_SUITE_TIMEOUT: seconds each suite may take [300].
set -uo pipefail
cd "$(dirname "$0")/.."
total_pass=0
total_fail=0
suite_timeout=${DLG_SUITE_TIMEOUT:-300}
logdir=$(mktemp -d /tmp/dlg-tests-XXXXXX)
filters=("$@")

# Whether suite $1 was asked for (all when no NAME was given).
want() {
    ((${#filters[@]} == 0)) && return 0
    local f
    for f in "${filters[@]}"; do
        [[ "$1" == *"$f"* ]] && return 0
    done
    return 1
}

record() { # suite pass fail
    printf '%-48s %4d passed, %d failed\n' "$1" "$2" "$3"
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
}

run_cmocka() { # variant binary
    local name="$1:$(basename "$2")" out="$logdir/$1-$(basename "$2").log"
    want "$name" || return 0
    timeout -k 5 "$suite_timeout" "$2" >"$out" 2>&1
    local rc=$?
    local p f
    p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$out" | grep -oE '[0-9]+$' | tail -1)
    f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | tail -1)
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crashed or timed out
    if [ "$f" -ne 0 ]; then sed 's/^/    /' "$out" | tail -40; fi
    record "$name" "$p" "$f"
}

run_py() { # variant script
    local name="$1:${2#tests/}" out="$logdir/$1-$(basename "$2").log"
    want "$name" || return 0
    # A slow suite says how long it may take: "# suite-timeout: SECONDS".
    local t
    t=$(sed -n 's/^# suite-timeout: \([0-9][0-9]*\)$/\1/p' "$2" | head -1)
    DLG_BUILD="$3" timeout -k 5 "${t:-$suite_timeout}" /usr/bin/python3 "$2" >"$out" 2>&1
    local rc=$?
    local line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    p=$(echo "$line" | awk '{print $1}')
    f=$(echo "$line" | awk '{print $3}')
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ "$f" -ne 0 ]; then grep -vE '^PASS ' "$out" | sed 's/^/    /' | tail -60; fi
    record "$name" "$p" "$f"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for variant in build build/asan; do
    tag=$([ "$variant" = build ] && echo release || echo asan)
    for t in "$variant"/tests/test_*; do
        [ -x "$t" ] || continue
        run_cmocka "$tag" "$t"
    done
    while IFS= read -r py; do
        run_py "$tag" "$py" "$(pwd)/$variant"
    done < <(find tests -name 'test_*.py' | sort)
done
# Every suite above ran with the defaults: established TLS 1.3 sessions on
# our record layer (tls_own_records) and sends through io_uring. These also
# run on OpenSSL's records, and with write() and the send threads.
for py in tests/integration/test_protocol.py tests/integration/test_send_threads.py \
    tests/integration/test_slow.py tests/integration/test_client_cert.py; do
    DIALOGUE_TLS_OWN_RECORDS=0 run_py openssl-records "$py" "$(pwd)/build"
done
for py in tests/integration/test_protocol.py tests/integration/test_slow.py \
    tests/integration/test_rooms.py tests/integration/test_history.py \
    tests/integration/test_resources.py tests/integration/test_dashboard.py \
    tests/integration/test_tls_floods.py tests/integration/test_conn_limits.py \
    tests/integration/test_websocket.py tests/integration/test_grpc.py \
    tests/integration/test_h2_floods.py; do
    DIALOGUE_IO_URING=0 run_py write "$py" "$(pwd)/build"
    DIALOGUE_IO_URING=0 run_py write-asan "$py" "$(pwd)/build/asan"
done
# The layers: each links alone against the ones below it, and no object
# calls a function of a layer above its own (docs/architecture.md).
if want "layers:"; then
    out="$logdir/layers.log"
    if ninja -f build.ninja layers >"$out" 2>&1; then
        record "layers:link-each-alone" 1 0
    else
        sed 's/^/    /' "$out" | tail -20
        record "layers:link-each-alone" 0 1
    fi
    if tools/layers.sh build >"$out" 2>&1; then
        record "layers:tools/layers.sh" 1 0
    else
        sed 's/^/    /' "$out" | tail -20
        record "layers:tools/layers.sh" 0 1
    fi
fi
# The client's thread-safety test under ThreadSanitizer.
out="$logdir/tsan.log"
if ! want "tsan:"; then
    :
elif ninja -f tsan.ninja tsan >"$out" 2>&1; then
    run_cmocka tsan build/tsan/tests/test_client_threads
    run_cmocka tsan build/tsan/tests/test_sendpool
else
    sed 's/^/    /' "$out" | tail -20
    record "tsan:build" 0 1
fi

# Every libFuzzer harness, briefly (./dev fuzz runs them longer).
out="$logdir/fuzz.log"
if want "fuzz:"; then
# A fixed seed and input count: the same inputs every run, so a red CI is
# reproducible. `./dev fuzz` is the random exploration.
FUZZ_RUNS=${DLG_FUZZ_RUNS:-300000} FUZZ_SEED=${DLG_FUZZ_SEED:-1} \
    timeout -k 5 900 tools/fuzz.sh "${DLG_FUZZ_SECONDS:-10}" >"$out" 2>&1
rc=$?
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
p=$(echo "$line" | awk '{print $1}')
f=$(echo "$line" | awk '{print $3}')
p=${p:-0}
f=${f:-0}
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
if [ "$f" -ne 0 ]; then sed 's/^/    /' "$out" | tail -40; fi
record "fuzz:tools/fuzz.sh" "$p" "$f"
fi

# The demo, headless, as a user would run it (on a free port).
out="$logdir/demo-check.log"
if ! want "demo:"; then
    :
elif DIALOGUE_PORT=0 timeout -k 5 120 ./dev demo --check >"$out" 2>&1; then
    record "demo:--check" 1 0
else
    sed 's/^/    /' "$out" | tail -30
    record "demo:--check" 0 1
fi
rm -rf "$logdir"
if [ $((total_pass + total_fail)) -eq 0 ]; then
    echo "no test was executed"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
