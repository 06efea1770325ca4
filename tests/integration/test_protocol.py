"""Protocol tests against a real dialogued over TLS on loopback: framing,
the handshake, wrong-state frames, limits. Each case names the bytes sent
and what must come back (a frame, or a disconnect)."""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import CERTS, Conn, Daemon, frame, pb, run_tests  # noqa: E402

D = None


def setup():
    global D
    D = Daemon("--max-frame", "4096", "--handshake-timeout-ms", "700")


def test_hello_welcome_ping_pong():
    c = Conn(D.port)
    w = c.hello(name="t1")
    assert w.client_id.startswith("c"), w
    assert w.server_version.startswith("dialogued "), w
    assert w.max_frame == 4096
    assert w.heartbeat_ms > 0
    rid = c.send(ping=pb.Ping(nonce=0xDEADBEEF))
    p = c.expect("pong", rid)
    assert p.nonce == 0xDEADBEEF
    c.close()


def test_frame_split_byte_by_byte():
    c = Conn(D.port)
    c.hello()
    data = frame(pb.ClientFrame(request_id=7, ping=pb.Ping(nonce=5)).SerializeToString())
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
        time.sleep(0.002)
    assert c.expect("pong", 7).nonce == 5
    c.close()


def test_several_frames_in_one_write():
    c = Conn(D.port)
    c.hello()
    data = b"".join(frame(pb.ClientFrame(request_id=i, ping=pb.Ping(nonce=i * 10))
                          .SerializeToString()) for i in range(1, 21))
    c.send_raw(data)
    for i in range(1, 21):
        assert c.expect("pong", i).nonce == i * 10
    c.close()


def test_oversize_length_rejected_and_closed():
    c = Conn(D.port)
    c.hello()
    c.send_raw(b"\x00" + (4097).to_bytes(4, "big"))
    e = c.expect_error("RESOURCE_EXHAUSTED", 0, contains="4097")
    assert "4096" in e.message, e.message
    c.expect_closed()


def test_huge_length_before_hello_closed():
    c = Conn(D.port)
    c.send_raw(b"\x00\xff\xff\xff\xff")
    c.expect_error("RESOURCE_EXHAUSTED", 0, contains="4294967295")
    c.expect_closed()


def test_compressed_flag_rejected():
    c = Conn(D.port)
    c.hello()
    c.send_raw(frame(pb.ClientFrame(request_id=1, ping=pb.Ping()).SerializeToString(), flag=1))
    c.expect_error("INVALID_ARGUMENT", 0, contains="flag")
    c.expect_closed()


def test_garbage_frame_rejected_and_closed():
    c = Conn(D.port)
    c.hello()
    c.send_raw(frame(b"\xff\xff\xff\xff\xff\xff"))
    c.expect_error("INVALID_ARGUMENT", 0, contains="malformed")
    c.expect_closed()


def test_empty_frame_is_unimplemented_not_fatal():
    c = Conn(D.port)
    c.hello()
    c.send_raw(frame(b""))
    c.expect_error("UNIMPLEMENTED", 0)
    rid = c.send(ping=pb.Ping(nonce=1))
    c.expect("pong", rid)
    c.close()


def test_trigger_before_hello_closed():
    c = Conn(D.port)
    rid = c.send(trigger=pb.Trigger(room="dashboard", event="metrics:update"))
    c.expect_error("FAILED_PRECONDITION", rid, contains="Hello")
    c.expect_closed()


def test_hello_twice_closed():
    c = Conn(D.port)
    c.hello()
    rid = c.send(hello=pb.Hello(protocol_version=1))
    c.expect_error("FAILED_PRECONDITION", rid, contains="already")
    c.expect_closed()


def test_wrong_protocol_version():
    c = Conn(D.port)
    rid = c.send(hello=pb.Hello(protocol_version=2))
    c.expect_error("FAILED_PRECONDITION", rid, contains="version 2")
    c.expect_closed()


def test_server_only_frame_from_client():
    # A ServerFrame Welcome (field 2) parses as ClientFrame field 2 = Hello
    # with garbage inside, or as unknown: it must never be accepted as more
    # than what ClientFrame defines. Send ServerFrame.pong (field 10 = Ping).
    c = Conn(D.port)
    c.hello()
    sf = pb.ServerFrame(request_id=3, event=pb.Event(room="x", event="y"))
    c.send_raw(frame(sf.SerializeToString()))
    # field 5 of ClientFrame is Subscribe: the server must answer it as such
    # (an error about room x), never crash or echo an event.
    f = c.recv()
    assert f.WhichOneof("msg") == "error", f
    c.close()


def test_plaintext_bytes_to_tls_port():
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(b"\x00\x00\x00\x00\x02\x10\x01GET / HTTP/1.0\r\n\r\n")
    s.settimeout(5)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    # Closed with at most a TLS alert record (content type 21), never data.
    assert got == b"" or got[0] == 21, got[:16]
    s.close()


def test_no_hello_closed_after_handshake_timeout():
    c = Conn(D.port)
    t0 = time.time()
    c.expect_error("DEADLINE_EXCEEDED", 0, contains="Hello")
    c.expect_closed()
    took = time.time() - t0
    assert took < 5, took


def test_no_tls_handshake_closed_after_timeout():
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.settimeout(5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()


def test_openssl_s_client_tls13_alpn():
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % D.port,
                        "-tls1_3", "-alpn", "dialogue/1", "-CAfile",
                        os.path.join(CERTS, "ca.crt"), "-verify_hostname", "localhost",
                        "-verify_return_error"],
                       input=b"", capture_output=True, timeout=10)
    out = p.stdout.decode(errors="replace")
    assert "TLSv1.3" in out, out
    assert "ALPN protocol: dialogue/1" in out, out
    assert "Verify return code: 0 (ok)" in out, out


def test_tls12_accepted_tls11_refused():
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % D.port,
                        "-tls1_2", "-CAfile", os.path.join(CERTS, "ca.crt")],
                       input=b"", capture_output=True, timeout=10)
    assert "TLSv1.2" in p.stdout.decode(errors="replace")
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % D.port,
                        "-tls1_1", "-CAfile", os.path.join(CERTS, "ca.crt")],
                       input=b"", capture_output=True, timeout=10)
    assert p.returncode != 0


def test_tls12_renegotiation_refused():
    p = subprocess.Popen(["openssl", "s_client", "-tls1_2", "-connect",
                          "127.0.0.1:%d" % D.port, "-CAfile", os.path.join(CERTS, "ca.crt")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    time.sleep(0.5)
    p.stdin.write(b"R\n")  # s_client: renegotiate
    p.stdin.flush()
    try:
        out, _ = p.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    text = out.decode(errors="replace")
    assert "RENEGOTIATING" in text, text
    assert "no renegotiation" in text, text


def test_wrong_alpn_refused():
    # (h2 is one of ours since issue 21: test_grpc.py speaks it.)
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % D.port,
                        "-alpn", "imap", "-CAfile", os.path.join(CERTS, "ca.crt")],
                       input=b"", capture_output=True, timeout=10)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert "no application protocol" in out, out
    assert "ALPN protocol: imap" not in out, out


def test_credentials_required_by_default():
    d = Daemon(anonymous=False)
    try:
        c = Conn(d.port)
        rid = c.send(hello=pb.Hello(protocol_version=1))
        c.expect_error("UNAUTHENTICATED", rid)
        c.expect_closed()
        assert "refused" in d.logtext()
    finally:
        d.stop()


def test_sigterm_clean_exit():
    d = Daemon()
    c = Conn(d.port)
    c.hello()
    assert d.stop(signal.SIGTERM) == 0
    c.expect_error("UNAVAILABLE", 0, contains="shutting down")
    c.expect_closed()
    assert "shutting down" in d.logtext()


def test_heartbeat_unanswered_closes():
    d = Daemon("--heartbeat-ms", "200")
    try:
        c = Conn(d.port)
        c.hello()
        assert c.expect("ping", 0).nonce == 1
        assert c.expect("ping", 0).nonce == 2
        c.expect_error("UNAVAILABLE", 0, contains="heartbeat")
        c.expect_closed()
    finally:
        d.stop()


def test_heartbeat_answered_stays_open():
    d = Daemon("--heartbeat-ms", "150")
    try:
        c = Conn(d.port)
        c.hello()
        for _ in range(4):
            p = c.expect("ping", 0)
            c.send(pong=pb.Pong(nonce=p.nonce))
        rid = c.send(ping=pb.Ping(nonce=77))
        f = c.recv()
        while f.WhichOneof("msg") == "ping":  # a tick may race the request
            f = c.recv()
        assert f.WhichOneof("msg") == "pong" and f.request_id == rid, f
        c.close()
    finally:
        d.stop()


def test_overlong_varint_rejected():
    c = Conn(D.port)
    c.hello()
    # request_id (field 1) as an 11-byte varint: not a valid ClientFrame.
    c.send_raw(frame(b"\x08" + b"\xff" * 10 + b"\x01"))
    c.expect_error("INVALID_ARGUMENT", 0, contains="malformed")
    c.expect_closed()


def test_truncated_frame_then_silence_before_hello_closed():
    c = Conn(D.port)
    c.send_raw(b"\x00\x00\x00\x00\x64" + b"\x0a" * 10)  # 10 of 100 bytes, then nothing
    c.expect_error("DEADLINE_EXCEEDED", 0)
    c.expect_closed()


def test_connection_limit_is_a_clear_error():
    d = Daemon("--max-connections", "2")
    try:
        a, b = Conn(d.port), Conn(d.port)
        a.hello()
        b.hello()
        c = Conn(d.port)
        c.expect_error("RESOURCE_EXHAUSTED", 0, contains="server full")
        c.expect_closed()
        a.close()
        time.sleep(0.2)
        Conn(d.port).hello()  # room again after one left
        assert "refused" in d.logtext()
    finally:
        assert d.stop() == 0


def test_no_tls_session_resumption():
    """Every connection is a full handshake: no TLS 1.2 session id or ticket
    and no TLS 1.3 ticket to resume with (identity is proven each time)."""
    import ssl
    from dlgtest import client_context
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_context()
        ctx.minimum_version = ctx.maximum_version = version
        sessions = []
        for _ in range(2):
            raw = socket.create_connection(("127.0.0.1", D.port), timeout=5)
            tls = ctx.wrap_socket(raw, server_hostname="localhost",
                                  session=sessions[-1] if sessions else None)
            tls.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(
                protocol_version=1, client_name="resume")).SerializeToString()))
            tls.recv(5)  # the Welcome's header: any TLS 1.3 ticket came before it
            assert not tls.session_reused, version
            s = tls.session
            assert s is None or not s.has_ticket, "%s: a session ticket was issued" % version
            assert s is None or not s.id, "%s: a resumable session id was issued" % version
            sessions.append(s)
            tls.close()


def test_daemon_still_healthy_at_end():
    c = Conn(D.port)
    c.hello()
    c.send(ping=pb.Ping(nonce=9))
    assert c.expect("pong").nonce == 9
    c.close()
    assert D.proc.poll() is None
    assert D.stop() == 0


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
