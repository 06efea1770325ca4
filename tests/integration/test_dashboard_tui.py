"""dialoguectl dashboard as a person sees it: run inside tmux, read the
screen with capture-pane, quit with q. The example config keeps metrics
history with sync on join, so the first screen with metrics already has a
sparkline of several samples."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import CERTS, CTL, ROOT, Daemon, make_jwt, run_tests, write_config  # noqa: E402
import test_dashboard as td  # noqa: E402

D = None
D_STARTED = 0.0
SESSION = "dlg-test-%d" % os.getpid()
# One sparkline sample per character (U+2581..U+2588).
BLOCKS = re.compile("[\u2581-\u2588]")


def setup():
    global D, D_STARTED
    d = os.path.dirname(write_config("x"))
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(td.SECRET)
    D = Daemon(config=write_config(td.load_example(), secret=secret))
    D_STARTED = time.time()


def tmux(*args, check=True):
    # -u: the pane is UTF-8 whatever the locale, so the block characters
    # survive capture-pane.
    return subprocess.run(["tmux", "-u", "-L", SESSION] + list(args), capture_output=True,
                          text=True, encoding="utf-8", timeout=10, check=check)


def cpu_samples(text):
    """Samples in the cpu sparkline, or None when no cpu line is drawn."""
    for line in text.splitlines():
        if re.match(r"\s*cpu\s+\d+\.\d\d", line):
            return len(BLOCKS.findall(line))
    return None


def screen():
    return tmux("capture-pane", "-p", "-t", SESSION).stdout


def test_dashboard_shows_metrics_and_quits_on_q():
    # The daemon publishes metrics once a second and keeps the last 300:
    # after 4 s it holds at least 3, which the dashboard gets on join.
    time.sleep(max(0.0, D_STARTED + 4.0 - time.time()))
    now = int(time.time())
    token = make_jwt(td.SECRET, {"sub": "tui", "role": "admin", "exp": now + 600})
    status = os.path.join(os.path.dirname(D.port_file), "tui.status")
    cmd = "%s --server 127.0.0.1:%d --ca %s --token %s dashboard; echo $? > %s" % (
        CTL, D.port, os.path.join(CERTS, "ca.crt"), token, status)
    tmux("new-session", "-d", "-s", SESSION, "-x", "110", "-y", "32", cmd)
    try:
        deadline = time.time() + 10
        text = ""
        first = None  # samples on the first screen that shows metrics
        while time.time() < deadline:
            text = screen()
            if first is None:
                first = cpu_samples(text)
            if all(m in text for m in ("cpu", "memory", "requests", "errors", "latency")) \
                    and re.search(r"cpu\s+\d+\.\d\d", text) and "alert" in text.lower() \
                    and "CPU usage critical" in text:
                break
            time.sleep(0.2)
        assert re.search(r"cpu\s+\d+\.\d\d", text), text
        # Live metrics alone would draw one sample first, the next a second
        # later (the screen is read every 0.2 s): several at once came from
        # the history batch.
        assert first is not None and first >= 3, (first, text)
        assert "connected" in text, text
        assert "CPU usage critical" in text, text  # the forced alert is listed
        # Resize: the view redraws at the new width without dying.
        tmux("resize-window", "-t", SESSION, "-x", "70", "-y", "25", check=False)
        time.sleep(0.5)
        tmux("send-keys", "-t", SESSION, "q")
        deadline = time.time() + 5
        while time.time() < deadline and not os.path.exists(status):
            time.sleep(0.1)
        assert os.path.exists(status), "dashboard did not exit on q:\n" + screen()
        with open(status) as f:
            assert f.read().strip() == "0"
    finally:
        tmux("kill-server", check=False)


def errors_value(text):
    m = re.search(r"^\s*errors\s+(\d+\.\d\d)", text, re.M)
    return None if m is None else float(m.group(1))


def readme_publish_line():
    with open(os.path.join(ROOT, "README.md")) as f:
        lines = [ln for ln in f.read().splitlines()
                 if ln.startswith('dialoguectl --token "$DIALOGUE_PUBLISHER_TOKEN" trigger ')]
    assert len(lines) == 1, lines
    return lines[0]


def test_publish_from_a_second_shell_shows_on_screen():
    # The demo's story: the dashboard in one terminal, README.md's publish
    # line in another; the alert shows under "recent alerts". Meanwhile the
    # daemon's own `errors` metric stays 0: the dashboard does not Join the
    # room the server auto-joined it to (that Join would be refused).
    now = int(time.time())
    admin = make_jwt(td.SECRET, {"sub": "tui2", "role": "admin", "exp": now + 600})
    publisher = make_jwt(td.SECRET, {"sub": "demo-publisher", "role": "publisher",
                                     "exp": now + 600})
    ca = os.path.join(CERTS, "ca.crt")
    status = os.path.join(os.path.dirname(D.port_file), "tui2.status")
    cmd = "%s --server 127.0.0.1:%d --ca %s --token %s dashboard; echo $? > %s" % (
        CTL, D.port, ca, admin, status)
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", cmd)
    try:
        deadline = time.time() + 10
        text = ""
        while time.time() < deadline and not ("connected" in text and errors_value(text)
                                                is not None):
            time.sleep(0.2)
            text = screen()
        assert "connected" in text and errors_value(text) is not None, text
        # Two metric ticks after joining: the errors line never leaves 0.
        seen = []
        end = time.time() + 2.5
        while time.time() < end:
            v = errors_value(screen())
            if v is not None:
                seen.append(v)
            time.sleep(0.1)
        assert seen and max(seen) == 0.0, "errors on screen: %s" % sorted(set(seen))
        # The second shell.
        env = dict(os.environ, DIALOGUE_SERVER="127.0.0.1:%d" % D.port, DIALOGUE_CA=ca,
                   DIALOGUE_PUBLISHER_TOKEN=publisher,
                   PATH=os.path.dirname(CTL) + ":" + os.environ["PATH"])
        p = subprocess.run(["bash", "-c", readme_publish_line()], env=env,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stdout.startswith("ok seq="), p.stdout + p.stderr
        deadline = time.time() + 5
        while time.time() < deadline and "hello from a second shell" not in text:
            time.sleep(0.2)
            text = screen()
        assert "hello from a second shell" in text, text
        tmux("send-keys", "-t", SESSION, "q")
        deadline = time.time() + 5
        while time.time() < deadline and not os.path.exists(status):
            time.sleep(0.1)
        with open(status) as f:
            assert f.read().strip() == "0"
    finally:
        tmux("kill-server", check=False)


def test_clean_exit():
    assert D.stop() == 0


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
