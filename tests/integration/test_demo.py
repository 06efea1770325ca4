"""./dev demo as a user runs it, in a state folder of its own (DEV_STATE):
--serve in one shell, --check in another while it runs (each keeps its own
port file and log), --env for a second shell, and README.md's publish line
run from that shell: its alert reaches the dashboard room. Runs the
release build (./dev builds and uses build/), so only in the release
variant."""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, ROOT, run_tests  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dlg-demo-")
if not os.environ.get("DLGT_KEEP"):
    atexit.register(shutil.rmtree, TMP, True)
STATE = os.path.join(TMP, "state")
SERVE = None
SERVE_OUT = os.path.join(TMP, "serve.out")
SERVE_ERR = os.path.join(TMP, "serve.err")


def env(**kw):
    e = dict(os.environ, DEV_STATE=STATE)
    for k in ("DIALOGUE_SERVER", "DIALOGUE_CA", "DIALOGUE_TOKEN", "DIALOGUE_PORT"):
        e.pop(k, None)
    e.update(kw)
    return e


def exports(text):
    """The variables of `export NAME=VALUE` lines, as a shell would read
    them."""
    out = subprocess.run(["bash", "-c", text + "\nenv -0"], capture_output=True, timeout=10,
                         env={"PATH": os.environ["PATH"]}, check=True).stdout
    return dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)


def files_of(folder):
    """{path: bytes} of every port file and log under folder."""
    got = {}
    for d, _, names in os.walk(folder):
        for n in names:
            if n == "port" or n.endswith(".log"):
                p = os.path.join(d, n)
                with open(p, "rb") as f:
                    got[p] = f.read()
    return got


def setup():
    global SERVE
    if os.path.relpath(BUILD, ROOT) != "build":
        return
    out = open(SERVE_OUT, "w")
    err = open(SERVE_ERR, "w")
    # Port 0: the machine may run other demos on 3000.
    SERVE = subprocess.Popen([os.path.join(ROOT, "dev"), "demo", "--serve"], cwd=ROOT,
                             stdout=out, stderr=err, env=env(DIALOGUE_PORT="0"),
                             start_new_session=True)
    deadline = time.time() + 240  # ./dev builds first (nothing to do, usually)
    while time.time() < deadline:
        with open(SERVE_ERR) as f:
            if "serving" in f.read():
                return
        assert SERVE.poll() is None, open(SERVE_ERR).read()
        time.sleep(0.2)
    raise AssertionError("./dev demo --serve printed no export lines: " + open(SERVE_ERR).read())


def skip():
    if SERVE is None:
        print("SKIP: the demo runs the release build only")
        return True
    return False


def test_serve_prints_what_a_second_shell_needs():
    if skip():
        return
    v = exports(open(SERVE_OUT).read())
    for k in ("DIALOGUE_SERVER", "DIALOGUE_CA", "DIALOGUE_TOKEN", "DIALOGUE_PUBLISHER_TOKEN",
              "DIALOGUE_SECRET_FILE"):
        assert v.get(k), (k, open(SERVE_OUT).read())
    assert v["DIALOGUE_CA"].startswith(STATE), v["DIALOGUE_CA"]
    assert os.path.join(ROOT, "build", "bin") in v["PATH"].split(":")
    # --env prints the same lines for the running demo.
    p = subprocess.run([os.path.join(ROOT, "dev"), "demo", "--env"], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == open(SERVE_OUT).read()


def test_serve_prints_the_page_link_with_the_token_in_the_fragment():
    """The printed link opens the page on the demo's own port; the admin
    token rides in the fragment (a browser never sends it), not the query."""
    if skip():
        return
    import ssl
    import urllib.request
    v = exports(open(SERVE_OUT).read())
    url = v.get("DIALOGUE_DASHBOARD_URL", "")
    port = v["DIALOGUE_SERVER"].rsplit(":", 1)[1]
    assert url == "https://localhost:%s/#token=%s" % (port, v["DIALOGUE_TOKEN"]), url
    assert "the dashboard in a browser: " + url in open(SERVE_ERR).read()
    ctx = ssl.create_default_context(cafile=v["DIALOGUE_CA"])
    with urllib.request.urlopen(url.split("#")[0], context=ctx, timeout=10) as r:
        body = r.read().decode()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html"), r.headers
    assert "Live Dashboard" in body and 'src="app.js"' in body, body[:300]


def test_check_while_serve_runs_leaves_it_alone():
    if skip():
        return
    v = exports(open(SERVE_OUT).read())
    # The demo's state folder, wherever it is: DIALOGUE_CA is in its certs/.
    state = os.path.dirname(os.path.dirname(v["DIALOGUE_CA"]))
    before = files_of(state)
    assert any(p.endswith("/port") for p in before), before
    assert any(p.endswith(".log") and b for p, b in before.items()), before
    p = subprocess.run([os.path.join(ROOT, "dev"), "demo", "--check"], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "demo check passed" in p.stderr, p.stderr
    after = files_of(state)
    for path, data in before.items():
        assert path in after, "the check removed the running demo's %s" % path
        if path.endswith("/port"):
            assert after[path] == data, "the check rewrote %s" % path
        else:
            assert after[path].startswith(data), "the check truncated %s" % path
    # And the first demo still answers where its exports say.
    ping = subprocess.run([os.path.join(ROOT, "build", "bin", "dialoguectl"), "ping"],
                          env=dict(os.environ, **{k: v[k] for k in (
                              "DIALOGUE_SERVER", "DIALOGUE_CA", "DIALOGUE_TOKEN")}),
                          capture_output=True, text=True, timeout=30)
    assert ping.returncode == 0 and "pong from " + v["DIALOGUE_SERVER"] in ping.stdout, \
        ping.stdout + ping.stderr


def readme_publish_line():
    with open(os.path.join(ROOT, "README.md")) as f:
        lines = [ln for ln in f.read().splitlines()
                 if ln.startswith('dialoguectl --token "$DIALOGUE_PUBLISHER_TOKEN" trigger ')]
    assert len(lines) == 1, "README.md must show one publish line, has %d" % len(lines)
    return lines[0]


def test_readme_publish_line_reaches_the_dashboard():
    if skip():
        return
    line = readme_publish_line()
    # A second shell, as README.md says: eval the demo's variables, then
    # the line, word for word.
    script = 'set -e\ncd %s\neval "$(./dev demo --env)"\n%s\n' % (ROOT, line)
    p = subprocess.run(["bash", "-c", script], env=env(), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.fullmatch(r"ok seq=(\d+) recipients=(\d+)\n", p.stdout)
    assert m, p.stdout + p.stderr
    seq = int(m.group(1))
    # The admin's view of the room has it, from the publisher's token.
    v = exports(open(SERVE_OUT).read())
    h = subprocess.run([os.path.join(ROOT, "build", "bin", "dialoguectl"), "history",
                        "dashboard", "alert:triggered", "--since", str(seq - 1), "--json"],
                       env=dict(os.environ, **{k: v[k] for k in (
                           "DIALOGUE_SERVER", "DIALOGUE_CA", "DIALOGUE_TOKEN")}),
                       capture_output=True, text=True, timeout=30)
    assert h.returncode == 0, h.stderr
    assert '"seq":%d,' % seq in h.stdout, h.stdout
    assert '"from":"demo-publisher","from_kind":"token"' in h.stdout, h.stdout
    assert '"message":"hello from a second shell"' in h.stdout, h.stdout


def test_serve_prints_the_admin_address_and_it_answers():
    """./dev demo --serve starts the admin listener (issue 22) on loopback
    and prints its address; /healthz, /readyz and /metrics answer there."""
    if skip():
        return
    import urllib.request
    v = exports(open(SERVE_OUT).read())
    url = v.get("DIALOGUE_ADMIN_URL", "")
    assert re.match(r"^http://127\.0\.0\.1:\d+$", url) and not url.endswith(":0"), url
    assert "metrics and health: %s (/metrics, /healthz, /readyz)" % url in \
        open(SERVE_ERR).read()
    for path, want in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
        with urllib.request.urlopen(url + path, timeout=10) as r:
            assert r.status == 200 and r.read().decode() == want, path
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'dialogue_room_members{room="dashboard"}' in text, text[:2000]


def test_second_demo_on_a_taken_port_says_so():
    if skip():
        return
    v = exports(open(SERVE_OUT).read())
    port = v["DIALOGUE_SERVER"].rsplit(":", 1)[1]
    p = subprocess.run([os.path.join(ROOT, "dev"), "demo", "--serve"], cwd=ROOT,
                       env=env(DIALOGUE_PORT=port), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0
    assert "is port %s free? DIALOGUE_PORT=0 takes any free port" % port in p.stderr, p.stderr
    assert "another demo runs from %s/demo-" % STATE in p.stderr, p.stderr
    # The running one is untouched.
    assert files_of(STATE), "the failed start removed the running demo's files"
    test_serve_prints_what_a_second_shell_needs()


def test_serve_stops_on_sigterm():
    if skip():
        return
    SERVE.send_signal(signal.SIGTERM)
    assert SERVE.wait(timeout=20) == 0, open(SERVE_ERR).read()
    assert not [p for p in files_of(STATE) if p.endswith("/port")], "a stopped demo left its port"
    p = subprocess.run([os.path.join(ROOT, "dev"), "demo", "--env"], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "no demo is running" in p.stderr, p.stderr


if __name__ == "__main__":
    try:
        setup()
        run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
                  per_test_timeout=240)
    finally:
        if SERVE is not None and SERVE.poll() is None:
            os.killpg(SERVE.pid, signal.SIGKILL)
