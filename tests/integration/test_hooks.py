"""Server hooks through the public C API: tests/embed/hooks_server.c embeds
a server, prints one line per hook call; this test drives clients and checks
the order and arguments, a refusing before_join and a rewriting before_each."""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import BUILD, Conn, pb, run_tests, write_config  # noqa: E402

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
room_admin: {create: ["*"]}
rooms:
  - id: lobby
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
  - id: secret
    events: ["*"]
    join: ["*"]
"""

P = None
PORT = None
OUT = None


def setup():
    global P, PORT, OUT
    d = tempfile.mkdtemp(prefix="dlg-hooks-")
    port_file = os.path.join(d, "port")
    OUT = open(os.path.join(d, "out"), "w+")
    P = subprocess.Popen([os.path.join(BUILD, "tests", "hooks_server"), write_config(CONFIG),
                          port_file], stdout=OUT, stderr=subprocess.STDOUT)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().endswith("\n"):
            PORT = int(open(port_file).read())
            return
        time.sleep(0.025)
    raise RuntimeError("hooks_server did not start")


def lines():
    OUT.flush()
    with open(OUT.name) as f:
        return [ln.strip() for ln in f if not ln.startswith("20")]  # skip log lines


def wait_for(text, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if any(text in ln for ln in lines()):
            return
        time.sleep(0.02)
    raise AssertionError("no %r in %s" % (text, lines()))


def test_hooks_fire_in_order_with_arguments():
    a = Conn(PORT)
    cid = a.hello().client_id
    b = Conn(PORT)
    bid = b.hello().client_id
    rid = b.send(join=pb.Join(room="lobby"))
    b.expect("joined", rid)
    rid = a.send(join=pb.Join(room="lobby"))
    a.expect("joined", rid)
    rid = a.send(join=pb.Join(room="secret"))
    a.expect_error("PERMISSION_DENIED", rid, contains="hook says no to secret")
    ack, _ = a.trigger("lobby", "chat:msg", b"hello")
    assert ack.recipients == 2
    ack, _ = a.trigger("lobby", "rewrite:me", b"original")
    ev = b.expect("event", 0)
    assert ev.data == b"hello"
    ev = b.expect("event", 0)
    assert ev.event == "rewrite:me" and ev.data == b"rewritten", ev
    rid = a.send(create_room=pb.CreateRoom(room="tmp", events=["*"]))
    a.expect("ack", rid)
    rid = a.send(delete_room=pb.DeleteRoom(room="tmp"))
    a.expect("ack", rid)
    rid = a.send(leave=pb.Leave(room="lobby"))
    a.expect("left", rid)
    a.close()
    wait_for("on_disconnected %s" % cid)
    want = [
        "on_connected %s user=- roles=0" % cid,
        "on_connected %s user=- roles=0" % bid,
        "before_join %s lobby" % bid,
        "on_joined %s lobby" % bid,
        "before_join %s lobby" % cid,
        "on_joined %s lobby" % cid,
        "before_join %s secret" % cid,
        "before_each %s lobby chat:msg len=5" % cid,
        "after_each lobby chat:msg seq=1 recipients=2",
        "before_each %s lobby rewrite:me len=8" % cid,
        "after_each lobby rewrite:me seq=2 recipients=2",
        "on_room_created tmp by=%s" % cid,
        "on_room_deleted tmp",
        "on_left %s lobby reason=left" % cid,
        "on_disconnected %s reason=peer closed" % cid,
    ]
    got = lines()
    assert got == want, "\n".join(got)
    b.close()
    wait_for("on_left %s lobby reason=disconnected" % bid)
    wait_for("on_disconnected %s" % bid)
    got = lines()
    assert got.index("on_left %s lobby reason=disconnected" % bid) < \
        got.index("on_disconnected %s reason=peer closed" % bid), got


def test_shutdown_clean():
    P.send_signal(signal.SIGTERM)
    assert P.wait(10) == 0
    assert lines()[-1] == "stopped"


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
