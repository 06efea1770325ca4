"""The manual pages (issue 22) say what the programs do: every flag in each
program's --help (and dialoguectl's commands' --help) is in its page and
the page names no other; the keys of dialogue.yaml(5) are the keys
docs/config.md documents and the keys the loader accepts (asked of the
loader itself: a probe file with an unknown key in every mapping, whose
errors list the keys each mapping takes). The pages render without a
groff warning."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, CTL, DAEMON, ROOT, run_tests  # noqa: E402

MAN = os.path.join(ROOT, "man")
BENCH = os.path.join(BUILD, "bin", "dialogue-bench")
LONG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
# Short flags where an option is defined: "  -t, --check-config".
SHORT = re.compile(r"^\s+-([A-Za-z]), --", re.M)
CTL_COMMANDS = ("ping", "rooms", "schema", "sub", "history", "trigger", "dashboard", "token")


def helptext(*args):
    p = subprocess.run(list(args) + ["--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (args, p)
    return p.stdout + p.stderr


def help_flags(text):
    return {"--" + f for f in LONG.findall(text)} | {"-" + f for f in SHORT.findall(text)}


def man_flags(page):
    """Every flag the page names: troff writes a dash as \\-."""
    with open(os.path.join(MAN, page)) as f:
        text = f.read().replace("\\-", "-")
    text = "\n".join(l for l in text.splitlines() if not l.startswith('.\\"'))
    shorts = set(re.findall(r"^\.BR? -([A-Za-z])\b", text, re.M))
    return {"--" + f for f in LONG.findall(text)} | {"-" + f for f in shorts}


def same(what, documented, actual):
    missing, extra = sorted(actual - documented), sorted(documented - actual)
    assert not missing and not extra, "%s: not documented: %s; documented but not there: %s" % (
        what, missing, extra)


def test_dialogued_flags():
    same("dialogued(8)", man_flags("dialogued.8"), help_flags(helptext(DAEMON)))


def test_dialoguectl_flags():
    flags = help_flags(helptext(CTL))
    for cmd in CTL_COMMANDS:
        flags |= help_flags(helptext(CTL, cmd))
    same("dialoguectl(1)", man_flags("dialoguectl.1"), flags)


def test_bench_flags():
    same("dialogue-bench(1)", man_flags("dialogue-bench.1"), help_flags(helptext(BENCH)))


def norm(path):
    return re.sub(r"\[\d+\]", "[]", path)


def man_keys():
    """Key paths of dialogue.yaml(5): ".SS PATH" sections of ".TP / .B key"."""
    keys, ctx, tp = set(), None, False
    with open(os.path.join(MAN, "dialogue.yaml.5")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".SS "):
                title = line[4:].strip('"')
                ctx = "" if title == "Top level" else title
            elif line.startswith(".SH "):
                ctx = None
            elif line == ".TP":
                tp = True
                continue
            elif tp and ctx is not None and line.startswith(".B "):
                keys.add((ctx + "." if ctx else "") + line[3:].strip())
            tp = False
    return keys


def doc_keys():
    """Key paths of docs/config.md: the tables under a heading or a caption
    naming the mapping (`limits`, `auth.jwt.keys[]`:), "Top level" for the
    root."""
    keys, ctx = set(), None
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                m = re.search(r"`([a-z_.\[\]]+)`", line)
                ctx = m.group(1) if m else ("" if "Top level" in line else None)
                continue
            m = re.match(r"^`([a-z_.\[\]]+)`.*:$", line)
            if m:
                ctx = m.group(1)
                continue
            m = re.match(r"^\| `([a-z_]+)` \|", line)
            if m and ctx is not None:
                keys.add((ctx + "." if ctx else "") + m.group(1))
    return keys


PROBE = """zz_probe: 1
listen:
  - {zz_probe: 1}
limits: {zz_probe: 1}
auth:
  zz_probe: 1
  jwt:
    zz_probe: 1
    keys: [{zz_probe: 1}]
  client_cert:
    zz_probe: 1
    roles: [{zz_probe: 1}]
room_admin: {zz_probe: 1}
rooms:
  - zz_probe: 1
    trigger_events: [{zz_probe: 1}]
    delivery: [{zz_probe: 1}]
    rate_limit: {zz_probe: 1}
    history: [{zz_probe: 1}]
auto_join: [{zz_probe: 1}]
metrics:
  zz_probe: 1
  alerts: [{zz_probe: 1}]
cluster:
  zz_probe: 1
  tls: {zz_probe: 1}
  log: {zz_probe: 1}
http: {zz_probe: 1}
admin: {zz_probe: 1}
"""
# Every mapping of the file, as the probe reaches it.
MAPPINGS = {"", "listen[]", "limits", "auth", "auth.jwt", "auth.jwt.keys[]", "auth.client_cert",
            "auth.client_cert.roles[]", "room_admin", "rooms[]", "rooms[].trigger_events[]",
            "rooms[].delivery[]", "rooms[].rate_limit", "rooms[].history[]", "auto_join[]",
            "metrics", "metrics.alerts[]", "cluster", "cluster.tls", "cluster.log",
            "http", "admin"}


def loader_keys():
    path = os.path.join(tempfile.mkdtemp(prefix="dlg-probe-"), "probe.yaml")
    with open(path, "w") as f:
        f.write(PROBE)
    p = subprocess.run([DAEMON, "--check-config", "--config", path], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, p
    keys, seen = set(), set()
    for line in p.stderr.splitlines():
        m = re.match(r'^[^:]+:\d+:\d+: (?:([^:]+): )?unknown key "zz_probe" '
                     r'\(expected one of: ([^)]*)\)$', line)
        if not m:
            continue
        ctx = norm(m.group(1) or "")
        seen.add(ctx)
        for k in m.group(2).split(", "):
            keys.add((ctx + "." if ctx else "") + k)
    assert seen == MAPPINGS, "the probe reached %s" % sorted(seen)
    return keys


def test_config_keys_man_docs_loader():
    loader = loader_keys()
    # Sanity: the three lists are of the same kind of thing.
    assert "rooms[].history[].max_age_seconds" in loader and "log_file" in loader, loader
    same("dialogue.yaml(5) against the loader", man_keys(), loader)
    same("docs/config.md against the loader", doc_keys(), loader)


def test_pages_render_cleanly():
    for page in ("dialogued.8", "dialoguectl.1", "dialogue-bench.1", "dialogue.yaml.5"):
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(MAN, page)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stderr == "", (page, p.stderr)
        with open(os.path.join(MAN, page)) as f:
            head = [l for l in f if l.startswith(".TH ")][0].split()
        name, section = page.rsplit(".", 1)
        assert head[1].replace("\\-", "-") == name.upper() and head[2] == section, (page, head)


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
