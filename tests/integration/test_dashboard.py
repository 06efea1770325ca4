"""The Live Dashboard: metrics:update about once a second with every field
in range, alert:triggered when a rule must fire, admin-only room, schema
validation of client triggers. Uses the shipped example config with test
certificates and a test threshold."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (CERTS, CTL, Conn, Daemon, dash, make_jwt, pb,  # noqa: E402
                     run_tests, write_config, ROOT)

SECRET = b"dashboard-test-secret-0123456789abcdef"


def load_example(publisher_alerts=True):
    """examples/dashboard/dialogue.yaml with paths pointed at test files and
    the alert rule's threshold set so it must fire (cpu >= 0). The shipped
    file lets publishers join and trigger both event types;
    publisher_alerts=False keeps metrics:update only, to check a per-event
    rule."""
    with open(os.path.join(ROOT, "examples/dashboard/dialogue.yaml")) as f:
        text = f.read()
    text = text.replace("../../.state/certs/", "{certs}/")
    text = text.replace("../../build/share/dialogue/", "{share}/")
    text = text.replace("../../.state/token.secret", "{secret}")
    text = text.replace("address: 127.0.0.1:3000", "address: 127.0.0.1:0")
    assert "join: [admin, publisher]" in text
    rule = "      - {event: alert:triggered, roles: [publisher]}\n"
    assert rule in text
    if not publisher_alerts:
        text = text.replace(rule, "")
    # The seed's rule (cpu > 90) with a threshold that must fire.
    text = text.replace('op: ">"\n      threshold: 90', 'op: ">="\n      threshold: 0')
    assert "threshold: 0" in text and "127.0.0.1:0" in text
    return text


D = None


def setup():
    global D
    d = os.path.dirname(write_config("x"))
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    D = Daemon(config=write_config(load_example(), secret=secret))


def token(sub, role):
    now = int(time.time())
    return make_jwt(SECRET, {"sub": sub, "role": role, "iat": now, "exp": now + 600})


def test_admin_receives_metrics_every_second_in_range():
    c = Conn(D.port, timeout=5)
    w = c.hello(token=token("ada", "admin"))
    assert [j.room for j in w.auto_joined] == ["dashboard"]
    times, values = [], []
    deadline = time.time() + 8
    while len(times) < 3 and time.time() < deadline:
        ev = c.expect("event", 0)
        if ev.event != "metrics:update":
            continue
        assert ev.room == "dashboard" and getattr(ev, "from") == "system"
        m = dash.MetricsUpdate()
        m.ParseFromString(ev.data)
        for f in ("cpu", "memory", "requests", "errors", "latency"):
            assert m.HasField(f), (f, m)
        assert 0 <= m.cpu <= 100 and 0 <= m.memory <= 100, m
        assert m.requests >= 0 and m.errors >= 0 and m.latency >= 0, m
        assert m.memory > 0, "memory used cannot be 0 on a running host"
        times.append(time.time())
        values.append(m)
    assert len(times) == 3, "fewer than 3 metrics:update in 8 s"
    for a, b in zip(times, times[1:]):
        assert 0.8 <= b - a <= 1.5, "interval %.3f s" % (b - a)
    c.close()


def test_alert_fires_with_every_field_as_specified():
    c = Conn(D.port, timeout=5)
    c.hello(token=token("ada2", "admin"))
    # The rule fired at the first tick, before this client came: a fresh
    # one comes only after the cooldown, so read it from a new daemon.
    c.close()
    d = os.path.dirname(write_config("x"))
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    d2 = Daemon(config=write_config(load_example(), secret=secret))
    try:
        c = Conn(d2.port, timeout=5)
        c.hello(token=token("ada3", "admin"))
        deadline = time.time() + 5
        alert = None
        n_alerts = 0
        while time.time() < deadline and alert is None:
            ev = c.expect("event", 0)
            if ev.event == "alert:triggered":
                alert = ev
        assert alert is not None, "no alert:triggered within 5 s"
        a = dash.AlertTriggered()
        a.ParseFromString(alert.data)
        assert re.fullmatch(r"cpu-\d{13}", a.alert_id), a.alert_id
        assert a.severity == dash.high
        assert re.fullmatch(r"CPU usage critical: \d+(\.\d+)?%", a.message), a.message
        assert abs(a.timestamp - time.time() * 1000) < 10000
        assert a.alert_id == "cpu-%d" % a.timestamp
        # Sustained condition: no second alert within the next 2.5 s (cooldown 60 s).
        end = time.time() + 2.5
        c.sock.settimeout(3)
        while time.time() < end:
            ev = c.expect("event", 0)
            if ev.event == "alert:triggered":
                n_alerts += 1
        assert n_alerts == 0, "alert repeated inside its cooldown"
        c.close()
    finally:
        assert d2.stop() == 0


def test_non_admin_cannot_join_and_anonymous_cannot_connect():
    c = Conn(D.port)
    w = c.hello(token=token("vic", "viewer"))
    assert list(w.auto_joined) == []
    rid = c.send(join=pb.Join(room="dashboard"))
    c.expect_error("PERMISSION_DENIED", rid, contains="dashboard")
    assert c.barrier() == []
    c.close()
    a = Conn(D.port)
    rid = a.send(hello=pb.Hello(protocol_version=1))
    a.expect_error("UNAUTHENTICATED", rid)
    a.expect_closed()


def test_client_trigger_rules_and_validation():
    # A per-event trigger rule: this daemon lets publishers send
    # metrics:update only.
    d = os.path.dirname(write_config("x"))
    secret = os.path.join(d, "token.secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    d3 = Daemon(config=write_config(load_example(publisher_alerts=False), secret=secret))
    try:
        trigger_rules_and_validation(d3)
    finally:
        assert d3.stop() == 0


def trigger_rules_and_validation(D):
    admin = Conn(D.port)
    admin.hello(token=token("ada4", "admin"))
    bad = dash.MetricsUpdate(cpu=150, memory=1, requests=0, errors=0, latency=0)
    rid = admin.send(trigger=pb.Trigger(room="dashboard", event="metrics:update",
                                        data=bad.SerializeToString()))
    admin.expect_error("PERMISSION_DENIED", rid)  # clients may not trigger by default
    viewer = Conn(D.port)
    viewer.hello(token=token("vic2", "viewer"))
    rid = viewer.send(trigger=pb.Trigger(room="dashboard", event="metrics:update",
                                         data=bad.SerializeToString()))
    viewer.expect_error("FAILED_PRECONDITION", rid)  # not a member, cannot become one
    # A publisher may trigger what its rule names, and the payload is
    # validated against the schema.
    pub = Conn(D.port)
    pub.hello(token=token("svc", "publisher"))
    rid = pub.send(join=pb.Join(room="dashboard"))
    pub.expect("joined", rid)
    rid = pub.send(unsubscribe=pb.Unsubscribe(room="dashboard", all=True))
    pub.expect("joined", rid)
    rid = pub.send(trigger=pb.Trigger(room="dashboard", event="metrics:update",
                                      data=bad.SerializeToString()))
    pub.expect_error("INVALID_ARGUMENT", rid, contains="metrics:update.cpu: 150 is above max 100")
    rid = pub.send(trigger=pb.Trigger(room="dashboard", event="alert:triggered", data=b""))
    pub.expect_error("PERMISSION_DENIED", rid, contains="alert:triggered")
    good = dash.MetricsUpdate(cpu=0, memory=1, requests=0, errors=0, latency=0)
    rid = pub.send(trigger=pb.Trigger(room="dashboard", event="metrics:update",
                                      data=good.SerializeToString()))
    pub.expect("ack", rid)
    viewer.close()
    admin.close()
    pub.close()


def ctl(token_, *args, check=True):
    """dialoguectl against D with token_; stdin from /dev/null, output captured."""
    env = dict(os.environ, DIALOGUE_SERVER="127.0.0.1:%d" % D.port,
               DIALOGUE_CA=os.path.join(CERTS, "ca.crt"), DIALOGUE_TOKEN=token_)
    p = subprocess.run([CTL] + list(args), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, "%s exited %d: %s" % (args, p.returncode, p.stderr)
    return p


def test_publisher_publishes_with_the_shipped_rules():
    # No edit of the example: a publisher token joins and triggers both
    # event types; a viewer stays out.
    pub = token("svc2", "publisher")
    p = ctl(pub, "trigger", "dashboard", "alert:triggered",
            '{"alertId":"pub-1","severity":"low","message":"from a publisher","timestamp":"1"}')
    assert re.fullmatch(r"ok seq=\d+ recipients=\d+\n", p.stdout), p.stdout
    p = ctl(pub, "trigger", "dashboard", "metrics:update",
            '{"cpu":1,"memory":2,"requests":3,"errors":0,"latency":4}')
    assert p.stdout.startswith("ok seq="), p.stdout
    p = ctl(token("vic3", "viewer"), "trigger", "dashboard", "metrics:update",
            '{"cpu":1,"memory":2,"requests":3,"errors":0,"latency":4}', check=False)
    assert p.returncode == 1 and "PERMISSION_DENIED" in p.stderr, p.stderr


def wait_kept(n, within=15):
    """Waits until the room keeps at least n events; returns history --json's lines."""
    deadline = time.time() + within
    while True:
        lines = ctl(token("hist", "admin"), "history", "dashboard", "--json").stdout.splitlines()
        if len(lines) >= n or time.time() > deadline:
            return lines
        time.sleep(0.5)


def test_piped_dashboard_is_what_history_holds_decoded():
    # `dashboard --count N > file`: the room's kept events first (the sync
    # batch of the admin's auto_join, which arrives before any reply), each
    # decoded exactly as `history --json` and `sub` print it.
    kept = wait_kept(4)
    assert len(kept) >= 4, kept
    out = os.path.join(os.path.dirname(D.port_file), "dash.out")
    env = dict(os.environ, DIALOGUE_SERVER="127.0.0.1:%d" % D.port,
               DIALOGUE_CA=os.path.join(CERTS, "ca.crt"), DIALOGUE_TOKEN=token("pipe", "admin"))
    with open(out, "w") as f:
        p = subprocess.run([CTL, "dashboard", "--count", str(len(kept))], env=env,
                           stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr  # no "schema: client closed"
    with open(out) as f:
        got = f.read().splitlines()
    assert len(got) == len(kept), (len(got), len(kept))
    for a, b in zip(got, kept):
        assert '"data":{' in a, a
        assert a == b, "dashboard printed\n  %s\nhistory holds\n  %s" % (a, b)


def test_cli_never_joins_a_room_twice():
    # An admin is joined to the dashboard room at connect (auto_join): none
    # of the commands may Join it again (ALREADY_EXISTS, counted in the
    # room's own `errors` metric). A publisher is not: trigger joins.
    start = len(D.logtext())
    admin = token("again", "admin")
    ctl(admin, "sub", "dashboard", "--count", "1")
    ctl(admin, "sub", "dashboard", "metrics:update", "--count", "1")
    ctl(admin, "dashboard", "--count", "1")
    ctl(admin, "history", "dashboard", "--limit", "1")
    ctl(token("svc3", "publisher"), "trigger", "dashboard", "metrics:update",
        '{"cpu":1,"memory":2,"requests":3,"errors":0,"latency":4}')
    log = D.logtext()[start:]
    assert "refused" not in log, [ln for ln in log.splitlines() if "refused" in ln]


def test_clean_exit():
    assert D.stop() == 0, D.logtext()[-3000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
