"""Several listeners (issue 18, item 2): every configured listener is
served, each with its own TLS settings (or plaintext); the port file names
the first; a reload keeps them and refuses to change them."""
import os
import re
import signal
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (CERTS, Conn, Daemon, frame, pb, run_tests, wait_until,  # noqa: E402
                     write_config)

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
    client_ca: {certs}/ca.crt
    require_client_cert: true
  - address: 127.0.0.1:0
    tls: false
auth:
  anonymous: true
  client_cert:
    roles: [{match: admin, roles: [admin]}]
"""


def ports(d):
    found = re.findall(r"listening on 127\.0\.0\.1:0 port (\d+) \((TLS|plaintext)\)", d.logtext())
    return [(int(p), kind) for p, kind in found]


def ping_plain(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1))
                    .SerializeToString()) +
              frame(pb.ClientFrame(request_id=2, ping=pb.Ping(nonce=3)).SerializeToString()))
    data = b""
    kinds = []
    while len(kinds) < 2:
        chunk = s.recv(65536)
        assert chunk, "closed"
        data += chunk
        while len(data) >= 5 and len(data) >= 5 + struct.unpack(">I", data[1:5])[0]:
            n = struct.unpack(">I", data[1:5])[0]
            f = pb.ServerFrame()
            f.ParseFromString(data[5:5 + n])
            kinds.append(f.WhichOneof("msg"))
            data = data[5 + n:]
    s.close()
    return kinds


def test_every_listener_served_with_its_own_settings():
    # Today's main served only the first ("only the first listener ... is
    # served by this version; the others are ignored").
    d = Daemon(config=write_config(CONFIG))
    try:
        ps = ports(d)
        assert [k for _, k in ps] == ["TLS", "TLS", "plaintext"], d.logtext()[-2000:]
        assert ps[0][0] == d.port
        # The first: TLS, anonymous clients welcome.
        c = Conn(ps[0][0])
        assert c.hello().user_id == ""
        c.close()
        # The second wants a client certificate; with one, its identity.
        try:
            c = Conn(ps[1][0])
            c.hello()
            raise AssertionError("the second listener took a client without a certificate")
        except (ssl.SSLError, ConnectionResetError, EOFError, BrokenPipeError, OSError):
            pass
        from dlgtest import client_context
        ctx = client_context()
        ctx.load_cert_chain(os.path.join(CERTS, "client-admin.crt"),
                            os.path.join(CERTS, "client-admin.key"))
        c = Conn(ps[1][0], ctx=ctx)
        w = c.hello()
        assert w.user_id == "admin" and list(w.roles) == ["admin"], w
        c.close()
        # The first listener has no client CA: the same certificate is not
        # even asked for there.
        c = Conn(ps[0][0], ctx=ctx)
        assert c.hello().user_id == ""
        c.close()
        # The third is plaintext.
        assert ping_plain(ps[2][0]) == ["welcome", "pong"]
        assert "PLAINTEXT" in d.logtext()
        # A reload keeps them; one that changes them is refused.
        path = d.args[d.args.index("--config") + 1]
        d.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "SIGHUP: reloaded" in d.logtext(), 5)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("  - address: 127.0.0.1:0\n    tls: false\n", ""))
        d.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "keeping the running configuration" in d.logtext(), 5)
        assert "2 listener(s) where 3 run (listeners change only with a restart)" in d.logtext()
        assert ping_plain(ps[2][0]) == ["welcome", "pong"]
    finally:
        assert d.stop() == 0


def test_too_many_listeners_refused_at_load():
    text = "listen:\n" + "".join("  - {address: 127.0.0.1:%d, tls: false}\n" % (40000 + i)
                                 for i in range(17))
    from dlgtest import DAEMON
    import subprocess
    r = subprocess.run([DAEMON, "--config", write_config(text)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode != 0 and "listen: 17 listeners; at most 16 are served" in r.stderr, \
        r.stderr


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
