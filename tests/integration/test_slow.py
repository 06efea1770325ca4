"""Slow consumers: per-event delivery policy. A reader that stops reading
gets the newest metrics:update (delivery: latest) instead of a backlog and
every alert:triggered (stream); a reader that never reads a stream event is
cut as a slow consumer while the others keep receiving."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (NO_CUT_LIMITS, Conn, Daemon, back_up, dash,  # noqa: E402
                     dash_policy_config, frame, open_room_config, pb, run_tests, write_config)

CONFIG = dash_policy_config()

D = None


def setup():
    global D
    D = Daemon(config=write_config(CONFIG))


def joined(name, rcvbuf=None):
    c = Conn(D.port)
    if rcvbuf:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.hello(name=name)
    rid = c.send(join=pb.Join(room="dash"))
    c.expect("joined", rid)
    return c


def publish(p, frames, expect):
    """Sends frames in chunks and reads Acks so the publisher is never slow."""
    acks = 0
    for i in range(0, len(frames), 2000):
        p.send_raw(b"".join(frames[i:i + 2000]))
        want = min(i + 2000, len(frames))
        while acks < want:
            f = p.recv()
            kind = f.WhichOneof("msg")
            assert kind == "ack", f
            acks += 1
    assert acks == expect


def alert_frame(alert_id, message="m", request_id=2):
    return frame(pb.ClientFrame(request_id=request_id, trigger=pb.Trigger(
        room="dash", event="alert:triggered", data=dash.AlertTriggered(
            alert_id=alert_id, severity=dash.high, message=message,
            timestamp=1).SerializeToString())).SerializeToString())


def test_latest_conflates_and_stream_keeps_every_alert():
    # 64 KiB: a 4 KiB window would take minutes to drain the megabytes the
    # daemon's send buffer grows to before the daemon has to hold anything.
    slow = joined("slow", rcvbuf=65536)
    p = joined("pub")
    rid = p.send(unsubscribe=pb.Unsubscribe(room="dash", all=True))
    p.expect("joined", rid)
    # Phase 1: alerts (stream) of 1,000 bytes until the slow reader's socket
    # is full and the daemon holds 256 KiB more for it (under the 1 MiB
    # soft cap, so it is not cut).
    fill_ids = []

    def send_fill():
        batch = ["f%d" % (len(fill_ids) + i) for i in range(64)]
        publish(p, [alert_frame(a, "f" * 1000, 4) for a in batch], len(batch))
        fill_ids.extend(batch)

    back_up(D.port, slow, send_fill, 64 * 1000)
    # Phase 2, behind the full socket: 60,000 metrics (latest) with 20
    # alerts (stream) among them.
    frames, want_alerts = [], []
    n_metrics, n_alerts = 60000, 20
    for i in range(n_metrics):
        m = dash.MetricsUpdate(cpu=(i % 100), memory=50, requests=i, errors=0, latency=0.1)
        frames.append(frame(pb.ClientFrame(request_id=1, trigger=pb.Trigger(
            room="dash", event="metrics:update", data=m.SerializeToString())).SerializeToString()))
        if i % (n_metrics // n_alerts) == n_metrics // n_alerts - 1:
            want_alerts.append("a%d" % i)
            frames.append(alert_frame(want_alerts[-1]))
    publish(p, frames, len(frames))
    # Now read everything the slow reader was sent.
    metrics_seen, alerts, seqs = [], [], []
    slow.sock.settimeout(10)
    while len(alerts) < len(fill_ids) + n_alerts or not metrics_seen:
        f = slow.recv()
        if f.WhichOneof("msg") != "event":
            raise AssertionError("slow reader got %s" % f)
        if f.event.event == "metrics:update":
            m = dash.MetricsUpdate()
            m.ParseFromString(f.event.data)
            metrics_seen.append(m.requests)
        else:
            a = dash.AlertTriggered()
            a.ParseFromString(f.event.data)
            alerts.append(a.alert_id)
            seqs.append(f.event.seq)
    # latest: no backlog, only the newest value (every metric came while
    # the socket was full, so they all folded into one queued event; a
    # second may have been on its way already).
    assert metrics_seen[-1] == n_metrics - 1, "newest metrics:update not delivered: %s" % (
        metrics_seen[-5:])
    assert len(metrics_seen) <= 2, "a backlog of %d metrics:update reached the slow reader" % (
        len(metrics_seen))
    # stream: every alert, once, in order.
    assert alerts == fill_ids + want_alerts, "alerts lost or out of order"
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "slow consumer" not in D.logtext(), D.logtext()[-2000:]
    print("behind %d fill alerts: metrics delivered to the slow reader: %d of %d" % (
        len(fill_ids), len(metrics_seen), n_metrics))
    slow.close()
    p.close()


def test_stream_slow_consumer_cut_others_keep_receiving():
    never = joined("never-reads", rcvbuf=4096)
    rid = never.send(unsubscribe=pb.Unsubscribe(room="dash", events=["metrics:update"]))
    never.expect("joined", rid)
    ok = joined("reader")
    p = joined("pub2")
    rid = p.send(unsubscribe=pb.Unsubscribe(room="dash", all=True))
    p.expect("joined", rid)
    big = "x" * 1000
    frames = [frame(pb.ClientFrame(request_id=3, trigger=pb.Trigger(
        room="dash", event="alert:triggered", data=dash.AlertTriggered(
            alert_id="s%d" % i, severity=dash.low, message=big,
            timestamp=i).SerializeToString())).SerializeToString()) for i in range(400)]
    got = 0
    for i in range(0, 20):
        publish(p, frames, len(frames))
        ok.sock.settimeout(5)
        for _ in range(len(frames)):
            f = ok.recv()
            assert f.WhichOneof("msg") == "event", f
            got += 1
    assert got == 20 * len(frames)
    # The never-reading member was cut (its buffers are bounded, not the daemon's memory).
    deadline = time.time() + 10
    while time.time() < deadline and "slow consumer" not in D.logtext():
        time.sleep(0.1)
    assert "slow consumer" in D.logtext()
    ok.close()
    p.close()
    never.close()


WT_CONFIG = open_room_config("", NO_CUT_LIMITS + ("write_timeout_ms: 1000",))


def test_write_that_cannot_drain_is_cut():
    d = Daemon(config=write_config(WT_CONFIG))
    try:
        stuck = Conn(d.port)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.hello()
        rid = stuck.send(join=pb.Join(room="r"))
        stuck.expect("joined", rid)
        p = Conn(d.port)
        p.hello()
        rid = p.send(join=pb.Join(room="r"))
        p.expect("joined", rid)
        rid = p.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
        p.expect("joined", rid)
        big = b"y" * 16000
        frames = [frame(pb.ClientFrame(request_id=7, trigger=pb.Trigger(
            room="r", event="x:y", data=big)).SerializeToString()) for _ in range(100)]
        for _ in range(3):  # ~5 MB: far more than the socket buffers hold
            publish(p, frames, len(frames))
        deadline = time.time() + 10
        while time.time() < deadline and "write did not drain" not in d.logtext():
            time.sleep(0.1)
        assert "write did not drain in 1000 ms" in d.logtext(), d.logtext()[-2000:]
        # The publisher was never delayed by it.
        rid = p.send(ping=pb.Ping(nonce=3))
        assert p.expect("pong", rid).nonce == 3
        p.close()
        stuck.close()
    finally:
        assert d.stop() == 0


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
