"""Rooms and typed events against a real daemon: routing to subscribers
only, validation errors naming the field, max_size, [] and ["*"] rooms,
dynamic rooms, ListRooms and GetSchema."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, dash, pb, run_tests, write_config  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
schemas: [{share}/dashboard.pb]
auth:
  anonymous: true
room_admin:
  create: ["*"]
rooms:
  - id: lobby
    name: Lobby
    description: where everyone meets
    events: [metrics:update, alert:triggered]
    default_subscriptions: [metrics:update]
    max_size: 3
    join: ["*"]
    trigger: ["*"]
  - id: any
    name: Anything
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
  - id: quiet
    name: Quiet
    events: []
    join: ["*"]
    trigger: ["*"]
  - id: closed
    name: Closed
    events: [metrics:update]
  - id: limited
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    rate_limit: {per_second: 1, burst: 3}
"""

D = None


def setup():
    global D
    D = Daemon(config=write_config(CONFIG))


def member(room, name="m"):
    c = Conn(D.port)
    c.hello(name=name)
    # Members closed by an earlier test leave asynchronously: allow 2 s.
    for _ in range(40):
        rid = c.send(join=pb.Join(room=room))
        f = c.recv()
        if f.WhichOneof("msg") != "error" or f.error.code != pb.RESOURCE_EXHAUSTED:
            break
        time.sleep(0.05)
    assert f.WhichOneof("msg") == "joined" and f.request_id == rid, f
    return c, f.joined


def metrics(**kw):
    m = dash.MetricsUpdate(cpu=1, memory=2, requests=3, errors=0, latency=0.5)
    for k, v in kw.items():
        setattr(m, k, v)
    return m.SerializeToString()


def test_routing_exactly_once_to_subscribers_only():
    a, ja = member("lobby", "a")
    assert list(ja.subscriptions) == ["metrics:update"], ja
    b, _ = member("lobby", "b")
    rid = b.send(unsubscribe=pb.Unsubscribe(room="lobby", events=["metrics:update"]))
    assert list(b.expect("joined", rid).subscriptions) == []
    rid = b.send(subscribe=pb.Subscribe(room="lobby", events=["alert:triggered"]))
    assert list(b.expect("joined", rid).subscriptions) == ["alert:triggered"]
    outsider = Conn(D.port)
    outsider.hello(name="outsider")
    p = Conn(D.port)
    p_id = p.hello(name="p").client_id
    rid = p.send(join=pb.Join(room="lobby"))
    p.expect("joined", rid)
    payload = metrics(cpu=0)
    ack, mine = p.trigger("lobby", "metrics:update", payload)
    assert ack.recipients == 2, ack  # a and p (p has the default subscription)
    assert len(mine) == 1 and mine[0].seq == ack.seq, mine
    ev = a.expect("event", 0)
    assert (ev.room, ev.event, ev.data) == ("lobby", "metrics:update", payload)
    assert ev.seq == ack.seq and ev.seq >= 1
    assert ev.ts_ms > 1_600_000_000_000
    assert getattr(ev, "from") == p_id, getattr(ev, "from")
    assert a.barrier() == [], "a got a duplicate"
    assert b.barrier() == [], "b is not subscribed to metrics:update"
    assert outsider.barrier() == [], "non-member got an event"
    assert p.barrier() == [], "p got its event twice"
    for c in (a, b, outsider, p):
        c.close()


def test_from_is_server_set():
    p, _ = member("any", "p")
    _, evs = p.trigger("any", "x:y", b"\x01\x02")
    ev = evs[0]
    sender = getattr(ev, "from")
    assert sender.startswith("c"), sender  # anonymous: the connection id
    p.close()


def test_invalid_payload_names_field_and_reaches_nobody():
    a, _ = member("lobby", "a")
    rid = a.send(trigger=pb.Trigger(room="lobby", event="metrics:update",
                                    data=metrics(cpu=150)))
    a.expect_error("INVALID_ARGUMENT", rid, contains="metrics:update.cpu: 150 is above max 100")
    m = dash.MetricsUpdate(memory=2, requests=3, errors=0, latency=0.5)
    rid = a.send(trigger=pb.Trigger(room="lobby", event="metrics:update",
                                    data=m.SerializeToString()))
    a.expect_error("INVALID_ARGUMENT", rid, contains="metrics:update.cpu")
    assert a.barrier() == []
    a.close()


def test_trigger_requires_membership_and_allowed_event():
    c = Conn(D.port)
    c.hello()
    rid = c.send(trigger=pb.Trigger(room="lobby", event="metrics:update", data=metrics()))
    c.expect_error("FAILED_PRECONDITION", rid, contains="not a member of room lobby")
    rid = c.send(join=pb.Join(room="lobby"))
    c.expect("joined", rid)
    rid = c.send(trigger=pb.Trigger(room="lobby", event="chat:message", data=b""))
    c.expect_error("INVALID_ARGUMENT", rid, contains="does not accept event chat:message")
    rid = c.send(trigger=pb.Trigger(room="nowhere", event="metrics:update", data=b""))
    c.expect_error("NOT_FOUND", rid, contains="room nowhere")
    c.close()


def test_join_rules_deny_by_default():
    c = Conn(D.port)
    c.hello()
    rid = c.send(join=pb.Join(room="closed"))
    c.expect_error("PERMISSION_DENIED", rid, contains="closed")
    rid = c.send(subscribe=pb.Subscribe(room="closed", all=True))
    c.expect_error("FAILED_PRECONDITION", rid)
    c.close()


def test_max_size():
    conns = [member("lobby", "m%d" % i)[0] for i in range(3)]
    extra = Conn(D.port)
    extra.hello()
    rid = extra.send(join=pb.Join(room="lobby"))
    extra.expect_error("RESOURCE_EXHAUSTED", rid, contains="room lobby is full")
    conns[0].close()
    # Leaving (by disconnect) frees a place.
    ok = False
    for _ in range(50):
        rid = extra.send(join=pb.Join(room="lobby"))
        f = extra.recv()
        if f.WhichOneof("msg") == "joined":
            ok = True
            break
        time.sleep(0.05)
    assert ok, "place not freed after a member disconnected"
    for c in conns[1:] + [extra]:
        c.close()


def test_empty_events_room_refuses_client_triggers():
    q, _ = member("quiet", "q")
    rid = q.send(trigger=pb.Trigger(room="quiet", event="metrics:update", data=metrics()))
    q.expect_error("INVALID_ARGUMENT", rid, contains="does not accept")
    q.close()


def test_star_room_passes_any_event():
    a, ja = member("any", "a")
    assert list(ja.subscriptions) == ["*"], ja
    b, _ = member("any", "b")
    ack, _ = b.trigger("any", "chat:message", b"\xff\x00raw")
    assert ack.recipients == 2
    ev = a.expect("event", 0)
    assert (ev.event, ev.data) == ("chat:message", b"\xff\x00raw")
    rid = b.send(trigger=pb.Trigger(room="any", event="bad name!", data=b""))
    b.expect_error("INVALID_ARGUMENT", rid, contains="bad name!")
    a.close()
    b.close()


def test_subscribe_all_and_unsubscribe():
    a, _ = member("lobby", "a")
    rid = a.send(subscribe=pb.Subscribe(room="lobby", all=True))
    assert list(a.expect("joined", rid).subscriptions) == ["*"]
    rid = a.send(unsubscribe=pb.Unsubscribe(room="lobby", events=["metrics:update"]))
    assert list(a.expect("joined", rid).subscriptions) == ["alert:triggered"]
    rid = a.send(subscribe=pb.Subscribe(room="lobby", events=["nope:nope"]))
    a.expect_error("NOT_FOUND", rid, contains="nope:nope")
    rid = a.send(trigger=pb.Trigger(room="lobby", event="metrics:update", data=metrics()))
    assert a.expect("ack", rid).recipients == 0
    assert a.barrier() == []
    a.close()


def test_list_rooms():
    a, _ = member("lobby", "a")
    rid = a.send(list_rooms=pb.ListRooms(members=True))
    rooms = {r.id: r for r in a.expect("rooms", rid).rooms}
    assert set(rooms) >= {"lobby", "any", "quiet"}, rooms.keys()
    assert "closed" not in rooms, rooms.keys()  # may not join: not listed at all
    lobby = rooms["lobby"]
    assert lobby.name == "Lobby" and lobby.description == "where everyone meets"
    assert list(lobby.events) == ["metrics:update", "alert:triggered"]
    assert lobby.members >= 1 and lobby.max_size == 3
    assert len(lobby.member_ids) == lobby.members
    assert list(rooms["any"].events) == ["*"]
    a.close()


def test_dynamic_room_create_delete():
    owner = Conn(D.port)
    owner.hello(name="owner")
    rid = owner.send(create_room=pb.CreateRoom(room="war-room", name="War room",
                                               events=["alert:triggered"],
                                               default_subscriptions=["alert:triggered"]))
    owner.expect("ack", rid)
    rid = owner.send(create_room=pb.CreateRoom(room="war-room"))
    owner.expect_error("ALREADY_EXISTS", rid, contains="war-room")
    rid = owner.send(create_room=pb.CreateRoom(room="big", name="n" * 256))
    owner.expect_error("INVALID_ARGUMENT", rid, contains="room big: name over 255 bytes")
    rid = owner.send(create_room=pb.CreateRoom(room="many", events=["*"] * 257))
    owner.expect_error("INVALID_ARGUMENT", rid, contains="room many")
    rid = owner.send(create_room=pb.CreateRoom(room="typo", events=["no:schema"]))
    owner.expect_error("INVALID_ARGUMENT", rid, contains="no:schema")
    rid = owner.send(join=pb.Join(room="war-room"))
    owner.expect("joined", rid)
    other = Conn(D.port)
    other.hello(name="other")
    rid = other.send(join=pb.Join(room="war-room"))
    other.expect_error("PERMISSION_DENIED", rid)  # no join rule: creator only
    rid = other.send(delete_room=pb.DeleteRoom(room="war-room"))
    other.expect_error("PERMISSION_DENIED", rid)
    rid = other.send(delete_room=pb.DeleteRoom(room="lobby"))
    other.expect_error("PERMISSION_DENIED", rid, contains="config")
    rid = owner.send(delete_room=pb.DeleteRoom(room="war-room"))
    left = owner.expect("left", 0)
    assert left.room == "war-room" and left.reason == "room deleted"
    owner.expect("ack", rid)
    rid = owner.send(join=pb.Join(room="war-room"))
    owner.expect_error("NOT_FOUND", rid)
    owner.close()
    other.close()


def test_get_schema():
    c = Conn(D.port)
    c.hello()
    rid = c.send(get_schema=pb.GetSchema())
    s = c.expect("schema", rid)
    names = {e.name: e.message_type for e in s.events}
    assert names["metrics:update"] == "dialogue.dashboard.MetricsUpdate", names
    assert names["alert:triggered"] == "dialogue.dashboard.AlertTriggered"
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(s.descriptor_sets[0])
    assert any(f.name == "events/dashboard.proto" for f in fds.file), [f.name for f in fds.file]
    c.close()


def test_rate_limit_token_bucket():
    a, _ = member("limited", "a")
    w, _ = member("limited", "watcher")
    for i in range(3):
        a.trigger("limited", "x:y", b"%d" % i)
    rid = a.send(trigger=pb.Trigger(room="limited", event="x:y", data=b"over"))
    a.expect_error("RESOURCE_EXHAUSTED", rid, contains="rate limit")
    got = [w.expect("event", 0).data for _ in range(3)]
    assert got == [b"0", b"1", b"2"], got
    assert w.barrier() == [], "a refused trigger reached a member"
    time.sleep(1.1)  # one token back
    a.trigger("limited", "x:y", b"later")
    a.close()
    w.close()


def test_daemon_clean_exit():
    assert D.stop() == 0, D.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
