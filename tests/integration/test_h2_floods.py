"""HTTP/2 hardening (issue 21): the known HTTP/2 attacks, sent frame by frame
with python3-h2's hyperframe and hpack, are refused with bounded memory and
CPU: rapid reset (CVE-2023-44487), CONTINUATION flood, SETTINGS flood,
PING flood (keepalive strikes), HPACK bomb (header list size), zero-window
stall (write timeout), the stream limit; and HTTP/2 flow control is the
slow-consumer signal: `latest` conflates behind a shut window, `stream`
is cut at the cap; grpc-timeout is kept by the server."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlggrpc import RawH2, channel, code_of, hf, lpm, messages, pb, rss_kb, stub, svc  # noqa: E402
from dlgtest import (Conn, Daemon, dash, dash_policy_config, frame, publish_acked,  # noqa: E402
                     publisher, run_tests, write_config)

import grpc  # noqa: E402

CONFIG = """
listen:
  - {address: "127.0.0.1:0", tls: false}
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
limits:
  write_timeout_ms: 1000
  max_streams_per_connection: 4
  room_ops_per_second: 100000
  room_ops_burst: 100000
rooms:
  - id: r
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
"""

D = None
SUB = "/dialogue.v1.Dialogue/Subscribe"


def setup():
    global D
    D = Daemon(config=write_config(CONFIG))


def alive(port=None):
    """The daemon still serves a gRPC client."""
    ch = channel(port or D.port, tls=False, options=[("grpc.use_local_subchannel_pool", 1)])
    rooms = stub(ch).ListRooms(pb.ListRooms(), timeout=5)
    ch.close()
    assert [r.id for r in rooms.rooms] == ["r"], rooms


def members(room="r", port=None):
    c = Conn(port or tls_port())
    c.hello()
    rid = c.send(list_rooms=pb.ListRooms(members=True))
    rooms = c.expect("rooms", rid)
    c.close()
    return [r.members for r in rooms.rooms if r.id == room][0]


def wait_members(want, room="r", port=None, within=6.0):
    end = time.time() + within
    n = None
    while time.time() < end:
        n = members(room, port)
        if n == want:
            return
        time.sleep(0.1)
    raise AssertionError("room %s has %s members, expected %d" % (room, n, want))


def tls_port(d=None):
    ports = re.findall(r"port (\d+) \((TLS|plaintext)\)", (d or D).logtext())
    return int([p for p, k in ports if k == "TLS"][0])


def ack_settings(h):
    """Reads until the server's SETTINGS, and acknowledges it."""
    h.until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
    h.send(hf.SettingsFrame(0, flags=["ACK"]))


def authed(port=None, **kw):
    """A raw HTTP/2 connection past its first Welcome (a ListRooms call),
    so that what follows meets the limits of a connection in use, not the
    budget of one that has not said who it is (pre_auth_max_bytes)."""
    h = RawH2(port or D.port, **kw)
    ack_settings(h)
    sid = h.call("/dialogue.v1.Dialogue/ListRooms", b"")
    st, msg, _, rst = h.trailers(sid)
    assert st == 0, (st, msg, rst)
    return h


def subscribe_req(room="r", **kw):
    return svc.SubscribeRequest(room=room, **kw).SerializeToString()


def test_rapid_reset_is_cut_with_bounded_memory():
    rss0 = rss_kb(D.proc.pid)
    h = authed()
    sent = 0
    req = lpm(subscribe_req())
    # Streams opened (a Subscribe each: a session, a Hello, a Join) and
    # reset at once, in a loop: the connection is cut long before the end.
    closed = False
    try:
        for i in range(20000):
            sid = h.headers(SUB)
            h.data(sid, req, end_stream=True)
            h.send(hf.RstStreamFrame(sid, error_code=8))  # CANCEL
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    g = None
    if not closed:
        try:
            g = h.goaway(within=5)
        except AssertionError:
            g = None
        closed = h.closed(within=5)
    assert closed, "connection still open after %d rapid resets" % sent
    assert sent < 20000, sent
    if g is not None:
        assert g.error_code == 0xb, g  # ENHANCE_YOUR_CALM
    h.close()
    wait_members(0)
    alive()
    grew = rss_kb(D.proc.pid) - rss0
    assert grew < 32 * 1024, "RSS grew %d KiB" % grew


def test_continuation_flood_is_cut():
    h = authed()
    block = h.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", SUB),
                          (":authority", "localhost"), ("content-type", "application/grpc")])
    h.send(hf.HeadersFrame(3, data=block, flags=[]))
    try:
        for i in range(2000):
            h.send(hf.ContinuationFrame(3, data=h.enc.encode([("x-junk-%d" % (i % 4), "v")]),
                                        flags=[]))
    except (BrokenPipeError, ConnectionResetError):
        pass
    g = h.goaway(within=5)
    assert g.error_code == 0xb and b"CONTINUATION" in g.additional_data, g
    assert h.closed(within=5), "CONTINUATION flood not cut"
    h.close()
    alive()


def test_settings_flood_is_cut():
    h = authed()
    stop = threading.Event()
    frames = []

    def reader():  # reads as a polite client would: only the flood is rude
        while not stop.is_set():
            try:
                f = h.read_frame(timeout=0.5)
            except OSError:
                continue
            if f is None:
                return
            frames.append(f)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent = 0
    try:
        for i in range(20000):
            h.send(hf.SettingsFrame(0, settings={hf.SettingsFrame.MAX_CONCURRENT_STREAMS: 10 + i % 3}))
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    t.join(10)
    stop.set()
    goaways = [f for f in frames if isinstance(f, hf.GoAwayFrame)]
    assert goaways and goaways[0].error_code == 0xb, (sent, [type(f).__name__ for f in frames][-5:])
    assert b"SETTINGS" in goaways[0].additional_data and b"flood" in goaways[0].additional_data, \
        goaways[0].additional_data
    h.close()
    alive()


def test_ping_strikes_are_cut_as_too_many_pings():
    h = authed()
    for i in range(4):
        h.send(hf.PingFrame(0, opaque_data=b"%08d" % i))
    g = h.goaway(within=5)
    assert g.error_code == 0xb and g.additional_data == b"too_many_pings", g
    assert h.closed(within=5)
    h.close()
    # Keepalive pings 10 s apart or with data in between are fine: two
    # pings (one strike) keep the connection.
    h = RawH2(D.port)
    ack_settings(h)
    for i in range(2):
        h.send(hf.PingFrame(0, opaque_data=b"%08d" % i))
    h.until(lambda f: isinstance(f, hf.PingFrame) and "ACK" in f.flags and
            f.opaque_data == b"00000001")
    sid = h.call("/dialogue.v1.Dialogue/ListRooms", b"")
    st, msg, body, rst = h.trailers(sid)
    assert st == 0, (st, msg, rst)
    h.close()


def test_hpack_bomb_is_bounded_by_the_header_list_limit():
    rss0 = rss_kb(D.proc.pid)
    h = RawH2(D.port)
    ack_settings(h)
    big = ("x-big", "a" * 4000)
    # The first request puts the 4 KB header into the HPACK table (under
    # the 16 KiB limit): it is served.
    sid = h.headers("/dialogue.v1.Dialogue/ListRooms", extra=[big])
    h.data(sid, lpm(b""))
    st, _, _, rst = h.trailers(sid)
    assert st == 0, (st, rst)
    # Then 1-byte references to it, 200 of them: 800 KB decoded from a few
    # hundred bytes. The stream is reset; the connection goes on.
    h.enc.header_table_size = 4096
    sid = h.headers("/dialogue.v1.Dialogue/ListRooms", extra=[big] * 200)
    h.data(sid, lpm(b""))
    st, _, _, rst = h.trailers(sid)
    assert st is None and rst is not None, (st, rst)
    sid = h.call("/dialogue.v1.Dialogue/ListRooms", b"")
    st, _, _, rst = h.trailers(sid)
    assert st == 0, (st, rst)
    h.close()
    assert rss_kb(D.proc.pid) - rss0 < 16 * 1024


def test_zero_window_stall_is_cut_by_the_write_timeout():
    base = members()
    h = RawH2(D.port, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    ack_settings(h)
    sid = h.call(SUB, subscribe_req())
    h.until(lambda f: isinstance(f, hf.HeadersFrame) and f.stream_id == sid)
    wait_members(base + 1)
    p = publisher(tls_port(), "r")
    for i in range(5):
        p.trigger("r", "e", b"x" * 100)
    t0 = time.time()
    # write_timeout_ms 1000 (+ the sweep's second): the stream is reset
    # (ENHANCE_YOUR_CALM = RESOURCE_EXHAUSTED to gRPC clients) and its
    # session leaves the room; the connection stays.
    f, seen = h.until(lambda f: isinstance(f, hf.RstStreamFrame) and f.stream_id == sid,
                      within=6)
    assert f.error_code == 0xb, f.error_code
    assert not any(isinstance(x, hf.DataFrame) and x.stream_id == sid for x in seen)
    assert time.time() - t0 >= 0.9
    wait_members(base + 1)  # the publisher is the one left
    assert "stream's flow-control window" in D.logtext()
    sid = h.call("/dialogue.v1.Dialogue/ListRooms", b"")
    h.send(hf.WindowUpdateFrame(sid, window_increment=65535))
    st, _, _, rst = h.trailers(sid)
    assert st == 0, (st, rst)
    h.close()
    p.close()


def test_streams_over_the_limit_are_refused():
    h = RawH2(D.port)
    ack_settings(h)
    sids = [h.call(SUB, subscribe_req()) for _ in range(4)]
    for sid in sids:
        h.until(lambda f, s=sid: isinstance(f, hf.HeadersFrame) and f.stream_id == s)
    # The server said 4 (SETTINGS, acknowledged): a fifth is a protocol
    # error that ends the connection (nghttp2), or a refused stream.
    extra = h.call(SUB, subscribe_req())
    f, _ = h.until(lambda f: isinstance(f, hf.GoAwayFrame) or
                   (isinstance(f, hf.RstStreamFrame) and f.stream_id == extra))
    if isinstance(f, hf.GoAwayFrame):
        assert f.error_code == 0x1 and f.last_stream_id < extra, f
    else:
        assert f.error_code == 0x7, f.error_code
    h.close()
    wait_members(0)


def test_grpc_timeout_is_kept_by_the_server():
    base = members()
    h = RawH2(D.port)
    ack_settings(h)
    t0 = time.time()
    sid = h.call(SUB, subscribe_req(), extra=[("grpc-timeout", "300m")])
    st, msg, _, rst = h.trailers(sid, within=5)
    assert st == 4 and 0.25 <= time.time() - t0 < 3, (st, msg, rst)
    wait_members(base)
    h.close()


def test_cancel_by_reset_leaves_the_room():
    base = members()
    h = RawH2(D.port)
    ack_settings(h)
    sid = h.call(SUB, subscribe_req())
    h.until(lambda f: isinstance(f, hf.HeadersFrame) and f.stream_id == sid)
    wait_members(base + 1)
    h.send(hf.RstStreamFrame(sid, error_code=8))
    wait_members(base)
    h.close()


def test_flow_control_is_the_slow_consumer_signal():
    d = Daemon(config=write_config(dash_policy_config().replace(
        "listen:\n", "listen:\n  - {address: \"127.0.0.1:0\", tls: false}\n", 1)))
    try:
        plain = int(re.findall(r"port (\d+) \(plaintext\)", d.logtext())[0])
        tport = tls_port(d)
        # latest: behind a shut window the queue keeps the newest value only.
        h = RawH2(plain, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        ack_settings(h)
        sid = h.call(SUB, subscribe_req("dash", events=["metrics:update"]))
        h.until(lambda f: isinstance(f, hf.HeadersFrame) and f.stream_id == sid)
        p = publisher(tport, "dash")
        last = None
        for i in range(300):
            m = dash.MetricsUpdate(cpu=i % 100, memory=1, requests=i, errors=0, latency=1)
            last, _ = p.trigger("dash", "metrics:update", m.SerializeToString())
        h.send(hf.WindowUpdateFrame(sid, window_increment=1 << 20))
        h.send(hf.WindowUpdateFrame(0, window_increment=1 << 20))
        body = b""
        end = time.time() + 5
        evs = []
        while time.time() < end:
            f, _ = h.until(lambda f: f.stream_id == sid, within=max(0.05, end - time.time()))
            body += f.data if isinstance(f, hf.DataFrame) else b""
            evs = [pb.Event.FromString(x) for x in messages(body)] if body else []
            if evs and evs[-1].seq == last.seq:
                break
        assert evs and evs[-1].seq == last.seq, (len(evs), last.seq)
        assert len(evs) < 20, "%d of 300 events delivered: not conflated" % len(evs)
        h.close()
        # stream: nothing is dropped, so a shut window grows the queue until
        # the hard cap (2 MiB here) cuts the stream, long before the timeouts.
        h = RawH2(plain, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        ack_settings(h)
        sid = h.call(SUB, subscribe_req("dash", events=["alert:triggered"]))
        h.until(lambda f: isinstance(f, hf.HeadersFrame) and f.stream_id == sid)
        t0 = time.time()
        a = dash.AlertTriggered(alert_id="a", severity=dash.high, message="m" * 1000,
                                timestamp=1).SerializeToString()
        frames = [p.send(trigger=pb.Trigger(room="dash", event="alert:triggered", data=a))
                  for _ in range(3000)]
        assert frames
        for _ in range(3000):
            f = p.recv()
            assert f.WhichOneof("msg") == "ack", f
        f, _ = h.until(lambda f: isinstance(f, hf.RstStreamFrame) and f.stream_id == sid,
                       within=5)
        assert f.error_code == 0xb and time.time() - t0 < 4, f.error_code
        assert "slow consumer" in d.logtext()
        h.close()
        p.close()
    finally:
        assert d.stop() == 0


def test_uring_sends_carry_the_streams_queues():
    """With io_uring, one send carries up to 64 KiB of what the streams
    queued (it was sized from the connection's own queue: 4 KiB each)."""
    d = Daemon(config=write_config(CONFIG))
    try:
        if "io_uring: on" not in d.logtext():
            return  # the kernel refused io_uring: nothing to count
        plain = int(re.findall(r"port (\d+) \(plaintext\)", d.logtext())[0])
        h = RawH2(plain, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        ack_settings(h)
        sid = h.call(SUB, subscribe_req())
        h.until(lambda f: isinstance(f, hf.HeadersFrame) and f.stream_id == sid)
        p = publisher(tls_port(d), "r")
        # In one write, so that their Acks take few sends too.
        publish_acked(p, [frame(pb.ClientFrame(request_id=100 + i, trigger=pb.Trigger(
            room="r", event="e", data=b"x" * 1000)).SerializeToString()) for i in range(150)],
            chunk=150)
        # 150 KB wait behind the shut window; opened, they go out at once.
        h.send(hf.WindowUpdateFrame(sid, window_increment=1 << 20))
        h.send(hf.WindowUpdateFrame(0, window_increment=1 << 20))
        got = 0
        while got < 150 * 1000:
            f, _ = h.until(lambda f: isinstance(f, hf.DataFrame) and f.stream_id == sid)
            got += len(f.data)
        h.close()
        p.close()
    finally:
        assert d.stop() == 0
    sends = int(re.findall(r"io_uring: (\d+) sends", d.logtext())[-1])
    # The publisher's Acks and setup take some; 150 KB in 4 KiB sends
    # would be 37 more.
    assert sends < 30, sends


def test_connection_deadline_heartbeat_and_budget():
    """The connection keeps dialogue/1's rules until its first Welcome
    (handshake_timeout_ms, pre_auth_max_bytes), then HTTP/2 PINGs are its
    heartbeat: two unanswered and it is closed."""
    d = Daemon(config=write_config(CONFIG.replace(
        "limits:\n", "limits:\n  handshake_timeout_ms: 500\n  heartbeat_ms: 300\n", 1)))
    try:
        plain = int(re.findall(r"port (\d+) \(plaintext\)", d.logtext())[0])
        h = RawH2(plain)
        ack_settings(h)
        g = h.goaway(within=3)
        assert b"no Hello within 500 ms" in g.additional_data, g
        assert h.closed(within=3)
        h.close()
        h = RawH2(plain)
        ack_settings(h)
        try:
            # 30 bytes a round, none of them a stream: 75 KB before Welcome
            # (the budget is pre_auth_max_bytes for each of the 4 streams).
            for i in range(2500):
                h.send(hf.PingFrame(0, opaque_data=b"%08d" % i, flags=["ACK"]))
                h.send(hf.WindowUpdateFrame(0, window_increment=1))
        except (BrokenPipeError, ConnectionResetError):
            pass
        g = h.goaway(within=3)
        assert b"before Welcome" in g.additional_data, g
        h.close()
        h = authed(plain)
        t0 = time.time()
        p, _ = h.until(lambda f: isinstance(f, hf.PingFrame) and "ACK" not in f.flags, within=3)
        g = h.goaway(within=5)
        assert b"no answer to 2 heartbeats" in g.additional_data, g
        assert time.time() - t0 >= 0.5
        h.close()
        # Answered, the PINGs keep the connection (any byte counts).
        h = authed(plain)
        end = time.time() + 2
        while time.time() < end:
            try:
                f = h.read_frame(timeout=end - time.time())
            except OSError:
                continue
            assert f is not None and not isinstance(f, hf.GoAwayFrame), f
            if isinstance(f, hf.PingFrame) and "ACK" not in f.flags:
                h.send(hf.PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]))
        h.close()
    finally:
        assert d.stop() == 0


def test_a_first_flight_of_many_calls_is_not_cut():
    """A client may open many calls at once before any has said Hello
    (gRPC clients do): the connection's byte budget before its first
    Welcome is pre_auth_max_bytes for each stream it allows, not in all."""
    d = Daemon(config=write_config(CONFIG.replace("  max_streams_per_connection: 4\n", "")))
    try:
        plain = int(re.findall(r"port (\d+) \(plaintext\)", d.logtext())[0])
        h = RawH2(plain)
        req = lpm(subscribe_req())
        flight = b""
        for i in range(50):
            sid = 1 + 2 * i
            # A header never indexed by HPACK (as a token may be): 400
            # bytes on the wire for each call, 20 KB in all.
            block = h.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", SUB),
                                  (":authority", "localhost"),
                                  ("content-type", "application/grpc"),
                                  ("x-pad", "p" * 400, True)])
            flight += hf.HeadersFrame(sid, data=block, flags=["END_HEADERS"]).serialize()
            flight += hf.DataFrame(sid, data=req, flags=["END_STREAM"]).serialize()
        assert len(flight) > 16384
        h.send_raw(flight)
        got = set()
        while len(got) < 50:
            f, _ = h.until(lambda f: isinstance(f, (hf.HeadersFrame, hf.GoAwayFrame)))
            assert not isinstance(f, hf.GoAwayFrame), f
            got.add(f.stream_id)
        h.close()
    finally:
        assert d.stop() == 0


def test_not_http2_after_the_preface_prefix():
    import socket
    s = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 30)
    s.settimeout(5)
    data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    alive()


if __name__ == "__main__":
    setup()
    tests = [test_rapid_reset_is_cut_with_bounded_memory,
             test_continuation_flood_is_cut,
             test_settings_flood_is_cut,
             test_ping_strikes_are_cut_as_too_many_pings,
             test_hpack_bomb_is_bounded_by_the_header_list_limit,
             test_zero_window_stall_is_cut_by_the_write_timeout,
             test_streams_over_the_limit_are_refused,
             test_grpc_timeout_is_kept_by_the_server,
             test_cancel_by_reset_leaves_the_room,
             test_flow_control_is_the_slow_consumer_signal,
             test_uring_sends_carry_the_streams_queues,
             test_connection_deadline_heartbeat_and_budget,
             test_a_first_flight_of_many_calls_is_not_cut,
             test_not_http2_after_the_preface_prefix]
    try:
        run_tests(tests, per_test_timeout=90)
    finally:
        assert D.stop() == 0
