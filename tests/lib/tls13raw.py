"""tls13raw: a TLS 1.3 client whose records after the handshake are sealed
and opened here, with the `cryptography` package's AEADs and the key
schedule of RFC 8446 7.1-7.3 written out below: an implementation of record
protection independent of the daemon's (common/dlg_tls13.c) and of
OpenSSL's record layer. Python's ssl runs the handshake over memory BIOs
and reports the traffic secrets through its key log file; after that the
test decides every record the daemon gets: empty ones, alerts, KeyUpdates,
padding, and whether anything is ever read back."""

import hashlib
import hmac
import os
import socket
import ssl
import struct
import tempfile

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

APPDATA, ALERT, HANDSHAKE = 23, 21, 22

# suite name -> (AEAD class, key length, hash)
SUITES = {"TLS_AES_128_GCM_SHA256": (AESGCM, 16, hashlib.sha256),
          "TLS_AES_256_GCM_SHA384": (AESGCM, 32, hashlib.sha384),
          "TLS_CHACHA20_POLY1305_SHA256": (ChaCha20Poly1305, 32, hashlib.sha256)}


def expand_label(h, secret, label, length):
    """HKDF-Expand-Label(secret, label, "", length) (RFC 8446 7.1, RFC 5869)."""
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:length]


class Direction:
    """One direction's traffic secret, AEAD key, IV and sequence number."""

    def __init__(self, suite, secret):
        self.cls, self.key_len, self.h = SUITES[suite]
        self._key(secret)

    def _key(self, secret):
        self.secret = secret
        self.aead = self.cls(expand_label(self.h, secret, b"key", self.key_len))
        self.iv = expand_label(self.h, secret, b"iv", 12)
        self.seq = 0

    def update(self):
        """The next traffic secret (RFC 8446 7.2), sequence number 0."""
        self._key(expand_label(self.h, self.secret, b"traffic upd", self.h().digest_size))

    def _nonce(self):
        n = bytearray(self.iv)
        for i in range(8):
            n[11 - i] ^= (self.seq >> (8 * i)) & 0xff
        return bytes(n)

    def seal(self, ctype, data, pad=0):
        """One protected record: data, its inner type, pad zero bytes."""
        inner = bytes(data) + bytes([ctype]) + b"\x00" * pad
        hdr = struct.pack(">BHH", APPDATA, 0x0303, len(inner) + 16)
        rec = hdr + self.aead.encrypt(self._nonce(), inner, hdr)
        self.seq += 1
        return rec

    def open(self, rec):
        """(inner type, content) of one whole record."""
        pt = self.aead.decrypt(self._nonce(), bytes(rec[5:]), bytes(rec[:5])).rstrip(b"\x00")
        self.seq += 1
        return pt[-1], pt[:-1]


KEY_UPDATE_REQUESTED = bytes([24, 0, 0, 1, 1])
KEY_UPDATE_NOT_REQUESTED = bytes([24, 0, 0, 1, 0])
USER_CANCELED = bytes([1, 90])
CLOSE_NOTIFY = bytes([1, 0])


class Client:
    """A TLS 1.3 connection to 127.0.0.1:port whose handshake Python's ssl
    did and whose records are ours from the first one on (nothing is
    written or read through ssl after the handshake)."""

    def __init__(self, port, ctx, timeout=10):
        fd, self.keylog = tempfile.mkstemp(prefix="dlg-keylog-")
        os.close(fd)
        ctx.keylog_filename = self.keylog
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
        for _ in range(20):
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(out.read())
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("closed during the handshake")
                inc.write(data)
        else:
            raise AssertionError("handshake did not finish")
        self.sock.sendall(out.read())  # the client's Finished
        self.suite = tls.cipher()[0]
        secrets = {}
        with open(self.keylog) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    secrets[parts[0]] = bytes.fromhex(parts[2])
        os.unlink(self.keylog)
        self.wr = Direction(self.suite, secrets["CLIENT_TRAFFIC_SECRET_0"])
        self.rd = Direction(self.suite, secrets["SERVER_TRAFFIC_SECRET_0"])
        self.inbuf = b""
        self.tls = tls  # keeps ctx alive; never used again

    def record(self, ctype, data, pad=0):
        """A sealed record (not sent)."""
        return self.wr.seal(ctype, data, pad)

    def key_update(self, requested=True):
        """A sealed KeyUpdate; later records go under the next key."""
        rec = self.wr.seal(HANDSHAKE, KEY_UPDATE_REQUESTED if requested
                           else KEY_UPDATE_NOT_REQUESTED)
        self.wr.update()
        return rec

    def send(self, data):
        self.sock.sendall(data)

    def read_records(self, until=None):
        """Reads and opens the daemon's records until until(type, content)
        is true for one or the connection ends; returns [(type, content)].
        A KeyUpdate moves the read key; an alert ends the list."""
        got = []
        while True:
            while len(self.inbuf) >= 5:
                n = struct.unpack(">H", self.inbuf[3:5])[0]
                if len(self.inbuf) < 5 + n:
                    break
                rec, self.inbuf = self.inbuf[:5 + n], self.inbuf[5 + n:]
                ctype, content = self.rd.open(rec)
                got.append((ctype, content))
                if ctype == HANDSHAKE and content[:1] == b"\x18":
                    self.rd.update()
                if ctype == ALERT or (until is not None and until(ctype, content)):
                    return got
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return got
            if not data:
                return got
            self.inbuf += data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
