"""Presence (issue 20): the system events presence:join / presence:leave,
sent to members that subscribed to them by name, gathered for 500 ms and
coalesced; never through "*", never from a client."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, joined_room, open_room_config, pb, run_tests, write_config  # noqa

D = Daemon(config=write_config(open_room_config()))


def watcher(name="watch"):
    w = joined_room(D.port, "r", name)
    rid = w.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
    w.expect("joined", rid)
    rid = w.send(subscribe=pb.Subscribe(room="r", events=["presence:join", "presence:leave"]))
    j = w.expect("joined", rid)
    assert list(j.subscriptions) == ["presence:join", "presence:leave"], j
    # Its own join (and the leaves of earlier tests) end their window.
    presence_events(w, 0.8)
    return w


def presence_events(w, within):  # noqa: E302
    """Every presence event w gets in `within` seconds."""
    got = []
    deadline = time.time() + within
    while time.time() < deadline:
        w.sock.settimeout(max(0.05, deadline - time.time()))
        try:
            f = w.recv()
        except (TimeoutError, OSError):
            break
        if f.WhichOneof("msg") == "event" and f.event.event.startswith("presence:"):
            pc = pb.PresenceChange()
            pc.ParseFromString(f.event.data)
            assert f.event.from_kind == pb.IDENTITY_SERVER and f.event.seq == 0, f.event
            got.append((f.event.event, list(pc.members), pc.count, pc.more))
    w.sock.settimeout(5)
    return got


def test_join_and_leave_are_reported():
    w = watcher()
    b = joined_room(D.port, "r", "b")
    ev = presence_events(w, 1.5)
    assert len(ev) == 1 and ev[0][0] == "presence:join" and len(ev[0][1]) == 1, ev
    name = ev[0][1][0]
    assert ev[0][2] == 2, ev  # watcher and b
    rid = b.send(leave=pb.Leave(room="r"))
    b.expect("left", rid)
    ev = presence_events(w, 1.5)
    assert ev == [("presence:leave", [name], 1, 0)], ev
    b.close()
    w.close()


def test_changes_are_coalesced_and_come_and_go_cancels():
    w = watcher()
    others = [joined_room(D.port, "r", "m%d" % i) for i in range(5)]
    # One that comes and goes within the window is not reported at all.
    flash = joined_room(D.port, "r", "flash")
    flash.close()
    ev = presence_events(w, 1.5)
    assert len(ev) == 1 and ev[0][0] == "presence:join", ev
    assert len(ev[0][1]) == 5 and ev[0][2] == 6, ev
    for o in others:
        o.close()
    ev = presence_events(w, 1.5)
    assert len(ev) == 1 and ev[0][0] == "presence:leave" and len(ev[0][1]) == 5, ev
    assert ev[0][2] == 1, ev
    w.close()


def test_rate_is_bounded():
    w = watcher()
    conns = []
    t0 = time.time()
    for i in range(20):  # one join every 100 ms for 2 s
        conns.append(joined_room(D.port, "r", "rate%d" % i))
        time.sleep(0.1)
    ev = presence_events(w, 1.2)
    elapsed = time.time() - t0
    joins = [e for e in ev if e[0] == "presence:join"]
    assert sum(len(e[1]) for e in joins) == 20, joins
    # At most one event per 500 ms window (plus the one in flight).
    assert len(joins) <= elapsed / 0.5 + 1, (len(joins), elapsed)
    assert len(joins) < 20, joins
    for c in conns:
        c.close()
    presence_events(w, 1.0)
    w.close()


def test_star_subscribers_and_unsubscribed_members_get_none():
    star = joined_room(D.port, "r", "star")  # default_subscriptions: ["*"]
    w = watcher()
    rid = w.send(unsubscribe=pb.Unsubscribe(room="r", events=["presence:join"]))
    j = w.expect("joined", rid)
    assert list(j.subscriptions) == ["presence:leave"], j
    b = joined_room(D.port, "r", "b2")
    assert presence_events(star, 1.2) == []
    assert presence_events(w, 0.3) == []
    b.close()
    ev = presence_events(w, 1.5)
    assert [e[0] for e in ev] == ["presence:leave"], ev
    # Unsubscribe all clears them too.
    rid = w.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
    assert list(w.expect("joined", rid).subscriptions) == []
    star.close()
    w.close()


def test_reserved_names():
    c = joined_room(D.port, "r", "x")
    rid = c.send(trigger=pb.Trigger(room="r", event="presence:join", data=b""))
    e = c.expect_error("PERMISSION_DENIED", rid)
    assert "server's own" in e.message, e.message
    rid = c.send(subscribe=pb.Subscribe(room="r", events=["presence:maybe"]))
    c.expect_error("NOT_FOUND", rid, contains="presence:join and presence:leave")
    c.close()


if __name__ == "__main__":
    try:
        run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
    finally:
        D.stop()
