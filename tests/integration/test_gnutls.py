"""Differential interop against a second, independent TLS stack (issue 16,
item 12): GnuTLS's gnutls-cli (Debian gnutls-bin) connects with ALPN
dialogue/1 and carries the binary frames on its stdin and stdout, on both
of the daemon's record layers (tls_own_records true and false), in TLS 1.3
with each AEAD suite and in TLS 1.2:
- Hello, Join, Triggers of 1 byte to 70,000 bytes (several records each
  way), Ping and Pong;
- a KeyUpdate that asks for one back (gnutls-cli's inline command
  ^rekey^), after which frames still go both ways and GnuTLS reports the
  daemon's KeyUpdate; a KeyUpdate of GnuTLS's own (^rekey1^);
- close_notify: GnuTLS sends it when its stdin ends and must get the
  daemon's own back (GnuTLS's debug log says which alert it received), and
  the daemon logs the peer's.
gnutls-cli's informational lines go to --logfile (written out at its exit)
and its debug lines to stderr (unbuffered), so stdout carries only what the
daemon sent."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (CERTS, Daemon, frame, open_room_config, pb, run_tests,  # noqa: E402
                     wait_until, write_config)

GNUTLS_CLI = shutil.which("gnutls-cli")
ENV = {k: v for k, v in os.environ.items() if k != "DIALOGUE_TLS_OWN_RECORDS"}
LAYERS = (("own", "tls_own_records: true"), ("openssl", "tls_own_records: false"))
# GnuTLS priority strings: each TLS 1.3 AEAD suite, and TLS 1.2.
TLS13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+%s"
VARIANTS = (("TLS1.3", "AES-128-GCM", TLS13 % "AES-128-GCM"),
            ("TLS1.3", "AES-256-GCM", TLS13 % "AES-256-GCM"),
            ("TLS1.3", "CHACHA20-POLY1305", TLS13 % "CHACHA20-POLY1305"),
            ("TLS1.2", "AES-256-GCM", "NORMAL:-VERS-ALL:+VERS-TLS1.2"))


def client_frame(**kw):
    return frame(pb.ClientFrame(**kw).SerializeToString())


def payload(n, seed):
    # Bytes that never make "\n^" (gnutls-cli's inline commands start a
    # line with ^), so that the frames reach the daemon as they are.
    return bytes(0x20 + (i * 7 + seed) % 0x3d for i in range(n))


class GnutlsCli:
    """gnutls-cli as a client: frames written to its stdin, read from its
    stdout."""

    def __init__(self, port, priority):
        self.dir = tempfile.mkdtemp(prefix="dlg-gnutls-")
        self.info = os.path.join(self.dir, "info.log")
        self.debug = os.path.join(self.dir, "debug.log")
        self.err = open(self.debug, "w")
        self.proc = subprocess.Popen(
            [GNUTLS_CLI, "127.0.0.1", "-p", str(port), "--x509cafile",
             os.path.join(CERTS, "ca.crt"), "--sni-hostname", "localhost",
             "--alpn", "dialogue/1", "--priority", priority, "--inline-commands",
             "--logfile", self.info, "-d", "5"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, timeout=10):
        """The next ServerFrame the daemon sent."""
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 5:
                n = int.from_bytes(self.buf[1:5], "big")
                if len(self.buf) >= 5 + n:
                    body, self.buf = self.buf[5:5 + n], self.buf[5 + n:]
                    f = pb.ServerFrame()
                    f.ParseFromString(body)
                    return f
            if time.time() > deadline:
                raise AssertionError("no frame from gnutls-cli within %ss; its log:\n%s"
                                     % (timeout, self.logs()[-3000:]))
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                raise AssertionError("gnutls-cli's stdout ended; its log:\n" + self.logs()[-3000:])
            self.buf += chunk

    def expect(self, kind, rid=None):
        f = self.recv()
        assert f.WhichOneof("msg") == kind, "expected %s, got %s" % (kind, f)
        if rid is not None:
            assert f.request_id == rid, f
        return getattr(f, kind)

    def logs(self):
        self.err.flush()
        text = ""
        for p in (self.info, self.debug):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    text += f.read()
        return text

    def close_stdin(self, timeout=10):
        """Ends stdin (gnutls-cli sends close_notify) and waits for it to
        exit; returns its exit status."""
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("gnutls-cli did not exit after close_notify:\n"
                                 + self.logs()[-3000:])

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        shutil.rmtree(self.dir, True)


def session(d, layer, version, cipher, priority):
    g = GnutlsCli(d.port, priority)
    try:
        g.write(client_frame(request_id=1, hello=pb.Hello(protocol_version=1,
                                                          client_name="gnutls")))
        w = g.expect("welcome", 1)
        g.write(client_frame(request_id=2, join=pb.Join(room="r")))
        g.expect("joined", 2)
        # Events to itself (the room subscribes every member): 1 byte to
        # several records, each checked byte for byte.
        for i, n in enumerate((1, 300, 16383, 16385, 70000)):
            data = payload(n, i)
            rid = 10 + i
            g.write(client_frame(request_id=rid, trigger=pb.Trigger(room="r", event="n:x",
                                                                  data=data)))
            ev = g.expect("event")
            assert ev.data == data and getattr(ev, "from") == w.client_id, (n, len(ev.data))
            g.expect("ack", rid)
        # Pings whose frames end in "\n" (nonce 10), so that an inline
        # command after one starts a line.
        def ping(rid):
            f = client_frame(request_id=rid, ping=pb.Ping(nonce=10))
            assert f.endswith(b"\n")
            return f
        g.write(ping(20))
        assert g.expect("pong", 20).nonce == 10
        if version == "TLS1.3":
            # A KeyUpdate asking for one back: GnuTLS must see the daemon's
            # (not asking for another), and frames still go both ways.
            g.write(b"^rekey^\n")
            assert wait_until(lambda: "sending key update (1)" in g.logs(), 5), g.logs()[-3000:]
            g.write(ping(21))
            assert g.expect("pong", 21).nonce == 10
            assert wait_until(lambda: "received TLS 1.3 key update (0)" in g.logs(), 5), \
                "%s: no KeyUpdate from the daemon:\n%s" % (layer, g.logs()[-3000:])
            g.write(b"^rekey1^\n")  # GnuTLS's own, not asking for one back
            assert wait_until(lambda: "sending key update (0)" in g.logs(), 5), g.logs()[-3000:]
            g.write(ping(22))
            assert g.expect("pong", 22).nonce == 10
            assert g.logs().count("received TLS 1.3 key update (0)") == 1, g.logs()[-3000:]
        # close_notify both ways.
        rc = g.close_stdin()
        logs = g.logs()
        assert rc == 0, "gnutls-cli exited %d:\n%s" % (rc, logs[-3000:])
        assert "Alert[1|0] - Close notify - was received" in logs, \
            "%s %s: no close_notify from the daemon:\n%s" % (layer, version, logs[-3000:])
        # gnutls-cli's informational log is written out at exit.
        assert "Peer has closed the GnuTLS connection" in logs, logs[-3000:]
        assert "Application protocol: dialogue/1" in logs, logs[-3000:]
        assert "(%s-" % version in logs and "(%s)" % cipher in logs, logs[-3000:]
        if version == "TLS1.3":
            assert logs.count("Rekey was completed") == 2, logs[-3000:]
    finally:
        g.cleanup()


def test_gnutls_cli_both_record_layers():
    assert GNUTLS_CLI, "gnutls-cli not found: install gnutls-bin (./dev setup)"
    for layer, top in LAYERS:
        d = Daemon(config=write_config(open_room_config(top, ("max_frame: 200000",))),
                   env=ENV)
        try:
            for version, cipher, priority in VARIANTS:
                session(d, layer, version, cipher, priority)
            log = d.logtext()
            assert log.count("closing: peer sent close_notify") == len(VARIANTS), log[-3000:]
            assert "unexpected TLS failure" not in log
        finally:
            assert d.stop() == 0


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 120)
