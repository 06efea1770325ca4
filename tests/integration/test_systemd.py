"""systemd (issue 22): the unit passes `systemd-analyze verify` and has the
hardening asked for; dialogued tells the service manager READY=1 only once
its port takes connections, RELOADING=1 then READY=1 around a SIGHUP,
WATCHDOG=1 while WATCHDOG_USEC asks for it, STOPPING=1 on SIGTERM. The
manager is played by a unix datagram socket the test opens (NOTIFY_SOCKET)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, CERTS, DAEMON, ROOT, run_tests, write_config  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dlg-systemd-")
UNIT_IN = os.path.join(ROOT, "dist", "dialogued.service.in")


def unit_text():
    with open(UNIT_IN) as f:
        return (f.read().replace("@SBINDIR@", os.path.dirname(os.path.abspath(DAEMON)))
                .replace("@SYSCONFDIR@", "/etc"))


def test_unit_verifies():
    if shutil.which("systemd-analyze") is None:
        raise AssertionError("systemd-analyze is missing (apt-get install systemd)")
    path = os.path.join(TMP, "dialogued.service")
    with open(path, "w") as f:
        f.write(unit_text())
    # Documentation= names man pages: verify runs man(1) on them, found
    # through MANPATH in a tree laid out as they are installed.
    mantree = os.path.join(TMP, "man")
    for page in os.listdir(os.path.join(ROOT, "man")):
        d = os.path.join(mantree, "man" + page.rsplit(".", 1)[1])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "man", page), d)
    env = dict(os.environ, MANPATH=mantree)
    p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p
    # Without the pages it would have said so.
    p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                       timeout=60, env=dict(env, MANPATH=os.path.join(TMP, "none")))
    assert p.returncode != 0 and "man dialogued(8)" in p.stderr, p
    settings = {}
    for line in unit_text().splitlines():
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            settings.setdefault(k, []).append(v)
    want = {
        "Type": ["notify"], "ExecReload": ["/bin/kill -HUP $MAINPID"], "WatchdogSec": ["30s"],
        "NoNewPrivileges": ["yes"], "ProtectSystem": ["strict"], "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"], "StateDirectory": ["dialogue"], "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""], "User": ["dialogue"],
    }
    for k, v in want.items():
        assert settings.get(k) == v, (k, settings.get(k))
    assert settings["SystemCallFilter"][0] == "@system-service", settings["SystemCallFilter"]
    assert settings["ExecStart"] == [os.path.abspath(DAEMON) +
                                     " --config /etc/dialogue/dialogue.yaml"], settings
    assert settings["ExecStartPre"][0].endswith(
        "dialogued --check-config --config /etc/dialogue/dialogue.yaml")


class Manager:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self):
        self.path = os.path.join(tempfile.mkdtemp(prefix="dlg-notify-", dir=TMP), "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got = []

    def next(self, within=10.0):
        """The next message as a dict of its KEY=value lines."""
        self.sock.settimeout(within)
        data = self.sock.recv(4096).decode()
        msg = dict(line.split("=", 1) for line in data.split("\n") if line)
        self.got.append(msg)
        return msg

    def wait_for(self, key, within=10.0):
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no %s within %ss: %s" % (key, within, self.got)
            msg = self.next(left)
            if key in msg:
                return msg

    def close(self):
        self.sock.close()


def start(manager, *extra, env_extra=None, config=None):
    port_file = os.path.join(tempfile.mkdtemp(dir=TMP), "port")
    args = [DAEMON, "--listen", "127.0.0.1:0", "--port-file", port_file,
            "--cert", os.path.join(CERTS, "server.crt"),
            "--key", os.path.join(CERTS, "server.key"), "--allow-anonymous"] + list(extra)
    if config:
        args += ["--config", config]
    env = dict(os.environ, NOTIFY_SOCKET=manager.path)
    for k in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    env.update(env_extra or {})
    log = open(os.path.join(os.path.dirname(port_file), "log"), "w")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, port_file


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    return proc.returncode


def test_ready_only_once_the_port_takes_connections():
    m = Manager()
    proc, port_file = start(m)
    try:
        msg = m.wait_for("READY")
        assert msg["READY"] == "1", msg
        # At READY the port is bound and listening: a connect at once works.
        with open(port_file) as f:
            port = int(f.read())
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert msg["STATUS"] == "serving on 127.0.0.1:0 port %d" % port, msg
        # Nothing else came before READY (no STOPPING, no watchdog unasked).
        assert m.got == [msg], m.got
        m.sock.settimeout(1.0)
        try:
            extra = m.sock.recv(4096)
            raise AssertionError("unasked message: %r" % extra)
        except socket.timeout:
            pass
        assert stop(proc) == 0
        assert m.wait_for("STOPPING")["STOPPING"] == "1"
    finally:
        stop(proc)
        m.close()


def assert_no_ready(m):
    """Nothing said READY=1 to m (within half a second)."""
    m.sock.settimeout(0.5)
    try:
        data = m.sock.recv(4096)
        assert b"READY=1" not in data, data
    except socket.timeout:
        pass


def test_no_ready_when_the_start_fails():
    m = Manager()
    # The port is taken: the daemon exits 1 without ever saying READY.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    proc, _ = start(m, "--listen", "127.0.0.1:%d" % s.getsockname()[1])
    try:
        assert proc.wait(20) == 1
        assert_no_ready(m)
    finally:
        s.close()
        stop(proc)
        m.close()


def test_no_ready_when_the_port_file_cannot_be_written():
    m = Manager()
    # The last start step (after the signal handlers, so that a SIGTERM at
    # the file's appearance stops the daemon cleanly) fails: the daemon
    # names the file and exits 1, with no READY.
    bad = os.path.join(TMP, "no-such-dir-%d" % os.getpid(), "port")
    proc, port_file = start(m, "--port-file", bad)
    try:
        assert proc.wait(20) == 1
        with open(os.path.join(os.path.dirname(port_file), "log")) as f:
            log = f.read()
        assert "cannot write port file %s" % bad in log, log[-2000:]
        assert_no_ready(m)
    finally:
        stop(proc)
        m.close()


def test_watchdog_pings_while_asked():
    m = Manager()
    proc, _ = start(m, env_extra={"WATCHDOG_USEC": "400000"})  # 0.4 s: a ping every 0.2 s
    try:
        m.wait_for("READY")
        t0 = time.monotonic()
        n = 0
        while n < 5:
            msg = m.wait_for("WATCHDOG", within=5)
            assert msg["WATCHDOG"] == "1", msg
            n += 1
        took = time.monotonic() - t0
        assert took < 4, "5 pings took %.2fs" % took
    finally:
        stop(proc)
        m.close()
    # Another process's watchdog (WATCHDOG_PID not ours): no pings.
    m = Manager()
    proc, _ = start(m, env_extra={"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"})
    try:
        m.wait_for("READY")
        m.sock.settimeout(1.0)
        try:
            data = m.sock.recv(4096)
            raise AssertionError("unasked message: %r" % data)
        except socket.timeout:
            pass
    finally:
        stop(proc)
        m.close()


def test_reloading_then_ready_around_sighup():
    cfg = write_config("listen:\n  - address: 127.0.0.1:0\n"
                       "    cert: {certs}/server.crt\n    key: {certs}/server.key\n"
                       "auth: {anonymous: true}\nlog_level: info\n")
    m = Manager()
    proc, _ = start(m, config=cfg)
    try:
        m.wait_for("READY")
        for _ in range(2):
            proc.send_signal(signal.SIGHUP)
            msg = m.next()
            assert msg.get("RELOADING") == "1", m.got
            usec = int(msg["MONOTONIC_USEC"])
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            assert 0 <= now - usec < 10_000_000, (now, usec)
            assert m.next() == {"READY": "1"}, m.got
        assert stop(proc) == 0
        assert m.wait_for("STOPPING")["STOPPING"] == "1"
    finally:
        stop(proc)
        m.close()


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
