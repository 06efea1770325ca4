"""Prints the live dashboard's metrics over gRPC (env from ./dev demo --env)."""
import os
import sys

import grpc
from dialogue_stubs import dashboard_pb2, service_pb2, service_pb2_grpc

creds = grpc.ssl_channel_credentials(open(os.environ["DIALOGUE_CA"], "rb").read())
channel = grpc.secure_channel(os.environ["DIALOGUE_SERVER"], creds)
dialogue = service_pb2_grpc.DialogueStub(channel)
auth = [("authorization", "Bearer " + os.environ["DIALOGUE_TOKEN"])]
count = int(sys.argv[1]) if len(sys.argv) > 1 else 0  # 0 = until Ctrl-C
for n, event in enumerate(dialogue.Subscribe(service_pb2.SubscribeRequest(room="dashboard"), metadata=auth), 1):
    if event.event == "metrics:update":
        m = dashboard_pb2.MetricsUpdate.FromString(event.data)
        print(f"seq {event.seq}: cpu {m.cpu:.1f}% memory {m.memory:.1f}% requests {m.requests:.0f} "
              f"errors {m.errors:.0f} latency {m.latency:.1f} ms", flush=True)
    if n == count:
        break
