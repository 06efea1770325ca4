"""Per-connection limits under load (issue 17, findings 5 and 6), bounded in
time and size:
- clients that flood Pings and never read are cut at max_pending_bytes,
  and what the daemon holds for them stays near the cap: the cap counts
  what the queued replies cost in memory (queue entries, buffers, TLS
  output), not just their payload, which came to a sixth of it;
- connections that have not finished Hello have their own budget
  (limits.pre_auth_max_connections): half-open connections, however many,
  never keep out a client that completes its handshake; the oldest of
  them makes room, and authenticated clients are never the ones to go."""
# suite-timeout: 420
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (Conn, Daemon, daemon_closed, frame, open_room_config, pb,  # noqa: E402
                     run_tests, tcp_queue, tcp_state, wait_until, write_config)


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def under_asan(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


CAP = 1024 * 1024
FLOOD_CONFIG = open_room_config("", ("max_frame: 65536", "max_pending_bytes: %d" % CAP,
                                     "soft_pending_bytes: %d" % CAP,
                                     "soft_pending_seconds: 3600"))

# A thousand Pings in one write: about 11 KB, one TLS record.
PINGS = b"".join(frame(pb.ClientFrame(request_id=i, ping=pb.Ping(nonce=1)).SerializeToString())
                 for i in range(1, 1001))


def uncut_report(d, clients, cut):
    """For a failure: what the daemon's side of each client that was not
    cut shows (TCP state and queues; its log lines), to tell a client the
    daemon never cut from one it cut whose socket stayed open."""
    log = d.logtext().splitlines()
    out = []
    for i, c in enumerate(clients):
        if cut[i]:
            continue
        local = c.sock.getsockname()[1]
        ids = [ln.split("conn ", 1)[1].split(" ", 1)[0] for ln in log
               if "name=flood%d" % i in ln and "welcome" in ln]
        out.append("flood%d (port %d): daemon side %s, queues (tx, rx) %s; conn %s:"
                   % (i, local, tcp_state(d.port, local), tcp_queue(d.port, local), ids))
        out += ["  " + ln for ln in log if ids and "conn %s " % ids[0] in ln][-5:]
    out += [ln for ln in log if "io_uring" in ln][-5:]
    return "\n".join(out)


def test_ping_flood_cut_at_the_cap_in_memory():
    # Four clients send Pings and never read. The kernel buffers the first
    # few MB of Pongs per socket; after that each Pong waits in the daemon,
    # about 13 bytes of payload in some 90 bytes of memory. Before, the cap
    # counted the 13 (409 MB for eight clients against an 8 MiB cap); now
    # each client is cut when the memory it holds reaches the cap.
    d = Daemon(config=write_config(FLOOD_CONFIG))
    try:
        asan = under_asan(d.proc.pid)
        clients = []
        for i in range(4):
            c = Conn(d.port, timeout=10)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.hello(name="flood%d" % i)
            clients.append(c)
        time.sleep(0.3)
        before = vm_kib(d.proc.pid, "VmRSS")
        sent = [0] * len(clients)
        live = list(range(len(clients)))
        t0 = time.time()
        # The daemon's socket buffers take some 240,000 Pongs per client
        # before anything waits in the daemon, so about a million Pings must
        # go through: under ASan on a busy 2-core machine that took more
        # than 40 s (CI cut one client short). The bound is the count of
        # writes; the time limit only stops a daemon that stopped reading.
        limit = 120 if asan else 60
        # At most 1,500 writes (1.5 million Pings, about 16 MB) per client.
        for _ in range(1500):
            if not live or time.time() - t0 > limit:
                break
            for i in list(live):
                try:
                    clients[i].sock.sendall(PINGS)
                    sent[i] += 1000
                except OSError:
                    live.remove(i)
        cut = [daemon_closed(d.port, c, within=5) for c in clients]
        peak = vm_kib(d.proc.pid, "VmHWM") - before
        print("Pings sent per client: %s; cut: %s; daemon peak RSS +%d KiB (cap %d KiB each)"
              % (sent, cut, peak, CAP // 1024))
        assert all(cut), "clients flooding Pings without reading were not all cut: %s\n%s" % (
            cut, uncut_report(d, clients, cut))
        assert d.logtext().count("slow consumer") >= len(clients), d.logtext()[-2000:]
        if not asan:
            # The cap per client, twice over for the heap's slack, and
            # 2 MB of TLS buffers and such: before, about six times the cap
            # each.
            assert peak < len(clients) * 2 * CAP // 1024 + 2048, peak
        for c in clients:
            c.close()
        # The daemon still serves.
        c = Conn(d.port)
        c.hello()
        rid = c.send(ping=pb.Ping(nonce=3))
        assert c.expect("pong", rid).nonce == 3
        c.close()
    finally:
        assert d.stop() == 0


def slowloris(port, n):
    """n TCP connections to port that never send a byte."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def closed_count(socks):
    """How many of the sockets the daemon has closed."""
    closed = 0
    for s in socks:
        s.settimeout(0.05)
        try:
            if s.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except OSError:
            closed += 1
    return closed


def half_open_then_clients(limits, early, half_open, late):
    """early clients say Hello, half_open TCP connections never send a byte,
    then late clients must get in; every client is served. Returns (the
    daemon's log, how many half-open connections it closed)."""
    d = Daemon(config=write_config(open_room_config("", limits)))
    try:
        ready = []
        for i in range(early):
            c = Conn(d.port)
            c.hello(name="early%d" % i)
            ready.append(c)
        socks = slowloris(d.port, half_open)
        time.sleep(0.5)
        for i in range(late):
            c = Conn(d.port)
            w = c.hello(name="late%d" % i)
            assert w.client_id, w
            ready.append(c)
        for c in ready:
            rid = c.send(ping=pb.Ping(nonce=5))
            assert c.expect("pong", rid).nonce == 5
        closed = closed_count(socks)
        assert wait_until(lambda: "had not finished Hello to make room" in d.logtext(), 3), \
            d.logtext()[-2000:]
        for s in socks:
            s.close()
        for c in ready:
            c.close()
        return d.logtext(), closed
    finally:
        assert d.stop() == 0


def test_half_open_connections_do_not_keep_clients_out():
    # The review's case: more half-open connections than max_connections,
    # inside the handshake window (long here, so that nothing times out).
    # Before, every new client was told "server full" until they timed out;
    # now the oldest half-open one makes room, and a client that completes
    # TLS and Hello gets in.
    log, closed = half_open_then_clients(("max_connections: 20", "handshake_timeout_ms: 60000"),
                                         early=5, half_open=25, late=5)
    assert "server full" not in log
    # 15 slots were left for them; each newcomer beyond made room.
    assert closed >= 25 - 15, closed


def test_half_open_connections_have_their_own_budget():
    # With pre_auth_max_connections 8, at most 8 connections wait for Hello
    # at any time, however many more slots max_connections leaves.
    log, closed = half_open_then_clients(("max_connections: 100", "pre_auth_max_connections: 8",
                                          "handshake_timeout_ms: 60000"),
                                         early=5, half_open=25, late=5)
    assert closed >= 25 - 8, closed
    assert "pre_auth_max_connections 8" in log


def test_young_handshakes_are_not_closed_for_newcomers():
    # A burst of connections (a reconnect storm) fills the pre-auth budget
    # with handshakes in progress: a newcomer waits in the backlog instead
    # of closing one of them (before, the oldest was closed at once and its
    # work wasted). Once the oldest has waited 1 s (half the handshake
    # timeout at most) it still gives way, so silent connections cannot keep
    # clients out for long.
    cfg = open_room_config("", ("max_connections: 100", "pre_auth_max_connections: 4",
                                "handshake_timeout_ms: 10000"))
    d = Daemon(config=write_config(cfg))
    try:
        socks = slowloris(d.port, 4)
        time.sleep(0.1)
        t0 = time.time()
        c = Conn(d.port, timeout=8, handshake=False)
        c.sock.settimeout(8)
        c.sock.do_handshake()
        w = c.hello(name="late")
        waited = time.time() - t0
        assert w.client_id, w
        # Nobody was closed while the four were young...
        assert waited >= 0.7, "accepted after %.2f s: a young handshake was closed" % waited
        # ...and then the oldest made room, as before.
        assert waited < 5, waited
        assert closed_count(socks) >= 1
        assert wait_until(lambda: "had not finished Hello to make room" in d.logtext(), 3), \
            d.logtext()[-2000:]
        for s in socks:
            s.close()
        c.close()
    finally:
        assert d.stop() == 0


def test_server_full_of_authenticated_clients_still_refuses():
    # The budget makes room only among connections before Welcome: with
    # every slot taken by clients that said Hello, a newcomer is told the
    # server is full and nobody is evicted.
    cfg = open_room_config("", ("max_connections: 3", "pre_auth_max_connections: 2"))
    d = Daemon(config=write_config(cfg))
    try:
        ready = []
        for i in range(3):
            ready.append(Conn(d.port))
            ready[-1].hello(name="r%d" % i)
        extra = Conn(d.port)
        extra.expect_error("RESOURCE_EXHAUSTED", 0, contains="server full")
        extra.expect_closed()
        for c in ready:
            rid = c.send(ping=pb.Ping(nonce=6))
            assert c.expect("pong", rid).nonce == 6
            c.close()
        assert "made room" not in d.logtext()
    finally:
        assert d.stop() == 0


def test_a_peer_that_resets_under_output_is_named_in_the_close_line():
    # A client that sends Pings without reading, then resets: the daemon's
    # next write fails. Its close line names the socket's error, not only
    # "I/O error" (which the write() path said before; io_uring's already
    # named it).
    d = Daemon(config=write_config(open_room_config("", ())))
    try:
        for k in range(3):
            c = Conn(d.port, timeout=10)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.hello(name="reset%d" % k)
            for _ in range(300):  # 300,000 Pongs: more than the kernel holds
                c.sock.sendall(PINGS)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sock.close()
        assert wait_until(lambda: d.logtext().count("closed:") >= 3, 20), d.logtext()[-2000:]
        closed = [ln for ln in d.logtext().splitlines() if "closed:" in ln]
        assert all("connection reset by peer" in ln or "broken pipe" in ln for ln in closed), \
            "\n".join(closed)
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 200)
