"""dlggrpc: gRPC test helpers. Stubs generated at import from proto/ (and
gRPC's reflection.proto from Debian's grpc-proto) into a temp folder: the
messages with Debian's protoc (python3-protobuf's own runtime reads them),
the service stubs with grpc_tools (python3-grpc-tools), as any gRPC user
makes them. Also a raw HTTP/2 client (python3-h2's hyperframe and hpack:
frames are built one by one, so a test can send what no polite client
sends) for the hardening tests."""

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import dlgtest  # noqa: E402
from dlgtest import CERTS, ROOT  # noqa: E402

import grpc  # noqa: E402

GRPC_PROTO = "/usr/share/grpc-proto"
GEN = tempfile.mkdtemp(prefix="dlg-grpcgen-")
atexit.register(shutil.rmtree, GEN, True)
_protos = [os.path.join(ROOT, "proto/dialogue/v1/protocol.proto"),
           os.path.join(ROOT, "proto/dialogue/v1/service.proto"),
           os.path.join(ROOT, "proto/dialogue/v1/options.proto"),
           os.path.join(ROOT, "proto/events/dashboard.proto")]
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include",
                "--python_out=" + GEN] + _protos, check=True)
# reflection.proto as dlgrefl/reflection.proto: a module path of its own,
# since `grpc` is grpcio's package (the proto's package stays
# grpc.reflection.v1alpha, and so do the method paths).
os.makedirs(os.path.join(GEN, "src", "dlgrefl"))
shutil.copy(os.path.join(GRPC_PROTO, "grpc/reflection/v1alpha/reflection.proto"),
            os.path.join(GEN, "src", "dlgrefl", "reflection.proto"))
subprocess.run(["protoc", "-I" + os.path.join(GEN, "src"), "--python_out=" + GEN,
                "dlgrefl/reflection.proto"], check=True)
# The plugin only: its own protoc is older than python3-protobuf's runtime.
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(ROOT, "proto"),
                "-I/usr/include", "--grpc_python_out=" + GEN,
                os.path.join(ROOT, "proto/dialogue/v1/service.proto")], check=True)
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(GEN, "src"),
                "--grpc_python_out=" + GEN, "dlgrefl/reflection.proto"], check=True)
sys.path.insert(0, GEN)
from dialogue.v1 import protocol_pb2 as pb  # noqa: E402
from dialogue.v1 import service_pb2 as svc  # noqa: E402
from dialogue.v1 import service_pb2_grpc as svc_grpc  # noqa: E402
from dlgrefl import reflection_pb2 as refl  # noqa: E402
from dlgrefl import reflection_pb2_grpc as refl_grpc  # noqa: E402
from events import dashboard_pb2 as dash  # noqa: E402


def channel(port, tls=True, options=()):
    """A channel to 127.0.0.1:port: TLS with the test CA (ALPN h2, as
    grpcio always offers), or HTTP/2 with prior knowledge in plaintext."""
    target = "127.0.0.1:%d" % port
    opts = [("grpc.ssl_target_name_override", "localhost")] + list(options)
    if not tls:
        return grpc.insecure_channel(target, options=list(options))
    with open(os.path.join(CERTS, "ca.crt"), "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(target, creds, options=opts)


def stub(ch):
    return svc_grpc.DialogueStub(ch)


def bearer(token):
    return (("authorization", "Bearer " + token),)


def code_of(fn, *args, **kw):
    """Calls fn; returns (grpc.StatusCode, details) of the RpcError it
    raises (None, result) when it succeeds."""
    try:
        return None, fn(*args, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()


# ---- a raw HTTP/2 client -------------------------------------------------

from hpack import Encoder, Decoder  # noqa: E402
from hyperframe import frame as hf  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def lpm(msg_bytes):
    import struct
    return struct.pack(">BI", 0, len(msg_bytes)) + msg_bytes


class RawH2:
    """HTTP/2 by hand over plaintext (prior knowledge) or TLS (ALPN h2):
    frames are sent as built; what the server sends is read back as
    hyperframe frames, headers decoded."""

    def __init__(self, port, tls=False, settings=None, timeout=5.0, rcvbuf=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if tls:
            ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
            assert raw.selected_alpn_protocol() == "h2", raw.selected_alpn_protocol()
        self.sock = raw
        self.enc = Encoder()
        self.dec = Decoder()
        self.buf = b""
        self.next_id = 1
        self.sock.sendall(PREFACE)
        self.send(hf.SettingsFrame(0, settings=settings or {}))

    def send(self, f):
        self.sock.sendall(f.serialize())

    def send_raw(self, data):
        self.sock.sendall(data)

    def headers(self, path, token=None, end_stream=False, extra=(), sid=None):
        """HEADERS of a gRPC request on a new stream; returns its id."""
        if sid is None:
            sid = self.next_id
            self.next_id += 2
        h = [(":method", "POST"), (":scheme", "http"), (":path", path),
             (":authority", "localhost"), ("content-type", "application/grpc"),
             ("te", "trailers")]
        if token:
            h.append(("authorization", "Bearer " + token))
        h += list(extra)
        fl = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        self.send(hf.HeadersFrame(sid, data=self.enc.encode(h), flags=fl))
        return sid

    def data(self, sid, payload, end_stream=True):
        self.send(hf.DataFrame(sid, data=payload, flags=["END_STREAM"] if end_stream else []))

    def call(self, path, msg_bytes, token=None, end_stream=True, extra=()):
        sid = self.headers(path, token=token, extra=extra)
        self.data(sid, lpm(msg_bytes), end_stream=end_stream)
        return sid

    def read_frame(self, timeout=None):
        """The next frame from the server, or None at EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 9:
                f, length = hf.Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    if isinstance(f, (hf.HeadersFrame, hf.ContinuationFrame)):
                        f.decoded = self.dec.decode(f.data)
                    return f
            try:
                d = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                return None
            if not d:
                return None
            self.buf += d

    def until(self, pred, within=5.0):
        """Reads frames until pred(frame) is true; returns (that frame,
        every frame before it). AssertionError on EOF or after `within`."""
        seen = []
        end = time.time() + within
        while True:
            left = end - time.time()
            if left <= 0:
                raise AssertionError("no such frame within %ss; got %s" % (
                    within, [type(x).__name__ for x in seen][-20:]))
            try:
                f = self.read_frame(timeout=left)
            except socket.timeout:
                continue
            if f is None:
                raise AssertionError("connection closed; frames: %s" % (
                    [type(x).__name__ for x in seen][-20:]))
            if pred(f):
                return f, seen
            seen.append(f)

    def goaway(self, within=5.0):
        """Reads until GOAWAY; returns it."""
        f, _ = self.until(lambda f: isinstance(f, hf.GoAwayFrame), within)
        return f

    def closed(self, within=5.0):
        """True once the server closed the connection (EOF or reset)."""
        end = time.time() + within
        while time.time() < end:
            try:
                if self.read_frame(timeout=end - time.time()) is None:
                    return True
            except (socket.timeout, OSError):
                pass
        return False

    def trailers(self, sid, within=5.0):
        """Reads until the stream's trailers (END_STREAM HEADERS) or
        RST_STREAM; returns (grpc-status or None, grpc-message, the DATA
        payload of the stream, the RST_STREAM error code or None)."""
        body = b""
        end = time.time() + within
        while True:
            f, seen = self.until(lambda f: f.stream_id == sid, max(0.01, end - time.time()))
            if isinstance(f, hf.DataFrame):
                body += f.data
                if f.flow_controlled_length:
                    self.send(hf.WindowUpdateFrame(0, window_increment=f.flow_controlled_length))
                    self.send(hf.WindowUpdateFrame(sid, window_increment=f.flow_controlled_length))
                continue
            if isinstance(f, hf.RstStreamFrame):
                return None, "", body, f.error_code
            if isinstance(f, hf.HeadersFrame) and "END_STREAM" in f.flags:
                hd = {k.decode() if isinstance(k, bytes) else k:
                      v.decode() if isinstance(v, bytes) else v for k, v in f.decoded}
                st = hd.get("grpc-status")
                return (int(st) if st is not None else None), hd.get("grpc-message", ""), body, None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def messages(body):
    """The Length-Prefixed-Messages of a response body, as bytes each."""
    import struct
    out = []
    while body:
        flag, n = struct.unpack(">BI", body[:5])
        assert flag == 0
        out.append(body[5:5 + n])
        body = body[5 + n:]
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


__all__ = ["channel", "stub", "bearer", "code_of", "pb", "svc", "svc_grpc", "refl", "dash",
           "refl_grpc", "RawH2", "hf", "lpm", "messages", "rss_kb", "dlgtest"]
