"""The web dashboard page in headless Chromium against a real dialogued:
tests/js/page.test.mjs under node --test (screenshots in
$DLG_BUILD/test-output/web)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from jsrun import run_node_tests  # noqa: E402

run_node_tests(["tests/js/page.test.mjs"])
