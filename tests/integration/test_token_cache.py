"""The verified-token cache (auth.jwt.cache_size, issue 23 item 3): a Hello
with a token the daemon verified before costs no signature check, but the
cache never lets through what the verify would refuse: an expired token is
refused (and a session from the cache still ends at its exp), and a reload
with other keys checks every token afresh. Tokens are made here with
Python's hmac."""
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, make_jwt, pb, run_tests, write_config  # noqa: E402

SECRET = b"cache-secret-0123456789abcdef0123456789"
OTHER = b"other-secret-0123456789abcdef0123456789"
CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
admin:
  listen: 127.0.0.1:0
auth:
  anonymous: false
  jwt:
    audience: dialogue
    leeway_seconds: 0
CACHE    keys:
      - alg: HS256
        secret_file: {secret}
rooms:
  - id: feed
    events: ["*"]
    join: ["*"]
"""


def daemon(cache=None, *extra):
    cfgdir = os.path.dirname(write_config("x"))
    secret = os.path.join(cfgdir, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    text = CONFIG.replace("CACHE", "    cache_size: %d\n" % cache if cache is not None else "")
    path = write_config(text, secret=secret)
    return Daemon(*extra, config=path), secret


def token(sub="dash", ttl=3600, exp=None):
    now = int(time.time())
    return make_jwt(SECRET, {"sub": sub, "aud": "dialogue", "iat": now,
                             "exp": exp if exp is not None else now + ttl,
                             "role": ["viewer", "ops"]})


def metrics(d):
    m = re.search(r"admin listener on \S+ port (\d+)", d.logtext())
    assert m, d.logtext()[-2000:]
    s = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()


def value(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, "%s missing: %s" % (name, text[-3000:])
    return int(m.group(1))


def hello(d, tok):
    c = Conn(d.port)
    w = c.hello(token=tok)
    return c, w


def refused(d, tok, contains):
    c = Conn(d.port)
    rid = c.send(hello=pb.Hello(protocol_version=1, token=tok))
    c.expect_error("UNAUTHENTICATED", rid, contains=contains)
    c.expect_closed()


def test_a_token_seen_before_is_taken_from_the_cache():
    d, _ = daemon()
    try:
        tok = token()
        assert value(metrics(d), "dialogue_token_cache_hits_total") == 0
        for i in range(3):
            c, w = hello(d, tok)
            # The identity is the verified one, from the cache too.
            assert w.user_id == "dash" and list(w.roles) == ["viewer", "ops"], w
            assert w.identity_kind == pb.IDENTITY_TOKEN
            c.close()
        assert value(metrics(d), "dialogue_token_cache_hits_total") == 2
        # Another token is verified on its own, and a forged one is refused.
        c, w = hello(d, token(sub="other"))
        assert w.user_id == "other"
        c.close()
        head, body, _ = tok.split(".")
        refused(d, head + "." + body + ".AAAA", "signature")
        assert value(metrics(d), "dialogue_token_cache_hits_total") == 2
    finally:
        assert d.stop() == 0


def test_an_expired_token_in_the_cache_is_refused():
    d, _ = daemon()
    try:
        exp = int(time.time()) + 3
        tok = token(exp=exp)
        c1, _ = hello(d, tok)                # verified, kept
        c2, _ = hello(d, tok)                # from the cache
        assert value(metrics(d), "dialogue_token_cache_hits_total") == 1
        # The session from the cache ends at exp like the verified one.
        c2.sock.settimeout(10)
        c2.expect_error("UNAUTHENTICATED", 0, contains="token expired: session ended")
        assert time.time() <= exp + 1.5, "the cached session outlived its token"
        c1.close()
        c2.close()
        while time.time() < exp + 0.2:
            time.sleep(0.05)
        refused(d, tok, "token expired")
        text = metrics(d)
        assert value(text, "dialogue_token_cache_hits_total") == 1
        assert re.search(r'^dialogue_auth_refusals_total\{reason="expired"\} 1$', text, re.M), \
            text[-3000:]
    finally:
        assert d.stop() == 0


def test_a_reload_checks_every_token_again():
    d, secret = daemon()
    try:
        tok = token()
        c, _ = hello(d, tok)
        c.close()
        with open(secret, "wb") as f:
            f.write(OTHER)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "reloaded" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        assert "reloaded" in d.logtext(), d.logtext()[-2000:]
        refused(d, tok, "signature")
        assert value(metrics(d), "dialogue_token_cache_hits_total") == 0
    finally:
        assert d.stop() == 0


def test_cache_size_zero_verifies_every_time():
    d, _ = daemon(0)
    try:
        tok = token()
        for _ in range(3):
            c, _ = hello(d, tok)
            c.close()
        assert value(metrics(d), "dialogue_token_cache_hits_total") == 0
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    run_tests([test_a_token_seen_before_is_taken_from_the_cache,
               test_an_expired_token_in_the_cache_is_refused,
               test_a_reload_checks_every_token_again,
               test_cache_size_zero_verifies_every_time])
