"""Slow consumers: per-event delivery policy. A reader that stops reading
gets the newest metrics:update (delivery: latest) instead of a backlog and
every alert:triggered (stream); a reader that never reads a stream event is
cut as a slow consumer while the others keep receiving."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, dash, frame, pb, run_tests, write_config  # noqa: E402

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
schemas: [{share}/dashboard.pb]
auth: {anonymous: true}
limits:
  max_frame: 65536
  max_pending_bytes: 2097152
  soft_pending_bytes: 1048576
  soft_pending_seconds: 2
rooms:
  - id: dash
    events: [metrics:update, alert:triggered]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    delivery:
      - {event: metrics:update, policy: latest}
      - {event: alert:triggered, policy: stream}
"""

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


def test_latest_conflates_and_stream_keeps_every_alert():
    slow = joined("slow", rcvbuf=4096)
    p = joined("pub")
    rid = p.send(unsubscribe=pb.Unsubscribe(room="dash", all=True))
    p.expect("joined", rid)
    frames = []
    n_metrics, n_alerts = 60000, 20
    for i in range(n_metrics):
        m = dash.MetricsUpdate(cpu=(i % 100), memory=50, requests=i, errors=0, latency=0.1)
        frames.append(frame(pb.ClientFrame(request_id=1, trigger=pb.Trigger(
            room="dash", event="metrics:update", data=m.SerializeToString())).SerializeToString()))
        if i % (n_metrics // n_alerts) == n_metrics // n_alerts - 1:
            a = dash.AlertTriggered(alert_id="a%d" % len(frames), severity=dash.high,
                                    message="m", timestamp=i)
            frames.append(frame(pb.ClientFrame(request_id=2, trigger=pb.Trigger(
                room="dash", event="alert:triggered",
                data=a.SerializeToString())).SerializeToString()))
    publish(p, frames, len(frames))
    # Now read everything the slow reader was sent.
    metrics_seen, alerts = 0, []
    last_requests = None
    slow.sock.settimeout(5)
    while True:
        f = slow.recv()
        if f.WhichOneof("msg") != "event":
            raise AssertionError("slow reader got %s" % f)
        if f.event.event == "metrics:update":
            m = dash.MetricsUpdate()
            m.ParseFromString(f.event.data)
            metrics_seen += 1
            last_requests = m.requests
            if m.requests == n_metrics - 1:
                break
        else:
            alerts.append(f.event.seq)
    assert last_requests == n_metrics - 1, "newest metrics:update not delivered"
    assert metrics_seen < n_metrics, "no conflation happened: %d" % metrics_seen
    # Every alert arrives, in order (the last may come after the last metric).
    while len(alerts) < n_alerts:
        f = slow.recv()
        assert f.WhichOneof("msg") == "event" and f.event.event == "alert:triggered", f
        alerts.append(f.event.seq)
    assert alerts == sorted(alerts) and len(set(alerts)) == n_alerts
    print("metrics delivered to the slow reader: %d of %d" % (metrics_seen, n_metrics))
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


WT_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
limits:
  max_pending_bytes: 67108864
  soft_pending_bytes: 67108864
  soft_pending_seconds: 3600
  write_timeout_ms: 1000
rooms:
  - id: r
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
"""


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
