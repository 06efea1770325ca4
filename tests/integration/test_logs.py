"""The daemon's log (issue 22): log_format json (one object a line: ts,
level, msg, and conn and peer on a connection's lines), log_file (lines
appended there instead of stderr), both as config keys and flags; SIGUSR1
opens the file again after logrotate moved it, and no line is lost."""
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, run_tests, wait_until, write_config  # noqa: E402

BASE = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
"""
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def json_lines(path):
    out = []
    for line in read_lines(path):
        obj = json.loads(line)  # every line must be one JSON object
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


def visit(port, name="test"):
    """One client: TLS, Hello, close. Returns its local port (the peer the
    daemon logs)."""
    c = Conn(port)
    c.hello(name=name)
    local = c.sock.getsockname()[1]
    c.close()
    return local


def closed_peers(objs):
    return [o.get("peer") for o in objs if o["msg"].startswith("closed:")]


def test_json_lines_parse_and_carry_fields():
    cfg = write_config(BASE + "log_format: json\nlog_file: dialogued.log\n")
    path = os.path.join(os.path.dirname(cfg), "dialogued.log")
    d = Daemon(config=cfg)
    try:
        # A client name that would break a naive line: quote, newline, brace.
        local = visit(d.port, name='evil"\n{"level":"error"}')
        peer = "127.0.0.1:%d" % local
        assert wait_until(lambda: peer in closed_peers(json_lines(path)), within=10), \
            read_lines(path)
    finally:
        d.stop()
    objs = json_lines(path)
    assert len(objs) >= 5, objs
    for o in objs:
        assert TS.match(o["ts"]), o
        assert o["level"] in ("error", "warn", "info", "debug"), o
        assert isinstance(o["msg"], str) and o["msg"], o
        assert ("peer" in o) <= ("conn" in o), o
    assert any(o["msg"].startswith("listening on 127.0.0.1:0 port %d" % d.port) for o in objs)
    mine = [o for o in objs if o.get("peer") == peer]
    assert mine, objs
    # Its welcome and its close, each with the connection's id and peer,
    # the "conn ID (PEER): " prefix taken out of msg.
    welcome = [o for o in mine if o["msg"].startswith("welcome ")]
    closed = [o for o in mine if o["msg"].startswith("closed: ")]
    assert len(welcome) == 1 and len(closed) == 1, mine
    assert re.match(r"^c\d+$", welcome[0]["conn"]) and closed[0]["conn"] == welcome[0]["conn"]
    assert welcome[0]["level"] == "info"
    # The name arrives as text (escaped control bytes), inside msg.
    assert 'name=evil"\\x0a{"level":"error"}' in welcome[0]["msg"], welcome[0]
    # Nothing on stderr but what comes before the log file is open.
    assert "listening on" not in d.logtext(), d.logtext()


def test_flags_win_over_the_file():
    cfg = write_config(BASE + "log_format: text\n")
    path = os.path.join(os.path.dirname(cfg), "flag.log")
    d = Daemon("--log-format", "json", "--log-file", path, config=cfg)
    try:
        visit(d.port)
    finally:
        d.stop()
    objs = json_lines(path)
    assert any(o["msg"] == "stopped" for o in objs), objs
    # Text stays the default: the same daemon without the flags logs lines
    # of "time prog LEVEL message".
    d = Daemon(config=write_config(BASE))
    try:
        visit(d.port)
    finally:
        d.stop()
    assert re.search(r"^\S+Z dialogued INFO conn c\d+ \(127\.0\.0\.1:\d+\): closed: ",
                     d.logtext(), re.M), d.logtext()


def test_sigusr1_reopens_and_nothing_is_lost():
    cfg = write_config(BASE + "log_format: json\nlog_file: dialogued.log\n")
    path = os.path.join(os.path.dirname(cfg), "dialogued.log")
    rotated = path + ".1"
    d = Daemon(config=cfg)
    peers = []
    stop = threading.Event()
    failures = []

    def clients():
        # Steady clients through the rotation (under the 20 close lines a
        # second that are logged).
        try:
            while not stop.is_set():
                peers.append("127.0.0.1:%d" % visit(d.port))
                time.sleep(0.08)
        except Exception as e:  # noqa: BLE001 - reported by the test
            failures.append(e)

    t = threading.Thread(target=clients)
    t.start()
    try:
        assert wait_until(lambda: len(peers) >= 5, within=10)
        # logrotate: rename, then tell the daemon.
        os.rename(path, rotated)
        n_renamed = len(peers)
        # Until the signal, lines keep going to the renamed file.
        assert wait_until(lambda: len(closed_peers(json_lines(rotated))) > n_renamed, within=10)
        assert not os.path.exists(path)
        os.kill(d.proc.pid, signal.SIGUSR1)
        assert wait_until(lambda: any(o["msg"] == "SIGUSR1: log file %s reopened" % path
                                      for o in json_lines(path)), within=10), read_lines(path)
        n_reopened = len(peers)
        assert wait_until(lambda: len(peers) >= n_reopened + 5, within=10)
    finally:
        stop.set()
        t.join(10)
    assert not failures, failures
    everyone = set(peers)
    assert wait_until(lambda: set(closed_peers(json_lines(rotated) + json_lines(path)))
                      >= everyone, within=10)
    d.stop()
    old, new = json_lines(rotated), json_lines(path)
    # Each client's close once, in one file or the other: nothing lost,
    # nothing twice.
    both = closed_peers(old) + closed_peers(new)
    assert sorted(p for p in both if p in everyone) == sorted(everyone), (len(both), len(peers))
    assert not [o for o in old + new if "more connection close(s) not logged" in o["msg"]]
    # The reopen line starts the new file; everything before it is in the
    # old one, the clients after it in the new one.
    assert new[0]["msg"] == "SIGUSR1: log file %s reopened" % path, new[:3]
    assert old[-1]["ts"] <= new[0]["ts"]
    assert set(peers[n_reopened + 1:]) <= set(closed_peers(new))
    assert "stopped" == new[-1]["msg"]


def test_sigusr1_without_a_log_file():
    d = Daemon(config=write_config(BASE))
    try:
        os.kill(d.proc.pid, signal.SIGUSR1)
        assert wait_until(lambda: "SIGUSR1: the log goes to stderr, no log_file to reopen"
                          in d.logtext(), within=10), d.logtext()
        visit(d.port)  # still serving
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
