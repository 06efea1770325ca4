"""Resource tests on loopback, bounded in time: huge length prefixes,
thousands of concurrent TLS clients, half-open handshakes (slowloris), a
flood of subscribe frames. The daemon must stay healthy and its memory
bounded; no test asserts a speed."""
import os
import resource
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, Conn, Daemon, client_context, frame, pb, run_tests  # noqa: E402

D = None
N_MANY = int(os.environ.get("DLG_MANY_CONNS", "3000"))


def setup():
    global D
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * N_MANY + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the daemon inherits it
    D = Daemon("--handshake-timeout-ms", "1500")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def healthy():
    c = Conn(D.port)
    c.hello()
    rid = c.send(ping=pb.Ping(nonce=5))
    assert c.expect("pong", rid).nonce == 5
    c.close()


def test_huge_length_prefixes_cost_no_memory():
    before = rss_kib(D.proc.pid)
    ctx = client_context()
    conns = []
    for i in range(1000):
        raw = socket.create_connection(("127.0.0.1", D.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        if i % 2:
            # Authenticated first: the full 1 MiB limit applies.
            s.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(
                protocol_version=1)).SerializeToString()))
        # Just under the 1 MiB frame limit, then silence.
        s.sendall(b"\x00" + ((1 << 20) - 1).to_bytes(4, "big") + b"x" * 10)
        conns.append(s)
    time.sleep(0.3)
    grown = rss_kib(D.proc.pid) - before
    # ASan's allocator (redzones, quarantine) makes RSS meaningless there:
    # the bound is checked on the release build only.
    if "asan" in BUILD:
        grown = 0
    # Stated bound: well under 64 KiB per connection (1 GiB if the announced
    # lengths were allocated).
    assert grown < 64 * 1000, "daemon grew %d KiB for 1000 prefixes" % grown
    healthy()
    for s in conns:
        s.close()


def test_half_open_handshakes_are_closed():
    socks = []
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        socks.append(s)
    healthy()  # others are served meanwhile
    deadline = time.time() + 8
    closed = 0
    for s in socks:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            closed += s.recv(100) == b""
        except socket.timeout:
            pass  # still open: counted as not closed
        except (ConnectionResetError, OSError):
            closed += 1
        s.close()
    assert closed == len(socks), "%d of %d half-open handshakes closed" % (closed, len(socks))


def test_thousands_of_concurrent_tls_clients():
    ctx = client_context()
    conns = []
    hello = frame(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1))
                  .SerializeToString())
    for i in range(N_MANY):
        raw = socket.create_connection(("127.0.0.1", D.port), timeout=20)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(hello)
        conns.append(s)
    welcomed = 0
    for s in conns:
        s.settimeout(20)
        data = s.recv(5)
        if data[:1] == b"\x00":
            welcomed += 1
    assert welcomed == N_MANY, "%d of %d welcomed" % (welcomed, N_MANY)
    healthy()
    for s in conns:
        s.close()


def test_subscribe_flood_bounded():
    flood = Conn(D.port)
    flood.hello()
    body = b"".join(frame(pb.ClientFrame(request_id=i, subscribe=pb.Subscribe(
        room="nowhere", events=["x"])).SerializeToString()) for i in range(1, 20001))
    before = rss_kib(D.proc.pid)
    try:
        flood.sock.sendall(body)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass  # cut as a slow consumer: acceptable
    healthy()
    assert "asan" in BUILD or rss_kib(D.proc.pid) - before < 64 * 1024
    flood.close()


def test_daemon_survives_and_exits_cleanly():
    healthy()
    assert D.stop() == 0, D.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], per_test_timeout=120)
