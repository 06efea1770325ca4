"""dialoguectl as people coming from mosquitto_sub/pub, nats and grpcurl use
it: numbers printed in their shortest exact form (a float field 2.32 as
2.32), `sub --raw` and `--format`, `trigger -` streaming one JSON object per
line with a summary, bytes published with --raw and --base64, `schema
--describe`, the room's epoch in JSON lines, bash completion (in a real
interactive bash, inside tmux), and `--server [::1]:PORT` verifying against
the development certificates."""
import atexit
import base64
import json
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (BUILD, CERTS, CTL, ROOT, Daemon, run_tests,  # noqa: E402
                     write_config)

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
schemas: [{share}/dashboard.pb]
auth: {anonymous: true}
rooms:
  - id: typed
    events: [metrics:update, alert:triggered]
    default_subscriptions: [metrics:update, alert:triggered]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: metrics:update, limit: 50}
      - {event: alert:triggered, limit: 50}
  - id: any
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 50}
"""
ALLTYPES = os.path.join(BUILD, "tests", "pbjson", "alltypes.pb")
D = None
SESSION = "dlg-cli-%d" % os.getpid()


def setup():
    global D
    D = Daemon(config=write_config(CONFIG))


def env(server=None):
    return dict(os.environ, DIALOGUE_SERVER=server or "127.0.0.1:%d" % D.port,
                DIALOGUE_CA=os.path.join(CERTS, "ca.crt"), DIALOGUE_TOKEN="")


def ctl(*args, input=None, check=True, binary=False):
    p = subprocess.run([CTL] + list(args), env=env(), input=input, capture_output=True,
                       timeout=60, text=not binary,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, "%s exited %d: %s" % (args, p.returncode, p.stderr)
    return p


def sub_start(*args):
    """A sub in the background, once it is a member (its JSON lines or
    bytes come later)."""
    p = subprocess.Popen([CTL, "-v"] + list(args), env=env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # A failed test must not leave a sub behind (it would reconnect forever).
    atexit.register(lambda: p.poll() is None and p.kill())
    # -v says "subscribed to ROOM" once joined; read stderr up to it.
    line = b""
    deadline = time.time() + 20
    while b"subscribed to" not in line and time.time() < deadline:
        line = p.stderr.readline()
        if not line and p.poll() is not None:
            break
    assert b"subscribed to" in line, (line, p.poll())
    return p


def sub_end(p):
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    return out


METRICS = '{"cpu":0.1,"memory":2.32,"requests":1e-05,"errors":100,"latency":0.013}'


def test_numbers_print_shortest_in_every_command():
    s = sub_start("sub", "typed", "metrics:update", "--count", "1")
    seq = int(re.match(r"ok seq=(\d+)", ctl("trigger", "typed", "metrics:update",
                                            METRICS).stdout).group(1))
    want = '"data":{"cpu":0.1,"memory":2.32,"requests":1e-05,"errors":100.0,"latency":0.013}'
    line = sub_end(s).decode()
    assert want in line, line
    h = ctl("history", "typed", "metrics:update", "--since", str(seq - 1), "--json").stdout
    assert want in h, h
    table = ctl("history", "typed", "metrics:update", "--since", str(seq - 1)).stdout
    assert want[len('"data":'):] in table, table


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_float_fields_print_their_float32_form():
    # test:all (tests/pbjson/alltypes.proto) has float and double fields;
    # room `any` takes any event, so --schema encodes and decodes it.
    payload = '{"fFloat":2.32,"fDouble":2.32,"rFloat":[0.1,1e-07,3.4e+38,-0.0,5]}'
    s = sub_start("sub", "any", "test:all", "--count", "1", "--schema", ALLTYPES)
    ctl("trigger", "any", "test:all", payload, "--schema", ALLTYPES)
    line = sub_end(s).decode()
    assert '"data":{"fDouble":2.32,"fFloat":2.32,"rFloat":[0.1,1e-07,3.4e+38,-0.0,5.0]}' in line, \
        line
    # Valid JSON, and every float reads back as the float32 that was sent.
    data = json.loads(line)["data"]
    assert f32(data["fFloat"]) == f32(2.32)
    assert [f32(x) for x in data["rFloat"]] == [f32(x) for x in (0.1, 1e-07, 3.4e+38, -0.0, 5)]
    h = ctl("history", "any", "test:all", "--limit", "1", "--json", "--schema", ALLTYPES).stdout
    assert '"fFloat":2.32' in h and '"rFloat":[0.1,1e-07,3.4e+38,-0.0,5.0]' in h, h


def test_sub_format_templates():
    s = sub_start("sub", "typed", "--count", "2", "--format",
                  r"{{.seq}} {{.event}} {{ .data.cpu }}\t[{{.data.nope}}] {{.from_kind}}")
    a = ctl("trigger", "typed", "metrics:update", METRICS).stdout
    b = ctl("trigger", "typed", "alert:triggered",
            '{"alertId":"f1","severity":"medium","message":"m","timestamp":"7"}').stdout
    seq_a = a.split()[1].split("=")[1]
    seq_b = b.split()[1].split("=")[1]
    out = sub_end(s).decode()
    assert out == "%s metrics:update 0.1\t[] anonymous\n%s alert:triggered \t[] anonymous\n" % (
        seq_a, seq_b), repr(out)
    # {{.}} is the whole JSON line; nested objects print as JSON.
    s = sub_start("sub", "typed", "alert:triggered", "--count", "1", "--format",
                  "{{.data}}|{{.}}")
    ctl("trigger", "typed", "alert:triggered",
        '{"alertId":"f2","severity":"low","message":"m2","timestamp":"8"}')
    data, whole = sub_end(s).decode().rstrip("\n").split("|", 1)
    assert json.loads(data) == {"alertId": "f2", "severity": "low", "message": "m2",
                                "timestamp": "8"}, data
    assert json.loads(whole)["data"] == json.loads(data)
    # A template that cannot work is refused before connecting.
    for bad, why in (("{{.seq", "not closed"), ("{{seq}}", "expected a path"),
                     ("{{.sequence}}", 'no key "sequence"'), ("{{.data..cpu}}", "empty key")):
        p = ctl("--server", "127.0.0.1:1", "sub", "typed", "--format", bad, check=False)
        assert p.returncode == 2 and why in p.stderr, (bad, p.stderr)
    p = ctl("sub", "typed", "--raw", "--format", "{{.seq}}", check=False)
    assert p.returncode == 2 and "exclude each other" in p.stderr, p.stderr


def test_raw_bytes_in_and_out():
    blob = bytes(range(256)) + b"\n\x00end"
    s = sub_start("sub", "any", "blob", "--count", "1", "--raw")
    p = ctl("trigger", "any", "blob", "--raw", "-", input=blob, binary=True)
    assert p.stdout.startswith(b"ok seq="), p.stdout + p.stderr
    assert sub_end(s) == blob
    # --base64 (blanks and line breaks ignored), and --raw from an argument.
    s = sub_start("sub", "any", "b64", "text", "--count", "2", "--raw")
    wrapped = base64.encodebytes(blob).decode()  # 76 columns, newlines
    ctl("trigger", "any", "b64", "--base64", wrapped)
    ctl("trigger", "any", "text", "--raw", "hello world")
    assert sub_end(s) == blob + b"hello world"
    # JSON lines show what cannot be decoded as base64, with the reason.
    line = ctl("history", "any", "text", "--limit", "1", "--json").stdout
    j = json.loads(line)
    assert base64.b64decode(j["data_b64"]) == b"hello world" and j["decode_error"], j
    # {{.payload}}: the bytes in a template, a newline after each (as
    # mosquitto_sub prints them).
    s = sub_start("sub", "any", "text", "--count", "2", "--format", "{{.payload}}")
    ctl("trigger", "any", "text", "--raw", "one")
    ctl("trigger", "any", "text", "--raw", "two")
    assert sub_end(s) == b"one\ntwo\n"
    p = ctl("trigger", "any", "x", "--base64", "not base64!", check=False)
    assert p.returncode == 2 and "not base64" in p.stderr, p.stderr


def test_trigger_reads_json_lines_until_eof():
    s = sub_start("sub", "typed", "metrics:update", "--count", "3", "--format",
                  "{{.data.cpu}}")
    lines = "\n".join([
        '{"cpu":1,"memory":1,"requests":1,"errors":0,"latency":1}',
        'not json',
        '{"cpu":150,"memory":1,"requests":1,"errors":0,"latency":1}',
        '',
        '{"cpu":2,"memory":1,',                      # one object over two lines
        ' "requests":1,"errors":0,"latency":1}',
        '{"cpu":"x"}',
        '{"cpu":3,"memory":1,"requests":1,"errors":0,"latency":1}']) + "\n"
    p = ctl("trigger", "typed", "metrics:update", "-", input=lines, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    oks = p.stdout.splitlines()
    assert len(oks) == 3 and all(re.fullmatch(r"ok seq=\d+ recipients=\d+", x) for x in oks), oks
    seqs = [int(x.split()[1].split("=")[1]) for x in oks]
    assert seqs == sorted(seqs), seqs
    err = p.stderr
    assert "stdin line 2: not JSON" in err, err
    assert "stdin line 3: INVALID_ARGUMENT: metrics:update.cpu: 150 is above max 100" in err, err
    assert "stdin line 7: metrics:update: cpu: expected a number, got string" in err, err
    assert ("trigger: 6 messages from stdin: 3 acked (seq %d..%d), 1 refused, 2 bad"
            % (seqs[0], seqs[-1])) in err, err
    assert sub_end(s) == b"1.0\n2.0\n3.0\n"
    # The same from a file (`- < events.ndjson`, as --help shows), read
    # in pieces: more lines than the 64 triggers kept in flight.
    path = os.path.join(os.path.dirname(D.port_file), "events.ndjson")
    with open(path, "w") as f:
        for i in range(300):
            f.write('{"cpu":%d,"memory":1,"requests":1,"errors":0,"latency":1}\n' % (i % 100))
    with open(path) as f:
        p = subprocess.run([CTL, "trigger", "typed", "metrics:update", "-"], env=env(), stdin=f,
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 300, p.stdout[-300:]
    assert "300 messages from stdin: 300 acked" in p.stderr, p.stderr
    # All good: exit 0; nothing: exit 0 and says so.
    p = ctl("trigger", "typed", "metrics:update", "-",
            input='{"cpu":4,"memory":1,"requests":1,"errors":0,"latency":1}\n')
    assert p.stdout.startswith("ok seq=") and "1 message from stdin: 1 acked" in p.stderr
    p = ctl("trigger", "typed", "metrics:update", "-", input="")
    assert p.stdout == "" and "no JSON object on stdin" in p.stderr, p.stderr
    # Started with stdin closed: the connection must not take fd 0 (it was
    # read as input, and libuv aborted closing it).
    p = subprocess.run(["bash", "-c", '"$0" trigger typed metrics:update - <&-', CTL],
                       env=env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "no JSON object on stdin" in p.stderr, (p.returncode, p.stderr)


def test_trigger_streams_from_a_pipe_as_lines_come():
    # Each line is published when it arrives, not at EOF.
    env_ = env()
    t = subprocess.Popen([CTL, "trigger", "typed", "alert:triggered", "-"], env=env_,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        t.stdin.write('{"alertId":"s1","severity":"low","message":"first","timestamp":"1"}\n')
        t.stdin.flush()
        line = t.stdout.readline()  # the Ack, with stdin still open
        assert line.startswith("ok seq="), line
        t.stdin.write('{"alertId":"s2","severity":"low","message":"second","timestamp":"2"}\n')
        t.stdin.close()
        out = line + t.stdout.read()
        err = t.stderr.read()
        t.wait(timeout=30)
    finally:
        if t.poll() is None:
            t.kill()
    assert t.returncode == 0 and len(out.splitlines()) == 2, (out, err)
    assert "2 messages from stdin: 2 acked" in err, err


def test_schema_describe():
    out = ctl("schema", "--describe", "metrics:update").stdout
    assert out.splitlines()[0] == "event metrics:update: message dialogue.dashboard.MetricsUpdate"
    assert re.search(r"^\s+cpu\s+cpu\s+1\s+double\s+optional\s+required, min 0, max 100$", out,
                     re.M), out
    assert re.search(r"^\s+requests\s+requests\s+3\s+double\s+optional\s+required, min 0$", out,
                     re.M), out
    out = ctl("schema", "--describe", "alert:triggered").stdout
    assert re.search(r"^\s+alert_id\s+alertId\s+1\s+string\s+optional\s+"
                     r"required, min_len 1, max_len 128, valid UTF-8$", out, re.M), out
    assert "enum dialogue.dashboard.Severity: low=0 medium=1 high=2 critical=3" in out, out
    j = json.loads(ctl("schema", "--describe", "alert:triggered", "--json").stdout)
    f = j["messages"]["dialogue.dashboard.AlertTriggered"][0]
    assert f == {"name": "alert_id", "json_name": "alertId", "number": 1, "type": "string",
                 "label": "optional", "rules": {"required": True, "min_len": 1,
                                                "max_len": 128}}, f
    assert j["enums"]["dialogue.dashboard.Severity"]["critical"] == 3
    p = ctl("schema", "--describe", "no:such", check=False)
    assert p.returncode == 2 and 'no event "no:such"' in p.stderr, p.stderr


def test_epoch_in_json_lines():
    s = sub_start("sub", "typed", "alert:triggered", "--count", "1")
    ctl("trigger", "typed", "alert:triggered",
        '{"alertId":"e1","severity":"low","message":"m","timestamp":"1"}')
    live = json.loads(sub_end(s))
    kept = json.loads(ctl("history", "typed", "alert:triggered", "--limit", "1",
                          "--json").stdout)
    assert list(live)[:8] == ["room", "event", "from", "from_kind", "ts", "seq", "epoch",
                              "data"], list(live)
    assert isinstance(live["epoch"], int) and live["epoch"] > 0, live
    assert kept["epoch"] == live["epoch"] and kept["seq"] == live["seq"], (kept, live)


def complete(line):
    """What the completion function answers for line (cursor at its end),
    with COMP_WORDS split as bash splits them (blanks, then ':')."""
    script = r'''
source %s/cli/dialoguectl.bash
line=%s
COMP_LINE=$line; COMP_POINT=${#line}
read -ra w <<< "$(printf '%%s' "$line" | sed -e 's/:/ : /g')"
[[ $line == *" " ]] && w+=("")
COMP_WORDS=("${w[@]}"); COMP_CWORD=$((${#w[@]} - 1))
_dialoguectl
printf '%%s\n' "${COMPREPLY[@]}"
''' % (ROOT, "'" + line.replace("'", "'\\''") + "'")
    p = subprocess.run(["bash", "--norc", "-c", script], env=dict(
        env(), PATH=os.path.dirname(CTL) + ":" + os.environ["PATH"]), capture_output=True,
        text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [x for x in p.stdout.splitlines() if x]


def test_bash_completion_function():
    assert complete("dialoguectl su") == ["sub"]
    assert "--server" in complete("dialoguectl --")
    assert complete("dialoguectl sub --ra") == ["--raw"]
    assert complete("dialoguectl schema --desc") == ["--describe"]
    assert complete("dialoguectl sub ty") == ["typed"]           # the server's rooms
    assert complete("dialoguectl sub typed al") == ["alert:triggered"]
    assert complete("dialoguectl sub typed metrics:up") == ["update"]  # after bash's ':'
    assert complete("dialoguectl trigger typed metrics:update ") == ["-"]
    assert complete("dialoguectl schema --describe ale") == ["alert:triggered"]
    assert complete("dialoguectl --server 127.0.0.1:1 sub ty") == []  # no server: nothing


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-u", "-L", SESSION] + list(args), capture_output=True,
                          text=True, encoding="utf-8", timeout=10, check=check)


def test_bash_completion_in_an_interactive_shell():
    # As a person meets it: an interactive bash with the script sourced,
    # Tab pressed after a partial event name.
    rc = os.path.join(os.path.dirname(D.port_file), "bashrc")
    with open(rc, "w") as f:
        f.write("PS1='$ '\nexport PATH=%s:$PATH DIALOGUE_SERVER=127.0.0.1:%d DIALOGUE_CA=%s\n"
                "source %s/cli/dialoguectl.bash\n" % (
                    os.path.dirname(CTL), D.port, os.path.join(CERTS, "ca.crt"), ROOT))
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "10",
         "bash --rcfile %s -i" % rc)
    try:
        tmux("send-keys", "-t", SESSION, "dialoguectl sub typed metrics:up", "Tab")
        deadline = time.time() + 10
        text = ""
        while time.time() < deadline and "metrics:update" not in text:
            time.sleep(0.2)
            text = tmux("capture-pane", "-p", "-t", SESSION).stdout
        assert "$ dialoguectl sub typed metrics:update" in text, text
    finally:
        tmux("kill-server", check=False)


def test_completion_is_installed():
    # `ninja install` puts it where bash-completion looks (checked with the
    # install itself in test_examples.py); here: the tree's copy is the one
    # cli/install.sh installs.
    with open(os.path.join(ROOT, "cli", "install.sh")) as f:
        assert "share/bash-completion/completions/dialoguectl" in f.read()


def test_ipv6_loopback_with_the_dev_certificates():
    # The --help example: --server [::1]:PORT, the server certificate made
    # by tools/devcerts.sh (dlgtest's CERTS) carries IP ::1.
    d6 = Daemon("--listen", "[::1]:0", config=write_config(CONFIG))
    try:
        p = subprocess.run([CTL, "--server", "[::1]:%d" % d6.port, "ping"], env=env(),
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("pong from [::1]:%d in " % d6.port), p.stdout
    finally:
        assert d6.stop() == 0
    assert "[::1]:3000" in ctl("--help").stdout


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
