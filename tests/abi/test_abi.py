"""The ABI of libdialogue-client (issue 19): the shared library exports
exactly the symbols listed in client-lib/libdialogue-client.symbols, under
the SONAME and version node written there; the headers `ninja install`
puts in include/dialogue/ compile on their own and declare exactly the
functions the library exports (nothing declared that only links with the
static archive, nothing exported that no header declares). No daemon: it
reads the build ($DLG_BUILD, default build/) with nm, readelf and gcc."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, ROOT, run_tests  # noqa: E402

SONAME = "libdialogue-client.so.2"
VERSION_NODE = "DIALOGUE_CLIENT_2"
# Nodes added since 2.0, each inheriting the one before (the version script).
LATER_NODES = ("DIALOGUE_CLIENT_2.1",)
SO = os.path.join(BUILD, "lib", SONAME)
SYMBOLS = os.path.join(ROOT, "client-lib", "libdialogue-client.symbols")


def run(args, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, **kw)
    assert p.returncode == 0, "%s exited %d:\n%s" % (" ".join(args), p.returncode, p.stdout)
    return p.stdout


def exported():
    """{(type, name@@version)} of the built library's dynamic symbols."""
    assert os.path.exists(SO), "no %s: build the client library first" % SO
    out = run(["nm", "-D", "--defined-only", SO])
    return {tuple(line.split()[1:3]) for line in out.splitlines() if line.strip()}


def committed():
    out = set()
    with open(SYMBOLS) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                typ, name = line.split()
                out.add((typ, name))
    return out


def functions(syms):
    """The names of the code symbols (the version node itself is an A)."""
    return {name.split("@")[0] for typ, name in syms if typ in ("T", "W", "i")}


def install_headers():
    """Stages `client-lib/install.sh` (what `ninja install-client` runs)
    into a temporary DESTDIR; returns the staged include folder."""
    dest = tempfile.mkdtemp(prefix="dlg-abi-")
    env = dict(os.environ, DESTDIR=dest, PREFIX="/usr")
    env.pop("LIBDIR", None)
    run([os.path.join(ROOT, "client-lib", "install.sh"), BUILD], cwd=ROOT, env=env)
    return dest, os.path.join(dest, "usr", "include")


def declared(include):
    """{name: "header:line"} of every function an installed header declares,
    from gcc -aux-info over a file including each header alone (so each must
    compile alone, with the flags docs/client-library.md gives users)."""
    uv = run(["pkg-config", "--cflags", "libuv"]).split()
    headers = sorted(os.path.relpath(os.path.join(d, f), include)
                     for d, _, files in os.walk(include) for f in files if f.endswith(".h"))
    assert headers, "install.sh installed no header under " + include
    found = {}
    work = tempfile.mkdtemp(prefix="dlg-abi-aux-")
    try:
        for h in headers:
            src = os.path.join(work, "t.c")
            aux = os.path.join(work, "aux.txt")
            with open(src, "w") as f:
                f.write("#include <%s>\n" % h)
            run(["gcc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror",
                 "-I" + include] + uv + ["-fsyntax-only", "-aux-info", aux, src])
            with open(aux) as f:
                for line in f:
                    m = re.match(r"/\* (\S+):(\d+):\w+ \*/ (.*)$", line)
                    if m is None or not m.group(1).startswith(include + os.sep):
                        continue
                    name = re.search(r"(\w+) \(", m.group(3))
                    assert name is not None, "cannot read a declaration: " + line
                    where = "%s:%s" % (os.path.relpath(m.group(1), include), m.group(2))
                    found.setdefault(name.group(1), where)
    finally:
        shutil.rmtree(work, True)
    return headers, found


def test_exports_match_the_committed_list():
    have, want = exported(), committed()
    extra = sorted("%s %s" % s for s in have - want)
    missing = sorted("%s %s" % s for s in want - have)
    assert not extra and not missing, (
        "%s differs from %s\n  exported, not listed: %s\n  listed, not exported: %s\n"
        "(an ABI change: see the comment at the top of the list)"
        % (SO, SYMBOLS, extra or "none", missing or "none"))


def test_soname_and_version_node():
    dyn = run(["readelf", "-d", SO])
    assert "Library soname: [%s]" % SONAME in dyn, dyn
    link = os.path.join(BUILD, "lib", "libdialogue-client.so")
    assert os.readlink(link) == SONAME, os.readlink(link)
    syms = exported()
    nodes = (VERSION_NODE,) + LATER_NODES
    for node in nodes:
        assert ("A", node) in syms, (node, sorted(syms))
    unversioned = sorted(n for t, n in syms
                         if t != "A" and not any(n.endswith("@@" + v) for v in nodes))
    assert not unversioned, "exported outside %s: %s" % (nodes, unversioned)


def test_installed_headers_declare_exactly_the_exports():
    dest, include = install_headers()
    try:
        headers, decl = declared(include)
    finally:
        shutil.rmtree(dest, True)
    exp = functions(exported())
    not_exported = sorted("%s (%s)" % (n, w) for n, w in decl.items() if n not in exp)
    undeclared = sorted(exp - set(decl))
    assert not not_exported and not undeclared, (
        "installed headers %s vs %s\n  declared, not exported (would not link with the "
        ".so): %s\n  exported, declared nowhere: %s"
        % (headers, SONAME, not_exported or "none", undeclared or "none"))


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
              per_test_timeout=120)
