"""The JavaScript client (clients/js) against a real dialogued over its
WebSocket endpoint: tests/js/client.test.mjs under node --test."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from jsrun import run_node_tests  # noqa: E402

run_node_tests(["tests/js/client.test.mjs"])
