"""HTTP/1.1 and WebSocket on the daemon's listeners (docs/websocket.md):
the upgrade and its refusals, dialogue's frames as binary messages, the
RFC 6455 rules a client must follow (masking, no text, control frames,
fragments, close), the limits of dialogue/1 applied to WebSocket, the web
page's files, and origins."""
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (CERTS, Conn, Daemon, back_up, daemon_closed, joined_room,  # noqa
                     open_room_config, pb, run_tests, wait_until, write_config)
from wsclient import (Closed, WsConn, connect, read_response, request, upgrade_headers,  # noqa
                      ws_frame)

WEB = tempfile.mkdtemp(prefix="dlg-web-")
os.makedirs(os.path.join(WEB, "assets"))
with open(os.path.join(WEB, "index.html"), "w") as f:
    f.write("<!doctype html><title>dash</title><script src=app.js></script>")
with open(os.path.join(WEB, "app.js"), "w") as f:
    f.write("console.log('dash');\n")
with open(os.path.join(WEB, "assets", "style.css"), "w") as f:
    f.write("body{margin:0}\n")
with open(os.path.join(WEB, ".secret"), "w") as f:
    f.write("never served\n")

D = Daemon("--web-root", WEB)


def test_page_files_with_types_and_headers():
    s = connect(D.port)
    st, h, body, _ = request(s, "/")
    assert st == 200 and body.startswith(b"<!doctype html>"), (st, body)
    assert h["content-type"] == "text/html; charset=utf-8", h
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    assert h["x-content-type-options"] == "nosniff" and h["cache-control"] == "no-cache", h
    # Keep-alive: the same connection serves the next requests.
    st, h, body, _ = request(s, "/app.js")
    assert st == 200 and h["content-type"] == "text/javascript; charset=utf-8", h
    assert body == b"console.log('dash');\n"
    st, h, body, _ = request(s, "/assets/style.css?v=3")
    assert st == 200 and h["content-type"] == "text/css; charset=utf-8" and body, h
    s.close()


def test_etag_and_head():
    s = connect(D.port)
    st, h, body, _ = request(s, "/app.js")
    etag = h["etag"]
    st, h2, body2, _ = request(s, "/app.js", headers={"If-None-Match": etag})
    assert st == 304 and body2 == b"" and h2["etag"] == etag, (st, h2)
    st, h3, body3, _ = request(s, "/app.js", method="HEAD")
    assert st == 200 and h3["content-length"] == str(len(body)) and body3 == b"", h3
    s.close()


def test_unknown_paths_dot_files_and_traversal_are_404():
    for path in ["/nope", "/.secret", "/../etc/passwd", "/assets/../../etc/passwd",
                 "/%2e%2e/etc/passwd", "/index.html/"]:
        s = connect(D.port)
        st, h, body, _ = request(s, path)
        assert st == 404, (path, st, body)
        assert b"no such page" in body, body
        s.close()


def test_methods_other_than_get_are_refused():
    s = connect(D.port)
    st, h, body, _ = request(s, "/", method="DELETE")
    assert st == 405 and "GET" in h["allow"], (st, h)
    s.close()
    s = connect(D.port)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    st, h, body, _ = read_response(s)
    assert st == 413 and b"body" in body, (st, body)
    s.close()


def test_malformed_and_oversized_requests():
    cases = [
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, b"malformed HTTP request"),
        (b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n", 431, b"8192"),
        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 414, b"1024"),
        (b"GET / HTTP/1.0\r\n\r\n", 505, b"HTTP/1.1"),
        (b"GET / HTTP/1.1\r\nOrigin: " + b"o" * 600 + b"\r\n\r\n", 431, b"512"),
    ]
    for req, status, why in cases:
        s = connect(D.port)
        s.sendall(req)
        st, h, body, _ = read_response(s)
        assert st == status and why in body, (req[:40], st, body)
        assert h["connection"] == "close", h
        # Closed after the refusal.
        s.settimeout(5)
        assert s.recv(100) == b""
        s.close()


def test_slow_headers_are_cut_at_the_handshake_deadline():
    d = Daemon("--web-root", WEB, "--handshake-timeout-ms", "500")
    try:
        s = connect(d.port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        t0 = time.time()
        s.settimeout(5)
        assert s.recv(100) == b""
        assert time.time() - t0 < 3
        s.close()
    finally:
        assert d.stop() == 0


def test_upgrade_then_native_protocol():
    w = WsConn(D.port)
    welcome = w.hello(name="ws")
    assert welcome.client_id, welcome
    rid = w.send(ping=pb.Ping(nonce=7))
    assert w.expect("pong", rid).nonce == 7
    rid = w.send(list_rooms=pb.ListRooms())
    w.expect("rooms", rid)
    w.close()


def test_events_reach_websocket_and_native_subscribers_alike():
    d = Daemon(config=write_config(open_room_config()))
    try:
        w = WsConn(d.port)
        w.hello(name="ws")
        rid = w.send(join=pb.Join(room="r"))
        w.expect("joined", rid)
        n = joined_room(d.port, "r", "native")
        p = joined_room(d.port, "r", "pub")
        for i in range(50):
            p.trigger("r", "e", b"x%d" % i)
        for c in (w, n):
            got = []
            while len(got) < 50:
                f = c.recv()
                if f.WhichOneof("msg") == "event" and f.event.event == "e":
                    got.append(f.event.data)
            assert got == [b"x%d" % i for i in range(50)], got[:5]
        # A trigger from the WebSocket side, with its Ack.
        rid = w.send(trigger=pb.Trigger(room="r", event="e", data=b"from-ws"))
        while True:
            f = w.recv()
            if f.WhichOneof("msg") == "ack":
                assert f.request_id == rid
                break
        while True:
            f = n.recv()
            if f.WhichOneof("msg") == "event" and f.event.data == b"from-ws":
                break
        for c in (w, n, p):
            c.close()
    finally:
        assert d.stop() == 0


def test_upgrade_refusals():
    def refused(headers, status, why, method="GET", path="/v1/ws"):
        s = connect(D.port)
        st, h, body, _ = request(s, path, method=method, headers=headers)
        assert st == status and why in body, (headers, st, body)
        s.close()
        return h
    good, _ = upgrade_headers()
    h = dict(good, **{"Sec-WebSocket-Protocol": "chat, superchat"})
    refused(h, 400, b"dialogue.v1")
    h = dict(good)
    del h["Sec-WebSocket-Protocol"]
    refused(h, 400, b"dialogue.v1")
    h = refused(dict(good, **{"Sec-WebSocket-Version": "8"}), 426, b"13")
    assert h["sec-websocket-version"] == "13", h
    refused(dict(good, **{"Sec-WebSocket-Key": "short"}), 400, b"Sec-WebSocket-Key")
    refused({}, 426, b"Upgrade: websocket")
    refused(good, 405, b"GET", method="PUT")
    refused(good, 404, b"/v1/ws", path="/other")


def test_origins():
    # The page's own origin, and clients that send none (no browser), pass.
    WsConn(D.port, origin="https://localhost").close()
    WsConn(D.port).close()
    # Any other origin is refused with 403 and logged.
    for origin in ("https://evil.example", "http://localhost", "null"):
        s = connect(D.port)
        hdrs, _ = upgrade_headers(origin=origin)
        st, h, body, _ = request(s, "/v1/ws", headers=hdrs)
        assert st == 403 and b"allowed_origins" in body, (origin, st, body)
        s.close()
    assert "origin https://evil.example is not allowed" in D.logtext()
    # allowed_origins lets a named one in.
    d = Daemon(config=write_config(open_room_config(
        top="http:\n  allowed_origins: [\"https://dash.example.com\"]")))
    try:
        WsConn(d.port, origin="https://dash.example.com").close()
        s = connect(d.port)
        hdrs, _ = upgrade_headers(origin="https://evil.example")
        assert request(s, "/v1/ws", headers=hdrs)[0] == 403
        s.close()
    finally:
        assert d.stop() == 0


def test_bad_allowed_origin_in_config():
    path = write_config(open_room_config(top="http:\n  allowed_origins: [\"dash.example.com\"]"))
    d_args = ["--config", path, "--listen", "127.0.0.1:0"]
    import subprocess
    from dlgtest import DAEMON
    p = subprocess.run([DAEMON] + d_args, capture_output=True, timeout=10)
    err = (p.stdout + p.stderr).decode()
    assert p.returncode != 0 and "http.allowed_origins[0]" in err and "scheme://" in err, err


def test_text_frames_are_refused_with_1003():
    w = WsConn(D.port)
    w.send_msg(b"hello", opcode=1)
    code, reason, _ = w.expect_close()
    assert code == 1003 and "binary" in reason, (code, reason)
    w.close()


def test_unmasked_frames_are_a_protocol_error():
    w = WsConn(D.port)
    w.sock.sendall(ws_frame(2, pb.ClientFrame(request_id=1, ping=pb.Ping()).SerializeToString(),
                            mask=False))
    code, reason, before = w.expect_close()
    assert code == 1002, (code, reason)
    assert not before, before  # the frame was not handled
    assert "WebSocket protocol violation" in D.logtext()
    w.close()


def test_fragments_and_interleaved_ping():
    w = WsConn(D.port)
    w.hello()
    body = pb.ClientFrame(request_id=9, ping=pb.Ping(nonce=99)).SerializeToString()
    a, b, c = body[:2], body[2:4], body[4:]
    w.sock.sendall(ws_frame(2, a, fin=False) + ws_frame(9, b"are you there") +
                   ws_frame(0, b, fin=False) + ws_frame(0, c, fin=True))
    assert w.expect("pong", 9).nonce == 99
    assert (9, b"are you there") not in w.control  # it was a ping we sent
    assert (10, b"are you there") in w.control, w.control
    w.close()


def test_oversized_message_is_refused_before_buffering():
    # Before Welcome: the limit is the budget of input before Welcome
    # (16384); which check sees it first depends on how the bytes arrive.
    w = WsConn(D.port)
    w.sock.sendall(ws_frame(2, b"\0" * 20000))
    code, reason, before = w.expect_close()
    assert code == 4000 + pb.RESOURCE_EXHAUSTED, (code, reason)
    assert "16384" in reason, reason
    w.close()
    # After Welcome: max_frame, refused on the frame's header (the message
    # announces 8000 bytes; 100 are sent), and fragments add up.
    d = Daemon("--max-frame", "4096")
    try:
        for frames in ([ws_frame(2, b"\0" * 8000)[:110]],
                       [ws_frame(2, b"\0" * 3000, fin=False), ws_frame(0, b"\0" * 3000)]):
            w = WsConn(d.port)
            w.hello()
            for fr in frames:
                w.sock.sendall(fr)
            code, reason, before = w.expect_close()
            assert code == 4000 + pb.RESOURCE_EXHAUSTED, (code, reason)
            assert "above the limit 4096" in reason, reason
            errs = [f.error for f in before if f.WhichOneof("msg") == "error"]
            assert errs and errs[0].code == pb.RESOURCE_EXHAUSTED, before
            w.close()
    finally:
        assert d.stop() == 0


def test_session_errors_close_with_4000_plus_status():
    d = Daemon(anonymous=False)
    try:
        w = WsConn(d.port)
        rid = w.send(hello=pb.Hello(protocol_version=1, token="not-a-jwt"))
        code, reason, before = w.expect_close()
        assert code == 4000 + pb.UNAUTHENTICATED, (code, reason)
        e = before[0].error
        assert before[0].request_id == rid and e.code == pb.UNAUTHENTICATED, before
        w.close()
    finally:
        assert d.stop() == 0


def test_handshake_deadline_on_websocket():
    d = Daemon("--handshake-timeout-ms", "400")
    try:
        w = WsConn(d.port)
        code, reason, before = w.expect_close()
        assert code == 4000 + pb.DEADLINE_EXCEEDED and "no Hello" in reason, (code, reason)
        w.close()
    finally:
        assert d.stop() == 0


def test_client_close_is_answered():
    w = WsConn(D.port)
    w.hello()
    w.sock.sendall(ws_frame(8, struct.pack(">H", 1000) + b"bye"))
    code, reason, _ = w.expect_close()
    assert code == 1000, code
    w.sock.settimeout(5)
    try:
        while w.sock.recv(100):
            pass
    except (ssl.SSLError, OSError):
        pass
    w.close()
    assert wait_until(lambda: "peer closed the WebSocket" in D.logtext())


def test_no_alpn_and_plaintext_are_sniffed():
    # A TLS client without ALPN that speaks HTTP.
    s = connect(D.port, alpn=None)
    assert request(s, "/app.js")[0] == 200
    s.close()
    WsConn(D.port, alpn=None).close()
    # A dialogue/1 client without ALPN still works.
    from dlgtest import client_context
    c = Conn(D.port, ctx=client_context(alpn=False))
    c.hello()
    c.close()
    # Plaintext listener: HTTP, WebSocket and dialogue/1 side by side.
    d = Daemon("--plaintext", "--web-root", WEB)
    try:
        s = connect(d.port, tls=False)
        st, h, body, _ = request(s, "/")
        assert st == 200 and body.startswith(b"<!doctype"), st
        s.close()
        w = WsConn(d.port, tls=False)
        w.hello()
        w.close()
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        from dlgtest import frame
        raw.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(
            protocol_version=1)).SerializeToString()))
        hdr = raw.recv(5)
        assert hdr[0] == 0 and len(hdr) == 5, hdr
        raw.close()
    finally:
        assert d.stop() == 0


def test_no_page_configured():
    d = Daemon()
    try:
        s = connect(d.port)
        st, h, body, _ = request(s, "/")
        assert st == 404, st
        s.close()
        WsConn(d.port).close()
    finally:
        assert d.stop() == 0


def test_reload_serves_the_new_page():
    web = tempfile.mkdtemp(prefix="dlg-web2-")
    with open(os.path.join(web, "index.html"), "w") as f:
        f.write("v1")
    cfg = write_config(open_room_config(top="http:\n  web_root: %s" % web))
    d = Daemon(config=cfg)
    try:
        s = connect(d.port)
        assert request(s, "/")[2] == b"v1"
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("v2")
        import signal
        d.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "SIGHUP: reloaded" in d.logtext())
        s2 = connect(d.port)
        assert request(s2, "/")[2] == b"v2"
        s.close()
        s2.close()
    finally:
        assert d.stop() == 0


def test_slow_websocket_reader_is_cut_at_the_cap():
    d = Daemon(config=write_config(open_room_config(
        limits=("max_frame: 65536", "max_pending_bytes: 262144",
                "soft_pending_bytes: 131072"))))
    try:
        w = WsConn(d.port)
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        w.hello()
        rid = w.send(join=pb.Join(room="r"))
        w.expect("joined", rid)
        p = joined_room(d.port, "r", "pub")
        rid = p.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
        p.expect("joined", rid)
        payload = b"y" * 16000

        def send():
            if "slow consumer" not in d.logtext():
                for _ in range(16):
                    p.trigger("r", "e", payload)
        try:
            back_up(d.port, w, send, 16 * 16000, beyond=512 * 1024)
        except (AssertionError, EOFError, OSError):
            pass  # cut while backing up: what the test wants to see
        assert wait_until(lambda: "slow consumer" in d.logtext()), d.logtext()[-2000:]
        assert daemon_closed(d.port, w)
        p.close()
        w.close()
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    try:
        run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
    finally:
        D.stop()
