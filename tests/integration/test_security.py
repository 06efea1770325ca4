"""Findings of the outside security review (issue 16) against a real daemon:
rate limits keyed on the verified identity (not the membership or the
connection), room operations rate-limited, audiences, the identity
namespace (token, certificate, anonymous, server never mistaken for each
other), and client strings escaped in the log."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, make_jwt, pb, run_tests, write_config  # noqa: E402

SECRET = b"security-secret-0123456789abcdef0123456789"
CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  anonymous: true
  jwt:
    audience: dialogue
    issuer: test-idp
    leeway_seconds: 0
    keys:
      - alg: HS256
        secret_file: {secret}
limits:
  room_ops_per_second: 2
  room_ops_burst: 6
room_admin:
  create: ["*"]
rooms:
  - id: limited
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    rate_limit: {per_second: 1, burst: 4}
  - id: open
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
"""

D = None


def setup():
    global D
    cfgdir = os.path.dirname(write_config("x"))
    secret = os.path.join(cfgdir, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(CONFIG, secret=secret))


def token(sub, **extra):
    now = int(time.time())
    claims = {"sub": sub, "aud": "dialogue", "iss": "test-idp", "iat": now, "exp": now + 600}
    claims.update(extra)
    return make_jwt(SECRET, claims)


def connect(sub=None, name="t"):
    c = Conn(D.port)
    w = c.hello(token=token(sub) if sub else "", name=name)
    return c, w


def request(c, **kw):
    rid = c.send(**kw)
    f = c.recv()
    # Pushes (events, history, Left of a deleted room) carry request id 0.
    while f.request_id == 0 and f.WhichOneof("msg") in ("event", "history_batch", "left"):
        f = c.recv()
    assert f.request_id == rid, f
    return f


def triggers_allowed(c, room, n):
    """Sends n triggers; returns how many were Acked (the rest must be
    refused with the rate-limit error)."""
    ok = 0
    for i in range(n):
        f = request(c, trigger=pb.Trigger(room=room, event="x:y", data=b"%d" % i))
        kind = f.WhichOneof("msg")
        if kind == "ack":
            ok += 1
        else:
            assert kind == "error" and f.error.code == pb.RESOURCE_EXHAUSTED, f
            assert "rate limit" in f.error.message, f.error.message
    return ok


def join(c, room):
    return request(c, join=pb.Join(room=room))


def leave(c, room):
    return request(c, leave=pb.Leave(room=room))


# ---- 1. rate limits belong to the identity ----

def test_trigger_budget_survives_leave_join():
    # Today's main kept the bucket in the membership: Leave + Join gave a
    # fresh burst of 4 each cycle.
    c, _ = connect("cycler")
    assert join(c, "limited").WhichOneof("msg") == "joined"
    total = triggers_allowed(c, "limited", 6)
    for _ in range(2):
        assert leave(c, "limited").WhichOneof("msg") == "left"
        assert join(c, "limited").WhichOneof("msg") == "joined"
        total += triggers_allowed(c, "limited", 6)
    # burst 4, plus at most one token a second refilled meanwhile.
    assert 4 <= total <= 6, total
    c.close()


def test_trigger_budget_survives_reconnect_and_is_shared():
    # Two connections of one user share one budget, and a new connection
    # of the same user does not get a fresh one.
    a, _ = connect("shared")
    b, _ = connect("shared")
    for c in (a, b):
        assert join(c, "limited").WhichOneof("msg") == "joined"
    total = triggers_allowed(a, "limited", 3) + triggers_allowed(b, "limited", 3)
    a.close()
    b.close()
    c, _ = connect("shared")
    assert join(c, "limited").WhichOneof("msg") == "joined"
    total += triggers_allowed(c, "limited", 4)
    assert 4 <= total <= 6, total
    # Another user has a budget of its own.
    o, _ = connect("other-user")
    assert join(o, "limited").WhichOneof("msg") == "joined"
    assert triggers_allowed(o, "limited", 4) == 4
    c.close()
    o.close()


def test_room_operations_rate_limited():
    # room_ops: 2 a second, burst 6, for Join, Leave, CreateRoom and
    # DeleteRoom together; Ping is not one of them.
    c, _ = connect("joiner")
    answers = []
    for i in range(5):
        answers.append(join(c, "open").WhichOneof("msg"))
        answers.append(leave(c, "open").WhichOneof("msg"))
    ok = [a for a in answers if a in ("joined", "left")]
    assert 6 <= len(ok) <= 8, answers
    f = request(c, create_room=pb.CreateRoom(room="made-by-joiner"))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.RESOURCE_EXHAUSTED, f
    assert "room operations" in f.error.message, f.error.message
    assert request(c, ping=pb.Ping(nonce=1)).WhichOneof("msg") == "pong"
    # A second connection of the same user shares the empty budget.
    d, _ = connect("joiner")
    f = join(d, "open")
    assert f.WhichOneof("msg") == "error" and "room operations" in f.error.message, f
    time.sleep(1.1)  # two tokens back
    assert join(d, "open").WhichOneof("msg") == "joined"
    c.close()
    d.close()


def test_anonymous_budget_is_per_connection():
    a, wa = connect(None, "anon")
    b, wb = connect(None, "anon")
    assert wa.identity_kind == pb.IDENTITY_ANONYMOUS
    for c in (a, b):
        assert join(c, "limited").WhichOneof("msg") == "joined"
    assert triggers_allowed(a, "limited", 4) == 4
    assert triggers_allowed(b, "limited", 4) == 4
    a.close()
    b.close()


# ---- 3. audiences ----

def test_token_for_another_audience_refused():
    c = Conn(D.port)
    rid = c.send(hello=pb.Hello(protocol_version=1, token=token("alice", aud="billing-api")))
    c.expect_error("UNAUTHENTICATED", rid, contains="audience")
    c.expect_closed()


def test_hs256_without_issuer_audience_warns_and_refuses_aud():
    cfgdir = os.path.dirname(write_config("x"))
    secret = os.path.join(cfgdir, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    d = Daemon(config=write_config("""
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  jwt:
    keys:
      - alg: HS256
        secret_file: {secret}
""", secret=secret))
    try:
        log = d.logtext()
        assert "auth.jwt: no issuer configured" in log, log
        assert "auth.jwt: no audience configured" in log, log
        now = int(time.time())
        c = Conn(d.port)
        rid = c.send(hello=pb.Hello(protocol_version=1, token=make_jwt(
            SECRET, {"sub": "svc", "aud": "billing-api", "exp": now + 60})))
        c.expect_error("UNAUTHENTICATED", rid,
                       contains="token names an audience (aud) but this server has none")
        c.close()
        c = Conn(d.port)
        w = c.hello(token=make_jwt(SECRET, {"sub": "svc", "exp": now + 60}))
        assert w.user_id == "svc" and w.identity_kind == pb.IDENTITY_TOKEN
        c.close()
    finally:
        assert d.stop() == 0


# ---- 6. identity namespace ----

def test_token_sub_equal_to_anonymous_id_is_another_identity():
    # An anonymous client creates a room; a token whose sub is that
    # client's id must not be taken for its creator.
    a, wa = connect(None, "anon-creator")
    room = "anon-room-%s" % wa.client_id
    f = request(a, create_room=pb.CreateRoom(room=room, events=["*"],
                                            default_subscriptions=["*"]))
    assert f.WhichOneof("msg") == "ack", f
    m, wm = connect(wa.client_id, "mallory")
    assert wm.user_id == wa.client_id and wm.identity_kind == pb.IDENTITY_TOKEN
    f = join(m, room)
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.PERMISSION_DENIED, f
    f = request(m, delete_room=pb.DeleteRoom(room=room))
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.PERMISSION_DENIED, f
    # The creator itself still may.
    assert join(a, room).WhichOneof("msg") == "joined"
    assert request(a, delete_room=pb.DeleteRoom(room=room)).WhichOneof("msg") == "ack"
    a.close()
    m.close()


def test_sub_system_is_not_the_server():
    s, w = connect("system", "fake-server")
    assert w.identity_kind == pb.IDENTITY_TOKEN
    r, _ = connect("reader")
    for c in (s, r):
        assert join(c, "open").WhichOneof("msg") == "joined"
    assert request(s, trigger=pb.Trigger(room="open", event="alert:triggered",
                                         data=b"x")).WhichOneof("msg") == "ack"
    ev = r.expect("event", 0)
    assert ev.__getattribute__("from") == "system"
    assert ev.from_kind == pb.IDENTITY_TOKEN, ev
    f = request(r, list_rooms=pb.ListRooms(members=True))
    info = [x for x in f.rooms.rooms if x.id == "open"][0]
    kinds = dict(zip(info.member_ids, info.member_kinds))
    assert kinds.get("system") == pb.IDENTITY_TOKEN, (info.member_ids, info.member_kinds)
    s.close()
    r.close()


# ---- 8. log injection ----

def test_client_strings_cannot_forge_log_lines():
    forged = "2026-12-07T10:00:00.000Z dialogued INFO conn c1 (127.0.0.1:1): welcome user=root"
    c = Conn(D.port)
    c.hello(name="evil\n" + forged + "\r\x1b[2K\u202e")
    f = request(c, join=pb.Join(room="no-such-room\nx"))
    assert f.WhichOneof("msg") == "error", f
    c.close()
    deadline = time.time() + 5
    while "evil\\x0a" not in D.logtext() and time.time() < deadline:
        time.sleep(0.05)
    log = D.logtext()
    assert "evil\\x0a" + forged in log, log[-2000:]
    assert "\\x0d\\x1b[2K\\xe2\\x80\\xae" in log, log[-2000:]
    for line in log.splitlines():
        assert not line.startswith(forged), line
        assert "\x1b" not in line and "\u202e" not in line, line


def test_daemon_clean_exit():
    assert D.stop() == 0, D.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
