"""The io_uring send path (config `io_uring: true`, flag --io-uring): a
fan-out to several subscribers, one of them slow enough that its socket
fills and sends come back short, reaches everyone whole and in order; the
pending-output cap, "latest" conflation and the write timeout still apply
(a send parked on a full socket is cancelled when its connection is cut);
the daemon says it used io_uring. The other suites run through io_uring
with DIALOGUE_IO_URING=1 in the environment.

If the kernel refuses io_uring the daemon falls back to write(): then this
checks the warning and the same delivery guarantees, and says so."""
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (NO_CUT_LIMITS, Conn, Daemon, back_up, dash,  # noqa: E402
                     daemon_closed, dash_policy_config, frame, open_room_config, pb,
                     publisher, run_tests, wait_until, write_config)
from dlgtest import joined_room as joined, publish_acked as publish  # noqa: E402

# The tests here choose io_uring themselves: an outer DIALOGUE_IO_URING=0
# must not turn it off.
ENV = dict(os.environ)
ENV.pop("DIALOGUE_IO_URING", None)

FANOUT_CONFIG = open_room_config("io_uring: true", ("max_frame: 65536",) + NO_CUT_LIMITS)

SLOW_CONFIG = dash_policy_config("io_uring: true")

WT_CONFIG = open_room_config("io_uring: true", NO_CUT_LIMITS + ("write_timeout_ms: 1000",))


def start(config_text):
    return Daemon(config=write_config(config_text), env=ENV)


def uring_on(d):
    """True if d sends through io_uring; False (after checking the warning
    names the cause) if the kernel refused it."""
    text = d.logtext()
    if "io_uring: on (" in text:
        return True
    m = re.search(r"io_uring: cannot set up \((.+)\); sending with write\(\) instead", text)
    assert m, "neither io_uring on nor a fallback warning:\n" + text[-2000:]
    print("io_uring refused by this kernel (%s): checked the write() fallback" % m.group(1))
    return False


def stats(d):
    """(sends, continued, failed, submits) from the line logged at stop."""
    m = re.search(r"io_uring: (\d+) sends \((\d+) continued after a short send, (\d+) failed\) "
                  r"in (\d+) submits", d.logtext())
    assert m, d.logtext()[-2000:]
    return tuple(int(x) for x in m.groups())





def numbered(room, n, size):
    """n Trigger frames whose payload starts with its index (4 bytes)."""
    pad = b"p" * (size - 4)
    return [frame(pb.ClientFrame(request_id=i + 1, trigger=pb.Trigger(
        room=room, event="n:x", data=struct.pack(">I", i) + pad)).SerializeToString())
        for i in range(n)]


class Reader(threading.Thread):
    """Reads n events on c and records (seq, index) of each; slow=True
    pauses first, then reads 4 KiB at a time for a while, so the daemon's
    socket to it fills while the others drain."""

    def __init__(self, c, n, slow=False):
        super().__init__(daemon=True)
        self.c, self.n, self.slow = c, n, slow
        self.got = []
        self.error = None

    def run(self):
        try:
            if self.slow:
                time.sleep(1.0)  # let the publisher run ahead: its socket fills
                raw = self.c.sock
                for _ in range(300):  # a trickle, so sends complete short
                    self.c.buf += raw.recv(4096)
                    time.sleep(0.002)
            while len(self.got) < self.n:
                f = self.c.recv()
                if f.WhichOneof("msg") != "event":
                    raise AssertionError("got %s" % f)
                self.got.append((f.event.seq, struct.unpack(">I", f.event.data[:4])[0]))
        except BaseException as e:  # noqa: B902 - reported by the test
            self.error = e


D = None


def setup():
    global D
    D = start(FANOUT_CONFIG)


def test_fanout_whole_and_in_order_with_a_slow_reader():
    n, size = 4000, 2048  # 8 MB to each subscriber: more than a socket buffers
    subs = [joined(D.port, "r", "fast%d" % i) for i in range(4)]
    # 64 KiB: small enough that its socket fills; a 4 KiB window makes
    # loopback TCP itself crawl (seconds per MB, with write() as well).
    slow = joined(D.port, "r", "slow", rcvbuf=65536)
    p = publisher(D.port, "r")
    readers = [Reader(c, n) for c in subs] + [Reader(slow, n, slow=True)]
    for r in readers:
        r.start()
    publish(p, numbered("r", n, size))
    for r in readers:
        r.join(50)
        assert not r.is_alive(), "reader %s still reading" % r.c
        assert r.error is None, repr(r.error)
        assert [i for _, i in r.got] == list(range(n)), "events lost or out of order"
        seqs = [s for s, _ in r.got]
        assert seqs == list(range(seqs[0], seqs[0] + n)), "seq not consecutive"
    for c in subs + [slow, p]:
        c.close()


def test_fanout_daemon_used_io_uring_and_continued_short_sends():
    on = uring_on(D)
    assert D.stop() == 0, D.logtext()[-3000:]
    if not on:
        return
    sends, continued, failed, submits = stats(D)
    print("io_uring: %d sends, %d continued after a short send, %d failed, %d submits" % (
        sends, continued, failed, submits))
    assert sends > 0 and submits > 0
    # Several sends went to the kernel per submit (the point of it).
    assert submits < sends, (sends, submits)
    # The slow reader's socket filled: some sends came back short and the
    # rest went out in order (checked by the previous test).
    assert continued >= 1, (sends, continued)


def test_latest_conflated_and_stream_cap_cuts_a_reader_that_never_reads():
    d = start(SLOW_CONFIG)
    try:
        on = uring_on(d)
        # 64 KiB: see test_slow.py (a 4 KiB window drains too slowly).
        slow = joined(d.port, "dash", "slow", rcvbuf=65536)
        p = publisher(d.port, "dash")
        # Phase 1: 1,000-byte alerts (stream) until the daemon holds 256 KiB
        # for the slow reader behind its full socket; then many metrics
        # (latest) and a few alerts, all while it is backed up.
        fill_ids = []

        def send_fill():
            batch = ["f%d" % (len(fill_ids) + i) for i in range(64)]
            publish(p, [frame(pb.ClientFrame(request_id=4, trigger=pb.Trigger(
                room="dash", event="alert:triggered", data=dash.AlertTriggered(
                    alert_id=a, severity=dash.low, message="f" * 1000,
                    timestamp=1).SerializeToString())).SerializeToString()) for a in batch])
            fill_ids.extend(batch)

        back_up(d.port, slow, send_fill, 64 * 1000)
        n_metrics, n_alerts = 30000, 10
        frames, want_alerts = [], []
        for i in range(n_metrics):
            m = dash.MetricsUpdate(cpu=i % 100, memory=50, requests=i, errors=0, latency=0.1)
            frames.append(frame(pb.ClientFrame(request_id=1, trigger=pb.Trigger(
                room="dash", event="metrics:update",
                data=m.SerializeToString())).SerializeToString()))
            if i % (n_metrics // n_alerts) == n_metrics // n_alerts - 1:
                want_alerts.append("a%d" % i)
                a = dash.AlertTriggered(alert_id=want_alerts[-1], severity=dash.high,
                                        message="m", timestamp=i)
                frames.append(frame(pb.ClientFrame(request_id=2, trigger=pb.Trigger(
                    room="dash", event="alert:triggered",
                    data=a.SerializeToString())).SerializeToString()))
        publish(p, frames)
        # The slow reader gets the newest metrics:update and no backlog of
        # them, and every alert in order.
        slow.sock.settimeout(10)
        metrics_seen, alerts, alert_seqs = [], [], []
        while not metrics_seen or len(alerts) < len(fill_ids) + n_alerts:
            f = slow.recv()
            assert f.WhichOneof("msg") == "event", f
            if f.event.event == "metrics:update":
                m = dash.MetricsUpdate()
                m.ParseFromString(f.event.data)
                metrics_seen.append(m.requests)
            else:
                a = dash.AlertTriggered()
                a.ParseFromString(f.event.data)
                alerts.append(a.alert_id)
                alert_seqs.append(f.event.seq)
        assert metrics_seen[-1] == n_metrics - 1, metrics_seen[-5:]
        assert len(metrics_seen) <= 2, "a backlog of %d metrics" % len(metrics_seen)
        assert alerts == fill_ids + want_alerts, "alerts lost or out of order"
        assert alert_seqs == sorted(alert_seqs) and len(set(alert_seqs)) == len(alert_seqs)
        print("behind %d fill alerts: metrics delivered to the slow reader: %d of %d" % (
            len(fill_ids), len(metrics_seen), n_metrics))
        slow.close()
        never = joined(d.port, "dash", "never-reads", rcvbuf=4096)
        rid = never.send(unsubscribe=pb.Unsubscribe(room="dash", events=["metrics:update"]))
        never.expect("joined", rid)
        ok = joined(d.port, "dash", "reader")
        # Phase 2: big alerts, read by `ok` as they come; `never` passes the
        # 2 MiB cap (or holds more than 1 MiB for 2 s) and is cut.
        big = "x" * 1000
        alerts = [frame(pb.ClientFrame(request_id=3, trigger=pb.Trigger(
            room="dash", event="alert:triggered", data=dash.AlertTriggered(
                alert_id="s%d" % i, severity=dash.low, message=big,
                timestamp=i).SerializeToString())).SerializeToString()) for i in range(400)]
        rounds = 20  # 8 MB: more than the socket to `never` holds
        got_ok = []
        ok.sock.settimeout(10)
        last_seq = {}
        for _ in range(rounds):
            publish(p, alerts)
            while True:
                f = ok.recv()
                assert f.WhichOneof("msg") == "event", f
                assert f.event.seq > last_seq.get(f.event.event, -1), "out of order"
                last_seq[f.event.event] = f.event.seq
                if f.event.event == "alert:triggered" and f.event.data:
                    a = dash.AlertTriggered()
                    a.ParseFromString(f.event.data)
                    if a.alert_id.startswith("s"):
                        got_ok.append(a.alert_id)
                        if len(got_ok) % len(alerts) == 0:
                            break
        assert got_ok == ["s%d" % (i % len(alerts)) for i in range(rounds * len(alerts))]
        assert wait_until(lambda: "slow consumer" in d.logtext()), d.logtext()[-2000:]
        # The daemon closed its side (see test_parked_send_cancelled...).
        assert daemon_closed(d.port, never)
        for c in (never, ok, p):
            c.close()
    finally:
        assert d.stop() == 0, d.logtext()[-3000:]
    if on:
        print("io_uring: %d sends, %d continued, %d failed, %d submits" % stats(d))


def test_parked_send_cancelled_by_write_timeout():
    d = start(WT_CONFIG)
    try:
        on = uring_on(d)
        stuck = joined(d.port, "r", "stuck", rcvbuf=4096)
        p = publisher(d.port, "r")
        big = b"y" * 16000
        frames = [frame(pb.ClientFrame(request_id=7, trigger=pb.Trigger(
            room="r", event="x:y", data=big)).SerializeToString()) for _ in range(100)]
        for _ in range(4):  # ~6 MB: more than the socket buffers hold
            publish(p, frames)
        assert wait_until(lambda: "write did not drain in 1000 ms" in d.logtext()), (
            d.logtext()[-2000:])
        # The daemon's side of the socket really closed (FIN sent, behind
        # the bytes already in the socket): the parked send was cancelled
        # rather than holding the socket open. Reading those MBs through a
        # 4 KiB window would take minutes, so the kernel's table is asked.
        assert daemon_closed(d.port, stuck)
        rid = p.send(ping=pb.Ping(nonce=5))
        assert p.expect("pong", rid).nonce == 5
        p.close()
        stuck.close()
    finally:
        assert d.stop() == 0, d.logtext()[-3000:]
    if on:
        sends, continued, failed, submits = stats(d)
        assert failed >= 1, "the parked send was not cancelled"


def test_flag_and_environment():
    d = Daemon("--io-uring", env=ENV)
    try:
        c = Conn(d.port)
        c.hello()
        rid = c.send(ping=pb.Ping(nonce=9))
        assert c.expect("pong", rid).nonce == 9
        c.close()
        uring_on(d)
    finally:
        assert d.stop() == 0, d.logtext()[-3000:]
    # DIALOGUE_IO_URING=0 turns the config's io_uring off.
    env = dict(ENV, DIALOGUE_IO_URING="0")
    d = Daemon(config=write_config(FANOUT_CONFIG), env=env)
    try:
        c = Conn(d.port)
        c.hello()
        rid = c.send(ping=pb.Ping(nonce=10))
        assert c.expect("pong", rid).nonce == 10
        c.close()
        assert "io_uring" not in d.logtext(), d.logtext()
    finally:
        assert d.stop() == 0, d.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 90)
