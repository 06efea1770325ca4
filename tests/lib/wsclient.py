"""A WebSocket client for the tests, written against RFC 6455 so that it
can also break the rules on purpose (unmasked frames, text frames, bad
fragments). Speaks dialogue's frames like dlgtest.Conn: one protobuf
ClientFrame per binary message, no 5-byte prefix."""
import base64
import hashlib
import os
import socket
import ssl
import struct

from dlgtest import CERTS, Conn, pb

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    """The server sent a close frame: code and reason."""

    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


def tls_context(alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def connect(port, tls=True, alpn=("http/1.1",), timeout=5.0, host="127.0.0.1"):
    raw = socket.create_connection((host, port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return raw
    return tls_context(alpn).wrap_socket(raw, server_hostname="localhost")


def read_response(sock, limit=1 << 20):
    """Reads one HTTP response: (status, {lower-case header: value}, body, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed before the response head: %r" % buf)
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        k = k.strip().lower()
        hdrs[k] = hdrs[k] + ", " + v.strip() if k in hdrs else v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n and len(rest) < limit:
        d = sock.recv(65536)
        if not d:
            break
        rest += d
    return status, hdrs, rest[:n], rest[n:]


def request(sock, path, method="GET", headers=None, host="localhost"):
    h = {"Host": host}
    h.update(headers or {})
    req = "%s %s HTTP/1.1\r\n" % (method, path)
    req += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    sock.sendall(req.encode())
    return read_response(sock)


def ws_frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack(">BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack(">BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack(">BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_headers(key=None, protocol="dialogue.v1", version="13", origin=None):
    key = key or base64.b64encode(os.urandom(16)).decode()
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
         "Sec-WebSocket-Version": version}
    if protocol is not None:
        h["Sec-WebSocket-Protocol"] = protocol
    if origin is not None:
        h["Origin"] = origin
    return h, key


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WsConn(Conn):
    """dlgtest.Conn over a WebSocket: send()/recv()/expect()/hello() work
    the same; control frames are kept in self.control."""

    def __init__(self, port, tls=True, alpn=("http/1.1",), timeout=5.0, origin=None,
                 host="localhost", path="/v1/ws"):
        self.sock = connect(port, tls, alpn, timeout)
        hdrs, key = upgrade_headers(origin=origin)
        status, h, body, rest = request(self.sock, path, headers=hdrs, host=host)
        if status != 101:
            raise AssertionError("upgrade refused: %d %s" % (status, body))
        assert h["sec-websocket-accept"] == accept_of(key), h
        assert h["sec-websocket-protocol"] == "dialogue.v1", h
        self.buf = rest
        self.next_id = 1
        self.control = []   # (opcode, payload) of pings and pongs received

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_msg(self, payload, opcode=2):
        self.sock.sendall(ws_frame(opcode, payload))

    def send(self, **kw):
        rid = kw.pop("request_id", None)
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        self.send_msg(pb.ClientFrame(request_id=rid, **kw).SerializeToString())
        return rid

    def _need(self, n):
        while len(self.buf) < n:
            self._read_more()

    def recv_frame(self):
        """One frame: (fin, opcode, payload). Server frames must be unmasked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_msg(self):
        """One whole data message (opcode, payload); control frames are
        recorded; a close raises Closed."""
        parts, op = [], None
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == 8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode("utf-8"))
            if opcode in (9, 10):
                self.control.append((opcode, payload))
                continue
            if opcode != 0:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)

    def recv(self):
        op, payload = self.recv_msg()
        assert op == 2, "server sent opcode %d" % op
        f = pb.ServerFrame()
        f.ParseFromString(payload)
        return f

    def expect_close(self):
        """Reads until the close frame; returns (code, reason, [frames before])."""
        before = []
        try:
            while True:
                before.append(self.recv())
        except Closed as c:
            return c.code, c.reason, before
