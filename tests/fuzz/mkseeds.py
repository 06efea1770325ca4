#!/usr/bin/python3
"""mkseeds.py: writes the seed corpora of tests/fuzz/corpus/<harness>/ (and
es256_pub.pem, the ES256 test key the JWT harness embeds). Frames and events
are encoded by Python's protobuf library from proto/, not by our C code.

    /usr/bin/python3 tests/fuzz/mkseeds.py [--new-es256-key]

Without --new-es256-key the ES256 seeds are kept as they are (the private
key is not stored anywhere); with it a new key pair is made with openssl,
the public half replaces es256_pub.pem and new ES256 tokens are signed."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
# The test secrets of fuzz_jwt.c (the first also in fuzz_dispatch.c).
HS_SECRET = b"dialogue-fuzz-\x01hs256\xfe-secret-001"
HS_SECRET_K2 = b"dialogue-fuzz-\x01hs256\xfe-kid-k2-002"
EXP = 2000000000  # 2033: the harnesses' clock is fixed at 1700000000

GEN = tempfile.mkdtemp(prefix="dlg-fuzz-pygen-")
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include",
                "--python_out=" + GEN,
                os.path.join(ROOT, "proto/dialogue/v1/protocol.proto"),
                os.path.join(ROOT, "proto/dialogue/v1/service.proto"),
                os.path.join(ROOT, "proto/dialogue/v1/options.proto"),
                os.path.join(ROOT, "proto/events/dashboard.proto")], check=True)
sys.path.insert(0, GEN)
from dialogue.v1 import protocol_pb2 as pb  # noqa: E402
from dialogue.v1 import service_pb2 as svc  # noqa: E402
from events import dashboard_pb2 as dash  # noqa: E402


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(msg):
    body = msg.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


def cf(rid=0, **kw):
    f = pb.ClientFrame(request_id=rid)
    for k, v in kw.items():
        getattr(f, k).CopyFrom(v)
    return f


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs_token(header, claims, secret=HS_SECRET):
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = hmac.new(secret, si.encode(), hashlib.sha256).digest()
    return si + "." + b64u(sig)


def der_to_raw(der):
    """ECDSA-Sig-Value (DER) -> r || s, 32 bytes each (JWS form)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(32, b"\0")
        i += 2 + n
    return out


def es_token(key, header, claims):
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=si.encode(),
                         capture_output=True, check=True).stdout
    return si + "." + b64u(der_to_raw(der))


# ---- events -----------------------------------------------------------------
metrics = dash.MetricsUpdate(cpu=42.5, memory=61.0, requests=120.0, errors=0.0,
                             latency=1.25).SerializeToString()
metrics_bad = dash.MetricsUpdate(cpu=150.0, memory=61.0, requests=1.0, errors=0.0,
                                 latency=1.0).SerializeToString()
alert = dash.AlertTriggered(alert_id="cpu-high-1", severity=dash.high,
                            message="CPU usage critical: 95%",
                            timestamp=1700000000123).SerializeToString()


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def key(num, wt):
    return varint(num << 3 | wt)


def ld(num, payload):
    return key(num, 2) + varint(len(payload)) + payload


# dialogue.test.Everything / Inner / Legacy built by hand (no Python classes).
inner = ld(1, b"node") + key(2, 0) + varint(3) + key(4, 0) + varint(7)
inner_deep = inner
for _ in range(6):
    inner_deep = ld(1, b"n") + ld(3, inner_deep)
everything = (key(1, 0) + varint(12345) + key(3, 0) + varint(40) +  # s32 = 20 (zigzag)
              key(5, 5) + struct.pack("<I", 999) + key(8, 1) + struct.pack("<d", 0.5) +
              key(9, 0) + varint(1) + ld(10, varint(1) + varint(2) + varint(1000)) +
              key(11, 0) + varint(9) + key(11, 0) + varint(3) + ld(12, b"tag") +
              ld(13, varint(1) + varint(7)) + ld(14, ld(1, b"k") + ld(2, inner)) +
              ld(15, key(1, 0) + varint(5) + key(2, 0) + varint(2)) + ld(16, inner_deep) +
              ld(17, inner) + ld(18, b"\x01\x02") + ld(19, b"hi") +
              ld(22, struct.pack("<dd", 1.5, 2.5)) + key(536870911, 0) + varint(1))
legacy = (key(1, 0) + varint(7) + key(2, 0) + varint(5) + ld(4, varint(3) + varint(8)) +
          key(5, 0) + varint(2) + ld(6, b"name") + ld(7, key(1, 0) + varint(8)) +
          ld(8, inner))
presence = key(1, 0) + varint(0) + key(2, 0) + varint(4)

# ---- schema -----------------------------------------------------------------
put("schema", "metrics_ok", metrics)
put("schema", "metrics_cpu_150", metrics_bad)
put("schema", "alert_ok", alert)
put("schema", "alert_truncated", alert[:-3])
put("schema", "everything", everything)
put("schema", "legacy", legacy)
put("schema", "presence_zero", presence)
put("schema", "unknown_field", metrics + key(12, 0) + varint(1))
put("schema", "wrong_wire_type", ld(1, b"oops") + metrics[9:])
put("schema", "overlong_varint", key(4, 0) + b"\xff" * 11 + b"\x01")
put("schema", "bad_utf8", ld(1, b"\xc3\x28") + key(2, 0) + varint(1) + ld(3, b"m") +
    key(4, 0) + varint(1))
put("schema", "group", key(9, 3) + key(1, 0) + varint(1) + key(9, 4))
put("schema", "empty", b"")

# ---- pbjson: first byte picks the message (see msg_names in fuzz_pbjson.c) ---
put("pbjson", "metrics_wire", b"\x00" + metrics)
put("pbjson", "alert_wire", b"\x01" + alert)
put("pbjson", "everything_wire", b"\x02" + everything)
put("pbjson", "inner_wire", b"\x03" + inner_deep)
put("pbjson", "presence_wire", b"\x04" + presence)
put("pbjson", "legacy_wire", b"\x05" + legacy)
all_wire = (key(1, 1) + struct.pack("<d", float("nan")) + key(2, 5) +
            struct.pack("<f", float("inf")) + key(3, 0) + varint((1 << 64) - 5) +
            key(4, 0) + varint((1 << 64) - 1) + key(8, 0) + varint(1) + ld(9, "héllo".encode()) +
            ld(12, b"\x00\xff\x10") + key(14, 0) + varint(9) + key(17, 0) + varint(3) +
            ld(20, varint(1) + varint((1 << 64) - 1)) + ld(21, b"a") + ld(21, b"") +
            ld(30, ld(1, b"k") + key(2, 0) + varint(5)) +
            ld(32, key(1, 0) + varint(1) + ld(2, key(1, 0) + varint(2))) +
            ld(34, key(1, 0) + varint(3) + ld(2, b"\x01")))
put("pbjson", "all_wire", b"\x06" + all_wire)
deep = b""
for _ in range(40):
    deep = ld(1, deep) + key(2, 0) + varint(1)
put("pbjson", "deep_41", b"\x08" + deep)
put("pbjson", "metrics_json", b"\x00" + json.dumps(
    {"cpu": 42.5, "memory": "61", "requests": 1e3, "errors": 0, "latency": "NaN"}).encode())
put("pbjson", "alert_json", b"\x01" + json.dumps(
    {"alertId": "a1", "severity": "high", "message": "m", "timestamp": "1700000000123"}).encode())
put("pbjson", "alert_both_names", b"\x01" + b'{"alertId":"a","alert_id":"b"}')
put("pbjson", "everything_json", b"\x02" + json.dumps(
    {"big": "-9007199254740992", "ubig": "18446744073709551615", "s32": -7, "fl": "Infinity",
     "nums": [1, 2, 3], "loose": [4], "tags": ["x"], "colors": ["RED", 7, -3],
     "children": {"k": {"name": "n", "child": {"name": "c"}}}, "palette": {"-1": "BLUE"},
     "blob": "AQID", "text": "hi", "far": 1}).encode())
put("pbjson", "all_json", b"\x06" + json.dumps(
    {"fDouble": "-Infinity", "fBytes": "_-8", "fEnum": "GREEN", "mBoolMsg": {"true": {"id": 1}},
     "mI64Str": {"-9223372036854775808": "min"}, "mU32Enum": {"4294967295": 1},
     "rEnum": ["RED"], "rBytes": ["", "AA=="], "fString": "a\u0000b"}).encode())
put("pbjson", "not_object", b"\x03[1,2,3]")

# ---- jwt ----------------------------------------------------------------------
good = {"sub": "alice", "role": ["admin", "ops"], "exp": EXP, "iat": 1690000000}
put("jwt", "hs256_ok", hs_token({"alg": "HS256", "typ": "JWT"}, good))
put("jwt", "hs256_kid_k2", hs_token({"alg": "HS256", "kid": "k2"}, good, HS_SECRET_K2))
put("jwt", "hs256_v1_ok", hs_token({"alg": "HS256"}, {
    "sub": "bob", "roles": "viewer", "iss": "https://issuer.test", "aud": ["x", "dialogue"]}))
put("jwt", "hs256_expired", hs_token({"alg": "HS256"}, dict(good, exp=1600000000)))
put("jwt", "hs256_bad_sig", hs_token({"alg": "HS256"}, good, b"x" * 32))
put("jwt", "alg_none", b64u(b'{"alg":"none"}') + "." + b64u(json.dumps(good).encode()) + ".")
put("jwt", "two_segments", "eyJhbGciOiJIUzI1NiJ9.e30")
put("jwt", "padded", hs_token({"alg": "HS256"}, good) + "==")
put("jwt", "crit", hs_token({"alg": "HS256", "crit": ["x"]}, good))
put("jwt", "unknown_kid", hs_token({"alg": "HS256", "kid": "k9"}, good))
# Signed by the harness (first byte 0x01): "header\npayload".
put("jwt", "signed_ok", b"\x01" + json.dumps({"alg": "HS256"}).encode() + b"\n" +
    json.dumps(good).encode())
put("jwt", "signed_roles_star", b'\x01{"alg":"HS256"}\n{"sub":"a","role":"*","exp":2000000000}')
put("jwt", "signed_dup", b'\x01{"alg":"HS256"}\n{"sub":"a","sub":"b","exp":2000000000}')
put("jwt", "signed_times", b'\x01{"alg":"HS256","typ":"jwt"}\n'
    b'{"sub":"a","exp":1700000010.5,"nbf":1700000020,"iat":1e9,"iss":"https://issuer.test",'
    b'"aud":"dialogue","roles":["r1","r2"]}')
put("jwt", "signed_sub_ctrl", b'\x01{"alg":"HS256"}\n{"sub":"a\\u0001b","exp":2000000000}')
put("jwt", "es256_as_hs256", hs_token({"alg": "HS256", "kid": "es1"}, good))
if "--new-es256-key" in sys.argv:
    kd = tempfile.mkdtemp(prefix="dlg-fuzz-key-")
    k = os.path.join(kd, "es256.key")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                    "-out", k], check=True)
    subprocess.run(["openssl", "ec", "-in", k, "-pubout", "-out",
                    os.path.join(HERE, "es256_pub.pem")], check=True, capture_output=True)
    put("jwt", "es256_kid_ok", es_token(k, {"alg": "ES256", "kid": "es1"}, good))
    put("jwt", "es256_default_v1", es_token(k, {"alg": "ES256"}, {
        "sub": "carol", "iss": "https://issuer.test", "aud": "dialogue"}))
    shutil.rmtree(kd)

# ---- config: the loader's own fixtures ------------------------------------------
os.makedirs(os.path.join(CORPUS, "config"), exist_ok=True)
for name in sorted(os.listdir(os.path.join(ROOT, "tests/config"))):
    if name.endswith(".yaml"):
        shutil.copy(os.path.join(ROOT, "tests/config", name), os.path.join(CORPUS, "config"))
put("config", "deep_nesting", "rooms: " + "[" * 200 + "]" * 200 + "\n")
put("config", "anchors", "a: &x [1, 2]\nb: *x\nrooms:\n  - id: r\n    events: *x\n")

# ---- frame: [n_cuts][cuts][max_frame hi lo][stop_after] stream ------------------
hello = frame(cf(1, hello=pb.Hello(protocol_version=1, client_name="fuzz")))
join = frame(cf(2, join=pb.Join(room="dash")))
trig = frame(cf(3, trigger=pb.Trigger(room="dash", event="metrics:update", data=metrics)))
stream = hello + join + trig
put("frame", "three_frames", bytes([3, 1, 4, 7, 0x01, 0x00, 0]) + stream)
put("frame", "whole_default_max", bytes([0, 0x00, 0x00, 0]) + stream)
put("frame", "stop_after_2", bytes([2, 5, 5, 0x00, 0x40, 2]) + stream)
put("frame", "too_big", bytes([1, 3, 0x00, 0x10, 0]) + b"\0\0\0\x01\0" + b"x" * 8)
put("frame", "bad_flag", bytes([0, 0x00, 0x40, 0]) + b"\x01\0\0\0\x02ab")
put("frame", "len_ffffffff", bytes([1, 2, 0x00, 0x40, 0]) + b"\0\xff\xff\xff\xff")
put("frame", "zero_len", bytes([0, 0x00, 0x40, 0]) + b"\0\0\0\0\0" * 3)
put("frame", "truncated", bytes([2, 1, 1, 0x00, 0x40, 0]) + hello[:-2])

# ---- dispatch: the client's plaintext stream -------------------------------------
admin_tok = hs_token({"alg": "HS256"}, {"sub": "root", "role": "admin", "exp": EXP})
h_anon = frame(cf(1, hello=pb.Hello(protocol_version=1, client_name="fuzz")))
h_admin = frame(cf(1, hello=pb.Hello(protocol_version=1, token=admin_tok)))
put("dispatch", "anon_session", h_anon + join + trig +
    frame(cf(4, trigger=pb.Trigger(room="dash", event="alert:triggered", data=alert))) +
    frame(cf(5, subscribe=pb.Subscribe(room="dash", events=["alert:triggered"]))) +
    frame(cf(6, unsubscribe=pb.Unsubscribe(room="dash", all=True))) +
    frame(cf(7, list_rooms=pb.ListRooms(members=True))) +
    frame(cf(8, ping=pb.Ping(nonce=9))) + frame(cf(0, pong=pb.Pong())) +
    frame(cf(9, leave=pb.Leave(room="dash"))))
put("dispatch", "admin_session", h_admin +
    frame(cf(2, create_room=pb.CreateRoom(room="tmp", events=["*"], max_size=3))) +
    frame(cf(3, join=pb.Join(room="tmp"))) +
    frame(cf(4, trigger=pb.Trigger(room="tmp", event="x", data=b"\x01"))) +
    frame(cf(5, trigger=pb.Trigger(room="closed", event="alert:triggered", data=alert))) +
    frame(cf(6, get_schema=pb.GetSchema())) +
    frame(cf(7, delete_room=pb.DeleteRoom(room="tmp"))) +
    frame(cf(8, delete_room=pb.DeleteRoom(room="dash"))))
put("dispatch", "open_room", h_anon + frame(cf(2, join=pb.Join(room="open"))) +
    frame(cf(3, trigger=pb.Trigger(room="open", event="chat:msg", data=b"hello"))) +
    frame(cf(4, join=pb.Join(room="closed"))) +
    frame(cf(5, join=pb.Join(room="bad room!"))) +
    frame(cf(6, trigger=pb.Trigger(room="dash", event="metrics:update", data=metrics_bad))))
put("dispatch", "trigger_before_hello", trig + h_anon)
put("dispatch", "hello_twice", h_anon + h_anon)
put("dispatch", "bad_version", frame(cf(1, hello=pb.Hello(protocol_version=2))))
put("dispatch", "bad_token", frame(cf(1, hello=pb.Hello(protocol_version=1, token="a.b.c"))))
put("dispatch", "malformed_body", b"\0\0\0\0\x03\x0a\xff\xff")
put("dispatch", "empty_frame", h_anon + b"\0\0\0\0\0" + frame(cf(5)))
put("dispatch", "history", h_anon + frame(cf(2, history=pb.History(room="dash"))) + join +
    trig + trig + frame(cf(4, trigger=pb.Trigger(room="dash", event="metrics:update",
                                                  data=metrics))) +
    frame(cf(5, history=pb.History(room="dash", limit=2))) +
    frame(cf(6, history=pb.History(room="dash", event="metrics:update", by_seq=True,
                                   since_seq=1))) +
    frame(cf(7, history=pb.History(room="dash", start=1, limit=1))) +
    frame(cf(8, leave=pb.Leave(room="dash"))) +
    frame(cf(9, join=pb.Join(room="dash", recover=True, epoch=1, since_seq=1))) +
    frame(cf(10, join=pb.Join(room="open"))) +
    frame(cf(11, trigger=pb.Trigger(room="open", event="a", data=b"x"))) +
    frame(cf(12, history=pb.History(room="open", event="a", limit=1000))))
put("dispatch", "oversize", h_anon + b"\0\0\0\x20\x00")

# evdec: ServerFrame bodies for the client's event fast path (fuzz_evdec.c).
ev_full = pb.ServerFrame()
ev_full.event.room = "dashboard"
ev_full.event.event = "metrics:update"
ev_full.event.data = bytes(range(40))
setattr(ev_full.event, "from", "user-42")  # `from` is a Python keyword
ev_full.event.ts_ms = 1764300000123
ev_full.event.seq = 123456
ev_full.event.epoch = 0x0123456789abcdef
put("evdec", "full", ev_full.SerializeToString())
ev_empty = pb.ServerFrame()
ev_empty.event.SetInParent()
put("evdec", "empty_event", ev_empty.SerializeToString())
unk = key(20, 0) + varint(300) + key(21, 1) + bytes(8) + ld(22, b"xyz") + key(23, 5) + bytes(4)
ev_unk = unk + ld(1, b"room") + ld(2, b"ev") + key(6, 0) + varint(2**64 - 1) + unk
put("evdec", "unknown_fields", key(1, 0) + varint(0) + unk + ld(5, ev_unk) + unk)
put("evdec", "dup_event", ld(5, ld(1, b"a") + ld(4, b"first")) + ld(5, ld(1, b"b")))
put("evdec", "long_room", ld(5, ld(1, b"r" * 256)))
ev_rid = pb.ServerFrame(request_id=7)
ev_rid.event.room = "r"
put("evdec", "request_id", ev_rid.SerializeToString())
put("evdec", "welcome", pb.ServerFrame(request_id=1, welcome=pb.Welcome(
    client_id="c1", max_frame=1024)).SerializeToString())
ev_hb = pb.ServerFrame(request_id=3)
ev_hb.history_batch.room = "r"
ev_hb.history_batch.events.add(room="r", seq=1)
ev_hb.history_batch.complete = True
put("evdec", "history_batch", ev_hb.SerializeToString())
put("evdec", "event_then_ping", ld(5, ld(1, b"r")) + ld(12, key(1, 0) + varint(5)))

# ---- h2: [read size - 1] what a client sends after the preface ------------------
# Frames by python3-h2's hyperframe, headers by its hpack (not our code).
from hpack import Encoder  # noqa: E402
from hyperframe import frame as hf  # noqa: E402


def h2_call(enc, sid, method, body=None, extra=(), end=True):
    h = [(":method", "POST"), (":scheme", "http"), (":path", "/dialogue.v1.Dialogue/" + method),
         (":authority", "fuzz"), ("content-type", "application/grpc"), ("te", "trailers")]
    out = hf.HeadersFrame(sid, data=enc.encode(h + list(extra)),
                          flags=["END_HEADERS"] + ([] if body is not None else ["END_STREAM"]))
    out = out.serialize()
    if body is not None:
        msg = b"\0" + struct.pack(">I", len(body)) + body
        out += hf.DataFrame(sid, data=msg, flags=["END_STREAM"] if end else []).serialize()
    return out


def h2_seed(name, parts, piece=255):
    put("h2", name, bytes([piece]) + hf.SettingsFrame(0).serialize() +
        hf.SettingsFrame(0, flags=["ACK"]).serialize() + b"".join(parts))


e = Encoder()
h2_seed("list_rooms", [h2_call(e, 1, "ListRooms", pb.ListRooms(members=True).SerializeToString())])
e = Encoder()
h2_seed("subscribe_trigger", [
    h2_call(e, 1, "Subscribe", svc.SubscribeRequest(room="dash").SerializeToString()),
    h2_call(e, 3, "Trigger", pb.Trigger(room="dash", event="metrics:update",
                                        data=metrics).SerializeToString()),
    hf.WindowUpdateFrame(1, window_increment=1000).serialize(),
    hf.RstStreamFrame(1, error_code=8).serialize()], piece=7)
e = Encoder()
h2_seed("subscribe_recover_filter", [h2_call(e, 1, "Subscribe", svc.SubscribeRequest(
    room="open", events=["a", "*"], after=svc.Position(epoch=1, seq=2)).SerializeToString(),
    extra=[("grpc-timeout", "10m"), ("authorization", "Bearer x.y.z")])])
e = Encoder()
hello_body = cf(1, hello=pb.Hello(protocol_version=1)).SerializeToString()
h2_seed("session", [
    h2_call(e, 1, "Session", hello_body, end=False),
    hf.DataFrame(1, data=frame(cf(2, join=pb.Join(room="open"))) +
                 frame(cf(3, trigger=pb.Trigger(room="open", event="x", data=b"1")))).serialize(),
    hf.DataFrame(1, data=b"", flags=["END_STREAM"]).serialize()], piece=31)
e = Encoder()
h2_seed("history_schema", [
    h2_call(e, 1, "History", pb.History(room="open", by_seq=True).SerializeToString()),
    h2_call(e, 3, "GetSchema", b""),
    hf.PingFrame(0, opaque_data=b"12345678").serialize(),
    hf.GoAwayFrame(0, last_stream_id=0).serialize()])
e = Encoder()
refl = (b"\x3a\x00")  # ServerReflectionRequest{list_services: ""}
h = [(":method", "POST"), (":scheme", "http"),
     (":path", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
     (":authority", "fuzz"), ("content-type", "application/grpc")]
h2_seed("reflection", [hf.HeadersFrame(1, data=e.encode(h), flags=["END_HEADERS"]).serialize(),
                       hf.DataFrame(1, data=b"\0" + struct.pack(">I", 2) + refl +
                                    b"\0" + struct.pack(">I", 22) + b"\x22\x14dialogue.v1.Dialogue",
                                    flags=["END_STREAM"]).serialize()])
e = Encoder()
hb = e.encode([(":method", "POST"), (":scheme", "http"), (":path", "/x"), (":authority", "f")])
h2_seed("continuation", [hf.HeadersFrame(1, data=hb[:3], flags=[]).serialize(),
                         hf.ContinuationFrame(1, data=hb[3:], flags=[]).serialize(),
                         hf.ContinuationFrame(1, data=b"", flags=["END_HEADERS"]).serialize()])

shutil.rmtree(GEN)
print("seeds written under", CORPUS)
