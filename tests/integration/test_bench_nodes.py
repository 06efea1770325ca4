"""dialogue-bench over several servers (issue 10): --server lists, --pub-server,
repeated --daemon-pid. Two independent single-node daemons (no cluster), so
an event reaches only the subscribers of the daemon it was published on:
that makes the bench's spreading visible in what is delivered where. Each
daemon's log says who came to it (one "welcome ... name=dialogue-bench" line
per bench connection), which checks the spreading from the daemons' side.
Short runs on loopback; no time or rate is asserted."""
import json
import os
import subprocess
import sys
import time

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

A = B = None


def setup():
    global A, B
    A = Daemon(config=write_config(TLS_CONFIG))
    B = Daemon(config=write_config(TLS_CONFIG))


def addr(d):
    return "127.0.0.1:%d" % d.port


def welcomes(d):
    return d.logtext().count("name=dialogue-bench")


def wait_welcomes(d, want, within=5.0):
    """The daemon's count of bench connections, once it reaches want (its
    log is flushed per line; this only covers the write racing the bench's
    exit). Returns the last count seen."""
    deadline = time.time() + within
    n = welcomes(d)
    while n < want and time.time() < deadline:
        time.sleep(0.05)
        n = welcomes(d)
    return n


def bench(*args, expect_rc=0, plaintext=False):
    """Runs dialogue-bench --json with args; returns the parsed JSON (or the
    CompletedProcess when a usage error, exit 2, is expected)."""
    cmd = [BENCH, "--json", "--time-limit", "20"]
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


def by_server(r):
    return {s["server"]: s for s in r["servers"]}


def test_bench_is_built():
    assert os.access(BENCH, os.X_OK), "%s is missing: ninja %s" % (
        BENCH, os.path.relpath(BENCH, os.path.join(BUILD, "..")))


def test_subscribers_and_publishers_spread_over_two_servers():
    # S=4 over A,B: subscribers 0 and 2 on A, 1 and 3 on B; P=2: publisher 0
    # on A, 1 on B, 50 messages each. Independent daemons: each subscriber
    # gets its own daemon's 50, half of what a cluster would deliver, so the
    # run is incomplete (exit 1) once nothing more arrives (--drain-ms).
    a0, b0 = welcomes(A), welcomes(B)
    r = bench("--server", "%s,%s" % (addr(A), addr(B)), "-S", "4", "-P", "2", "-R", "200",
              "-M", "100", "-B", "64", "--drain-ms", "500",
              "--daemon-pid", str(A.proc.pid), "--daemon-pid", str(B.proc.pid), expect_rc=1)
    assert r["sub_servers"] == [addr(A), addr(B)], r
    assert r["pub_servers"] == [addr(A), addr(B)], r
    s = by_server(r)
    assert set(s) == {addr(A), addr(B)}, r
    for d in (A, B):
        e = s[addr(d)]
        assert e["subscribers"] == 2 and e["publishers"] == 1, r
        assert e["published"] == 50 and e["acked"] == 50 and e["trigger_errors"] == 0, r
        assert e["delivered"] == 2 * 50, r
        assert e["lost_connections"] == 0, r
        assert e["latency_us"]["p50"] <= e["latency_us"]["max"], r
    assert r["expected"] == 4 * 100 and r["delivered"] == 4 * 50, r
    assert r["drained"] is True and r["timed_out"] is False, r
    # The daemons' side: three bench connections came to each.
    assert wait_welcomes(A, a0 + 3) == a0 + 3, A.logtext()[-2000:]
    assert wait_welcomes(B, b0 + 3) == b0 + 3, B.logtext()[-2000:]
    # One CPU reading per pid, and their sum under the old key.
    assert [d["pid"] for d in r["daemons"]] == [A.proc.pid, B.proc.pid], r
    assert all(d["cpu_s"] is not None and d["cpu_s"] >= 0 for d in r["daemons"]), r
    assert abs(r["daemon_cpu_s"] - sum(d["cpu_s"] for d in r["daemons"])) < 1e-6, r


def test_pub_server_same_node_delivers_everything():
    r = bench("--server", addr(A), "--pub-server", addr(A), "-S", "4", "-P", "1", "-R", "500",
              "-M", "200", "-B", "64", "--warmup", "10", "--daemon-pid", str(A.proc.pid))
    assert r["sub_servers"] == [addr(A)] and r["pub_servers"] == [addr(A)], r
    assert r["expected"] == 4 * 200 and r["delivered"] == r["expected"], r
    assert r["warmup_delivered"] == 4 * 10, r
    assert r["trigger_errors"] == 0 and r["lost_connections"] == 0, r
    assert r["out_of_order"] == 0 and r["timed_out"] is False, r
    assert len(r["servers"]) == 1 and r["servers"][0]["delivered"] == 800, r
    # One pid: the single-node keys as before, plus the one-entry array.
    assert r["daemon_cpu_s"] is not None, r
    assert len(r["daemons"]) == 1 and r["daemons"][0]["cpu_s"] == r["daemon_cpu_s"], r


def test_publishers_on_the_other_server():
    # --server B --pub-server A: every subscriber on B, the publisher on A.
    # Without a cluster nothing crosses, but the triggers are all answered
    # by A and B's log shows only the subscribers.
    a0, b0 = welcomes(A), welcomes(B)
    r = bench("--server", addr(B), "--pub-server", addr(A), "-S", "3", "-P", "1", "-R", "200",
              "-M", "40", "--drain-ms", "500", expect_rc=1)
    s = by_server(r)
    assert s[addr(B)]["subscribers"] == 3 and s[addr(B)]["publishers"] == 0, r
    assert s[addr(A)]["subscribers"] == 0 and s[addr(A)]["publishers"] == 1, r
    assert s[addr(A)]["acked"] == 40 and r["acked"] == 40, r
    assert s[addr(A)]["latency_us"] is None, r
    assert r["delivered"] == 0, r
    assert wait_welcomes(A, a0 + 1) == a0 + 1, A.logtext()[-2000:]
    assert wait_welcomes(B, b0 + 3) == b0 + 3, B.logtext()[-2000:]


def test_connection_scale_over_two_servers():
    a0, b0 = welcomes(A), welcomes(B)
    r = bench("--server", addr(A), "--server", addr(B), "--connections", "10",
              "--conn-threads", "2", "--daemon-pid", "%d,%d" % (A.proc.pid, B.proc.pid))
    assert r["mode"] == "connections" and r["connected"] == 10, r
    s = by_server(r)
    for d in (A, B):
        assert s[addr(d)]["connections"] == 5 and s[addr(d)]["connected"] == 5, r
    assert wait_welcomes(A, a0 + 5) == a0 + 5, A.logtext()[-2000:]
    assert wait_welcomes(B, b0 + 5) == b0 + 5, B.logtext()[-2000:]
    assert len(r["daemons"]) == 2, r
    for d in r["daemons"]:
        assert d["rss_before_kib"] is not None and d["rss_after_kib"] is not None, r
    assert r["daemon_rss_after_kib"] == sum(d["rss_after_kib"] for d in r["daemons"]), r


def test_plaintext_lists():
    pa = Daemon(config=write_config(PLAIN_CONFIG))
    pb = Daemon(config=write_config(PLAIN_CONFIG))
    try:
        r = bench("--server", "%s,%s" % (addr(pa), addr(pb)), "-S", "4", "-P", "2", "-R", "200",
                  "-M", "60", "--drain-ms", "500", plaintext=True, expect_rc=1)
        assert r["tls"] is False, r
        s = by_server(r)
        for d in (pa, pb):
            assert s[addr(d)]["subscribers"] == 2 and s[addr(d)]["delivered"] == 2 * 30, r
        assert wait_welcomes(pa, 3) == 3 and wait_welcomes(pb, 3) == 3
        r = bench("--server", addr(pb), "--pub-server", addr(pb), "-S", "2", "-R", "0",
                  "-M", "500", plaintext=True)
        assert r["delivered"] == r["expected"] == 1000, r
    finally:
        assert pa.stop() == 0
        assert pb.stop() == 0


def test_usage_errors_name_the_entry():
    ok = addr(A)
    cases = [
        (["--server", ok + ",nocolon"], "nocolon"),
        (["--server", ok + ",,"  + ok], "empty entry"),
        (["--pub-server", "127.0.0.1:70000"], "127.0.0.1:70000"),
        (["--server", ",".join("127.0.0.1:%d" % (1000 + i) for i in range(16)),
          "--server", "127.0.0.1:2017"], "127.0.0.1:2017"),
        (["--daemon-pid", "1,zz"], "zz"),
        (["--daemon-pid", "7", "--daemon-pid", "7"], "twice"),
        (["--server", ok, "--pub-server", ok, "--connections", "2"], "--pub-server"),
    ]
    for args, needle in cases:
        p = bench(*(args + ["-M", "1"]), expect_rc=2)
        assert needle in p.stderr, (args, p.stderr)


def test_daemons_clean_exit():
    assert A.stop() == 0, A.logtext()[-2000:]
    assert B.stop() == 0, B.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
