"""`ninja -f build.ninja install` (issue 22): with DESTDIR and PREFIX, every
file in its place (daemon, CLI, bench, the client library with its SONAME
links, headers, pkg-config file, .proto files, example config, man pages,
systemd unit) and nothing else; a small C program built against the
installed headers with nothing but pkg-config, linked both ways, talks to a
daemon."""
import atexit
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import CERTS, Daemon, ROOT, run_tests  # noqa: E402

STAGE = tempfile.mkdtemp(prefix="dlg-destdir-")
atexit.register(shutil.rmtree, STAGE, True)
PREFIX = "/opt/dlg"
ROOTED = STAGE + PREFIX

# Every path `ninja install` makes under DESTDIR (files and links), and the
# mode of each file.
EXPECTED = {
    "opt/dlg/sbin/dialogued": 0o755,
    "opt/dlg/bin/dialoguectl": 0o755,
    "opt/dlg/bin/dialogue-bench": 0o755,
    "opt/dlg/lib/libdialogue-client.so.2.0.0": 0o644,
    "opt/dlg/lib/libdialogue-client.so.2": "libdialogue-client.so.2.0.0",
    "opt/dlg/lib/libdialogue-client.so": "libdialogue-client.so.2",
    "opt/dlg/lib/libdialogue-client.a": 0o644,
    "opt/dlg/lib/pkgconfig/dialogue-client.pc": 0o644,
    "opt/dlg/include/dialogue/client.h": 0o644,
    "opt/dlg/include/dialogue/dlg_errno.h": 0o644,
    "opt/dlg/share/dialogue/proto/dialogue/v1/protocol.proto": 0o644,
    "opt/dlg/share/dialogue/proto/dialogue/v1/options.proto": 0o644,
    "opt/dlg/share/dialogue/proto/dialogue/v1/service.proto": 0o644,
    "opt/dlg/share/dialogue/proto/events/dashboard.proto": 0o644,
    "opt/dlg/share/dialogue/dashboard.pb": 0o644,
    "opt/dlg/share/doc/dialogue/examples/dialogue.yaml": 0o644,
    "opt/dlg/share/bash-completion/completions/dialoguectl": 0o644,
    "opt/dlg/lib/systemd/system/dialogued.service": 0o644,
    "opt/dlg/share/man/man8/dialogued.8": 0o644,
    "opt/dlg/share/man/man1/dialoguectl.1": 0o644,
    "opt/dlg/share/man/man1/dialogue-bench.1": 0o644,
    "opt/dlg/share/man/man5/dialogue.yaml.5": 0o644,
    "opt/dlg/libexec/dialogue/make-credentials": 0o755,
}


def run(args, env=None, cwd=None, timeout=300):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env, cwd=cwd, timeout=timeout)
    assert p.returncode == 0, "%s exited %d:\n%s" % (" ".join(args), p.returncode, p.stdout)
    return p.stdout


def installed():
    found = {}
    for d, dirs, files in os.walk(STAGE):
        for name in files + dirs:
            full = os.path.join(d, name)
            rel = os.path.relpath(full, STAGE)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                found[rel] = stat.S_IMODE(st.st_mode)
    return found


def test_install_puts_every_file_in_place():
    env = dict(os.environ, DESTDIR=STAGE, PREFIX=PREFIX)
    for k in ("BINDIR", "SBINDIR", "LIBDIR", "LIBEXECDIR", "DOCDIR", "MANDIR", "UNITDIR",
              "SYSCONFDIR"):
        env.pop(k, None)
    # The release build whatever the variant (an ASan library needs the ASan
    # runtime in the program that loads it).
    run(["ninja", "-f", "build.ninja", "install"], env=env, cwd=ROOT)
    got = installed()
    assert got == EXPECTED, "\n".join(
        ["missing: %s" % k for k in sorted(set(EXPECTED) - set(got))] +
        ["unexpected: %s" % k for k in sorted(set(got) - set(EXPECTED))] +
        ["%s: %r, want %r" % (k, got[k], EXPECTED[k]) for k in sorted(set(got) & set(EXPECTED))
         if got[k] != EXPECTED[k]])
    # The library's SONAME is the name of its link.
    out = run(["readelf", "-d", ROOTED + "/lib/libdialogue-client.so.2.0.0"])
    assert "Library soname: [libdialogue-client.so.2]" in out, out
    # Nothing in the installed files points back into the build tree.
    with open(ROOTED + "/lib/pkgconfig/dialogue-client.pc") as f:
        pc = f.read()
    assert "prefix=%s\n" % PREFIX in pc and ROOT not in pc, pc
    # The unit starts the installed daemon on the config of PREFIX/etc.
    with open(ROOTED + "/lib/systemd/system/dialogued.service") as f:
        unit = f.read()
    assert "\nExecStart=%s/sbin/dialogued --config %s/etc/dialogue/dialogue.yaml\n" % (
        PREFIX, PREFIX) in unit, unit
    assert "@SBINDIR@" not in unit and "@SYSCONFDIR@" not in unit, unit
    # man finds the pages where they were put.
    for page in ("8 dialogued", "1 dialoguectl", "1 dialogue-bench", "5 dialogue.yaml"):
        out = run(["man", "-M", ROOTED + "/share/man", "-P", "cat"] + page.split(),
                  env=dict(os.environ, MANWIDTH="80"))
        assert out.split("\n", 1)[0].startswith(page.split()[1].upper() + "(" + page[0] + ")"), out
        # The footer names the version of VERSION, filled in at install.
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        assert "dialogue %s" % version in out.rstrip().rsplit("\n", 1)[-1], out[-300:]
    # The programs run from where they were put.
    for exe in ("sbin/dialogued", "bin/dialoguectl", "bin/dialogue-bench"):
        out = run([ROOTED + "/" + exe, "--version"])
        assert out.startswith(os.path.basename(exe) + " "), out
    # The .proto files compile from the installed folder alone.
    run(["protoc", "-I" + ROOTED + "/share/dialogue/proto", "-I/usr/include",
         "--descriptor_set_out=" + os.path.join(STAGE, "..", os.path.basename(STAGE) + ".pb"),
         "dialogue/v1/protocol.proto", "dialogue/v1/options.proto", "dialogue/v1/service.proto",
         "events/dashboard.proto"])
    os.unlink(os.path.join(STAGE, "..", os.path.basename(STAGE) + ".pb"))


PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <dialogue/client.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tiny PORT CA\n");
        return 2;
    }
    dlg_client_opts *o = NULL;
    dlg_client *c = NULL;
    char err[256] = "";
    uint64_t rtt = 0;
    int rc = dlg_client_opts_new(&o);
    if (rc == 0) rc = dlg_client_opts_set_host(o, "127.0.0.1");
    if (rc == 0) rc = dlg_client_opts_set_port(o, (unsigned)atoi(argv[1]));
    if (rc == 0) rc = dlg_client_opts_set_ca_file(o, argv[2]);
    if (rc == 0) rc = dlg_client_opts_set_reconnect(o, 0);
    if (rc == 0) rc = dlg_client_opts_set_client_name(o, "tiny");
    if (rc == 0)
        rc = dlg_sync_connect(o, 5000, &c, err, sizeof err);
    dlg_client_opts_free(o);
    if (rc == 0)
        rc = dlg_sync_ping(c, 5000, &rtt, err, sizeof err);
    printf("ping: %s%s%s\n", rc ? dlg_client_strerror(rc) : "ok", *err ? ": " : "", err);
    dlg_client_free(c);
    return rc ? 1 : 0;
}
"""


def test_program_built_against_the_installed_library():
    if not os.path.exists(ROOTED + "/include/dialogue/client.h"):
        test_install_puts_every_file_in_place()
    src = tempfile.mkdtemp(prefix="dlg-tiny-")
    atexit.register(shutil.rmtree, src, True)
    with open(os.path.join(src, "tiny.c"), "w") as f:
        f.write("#include <stdlib.h>\n#include <stdint.h>\n" + PROGRAM)
    # pkg-config finds the staged .pc; the sysroot maps its paths into DESTDIR.
    env = dict(os.environ, PKG_CONFIG_PATH=ROOTED + "/lib/pkgconfig",
               PKG_CONFIG_SYSROOT_DIR=STAGE)
    env.pop("PKG_CONFIG_LIBDIR", None)
    flags = run(["pkg-config", "--cflags", "--libs", "dialogue-client"], env=env).split()
    assert "-I" + ROOTED + "/include" in flags and "-L" + ROOTED + "/lib" in flags, flags
    assert "-ldialogue-client" in flags, flags
    static = run(["pkg-config", "--static", "--cflags", "--libs", "dialogue-client"],
                 env=env).split()
    cc = os.environ.get("CC", "gcc")
    run([cc, "-std=gnu11", "-Wall", "-Werror", "-o", "tiny", "tiny.c"] + flags, cwd=src)
    # Static: the archive itself, with what pkg-config says it needs.
    run([cc, "-std=gnu11", "-Wall", "-Werror", "-o", "tiny-static", "tiny.c"] +
        [a for a in static if a != "-ldialogue-client"] +
        [ROOTED + "/lib/libdialogue-client.a"] + [a for a in static if a.startswith("-l") and
                                                  a != "-ldialogue-client"], cwd=src)
    renv = dict(os.environ, LD_LIBRARY_PATH=ROOTED + "/lib")
    ldd = run(["ldd", os.path.join(src, "tiny")], env=renv)
    assert ROOTED + "/lib/libdialogue-client.so.2" in ldd, ldd
    assert "libdialogue-client" not in run(["ldd", os.path.join(src, "tiny-static")])
    d = Daemon()
    try:
        for exe, e in (("tiny", renv), ("tiny-static", None)):
            out = run([os.path.join(src, exe), str(d.port), os.path.join(CERTS, "ca.crt")],
                      env=e, timeout=30)
            assert out == "ping: ok\n", out
    finally:
        d.stop()
    # With the daemon gone the program says so (it did talk to it above).
    p = subprocess.run([os.path.join(src, "tiny"), str(d.port), os.path.join(CERTS, "ca.crt")],
                       env=renv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stdout.startswith("ping: "), p


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 300)
