"""dialogued --check-config / -t (issue 22): the configuration and all it
names (certificates, keys, CRLs, token keys, schemas, rooms, store, cluster
files) loaded and checked without listening, writing the store or linking
to the cluster; exit 0, or 1 with EVERY error on stderr as
file:line:col: key: what."""
import datetime
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import CERTS, DAEMON, SCHEMA_DIR, run_tests, write_config  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dlg-check-")


def check(*args, timeout=30):
    t0 = time.monotonic()
    r = subprocess.run([DAEMON] + list(args), capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def crl(path, next_update_days):
    """A CRL of the dev CA revoking nothing, its nextUpdate that many days
    from now (negative: stale)."""
    with open(os.path.join(CERTS, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
         .last_update(now - 2 * day if next_update_days < 0 else now - day)
         .next_update(now + next_update_days * day))
    with open(path, "wb") as f:
        f.write(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def held_port():
    """A port this test listens on: a daemon that tried to listen there
    would fail (and say so)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


GOOD = """
listen:
  - address: 127.0.0.1:{port}
    cert: {certs}/server.crt
    key: {certs}/server.key
    client_ca: {certs}/ca.crt
    client_crl: {crl}
  - address: 127.0.0.1:{port2}
    tls: false
schemas: [{share}/dashboard.pb]
auth:
  jwt:
    keys:
      - {alg: HS256, secret_file: {secret}}
rooms:
  - id: dash
    events: [metrics:update, alert:triggered]
    join: ["*"]
    history:
      - {event: metrics:update, limit: 10}
store: sqlite
store_path: {store}
cluster:
  node_id: n1
  nats: [nats://127.0.0.1:{port}]
"""


def good_config(port, port2, store):
    secret = os.path.join(TMP, "token.secret")
    with open(secret, "wb") as f:
        f.write(os.urandom(32))
    return write_config(GOOD, port=port, port2=port2, store=store, secret=secret,
                        crl=crl(os.path.join(TMP, "fresh.crl"), 7))


def test_valid_config_checked_without_listening_or_writing():
    s1, p1 = held_port()
    s2, p2 = held_port()
    store = os.path.join(TMP, "valid", "history.db")
    os.makedirs(os.path.dirname(store))
    path = good_config(p1, p2, store)
    try:
        for flag in ("--check-config", "-t"):
            r, took = check(flag, "--config", path)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "dialogued: configuration %s is valid\n" % path, r.stdout
            assert r.stderr == "", r.stderr
            # Nothing listened (our sockets hold both ports), nothing was
            # written next to the store, no NATS link was tried (the "NATS
            # server" is our silent socket: a connect would not return 0).
            assert os.listdir(os.path.dirname(store)) == [], os.listdir(os.path.dirname(store))
            s1.settimeout(0.2)
            try:
                c, _ = s1.accept()
                c.close()
                raise AssertionError("the check connected to the cluster's NATS address")
            except socket.timeout:
                pass
    finally:
        s1.close()
        s2.close()


def test_store_file_not_touched():
    # A store file that is not SQLite: a start moves it aside; a check only
    # warns, and leaves it as it is.
    d = os.path.join(TMP, "junk")
    os.makedirs(d)
    store = os.path.join(d, "history.db")
    with open(store, "w") as f:
        f.write("not a database\n")
    path = write_config("listen: [{address: 127.0.0.1:0, tls: false}]\n"
                        "store: sqlite\nstore_path: {store}\n", store=store)
    r, _ = check("-t", "--config", path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^%s:3:13: store_path: warning: store .* is not an SQLite database"
                     % re.escape(path), r.stderr, re.M), r.stderr
    assert sorted(os.listdir(d)) == ["history.db"], os.listdir(d)
    with open(store) as f:
        assert f.read() == "not a database\n"


BAD = """log_level: loud
listen:
  - address: 127.0.0.1:0
    cert: {certs}/missing.crt
    key: {certs}/server.key
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/client-admin.key
    client_ca: {certs}/ca.crt
    client_crl: {stale}
  - address: 127.0.0.1:0
    tls: maybe
schemas:
  - {share}/dashboard.pb
  - {tmp}/nothere.pb
limits:
  max_frame: ten
auth:
  jwt:
    keys:
      - {alg: HS256, secret_file: {tmp}/no.secret}
rooms:
  - id: dash
    events: [metrics:update, "bad event"]
    colour: blue
  - id: ok
    events: [metrics:update]
store: sqlite
store_path: {tmp}/no/such/dir/history.db
cluster:
  node_id: n1
  nats: [nats://127.0.0.1:4222]
  creds: {tmp}/no.creds
log_file: {tmp}/no/dir/dialogued.log
"""

# (line, column, key path, words) of every error, in the order reported:
# the file's own mistakes first (in the loader's walk), then what it names.
BAD_ERRORS = [
    (1, 12, "log_level", 'expected one of: error, warn, info, debug; got "loud"'),
    (12, 10, "listen[2].tls", 'expected true or false, got "maybe"'),
    (17, 14, "limits.max_frame", 'expected an unsigned integer, got "ten"'),
    (25, 5, "rooms[0]", 'unknown key "colour"'),
    (24, 30, "rooms[0].events[1]", "invalid character ' ' in \"bad event\""),
    (4, 11, "listen[0].cert", "missing.crt: No such file or directory"),
    (8, 10, "listen[1].key", "client-admin.key: "),
    (10, 17, "listen[1].client_crl", "is stale"),
    (21, 35, "auth.jwt.keys[0].secret_file", "no.secret"),
    (15, 5, "schemas[1]", "nothere.pb: No such file or directory"),
    (29, 13, "store_path", "cannot create it in"),
    (34, 11, "log_file", "no/dir/dialogued.log in "),
    (33, 10, "cluster.creds", "cannot read"),
]


def test_every_error_reported_at_its_position():
    stale = crl(os.path.join(TMP, "stale.crl"), -1)
    path = write_config(BAD, stale=stale, tmp=TMP)
    r, _ = check("--check-config", "--config", path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert lines[-1] == "dialogued: configuration %s has %d error(s)" % (path, len(BAD_ERRORS)), \
        r.stderr
    errors = lines[:-1]
    assert len(errors) == len(BAD_ERRORS), r.stderr
    for got, (line, col, key, words) in zip(errors, BAD_ERRORS):
        head = "%s:%d:%d: %s: " % (path, line, col, key)
        assert got.startswith(head) and words in got, "want %s...%s\n got %s\nall:\n%s" % (
            head, words, got, r.stderr)
    # Room "ok" read well and its event has a schema, but the schema set is
    # incomplete (nothere.pb): rooms are not checked against it, so no
    # second error comes of the first.
    assert "no loaded schema defines it" not in r.stderr
    assert r.stdout == ""


def test_room_events_checked_against_the_schemas():
    path = write_config("listen: [{address: 127.0.0.1:0, tls: false}]\n"
                        "schemas: [{share}/dashboard.pb]\n"
                        "rooms:\n"
                        "  - id: chat\n"
                        "    events: [metrics:update, chat:message]\n")
    r, _ = check("-t", "--config", path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[0] == (
        "%s:5:30: rooms[0].events[1]: room chat lists event chat:message, but no loaded schema "
        "defines it (add its descriptor set to `schemas`)" % path), r.stderr


def test_command_line_alone():
    # No file: the flags are the configuration.
    r, _ = check("-t", "--plaintext")
    assert r.returncode == 0 and "configuration (command line) is valid" in r.stdout, r
    r, _ = check("-t")
    assert r.returncode == 1, r
    assert r.stderr.startswith("(command line): listen[0]: a certificate and key are required"), \
        r.stderr
    r, _ = check("-t", "--cert", os.path.join(CERTS, "server.crt"),
                 "--key", os.path.join(CERTS, "ca.key"))
    assert r.returncode == 1, r
    assert r.stderr.startswith("dialogued: --key: cannot load key %s" %
                               os.path.join(CERTS, "ca.key")), r.stderr
    r, _ = check("-t", "--plaintext", "--schema", os.path.join(TMP, "none.pb"))
    assert r.returncode == 1 and r.stderr.startswith("dialogued: --schema: "), r.stderr


def test_web_page_folder_and_origins_checked():
    # The page's folder is read as the daemon would read it; origins are
    # checked as the loader does; each error at its key.
    web = os.path.join(TMP, "web")
    os.makedirs(web, exist_ok=True)
    with open(os.path.join(web, "index.html"), "w") as f:
        f.write("<!doctype html><title>x</title>")
    path = write_config("http:\n  web_root: %s\n  allowed_origins: [https://dash.example.com]\n"
                        % web)
    r, _ = check("-t", "--plaintext", "--config", path)
    assert r.returncode == 0, r
    path = write_config("http:\n  web_root: %s/absent\n  allowed_origins: [ftp://x]\n" % TMP)
    r, _ = check("-t", "--plaintext", "--config", path)
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert any(re.match(r"%s:2:\d+: http.web_root: .*absent: No such file or directory$"
                        % re.escape(path), l) for l in lines), r.stderr
    assert any(re.match(r'%s:3:\d+: http.allowed_origins\[0\]: "ftp://x" is no origin'
                        % re.escape(path), l) for l in lines), r.stderr
    assert lines[-1].endswith("has 2 error(s)"), r.stderr
    r, _ = check("-t", "--plaintext", "--web-root", os.path.join(TMP, "absent"))
    assert r.returncode == 1 and r.stderr.startswith("dialogued: --web-root: "), r.stderr


def test_admin_flag_checked_like_a_start():
    # --admin off loopback needs the file's TLS and token, as at start.
    r, _ = check("-t", "--plaintext", "--admin", "10.1.2.3:9090")
    assert r.returncode == 1, r
    assert r.stderr.startswith("dialogued: --admin: 10.1.2.3:9090: not a loopback address"), \
        r.stderr
    r, _ = check("-t", "--plaintext", "--admin", "127.0.0.1:0")
    assert r.returncode == 0, r


def test_unreadable_file_and_syntax_error():
    r, _ = check("-t", "--config", os.path.join(TMP, "absent.yaml"))
    assert r.returncode == 1, r
    assert r.stderr.splitlines()[0] == "%s: cannot open: No such file or directory" % \
        os.path.join(TMP, "absent.yaml"), r.stderr
    path = write_config("rooms: [\n")
    r, _ = check("-t", "--config", path)
    assert r.returncode == 1, r
    assert re.match(r"%s:2:1: YAML syntax error: " % re.escape(path), r.stderr), r.stderr
    assert r.stderr.splitlines()[-1].endswith("has 1 error(s)"), r.stderr


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
