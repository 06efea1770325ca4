"""Certificate revocation (issue 16, item 2): listen[].client_crl (a file or a
folder of CRLs) is checked for the client certificate and every CA above
it; a stale CRL stops the daemon from starting or a reload from taking
effect, naming the file; SIGHUP loads new CRLs for new connections while
established ones keep their session. Certificates and CRLs are made here
with Python's cryptography package."""
import datetime
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (BUILD, CERTS, Daemon, client_context, frame, pb,  # noqa: E402
                     run_tests, wait_until, write_config)
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dlg-crl-")
NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
    client_ca: {certs}/ca.crt
    client_crl: {crl}
auth:
  client_cert:
    user_from: cn
"""


def load_ca():
    with open(os.path.join(CERTS, "ca.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def issue(cn, issuer_cert, issuer_key, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(issuer_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    return b.sign(issuer_key, hashes.SHA256()), key


def save_client(name, cert, key, chain=()):
    """Writes NAME.crt (the certificate, then chain) and NAME.key; returns
    the path without extension."""
    base = os.path.join(TMP, name)
    with open(base + ".crt", "wb") as f:
        for c in (cert,) + tuple(chain):
            f.write(c.public_bytes(serialization.Encoding.PEM))
    with open(base + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return base


def crl(issuer_cert, issuer_key, revoked=(), last=None, nxt=None, der=False):
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer_cert.subject)
         .last_update(last or NOW - DAY).next_update(nxt or NOW + DAY))
    for c in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                      .serial_number(c.serial_number)
                                      .revocation_date(NOW - DAY).build())
    c = b.sign(issuer_key, hashes.SHA256())
    return c.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def write(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return path


def hello(port, base):
    """Connects with the client certificate base and says Hello: the
    Welcome's user id, or the string "refused" when the handshake fails."""
    ctx = client_context()
    ctx.load_cert_chain(base + ".crt", base + ".key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1))
                        .SerializeToString()))
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[1:5], "big"):
            chunk = s.recv(65536)
            if not chunk:
                return "refused"
            data += chunk
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, EOFError):
        # TLS 1.3: the server checks the certificate after the client sees
        # its handshake done, so the refusal shows on first use.
        return "refused"
    f = pb.ServerFrame()
    f.ParseFromString(data[5:5 + int.from_bytes(data[1:5], "big")])
    assert f.WhichOneof("msg") == "welcome", f
    s.close()
    return f.welcome.user_id


CA, CA_KEY = None, None
LEAF = {}


def setup():
    global CA, CA_KEY
    CA, CA_KEY = load_ca()
    for name in ("alice", "bob", "carol"):
        cert, key = issue(name, CA, CA_KEY)
        LEAF[name] = (cert, save_client(name, cert, key))


def test_revoked_leaf_refused_others_served():
    path = write(os.path.join(TMP, "root.crl"), crl(CA, CA_KEY, [LEAF["alice"][0]]))
    d = Daemon(config=write_config(CONFIG, crl=path))
    try:
        assert hello(d.port, LEAF["alice"][1]) == "refused"
        assert hello(d.port, LEAF["bob"][1]) == "bob"
        assert wait_until(lambda: "certificate revoked" in d.logtext(), 5), d.logtext()[-2000:]
    finally:
        assert d.stop() == 0


def test_chain_checked_folder_and_der():
    # Two intermediates under the root; the root's CRL (DER) revokes the
    # first, so what it signed is refused although not revoked itself.
    bad_ca, bad_key = issue("Bad Intermediate", CA, CA_KEY, ca=True)
    good_ca, good_key = issue("Good Intermediate", CA, CA_KEY, ca=True)
    dave, dave_key = issue("dave", bad_ca, bad_key)
    erin, erin_key = issue("erin", good_ca, good_key)
    dave_b = save_client("dave", dave, dave_key, [bad_ca])
    erin_b = save_client("erin", erin, erin_key, [good_ca])
    folder = os.path.join(TMP, "crls")
    os.mkdir(folder)
    write(os.path.join(folder, "root.der"), crl(CA, CA_KEY, [bad_ca], der=True))
    write(os.path.join(folder, "bad.pem"), crl(bad_ca, bad_key))
    write(os.path.join(folder, ".ignored"), b"not a CRL")
    # Every CA below the root needs a CRL: without good's, erin cannot be
    # checked and is refused (deny by default).
    d = Daemon(config=write_config(CONFIG, crl=folder))
    try:
        assert hello(d.port, dave_b) == "refused"
        assert hello(d.port, erin_b) == "refused"
        assert wait_until(lambda: "unable to get certificate CRL" in d.logtext(), 5)
        assert hello(d.port, LEAF["carol"][1]) == "carol"
    finally:
        assert d.stop() == 0
    write(os.path.join(folder, "good.pem"), crl(good_ca, good_key))
    d = Daemon(config=write_config(CONFIG, crl=folder))
    try:
        assert hello(d.port, dave_b) == "refused"
        assert hello(d.port, erin_b) == "erin"
    finally:
        assert d.stop() == 0


def start_fails(crl_path, want):
    r = subprocess.run([os.path.join(BUILD, "bin", "dialogued"), "--config",
                        write_config(CONFIG, crl=crl_path), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0, r
    assert want in r.stderr, r.stderr


def test_stale_or_bad_crl_refused_at_start():
    stale = write(os.path.join(TMP, "stale.crl"),
                  crl(CA, CA_KEY, last=NOW - 3 * DAY, nxt=NOW - DAY))
    start_fails(stale, "CRL %s (issuer " % stale)
    start_fails(stale, "is stale: its nextUpdate")
    future = write(os.path.join(TMP, "future.crl"), crl(CA, CA_KEY, last=NOW + DAY,
                                                         nxt=NOW + 2 * DAY))
    start_fails(future, "CRL %s (issuer " % future)
    start_fails(future, "is not valid yet")
    junk = write(os.path.join(TMP, "junk.crl"), b"hello\n")
    start_fails(junk, "CRL file %s holds no CRL" % junk)
    start_fails(os.path.join(TMP, "missing.crl"), "cannot open CRL %s" %
                os.path.join(TMP, "missing.crl"))
    empty = os.path.join(TMP, "empty-folder")
    os.mkdir(empty)
    start_fails(empty, "CRL folder %s holds no CRL file" % empty)


def test_sighup_reloads_crls_for_new_connections():
    path = write(os.path.join(TMP, "reload.crl"), crl(CA, CA_KEY))
    d = Daemon(config=write_config(CONFIG, crl=path))
    try:
        # An established session of bob's, which a reload must not cut.
        ctx = client_context()
        ctx.load_cert_chain(LEAF["bob"][1] + ".crt", LEAF["bob"][1] + ".key")
        held = ctx.wrap_socket(socket.create_connection(("127.0.0.1", d.port), timeout=5),
                               server_hostname="localhost")
        held.sendall(frame(pb.ClientFrame(request_id=1, hello=pb.Hello(protocol_version=1))
                           .SerializeToString()))
        assert held.recv(65536)
        assert hello(d.port, LEAF["bob"][1]) == "bob"
        write(path, crl(CA, CA_KEY, [LEAF["bob"][0]]))
        d.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "SIGHUP: reloaded" in d.logtext(), 5), d.logtext()[-2000:]
        assert hello(d.port, LEAF["bob"][1]) == "refused"
        assert hello(d.port, LEAF["alice"][1]) == "alice"
        # A stale CRL on reload: refused, the running CRLs stay.
        write(path, crl(CA, CA_KEY, last=NOW - 3 * DAY, nxt=NOW - DAY))
        d.proc.send_signal(signal.SIGHUP)
        want = "SIGHUP: TLS: listener 127.0.0.1:0: CRL %s (issuer" % path
        assert wait_until(lambda: want in d.logtext(), 5), d.logtext()[-2000:]
        assert "keeping the running configuration" in d.logtext()
        assert hello(d.port, LEAF["bob"][1]) == "refused"
        assert hello(d.port, LEAF["alice"][1]) == "alice"
        # The session from before the reloads still works.
        held.sendall(frame(pb.ClientFrame(request_id=2, ping=pb.Ping(nonce=7))
                           .SerializeToString()))
        deadline = time.time() + 5
        data = b""
        while time.time() < deadline and len(data) < 5:
            data += held.recv(65536)
        f = pb.ServerFrame()
        f.ParseFromString(data[5:5 + int.from_bytes(data[1:5], "big")])
        assert f.WhichOneof("msg") == "pong" and f.pong.nonce == 7, f
        held.close()
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
