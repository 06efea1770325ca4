"""What an outsider hits (issue 18): behaviour a client written from
docs/protocol.md alone relies on. ListRooms lists only rooms the caller may
join (counts and ids only when asked), run-time rooms carry join/trigger
rules bounded by what their creator holds, Joined says whether a
HistoryBatch follows and carries the room's name, request id 0 is reserved,
and unsubscribing while subscribed to all follows one rule."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, make_jwt, pb, run_tests, write_config  # noqa: E402

SECRET = b"spec-secret-0123456789abcdef0123456789abcd"
CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
schemas: [{share}/dashboard.pb]
auth:
  anonymous: true
  jwt:
    keys: [{alg: HS256, secret_file: {secret}}]
room_admin:
  create: [maker]
rooms:
  - id: dashboard
    name: Dashboard
    description: admins only
    events: [metrics:update, alert:triggered]
    default_subscriptions: ["*"]
    join: [admin]
  - id: lobby
    name: Lobby
    events: [metrics:update, alert:triggered]
    default_subscriptions: [metrics:update]
    join: ["*"]
    history: [{event: "*", limit: 10}]
  - id: synced
    name: Synced
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history: [{event: "*", limit: 10}]
    sync_history_on_join: 5
"""

D = None


def setup():
    global D
    path = os.path.join(os.path.dirname(write_config("x")), "secret")
    with open(path, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(CONFIG, secret=path))


def client(sub=None, roles=()):
    c = Conn(D.port)
    tok = make_jwt(SECRET, {"sub": sub, "role": list(roles), "exp": int(time.time()) + 600}) \
        if sub else ""
    w = c.hello(token=tok)
    return c, w


def request(c, **kw):
    rid = c.send(**kw)
    while True:
        f = c.recv()
        if f.request_id == rid:
            return f
        assert f.request_id == 0, f


# ---- 1. ListRooms reveals nothing of a room the caller may not join ----

def test_list_rooms_hides_rooms_the_caller_may_not_join():
    admin, _ = client("ada", ["admin"])
    f = request(admin, join=pb.Join(room="dashboard"))
    assert f.WhichOneof("msg") == "joined"
    for members in (False, True):
        for who, roles in (("viewer", ["viewer"]), ("nobody", [])):
            c, _ = client(who, roles)
            rooms = {r.id: r for r in request(c, list_rooms=pb.ListRooms(
                members=members)).rooms.rooms}
            assert "dashboard" not in rooms, rooms.keys()
            assert "lobby" in rooms
            c.close()
        anon, _ = client()
        assert "dashboard" not in {r.id for r in request(anon, list_rooms=pb.ListRooms(
            members=members)).rooms.rooms}
        anon.close()
    # The admin sees it; counts and ids only when asked.
    rooms = {r.id: r for r in request(admin, list_rooms=pb.ListRooms()).rooms.rooms}
    assert rooms["dashboard"].name == "Dashboard"
    assert rooms["dashboard"].members == 0 and list(rooms["dashboard"].member_ids) == []
    assert list(rooms["dashboard"].default_subscriptions) == ["*"]
    assert list(rooms["lobby"].default_subscriptions) == ["metrics:update"]
    rooms = {r.id: r for r in request(admin, list_rooms=pb.ListRooms(members=True)).rooms.rooms}
    assert rooms["dashboard"].members == 1
    assert list(rooms["dashboard"].member_ids) == ["ada"]
    assert list(rooms["dashboard"].member_kinds) == [pb.IDENTITY_TOKEN]
    admin.close()


# ---- 4. run-time rooms with join/trigger rules ----

def test_create_room_with_rules_bounded_by_the_creator():
    maker, _ = client("mia", ["maker", "ops"])
    f = request(maker, create_room=pb.CreateRoom(room="ops-room", events=["*"],
                                                 default_subscriptions=["*"],
                                                 join=["ops"], trigger=["ops"]))
    assert f.WhichOneof("msg") == "ack", f
    f = request(maker, create_room=pb.CreateRoom(room="grab", events=["*"], join=["admin"]))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.PERMISSION_DENIED, f
    assert 'join role "admin" is not one of yours' in f.error.message, f.error.message
    f = request(maker, create_room=pb.CreateRoom(room="grab", events=["*"], trigger=["x y\n"]))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.INVALID_ARGUMENT, f
    f = request(maker, create_room=pb.CreateRoom(room="public", events=["*"], join=["*"]))
    assert f.WhichOneof("msg") == "ack", f
    # Another ops holder may join and trigger; a viewer may neither join nor
    # see the room.
    other, _ = client("olga", ["ops"])
    f = request(other, join=pb.Join(room="ops-room"))
    assert f.WhichOneof("msg") == "joined", f
    assert request(other, trigger=pb.Trigger(room="ops-room", event="x:y",
                                             data=b"1")).WhichOneof("msg") == "ack"
    viewer, _ = client("vic", ["viewer"])
    f = request(viewer, join=pb.Join(room="ops-room"))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.PERMISSION_DENIED, f
    ids = {r.id for r in request(viewer, list_rooms=pb.ListRooms()).rooms.rooms}
    assert "ops-room" not in ids and "public" in ids, ids
    f = request(viewer, join=pb.Join(room="public"))
    assert f.WhichOneof("msg") == "joined", f
    # In "public" nobody but the creator may trigger (no trigger rule).
    f = request(viewer, trigger=pb.Trigger(room="public", event="x:y", data=b"1"))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.PERMISSION_DENIED, f
    for c in (maker, other, viewer):
        c.close()


# ---- 6 and 11. Joined says whether history follows, and names the room ----

def test_joined_says_whether_a_history_batch_follows():
    c, _ = client("joe", [])
    f = request(c, join=pb.Join(room="lobby"))
    assert f.WhichOneof("msg") == "joined" and not f.joined.history_follows, f
    assert f.joined.name == "Lobby"
    assert c.barrier() == []
    rid = c.send(join=pb.Join(room="synced"))
    f = c.recv()
    assert f.WhichOneof("msg") == "joined" and f.joined.history_follows, f
    assert f.joined.name == "Synced"
    f = c.recv()
    assert f.WhichOneof("msg") == "history_batch" and f.request_id == rid, f
    request(c, leave=pb.Leave(room="lobby"))
    rid = c.send(join=pb.Join(room="lobby", recover=True, epoch=1, since_seq=0))
    f = c.recv()
    assert f.WhichOneof("msg") == "joined" and f.joined.history_follows, f
    f = c.recv()
    assert f.WhichOneof("msg") == "history_batch" and f.request_id == rid, f
    # A Subscribe's Joined never announces history.
    f = request(c, subscribe=pb.Subscribe(room="lobby", all=True))
    assert not f.joined.history_follows
    assert c.barrier() == []
    c.close()


# ---- 7. request id 0 is reserved ----

def test_request_id_zero_is_refused():
    c, _ = client("zed", [])
    c.send(request_id=0, ping=pb.Ping(nonce=5))
    e = c.expect_error("INVALID_ARGUMENT", 0, contains="Ping with request_id 0")
    assert "number requests from 1" in e.message
    # A Pong answers the server: 0 is fine there, and gets no reply.
    c.send(request_id=0, pong=pb.Pong(nonce=1))
    assert c.barrier() == []
    c.close()
    c = Conn(D.port)
    c.send(request_id=0, hello=pb.Hello(protocol_version=1))
    c.expect_error("INVALID_ARGUMENT", 0, contains="Hello with request_id 0")
    c.expect_closed()


# ---- 9. unsubscribing while subscribed to all: one rule ----

def test_unsubscribe_names_while_subscribed_to_all():
    c, _ = client("una", [])
    request(c, join=pb.Join(room="lobby"))
    assert request(c, join=pb.Join(room="synced")).joined.history_follows
    c.expect("history_batch")
    assert list(request(c, subscribe=pb.Subscribe(room="lobby", all=True))
                .joined.subscriptions) == ["*"]
    # The room's declared events but the ones named...
    f = request(c, unsubscribe=pb.Unsubscribe(room="lobby", events=["metrics:update"]))
    assert list(f.joined.subscriptions) == ["alert:triggered"], f
    # ...and a room that accepts any event declares none: refused, as the
    # error table says, and "all" stays.
    f = request(c, unsubscribe=pb.Unsubscribe(room="synced", events=["x:y"]))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.FAILED_PRECONDITION, f
    assert "accepts any event" in f.error.message
    assert list(request(c, subscribe=pb.Subscribe(room="synced", events=["x:y"]))
                .joined.subscriptions) == ["*"]
    c.close()


def test_daemon_clean_exit():
    assert D.stop() == 0, D.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
