"""jsrun: runs node test files (node --test, TAP output) against the build
named by DLG_BUILD and prints what tests/run.sh reads: a line per test and
the summary `N passed, N failed`. The node files start their own dialogued
(tests/js/lib/harness.mjs)."""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run_node_tests(files, timeout=280, per_test_timeout=90):
    env = dict(os.environ)
    env.setdefault("DLG_BUILD", os.path.join(ROOT, "build"))
    args = ["node", "--test", "--test-reporter=tap", "--test-concurrency=1",
            "--test-timeout=%d" % (per_test_timeout * 1000)]
    args += [os.path.join(ROOT, f) for f in files]
    try:
        p = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, text=True)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\nnode --test did not finish within %d s\n" % timeout
        rc = -1
    passed = failed = 0
    for line in out.splitlines():
        # Top-level results only (subtests are indented).
        m = re.match(r"^(not ok|ok) \d+ - (.*)$", line)
        if m:
            if re.search(r"# SKIP\b", m.group(2)):
                print("SKIP %s" % m.group(2), flush=True)
            elif m.group(1) == "ok":
                passed += 1
                print("PASS %s" % m.group(2), flush=True)
            else:
                failed += 1
                print("FAIL %s" % m.group(2), flush=True)
    if failed or rc != 0:
        print(out, flush=True)
    if rc != 0 and failed == 0:
        failed = 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
