"""examples/python end to end: the shipped dashboard config (with test
certificates and secret), the subscriber and the publisher run as a user
runs them, with the environment ./dev demo --env prints (DIALOGUE_SERVER,
DIALOGUE_CA, DIALOGUE_TOKEN, DIALOGUE_PUBLISHER_TOKEN). The subscriber
prints the daemon's own metrics and the publisher's; the publisher prints
its Acks."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import CERTS, Daemon, ROOT, make_jwt, run_tests, write_config  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_dashboard import load_example  # noqa: E402

SECRET = b"python-examples-secret-0123456789abcd"
EX = os.path.join(ROOT, "examples", "python")
D = None
ENV = None


def token(sub, role):
    now = int(time.time())
    return make_jwt(SECRET, {"sub": sub, "role": role, "iat": now, "exp": now + 600})


def setup():
    global D, ENV
    d = os.path.dirname(write_config("x"))
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(load_example(), secret=secret))
    ENV = dict(os.environ, DIALOGUE_SERVER="127.0.0.1:%d" % D.port,
               DIALOGUE_CA=os.path.join(CERTS, "ca.crt"),
               DIALOGUE_TOKEN=token("demo-admin", "admin"),
               DIALOGUE_PUBLISHER_TOKEN=token("demo-publisher", "publisher"))


def test_examples_are_short():
    for name, most in (("subscribe.py", 20), ("publish.py", 25)):
        with open(os.path.join(EX, name)) as f:
            n = len(f.read().splitlines())
        assert n <= most, "%s has %d lines" % (name, n)


def test_subscriber_prints_live_metrics_and_the_publishers():
    sub = subprocess.Popen([sys.executable, os.path.join(EX, "subscribe.py")], env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Subscribed once it prints (the room's history comes first).
        first = sub.stdout.readline()
        assert first.startswith("seq "), first
        pub = subprocess.run([sys.executable, os.path.join(EX, "publish.py"), "3"], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=60)
        assert pub.returncode == 0, pub.stdout
        acks = re.findall(r"published seq (\d+) to (\d+) member\(s\)", pub.stdout)
        assert len(acks) == 3, pub.stdout
        assert all(int(n) >= 1 for _, n in acks), acks  # the subscriber is one
        lines = [first]
        end = time.time() + 20
        want = {int(s) for s, _ in acks}
        while time.time() < end:
            line = sub.stdout.readline()
            if not line:
                break
            lines.append(line)
            seen = {int(m) for m in re.findall(r"^seq (\d+): cpu", "".join(lines), re.M)}
            if want <= seen and len(seen) >= 5:
                break
        text = "".join(lines)
        rows = re.findall(r"^seq (\d+): cpu ([\d.]+)% memory ([\d.]+)% requests (\d+) errors "
                          r"(\d+) latency ([\d.]+) ms$", text, re.M)
        seqs = [int(r[0]) for r in rows]
        assert want <= set(seqs), (want, text)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        # The publisher's (memory 42 and latency 1.5) and the daemon's own.
        assert any(r[2] == "42.0" and r[5] == "1.5" for r in rows), text
        assert any(r[2] != "42.0" for r in rows), text
    finally:
        sub.kill()
        sub.wait()


def test_subscriber_with_a_count_exits_by_itself():
    p = subprocess.run([sys.executable, os.path.join(EX, "subscribe.py"), "3"], env=ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.count("seq ") >= 1, p.stdout


if __name__ == "__main__":
    setup()
    try:
        run_tests([test_examples_are_short,
                   test_subscriber_prints_live_metrics_and_the_publishers,
                   test_subscriber_with_a_count_exits_by_itself], per_test_timeout=90)
    finally:
        assert D.stop() == 0
