"""gRPC over HTTP/2 (issue 21) with a real gRPC client (python3-grpcio):
stubs generated from proto/ at test time; TLS with ALPN h2 on the same
listener as dialogue/1, and HTTP/2 with prior knowledge on a plaintext one.
Subscribe to the dashboard's metrics, trigger with an Ack, every error as
the status dialogue/1 answers with the same message, deadlines and
cancellation leave the room, 100 concurrent streams on one connection,
recovery through Subscribe's position, the Session stream, reflection."""
import os
import queue
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlggrpc import (bearer, channel, code_of, dash, pb, refl, refl_grpc,  # noqa: E402
                     stub, svc)
from dlgtest import CERTS, Conn, Daemon, make_jwt, run_tests, write_config  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool  # noqa: E402

SECRET = b"grpc-test-secret-0123456789abcdef0123"

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
  - {address: "127.0.0.1:0", tls: false}
schemas: [{share}/dashboard.pb]
auth:
  anonymous: false
  jwt:
    roles_claim: role
    leeway_seconds: 1
    keys:
      - {alg: HS256, secret_file: "{secret}"}
limits:
  max_frame: 65536
  room_ops_per_second: 1000
  room_ops_burst: 5000
rooms:
  - id: dashboard
    events: [metrics:update, alert:triggered]
    default_subscriptions: [metrics:update, alert:triggered]
    join: [admin, publisher]
    trigger_events:
      - {event: metrics:update, roles: [publisher]}
    delivery:
      - {event: metrics:update, policy: latest}
      - {event: alert:triggered, policy: stream}
  - id: r
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 1000}
metrics:
  room: dashboard
  interval_ms: 100
"""

D = None
PLAIN = None


def token(sub, role="", ttl=600):
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + ttl}
    if role:
        claims["role"] = role
    return make_jwt(SECRET, claims)


def setup():
    global D, PLAIN
    d = os.path.dirname(write_config("x"))
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(CONFIG, secret=secret))
    ports = re.findall(r"port (\d+) \((TLS|plaintext)\)", D.logtext())
    PLAIN = int([p for p, k in ports if k == "plaintext"][0])


def members(st, room, tok):
    rooms = st.ListRooms(pb.ListRooms(members=True), metadata=bearer(tok), timeout=5)
    return [r.members for r in rooms.rooms if r.id == room][0]


def wait_members(st, room, tok, want, within=5.0):
    end = time.time() + within
    n = None
    while time.time() < end:
        n = members(st, room, tok)
        if n == want:
            return
        time.sleep(0.05)
    raise AssertionError("room %s has %s members, expected %d" % (room, n, want))


def native_error(request, tok):
    """The Error dialogue/1 answers request (a ClientFrame field) with."""
    c = Conn(D.port)
    c.hello(token=tok)
    rid = c.send(**request)
    f = c.recv()
    while f.WhichOneof("msg") in ("joined", "history_batch"):
        f = c.recv()
    c.close()
    assert f.WhichOneof("msg") == "error", f
    return f.error


def test_subscribe_to_the_dashboard_receives_metrics_tls():
    ch = channel(D.port, tls=True)
    st = stub(ch)
    call = st.Subscribe(svc.SubscribeRequest(room="dashboard"),
                        metadata=bearer(token("ada", "admin")), timeout=10)
    md = dict(call.initial_metadata())
    assert int(md["dialogue-epoch"]) > 0 and "dialogue-seq" in md, md
    got = []
    for ev in call:
        assert ev.room == "dashboard", ev
        if ev.event != "metrics:update":
            continue
        assert getattr(ev, "from") == "system" and ev.from_kind == pb.IDENTITY_SERVER, ev
        m = dash.MetricsUpdate()
        m.ParseFromString(ev.data)
        assert 0 <= m.cpu <= 100 and m.memory > 0, m
        got.append(ev.seq)
        if len(got) == 3:
            break
    call.cancel()
    assert got == sorted(got) and len(set(got)) == 3, got
    ch.close()


def test_trigger_acks_and_delivers_over_both_listeners():
    for tls, port in ((True, D.port), (False, PLAIN)):
        ch = channel(port, tls=tls)
        st = stub(ch)
        sub = st.Subscribe(svc.SubscribeRequest(room="r"), metadata=bearer(token("sam")),
                           timeout=10)
        sub.initial_metadata()
        ack = st.Trigger(pb.Trigger(room="r", event="hello", data=b"x" * 10),
                         metadata=bearer(token("pat")), timeout=5)
        assert ack.seq > 0 and ack.recipients >= 1, ack
        ev = next(sub)
        assert (ev.event, ev.data, ev.seq, getattr(ev, "from"), ev.from_kind) == (
            "hello", b"x" * 10, ack.seq, "pat", pb.IDENTITY_TOKEN), ev
        sub.cancel()
        ch.close()


def test_typed_trigger_is_validated_and_acked():
    ch = channel(D.port)
    st = stub(ch)
    good = dash.MetricsUpdate(cpu=10, memory=20, requests=1, errors=0, latency=2)
    ack = st.Trigger(pb.Trigger(room="dashboard", event="metrics:update",
                                data=good.SerializeToString()),
                     metadata=bearer(token("pub", "publisher")), timeout=5)
    assert ack.seq > 0, ack
    ch.close()


def test_every_error_is_the_native_error_as_a_status():
    ch = channel(D.port)
    st = stub(ch)
    viewer, admin, pub = token("vic", "viewer"), token("ada", "admin"), token("pub", "publisher")
    bad = dash.MetricsUpdate(cpu=150, memory=20, requests=1, errors=0, latency=2)
    cases = [
        # (status, gRPC call, the same request on dialogue/1 and its token:
        # the call joins first, so the native request is the Join)
        ("UNAUTHENTICATED", lambda: st.ListRooms(pb.ListRooms(), timeout=5), None, None),
        ("UNAUTHENTICATED", lambda: st.ListRooms(pb.ListRooms(), metadata=bearer("x.y.z"),
                                                 timeout=5), None, None),
        ("NOT_FOUND", lambda: st.Trigger(pb.Trigger(room="nope", event="e"),
                                         metadata=bearer(admin), timeout=5),
         dict(join=pb.Join(room="nope")), admin),
        ("INVALID_ARGUMENT", lambda: st.Trigger(pb.Trigger(room="bad room!", event="e"),
                                                metadata=bearer(admin), timeout=5),
         dict(join=pb.Join(room="bad room!")), admin),
        ("PERMISSION_DENIED", lambda: st.Trigger(pb.Trigger(room="dashboard", event="metrics:update"),
                                                 metadata=bearer(viewer), timeout=5),
         dict(join=pb.Join(room="dashboard")), viewer),
        ("INVALID_ARGUMENT", lambda: st.Trigger(
            pb.Trigger(room="dashboard", event="metrics:update", data=bad.SerializeToString()),
            metadata=bearer(pub), timeout=5), None, None),
    ]
    for want, fn, native, ntok in cases:
        code, details = code_of(fn)
        assert code == getattr(grpc.StatusCode, want), (want, code, details)
        if native is not None:
            e = native_error(native, ntok)
            assert pb.Status.Name(e.code) == want and e.message == details, (e, details)
    # Credentials: the native Hello's message.
    code, details = code_of(st.ListRooms, pb.ListRooms(), timeout=5)
    c = Conn(D.port)
    rid = c.send(hello=pb.Hello(protocol_version=1))
    assert c.expect_error("UNAUTHENTICATED", rid).message == details, details
    c.close()
    # Subscribe: refused join, unknown room, unknown event in the filter.
    for want, req, tok, msg in [
            ("PERMISSION_DENIED", svc.SubscribeRequest(room="dashboard"), viewer, "dashboard"),
            ("NOT_FOUND", svc.SubscribeRequest(room="nope"), admin, "room nope not found"),
            ("NOT_FOUND", svc.SubscribeRequest(room="dashboard", events=["nope"]), admin,
             "room dashboard has no event nope")]:
        call = st.Subscribe(req, metadata=bearer(tok), timeout=5)
        code, details = code_of(lambda: next(call))
        assert code == getattr(grpc.StatusCode, want) and msg in details, (want, code, details)
    # A trigger of an event the role may not publish: the native message.
    code, details = code_of(st.Trigger, pb.Trigger(room="dashboard", event="alert:triggered"),
                            metadata=bearer(pub), timeout=5)
    assert code == grpc.StatusCode.PERMISSION_DENIED, (code, details)
    # Over max_frame: refused before it is buffered.
    code, details = code_of(st.Trigger, pb.Trigger(room="r", event="e", data=b"z" * 70000),
                            metadata=bearer(admin), timeout=5)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "above the limit 65536" in details, \
        (code, details)
    # A method the service does not have.
    nope = ch.unary_unary("/dialogue.v1.Dialogue/Nope")
    code, details = code_of(nope, b"", timeout=5)
    assert code == grpc.StatusCode.UNIMPLEMENTED and "Nope" in details, (code, details)
    ch.close()


def test_deadline_and_cancel_leave_the_room():
    ch = channel(D.port)
    st = stub(ch)
    tok = token("dee")
    base = members(st, "r", tok)
    call = st.Subscribe(svc.SubscribeRequest(room="r"), metadata=bearer(tok), timeout=1.0)
    call.initial_metadata()
    assert members(st, "r", tok) == base + 1
    t0 = time.time()
    code, _ = code_of(lambda: [x for x in call])
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and time.time() - t0 < 3, code
    wait_members(st, "r", tok, base)
    call = st.Subscribe(svc.SubscribeRequest(room="r"), metadata=bearer(tok), timeout=30)
    call.initial_metadata()
    assert members(st, "r", tok) == base + 1
    call.cancel()
    wait_members(st, "r", tok, base)
    ch.close()


def test_100_concurrent_streams_on_one_connection():
    ch = channel(D.port)
    st = stub(ch)
    # The default limit is 100 streams per connection: the calls that
    # watch come on a connection of their own.
    ctl_ch = channel(D.port, options=[("grpc.use_local_subchannel_pool", 1)])
    ctl = stub(ctl_ch)
    tok = token("many")
    # (A Trigger call joins its session to the room first: counted here.)
    ctl.Trigger(pb.Trigger(room="r", event="first", data=b"0"), metadata=bearer(tok), timeout=5)
    base = members(ctl, "r", tok)
    calls = [st.Subscribe(svc.SubscribeRequest(room="r"), metadata=bearer(tok), timeout=30)
             for _ in range(100)]
    for c in calls:
        c.initial_metadata()
    n = members(ctl, "r", tok)
    assert n == base + 100, (n, base)
    ack = ctl.Trigger(pb.Trigger(room="r", event="all", data=b"1"), metadata=bearer(tok),
                      timeout=5)
    assert ack.recipients >= 100, ack
    for c in calls:
        ev = next(c)
        assert ev.seq == ack.seq and ev.event == "all", ev
    for c in calls:
        c.cancel()
    wait_members(ctl, "r", tok, base)
    # Two TCP connections carried them all: each stream's session logs its
    # connection's peer.
    peers = set(re.findall(r"conn c\d+ \((127\.0\.0\.1:\d+)\): welcome user=many", D.logtext()))
    assert len(peers) == 2, peers
    ctl_ch.close()
    ch.close()


def test_reconnect_with_recovery_through_the_position():
    ch = channel(D.port)
    st = stub(ch)
    tok = token("rec")
    pub = lambda ev: st.Trigger(pb.Trigger(room="r", event=ev, data=b"d"),  # noqa: E731
                                metadata=bearer(tok), timeout=5)
    call = st.Subscribe(svc.SubscribeRequest(room="r", events=["rec"]), metadata=bearer(tok),
                        timeout=30)
    call.initial_metadata()
    for _ in range(3):
        pub("rec")
    seen = [next(call) for _ in range(3)]
    call.cancel()
    last = seen[-1]
    acks = [pub("rec") for _ in range(2)] + [pub("other")]
    call = st.Subscribe(svc.SubscribeRequest(room="r", events=["rec"],
                                             after=svc.Position(epoch=last.epoch, seq=last.seq)),
                        metadata=bearer(tok), timeout=30)
    md = dict(call.initial_metadata())
    assert md["dialogue-recovery"] == "complete", md
    got = [next(call), next(call)]
    assert [e.seq for e in got] == [acks[0].seq, acks[1].seq], got
    live = pub("rec")
    ev = next(call)
    assert ev.seq == live.seq, (ev, live)  # the "other" event was filtered out
    call.cancel()
    # A position from another epoch: the history cannot say what was lost.
    call = st.Subscribe(svc.SubscribeRequest(room="r",
                                             after=svc.Position(epoch=last.epoch + 1, seq=1)),
                        metadata=bearer(tok), timeout=30)
    assert dict(call.initial_metadata())["dialogue-recovery"] == "incomplete"
    call.cancel()
    ch.close()


def test_session_stream_speaks_dialogue_1():
    ch = channel(PLAIN, tls=False)
    st = stub(ch)
    q = queue.Queue()

    def reqs():
        while True:
            f = q.get()
            if f is None:
                return
            yield f

    call = st.Session(reqs(), timeout=10)
    q.put(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1,
                                                      token=token("ses"))))
    w = next(call)
    assert w.request_id == 1 and w.welcome.user_id == "ses", w
    q.put(pb.ClientFrame(request_id=2, join=pb.Join(room="r")))
    j = next(call)
    while j.WhichOneof("msg") == "history_batch":
        j = next(call)
    assert j.request_id == 2 and j.joined.room == "r", j
    q.put(pb.ClientFrame(request_id=3, trigger=pb.Trigger(room="r", event="s", data=b"1")))
    ev, ack = next(call), next(call)
    assert ev.event.event == "s" and ack.request_id == 3 and ack.ack.seq == ev.event.seq, (ev, ack)
    q.put(pb.ClientFrame(request_id=4, join=pb.Join(room="r")))
    e = next(call)
    assert e.error.code == pb.ALREADY_EXISTS and e.request_id == 4, e
    q.put(None)  # the client ends its side: the call ends OK
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK, call.code()
    # A Session whose first frame is not Hello: the native Error, then that status.
    q2 = queue.Queue()
    q2.put(pb.ClientFrame(request_id=1, ping=pb.Ping(nonce=1)))
    call = st.Session(iter(q2.get, None), timeout=10)
    f = next(call)
    assert f.error.code == pb.FAILED_PRECONDITION and "expected Hello first" in f.error.message
    code, details = code_of(lambda: next(call))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Hello" in details, (code, details)
    ch.close()


def test_history_list_rooms_and_get_schema_are_unary_calls():
    ch = channel(D.port)
    st = stub(ch)
    tok = token("uni")
    acks = [st.Trigger(pb.Trigger(room="r", event="h", data=b"%d" % i), metadata=bearer(tok),
                       timeout=5) for i in range(3)]
    b = st.History(pb.History(room="r", event="h", by_seq=True, since_seq=acks[0].seq),
                   metadata=bearer(tok), timeout=5)
    assert [e.seq for e in b.events] == [acks[1].seq, acks[2].seq] and b.complete, b
    rooms = st.ListRooms(pb.ListRooms(), metadata=bearer(tok), timeout=5)
    assert "r" in [r.id for r in rooms.rooms] and "dashboard" not in [r.id for r in rooms.rooms]
    sch = st.GetSchema(pb.GetSchema(), metadata=bearer(tok), timeout=5)
    assert {e.name for e in sch.events} == {"metrics:update", "alert:triggered"}, sch.events
    ch.close()


def test_reflection_lists_and_describes_the_service_and_the_events():
    ch = channel(D.port)
    r = refl_grpc.ServerReflectionStub(ch)
    tok = token("refl")
    reqs = [refl.ServerReflectionRequest(list_services=""),
            refl.ServerReflectionRequest(file_containing_symbol="dialogue.v1.Dialogue"),
            refl.ServerReflectionRequest(file_containing_symbol="dialogue.dashboard.MetricsUpdate"),
            refl.ServerReflectionRequest(file_containing_symbol="no.such.Thing")]
    out = list(r.ServerReflectionInfo(iter(reqs), metadata=bearer(tok), timeout=10))
    assert len(out) == 4, out
    names = [s.name for s in out[0].list_services_response.service]
    assert "dialogue.v1.Dialogue" in names and "grpc.reflection.v1alpha.ServerReflection" in names
    pool = descriptor_pool.DescriptorPool()
    files = {}
    for resp in out[1:3]:
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
    # Dependencies first, as a client adds them.
    added = set()

    def add(name):
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)
    for name in files:
        add(name)
    m = pool.FindServiceByName("dialogue.v1.Dialogue").FindMethodByName("Subscribe")
    assert m.input_type.full_name == "dialogue.v1.SubscribeRequest"
    assert m.output_type.full_name == "dialogue.v1.Event"
    assert pool.FindMessageTypeByName("dialogue.dashboard.MetricsUpdate").fields_by_name["cpu"]
    assert out[3].error_response.error_code == 5, out[3]
    # Without credentials, reflection is refused as any call is.
    code, _ = code_of(lambda: list(r.ServerReflectionInfo(iter(reqs[:1]), timeout=5)))
    assert code == grpc.StatusCode.UNAUTHENTICATED, code
    ch.close()


def test_token_expiry_ends_the_subscription():
    ch = channel(D.port)
    st = stub(ch)
    call = st.Subscribe(svc.SubscribeRequest(room="r"), metadata=bearer(token("exp", ttl=1)),
                        timeout=40)
    code, details = code_of(lambda: [x for x in call])
    # At exp + leeway (1 s here) the session ends.
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in details, (code, details)
    ch.close()


CERT_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
    client_ca: {certs}/ca.crt
auth:
  anonymous: false
  client_cert:
    user_from: cn
    roles:
      - {match: admin, roles: [admin]}
rooms:
  - id: ops
    events: ["*"]
    join: [admin]
    trigger: [admin]
"""


def test_client_certificate_is_the_identity_of_every_call():
    d = Daemon(config=write_config(CERT_CONFIG))
    try:
        def cert_channel(name):
            rd = lambda f: open(os.path.join(CERTS, f), "rb").read()  # noqa: E731
            creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client-%s.key" % name),
                                                 rd("client-%s.crt" % name))
            return grpc.secure_channel("127.0.0.1:%d" % d.port, creds,
                                       options=[("grpc.ssl_target_name_override", "localhost"),
                                                ("grpc.use_local_subchannel_pool", 1)])
        ch = cert_channel("admin")
        st = stub(ch)
        sub = st.Subscribe(svc.SubscribeRequest(room="ops", events=["*"]), timeout=10)
        sub.initial_metadata()
        ack = st.Trigger(pb.Trigger(room="ops", event="x", data=b"1"), timeout=5)
        ev = next(sub)
        assert (getattr(ev, "from"), ev.from_kind, ev.seq) == (
            "admin", pb.IDENTITY_CERTIFICATE, ack.seq), ev
        sub.cancel()
        ch.close()
        # A certificate without the role: the same refusal as dialogue/1.
        ch = cert_channel("viewer")
        code, details = code_of(stub(ch).Trigger, pb.Trigger(room="ops", event="x"), timeout=5)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "ops" in details, (code, details)
        ch.close()
    finally:
        assert d.stop() == 0


def teardown():
    assert D.stop() == 0
    log = D.logtext()
    assert "ERROR" not in log.replace("ERROR_", ""), log[-3000:]


if __name__ == "__main__":
    setup()
    tests = [test_subscribe_to_the_dashboard_receives_metrics_tls,
             test_trigger_acks_and_delivers_over_both_listeners,
             test_typed_trigger_is_validated_and_acked,
             test_every_error_is_the_native_error_as_a_status,
             test_deadline_and_cancel_leave_the_room,
             test_100_concurrent_streams_on_one_connection,
             test_reconnect_with_recovery_through_the_position,
             test_session_stream_speaks_dialogue_1,
             test_history_list_rooms_and_get_schema_are_unary_calls,
             test_reflection_lists_and_describes_the_service_and_the_events,
             test_token_expiry_ends_the_subscription,
             test_client_certificate_is_the_identity_of_every_call]
    try:
        run_tests(tests, per_test_timeout=60)
    finally:
        teardown()
