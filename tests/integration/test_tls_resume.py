"""TLS session resumption (issue 23 item 3): a listener with a ticket_key
issues one TLS 1.3 session ticket per handshake, encrypted with the key from
that file, so a client that reconnects (even to a restarted daemon with the
same file) resumes its session without a new certificate signature; the
connection then runs on our own record layer as usual. Without a ticket_key
nothing resumes (as before), and a ticket_key is refused with client
certificates. Clients here are Python's ssl module."""
import os
import re
import socket
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, client_context, pb, run_tests, write_config  # noqa: E402

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
TICKET
auth:
  anonymous: true
"""


def key_file(n=80, seed=b"k"):
    d = os.path.dirname(write_config("x"))
    path = os.path.join(d, "ticket.key")
    with open(path, "wb") as f:
        f.write((seed * n)[:n] if seed != b"random" else os.urandom(n))
    os.chmod(path, 0o600)
    return path


def config(ticket=None, extra=""):
    line = "    ticket_key: %s\n" % ticket if ticket else ""
    return write_config(CONFIG.replace("TICKET\n", line + extra))


def connect(port, ctx, session=None):
    """A Conn over a socket wrapped with session (None = a full handshake)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = Conn.__new__(Conn)
    c.sock = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    c.buf = b""
    c.next_id = 1
    return c


def welcome_and_ping(c):
    """Hello, Welcome and a Ping round trip: the records flow both ways after
    the tickets (our record layer numbers its records after them)."""
    c.hello()
    rid = c.send(ping=pb.Ping(nonce=7))
    c.expect("pong", rid)
    # The ticket came before the Welcome: the session can be resumed now.
    return c.sock.session


def test_resumes_with_a_ticket_key_and_across_a_restart():
    key = key_file(seed=b"random")
    path = config(key)
    ctx = client_context()
    d = Daemon(config=path)
    try:
        c = connect(d.port, ctx)
        assert not c.sock.session_reused
        sess = welcome_and_ping(c)
        c.close()
        assert sess is not None and sess.has_ticket, "no session ticket from the server"
        c = connect(d.port, ctx, sess)
        assert c.sock.session_reused, "the session was not resumed"
        sess = welcome_and_ping(c)
        c.close()
    finally:
        assert d.stop() == 0
    # A new daemon with the same key file takes the old daemon's ticket.
    d = Daemon(config=path)
    try:
        c = connect(d.port, ctx, sess)
        assert c.sock.session_reused, "not resumed after a restart with the same ticket_key"
        welcome_and_ping(c)
        c.close()
    finally:
        assert d.stop() == 0
    # Another key: the ticket is not accepted, the handshake is a full one.
    d = Daemon(config=config(key_file(seed=b"random")))
    try:
        c = connect(d.port, ctx, sess)
        assert not c.sock.session_reused, "a ticket of another key was accepted"
        welcome_and_ping(c)
        c.close()
    finally:
        assert d.stop() == 0


def test_no_resumption_without_a_ticket_key():
    d = Daemon(config=config())
    try:
        ctx = client_context()
        c = connect(d.port, ctx)
        sess = welcome_and_ping(c)
        c.close()
        assert sess is None or not sess.has_ticket, "a ticket without ticket_key"
        c = connect(d.port, ctx, sess)
        assert not c.sock.session_reused
        welcome_and_ping(c)
        c.close()
    finally:
        assert d.stop() == 0


def test_no_ticket_for_tls12():
    # A TLS 1.2 ticket holds the session's master secret and travels
    # before encryption: with the ticket key, a recorded session could be
    # read. TLS 1.2 clients get none (and nothing resumes).
    d = Daemon(config=config(key_file(seed=b"random")))
    try:
        ctx = client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c = connect(d.port, ctx)
        assert c.sock.version() == "TLSv1.2", c.sock.version()
        sess = welcome_and_ping(c)
        c.close()
        assert sess is None or not sess.has_ticket, "a TLS 1.2 ticket"
        c = connect(d.port, ctx, sess)
        assert not c.sock.session_reused, "a TLS 1.2 session was resumed"
        welcome_and_ping(c)
        c.close()
        # And TLS 1.3 on the same listener still gets its ticket.
        c = connect(d.port, client_context())
        sess = welcome_and_ping(c)
        c.close()
        assert sess is not None and sess.has_ticket
    finally:
        assert d.stop() == 0


def metric(d, name):
    """name's value on the admin listener's /metrics."""
    m = re.search(r"admin listener on \S+ port (\d+)", d.logtext())
    assert m, d.logtext()[-2000:]
    s = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    m = re.search(r"^%s (\d+)$" % name, data.decode(), re.M)
    assert m, data.decode()[-3000:]
    return int(m.group(1))


def test_resumptions_are_counted():
    d = Daemon(config=config(key_file(seed=b"random"), "admin:\n  listen: 127.0.0.1:0\n"))
    try:
        ctx = client_context()
        assert metric(d, "dialogue_tls_resumed_total") == 0
        c = connect(d.port, ctx)
        sess = welcome_and_ping(c)
        c.close()
        for _ in range(2):
            c = connect(d.port, ctx, sess)
            assert c.sock.session_reused
            sess = welcome_and_ping(c)
            c.close()
        assert metric(d, "dialogue_tls_resumed_total") == 2
    finally:
        assert d.stop() == 0


def refused_at_start(path, *want):
    try:
        d = Daemon(config=path)
    except RuntimeError as e:
        for w in want:
            assert w in str(e), str(e)[-2000:]
        return
    d.stop()
    raise AssertionError("the daemon started with %s" % (want,))


def test_ticket_key_refused_with_client_certificates():
    refused_at_start(config(key_file(), "    client_ca: {certs}/ca.crt\n"),
                     "ticket_key cannot be used with client_ca")


def test_ticket_key_of_the_wrong_size_is_refused():
    short = key_file(79)
    refused_at_start(config(short), short, "exactly 80 bytes")
    refused_at_start(config(key_file(81)), "exactly 80 bytes")
    refused_at_start(config("/nonexistent/ticket.key"), "/nonexistent/ticket.key")


if __name__ == "__main__":
    run_tests([test_resumes_with_a_ticket_key_and_across_a_restart,
               test_no_resumption_without_a_ticket_key,
               test_resumptions_are_counted,
               test_no_ticket_for_tls12,
               test_ticket_key_refused_with_client_certificates,
               test_ticket_key_of_the_wrong_size_is_refused])
