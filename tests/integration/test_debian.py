"""The Debian packages (issue 22): `dpkg-buildpackage -us -uc -b` builds
dialogued, dialoguectl, libdialogue-client2 and libdialogue-client-dev
from a copy of the tree; lintian finds no error in them; each holds what
it should; unpacked into a scratch root (dpkg -x), the packaged daemon
checks the packaged example config (--check-config) once the packaged
make-credentials has made what a fresh install gets, and serves it.

Slow (a whole build): it runs once, in the release variant only."""
# suite-timeout: 1500
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

WORK = tempfile.mkdtemp(prefix="dlg-deb-")
SRC = os.path.join(WORK, "dialogue")
PACKAGES = ("dialogued", "dialoguectl", "libdialogue-client2", "libdialogue-client-dev")
DEBS = {}


def run(args, cwd=None, env=None, timeout=1200):
    p = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    assert p.returncode == 0, "%s exited %d:\n%s" % (" ".join(args), p.returncode, p.stdout[-6000:])
    return p.stdout


def soname():
    """The client library's SONAME, read from the build."""
    out = run(["readelf", "-d", os.path.join(ROOT, "build", "lib", "libdialogue-client.so.2")])
    return re.search(r"Library soname: \[([^\]]+)\]", out).group(1)


def build_packages():
    if DEBS:
        return
    # The tree as git has it (tracked and new files, nothing ignored): the
    # package is built from source, not from this tree's build/.
    files = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).split("\0")
    for f in filter(None, files):
        src = os.path.join(ROOT, f)
        if not os.path.lexists(src):
            continue  # deleted in the work tree
        dst = os.path.join(SRC, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % (os.cpu_count() or 1))
    for k in ("CFLAGS", "CPPFLAGS", "LDFLAGS", "DESTDIR", "PREFIX", "LIBDIR"):
        env.pop(k, None)
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=SRC, env=env, timeout=1500)
    for name in os.listdir(WORK):
        m = re.match(r"^([a-z0-9.+-]+)_([^_]+)_([a-z0-9]+)\.deb$", name)
        if m:
            DEBS[m.group(1)] = os.path.join(WORK, name)


def contents(pkg):
    out = run(["dpkg-deb", "-c", DEBS[pkg]])
    return {line.split(None, 5)[5].lstrip(".").split(" -> ")[0] for line in out.splitlines()}


def test_packages_build_and_hold_their_files():
    build_packages()
    # The library package is named after the SONAME the build gives it.
    lib = soname()
    assert lib == "libdialogue-client.so.2", lib
    assert sorted(p for p in DEBS if not p.endswith("-dbgsym")) == sorted(PACKAGES), DEBS
    arch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).strip()
    want = {
        "dialogued": ["/usr/sbin/dialogued", "/etc/dialogue/dialogue.yaml",
                      "/lib/systemd/system/dialogued.service",
                      "/usr/libexec/dialogue/make-credentials",
                      "/usr/share/man/man8/dialogued.8.gz", "/usr/share/man/man5/dialogue.yaml.5.gz",
                      "/usr/share/dialogue/dashboard.pb"],
        "dialoguectl": ["/usr/bin/dialoguectl", "/usr/bin/dialogue-bench",
                        "/usr/share/man/man1/dialoguectl.1.gz",
                        "/usr/share/man/man1/dialogue-bench.1.gz",
                        "/usr/share/bash-completion/completions/dialoguectl"],
        "libdialogue-client2": ["/usr/lib/%s/libdialogue-client.so.2" % arch,
                                "/usr/lib/%s/libdialogue-client.so.2.0.0" % arch],
        "libdialogue-client-dev": ["/usr/include/dialogue/client.h",
                                   "/usr/lib/%s/libdialogue-client.so" % arch,
                                   "/usr/lib/%s/libdialogue-client.a" % arch,
                                   "/usr/lib/%s/pkgconfig/dialogue-client.pc" % arch,
                                   "/usr/share/dialogue/proto/dialogue/v1/protocol.proto"],
    }
    for pkg, paths in want.items():
        have = contents(pkg)
        for p in paths:
            assert p in have, "%s lacks %s:\n%s" % (pkg, p, "\n".join(sorted(have)))
    # The example config is a conffile; the postinst makes the user.
    ctl = tempfile.mkdtemp(dir=WORK)
    run(["dpkg-deb", "-e", DEBS["dialogued"], ctl])
    with open(os.path.join(ctl, "conffiles")) as f:
        assert "/etc/dialogue/dialogue.yaml" in f.read().split()
    with open(os.path.join(ctl, "postinst")) as f:
        post = f.read()
    assert "adduser --quiet --system --group" in post and " dialogue\n" in post, post
    assert "deb-systemd-helper" in post, post  # the unit is enabled by debhelper's snippet
    info = run(["dpkg-deb", "-I", DEBS["libdialogue-client-dev"]])
    assert re.search(r"Depends: .*libdialogue-client2 \(= ", info), info


def test_lintian_finds_no_error():
    build_packages()
    p = subprocess.run(["lintian", "--tag-display-limit", "0"] +
                       [DEBS[k] for k in PACKAGES], capture_output=True, text=True, timeout=600)
    errors = [l for l in p.stdout.splitlines() if l.startswith("E: ")]
    assert not errors and p.returncode in (0, 1), p.stdout + p.stderr
    # Anything it says (warnings, info) is shown in the test log.
    print(p.stdout, end="")


def test_unpacked_daemon_checks_and_serves_the_example_config():
    build_packages()
    root = tempfile.mkdtemp(dir=WORK, prefix="root-")
    for pkg in PACKAGES:
        run(["dpkg", "-x", DEBS[pkg], root])
    daemon = os.path.join(root, "usr/sbin/dialogued")
    conf = os.path.join(root, "etc/dialogue/dialogue.yaml")
    # Before the postinst's credentials the check names what is missing.
    p = subprocess.run([daemon, "--check-config", "--config", conf], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1, p
    assert re.search(r"dialogue\.yaml:\d+:\d+: listen\[0\]\.cert: cannot load certificate .*"
                     r"tls/server\.crt: No such file or directory", p.stderr), p.stderr
    assert "auth.jwt.keys[0].secret_file" in p.stderr, p.stderr
    # What the postinst runs, into the scratch root.
    out = run([os.path.join(root, "usr/libexec/dialogue/make-credentials"),
               os.path.join(root, "etc/dialogue")])
    assert "made " in out, out
    assert run([os.path.join(root, "usr/libexec/dialogue/make-credentials"),
                os.path.join(root, "etc/dialogue")]) == "", "made twice"
    p = subprocess.run([daemon, "--check-config", "--config", conf], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "dialogued: configuration %s is valid\n" % conf, p
    # And it serves that config (on a free port instead of 3000).
    with open(conf) as f:
        text = f.read().replace("127.0.0.1:3000", "127.0.0.1:0")
    served = os.path.join(root, "etc/dialogue/test.yaml")
    with open(served, "w") as f:
        f.write(text)
    port_file = os.path.join(WORK, "port")
    d = subprocess.Popen([daemon, "--config", served, "--port-file", port_file],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 20
        while not os.path.exists(port_file) and time.time() < deadline and d.poll() is None:
            time.sleep(0.05)
        assert os.path.exists(port_file), d.communicate(timeout=5)
        ctl = os.path.join(root, "usr/bin/dialoguectl")
        port = int(open(port_file).read())
        token = run([ctl, "token", "--secret-file", os.path.join(root, "etc/dialogue/token.secret"),
                     "--sub", "alice", "--role", "member", "--iss", "dialogue", "--aud",
                     "dialogue"]).strip()
        out = run([ctl, "--server", "localhost:%d" % port, "--ca",
                   os.path.join(root, "etc/dialogue/tls/server.crt"), "--token", token, "rooms"],
                  timeout=60)
        assert "lobby" in out, out
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(10)


if __name__ == "__main__":
    if os.path.basename(os.path.normpath(BUILD)) == "asan":
        # One build of the packages is enough: the release run does it.
        print("SKIP test_debian: runs in the release variant only")
        print("0 passed, 0 failed")
        shutil.rmtree(WORK, True)
        sys.exit(0)
    try:
        run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 1400)
    finally:
        shutil.rmtree(WORK, True)
