"""The examples end to end. libdialogue-client installed with `ninja install`
into a temporary PREFIX; examples/publisher copied out of the tree, built
with its Makefile and nothing but pkg-config, and run against the example
dashboard config; the nanopb publisher's bytes compared with protobuf-c's
and Python's protobuf, and published through the daemon."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (BUILD, CERTS, Conn, Daemon, ROOT, dash, make_jwt,  # noqa: E402
                     run_tests, write_config)

SECRET = b"examples-test-secret-0123456789abcdef0"
# The ninja file of each build variant, to build the in-tree examples.
NINJA_FILES = {"build": "build.ninja", "build/asan": "asan.ninja", "build/tsan": "tsan.ninja"}

# fixed.h's values, written out again here so the check does not trust the
# C side for what they should be.
FIXED_METRICS = dict(cpu=12.5, memory=42.25, requests=3.0, errors=0.0, latency=1.5)
FIXED_ALERT = dict(alert_id="cpu-1700000000000", severity=dash.high,
                   message="CPU usage critical: 95.5%", timestamp=1700000000000)


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    if not os.environ.get("DLGT_KEEP"):
        atexit.register(shutil.rmtree, d, True)
    return d


def run(args, timeout=120, **kw):
    """Runs a command; on failure the assertion shows its output."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    assert p.returncode == 0, "%s exited %d:\n%s" % (" ".join(args), p.returncode, p.stdout)
    return p.stdout


def load_example():
    """examples/dashboard/dialogue.yaml with test certificates, schema, secret
    and port 0. Its rules are used as shipped: publishers join the room and
    trigger (what examples/publisher/README.md relies on)."""
    with open(os.path.join(ROOT, "examples/dashboard/dialogue.yaml")) as f:
        text = f.read()
    for rule in ("join: [admin, publisher]",
                 "    trigger_events:\n      - {event: metrics:update, roles: [publisher]}"):
        assert rule in text, "examples/dashboard/dialogue.yaml no longer has %r" % rule
    edits = [("../../.state/certs/", "{certs}/"),
             ("../../build/share/dialogue/", "{share}/"),
             ("../../.state/token.secret", "{secret}"),
             ("address: 127.0.0.1:3000", "address: 127.0.0.1:0")]
    for old, new in edits:
        assert old in text, "examples/dashboard/dialogue.yaml no longer has %r" % old
        text = text.replace(old, new)
    return text


D = None
# The in-tree examples of this variant (built by setup()).
NANOPB = os.path.join(BUILD, "examples", "nanopb-publisher")
PBC_CHECK = os.path.join(BUILD, "examples", "pbc-check")
PUBLISHER = os.path.join(BUILD, "examples", "publisher")


def setup():
    global D
    rel = os.path.relpath(BUILD, ROOT)
    if rel in NINJA_FILES:
        run(["ninja", "-f", NINJA_FILES[rel]] +
            [os.path.join(rel, "examples", x) for x in ("nanopb-publisher", "pbc-check",
                                                        "publisher")], cwd=ROOT, timeout=300)
    d = tmpdir("dlg-ex-")
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(load_example(), secret=secret))


def token(sub, role):
    now = int(time.time())
    return make_jwt(SECRET, {"sub": sub, "role": role, "iat": now, "exp": now + 600})


def publisher_env(sub):
    env = dict(os.environ)
    env.update(DIALOGUE_SERVER="127.0.0.1:%d" % D.port,
               DIALOGUE_CA=os.path.join(CERTS, "ca.crt"),
               DIALOGUE_TOKEN=token(sub, "publisher"))
    return env


def collect_metrics(conn, sender, want, within):
    """Reads frames until `want` metrics:update events from `sender` arrived
    (the daemon's own, from "system", interleave and are skipped); returns
    them."""
    got = []
    deadline = time.time() + within
    while len(got) < want and time.time() < deadline:
        f = conn.recv()
        if f.WhichOneof("msg") != "event":
            continue
        ev = f.event
        if ev.event == "metrics:update" and getattr(ev, "from") == sender:
            got.append(ev)
    return got


def run_publisher(args, env, sub, count):
    """Starts a publisher process with an admin subscriber already in the
    room; returns (its stdout lines, the events the subscriber got from it)."""
    admin = Conn(D.port, timeout=5)
    w = admin.hello(token=token("ada-" + sub, "admin"))
    assert [j.room for j in w.auto_joined] == ["dashboard"], w
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        events = collect_metrics(admin, sub, count, within=count + 15)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        admin.close()
    assert proc.returncode == 0, "%s exited %d: %s" % (args[0], proc.returncode, err)
    assert len(events) == count, "subscriber got %d of %d metrics:update from %s; " \
        "publisher said: %s%s" % (len(events), count, sub, out, err)
    return out.splitlines(), events


def check_seqs(lines, events):
    """Each line the publisher printed names the seq of one event received."""
    seqs = [int(tok.split("=")[1]) for line in lines for tok in line.split()
            if tok.startswith("seq=")]
    assert len(lines) == len(events) and all(l.startswith("metrics:update seq=") for l in lines), \
        lines
    assert seqs == [ev.seq for ev in events], (seqs, [ev.seq for ev in events])


def test_install_and_build_publisher_outside_the_tree():
    prefix = tmpdir("dlg-prefix-")
    env = dict(os.environ, PREFIX=prefix)
    env.pop("DESTDIR", None)
    # The release build is installed whatever the variant: an ASan library
    # would need the ASan runtime in the program that loads it.
    run(["ninja", "-f", "build.ninja", "install"], cwd=ROOT, env=env, timeout=300)
    pc = os.path.join(prefix, "lib", "pkgconfig")
    for path in ("include/dialogue/client.h", "include/dialogue/dlg_errno.h",
                 "lib/libdialogue-client.so.2", "lib/libdialogue-client.a",
                 "lib/pkgconfig/dialogue-client.pc", "bin/dialoguectl",
                 "share/bash-completion/completions/dialoguectl"):
        assert os.path.exists(os.path.join(prefix, path)), "install left no " + path

    # dialoguectl and its completion: the installed script completes the
    # installed program's commands in a plain bash (no bash-completion).
    comp = os.path.join(prefix, "share/bash-completion/completions/dialoguectl")
    p = subprocess.run(["bash", "--norc", "-c",
                        "source %s; COMP_WORDS=(dialoguectl tri); COMP_CWORD=1; _dialoguectl; "
                        "echo \"${COMPREPLY[*]}\"; %s/bin/dialoguectl --version" % (comp, prefix)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("trigger\ndialoguectl "), p.stdout + p.stderr

    src = os.path.join(tmpdir("dlg-pubsrc-"), "publisher")
    shutil.copytree(os.path.join(ROOT, "examples", "publisher"), src)
    assert not os.path.exists(os.path.join(src, "publisher")), "a built binary was copied"
    benv = dict(os.environ, PKG_CONFIG_PATH=pc)
    # CFLAGS with -Werror: the example must build warning-free for users too.
    out = run(["make", "DIALOGUE_PROTO=" + os.path.join(ROOT, "proto"), "CFLAGS=-O2 -g -Werror"],
              cwd=src, env=benv)
    # Only the installed copy may be used: its include dir and its library.
    # (The tree's proto/ is read by protoc-c only.)
    assert "-I" + os.path.join(prefix, "include") in out, out
    compiles = [l for l in out.splitlines() if " -o " in l and not l.startswith("protoc")]
    assert len(compiles) == 3 and not any(ROOT in l for l in compiles), out
    exe = os.path.join(src, "publisher")
    renv = publisher_env("svc-pub")
    renv["LD_LIBRARY_PATH"] = os.path.join(prefix, "lib")
    ldd = run(["ldd", exe], env=renv)
    assert os.path.join(prefix, "lib", "libdialogue-client.so.2") in ldd, ldd

    lines, events = run_publisher([exe, "--count", "3"], renv, "svc-pub", 3)
    check_seqs(lines, events)
    for ev in events:
        assert ev.room == "dashboard"
        m = dash.MetricsUpdate()
        m.ParseFromString(ev.data)
        for f in ("cpu", "memory", "requests", "errors", "latency"):
            assert m.HasField(f), (f, m)
        assert 0 <= m.cpu <= 100 and 0 < m.memory <= 100, m
        assert 0.5 < m.requests < 1.5 and m.errors == 0 and m.latency >= 0, m


def test_publisher_reports_a_bad_server_setting():
    env = dict(os.environ, DIALOGUE_SERVER="no-port-here")
    p = subprocess.run([PUBLISHER, "--count", "1"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=20)
    assert p.returncode == 2 and "no-port-here" in p.stderr, (p.returncode, p.stderr)


def parse_dump(text):
    """'EVENT HEX' lines -> [(event, bytes)]."""
    out = []
    for line in text.splitlines():
        event, hexdata = line.split(" ")
        out.append((event, bytes.fromhex(hexdata)))
    return out


def test_nanopb_bytes_match_protobuf_c_and_python():
    nano = parse_dump(run([NANOPB, "--dump"]))
    pbc = parse_dump(run([PBC_CHECK, "--dump"]))
    assert [e for e, _ in nano] == ["metrics:update", "alert:triggered"], nano
    # Byte for byte: nanopb, protobuf-c and Python's protobuf.
    want_m = dash.MetricsUpdate(**FIXED_METRICS).SerializeToString()
    want_a = dash.AlertTriggered(**FIXED_ALERT).SerializeToString()
    assert nano[0][1] == pbc[0][1] == want_m, (nano[0][1].hex(), pbc[0][1].hex(), want_m.hex())
    assert nano[1][1] == pbc[1][1] == want_a, (nano[1][1].hex(), pbc[1][1].hex(), want_a.hex())
    # Python decodes nanopb's bytes to the values, 0 included (presence).
    m = dash.MetricsUpdate()
    m.ParseFromString(nano[0][1])
    for k, v in FIXED_METRICS.items():
        assert m.HasField(k) and getattr(m, k) == v, (k, m)
    a = dash.AlertTriggered()
    a.ParseFromString(nano[1][1])
    for k, v in FIXED_ALERT.items():
        assert a.HasField(k) and getattr(a, k) == v, (k, a)
    # protobuf-c decodes them to the same values.
    text = run([PBC_CHECK, "--decode"], input="".join(
        "%s %s\n" % (e, b.hex()) for e, b in nano))
    want = ["metrics:update" + "".join("\t%s=%.17g" % (k, v) for k, v in FIXED_METRICS.items()),
            "alert:triggered\talert_id=%s\tseverity=%d\tmessage=%s\ttimestamp=%d" % (
                FIXED_ALERT["alert_id"], FIXED_ALERT["severity"], FIXED_ALERT["message"],
                FIXED_ALERT["timestamp"])]
    assert text.splitlines() == want, (text, want)


def test_pbc_check_rejects_bytes_that_do_not_decode():
    # The decode side must be able to say no, or the test above proves little.
    p = subprocess.run([PBC_CHECK, "--decode"], input="metrics:update 0a05\n", text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 1 and "do not decode as metrics:update" in p.stderr, p.stderr


def test_nanopb_publisher_through_the_daemon():
    # The daemon validates every field against the schema's rules (all
    # required), so an encoding it accepted is one it fully understood.
    lines, events = run_publisher([NANOPB, "--count", "2"], publisher_env("nano-dev"),
                                  "nano-dev", 2)
    check_seqs(lines, events)
    for ev in events:
        m = dash.MetricsUpdate()
        m.ParseFromString(ev.data)
        assert all(m.HasField(f) for f in FIXED_METRICS), m
        assert 0 <= m.cpu <= 100 and m.memory == 0 and m.errors == 0, m


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
              per_test_timeout=240)
