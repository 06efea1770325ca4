"""A service that publishes its own metrics into the dashboard over gRPC,
one a second (env from ./dev demo --env; a publisher's token)."""
import os
import sys
import time

import grpc
from dialogue_stubs import dashboard_pb2, protocol_pb2, service_pb2_grpc

creds = grpc.ssl_channel_credentials(open(os.environ["DIALOGUE_CA"], "rb").read())
channel = grpc.secure_channel(os.environ["DIALOGUE_SERVER"], creds)
dialogue = service_pb2_grpc.DialogueStub(channel)
auth = [("authorization", "Bearer " + os.environ["DIALOGUE_PUBLISHER_TOKEN"])]
count = int(sys.argv[1]) if len(sys.argv) > 1 else 0  # 0 = until Ctrl-C
n = 0
while count == 0 or n < count:
    load = os.getloadavg()[0] * 100 / os.cpu_count()
    m = dashboard_pb2.MetricsUpdate(cpu=min(load, 100), memory=42, requests=n, errors=0, latency=1.5)
    ack = dialogue.Trigger(protocol_pb2.Trigger(room="dashboard", event="metrics:update",
                                                data=m.SerializeToString()), metadata=auth)
    print(f"published seq {ack.seq} to {ack.recipients} member(s)", flush=True)
    n += 1
    time.sleep(1)
