"""Config at start and on SIGHUP: an invalid file at start is a clear error
naming file and line and no daemon; SIGHUP applies a valid new file and
keeps the old one when the new one is invalid."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import DAEMON, Conn, Daemon, pb, run_tests, write_config  # noqa: E402

BASE = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
rooms:
  - id: r
    events: ["*"]
    join: [JOIN]
"""


def try_join(port):
    c = Conn(port)
    c.hello()
    rid = c.send(join=pb.Join(room="r"))
    f = c.recv()
    c.close()
    return f.WhichOneof("msg")


def test_invalid_config_at_start_is_a_clear_error():
    path = write_config(BASE.replace("JOIN", '"*"').replace("events:", "evnts:"))
    port_file = path + ".port"
    p = subprocess.run([DAEMON, "--config", path, "--port-file", port_file],
                       capture_output=True, timeout=10)
    assert p.returncode != 0
    err = p.stderr.decode()
    assert "dialogue.yaml:" in err and "evnts" in err, err
    assert not os.path.exists(port_file), "daemon half started"


def test_sighup_applies_valid_and_keeps_old_on_invalid():
    path = write_config(BASE.replace("JOIN", "admin"))
    d = Daemon(config=path)
    try:
        assert try_join(d.port) == "error"
        with open(path, "w") as f:
            f.write(write_config_text(BASE.replace("JOIN", '"*"')))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "reloaded" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        assert try_join(d.port) == "joined"
        with open(path, "w") as f:
            f.write("rooms: [this is: not valid\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "keeping the running configuration" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        assert "keeping the running configuration" in d.logtext()
        assert "dialogue.yaml:2" in d.logtext() and "YAML syntax error" in d.logtext()
        assert try_join(d.port) == "joined", "old (reloaded) rules lost"
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0


ROLES = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  jwt:
    leeway_seconds: 0
    keys: [{alg: HS256, secret_file: %s}]
rooms:
  - id: r
    events: ["*"]
    default_subscriptions: ["*"]
    join: JOIN
    trigger: [pub]
    history: [{event: "*", limit: 10}]
"""
SECRET = b"reload-secret-0123456789abcdef0123456789"


def test_reload_that_revokes_a_role_ends_its_memberships():
    # Today's main re-checked only Trigger: a member holding only the
    # removed role kept getting events and History after the reload.
    from dlgtest import make_jwt, wait_until
    secret = os.path.join(os.path.dirname(write_config("x")), "secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    base = ROLES % secret
    path = write_config(base.replace("JOIN", "[viewer, ops, pub]"))
    d = Daemon(config=path)
    try:
        def member(sub, role):
            c = Conn(d.port)
            c.hello(token=make_jwt(SECRET, {"sub": sub, "role": role,
                                            "exp": int(time.time()) + 600}))
            rid = c.send(join=pb.Join(room="r"))
            c.expect("joined", rid)
            return c
        viewer, ops, pub = member("v", "viewer"), member("o", "ops"), member("p", "pub")
        with open(path, "w") as f:
            f.write(write_config_text(base.replace("JOIN", "[ops, pub]")))
        d.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "SIGHUP: reloaded" in d.logtext(), 5), d.logtext()[-1500:]
        left = viewer.expect("left", 0)
        assert left.room == "r" and left.reason == "access revoked by a configuration reload"
        assert "1 membership(s) ended" in d.logtext()
        pub.trigger("r", "x:y", b"after")
        assert ops.expect("event", 0).data == b"after"
        # The viewer gets nothing more, and History is refused.
        assert [f.WhichOneof("msg") for f in viewer.barrier()] == []
        rid = viewer.send(history=pb.History(room="r"))
        viewer.expect_error("FAILED_PRECONDITION", rid, contains="not a member")
        rid = viewer.send(join=pb.Join(room="r"))
        viewer.expect_error("PERMISSION_DENIED", rid)
        for c in (viewer, ops, pub):
            c.close()
    finally:
        assert d.stop() == 0


# ---- any number of reloads; certificates, token keys and schemas ----

FULL = """
listen:
  - address: 127.0.0.1:0
    cert: %(cert)s
    key: %(key)s
schemas: [%(schemas)s]
auth:
  jwt:
    leeway_seconds: 0
    keys: [{alg: HS256, secret_file: %(secret)s}]
rooms:
  - id: r
    events: %(events)s
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
%(extra)s"""


def full_config(path, **kw):
    from dlgtest import CERTS, SCHEMA_DIR
    v = {"cert": os.path.join(CERTS, "server.crt"), "key": os.path.join(CERTS, "server.key"),
         "schemas": os.path.join(SCHEMA_DIR, "dashboard.pb"), "events": "[metrics:update]",
         "extra": ""}
    v.update(kw)
    with open(path + ".tmp", "w") as f:
        f.write(FULL % v)
    os.replace(path + ".tmp", path)


def reload_and_wait(d, n_before, want="SIGHUP: reloaded"):
    """Sends SIGHUP and waits for the (n_before + 1)th line containing want."""
    from dlgtest import wait_until
    d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: d.logtext().count(want) > n_before, 10), d.logtext()[-2000:]


def secret_file(dirname, name, data):
    p = os.path.join(dirname, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def test_hundreds_of_reloads():
    # Today's main stopped after 64: "too many reloads; restart the daemon".
    d_dir = os.path.dirname(write_config("x"))
    sec = secret_file(d_dir, "s1", SECRET)
    path = os.path.join(d_dir, "dialogue.yaml")
    full_config(path, secret=sec)
    d = Daemon(config=path)
    try:
        for i in range(150):
            full_config(path, secret=sec, extra="  - {id: extra-%d, events: [\"*\"], "
                                                "join: [\"*\"]}\n" % i)
            reload_and_wait(d, i)
        assert "too many reloads" not in d.logtext()
        from dlgtest import make_jwt
        c = Conn(d.port)
        c.hello(token=make_jwt(SECRET, {"sub": "u", "exp": int(time.time()) + 60}))
        for room in ("extra-0", "extra-149"):
            rid = c.send(join=pb.Join(room=room))
            c.expect("joined", rid)
        c.close()
    finally:
        assert d.stop() == 0


def make_server_cert(dirname, name):
    """A localhost certificate signed by the test CA (not the one the
    daemon starts with); returns (cert path, key path, serial)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from dlgtest import CERTS
    with open(os.path.join(CERTS, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(ca_key, hashes.SHA256()))
    cp, kp = os.path.join(dirname, name + ".crt"), os.path.join(dirname, name + ".key")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cp, kp, cert.serial_number


def served_serial(port):
    from cryptography import x509
    c = Conn(port)
    der = c.sock.getpeercert(binary_form=True)
    c.close()
    return x509.load_der_x509_certificate(der).serial_number


def test_reload_certificate_token_keys_and_schemas():
    from dlgtest import dash, make_jwt
    d_dir = os.path.dirname(write_config("x"))
    sec1 = secret_file(d_dir, "s1", SECRET)
    sec2 = secret_file(d_dir, "s2", b"second-secret-0123456789abcdef0123456789")
    cert2, key2, serial2 = make_server_cert(d_dir, "second")
    path = os.path.join(d_dir, "dialogue.yaml")
    full_config(path, secret=sec1)
    d = Daemon(config=path)
    n = 0
    try:
        first_serial = served_serial(d.port)
        tok1 = make_jwt(SECRET, {"sub": "old", "exp": int(time.time()) + 600})
        tok2 = make_jwt(b"second-secret-0123456789abcdef0123456789",
                        {"sub": "new", "exp": int(time.time()) + 600})
        held = Conn(d.port)
        held.hello(token=tok1)
        # A new schema: an event type the running daemon does not know.
        proto = os.path.join(d_dir, "extra.proto")
        with open(proto, "w") as f:
            f.write('syntax = "proto3";\npackage t;\nimport "dialogue/v1/options.proto";\n'
                    'message Note {\n  option (dialogue.v1.event) = "note:added";\n'
                    '  string text = 1;\n}\n')
        from dlgtest import ROOT
        pbfile = os.path.join(d_dir, "extra.pb")
        subprocess.run(["protoc", "-I" + d_dir, "-I" + os.path.join(ROOT, "proto"),
                        "-I/usr/include", "--include_imports", "--descriptor_set_out=" + pbfile,
                        proto], check=True)
        from dlgtest import SCHEMA_DIR
        both = "%s, %s" % (os.path.join(SCHEMA_DIR, "dashboard.pb"), pbfile)
        full_config(path, secret=sec2, cert=cert2, key=key2, schemas=both,
                    events="[metrics:update, note:added]")
        # The room's event list needs a restart; a new room takes the event.
        with open(path, "a") as f:
            f.write("  - {id: notes, events: [note:added], default_subscriptions: [\"*\"], "
                    "join: [\"*\"], trigger: [\"*\"]}\n")
        reload_and_wait(d, n)
        n += 1
        assert served_serial(d.port) == serial2 != first_serial
        c = Conn(d.port)
        rid = c.send(hello=pb.Hello(protocol_version=1, token=tok1))
        c.expect_error("UNAUTHENTICATED", rid)
        c.close()
        c = Conn(d.port)
        assert c.hello(token=tok2).user_id == "new"
        rid = c.send(join=pb.Join(room="notes"))
        c.expect("joined", rid)
        # text is field 1, a string: a valid Note, then one that is not.
        ack, _ = c.trigger("notes", "note:added", b"\x0a\x02hi")
        assert ack.seq == 1
        rid = c.send(trigger=pb.Trigger(room="notes", event="note:added", data=b"\x0a\x05hi"))
        c.expect_error("INVALID_ARGUMENT", rid)
        c.close()
        # The session from before keeps its identity and works.
        rid = held.send(ping=pb.Ping(nonce=9))
        assert held.expect("pong", rid).nonce == 9
        # A reload that would take away an event a room uses is refused,
        # and so is one with a key that does not match its certificate.
        full_config(path, secret=sec2, cert=cert2, key=key2)
        reload_and_wait(d, 0, "keeping the running configuration")
        assert "room notes has event note:added, which no schema" in d.logtext()
        full_config(path, secret=sec2, cert=cert2, key=os.path.join(d_dir, "s1"), schemas=both,
                    events="[metrics:update, note:added]")
        with open(path, "a") as f:
            f.write("  - {id: notes, events: [note:added], join: [\"*\"]}\n")
        reload_and_wait(d, 1, "keeping the running configuration")
        assert "SIGHUP: TLS: listener 127.0.0.1:0: cannot load key" in d.logtext(), \
            d.logtext()[-1500:]
        assert served_serial(d.port) == serial2
        c = Conn(d.port)
        assert c.hello(token=tok2).user_id == "new"
        c.close()
        held.close()
    finally:
        assert d.stop() == 0


def write_config_text(text):
    p = write_config(text)
    with open(p) as f:
        return f.read()


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
