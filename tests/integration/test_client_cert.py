"""Client certificates: identity and roles from a certificate verified
against the listener's client CA; certificates from another CA,
self-signed or expired are refused in the TLS handshake."""
import datetime
import os
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (CERTS, ROOT, Daemon, client_context, frame, pb,  # noqa: E402
                     run_tests, write_config)
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

CONFIG = """
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
"""

D = None
OTHER = tempfile.mkdtemp(prefix="dlg-other-ca-")


def setup():
    global D
    subprocess.run([os.path.join(ROOT, "tools/devcerts.sh"), OTHER], check=True,
                   stdout=subprocess.DEVNULL)
    D = Daemon(config=write_config(CONFIG))


def make_cert(path, cn, issuer_cert=None, issuer_key=None, expired=False, name=None,
              sans=None):
    """A certificate for `cn` (or the x509.Name `name`), with subject
    alternative names `sans` (x509.GeneralName list) if given."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    nb, na = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired \
        else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(issuer_key or key, hashes.SHA256())
    with open(path + ".crt", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return path


def connect(cert_base):
    ctx = client_context()
    if cert_base:
        ctx.load_cert_chain(cert_base + ".crt", cert_base + ".key")
    raw = socket.create_connection(("127.0.0.1", D.port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1))
                    .SerializeToString()))
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[1:5], "big"):
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed")
        data += chunk
    f = pb.ServerFrame()
    f.ParseFromString(data[5:5 + int.from_bytes(data[1:5], "big")])
    return s, f


def refused_in_handshake(cert_base):
    try:
        s, f = connect(cert_base)
    except (ssl.SSLError, ConnectionResetError, EOFError, BrokenPipeError):
        return
    # TLS 1.3: the server checks the client certificate after the client
    # considers the handshake done, so the refusal shows on first use.
    raise AssertionError("accepted: %s" % f)


def test_valid_client_cert_gives_identity_and_roles():
    s, f = connect(os.path.join(CERTS, "client-admin"))
    assert f.WhichOneof("msg") == "welcome", f
    assert f.welcome.user_id == "admin" and list(f.welcome.roles) == ["admin"], f
    s.close()
    s, f = connect(os.path.join(CERTS, "client-viewer"))
    assert f.welcome.user_id == "viewer" and list(f.welcome.roles) == [], f
    s.close()


def test_no_cert_no_token_refused():
    s, f = connect(None)
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.UNAUTHENTICATED, f
    s.close()


def test_cert_from_another_ca_refused():
    refused_in_handshake(os.path.join(OTHER, "client-admin"))


def test_self_signed_refused():
    refused_in_handshake(make_cert(os.path.join(OTHER, "selfsigned"), "admin"))


def test_expired_refused():
    with open(os.path.join(CERTS, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    refused_in_handshake(make_cert(os.path.join(OTHER, "expired"), "admin", ca, ca_key,
                                   expired=True))
    assert "certificate" in D.logtext()


def ca():
    with open(os.path.join(CERTS, "ca.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def cn_attr(value):
    # _validate=False: cryptography would refuse a CN over 64 characters,
    # which is exactly what an attacker's CA-signed certificate may carry.
    return x509.NameAttribute(NameOID.COMMON_NAME, value, _validate=False)


def refused_at_hello(cert_base, contains):
    s, f = connect(cert_base)
    assert f.WhichOneof("msg") == "error" and f.error.code == pb.UNAUTHENTICATED, f
    assert contains in f.error.message, f.error.message
    s.close()


def test_long_cn_refused_not_truncated():
    # Two CNs that share their first 255 bytes were one user before.
    c, k = ca()
    for tail in ("a", "b"):
        base = make_cert(os.path.join(OTHER, "long-" + tail), None, c, k,
                         name=x509.Name([cn_attr("u" * 255 + tail)]))
        refused_at_hello(base, "client certificate CN is 256 bytes (1 to 255 allowed)")
    base = make_cert(os.path.join(OTHER, "max"), None, c, k, name=x509.Name([cn_attr("u" * 255)]))
    s, f = connect(base)
    assert f.WhichOneof("msg") == "welcome" and f.welcome.user_id == "u" * 255, f
    assert f.welcome.identity_kind == pb.IDENTITY_CERTIFICATE
    s.close()


def test_cn_with_control_characters_refused():
    c, k = ca()
    base = make_cert(os.path.join(OTHER, "ctl"), None, c, k,
                     name=x509.Name([cn_attr("admin\nroot")]))
    refused_at_hello(base, "client certificate CN is not valid UTF-8 without control characters")


def test_several_cns_refused():
    c, k = ca()
    base = make_cert(os.path.join(OTHER, "two-cn"), None, c, k,
                     name=x509.Name([cn_attr("admin"), cn_attr("viewer")]))
    refused_at_hello(base, "client certificate has several CNs")


SAN_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
    client_ca: {certs}/ca.crt
auth:
  client_cert:
    user_from: %s
    roles:
      - {match: admin, roles: [admin]}
"""


def test_user_from_picks_one_san_type():
    global D
    c, k = ca()
    both = make_cert(os.path.join(OTHER, "sans"), "cn-name", c, k, sans=[
        x509.RFC822Name("admin"), x509.DNSName("dns-user.example")])
    two_dns = make_cert(os.path.join(OTHER, "two-dns"), "cn-name", c, k, sans=[
        x509.DNSName("a.example"), x509.DNSName("b.example")])
    main = D
    try:
        for kind, want_user, want_roles in (("email", "admin", ["admin"]),
                                            ("dns", "dns-user.example", [])):
            D = Daemon(config=write_config(SAN_CONFIG % kind))
            s, f = connect(both)
            assert f.WhichOneof("msg") == "welcome", f
            assert f.welcome.user_id == want_user, f
            assert list(f.welcome.roles) == want_roles, f
            s.close()
            if kind == "dns":
                refused_at_hello(two_dns, "client certificate has 2 DNS SANs (one is needed)")
            else:
                refused_at_hello(two_dns, "client certificate has no email SAN")
            assert D.stop() == 0
    finally:
        D = main
    # "san" (first DNS or email) is refused at start, naming the key.
    path = write_config(SAN_CONFIG % "san")
    r = subprocess.run([os.environ.get("DLG_DAEMON", os.path.join(
        os.environ.get("DLG_BUILD", os.path.join(ROOT, "build")), "bin", "dialogued")),
        "--config", path, "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0, r
    assert "auth.client_cert.user_from: \"san\" is ambiguous" in r.stderr, r.stderr


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
