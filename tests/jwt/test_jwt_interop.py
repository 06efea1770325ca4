"""JWT interop: tokens signed by PyJWT + cryptography (implementations nobody
here wrote) must verify with lib/jwt (jwt_verify.c), through the jwt_check tool, for
every algorithm; tokens minted by `dialoguectl token` must verify with PyJWT.
Needs $DLG_BUILD/tests/jwt_check (`ninja build/tests/jwt_check`).
Prints `N passed, N failed`."""
import atexit
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DLG_BUILD", os.path.join(ROOT, "build"))
CHECK = os.path.join(BUILD, "tests", "jwt_check")
NOW = 1800000000  # 2027-01-15T08:00:00Z
SECRET = b"interop-secret-0123456789abcdef-0123456789"

TMP = tempfile.mkdtemp(prefix="dlg-jwt-interop-")
atexit.register(shutil.rmtree, TMP, True)
KEYS = {}  # alg -> (private key for PyJWT, public PEM path)


def pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def setup():
    secret_path = os.path.join(TMP, "secret")
    with open(secret_path, "wb") as f:
        f.write(SECRET + b"\n")  # the final newline is not part of the secret
    KEYS["HS256"] = (SECRET, secret_path)
    for alg, key in (("RS256", rsa.generate_private_key(65537, 2048)),
                     ("ES256", ec.generate_private_key(ec.SECP256R1())),
                     ("EdDSA", ed25519.Ed25519PrivateKey.generate())):
        path = os.path.join(TMP, alg + ".pub.pem")
        with open(path, "wb") as f:
            f.write(pem_public(key))
        KEYS[alg] = (key, path)


def check(alg, token, *extra, key_alg=None):
    """Runs jwt_check verify; returns (exit status, output line)."""
    ka = key_alg or alg
    r = subprocess.run([CHECK, "verify", ka, KEYS[ka][1], token, "--now", str(NOW)] +
                       list(extra), capture_output=True, text=True, timeout=20)
    if r.returncode == 2:
        raise AssertionError("jwt_check usage/setup error: " + r.stderr.strip())
    return r.returncode, r.stdout.strip()


def claims(**kw):
    c = {"sub": "alice", "exp": NOW + 600, "iat": NOW, "role": ["admin", "ops"]}
    c.update(kw)
    return c


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def test_pyjwt_tokens_verify():
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        tok = jwt.encode(claims(), KEYS[alg][0], algorithm=alg)
        rc, out = check(alg, tok)
        assert rc == 0, (alg, out)
        assert out == "ok sub=alice roles=admin,ops exp=%d" % (NOW + 600), (alg, out)


def test_kid_aud_iss_and_renamed_roles():
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        tok = jwt.encode(claims(aud=["x", "dialogue"], iss="https://idp", groups="ops"),
                         KEYS[alg][0], algorithm=alg, headers={"kid": "key-1"})
        rc, out = check(alg, tok, "--kid", "key-1", "--aud", "dialogue", "--iss",
                        "https://idp", "--roles-claim", "groups")
        assert rc == 0 and out.startswith("ok sub=alice roles=ops "), (alg, out)
        rc, out = check(alg, tok, "--kid", "key-2")
        assert rc == 1 and out == 'rejected: unknown key id "key-1"', (alg, out)
        rc, out = check(alg, tok, "--aud", "other")
        assert rc == 1 and out == "rejected: token audience does not match", (alg, out)


def test_tampered_and_expired():
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        tok = jwt.encode(claims(), KEYS[alg][0], algorithm=alg)
        h, _, s = tok.split(".")
        p = b64url(json.dumps(claims(sub="mallory")).encode())
        rc, out = check(alg, "%s.%s.%s" % (h, p, s))
        assert rc == 1 and out == "rejected: token signature invalid", (alg, out)
        tok = jwt.encode(claims(exp=NOW - 3600), KEYS[alg][0], algorithm=alg)
        rc, out = check(alg, tok)
        assert rc == 1 and out == "rejected: token expired at 2027-01-15T07:00:00Z", (alg, out)


def test_alg_confusion():
    # HS256 "signed" with the RSA public key PEM against an RS256 key; PyJWT
    # refuses to build this, so it is made by hand.
    pem = open(KEYS["RS256"][1], "rb").read()
    si = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(json.dumps(claims()).encode())
    tok = si + "." + b64url(hmac.new(pem, si.encode(), hashlib.sha256).digest())
    rc, out = check("RS256", tok)
    assert rc == 1 and out == "rejected: token alg HS256 does not match key alg RS256", out
    # a valid ES256 token shown to an EdDSA key
    tok = jwt.encode(claims(), KEYS["ES256"][0], algorithm="ES256")
    rc, out = check("EdDSA", tok)
    assert rc == 1 and out == "rejected: token alg ES256 does not match key alg EdDSA", out
    none = b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(claims()).encode()) + "."
    rc, out = check("HS256", none)
    assert rc == 1 and out == "rejected: token alg none is not accepted", out


def test_aud_without_configured_audience_refused():
    # RFC 7519 4.1.3: a token minted for another service is refused by a
    # server that has no audience of its own, for every algorithm.
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        tok = jwt.encode(claims(aud="billing-api"), KEYS[alg][0], algorithm=alg)
        rc, out = check(alg, tok)
        assert rc == 1 and out.startswith(
            "rejected: token names an audience (aud) but this server has none"), (alg, out)
        rc, out = check(alg, tok, "--aud", "billing-api")
        assert rc == 0, (alg, out)


# The order of P-256's group: s and n - s are both valid ECDSA signatures.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_es256_both_s_accepted_as_documented():
    # docs/security-jwt.md: an ES256 signature has two valid spellings,
    # (r, s) and (r, n - s), and both verify: issuers (OpenSSL, Python's
    # cryptography, Go) do not normalise s, so requiring low S would refuse
    # about half of their tokens. A token string is therefore not an
    # identifier; nothing in the daemon keys on it.
    tok = jwt.encode(claims(), KEYS["ES256"][0], algorithm="ES256")
    h, p, s = tok.split(".")
    raw = base64.urlsafe_b64decode(s + "==")
    r, sv = raw[:32], int.from_bytes(raw[32:], "big")
    flipped = "%s.%s.%s" % (h, p, b64url(r + (P256_N - sv).to_bytes(32, "big")))
    assert flipped != tok
    for t in (tok, flipped):
        rc, out = check("ES256", t)
        assert rc == 0 and out.startswith("ok sub=alice"), out
    doc = open(os.path.join(ROOT, "docs", "security-jwt.md")).read()
    assert "(r, n - s)" in doc and "every token has one spelling" not in doc


def test_minted_token_verifies_with_pyjwt():
    r = subprocess.run([CHECK, "token", "--secret-file", KEYS["HS256"][1], "--sub", "bob",
                        "--role", "viewer", "--ttl", "90s", "--aud", "dialogue", "--iss",
                        "dev", "--kid", "k1"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    tok = r.stdout.strip()
    assert r.stdout.endswith("\n") and tok.count(".") == 2
    hdr = jwt.get_unverified_header(tok)
    assert hdr == {"alg": "HS256", "typ": "JWT", "kid": "k1"}, hdr
    c = jwt.decode(tok, SECRET, algorithms=["HS256"], audience="dialogue", issuer="dev")
    assert c["sub"] == "bob" and c["role"] == "viewer", c
    assert c["exp"] - c["iat"] == 90 and abs(c["iat"] - time.time()) < 60, c
    # and a wrong secret is caught by PyJWT too (the signature is real)
    try:
        jwt.decode(tok, SECRET + b"x", algorithms=["HS256"], audience="dialogue")
        raise AssertionError("PyJWT accepted a wrong secret")
    except jwt.InvalidSignatureError:
        pass


def test_token_help_and_errors():
    r = subprocess.run([CHECK, "token", "--help"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "DEVELOPMENT AND TESTS ONLY" in r.stdout, r.stdout
    r = subprocess.run([CHECK, "token", "--sub", "x"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 2 and "--secret-file is required" in r.stderr, r.stderr
    assert r.stdout == ""


def main():
    if not os.access(CHECK, os.X_OK):
        print("FAIL setup: %s is missing; build it with `ninja %s`" %
              (CHECK, os.path.relpath(CHECK, ROOT)))
        print("0 passed, 1 failed")
        return 1
    setup()
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    passed = failed = 0

    def on_alarm(signum, frm):
        raise TimeoutError("test took longer than 60 s")

    signal.signal(signal.SIGALRM, on_alarm)
    for name, fn in tests:
        signal.alarm(60)
        try:
            fn()
            passed += 1
            print("PASS", name, flush=True)
        except Exception:
            failed += 1
            print("FAIL", name, flush=True)
            traceback.print_exc()
        finally:
            signal.alarm(0)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
