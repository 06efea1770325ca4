"""dlgtest: helpers for integration tests that run a real dialogued on
loopback and talk TLS to it with Python's ssl module and the protobuf
classes protoc generates from proto/ (an implementation nobody here wrote).

Tests are plain functions named test_*; run_tests() runs them in order, each
with its own timeout, and prints the summary line `N passed, N failed`."""

import atexit
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DLG_BUILD", os.path.join(ROOT, "build"))
DAEMON = os.environ.get("DLG_DAEMON", os.path.join(BUILD, "bin", "dialogued"))
CTL = os.path.join(BUILD, "bin", "dialoguectl")
GEN = tempfile.mkdtemp(prefix="dlg-pygen-")
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include",
                "--python_out=" + GEN,
                os.path.join(ROOT, "proto/dialogue/v1/protocol.proto"),
                os.path.join(ROOT, "proto/dialogue/v1/options.proto"),
                os.path.join(ROOT, "proto/events/dashboard.proto")], check=True)
sys.path.insert(0, GEN)
from dialogue.v1 import protocol_pb2 as pb  # noqa: E402
from events import dashboard_pb2 as dash  # noqa: E402

CERTS = tempfile.mkdtemp(prefix="dlg-certs-")
atexit.register(shutil.rmtree, GEN, True)
atexit.register(shutil.rmtree, CERTS, True)
subprocess.run([os.path.join(ROOT, "tools/devcerts.sh"), CERTS], check=True,
               stdout=subprocess.DEVNULL)


SCHEMA_DIR = os.path.join(BUILD, "share", "dialogue")


def write_config(text, **subst):
    """Writes a YAML config into a new temp folder, with {certs} and {share}
    replaced; returns its path."""
    d = tempfile.mkdtemp(prefix="dlg-cfg-")
    path = os.path.join(d, "dialogue.yaml")
    subst.setdefault("certs", CERTS)
    subst.setdefault("share", SCHEMA_DIR)
    for k, v in subst.items():
        text = text.replace("{" + k + "}", str(v))
    with open(path, "w") as f:
        f.write(text)
    return path


# The dashboard's two events with their delivery policies (metrics:update
# latest, alert:triggered stream) and small pending-output caps (2 MiB,
# 1 MiB for 2 s), anonymous: the slow-consumer suites' daemon.
DASH_POLICY_CONFIG = """{top}
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
schemas: [{share}/dashboard.pb]
auth: {anonymous: true}
limits:
  max_frame: 65536
  max_pending_bytes: 2097152
  soft_pending_bytes: 1048576
  soft_pending_seconds: 2
rooms:
  - id: dash
    events: [metrics:update, alert:triggered]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    delivery:
      - {event: metrics:update, policy: latest}
      - {event: alert:triggered, policy: stream}
"""


def dash_policy_config(top=""):
    """DASH_POLICY_CONFIG with `top` (YAML lines) before it."""
    return DASH_POLICY_CONFIG.replace("{top}", top)


# Caps high enough that no test reader is ever cut as a slow consumer.
NO_CUT_LIMITS = ("max_pending_bytes: 67108864", "soft_pending_bytes: 67108864",
                 "soft_pending_seconds: 3600")


def open_room_config(top="", limits=()):
    """An anonymous TLS daemon whose room `r` takes any event from anyone
    and subscribes every member: `top` (YAML lines) first, then `limits`
    (lines under limits:)."""
    text = "\n" + (top + "\n" if top else "") + """listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
"""
    if limits:
        text += "limits:\n" + "".join("  %s\n" % ln for ln in limits)
    return text + """rooms:
  - id: r
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
"""


def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(secret, claims, alg="HS256", header=None, sign=True):
    """An HS256 JWT made with Python's hmac: an implementation independent of
    the daemon's. header overrides the JOSE header; sign=False leaves the
    signature empty."""
    import hashlib
    import hmac
    import json
    h = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = (b64url(json.dumps(h).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    sig = ""
    if sign:
        sig = b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return signing_input + "." + sig


def status_name(code):
    return pb.Status.Name(code)


class Daemon:
    """A dialogued on 127.0.0.1 and an ephemeral port."""

    def __init__(self, *extra, config=None, anonymous=True, env=None, prefix=()):
        self.dir = tempfile.mkdtemp(prefix="dlg-d-")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "dialogued.log")
        args = [DAEMON, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                "--log-level", "debug"]
        if config:
            args += ["--config", config]
        else:
            args += ["--cert", os.path.join(CERTS, "server.crt"),
                     "--key", os.path.join(CERTS, "server.key")]
            if anonymous:
                args.append("--allow-anonymous")
        args += list(extra)
        args = list(prefix) + args  # e.g. ["prlimit", "--nofile=64"] (execs, same pid)
        self.args = args
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        # A failing test must not leave a daemon behind.
        atexit.register(lambda p=self.proc: p.poll() is None and p.kill())
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    txt = f.read()
                if txt.endswith("\n"):
                    self.port = int(txt)
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("dialogued exited %d: %s" % (self.proc.returncode,
                                                                 self.logtext()))
            time.sleep(0.02)
        raise RuntimeError("dialogued did not start: " + self.logtext())

    def logtext(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("dialogued did not stop within %ss" % timeout)
        self.log.close()
        return self.proc.returncode


def client_context(alpn=True):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(["dialogue/1"])
    return ctx


def frame(msg_bytes, flag=0):
    return struct.pack(">BI", flag, len(msg_bytes)) + msg_bytes


class Conn:
    """A TLS connection speaking frames, with a receive timeout."""

    def __init__(self, port, timeout=5.0, handshake=True, ctx=None):
        """ctx: the TLS context to use (default: client_context())."""
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = (ctx or client_context()).wrap_socket(raw, server_hostname="localhost",
                                                          do_handshake_on_connect=handshake)
        self.buf = b""
        self.next_id = 1

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, **kw):
        """send(ping=pb.Ping(nonce=1)) -> request id used."""
        rid = kw.pop("request_id", None)
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        f = pb.ClientFrame(request_id=rid, **kw)
        self.send_raw(frame(f.SerializeToString()))
        return rid

    def _read_more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def recv(self):
        while len(self.buf) < 5:
            self._read_more()
        flag, n = struct.unpack(">BI", self.buf[:5])
        assert flag == 0, "server sent flag %d" % flag
        while len(self.buf) < 5 + n:
            self._read_more()
        body, self.buf = self.buf[5:5 + n], self.buf[5 + n:]
        f = pb.ServerFrame()
        f.ParseFromString(body)
        return f

    def expect(self, kind, rid=None):
        f = self.recv()
        got = f.WhichOneof("msg")
        # Rooms with sync_history_on_join send a HistoryBatch after Joined or
        # Welcome; tests that do not look for it pass over it.
        while got == "history_batch" and kind != "history_batch":
            f = self.recv()
            got = f.WhichOneof("msg")
        if got != kind:
            raise AssertionError("expected %s, got %s: %s" % (kind, got, f))
        if rid is not None and f.request_id != rid:
            raise AssertionError("expected request_id %d, got %d" % (rid, f.request_id))
        return getattr(f, kind)

    def expect_error(self, code, rid=None, contains=None):
        e = self.expect("error", rid)
        if e.code != getattr(pb, code):
            raise AssertionError("expected %s, got %s: %s" % (code, status_name(e.code), e.message))
        if contains and contains not in e.message:
            raise AssertionError("error %r does not contain %r" % (e.message, contains))
        return e

    def expect_closed(self, within=5.0):
        """The server must close the connection (EOF or reset) within `within` s."""
        self.sock.settimeout(within)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError, OSError) as e:
            if isinstance(e, socket.timeout):
                raise AssertionError("connection still open after %ss" % within)
            return

    def trigger(self, room, event, data):
        """Sends a Trigger; returns (Ack, [events that arrived before it]).
        A publisher subscribed to its own event gets that Event before the
        Ack (the fan-out queues it first)."""
        rid = self.send(trigger=pb.Trigger(room=room, event=event, data=data))
        before = []
        while True:
            f = self.recv()
            kind = f.WhichOneof("msg")
            if kind == "event":
                before.append(f.event)
                continue
            if kind == "error":
                raise AssertionError("trigger refused: %s: %s" % (
                    status_name(f.error.code), f.error.message))
            assert kind == "ack" and f.request_id == rid, f
            return f.ack, before

    def barrier(self):
        """Round-trips a Ping; returns every frame that arrived before the
        Pong (so a test can assert that nothing else was delivered)."""
        rid = self.send(ping=pb.Ping(nonce=424242))
        seen = []
        while True:
            f = self.recv()
            if f.WhichOneof("msg") == "pong" and f.request_id == rid:
                return seen
            if f.WhichOneof("msg") != "history_batch":
                seen.append(f)

    def hello(self, token="", name="test"):
        rid = self.send(hello=pb.Hello(protocol_version=1, token=token, client_name=name))
        return self.expect("welcome", rid)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- rooms: members, publishers, publishing with Acks ----

def joined_room(port, room, name, rcvbuf=None, timeout=10, ctx=None):
    """A Conn (over ctx, if given) that said Hello as `name` and joined
    room. rcvbuf, if set, is its socket's receive buffer (set before any
    data comes, so a reader that does not read fills its socket soon)."""
    c = Conn(port, timeout=timeout, ctx=ctx)
    if rcvbuf:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.hello(name=name)
    rid = c.send(join=pb.Join(room=room))
    c.expect("joined", rid)
    return c


def publisher(port, room):
    """A member of room subscribed to nothing: it only triggers."""
    p = joined_room(port, room, "pub")
    rid = p.send(unsubscribe=pb.Unsubscribe(room=room, all=True))
    p.expect("joined", rid)
    return p


def publish_acked(p, frames, chunk=500):
    """Sends frames (encoded triggers) in chunks and reads their Acks, so
    the publisher itself is never a slow consumer. chunk may be a list of
    chunk sizes, used in turn."""
    sizes = chunk if isinstance(chunk, list) else [chunk]
    acks = i = k = 0
    while i < len(frames):
        n = sizes[k % len(sizes)]
        k += 1
        p.send_raw(b"".join(frames[i:i + n]))
        i = min(i + n, len(frames))
        while acks < i:
            f = p.recv()
            assert f.WhichOneof("msg") == "ack", f
            acks += 1


# ---- the kernel's view of a loopback TCP connection (/proc/net/tcp) ----

TCP_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
              "07": "CLOSE", "08": "CLOSE_WAIT", "0B": "CLOSING"}


def _tcp_row(local_port, remote_port):
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == local_port and
                    int(fields[2].split(":")[1], 16) == remote_port):
                return fields
    return None


def tcp_state(local_port, remote_port):
    """State of the IPv4 socket local_port -> remote_port, or "gone"."""
    fields = _tcp_row(local_port, remote_port)
    return "gone" if fields is None else TCP_STATES.get(fields[3], fields[3])


def tcp_queue(local_port, remote_port):
    """(tx_queue, rx_queue) bytes of the IPv4 socket local_port ->
    remote_port; (0, 0) if it is gone."""
    fields = _tcp_row(local_port, remote_port)
    if fields is None:
        return 0, 0
    tx, rx = fields[4].split(":")
    return int(tx, 16), int(rx, 16)


def kernel_held(port, c):
    """Bytes on their way from the daemon listening on `port` to Conn c that
    the kernel holds: the daemon's send queue plus c's receive queue."""
    local = c.sock.getsockname()[1]
    return tcp_queue(port, local)[0] + tcp_queue(local, port)[1]


def wait_until(cond, within=10, step=0.05):
    """Polls cond() until it is true or `within` seconds pass; returns its
    last value."""
    deadline = time.time() + within
    while not cond() and time.time() < deadline:
        time.sleep(step)
    return cond()


def daemon_closed(port, c, within=10):
    """True once the daemon listening on port has closed its side of Conn
    c's socket (asked of the kernel: c may have megabytes unread)."""
    local = c.sock.getsockname()[1]
    return wait_until(lambda: tcp_state(port, local) != "ESTABLISHED", within)


def back_up(port, reader, send, chunk_bytes, beyond=256 * 1024, limit=64 << 20):
    """Makes the daemon on `port` hold output for `reader`, a Conn that does
    not read: calls send() (which publishes about chunk_bytes of events to
    it, plaintext) until what was sent passes what the kernel holds for
    reader by `beyond` bytes, so the daemon holds at least that much behind
    a full socket. Gives up (AssertionError) after `limit` bytes. Returns
    the bytes sent."""
    sent = 0
    while True:
        send()
        sent += chunk_bytes
        time.sleep(0.05)  # the daemon's writes reach the kernel
        held = kernel_held(port, reader)
        if sent - held >= beyond:
            return sent
        if sent >= limit:
            raise AssertionError("the reader's socket never filled: %d sent, %d in the kernel"
                                 % (sent, held))


def run_tests(tests, per_test_timeout=60):
    """Runs each test function with an alarm-based timeout; prints a line per
    test and the summary; exits 1 on any failure."""
    passed = failed = 0

    def on_alarm(signum, frm):
        raise TimeoutError("test timed out after %ss" % per_test_timeout)

    signal.signal(signal.SIGALRM, on_alarm)
    for t in tests:
        signal.alarm(per_test_timeout)
        try:
            t()
            signal.alarm(0)
            passed += 1
            print("PASS %s" % t.__name__, flush=True)
        except BaseException:  # noqa: B902 - report everything, keep going
            signal.alarm(0)
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
