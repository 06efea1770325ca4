"""dialogue-bench smoke runs (issue 7): a few seconds each against a real
daemon on loopback, TLS by default. They check that the bench finishes by
itself, exits 0, prints JSON that parses, and that every expected event was
delivered. Speed is not a test: no time or rate is asserted."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, CERTS, Daemon, run_tests, write_config  # noqa: E402

BENCH = os.path.join(BUILD, "bin", "dialogue-bench")

# The room bench/run.sh uses: any event, nobody subscribed by default.
ROOM = """
rooms:
  - id: bench
    events: ["*"]
    default_subscriptions: []
    join: ["*"]
    trigger: ["*"]
"""

TLS_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  anonymous: true
""" + ROOM

PLAIN_CONFIG = """
listen:
  - address: 127.0.0.1:0
    tls: false
auth:
  anonymous: true
""" + ROOM

D = None


def setup():
    global D
    D = Daemon(config=write_config(TLS_CONFIG))


def bench(*args, daemon=None, plaintext=False, expect_rc=0):
    """Runs dialogue-bench --json against daemon; returns the parsed JSON."""
    d = daemon or D
    cmd = [BENCH, "--server", "127.0.0.1:%d" % d.port, "--json", "--time-limit", "20",
           "--daemon-pid", str(d.proc.pid)]
    cmd += ["--plaintext"] if plaintext else ["--ca", os.path.join(CERTS, "ca.crt")]
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
    assert p.returncode == expect_rc, "exit %d, stderr: %s, stdout: %s" % (
        p.returncode, p.stderr, p.stdout)
    if expect_rc == 2:
        return p
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError("not JSON: %r (stderr %r)" % (p.stdout, p.stderr))


def test_bench_is_built():
    assert os.access(BENCH, os.X_OK), "%s is missing: ninja %s" % (
        BENCH, os.path.relpath(BENCH, os.path.join(BUILD, "..")))


def check_fanout(r, subs, msgs):
    assert r["mode"] == "fanout", r
    assert r["expected"] == subs * msgs, r
    assert r["delivered"] == r["expected"], r
    assert r["out_of_order"] == 0, r
    assert r["trigger_errors"] == 0, r
    assert r["lost_connections"] == 0, r
    assert r["timed_out"] is False, r
    for k in ("p50", "p90", "p99", "p99_9", "max"):
        assert r["latency_us"][k] >= 0, r
    assert r["latency_us"]["p50"] <= r["latency_us"]["p99"] <= r["latency_us"]["max"], r
    assert r["daemon_cpu_s"] is not None, r


def test_paced_tls():
    r = bench("-S", "4", "-P", "1", "-R", "500", "-M", "300", "-B", "64", "--warmup", "20")
    check_fanout(r, 4, 300)
    assert r["tls"] is True
    assert r["warmup_delivered"] == 4 * 20, r
    assert r["published"] == 320 and r["acked"] == 320, r


def test_dialoguectl_bench_forwards():
    ctl = os.path.join(BUILD, "bin", "dialoguectl")
    p = subprocess.run([ctl, "--server", "127.0.0.1:%d" % D.port, "--ca",
                        os.path.join(CERTS, "ca.crt"), "bench", "--json", "--time-limit", "20",
                        "-S", "2", "-P", "1", "-R", "500", "-M", "50", "-B", "64",
                        "--daemon-pid", str(D.proc.pid)],
                       capture_output=True, text=True, timeout=40)
    assert p.returncode == 0, p.stderr
    check_fanout(json.loads(p.stdout), 2, 50)


def test_as_fast_as_possible_two_publishers_two_threads():
    # Rate 0: windowed publishing, the end-to-end limit keeps subscribers
    # from being cut as slow consumers.
    r = bench("-S", "6", "-P", "2", "-R", "0", "-M", "5000", "-B", "128", "--window", "64",
              "--sub-threads", "2", "--pub-threads", "2")
    check_fanout(r, 6, 5000)


def test_plaintext():
    d = Daemon(config=write_config(PLAIN_CONFIG))
    try:
        r = bench("-S", "3", "-R", "0", "-M", "2000", daemon=d, plaintext=True)
        check_fanout(r, 3, 2000)
        assert r["tls"] is False
        # --per-event through the bench's own plaintext client too.
        r = bench("-S", "20", "-R", "50", "-M", "5", "--per-event", daemon=d, plaintext=True)
        check_fanout(r, 20, 5)
        assert r["per_event"]["complete"] == 5, r
    finally:
        assert d.stop() == 0


def test_websocket_transport():
    # Every connection through GET /v1/ws, one frame per message.
    d = Daemon(config=write_config(PLAIN_CONFIG))
    try:
        r = bench("-S", "3", "-R", "0", "-M", "2000", "--transport", "ws", daemon=d,
                  plaintext=True)
        check_fanout(r, 3, 2000)
        assert r["transport"] == "ws" and r["tls"] is False, r
        c = bench("--connections", "20", "--concurrency", "8", "--transport", "ws", daemon=d,
                  plaintext=True)
        assert c["connected"] == 20 and c["failed"] == 0, c
        assert d.logtext().count("WebSocket session (origin none)") >= 4 + 20, d.logtext()[-1500:]
    finally:
        assert d.stop() == 0
    p = bench("--transport", "ws", expect_rc=2)
    assert "--plaintext" in p.stderr, p.stderr
    p = bench("--transport", "smoke", expect_rc=2)
    assert "smoke" in p.stderr, p.stderr


def test_per_event_wide_fanout():
    # Issue 23 item 2's D-shape in small: many TLS subscribers, a few paced
    # events, each timed to its last and its median subscriber.
    subs, msgs = 200, 3
    r = bench("-S", str(subs), "-P", "1", "-R", "5", "-M", str(msgs), "-B", "128",
              "--warmup", "1", "--sub-threads", "1", "--pub-threads", "1", "--per-event")
    check_fanout(r, subs, msgs)
    pe = r["per_event"]
    assert pe["events"] == msgs and pe["complete"] == msgs and pe["reached"] == msgs, pe
    assert pe["lost_deliveries"] == 0 and pe["bad_event_ids"] == 0, pe
    assert len(pe["list"]) == msgs, pe
    for e in pe["list"]:
        assert e["delivered"] == subs and e["lost"] == 0, pe
        assert 0 < e["median_us"] <= e["last_us"], pe
    lasts = sorted(e["last_us"] for e in pe["list"])
    medians = sorted(e["median_us"] for e in pe["list"])
    # Nearest rank over 3 events: p50 is the 2nd, p99 and max the 3rd.
    assert pe["last_us"] == {"p50": lasts[1], "p99": lasts[2], "max": lasts[2]}, pe
    assert pe["median_us"] == {"p50": medians[1], "p99": medians[2], "max": medians[2]}, pe
    # The last subscriber of the slowest event is the run's slowest delivery.
    assert abs(pe["last_us"]["max"] - r["latency_us"]["max"]) < 0.01, r
    # Without --per-event the key is there and null.
    assert bench("-S", "2", "-R", "500", "-M", "20")["per_event"] is None


def test_per_event_text_and_usage():
    # Two publishers: their events get ids 0-1 and 2-3, all four counted.
    cmd = [BENCH, "--server", "127.0.0.1:%d" % D.port, "--ca", os.path.join(CERTS, "ca.crt"),
           "-S", "5", "-P", "2", "-R", "20", "-M", "4", "--per-event", "--time-limit", "20"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
    assert p.returncode == 0, p.stderr
    assert "per event      4 events: 4 reached every subscriber" in p.stdout, p.stdout
    assert "lost deliveries 0" in p.stdout, p.stdout
    assert "to the last subscriber (ms)" in p.stdout, p.stdout
    assert "to the median subscriber (ms)" in p.stdout, p.stdout
    p = bench("--per-event", "-B", "8", expect_rc=2)
    assert "--per-event" in p.stderr and "16" in p.stderr, p.stderr
    p = bench("--per-event", "-S", "100000", "-M", "1000", expect_rc=2)
    assert "--per-event" in p.stderr, p.stderr


def test_connection_scale():
    r = bench("--connections", "40", "--conn-threads", "2", "--concurrency", "8")
    assert r["mode"] == "connections", r
    assert r["connected"] == 40 and r["failed"] == 0 and r["lost"] == 0, r
    assert r["daemon_rss_after_kib"] is not None, r


def test_setup_failure_exits_3():
    # A room that does not exist: setup fails, exit 3, and the reason names it.
    cmd = [BENCH, "--server", "127.0.0.1:%d" % D.port, "--ca", os.path.join(CERTS, "ca.crt"),
           "--room", "nosuchroom", "-S", "1", "-M", "1", "--time-limit", "10"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "nosuchroom" in p.stderr, p.stderr


def test_usage_errors():
    p = bench("-B", "4", expect_rc=2)
    assert "--bytes" in p.stderr, p.stderr
    p = bench("--server", "nocolon", expect_rc=2)
    assert "nocolon" in p.stderr, p.stderr


def test_daemon_clean_exit():
    assert D.stop() == 0, D.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
