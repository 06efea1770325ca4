"""One version number (issue 19): the top-level VERSION file is the only
place it is written, and everything that reports a version says the same:
dialogued --version and Welcome.server_version, dialoguectl --version (its
own number and the client library's), dialogue-bench --version,
dlg_client_version() of the shared library, the installed pkg-config file,
and docs/protocol.md."""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (BUILD, CTL, DAEMON, ROOT, Conn, Daemon, pb,  # noqa: E402
                     run_tests)

with open(os.path.join(ROOT, "VERSION")) as f:
    VERSION = f.read().strip()


def out_of(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=60)
    assert p.returncode == 0, "%s exited %d: %s" % (" ".join(args), p.returncode, p.stdout)
    return p.stdout.strip()


def test_version_file_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), "VERSION holds %r" % VERSION


def test_programs_report_it():
    assert out_of([DAEMON, "--version"]) == "dialogued " + VERSION
    assert out_of([CTL, "--version"]) == "dialoguectl %s (libdialogue-client %s)" % (
        VERSION, VERSION)
    bench = os.path.join(BUILD, "bin", "dialogue-bench")
    assert out_of([bench, "--version"]) == "dialogue-bench " + VERSION


def test_welcome_says_it():
    d = Daemon()
    try:
        c = Conn(d.port)
        c.send(hello=pb.Hello(protocol_version=1, client_name="test_version"))
        w = c.expect("welcome")
        assert w.server_version == "dialogued " + VERSION, w.server_version
        c.sock.close()
    finally:
        assert d.stop() == 0, d.logtext()[-2000:]


def test_shared_library_says_it():
    # A sanitizer build's library needs its runtime loaded first, which a
    # plain Python cannot give it: the release library is what users load.
    so = os.path.join(ROOT, "build", "lib", "libdialogue-client.so.2")
    assert os.path.exists(so), "no %s: build the release library first" % so
    lib = ctypes.CDLL(so)
    lib.dlg_client_version.restype = ctypes.c_char_p
    assert lib.dlg_client_version().decode() == VERSION


def test_pkg_config_file_says_it():
    dest = tempfile.mkdtemp(prefix="dlg-version-")
    try:
        env = dict(os.environ, DESTDIR=dest, PREFIX="/usr")
        env.pop("LIBDIR", None)
        out_of_env = subprocess.run([os.path.join(ROOT, "client-lib", "install.sh"), BUILD],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, timeout=60)
        assert out_of_env.returncode == 0, out_of_env.stdout
        with open(os.path.join(dest, "usr", "lib", "pkgconfig", "dialogue-client.pc")) as f:
            pc = f.read()
        assert re.search(r"^Version: %s$" % re.escape(VERSION), pc, re.M), pc
    finally:
        shutil.rmtree(dest, True)


def test_protocol_doc_says_it():
    with open(os.path.join(ROOT, "docs", "protocol.md")) as f:
        doc = f.read()
    found = set(re.findall(r"`dialogued (\d+\.\d+\.\d+)`", doc))
    assert found == {VERSION}, "docs/protocol.md names %s, VERSION says %s" % (
        sorted(found) or "no version", VERSION)


def test_debian_changelog_says_it():
    # Debian's tools read the package's version from debian/changelog only.
    with open(os.path.join(ROOT, "debian", "changelog")) as f:
        top = f.readline()
    m = re.match(r"^dialogue \(([^)-]+)(?:-[^)]*)?\) ", top)
    assert m and m.group(1) == VERSION, "debian/changelog starts %r, VERSION says %s" % (
        top, VERSION)


def test_js_package_says_it():
    # npm reads the package's version from package.json (and its lock file
    # repeats it): both must say VERSION.
    import json
    with open(os.path.join(ROOT, "clients", "js", "package.json")) as f:
        pkg = json.load(f)
    with open(os.path.join(ROOT, "clients", "js", "package-lock.json")) as f:
        lock = json.load(f)
    got = (pkg.get("version"), lock.get("version"), lock["packages"][""].get("version"))
    assert got == (VERSION,) * 3, "clients/js says %s, VERSION says %s" % (got, VERSION)


def test_written_once():
    """No other tracked file spells the number (tests and docs excepted: the
    docs page above is checked instead; debian/changelog, which Debian's
    tools read, and the JS package's files, which npm reads, are checked
    against it; a symbols file names the version a
    symbol appeared in, not the current one)."""
    pat = re.compile(r"(?<![\w.])%s(?![\w.])" % re.escape(VERSION))
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                           timeout=60, check=True).stdout.split()
    hits = []
    for rel in files:
        if (rel in ("VERSION", "debian/changelog", "clients/js/package.json",
                    "clients/js/package-lock.json") or rel.startswith("tests/")
                or rel.endswith(".md") or rel.endswith(".symbols")):
            continue
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue
        with open(path, errors="replace") as f:
            if pat.search(f.read()):
                hits.append(rel)
    assert not hits, "the version is written again in %s" % hits


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
              per_test_timeout=120)
