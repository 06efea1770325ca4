"""The admin listener (issue 22, docs/operations.md): /metrics in the
Prometheus text format, /healthz, /readyz; 404 for everything else, no
WebSocket or native protocol there; the bearer token (401); TLS; a
non-loopback address without TLS and a token refused at load. The counters
move when clients connect on each transport, trigger, and are cut as slow
consumers; `promtool check metrics` accepts a scrape; a real Prometheus
server scrapes the daemon and its query API returns the series."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (CERTS, DAEMON, Conn, Daemon, back_up, daemon_closed,  # noqa: E402
                     joined_room, open_room_config, pb, run_tests, wait_until, write_config)
from wsclient import WsConn, read_response  # noqa: E402

TOKEN = "s3cret-admin-token-0123456789"


def admin_port(d):
    m = re.search(r"admin listener on \S+ port (\d+)", d.logtext())
    assert m, d.logtext()[-2000:]
    return int(m.group(1))


def get(port, path, method="GET", token=None, tls=False, headers=None):
    """One request on a fresh connection: (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
        assert s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol()
    req = "%s %s HTTP/1.1\r\nHost: localhost\r\n" % (method, path)
    if token is not None:
        req += "Authorization: Bearer %s\r\n" % token
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s.sendall((req + "\r\n").encode())
    if method == "HEAD":
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
        h = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in head[1:])}
        s.close()
        return int(head[0].split()[1]), h, b""
    st, h, body, _ = read_response(s)
    s.close()
    return st, h, body


def scrape(port, **kw):
    st, h, body = get(port, "/metrics", **kw)
    assert st == 200, (st, body)
    assert h["content-type"] == "text/plain; version=0.0.4; charset=utf-8", h
    return body.decode()


def value(text, name, **labels):
    """The sample of name with exactly these labels (in any order)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"([a-z_:]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    raise AssertionError("no sample %s%s in:\n%s" % (name, labels, text[:3000]))


CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
limits:
  max_frame: 65536
  max_pending_bytes: 262144
  soft_pending_bytes: 131072
rooms:
  - id: r
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    delivery:
      - {event: tick, policy: latest}
  - id: quiet
    events: ["*"]
    join: ["*"]
    trigger: ["*"]
room_admin:
  create: ["*"]
  delete: ["*"]
admin:
  listen: 127.0.0.1:0
"""

D = Daemon(config=write_config(CONFIG))
A = admin_port(D)


def test_healthz_readyz_and_404_elsewhere():
    st, h, body = get(A, "/healthz")
    assert (st, body) == (200, b"ok\n"), (st, body)
    assert h["cache-control"] == "no-store", h
    st, _, body = get(A, "/readyz")
    assert (st, body) == (200, b"ready\n"), (st, body)
    for path in ["/", "/metrics/x", "/v1/ws", "/index.html", "/healthz/"]:
        st, _, body = get(A, path)
        assert st == 404, (path, st, body)
    # HEAD: the headers of GET, no body.
    st, h, _ = get(A, "/metrics", method="HEAD")
    assert st == 200 and int(h["content-length"]) > 1000, h
    st, h, _ = get(A, "/metrics", method="DELETE")
    assert st == 405 and "GET" in h["allow"], (st, h)


def test_no_websocket_and_no_native_protocol_on_the_admin_listener():
    st, _, body = get(A, "/v1/ws", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": "dialogue.v1"})
    assert st == 404, (st, body)
    # A dialogue/1 frame (first byte 0) is no HTTP request here.
    s = socket.create_connection(("127.0.0.1", A), timeout=5)
    s.sendall(b"\x00\x00\x00\x00\x02\x0a\x00")
    st, h, body, _ = read_response(s)
    assert st == 400 and b"malformed HTTP request" in body, (st, body)
    s.close()
    # HTTP/2 with prior knowledge is not spoken either.
    s = socket.create_connection(("127.0.0.1", A), timeout=5)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    st, h, body, _ = read_response(s)
    assert st in (400, 505), (st, body)
    s.close()


def test_families_have_help_and_type_and_promtool_accepts_them():
    text = scrape(A)
    families = {"dialogue_connections": "gauge", "dialogue_handshakes_total": "counter",
                "dialogue_handshake_failures_total": "counter",
                "dialogue_auth_refusals_total": "counter", "dialogue_rooms": "gauge",
                "dialogue_room_members": "gauge", "dialogue_triggers_total": "counter",
                "dialogue_deliveries_total": "counter",
                "dialogue_received_bytes_total": "counter",
                "dialogue_sent_bytes_total": "counter",
                "dialogue_slow_consumer_cuts_total": "counter",
                "dialogue_conflated_total": "counter",
                "dialogue_pending_output_bytes": "gauge", "dialogue_history_events": "gauge",
                "dialogue_fanout_latency_seconds": "histogram"}
    for name, kind in families.items():
        assert "# HELP %s " % name in text, name
        assert "# TYPE %s %s\n" % (name, kind) in text, name
    # No cluster on one node: no cluster series.
    assert "dialogue_cluster_" not in text
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", (
        p.returncode, p.stdout, p.stderr)


def test_counters_move_on_every_transport():
    from dlggrpc import channel, stub, svc
    before = scrape(A)
    hs = {t: value(before, "dialogue_handshakes_total", transport=t)
          for t in ("native", "websocket", "grpc")}
    n = joined_room(D.port, "r", "native-sub")
    w = WsConn(D.port)
    w.hello(name="ws-sub")
    rid = w.send(join=pb.Join(room="r"))
    w.expect("joined", rid)
    ch = channel(D.port)
    sub = stub(ch).Subscribe(svc.SubscribeRequest(room="r"), timeout=20)
    sub.initial_metadata()
    mid = scrape(A)
    for t in ("native", "websocket"):
        assert value(mid, "dialogue_handshakes_total", transport=t) == hs[t] + 1, t
    assert value(mid, "dialogue_handshakes_total", transport="grpc") >= hs["grpc"] + 1
    assert value(mid, "dialogue_connections", transport="native", state="ready") >= 1
    assert value(mid, "dialogue_connections", transport="websocket", state="ready") == 1
    assert value(mid, "dialogue_connections", transport="grpc", state="ready") >= 1
    assert value(mid, "dialogue_room_members", room="r") == 3, mid
    trig0 = value(mid, "dialogue_triggers_total", room="r", event="_other")
    deliv0 = value(mid, "dialogue_deliveries_total", room="r", event="_other")
    count0 = value(mid, "dialogue_fanout_latency_seconds_count")
    in0 = value(mid, "dialogue_received_bytes_total")
    out0 = value(mid, "dialogue_sent_bytes_total")
    # The publisher is a member too, subscribed to all: 4 recipients each.
    p = joined_room(D.port, "r", "pub")
    for i in range(5):
        p.trigger("r", "hello", b"x%d" % i)
    ev = next(sub)
    assert ev.event == "hello", ev
    for c in (n, w):
        got = 0
        while got < 5:
            f = c.recv()
            got += f.WhichOneof("msg") == "event" and f.event.event == "hello"
    after = scrape(A)
    # "hello" has no slot (nobody subscribed by name): counted as _other, by
    # recipients; triggers are by room.
    assert value(after, "dialogue_triggers_total", room="r", event="_other") == trig0 + 5
    assert value(after, "dialogue_deliveries_total", room="r", event="_other") == deliv0 + 20, \
        (deliv0, after)
    assert 'event="hello"' not in after  # no slot: a name nobody subscribed to
    assert value(after, "dialogue_fanout_latency_seconds_count") == count0 + 5
    assert value(after, 'dialogue_fanout_latency_seconds_bucket', le="+Inf") == count0 + 5
    assert value(after, "dialogue_received_bytes_total") > in0
    assert value(after, "dialogue_sent_bytes_total") > out0 + 5 * 3
    # A room made at run time is counted under room="_dynamic".
    dyn0 = value(after, "dialogue_triggers_total", room="_dynamic", event="_all")
    q = Conn(D.port)
    q.hello(name="creator")
    rid = q.send(create_room=pb.CreateRoom(room="made-now", events=["*"], join=["*"],
                                           trigger=["*"]))
    q.expect("ack", rid)
    rid = q.send(join=pb.Join(room="made-now"))
    q.expect("joined", rid)
    q.trigger("made-now", "e", b"z")
    later = scrape(A)
    assert value(later, "dialogue_rooms", kind="dynamic") == 1, later
    assert value(later, "dialogue_triggers_total", room="_dynamic", event="_all") == dyn0 + 1
    assert 'room="made-now"' not in later
    sub.cancel()
    ch.close()
    for c in (n, w, p, q):
        c.close()


def test_auth_refusals_and_handshake_failures_move():
    d = Daemon(config=write_config(CONFIG.replace("auth: {anonymous: true}",
                                                  "auth: {anonymous: false}")))
    try:
        a = admin_port(d)
        c = Conn(d.port, handshake=False)
        c.send(hello=pb.Hello(protocol_version=1, client_name="x"))
        c.expect_error("UNAUTHENTICATED")
        c.close()
        # A TLS handshake that fails: plain bytes where TLS is spoken.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"\x16\x03\x01\x00\x05hello-not-tls" * 4)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
        text = None

        def moved():
            nonlocal text
            text = scrape(a)
            return (value(text, "dialogue_handshake_failures_total", reason="tls") >= 1 and
                    value(text, "dialogue_handshake_failures_total", reason="auth") == 1)
        assert wait_until(moved, within=10), text
        assert value(text, "dialogue_auth_refusals_total", reason="no_credentials") == 1
        assert value(text, "dialogue_auth_refusals_total", reason="token") == 0
    finally:
        assert d.stop() == 0


def test_slow_consumer_cut_and_conflation_are_counted():
    text0 = scrape(A)
    cuts0 = value(text0, "dialogue_slow_consumer_cuts_total")
    reader = joined_room(D.port, "r", "slow", rcvbuf=4096)
    p = joined_room(D.port, "r", "pub2")
    rid = p.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
    p.expect("joined", rid)
    payload = b"y" * 16000

    def send():
        if "slow consumer" not in D.logtext():
            for _ in range(16):
                p.trigger("r", "e", payload)
    try:
        back_up(D.port, reader, send, 16 * 16000, beyond=512 * 1024)
    except (AssertionError, EOFError, OSError):
        pass
    assert wait_until(lambda: "slow consumer" in D.logtext()), D.logtext()[-2000:]
    assert daemon_closed(D.port, reader)
    text = scrape(A)
    assert value(text, "dialogue_slow_consumer_cuts_total") == cuts0 + 1, text
    # "latest" events to a reader that does not read replace each other.
    conf0 = value(text, "dialogue_conflated_total")
    r2 = joined_room(D.port, "r", "slow2", rcvbuf=4096)

    def send_latest():
        for _ in range(16):
            p.trigger("r", "e", payload)  # fills the socket
        for i in range(50):
            p.trigger("r", "tick", b"t%d" % i)
    try:
        back_up(D.port, r2, send_latest, 16 * 16000, beyond=128 * 1024)
    except (AssertionError, EOFError, OSError):
        pass
    assert wait_until(lambda: value(scrape(A), "dialogue_conflated_total") > conf0)
    assert value(scrape(A), "dialogue_pending_output_bytes") >= 0
    for c in (p, r2):
        c.close()


def make_token_file(text=TOKEN):
    d = tempfile.mkdtemp(prefix="dlg-tok-")
    path = os.path.join(d, "admin.token")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def test_bearer_token_and_tls():
    cfg = CONFIG.replace("admin:\n  listen: 127.0.0.1:0\n",
                         "admin:\n  listen: 127.0.0.1:0\n  cert: {certs}/server.crt\n"
                         "  key: {certs}/server.key\n  token_file: %s\n" % make_token_file())
    d = Daemon(config=write_config(cfg))
    try:
        a = admin_port(d)
        for tok in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
            st, h, body = get(a, "/metrics", token=tok, tls=True)
            assert st == 401, (tok, st, body)
            assert h["www-authenticate"].startswith("Bearer"), h
        st, _, body = get(a, "/healthz", token=TOKEN, tls=True)
        assert (st, body) == (200, b"ok\n")
        assert "dialogue_connections" in scrape(a, token=TOKEN, tls=True)
        # Plaintext is not spoken on a TLS admin listener.
        s = socket.create_connection(("127.0.0.1", a), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        assert b"200 OK" not in data, data
        s.close()
    finally:
        assert d.stop() == 0


def test_non_loopback_without_tls_and_token_is_refused_at_load():
    cfg = write_config(CONFIG.replace("listen: 127.0.0.1:0\n\"\"\"", "")
                       .replace("admin:\n  listen: 127.0.0.1:0\n",
                                "admin:\n  listen: 0.0.0.0:9464\n"))
    p = subprocess.run([DAEMON, "--config", cfg], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    line = [i + 1 for i, ln in enumerate(open(cfg).read().split("\n"))
            if "0.0.0.0:9464" in ln][0]
    assert re.search(r"%s:%d:\d+: admin\.listen: .*not a loopback address" %
                     (re.escape(cfg), line), p.stderr), p.stderr
    # --check-config says the same.
    p = subprocess.run([DAEMON, "--check-config", "--config", cfg], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "%s:%d:" % (cfg, line) in p.stderr, p.stderr
    # TLS without a token is not enough either.
    cfg2 = write_config(CONFIG.replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 0.0.0.0:9464\n  cert: {certs}/server.crt\n"
        "  key: {certs}/server.key\n"))
    p = subprocess.run([DAEMON, "--config", cfg2], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "not a loopback address" in p.stderr, p.stderr
    # --admin with a non-loopback address and no TLS is refused as well.
    p = subprocess.run([DAEMON, "--listen", "127.0.0.1:0", "--plaintext",
                        "--admin", "0.0.0.0:0"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "not a loopback address" in p.stderr, p.stderr


def test_check_config_checks_the_admin_files():
    short = make_token_file("short")
    cfg = write_config(CONFIG.replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 127.0.0.1:0\n  cert: {certs}/server.crt\n"
        "  key: {certs}/client-admin.key\n  token_file: %s\n" % short))
    p = subprocess.run([DAEMON, "--check-config", "--config", cfg], capture_output=True,
                       text=True, timeout=30)
    lines = open(cfg).read().split("\n")
    key_line = [i + 1 for i, ln in enumerate(lines) if "client-admin.key" in ln][0]
    tok_line = [i + 1 for i, ln in enumerate(lines) if "token_file" in ln][0]
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert re.search(r"%s:%d:\d+: admin\.key: .*key .*(mismatch|does not match)" % (re.escape(cfg), key_line),
                     p.stderr), p.stderr
    assert re.search(r"%s:%d:\d+: admin\.token_file: .*shorter than 16" %
                     (re.escape(cfg), tok_line), p.stderr), p.stderr
    # The same files, right, pass.
    good = write_config(CONFIG.replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 127.0.0.1:0\n  cert: {certs}/server.crt\n"
        "  key: {certs}/server.key\n  token_file: %s\n" % make_token_file()))
    p = subprocess.run([DAEMON, "--check-config", "--config", good], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_admin_flag_without_a_config_section():
    d = Daemon("--admin", "127.0.0.1:0")
    try:
        st, _, body = get(admin_port(d), "/healthz")
        assert (st, body) == (200, b"ok\n")
    finally:
        assert d.stop() == 0


def test_a_real_prometheus_scrapes_the_daemon():
    prom = shutil.which("prometheus")
    assert prom, "prometheus is not installed (Debian package prometheus)"
    d = tempfile.mkdtemp(prefix="dlg-prom-")
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            web = s.getsockname()[1]
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: dialogued\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % A)
        log = open(os.path.join(d, "prometheus.log"), "w")
        proc = subprocess.Popen([prom, "--config.file=" + os.path.join(d, "prometheus.yml"),
                                 "--storage.tsdb.path=" + os.path.join(d, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % web],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            n = joined_room(D.port, "quiet", "prom-member")
            result = None

            def query():
                nonlocal result
                q = urllib.parse.quote('dialogue_room_members{room="quiet"}')
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=%s"
                                                % (web, q), timeout=5) as r:
                        result = json.load(r)
                except OSError:
                    return False
                return (result["status"] == "success" and result["data"]["result"] and
                        result["data"]["result"][0]["value"][1] == "1")
            assert wait_until(query, within=60, step=0.5), (result, open(log.name).read()[-3000:])
            series = result["data"]["result"][0]["metric"]
            assert series["job"] == "dialogued" and series["room"] == "quiet", series
            # The target is up and the histogram is there too.
            q = urllib.parse.quote("up")
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=%s"
                                        % (web, q), timeout=5) as r:
                up = json.load(r)["data"]["result"]
            assert [s["value"][1] for s in up] == ["1"], up
            n.close()
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    finally:
        shutil.rmtree(d, True)


def test_zz_the_daemon_stops_cleanly():
    """Last: the daemon every test above scraped exits 0 (under ASan: no
    leak, no error)."""
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    try:
        run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
                  per_test_timeout=120)
    finally:
        D.stop()
