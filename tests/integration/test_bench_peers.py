"""bench/run.sh --peers in small (issue 23 item 6): the same workloads
against dialogued and against Debian's nats-server, redis-server and
mosquitto, each started by the script on loopback with its own config and
port. A few events per run: every run must deliver every event (a peer
client that delivers nothing fails here), report the fields the table
needs, and the table must show each server. A peer whose server program is
not installed is skipped, and then its rows must say so. Speed is not a
test: no time or rate is asserted."""
# suite-timeout: 600
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, ROOT, run_tests  # noqa: E402

BENCH = os.path.join(BUILD, "bin", "dialogue-bench")
RUN = os.path.join(ROOT, "bench", "run.sh")
PROGRAMS = {"nats": "nats-server", "redis": "redis-server", "mqtt": "mosquitto"}
# The few events of each run: W1 paced, W2 as fast as the window allows.
S, M, WARM = 3, 200, 20

OUT = None
TABLE = None


def installed(target):
    prog = PROGRAMS[target]
    return shutil.which(prog) is not None or os.access("/usr/sbin/" + prog, os.X_OK)


def test_bench_is_built():
    assert os.access(BENCH, os.X_OK), "%s is missing" % BENCH


def test_target_usage_errors():
    base = [BENCH, "--server", "127.0.0.1:1", "-M", "1"]
    p = subprocess.run(base + ["--target", "smoke"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "smoke" in p.stderr, p.stderr
    # Redis' client here has no TLS: refused up front, with the reason.
    p = subprocess.run(base + ["--target", "redis"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "hiredis" in p.stderr, p.stderr
    p = subprocess.run(base + ["--target", "nats", "--plaintext", "--transport", "ws"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "--transport" in p.stderr, p.stderr


def test_run_sh_peers():
    global OUT, TABLE
    OUT = tempfile.mkdtemp(prefix="dlg-peers-")
    env = dict(os.environ, DLG_BUILD=BUILD)
    extra = "-S %d -M %d --warmup %d --drain-ms 1000" % (S, M, WARM)
    p = subprocess.run([RUN, "--peers", "--runs", "1", "--only", "W1,W2", "--quiet-wait", "0",
                        "--keep", OUT, "--extra", extra],
                       capture_output=True, text=True, timeout=400, env=env)
    assert p.returncode == 0, "exit %d\nstderr: %s\nstdout: %s" % (
        p.returncode, p.stderr[-4000:], p.stdout[-4000:])
    TABLE = p.stdout
    assert "Peers in the same run" in TABLE, TABLE


def check_run(path, target, tls):
    with open(path) as f:
        r = json.load(f)
    assert r["target"] == target and r["tls"] is tls, (path, r)
    assert r["expected"] == S * M, (path, r)
    assert r["delivered"] == r["expected"], (path, r)
    assert r["warmup_delivered"] == S * WARM, (path, r)
    assert r["published"] == M + WARM and r["acked"] == M + WARM, (path, r)
    assert r["trigger_errors"] == 0 and r["lost_connections"] == 0, (path, r)
    assert r["timed_out"] is False and r["error"] is None, (path, r)
    lat = r["latency_us"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], (path, r)
    assert r["deliveries_per_s"] > 0, (path, r)
    # The server's CPU is read from /proc like dialogued's.
    assert r["daemon_cpu_s"] is not None and r["daemon_cpu_us_per_delivery"] is not None, r
    assert r["bench_cpu_us_per_delivery"] is not None, (path, r)


def peer_rows(target):
    name = PROGRAMS[target]
    return [line for line in TABLE.splitlines() if line.startswith("| W") and
            ("| %s |" % name) in line]


def check_peer(target):
    assert OUT is not None, "run.sh --peers did not run"
    rows = peer_rows(target)
    if not installed(target):
        print("SKIP %s: %s is not installed" % (target, PROGRAMS[target]))
        assert rows and all("not installed" in r for r in rows), TABLE
        return
    for name in ("W1", "W2"):
        for tr in ("tls", "plain"):
            tag = "%s-%s-%s-1" % (name, tr, target)
            path = os.path.join(OUT, tag + ".json")
            if target == "redis" and tr == "tls":
                with open(os.path.join(OUT, tag + ".skip")) as f:
                    assert "hiredis" in f.read()
                assert not os.path.exists(path), path
                continue
            assert os.path.exists(path), (path, sorted(os.listdir(OUT)))
            check_run(path, target, tr == "tls")
    assert len(rows) == 4, TABLE


def test_nats():
    check_peer("nats")


def test_redis():
    check_peer("redis")


def test_mqtt():
    check_peer("mqtt")


def test_dialogued_in_the_same_run():
    assert OUT is not None, "run.sh --peers did not run"
    for path in glob.glob(os.path.join(OUT, "W[12]-*-1.json")):
        if os.path.basename(path).count("-") == 2:
            check_run(path, "dialogue", "-tls-" in path)
    rows = [line for line in TABLE.splitlines() if "| dialogued |" in line]
    assert len(rows) == 4, TABLE
    # Item 5's comparisons are printed whenever both sides ran.
    assert "item 5, W2 plaintext >= Redis's" in TABLE, TABLE
    assert "item 5, W2 TLS >= NATS's without TLS" in TABLE, TABLE


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(target, port, workdir):
    """The server of target on 127.0.0.1:port, plaintext, as bench/peers.sh
    starts it; returns the process once it accepts connections."""
    prog = shutil.which(PROGRAMS[target]) or "/usr/sbin/" + PROGRAMS[target]
    if target == "nats":
        args = [prog, "-a", "127.0.0.1", "-p", str(port)]
    elif target == "redis":
        args = [prog, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "no", "--dir", workdir]
    else:
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("user %s\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
                    "listener %d 127.0.0.1\n" % (pwd.getpwuid(os.getuid()).pw_name, port))
        args = [prog, "-c", conf]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, "%s exited %s" % (prog, proc.returncode)
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("%s is not listening on %d after 10 s" % (prog, port))


def test_many_subscribers_end_within_the_time_limit():
    # Closing a peer must not wait for its server: libnats' Close waited
    # 500 ms per connection for a PONG only the blocked loop could read,
    # so 60 subscribers took 30 s to close after a run of a second.
    for target in PROGRAMS:
        if not installed(target):
            print("SKIP %s: %s is not installed" % (target, PROGRAMS[target]))
            continue
        work = tempfile.mkdtemp(prefix="dlg-peer-srv-")
        port = free_port()
        srv = start_server(target, port, work)
        try:
            p = subprocess.run([BENCH, "--target", target, "--plaintext", "--server",
                                "127.0.0.1:%d" % port, "-S", "60", "-M", "10", "-R", "100",
                                "--time-limit", "10", "--json"],
                               capture_output=True, text=True, timeout=25)
            assert p.returncode == 0, (target, p.returncode, p.stderr)
            r = json.loads(p.stdout)
            assert r["delivered"] == r["expected"] == 600, (target, r)
        finally:
            srv.terminate()
            srv.wait(timeout=10)
            shutil.rmtree(work, True)


def test_no_server_left_running():
    # run.sh stopped every server it started: none of the pids the runs
    # measured is alive.
    pids = []
    for path in glob.glob(os.path.join(OUT, "*.json")):
        with open(path) as f:
            pids += [d["pid"] for d in json.load(f)["daemons"]]
    assert len(pids) >= 4, pids
    alive = [pid for pid in pids if os.path.exists("/proc/%d" % pid)]
    assert alive == [], alive
    shutil.rmtree(OUT, True)


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
              per_test_timeout=420)
