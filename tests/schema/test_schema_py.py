"""test_schema_py.py: the C validator against an encoder nobody here wrote.

Payloads are built with the real protobuf library (python3-protobuf) from
classes protoc generates for dashboard.proto and the fixtures, then checked
by build/tests/schema_check (the daemon's validator behind a tiny CLI). The
script asserts that exactly the valid ones are accepted and that each
rejection names the right field. Invalid payloads the library refuses to
write (bad UTF-8, undefined proto2 enum values, wrong wire types, unknown
fields) come from twin messages in twins.proto with the same field numbers.

Run from anywhere with /usr/bin/python3; DLG_BUILD picks the build folder
(tests/run.sh sets it to build or build/asan). Last line: `N passed, N failed`.
"""
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DLG_BUILD", os.path.join(ROOT, "build"))
CHECK = os.path.join(BUILD, "tests", "schema_check")
SHARE = os.path.join(BUILD, "share", "dialogue")
SETS = [os.path.join(SHARE, "dashboard.pb"), os.path.join(SHARE, "test_fixtures.pb")]
SEED = 20240601

counts = {"pass": 0, "fail": 0}


def report(name, ok, detail=""):
    if ok:
        counts["pass"] += 1
        print("PASS " + name)
    else:
        counts["fail"] += 1
        print("FAIL %s: %s" % (name, detail))


def check(event, payload, allow_unknown=False):
    args = [CHECK] + (["--allow-unknown"] if allow_unknown else []) + SETS + ["--", event]
    p = subprocess.run(args, input=payload, capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode("utf-8", "replace").strip()


def accept(name, event, payload, allow_unknown=False):
    rc, err = check(event, payload, allow_unknown)
    report(name, rc == 0, "expected valid, got rc %d: %s (payload %s)" % (rc, err, payload.hex()))


def reject(name, event, payload, want, allow_unknown=False):
    rc, err = check(event, payload, allow_unknown)
    report(name, rc == 1 and err == want,
           "expected rc 1 %r, got rc %d %r (payload %s)" % (want, rc, err, payload.hex()))


def expect(name, event, payload, want):
    """want None = valid, else the exact error."""
    if want is None:
        accept(name, event, payload)
    else:
        reject(name, event, payload, want)


# How the C side prints numbers: integers in full, else the shortest text
# that reads back to the same double (or float, for float fields).
def cdouble(x):
    if math.isnan(x):
        return "NaN"
    if math.isfinite(x) and x == int(x) and abs(x) < 2.0 ** 64:
        return "%.0f" % x
    for p in range(1, 18):
        s = "%.*g" % (p, x)
        if float(s) == x:
            return s
    return repr(x)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def cfloat(x):
    x = f32(x)
    for p in range(1, 10):
        s = "%.*g" % (p, x)
        if f32(float(s)) == x:
            return s
    return repr(x)


def bound_msg(prefix, v, lo, hi, fmt=str):
    """The expected error for v against inclusive [lo, hi] (None = unset)."""
    if lo is not None and v < lo:
        return "%s: %s is below min %s" % (prefix, fmt(v), cdouble(lo))
    if hi is not None and v > hi:
        return "%s: %s is above max %s" % (prefix, fmt(v), cdouble(hi))
    return None


BAD_UTF8 = [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xed\xa0\x80",
            b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\x80",
            b"ab\xe2\x82", b"\xe2\x28\xa1", b"\xc3", b"ok\xf8\x88\x80\x80\x80"]


def utf8_ok(b):
    try:
        b.decode("utf-8")   # strict: no surrogates, overlongs or > U+10FFFF
        return True
    except UnicodeDecodeError:
        return False


def random_text(rng, nbytes):
    """A str of exactly nbytes UTF-8 bytes, mixing 1- to 4-byte characters."""
    out, n = [], 0
    while n < nbytes:
        c = rng.choice(["a", "Z", "7", " ", "\u00e9", "\u20ac", "\U0001d11e", "\u0000"])
        w = len(c.encode())
        if n + w > nbytes:
            c, w = "x", 1
        out.append(c)
        n += w
    return "".join(out)


def metrics_cases(dash, tw, rng):
    fields = ["cpu", "memory", "requests", "errors", "latency"]
    bounded = {"cpu": (0, 100), "memory": (0, 100)}

    def full(**kw):
        m = dash.MetricsUpdate(cpu=1, memory=2, requests=3, errors=4, latency=5)
        for k, v in kw.items():
            setattr(m, k, v)
        return m

    edge_in = [0.0, -0.0, 100.0, 5e-324, 99.99999999999999, 50.5]
    for i in range(60):
        m = dash.MetricsUpdate()
        for f in fields:
            lo, hi = bounded.get(f, (0, 1e300))
            pick = rng.random()
            if pick < 0.3:
                v = rng.choice(edge_in) if f in bounded else rng.choice([0.0, 5e-324, 1e300])
            else:
                v = rng.uniform(lo, hi)
            setattr(m, f, v)
        accept("metrics valid random #%d" % i, "metrics:update", m.SerializeToString())
    for f in fields:
        m = full()
        m.ClearField(f)
        reject("metrics missing " + f, "metrics:update", m.SerializeToString(),
               "metrics:update.%s: required field is missing" % f)
        accept("metrics %s = 0 present" % f, "metrics:update", full(**{f: 0.0}).SerializeToString())
    bad = [100.00000000000001, 100.5, 150.0, 1e308, math.inf, -1.0, -5e-324, -math.inf, 1e20]
    for f in fields:
        lo, hi = bounded.get(f, (0, None))
        for v in bad + [rng.uniform(-1e9, 1e9) for _ in range(4)]:
            want = bound_msg("metrics:update." + f, v, lo, hi, cdouble)
            expect("metrics %s = %r" % (f, v), "metrics:update",
                   full(**{f: v}).SerializeToString(), want)
        reject("metrics %s = NaN" % f, "metrics:update", full(**{f: math.nan}).SerializeToString(),
               "metrics:update.%s: NaN is not allowed (the field has bounds)" % f)
    wrong = tw.MetricsWrongType(cpu="50", memory=1, requests=1, errors=1, latency=1)
    reject("metrics cpu as string", "metrics:update", wrong.SerializeToString(),
           "metrics:update.cpu: wire type 2 does not match double")
    extra = tw.MetricsTwin(cpu=1, memory=1, requests=1, errors=1, latency=1, extra=7)
    reject("metrics unknown field", "metrics:update", extra.SerializeToString(),
           "metrics:update: unknown field 12")
    accept("metrics unknown field allowed", "metrics:update", extra.SerializeToString(),
           allow_unknown=True)


def alert_cases(dash, tw, rng):
    def full(**kw):
        m = dash.AlertTriggered(alert_id="a", severity=dash.high, message="m", timestamp=1)
        for k, v in kw.items():
            setattr(m, k, v)
        return m

    for i in range(40):
        m = dash.AlertTriggered(alert_id=random_text(rng, rng.randint(1, 128)),
                                severity=rng.randint(0, 3),
                                message=random_text(rng, rng.choice([1, 1024, rng.randint(1, 1024)])),
                                timestamp=rng.choice([0, 2 ** 64 - 1, rng.getrandbits(64)]))
        accept("alert valid random #%d" % i, "alert:triggered", m.SerializeToString())
    for f in ["alert_id", "severity", "message", "timestamp"]:
        m = full()
        m.ClearField(f)
        reject("alert missing " + f, "alert:triggered", m.SerializePartialToString(),
               "alert:triggered.%s: required field is missing" % f)
    # Lengths count bytes: 43 euro signs are 129 bytes.
    for name, val, want in [
            ("empty", "", "length 0 is below min_len 1"),
            ("129 ascii", "x" * 129, "length 129 is above max_len 128"),
            ("43 euros", "\u20ac" * 43, "length 129 is above max_len 128"),
            ("32 clefs", "\U0001d11e" * 32, None),
            ("33 clefs", "\U0001d11e" * 33, "length 132 is above max_len 128")]:
        expect("alert alert_id " + name, "alert:triggered", full(alert_id=val).SerializeToString(),
               want and "alert:triggered.alert_id: " + want)
    reject("alert message 1025", "alert:triggered", full(message="y" * 1025).SerializeToString(),
           "alert:triggered.message: length 1025 is above max_len 1024")
    for v in [4, 9, -1, 2 ** 31 - 1, -2 ** 31]:
        t = tw.AlertTwin(alert_id=b"a", severity=v, message=b"m", timestamp=1)
        reject("alert severity %d" % v, "alert:triggered", t.SerializeToString(),
               "alert:triggered.severity: %d is not a defined value of "
               "dialogue.dashboard.Severity" % v)
    for b in BAD_UTF8:
        t = tw.AlertTwin(alert_id=b, severity=1, message=b"m", timestamp=1)
        reject("alert alert_id bytes %s" % b.hex(), "alert:triggered", t.SerializeToString(),
               "alert:triggered.alert_id: invalid UTF-8")
    # Random bytes: valid exactly when Python's strict decoder agrees.
    alphabet = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
                0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff]
    for i in range(120):
        b = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        t = tw.AlertTwin(alert_id=b, severity=1, message=b"m", timestamp=1)
        expect("alert random bytes #%d %s" % (i, b.hex()), "alert:triggered", t.SerializeToString(),
               None if utf8_ok(b) else "alert:triggered.alert_id: invalid UTF-8")


def everything_cases(fx, tw, rng):
    E = "test:everything"
    P = "test:everything."

    def ev(**kw):
        return fx.Everything(**kw).SerializeToString()

    i64 = [0, 1, 2 ** 53, -2 ** 53, 2 ** 53 + 1, -2 ** 53 - 1, 2 ** 63 - 1, -2 ** 63]
    i64 += [rng.randint(-2 ** 54, 2 ** 54) for _ in range(10)]
    for v in i64:
        expect("big %d" % v, E, ev(big=v), bound_msg(P + "big", v, -2 ** 53, 2 ** 53))
    for v in [0, 1, 9, 10, 10 ** 19, 10 ** 19 + 1, 2 ** 64 - 1] + [rng.getrandbits(64) for _ in range(6)]:
        # 0 is not written (proto3 implicit presence), so it is never below min.
        want = None if v == 0 else bound_msg(P + "ubig", v, 10, 10 ** 19)
        expect("ubig %d" % v, E, ev(ubig=v), want)
    for name, lo, hi, vals in [
            ("s32", -100, 100, [-100, 100, -101, 101, -2 ** 31, 2 ** 31 - 1]),
            ("s64", -1000, None, [-1000, -1001, 2 ** 63 - 1, -2 ** 63]),
            ("f32", None, 1000, [1000, 1001, 2 ** 32 - 1]),
            ("sf64", -10, 10, [-10, 10, -11, 11, -2 ** 63])]:
        for v in vals + [rng.randint(-2000, 2000) if name != "f32" else rng.randint(0, 2000)
                         for _ in range(4)]:
            want = None if v == 0 else bound_msg(P + name, v, lo, hi)
            expect("%s %d" % (name, v), E, ev(**{name: v}), want)
    for v in [0.1, 0.05, 0.2, -1e-45, 0.10000001, 1e-40, math.inf, rng.uniform(-1, 1)]:
        want = None if v == 0 else bound_msg(P + "fl", f32(v), 0, f32(0.1), cfloat)
        if want:    # the C side prints the bound as written, not as a float
            want = want.replace("max " + cdouble(f32(0.1)), "max 0.1")
        expect("fl %r" % v, E, ev(fl=v), want)
    reject("fl NaN", E, ev(fl=math.nan), P + "fl: NaN is not allowed (the field has bounds)")
    for v in [-1.0, 1.0, 1.0000000000000002, -1.0000000000000002, 0.5, 2.5e-300, -math.inf]:
        expect("dbl %r" % v, E, ev(dbl=v), bound_msg(P + "dbl", v, -1, 1, cdouble))

    def first_bad(vals, ok, fmt):
        for i, v in enumerate(vals):
            if not ok(v):
                return i, fmt(v)
        return None

    # nums: packed by the library; as a twin, unpacked. loose: the reverse.
    for i in range(25):
        vals = [rng.choice([0, 1000, rng.randint(0, 1000), rng.randint(-5, 1005)])
                for _ in range(rng.randint(0, 6))]
        bad = first_bad(vals, lambda v: 0 <= v <= 1000,
                        lambda v: "%d is %s" % (v, "below min 0" if v < 0 else "above max 1000"))
        want = bad and "%snums[%d]: %s" % (P, bad[0], bad[1])
        expect("nums packed #%d %r" % (i, vals), E, ev(nums=vals), want)
        expect("nums unpacked #%d %r" % (i, vals), E, tw.EverythingTwin(nums=vals).SerializeToString(), want)
        lvals = [min(v, 11) for v in vals]
        lbad = first_bad(lvals, lambda v: v <= 10, lambda v: "%d is above max 10" % v)
        lwant = lbad and "%sloose[%d]: %s" % (P, lbad[0], lbad[1])
        expect("loose unpacked #%d" % i, E, ev(loose=lvals), lwant)
        expect("loose packed #%d" % i, E, tw.EverythingTwin(loose=lvals).SerializeToString(), lwant)
    for i in range(20):
        tags = [random_text(rng, rng.choice([0, 1, 8, 9, rng.randint(1, 8)]))
                for _ in range(rng.randint(0, 4))]
        bad = first_bad(tags, lambda t: 1 <= len(t.encode()) <= 8,
                        lambda t: "length %d is %s" % (len(t.encode()), "below min_len 1"
                                                       if not t else "above max_len 8"))
        expect("tags #%d" % i, E, ev(tags=tags), bad and "%stags[%d]: %s" % (P, bad[0], bad[1]))
    defined = {0, 1, 2, 7, -3}
    for i in range(20):
        cols = [rng.choice([0, 1, 2, 7, -3, 3, 5, -1, 100]) for _ in range(rng.randint(0, 5))]
        bad = first_bad(cols, lambda v: v in defined,
                        lambda v: "%d is not a defined value of dialogue.test.Color" % v)
        want = bad and "%scolors[%d]: %s" % (P, bad[0], bad[1])
        expect("colors #%d %r" % (i, cols), E, ev(colors=cols), want)
        expect("colors twin #%d" % i, E, tw.EverythingTwin(colors=cols).SerializeToString(), want)
    for v in [0, 1, 7, -3, 3, 100]:
        want = None if v in defined else P + "color: %d is not a defined value of dialogue.test.Color" % v
        expect("color %d" % v, E, ev(color=v), want)

    # Nested messages, maps (one entry where an index is expected: the
    # library's map order is its own), oneof presence, the largest number.
    m = fx.Everything()
    m.inner.name = "n"
    m.items.add(name="a")
    m.items.add(name="b", level=-5)
    m.children["x"].name = "c"
    m.children["y"].name = "d"
    m.palette[3] = fx.BLUE
    m.far = 5
    accept("nested valid", E, m.SerializeToString())
    m = fx.Everything()
    m.inner.SetInParent()
    reject("inner without name", E, m.SerializeToString(), P + "inner.name: required field is missing")
    m = fx.Everything()
    m.items.add(name="a")
    m.items.add(name="b")
    m.items.add(level=1)
    reject("items[2] without name", E, m.SerializeToString(), P + "items[2].name: required field is missing")
    m = fx.Everything()
    m.items.add(name="a", level=6)
    reject("items[0].level", E, m.SerializeToString(), P + "items[0].level: 6 is above max 5")
    m = fx.Everything()
    m.children["k"].level = 1
    reject("map value without name", E, m.SerializeToString(),
           P + "children[0].value.name: required field is missing")
    m = fx.Everything()
    m.children["k"].name = "x" * 17
    reject("map value name too long", E, m.SerializeToString(),
           P + "children[0].value.name: length 17 is above max_len 16")
    m = fx.Everything()
    m.palette[1] = 4
    reject("map enum value", E, m.SerializeToString(),
           P + "palette[0].value: 4 is not a defined value of dialogue.test.Color")
    t = tw.EverythingTwin()
    t.palette[1] = 2
    accept("map enum value twin", E, t.SerializeToString())
    for depth, want in [(32, None), (33, P + "inner" + ".child" * 32 + ": nesting too deep")]:
        m = fx.Everything()
        cur = m.inner
        for _ in range(depth - 1):
            cur.name = "x"
            cur = cur.child
        cur.name = "x"
        expect("nesting %d" % depth, E, m.SerializeToString(), want)
    expect("blob 4", E, ev(blob=b"\xff\x00\xfe\xc0"), None)
    expect("blob 5", E, ev(blob=b"12345"), P + "blob: length 5 is above max_len 4")
    expect("text 5", E, ev(text="12345"), None)
    expect("text 6", E, ev(text="123456"), P + "text: length 6 is above max_len 5")
    expect("code 0 (oneof, present)", E, ev(code=0), P + "code: 0 is below min 1")
    expect("code 1", E, ev(code=1), None)
    for b in BAD_UTF8:
        t = tw.EverythingTwin()
        t.inner.name = b
        reject("inner.name bytes %s" % b.hex(), E, t.SerializeToString(), P + "inner.name: invalid UTF-8")
        if len(b) <= 5:     # text has max_len 5, checked before UTF-8
            reject("text bytes %s" % b.hex(), E, tw.EverythingTwin(text=b).SerializeToString(),
                   P + "text: invalid UTF-8")
        reject("plain bytes %s" % b.hex(), E, tw.EverythingTwin(plain=b).SerializeToString(),
               P + "plain: invalid UTF-8")
        reject("tags[1] bytes %s" % b.hex(), E, tw.EverythingTwin(tags=[b"ok", b]).SerializeToString(),
               P + "tags[1]: invalid UTF-8")
    # int32 written as int64: the validator must judge the value a parser
    # keeps (the low 32 bits), so ask the library what it reads back.
    for v in [1, -1, -2, 2 ** 32 + 1, 2 ** 32 + 2, 2 ** 31, -2 ** 63, 2 ** 40 - 1] + \
            [rng.randint(-2 ** 63, 2 ** 63 - 1) for _ in range(8)]:
        data = tw.EverythingTwin(i32=v).SerializeToString()
        seen = fx.Everything.FromString(data).i32
        want = None if seen == 0 else bound_msg(P + "i32", seen, -1, 1)
        expect("i32 as int64 %d (reads %d)" % (v, seen), E, data, want)


def presence_cases(fx, fx2, tw):
    expect("presence count 0", "test:presence", fx.Presence(count=0).SerializeToString(), None)
    expect("presence count 10", "test:presence", fx.Presence(count=10).SerializeToString(), None)
    expect("presence count missing", "test:presence", fx.Presence(plain=3).SerializeToString(),
           "test:presence.count: required field is missing")
    expect("presence count 11", "test:presence", fx.Presence(count=11).SerializeToString(),
           "test:presence.count: 11 is above max 10")
    L = "test:legacy"
    expect("legacy id 0", L, fx2.Legacy(id=0).SerializeToString(), None)
    expect("legacy id missing", L, fx2.Legacy(opt=3).SerializePartialToString(),
           "test:legacy.id: required field is missing")
    expect("legacy opt 0", L, fx2.Legacy(id=1, opt=0).SerializeToString(),
           "test:legacy.opt: 0 is below min 1")
    expect("legacy kind B", L, fx2.Legacy(id=1, kind=fx2.KIND_B).SerializeToString(), None)
    for v in [0, 3, -1]:
        expect("legacy kind %d" % v, L, tw.LegacyTwin(id=1, kind=v).SerializeToString(),
               "test:legacy.kind: %d is not a defined value of dialogue.test2.Kind" % v)
    expect("legacy plain unpacked", L, fx2.Legacy(id=1, plain=[1, -1, 2 ** 31 - 1]).SerializeToString(), None)
    expect("legacy packed_vals", L, fx2.Legacy(id=1, packed_vals=[-5, 2 ** 63 - 1]).SerializeToString(), None)
    expect("legacy packed_vals -6", L, fx2.Legacy(id=1, packed_vals=[0, -5, -6]).SerializeToString(),
           "test:legacy.packed_vals[2]: -6 is below min -5")
    expect("legacy packed_vals unpacked -6", L,
           tw.LegacyTwin(id=1, packed_vals=[0, -6]).SerializeToString(),
           "test:legacy.packed_vals[1]: -6 is below min -5")
    m = fx2.Legacy(id=1)
    m.next.opt = 2
    expect("legacy next.id missing", L, m.SerializePartialToString(),
           "test:legacy.next.id: required field is missing")
    m = fx2.Legacy(id=1)
    m.inner.level = 1
    expect("legacy inner.name missing", L, m.SerializePartialToString(),
           "test:legacy.inner.name: required field is missing")


def main():
    missing = [p for p in [CHECK] + SETS if not os.path.exists(p)]
    if missing:
        print("FAIL setup: missing %s (ninja %s)" % (", ".join(missing),
              os.path.relpath(CHECK, ROOT)))
        print("0 passed, 1 failed")
        return 1
    gen = tempfile.mkdtemp(prefix="dlg-schema-py-")
    try:
        subprocess.run(["protoc", "-I" + os.path.join(ROOT, "tests/schema"),
                        "-I" + os.path.join(ROOT, "proto"), "-I/usr/include", "--python_out=" + gen]
                       + [os.path.join(ROOT, p) for p in [
                           "proto/dialogue/v1/options.proto", "proto/events/dashboard.proto",
                           "tests/schema/fixtures.proto", "tests/schema/fixtures2.proto",
                           "tests/schema/twins.proto"]], check=True, timeout=60)
        sys.path.insert(0, gen)
        from events import dashboard_pb2 as dash
        import fixtures_pb2 as fx
        import fixtures2_pb2 as fx2
        import twins_pb2 as tw
        rng = random.Random(SEED)
        print("seed %d, validator %s" % (SEED, CHECK))
        metrics_cases(dash, tw, rng)
        alert_cases(dash, tw, rng)
        everything_cases(fx, tw, rng)
        presence_cases(fx, fx2, tw)
    except Exception as e:     # a crash in the script itself is a failure too
        import traceback
        traceback.print_exc()
        report("script", False, repr(e))
    finally:
        shutil.rmtree(gen, True)
    print("%d passed, %d failed" % (counts["pass"], counts["fail"]))
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
