"""Identity and access against a real daemon: JWTs verified by the server
(made here with Python's hmac, not our code), role rules, auto_join, deny
by default, `from` set by the server, expiry mid-session."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, dash, make_jwt, pb, run_tests, write_config  # noqa: E402

SECRET = b"test-secret-0123456789abcdef0123456789"
CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
schemas: [{share}/dashboard.pb]
auth:
  anonymous: false
  jwt:
    audience: dialogue
    leeway_seconds: 0
    keys:
      - alg: HS256
        secret_file: {secret}
rooms:
  - id: dashboard
    name: Dashboard
    events: [metrics:update, alert:triggered]
    default_subscriptions: [metrics:update, alert:triggered]
    join: [admin]
  - id: feed
    name: Feed
    events: [metrics:update, alert:triggered]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger_events:
      - {event: metrics:update, roles: [publisher]}
auto_join:
  - {role: admin, rooms: [dashboard]}
"""

D = None


def setup():
    global D
    cfgdir = os.path.dirname(write_config("x"))
    secret = os.path.join(cfgdir, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(CONFIG, secret=secret))


def token(sub="alice", role=None, ttl=3600, **extra):
    now = int(time.time())
    claims = {"sub": sub, "aud": "dialogue", "iat": now, "exp": now + ttl}
    if role is not None:
        claims["role"] = role
    claims.update(extra)
    return make_jwt(SECRET, claims)


def refused(tok, contains=None):
    c = Conn(D.port)
    rid = c.send(hello=pb.Hello(protocol_version=1, token=tok))
    c.expect_error("UNAUTHENTICATED", rid, contains=contains)
    c.expect_closed()


def metrics(cpu=1.0):
    return dash.MetricsUpdate(cpu=cpu, memory=2, requests=3, errors=0,
                              latency=0.5).SerializeToString()


def test_missing_token_refused():
    refused("", contains="credentials required")


def test_forged_signature_refused():
    t = token(role="admin")
    head, body, sig = t.split(".")
    bad = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    refused(head + "." + body + "." + bad, contains="signature")
    refused(make_jwt(b"another secret entirely......", {"sub": "x", "aud": "dialogue",
                                                        "exp": int(time.time()) + 60}))


def test_alg_none_refused():
    claims = {"sub": "mallory", "role": "admin", "aud": "dialogue",
              "exp": int(time.time()) + 60}
    refused(make_jwt(SECRET, claims, header={"alg": "none", "typ": "JWT"}, sign=False))


def test_wrong_algorithm_refused():
    claims = {"sub": "mallory", "role": "admin", "aud": "dialogue",
              "exp": int(time.time()) + 60}
    # An HMAC signature claimed as RS256 must not pass: the key fixes the alg.
    refused(make_jwt(SECRET, claims, header={"alg": "RS256", "typ": "JWT"}))


def test_expired_and_not_yet_valid_refused():
    refused(token(role="admin", ttl=-10), contains="expired")
    now = int(time.time())
    refused(token(role="admin", nbf=now + 600), contains="not valid before")


def test_wrong_audience_refused():
    now = int(time.time())
    refused(make_jwt(SECRET, {"sub": "a", "aud": "other", "exp": now + 60}),
            contains="audience")


def test_admin_welcome_and_auto_join():
    c = Conn(D.port)
    w = c.hello(token=token("alice", role="admin"))
    assert w.user_id == "alice" and list(w.roles) == ["admin"], w
    assert [j.room for j in w.auto_joined] == ["dashboard"], w
    assert set(w.auto_joined[0].subscriptions) == {"metrics:update", "alert:triggered"}
    # Admins may read the dashboard but, with no trigger rule, not write it.
    rid = c.send(trigger=pb.Trigger(room="dashboard", event="metrics:update", data=metrics()))
    c.expect_error("PERMISSION_DENIED", rid, contains="may not trigger metrics:update")
    c.close()


def test_non_admin_cannot_read_dashboard_by_any_frame():
    c = Conn(D.port)
    w = c.hello(token=token("bob", role=["viewer", "publisher"]))
    assert list(w.auto_joined) == []
    rid = c.send(join=pb.Join(room="dashboard"))
    c.expect_error("PERMISSION_DENIED", rid, contains="dashboard")
    rid = c.send(subscribe=pb.Subscribe(room="dashboard", all=True))
    c.expect_error("FAILED_PRECONDITION", rid, contains="not a member")
    rid = c.send(list_rooms=pb.ListRooms(members=True))
    rooms = {r.id: r for r in c.expect("rooms", rid).rooms}
    assert "dashboard" not in rooms, rooms.keys()  # not even its name
    rid = c.send(history=pb.History(room="dashboard"))
    f = c.recv()
    assert f.WhichOneof("msg") == "error" and f.request_id == rid, f
    rid = c.send(trigger=pb.Trigger(room="dashboard", event="metrics:update", data=metrics()))
    c.expect_error("FAILED_PRECONDITION", rid)
    assert c.barrier() == []
    c.close()


def test_metadata_never_grants_a_role():
    c = Conn(D.port)
    rid = c.send(hello=pb.Hello(protocol_version=1, token=token("eve", role="viewer"),
                                metadata={"role": "admin", "roles": "admin", "sub": "root"}))
    w = c.expect("welcome", rid)
    assert w.user_id == "eve" and list(w.roles) == ["viewer"]
    rid = c.send(join=pb.Join(room="dashboard"))
    c.expect_error("PERMISSION_DENIED", rid)
    c.close()


def test_per_event_trigger_roles_and_from_cannot_be_forged():
    sub = Conn(D.port)
    sub.hello(token=token("sam", role="viewer"))
    rid = sub.send(join=pb.Join(room="feed"))
    sub.expect("joined", rid)
    pub = Conn(D.port)
    pub.hello(token=token("pat", role="publisher"))
    rid = pub.send(join=pb.Join(room="feed"))
    pub.expect("joined", rid)
    # Trigger with an extra field 4 that looks like a "from": it is not part
    # of Trigger, and the server must use the verified sub.
    trig = pb.Trigger(room="feed", event="metrics:update", data=metrics()).SerializeToString()
    trig += b"\x22\x04root"
    frame_body = pb.ClientFrame(request_id=99).SerializeToString() + \
        b"\x3a" + bytes([len(trig)]) + trig
    from dlgtest import frame
    pub.send_raw(frame(frame_body))
    ev = sub.expect("event", 0)
    assert getattr(ev, "from") == "pat", ev
    # publisher may trigger metrics:update only; viewer nothing.
    rid = pub.send(trigger=pb.Trigger(room="feed", event="alert:triggered", data=b""))
    f = pub.recv()
    while f.WhichOneof("msg") in ("event", "ack"):
        f = pub.recv()
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.PERMISSION_DENIED, f
    rid = sub.send(trigger=pb.Trigger(room="feed", event="metrics:update", data=metrics()))
    sub.expect_error("PERMISSION_DENIED", rid)
    sub.close()
    pub.close()


def test_token_expiring_mid_session_ends_it():
    c = Conn(D.port)
    c.hello(token=token("short", role="viewer", ttl=2))
    t0 = time.time()
    c.sock.settimeout(6)
    c.expect_error("UNAUTHENTICATED", 0, contains="expired")
    c.expect_closed()
    assert time.time() - t0 < 5


def test_session_ends_at_expiry_not_at_the_next_heartbeat():
    # Issue 17: expiry was checked at heartbeat ticks, in whole seconds: a
    # token that expired between two ticks kept its session (and its
    # events) until the next one. Heartbeats 5 s apart, a token valid 6 s:
    # the session must end at exp (leeway 0), not at the 10 s tick.
    cfgdir = os.path.dirname(write_config("x"))
    secret = os.path.join(cfgdir, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    d = Daemon("--heartbeat-ms", "5000", config=write_config(CONFIG, secret=secret))
    try:
        exp = int(time.time()) + 6
        c = Conn(d.port, timeout=15)
        c.hello(token=make_jwt(SECRET, {"sub": "brief", "aud": "dialogue", "exp": exp,
                                        "role": "viewer"}))
        rid = c.send(join=pb.Join(room="feed"))
        c.expect("joined", rid)
        c.sock.settimeout(15)
        c.expect_error("UNAUTHENTICATED", 0, contains="token expired: session ended")
        t = time.time()
        assert exp - 0.1 <= t <= exp + 1.0, "session ended %.2f s after exp" % (t - exp)
        c.expect_closed()
    finally:
        assert d.stop() == 0


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]
    log = D.logtext()
    assert SECRET.decode() not in log, "secret in the log"
    assert token("alice", role="admin").split(".")[2] not in log


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
