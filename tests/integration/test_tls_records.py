"""Our TLS 1.3 record layer (config tls_own_records, on by default): after
the handshake the daemon frees OpenSSL's session and protects records
itself. Checked against Python's ssl (OpenSSL underneath, a separate
implementation of the peer):
- the setting is reported at start, and the flag, the environment
  variable and the config key choose it;
- TLS 1.3 and TLS 1.2 clients both work, big frames both ways, a client's
  data sent in the same flight as its Finished, a clean close_notify either
  way;
- a corrupted record ends that connection alone, the others go on;
- idle connections take clearly less daemon memory than on OpenSSL's
  record layer (the reason it exists)."""
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (Conn, Daemon, client_context, frame, joined_room,  # noqa: E402
                     open_room_config, pb, run_tests, write_config)

CONFIG = open_room_config("{top}", ("max_frame: 200000",))

OWN = "TLS: records of established TLS 1.3 sessions: dialogue's own"
OPENSSL = "TLS: records of established TLS 1.3 sessions: OpenSSL's"

# Without the environment variable, whatever the runner set.
ENV = {k: v for k, v in os.environ.items() if k != "DIALOGUE_TLS_OWN_RECORDS"}

D = None


def setup():
    global D
    D = start("")


def start(top, *extra, env=None):
    return Daemon(*extra, config=write_config(CONFIG, top=top), env=env or ENV)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def joined(port, name, ctx=None):
    return joined_room(port, "r", name, ctx=ctx)


def memory_bio_session(port):
    """A TLS client over memory BIOs, so the test decides what reaches the
    daemon and when: returns (sock, tls, inc, out) with the handshake done
    on the client's side and its last flight (Finished) still in out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(inc, out, server_hostname="localhost")
    for _ in range(20):
        try:
            tls.do_handshake()
            return sock, tls, inc, out
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            assert data, "closed during the handshake"
            inc.write(data)
    raise AssertionError("handshake did not finish")


HELLO = frame(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1)).SerializeToString())


def test_setting_reported_and_chosen():
    assert OWN in D.logtext(), D.logtext()
    cases = [("", (), {}, OWN),
             ("tls_own_records: false", (), {}, OPENSSL),
             ("tls_own_records: true", ("--tls-openssl-records",), {}, OPENSSL),
             ("tls_own_records: false", (), {"DIALOGUE_TLS_OWN_RECORDS": "1"}, OWN),
             ("", (), {"DIALOGUE_TLS_OWN_RECORDS": "0"}, OPENSSL)]
    for top, flags, env, want in cases:
        d = start(top, *flags, env=dict(ENV, **env))
        try:
            c = joined(d.port, "x")
            rid = c.send(ping=pb.Ping(nonce=9))
            assert c.expect("pong", rid).nonce == 9
            c.close()
            log = d.logtext()
            assert want in log, "%r %s %s: want %r:\n%s" % (top, flags, env, want, log)
        finally:
            assert d.stop() == 0
    d = start("", env=dict(ENV, DIALOGUE_TLS_OWN_RECORDS="maybe"))
    try:
        assert 'DIALOGUE_TLS_OWN_RECORDS="maybe" ignored (1 or 0)' in d.logtext(), d.logtext()
        assert OWN in d.logtext()
    finally:
        assert d.stop() == 0


def trigger(data, rid):
    return frame(pb.ClientFrame(request_id=rid, trigger=pb.Trigger(
        room="r", event="n:x", data=data)).SerializeToString())


def roundtrip(port, ctx_sub, ctx_pub, sizes):
    """Publishes events of the given sizes from one client to another and
    checks them byte for byte (records split across reads both ways)."""
    sub = joined(port, "sub", ctx_sub)
    pub = joined(port, "pub", ctx_pub)
    rid = pub.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
    pub.expect("joined", rid)
    datas = [bytes((i * 7 + k) % 251 for k in range(n)) for i, n in enumerate(sizes)]
    pub.send_raw(b"".join(trigger(d, 100 + i) for i, d in enumerate(datas)))
    for i, d in enumerate(datas):
        f = pub.recv()
        assert f.WhichOneof("msg") == "ack", f
        f = sub.recv()
        assert f.WhichOneof("msg") == "event", f
        assert f.event.data == d, "event %d (%d bytes) differs" % (i, len(d))
    sub.close()
    pub.close()


SIZES = [0, 1, 100, 16383, 16384, 16385, 70000, 150000, 3]


def test_tls13_big_frames_both_ways():
    roundtrip(D.port, None, None, SIZES)


def test_tls12_clients_work_on_openssl():
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c = Conn(D.port, ctx=ctx)
    assert c.sock.version() == "TLSv1.2", c.sock.version()
    c.close()
    roundtrip(D.port, ctx, None, SIZES)
    roundtrip(D.port, None, ctx, SIZES)


def test_hello_in_the_same_flight_as_finished():
    # The client's Finished and its first record (the Hello) in one send:
    # the daemon hands the session over with that record already read from
    # the socket, so our layer must pick it up from what OpenSSL left.
    for _ in range(5):
        sock, tls, inc, out = memory_bio_session(D.port)
        tls.write(HELLO)
        sock.sendall(out.read())
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[1:5], "big"):
            chunk = sock.recv(65536)
            assert chunk, "closed instead of a Welcome"
            inc.write(chunk)
            try:
                data += tls.read(65536)
            except ssl.SSLWantReadError:
                pass
        f = pb.ServerFrame()
        f.ParseFromString(data[5:5 + int.from_bytes(data[1:5], "big")])
        assert f.WhichOneof("msg") == "welcome", f
        sock.close()


def test_close_notify_both_ways():
    c = joined(D.port, "closer")
    c.sock.unwrap()  # our close_notify; the daemon answers with its own
    c.sock.close()
    deadline = time.time() + 5
    while time.time() < deadline and "peer sent close_notify" not in D.logtext():
        time.sleep(0.05)
    assert "peer sent close_notify" in D.logtext(), D.logtext()[-2000:]
    d = start("")
    c = joined(d.port, "stays")
    assert d.stop() == 0
    # The daemon's shutdown sends an Error frame, then close_notify: a clean
    # TLS end of stream, not a truncation.
    got = b""
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except ssl.SSLError as e:
        raise AssertionError("no clean close_notify from the daemon: %r" % e)
    assert len(got) > 5, got
    c.close()


def test_corrupted_record_ends_that_connection_only():
    ok = joined(D.port, "ok")
    # Memory BIOs, so a record can be changed on its way out.
    bad_raw, obj, inc, out = memory_bio_session(D.port)
    bad_raw.sendall(out.read())
    obj.write(HELLO)
    rec = bytearray(out.read())
    assert rec[0] == 23 and len(rec) > 30, rec[:5]
    rec[20] ^= 0x40  # a bit of the ciphertext
    bad_raw.sendall(bytes(rec))
    bad_raw.settimeout(5)
    closed = False
    got = b""
    try:
        while True:
            data = bad_raw.recv(65536)
            if not data:
                closed = True
                break
            got += data
    except (ConnectionResetError, socket.timeout) as e:
        closed = not isinstance(e, socket.timeout)
    assert closed, "the daemon kept a connection whose record did not authenticate"
    bad_raw.close()
    # Before closing, the daemon said why: a bad_record_mac alert.
    inc.write(got)
    try:
        obj.read(65536)
        raise AssertionError("no alert from the daemon (%d bytes)" % len(got))
    except ssl.SSLError as e:
        assert "BAD_RECORD_MAC" in str(e).upper().replace(" ", "_"), repr(e)
    rid = ok.send(ping=pb.Ping(nonce=4))
    assert ok.expect("pong", rid).nonce == 4
    ok.close()
    assert "closed: bad record MAC" in D.logtext(), D.logtext()[-2000:]


def under_asan(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def idle_kib_per_conn(top, n=300):
    """Daemon RSS per idle connection in KiB, or None under ASan (its
    shadow memory and quarantine swamp the heap)."""
    d = start(top)
    conns = []
    try:
        if under_asan(d.proc.pid):
            return None
        time.sleep(0.3)
        before = vm_rss_kib(d.proc.pid)
        for i in range(n):
            c = Conn(d.port, timeout=10)
            c.hello(name="idle%d" % i)
            conns.append(c)
        time.sleep(1.5)  # the sweep frees what idle connections do not need
        after = vm_rss_kib(d.proc.pid)
        return (after - before) / n
    finally:
        for c in conns:
            c.close()
        assert d.stop() == 0


def test_idle_connections_take_less_memory():
    own = idle_kib_per_conn("tls_own_records: true")
    openssl = idle_kib_per_conn("tls_own_records: false")
    if own is None:
        print("ASan build: memory not compared (the release run compares it)")
        return
    print("daemon RSS per idle TLS 1.3 connection: %.1f KiB own records, %.1f KiB OpenSSL's"
          % (own, openssl))
    # OpenSSL's session alone is about 13 KiB; ours about 2.5 KiB.
    assert own * 2 < openssl, (own, openssl)


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 60)
