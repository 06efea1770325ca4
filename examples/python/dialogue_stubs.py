"""dialogue_stubs: the gRPC stubs of proto/, generated at import into a temp
folder (protoc for the messages, grpc_tools for the service), as any gRPC
user makes them. Debian: protobuf-compiler, python3-grpcio,
python3-grpc-tools."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
_out = tempfile.mkdtemp(prefix="dialogue-stubs-")
atexit.register(shutil.rmtree, _out, True)
_files = [os.path.join(PROTO, f) for f in ("dialogue/v1/protocol.proto", "dialogue/v1/service.proto",
                                           "dialogue/v1/options.proto", "events/dashboard.proto")]
subprocess.run(["protoc", "-I" + PROTO, "-I/usr/include", "--python_out=" + _out] + _files, check=True)
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + PROTO, "-I/usr/include",
                "--grpc_python_out=" + _out, _files[1]], check=True)
sys.path.insert(0, _out)
from dialogue.v1 import protocol_pb2, service_pb2, service_pb2_grpc  # noqa: E402,F401
from events import dashboard_pb2  # noqa: E402,F401
