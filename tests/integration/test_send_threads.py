"""Send threads (config `send_threads`, flag --send-threads): when a loop
turn has 8 or more connections with output, the loop thread and its helpers
share the flush, each connection encrypted and written by exactly one
thread; what a full socket did not take goes out later through libuv on the
loop thread. With 4 send threads (more than the cores of a small machine,
so the threads really interleave):
- a fan-out to 24 subscribers of events up to 40 KiB reaches each of them
  once, in order, byte for byte;
- a subscriber that stops reading (its socket fills during a shared flush)
  and one that trickles get everything whole and in order later, while the
  others are not held up;
- the latest/stream delivery policies and the pending-output cap still hold
  among 16 fast readers;
- the config and flag are checked and reported at start; SIGTERM exits 0
  promptly, after a fan-out and in the middle of one.
The daemons here run with DIALOGUE_IO_URING=0 (io_uring turns the helpers
off), except the one test that checks exactly that."""
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (DAEMON, NO_CUT_LIMITS, Conn, Daemon, dash, dash_policy_config,  # noqa: E402
                     daemon_closed, frame, kernel_held, open_room_config, pb, publisher,
                     run_tests, wait_until, write_config)
from dlgtest import joined_room as joined, publish_acked as publish  # noqa: E402

# An outer DIALOGUE_IO_URING=1 (the suites' io_uring run) would turn the
# helpers off: these tests are about the helpers.
ENV = dict(os.environ, DIALOGUE_IO_URING="0")

FANOUT_CONFIG = open_room_config("send_threads: 4", ("max_frame: 65536",) + NO_CUT_LIMITS)

SLOW_CONFIG = dash_policy_config("send_threads: 4")

MINI_CONFIG = open_room_config("{top}")

STATS_RE = re.compile(r"send threads: (\d+) flush\(es\) shared; the helpers flushed (\d+) "
                      r"connection\(s\)")

with open("/proc/sys/net/ipv4/tcp_wmem") as _f:
    WMEM_MAX = int(_f.read().split()[2])
# A socket's send buffer grows up to WMEM_MAX: past 12 MB the tests would
# take too long to fill it, and only say the daemon did not have to hold
# anything back.
FILL_CAP = 12 << 20


def fill_bytes():
    """How much to send a reader that does not read so that its socket fills
    and the daemon holds about 1.5 MB of it."""
    return min(WMEM_MAX, FILL_CAP) + (3 << 19)


def held_check(sent, held):
    """True if of `sent` plaintext bytes (fewer than the ciphertext) the
    kernel holds less: the rest is still in the daemon, its socket full."""
    if WMEM_MAX > FILL_CAP:
        print("tcp_wmem max %d: the socket may not have filled (not checked)" % WMEM_MAX)
        return True
    return sent > held


def settle():
    """Lets the daemon's last writes reach the kernel before it is asked."""
    time.sleep(0.3)


def start(config_text, *extra, env=ENV, **subst):
    return Daemon(*extra, config=write_config(config_text, **subst), env=env)


def stop_ok(d, timeout=10):
    """SIGTERM; the daemon must exit 0 within timeout s (under ASan that
    includes the leak check)."""
    rc = d.stop(timeout=timeout)
    assert rc == 0, "exit %s:\n%s" % (rc, d.logtext()[-3000:])





class Frames:
    """Reads ServerFrames from a Conn without copying the whole buffer per
    frame (Conn.recv does, which is slow for tens of thousands of frames)."""

    def __init__(self, c):
        self.c = c
        self.buf = bytearray(c.buf)
        c.buf = b""
        self.pos = 0

    def fill(self, n=262144):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        data = self.c.sock.recv(n)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def next(self):
        while True:
            avail = len(self.buf) - self.pos
            if avail >= 5:
                flag, n = struct.unpack_from(">BI", self.buf, self.pos)
                assert flag == 0, "server sent flag %d" % flag
                if avail >= 5 + n:
                    f = pb.ServerFrame()
                    f.ParseFromString(bytes(self.buf[self.pos + 5:self.pos + 5 + n]))
                    self.pos += 5 + n
                    return f
            self.fill()

    def event(self):
        f = self.next()
        if f.WhichOneof("msg") != "event":
            raise AssertionError("expected an event, got %s" % f)
        return f.event


def payload(i, size):
    """Event i's data: index, size and CRC-32 of a body that is a
    pseudo-random function of i (so a misplaced or mixed-up byte shows)."""
    body = random.Random(i).randbytes(size - 12)
    return struct.pack(">III", i, size, zlib.crc32(body)) + body


def check_payload(data, i, want):
    """Event data must be payload i, whole."""
    assert len(data) >= 12, "short data (%d bytes) for event %d" % (len(data), i)
    idx, size, crc = struct.unpack(">III", data[:12])
    assert idx == i, "event %d arrived where %d was due (lost, repeated or out of order)" % (idx, i)
    assert size == len(data), "event %d: %d bytes, sent %d" % (i, len(data), size)
    assert zlib.crc32(data[12:]) == crc, "event %d: body corrupted" % i
    assert data == want, "event %d differs from what was sent" % i


def datas_len(datas):
    return [len(x) for x in datas]


def triggers(room, datas):
    return [frame(pb.ClientFrame(request_id=i + 1, trigger=pb.Trigger(
        room=room, event="n:x", data=d)).SerializeToString()) for i, d in enumerate(datas)]


class Reader(threading.Thread):
    """Reads len(want) events on c and checks each against want (in order,
    whole) and that seq numbers are consecutive. mode: "fast" reads as they
    come; "trickle" reads 4 KiB every 2 ms for a while first; "stalled"
    waits for go (a threading.Event) before reading anything."""

    def __init__(self, c, want, mode="fast", go=None):
        super().__init__(daemon=True)
        self.c, self.want, self.mode, self.go = c, want, mode, go
        self.count = 0
        self.error = None

    def run(self):
        try:
            fr = Frames(self.c)
            if self.mode == "stalled":
                if not self.go.wait(60):
                    raise AssertionError("never told to read")
            elif self.mode == "trickle":
                time.sleep(0.3)  # the publisher runs ahead: its socket fills
                for _ in range(200):
                    fr.fill(4096)
                    time.sleep(0.002)
            first = None
            for i, want in enumerate(self.want):
                e = fr.event()
                if first is None:
                    first = e.seq
                assert e.seq == first + i, "seq %d after %d events from %d" % (e.seq, i, first)
                check_payload(e.data, i, want)
                self.count += 1
        except BaseException as ex:  # noqa: B902 - reported by the test
            self.error = ex


def join_readers(readers, within=60):
    deadline = time.time() + within
    for r in readers:
        r.join(max(0.1, deadline - time.time()))
    for r in readers:
        assert not r.is_alive(), "reader on %s still reading (%d of %d)" % (
            r.c, r.count, len(r.want))
        assert r.error is None, "%s reader: %r" % (r.mode, r.error)
        assert r.count == len(r.want)


D = None  # FANOUT_CONFIG, for tests 1, 2 and the clean exit
S = None  # SLOW_CONFIG, for the pending-output cap


def setup():
    global D, S
    D = start(FANOUT_CONFIG)
    S = start(SLOW_CONFIG)


def test_daemons_report_four_send_threads():
    for d in (D, S):
        assert "send threads: 4 (the loop thread and 3 helpers)" in d.logtext(), d.logtext()


def test_fanout_to_24_whole_and_in_order():
    n = 300
    rnd = random.Random(7)
    # Mostly small events; every 7th is 20-40 KiB, so one frame spans
    # several TLS records and a flush carries many frames.
    sizes = [rnd.randint(20480, 40960) if i % 7 == 3 else rnd.randint(16, 3000)
             for i in range(n)]
    datas = [payload(i, s) for i, s in enumerate(sizes)]
    subs = [joined(D.port, "r", "sub%d" % i) for i in range(24)]
    p = publisher(D.port, "r")
    readers = [Reader(c, datas) for c in subs]
    for r in readers:
        r.start()
    # Varied chunks: single triggers (a turn per event) and bursts (a turn
    # with many frames per connection).
    publish(p, triggers("r", datas), chunk=[1, 1, 1, 40, 5, 60, 1, 20])
    join_readers(readers, 50)
    for c in subs + [p]:
        c.close()
    print("24 subscribers x %d events (%d bytes each) delivered whole and in order" % (
        n, sum(sizes)))


def test_stalled_and_trickling_readers_get_everything_later():
    size = 24 * 1024
    n = fill_bytes() // (size - 2000)  # more than a socket holds
    datas = [payload(i, size - (i % 5) * 1000) for i in range(n)]
    fast = [joined(D.port, "r", "fast%d" % i) for i in range(12)]
    # 64 KiB: small enough that its socket fills within the first shared
    # flushes (a helper's write comes back short and hands the rest back).
    stalled = joined(D.port, "r", "stalled", rcvbuf=65536, timeout=30)
    trickle = joined(D.port, "r", "trickle", rcvbuf=65536, timeout=30)
    p = publisher(D.port, "r")
    go = threading.Event()
    fast_readers = [Reader(c, datas) for c in fast]
    slow_readers = [Reader(stalled, datas, "stalled", go), Reader(trickle, datas, "trickle")]
    for r in fast_readers + slow_readers:
        r.start()
    publish(p, triggers("r", datas), chunk=[10, 1, 25, 3])
    # The fast readers are not held up by the one that reads nothing.
    join_readers(fast_readers, 40)
    assert slow_readers[0].count == 0 and slow_readers[0].is_alive()
    settle()
    held = kernel_held(D.port, stalled)
    assert held_check(sum(datas_len(datas)), held), (
        "the stalled reader's socket did not fill: %d in the kernel" % held)
    assert "slow consumer" not in D.logtext(), "cut under the cap:\n" + D.logtext()[-2000:]
    go.set()
    join_readers(slow_readers, 40)
    # Still served: a round trip on the stalled one after its backlog.
    rid = stalled.send(ping=pb.Ping(nonce=77))
    assert stalled.expect("pong", rid).nonce == 77
    for c in fast + [stalled, trickle, p]:
        c.close()


def dash_frames(n_metrics, n_alerts):
    frames = []
    for i in range(n_metrics):
        m = dash.MetricsUpdate(cpu=i % 100, memory=50, requests=i, errors=0, latency=0.1)
        frames.append(frame(pb.ClientFrame(request_id=1, trigger=pb.Trigger(
            room="dash", event="metrics:update", data=m.SerializeToString())).SerializeToString()))
        if i % (n_metrics // n_alerts) == n_metrics // n_alerts - 1:
            a = dash.AlertTriggered(alert_id="a%d" % i, severity=dash.high, message="m",
                                    timestamp=i)
            frames.append(frame(pb.ClientFrame(request_id=2, trigger=pb.Trigger(
                room="dash", event="alert:triggered",
                data=a.SerializeToString())).SerializeToString()))
    return frames


class DashReader(threading.Thread):
    """Reads until it has the newest metrics:update and n_alerts alerts; records
    the metrics' `requests` values and the alerts' (seq, id) in order."""

    def __init__(self, c, n_metrics, n_alerts, go=None):
        super().__init__(daemon=True)
        self.c, self.n_metrics, self.n_alerts, self.go = c, n_metrics, n_alerts, go
        self.requests, self.alerts = [], []
        self.error = None

    def run(self):
        try:
            fr = Frames(self.c)
            if self.go is not None and not self.go.wait(60):
                raise AssertionError("never told to read")
            while (not self.requests or self.requests[-1] != self.n_metrics - 1 or
                   len(self.alerts) < self.n_alerts):
                e = fr.event()
                if e.event == "metrics:update":
                    m = dash.MetricsUpdate()
                    m.ParseFromString(e.data)
                    self.requests.append(m.requests)
                else:
                    assert e.event == "alert:triggered", e
                    a = dash.AlertTriggered()
                    a.ParseFromString(e.data)
                    self.alerts.append((e.seq, a.alert_id))
        except BaseException as ex:  # noqa: B902 - reported by the test
            self.error = ex


def test_latest_conflates_and_stream_keeps_every_alert_among_fast_readers():
    # Big caps here: what is checked is the delivery policy once the slow
    # reader's socket is full, not the cut (the next test).
    d = start(SLOW_CONFIG.replace("2097152", "67108864").replace("1048576", "67108864"))
    try:
        n_metrics, n_alerts = 30000, 10
        n_fill = fill_bytes() // 1000
        slow = joined(d.port, "dash", "slow", rcvbuf=65536, timeout=30)
        fast = [joined(d.port, "dash", "fast%d" % i) for i in range(16)]
        p = publisher(d.port, "dash")
        go = threading.Event()
        readers = [DashReader(c, n_metrics, n_fill + n_alerts) for c in fast]
        slow_r = DashReader(slow, n_metrics, n_fill + n_alerts, go)
        for r in readers + [slow_r]:
            r.start()
        # Phase 1: big alerts (stream), more than the socket to the slow
        # reader holds, so it is backed up when the metrics come.
        msg = "f" * 1000  # the schema allows up to 1024
        fill = [frame(pb.ClientFrame(request_id=4, trigger=pb.Trigger(
            room="dash", event="alert:triggered", data=dash.AlertTriggered(
                alert_id="f%d" % i, severity=dash.low, message=msg,
                timestamp=i).SerializeToString())).SerializeToString())
            for i in range(n_fill)]
        publish(p, fill, chunk=200)
        settle()
        held = kernel_held(d.port, slow)
        sent = n_fill * len(msg)  # fewer than the bytes of the events sent
        assert held_check(sent, held), "slow reader's socket not full: %d sent, %d held" % (
            sent, held)
        # Phase 2: many metrics (latest) and a few alerts (stream).
        publish(p, dash_frames(n_metrics, n_alerts))
        go.set()
        want_ids = ["f%d" % i for i in range(len(fill))] + [
            "a%d" % (k * (n_metrics // n_alerts) + n_metrics // n_alerts - 1)
            for k in range(n_alerts)]
        deadline = time.time() + 45
        for r in readers + [slow_r]:
            r.join(max(0.1, deadline - time.time()))
            assert not r.is_alive(), "reader still reading: %d metrics, %d alerts" % (
                len(r.requests), len(r.alerts))
            assert r.error is None, repr(r.error)
            # latest: whatever was skipped, the values seen only go forward
            # and end with the newest; stream: every alert, once, in order.
            assert all(a < b for a, b in zip(r.requests, r.requests[1:])), "metrics went back"
            assert r.requests[-1] == n_metrics - 1
            got = [a for _, a in r.alerts]
            assert got == want_ids, "alerts lost or out of order: %d of %d, first difference %s" % (
                len(got), len(want_ids),
                next(((i, g, w) for i, (g, w) in enumerate(zip(got, want_ids)) if g != w), None))
            seqs = [s for s, _ in r.alerts]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(want_ids), seqs
        # Everyone's queue conflates within a turn; the backed-up reader's
        # across turns as well.
        assert len(slow_r.requests) < min(len(r.requests) for r in readers), (
            len(slow_r.requests), sorted(len(r.requests) for r in readers))
        print("metrics delivered to the backed-up reader: %d of %d; to the fast ones: %d-%d" % (
            len(slow_r.requests), n_metrics, min(len(r.requests) for r in readers),
            max(len(r.requests) for r in readers)))
        assert "slow consumer" not in d.logtext(), d.logtext()[-2000:]
        for c in fast + [slow, p]:
            c.close()
    finally:
        stop_ok(d)


def test_slow_consumer_over_the_cap_is_cut_others_keep_receiving():
    never = joined(S.port, "dash", "never-reads", rcvbuf=4096)
    rid = never.send(unsubscribe=pb.Unsubscribe(room="dash", events=["metrics:update"]))
    never.expect("joined", rid)
    ok = [joined(S.port, "dash", "reader%d" % i) for i in range(10)]
    p = publisher(S.port, "dash")
    big = "x" * 1000
    alerts = [frame(pb.ClientFrame(request_id=3, trigger=pb.Trigger(
        room="dash", event="alert:triggered", data=dash.AlertTriggered(
            alert_id="s%d" % i, severity=dash.low, message=big,
            timestamp=i).SerializeToString())).SerializeToString()) for i in range(400)]
    rounds = 16  # ~6.6 MB: more than the 2 MiB cap plus the socket's buffers
    total = rounds * len(alerts)

    class OkReader(threading.Thread):
        def __init__(self, c):
            super().__init__(daemon=True)
            self.c, self.ids, self.error = c, [], None

        def run(self):
            try:
                fr = Frames(self.c)
                while len(self.ids) < total:
                    e = fr.event()
                    assert e.event == "alert:triggered", e
                    a = dash.AlertTriggered()
                    a.ParseFromString(e.data)
                    assert a.message == big, "alert %s corrupted" % a.alert_id
                    self.ids.append(a.alert_id)
            except BaseException as ex:  # noqa: B902 - reported by the test
                self.error = ex

    readers = [OkReader(c) for c in ok]
    for r in readers:
        r.start()
    for k in range(rounds):
        publish(p, alerts)
        # Paced: a round at a time, so no reader (Python threads sharing a
        # GIL) falls 2 MiB behind and is cut too; `never` falls further
        # behind every round.
        deadline = time.time() + 20
        while (time.time() < deadline and
               any(r.is_alive() and len(r.ids) < (k + 1) * len(alerts) for r in readers)):
            time.sleep(0.005)
    want = ["s%d" % (i % len(alerts)) for i in range(total)]
    deadline = time.time() + 40
    for r in readers:
        r.join(max(0.1, deadline - time.time()))
        assert not r.is_alive(), "reader still reading (%d of %d)" % (len(r.ids), total)
        assert r.error is None, repr(r.error)
        assert r.ids == want, "alerts lost or out of order"
    assert wait_until(lambda: "slow consumer" in S.logtext()), S.logtext()[-2000:]
    # The daemon closed its side of the socket to `never` (reading its MBs
    # through a 4 KiB window would take minutes, so the kernel is asked).
    assert daemon_closed(S.port, never)
    rid = p.send(ping=pb.Ping(nonce=5))
    assert p.expect("pong", rid).nonce == 5
    for c in ok + [never, p]:
        c.close()
    stop_ok(S)


def refused(top, *extra):
    """Runs dialogued with MINI_CONFIG's top line set to `top` (and extra
    flags); it must exit non-zero by itself. Returns its output."""
    path = write_config(MINI_CONFIG, top=top)
    args = [DAEMON, "--config", path, "--listen", "127.0.0.1:0",
            "--port-file", path + ".port"] + list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("%r %s was accepted (still running): %s" % (
            top, " ".join(extra), out.decode(errors="replace")[-1500:]))
    text = out.decode(errors="replace")
    assert proc.returncode != 0, "%r %s: exit 0: %s" % (top, " ".join(extra), text)
    return text


def started_with(top, *extra, env=ENV):
    """Starts a daemon with MINI_CONFIG (top line `top`), checks it serves a
    Ping, stops it (exit 0) and returns its log."""
    d = start(MINI_CONFIG, *extra, env=env, top=top)
    try:
        c = Conn(d.port)
        c.hello()
        rid = c.send(ping=pb.Ping(nonce=3))
        assert c.expect("pong", rid).nonce == 3
        c.close()
    finally:
        stop_ok(d)
    return d.logtext()


def start_lines(log):
    return [ln for ln in log.splitlines() if re.search(r"send threads: \d+ \(", ln)]


def test_config_values_refused():
    for bad in ("send_threads: 65", "send_threads: -1", "send_threads: two",
                "send_threads: 1.5", "send_threads: [2]"):
        text = refused(bad)
        assert "send_threads" in text, "%r refused without naming send_threads: %s" % (bad, text)
    for bad in ("65", "-1", "two"):
        text = refused("", "--send-threads", bad)
        assert "send-threads" in text, "--send-threads %s: %s" % (bad, text)


def test_config_values_reported():
    log = started_with("send_threads: 1")
    assert "send threads: 1 (the loop thread only)" in log, log
    assert len(start_lines(log)) == 1, log
    assert not STATS_RE.search(log), "helpers reported with send_threads: 1:\n" + log
    log = started_with("send_threads: 3")
    assert "send threads: 3 (the loop thread and 2 helpers)" in log, log
    assert len(start_lines(log)) == 1, log
    assert STATS_RE.search(log), "no send thread summary at exit:\n" + log
    # The flag wins over the file, both ways.
    log = started_with("send_threads: 1", "--send-threads", "2")
    assert "send threads: 2 (the loop thread and 1 helper)" in log, log
    assert len(start_lines(log)) == 1, log
    log = started_with("send_threads: 3", "--send-threads", "1")
    assert "send threads: 1 (the loop thread only)" in log, log
    assert len(start_lines(log)) == 1, log
    # Default (and 0): one per online core.
    cores = min(os.sysconf("SC_NPROCESSORS_ONLN"), 64)
    want = ("send threads: 1 (the loop thread only)" if cores == 1 else
            "send threads: %d (the loop thread and %d helper%s)" % (
                cores, cores - 1, "" if cores == 2 else "s"))
    for top in ("", "send_threads: 0"):
        log = started_with(top)
        assert want in log, "%r: want %r:\n%s" % (top, want, log)


def test_io_uring_keeps_sends_on_the_loop_thread():
    env = dict(os.environ)
    env.pop("DIALOGUE_IO_URING", None)
    log = started_with("send_threads: 4\nio_uring: true", env=env)
    if "io_uring: on (" in log:
        assert "send threads: 1 (io_uring sends from the loop thread)" in log, log
        assert not STATS_RE.search(log), log
    else:
        # The kernel refused io_uring: write() and the helpers instead.
        assert "io_uring: cannot set up" in log, log
        print("io_uring refused by this kernel: checked the helpers start instead")
        assert "send threads: 4 (the loop thread and 3 helpers)" in log, log
    assert len(start_lines(log)) == 1, log


def test_sigterm_mid_fanout_exits_zero():
    d = start(FANOUT_CONFIG)
    subs = [joined(d.port, "r", "sub%d" % i) for i in range(12)]
    stalled = joined(d.port, "r", "stalled", rcvbuf=65536)
    p = publisher(d.port, "r")
    datas = [payload(i, 16000) for i in range(50)]
    frames = triggers("r", datas)
    stop = threading.Event()
    seen = [0] * len(subs)

    def drain(k, c):
        c.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                data = c.sock.recv(262144)
                if not data:
                    return
                seen[k] += len(data)
            except (socket.timeout, OSError):
                if stop.is_set():
                    return

    def pump():
        try:
            while not stop.is_set():
                p.send_raw(b"".join(frames))
        except OSError:
            pass  # the daemon went away under it

    threads = [threading.Thread(target=drain, args=(k, c), daemon=True)
               for k, c in enumerate(subs)]
    threads.append(threading.Thread(target=pump, daemon=True))
    for t in threads:
        t.start()
    deadline = time.time() + 15
    while time.time() < deadline and min(seen) < 2_000_000:
        time.sleep(0.05)
    assert min(seen) >= 2_000_000, "fan-out did not get going: %s" % seen
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        d.proc.wait()
        raise AssertionError("dialogued did not exit within 10 s of SIGTERM mid-fan-out:\n" +
                             d.logtext()[-2000:])
    stop.set()
    for t in threads:
        t.join(5)
    assert rc == 0, "exit %d:\n%s" % (rc, d.logtext()[-3000:])
    m = STATS_RE.search(d.logtext())
    assert m and int(m.group(1)) > 0, d.logtext()[-2000:]
    print("exited %.2f s after SIGTERM; %s flushes shared, helpers flushed %s" % (
        time.time() - t0, m.group(1), m.group(2)))
    d.stop()
    for c in subs + [stalled, p]:
        c.close()


def test_clean_exit_after_fanout():
    # A subscriber with output still queued behind a full socket must not
    # hold the exit up.
    stalled = joined(D.port, "r", "stalled", rcvbuf=65536)
    p = publisher(D.port, "r")
    datas = [payload(i, 30000) for i in range(fill_bytes() // 30000)]
    publish(p, triggers("r", datas), chunk=10)
    settle()
    assert held_check(sum(datas_len(datas)), kernel_held(D.port, stalled))
    stop_ok(D)
    m = STATS_RE.search(D.logtext())
    assert m, "no send thread summary at exit:\n" + D.logtext()[-2000:]
    shared, helped = int(m.group(1)), int(m.group(2))
    print("fan-out daemon: %d flushes shared, the helpers flushed %d connections" % (
        shared, helped))
    # Hundreds of turns had 24 connections with output: the helpers took
    # some (a helper that wakes late takes fewer, not none every time).
    assert shared > 0 and helped > 0, m.group(0)
    stalled.close()
    p.close()


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 60)
