"""The cluster log (cluster.log: JetStream): three dialogued nodes on a
3-server NATS cluster with JetStream, all on loopback. Every node numbers a
room's events the same way (same seq and epoch everywhere, the trigger's Ack
carries that seq), keeps the same history, a client of a killed node
recovers exactly on another node, a restarted node catches up from the log,
and killing a NATS server during a stream loses nothing that was Acked.
Each test is bounded (run_tests alarm); every process is killed at exit."""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from dlgtest import CERTS, CTL, Conn, Daemon, pb, run_tests, status_name, write_config  # noqa: E402
from test_cluster import (NATS_SERVER, LinkProxy, NatsServer, free_port, http_json,  # noqa: E402
                          join, read_events, stop_all, wait_for, wait_routes)

NODE_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  anonymous: true
rooms:
  - id: live
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
  - id: kept
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 1000}
cluster:
  node_id: {node}
  nats: [{urls}]
  log:
    replicas: 3
"""

NATS = []
NODES = {}
TMP = tempfile.mkdtemp(prefix="dlg-clog-")
atexit.register(shutil.rmtree, TMP, True)


def start_node(node, env=None, urls=None):
    urls = urls or ", ".join("nats://127.0.0.1:%d" % s.port for s in NATS)
    d = Daemon(config=write_config(NODE_CONFIG, node=node, urls=urls), env=env)
    NODES[node] = d
    return d


def js_ready(s):
    meta = http_json(s.mport, "/jsz").get("meta_cluster") or {}
    return bool(meta.get("leader"))


def setup():
    assert NATS_SERVER, "nats-server is not installed (apt-get install nats-server)"
    ports = [(free_port(), free_port(), free_port()) for _ in range(3)]
    for i, (p, c, m) in enumerate(ports):
        routes = [ports[j][1] for j in range(3) if j != i]
        store = os.path.join(TMP, "js%d" % (i + 1))
        NATS.append(NatsServer("n%d" % (i + 1), p, c, m, routes, TMP,
                               extra="jetstream {\n  store_dir: \"%s\"\n}\n" % store))
    for s in NATS:
        wait_for("%s monitoring" % s.name, lambda s=s: http_json(s.mport, "/varz"))
    wait_routes(NATS)
    for s in NATS:
        wait_for("%s JetStream meta leader" % s.name, lambda s=s: js_ready(s), within=30)
    for node in ("a", "b", "c"):
        start_node(node)


def client(node, name):
    c = Conn(NODES[node].port, timeout=10)
    c.hello(name=name)
    return c


def trigger_acked(c, room, data):
    """Trigger; returns the Ack's seq (events seen meanwhile are dropped:
    the callers read their members, not the publisher)."""
    ack, _ = c.trigger(room, "note", data)
    return ack.seq


def history(c, room):
    rid = c.send(history=pb.History(room=room, limit=1000))
    return c.expect("history_batch", rid)


# ---- tests ---------------------------------------------------------------

def test_same_seq_and_epoch_on_every_node():
    """A member on each node; 60 events from node B: each member gets each
    once, in order, with the same (epoch, seq) everywhere, and each Ack
    carries the seq the members saw."""
    room = "live"
    members = {n: client(n, "m-" + n) for n in ("a", "b", "c")}
    joined = {n: join(c, room)[0] for n, c in members.items()}
    assert len({j.epoch for j in joined.values()}) == 1, joined
    pub = client("b", "pub")
    join(pub, room)
    acks = [trigger_acked(pub, room, b"e%d" % i) for i in range(60)]
    assert acks == list(range(acks[0], acks[0] + 60)), acks
    seen = {}
    for n, c in members.items():
        got = read_events(c, 60)
        assert [e.data for e in got] == [b"e%d" % i for i in range(60)], (n, len(got))
        seen[n] = [(e.epoch, e.seq) for e in got]
        assert [e.seq for e in got] == acks, n
    assert seen["a"] == seen["b"] == seen["c"]
    assert seen["a"][0][0] == joined["a"].epoch
    for c in members.values():
        assert c.barrier() == [], "an event arrived twice"
        c.close()
    pub.close()


def test_history_same_on_every_node():
    room = "kept"
    pub = client("a", "kpub")
    join(pub, room)
    acks = [trigger_acked(pub, room, b"h%d" % i) for i in range(20)]
    views = {}
    for n in ("a", "b", "c"):
        c = client(n, "h-" + n)
        join(c, room)
        # The Ack says the log has it; a node may deliver a moment later.
        wait_for("node %s history" % n,
                 lambda c=c: acks[-1] in [e.seq for e in history(c, room).events])
        b = history(c, room)
        views[n] = [(b.epoch, e.seq, e.data) for e in b.events]
        c.close()
    assert views["a"] == views["b"] == views["c"], views
    assert [v[1] for v in views["a"]][-20:] == acks
    pub.close()


def test_killed_node_client_recovers_exactly_elsewhere():
    """Node C dies; its client moves to node A with its position on C and
    gets exactly what it missed (complete = true: one numbering)."""
    room = "kept"
    sc = client("c", "mover")
    join(sc, room)
    pub = client("b", "mpub")
    join(pub, room)
    trigger_acked(pub, room, b"before")
    got = read_events(sc, 1)
    assert [e.data for e in got] == [b"before"]
    epoch, seq = got[0].epoch, got[0].seq
    NODES["c"].stop(signal.SIGKILL)
    sc.close()
    missed = [trigger_acked(pub, room, b"away-%d" % i) for i in range(3)]
    moved = client("a", "mover")
    wait_for("node a has the missed events",
             lambda: missed[-1] in [e.seq for e in history(moved, room).events]
             if join(moved, room) else False)
    rid = moved.send(join=pb.Join(room=room, recover=True, epoch=epoch, since_seq=seq))
    f = moved.recv()
    if f.WhichOneof("msg") == "joined":
        batch = moved.expect("history_batch", rid)
    else:
        batch = f.history_batch
    assert batch.complete, "one numbering on every node: recovery is exact"
    assert batch.epoch == epoch
    assert [e.seq for e in batch.events] == missed
    assert [e.data for e in batch.events] == [b"away-%d" % i for i in range(3)]
    moved.close()
    pub.close()


def test_restarted_node_catches_up():
    """Node C (killed above) starts again: its history holds what was
    published while it was down, numbered as everywhere else."""
    room = "kept"
    pub = client("a", "rpub")
    join(pub, room)
    acks = [trigger_acked(pub, room, b"while-down-%d" % i) for i in range(5)]
    start_node("c")
    c = client("c", "late")
    join(c, room)
    b = history(c, room)
    seqs = [e.seq for e in b.events]
    assert seqs[-5:] == acks, (seqs[-8:], acks)
    a = client("a", "cmp")
    join(a, room)
    assert [(e.seq, e.data) for e in history(a, room).events] == \
        [(e.seq, e.data) for e in b.events]
    for x in (c, a, pub):
        x.close()


def test_lost_event_is_fetched_again():
    """A node that misses one event of the log (made to, as a failover can)
    never delivers past the gap: it follows the stream again from the first
    missing event, and its member gets every event once, in order."""
    room = "live"
    pub = client("a", "gpub")
    join(pub, room)
    first = trigger_acked(pub, room, b"probe")
    env = dict(os.environ, DIALOGUE_TEST_LOG_DROP=str(first + 3))
    d = start_node("d", env=env)
    try:
        m = Conn(d.port, timeout=10)
        m.hello(name="gap")
        join(m, room)
        acks = [trigger_acked(pub, room, b"g%d" % i) for i in range(8)]
        got = read_events(m, 8)
        assert [e.seq for e in got] == acks, ([e.seq for e in got], acks)
        assert [e.data for e in got] == [b"g%d" % i for i in range(8)]
        assert m.barrier() == []
        wait_for("the resubscription logged",
                 lambda: "follows stream DLG_live again from %d" % (first + 3) in d.logtext())
        m.close()
    finally:
        rc = d.stop()
        NODES.pop("d", None)
    assert rc == 0, d.logtext()[-2000:]
    pub.close()


# ---- a node held behind: its NATS link stopped ---------------------------

def held_node(name):
    """A node whose only NATS link goes through a LinkProxy (to the first
    server), caught up with room "kept"; returns (proxy, daemon)."""
    px = LinkProxy(NATS[0].port)
    atexit.register(px.close)
    d = start_node(name, urls="nats://127.0.0.1:%d" % px.port)
    return px, d


def frames_until_pong(c):
    """Every frame (history batches too) that arrives before a Ping's Pong."""
    rid = c.send(ping=pb.Ping(nonce=77))
    seen = []
    while True:
        f = c.recv()
        if f.WhichOneof("msg") == "pong" and f.request_id == rid:
            return seen
        seen.append(f)


def position_on(node, room, pub, data):
    """A client on node that sees pub trigger `data` (a list) in room; returns
    the (epoch, seq) it reached, as a client library would record it."""
    c = client(node, "pos-" + node)
    join(c, room)
    for d in data:
        trigger_acked(pub, room, d)
    got = read_events(c, len(data))
    assert [e.data for e in got] == data, [e.data for e in got]
    c.close()
    return got[-1].epoch, got[-1].seq


def test_recovery_on_a_node_behind_waits_until_it_caught_up():
    """Issue 24: a client at seq S on node B moves to node P, whose NATS link
    is stopped, so P has delivered less than S. P neither calls the events
    after its own seq lost nor resends what the client has: the Join waits
    (other requests are answered meanwhile); once the link is back and P
    has caught up, Joined comes with HistoryBatch{complete: true} holding
    exactly the events after S, then live events, each once."""
    room = "kept"
    px, p = held_node("p")
    try:
        pub = client("a", "hpub")
        join(pub, room)
        watch = client("p", "hwatch")  # P is caught up before the hold
        join(watch, room)
        probe = trigger_acked(pub, room, b"probe")
        assert [e.seq for e in read_events(watch, 1)] == [probe]
        watch.close()
        px.pause()
        epoch, seq = position_on("b", room, pub, [b"ahead-%d" % i for i in range(40)])
        assert seq >= probe + 40
        moved = client("p", "mover")
        rid = moved.send(join=pb.Join(room=room, recover=True, epoch=epoch, since_seq=seq))
        time.sleep(1.0)
        early = frames_until_pong(moved)
        assert early == [], "node P answered before catching up: %s" % early
        later = [trigger_acked(pub, room, b"later-%d" % i) for i in range(3)]
        px.resume()
        j = moved.expect("joined", rid)
        f = moved.recv()
        assert f.WhichOneof("msg") == "history_batch" and f.request_id == rid, f
        batch = f.history_batch
        assert batch.complete, "a node behind the client called its events lost"
        assert batch.epoch == epoch and j.epoch == epoch
        got = list(batch.events)
        got += read_events(moved, len(later) - len(got), within=10)
        assert [e.seq for e in got] == later, ([e.seq for e in got], seq, later)
        assert [e.data for e in got] == [b"later-%d" % i for i in range(3)]
        assert frames_until_pong(moved) == [], "an event came twice"
        assert "recovery in room kept waits" in p.logtext()
        moved.close()
        pub.close()
    finally:
        px.resume()
        assert p.stop() == 0, p.logtext()[-2000:]
        NODES.pop("p", None)
        px.close()


def test_recovery_on_a_node_behind_refused_when_it_stays_behind():
    """Same, but the link stays stopped: after the bounded wait (5 s) the
    Join is refused with UNAVAILABLE, and nothing else is sent for it (no
    Joined, no batch, no events); once the node has caught up, the same
    recovery is exact."""
    room = "kept"
    px, p = held_node("q")
    try:
        pub = client("a", "qpub")
        join(pub, room)
        watch = client("q", "qwatch")
        join(watch, room)
        probe = trigger_acked(pub, room, b"probe")
        assert [e.seq for e in read_events(watch, 1)] == [probe]
        watch.close()
        px.pause()
        epoch, seq = position_on("b", room, pub, [b"ahead-%d" % i for i in range(10)])
        moved = client("q", "mover")
        t0 = time.time()
        rid = moved.send(join=pb.Join(room=room, recover=True, epoch=epoch, since_seq=seq))
        moved.sock.settimeout(20)
        e = moved.expect_error("UNAVAILABLE", rid, contains="try another node")
        waited = time.time() - t0
        assert 4.0 <= waited <= 15.0, waited
        assert "behind this client's position %d" % seq in e.message, e.message
        assert frames_until_pong(moved) == []
        px.resume()
        w2 = client("q", "qwatch2")
        join(w2, room)
        w2.expect("joined", w2.send(unsubscribe=pb.Unsubscribe(room=room, all=True)))
        wait_for("node q catches up", lambda: seq in [x.seq for x in history(w2, room).events])
        w2.close()
        rid = moved.send(join=pb.Join(room=room, recover=True, epoch=epoch, since_seq=seq))
        moved.expect("joined", rid)
        batch = moved.expect("history_batch", rid)
        assert batch.complete and list(batch.events) == []
        moved.close()
        pub.close()
    finally:
        px.resume()
        assert p.stop() == 0, p.logtext()[-2000:]
        NODES.pop("q", None)
        px.close()


def test_client_library_moves_on_from_a_node_behind():
    """The client library's side: `dialoguectl sub` given the nodes [E, R, A]
    is on E; R's NATS link is stopped; E is killed. The library moves to R,
    which is behind its position: R refuses the recovery (UNAVAILABLE) after
    its wait, the library keeps the room and moves on to A, where recovery
    is exact. Every event is printed once, in order, and no loss is
    reported."""
    room = "kept"
    e = start_node("e")
    px, r = held_node("r")
    sub = None
    out_path, err_path = os.path.join(TMP, "sub.out"), os.path.join(TMP, "sub.err")
    try:
        pub = client("a", "lpub")
        join(pub, room)
        servers = ",".join("127.0.0.1:%d" % d.port for d in (e, r, NODES["a"]))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            sub = subprocess.Popen([CTL, "--server", servers, "--ca",
                                    os.path.join(CERTS, "ca.crt"), "-v", "sub", room,
                                    "--count", "25", "--timeout", "40"],
                                   stdout=out, stderr=err)
        atexit.register(lambda: sub.poll() is None and sub.kill())
        wait_for("the sub ready", lambda: "subscribed to kept" in open(err_path).read())
        px.pause()
        acks = [trigger_acked(pub, room, b"b%d" % i) for i in range(20)]
        wait_for("the sub at seq %d" % acks[-1],
                 lambda: len(open(out_path).read().splitlines()) == 20)
        e.stop(signal.SIGKILL)
        NODES.pop("e", None)
        acks += [trigger_acked(pub, room, b"c%d" % i) for i in range(5)]
        try:
            rc = sub.wait(40)
        except subprocess.TimeoutExpired:
            rc = "still running"
        err = open(err_path).read()
        seqs = [json.loads(line)["seq"] for line in open(out_path).read().splitlines()]
        assert rc == 0, (rc, seqs, err[-3000:])
        assert seqs == acks, (seqs, acks)
        assert "recovery of room kept refused" in err and "trying another server" in err, err
        # The library's gap reports ("... are lost", "... may be lost").
        assert " lost" not in err.replace("connection lost", ""), err
        assert "recovery in room kept refused" in r.logtext()
    finally:
        if sub and sub.poll() is None:
            sub.kill()
        px.resume()
        assert r.stop() == 0, r.logtext()[-2000:]
        NODES.pop("r", None)
        px.close()


class Streamer(threading.Thread):
    """Triggers into room from node as fast as Acks come back; records the
    seq of every Acked trigger and counts the refused ones."""

    def __init__(self, node, room):
        super().__init__(daemon=True)
        self.c = client(node, "streamer")
        join(self.c, room)
        self.room = room
        self.acked, self.refused, self.stopping = [], [], threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            rid = self.c.send(trigger=pb.Trigger(room=self.room, event="s", data=b"s%d" % i))
            while True:
                f = self.c.recv()
                kind = f.WhichOneof("msg")
                if kind == "event":
                    continue
                if kind == "ack" and f.request_id == rid:
                    self.acked.append(f.ack.seq)
                elif kind == "error" and f.request_id == rid:
                    self.refused.append((time.time(), status_name(f.error.code),
                                         f.error.message))
                else:
                    continue
                break
            i += 1
            time.sleep(0.004)


def test_nats_server_killed_nothing_acked_lost():
    """A NATS server dies during a stream (the one node A uses): members on
    every surviving node get every Acked event, once, in order (the log
    keeps them; libnats's ordered consumer resumes after the failover)."""
    room = "live"
    members = {n: client(n, "k-" + n) for n in ("a", "b", "c")}
    for c in members.values():
        join(c, room)
    st = Streamer("b", room)
    st.start()
    wait_for("stream flowing", lambda: len(st.acked) >= 50, within=20)
    victim = None
    for s in NATS:
        conns = http_json(s.mport, "/connz").get("connections", [])
        if any(c.get("name") == "dialogued a" for c in conns):
            victim = s
    assert victim is not None
    victim.kill()
    n0 = len(st.acked)
    wait_for("stream flowing after the kill", lambda: len(st.acked) >= n0 + 100, within=30)
    st.stopping.set()
    st.join(15)
    last = st.acked[-1]
    for n, c in members.items():
        got = []
        # A consumer lost with the server is noticed by missed heartbeats
        # (1 s each), then made again once JetStream answers.
        deadline = time.time() + 40
        while (not got or got[-1].seq < last) and time.time() < deadline:
            got += read_events(c, 10000, within=0.5)
        seqs = [e.seq for e in got]
        assert seqs == sorted(set(seqs)), "node %s: duplicated or out of order" % n
        missing = sorted(set(st.acked) - set(seqs))
        assert not missing, "node %s lost Acked events %s of %d; its log:\n%s" % (
            n, missing[:10], len(missing),
            "\n".join(l for l in NODES[n].logtext().splitlines() if "cluster" in l)[-3000:])
        c.close()
    if st.refused:
        print("  %d Acked, %d refused over %.2f s during the failover, e.g. %s: %s" %
              (len(st.acked), len(st.refused), st.refused[-1][0] - st.refused[0][0],
               st.refused[0][1], st.refused[0][2]))
    else:
        print("  %d Acked, none refused" % len(st.acked))
    victim.start()


def test_nodes_stop_cleanly():
    stop_all(NODES, NATS)


def main():
    try:
        setup()
    except BaseException:
        for s in NATS:
            if s.alive():
                s.kill()
        raise
    run_tests([test_same_seq_and_epoch_on_every_node, test_history_same_on_every_node,
               test_killed_node_client_recovers_exactly_elsewhere,
               test_restarted_node_catches_up, test_lost_event_is_fetched_again,
               test_recovery_on_a_node_behind_waits_until_it_caught_up,
               test_recovery_on_a_node_behind_refused_when_it_stays_behind,
               test_client_library_moves_on_from_a_node_behind,
               test_nats_server_killed_nothing_acked_lost,
               test_nodes_stop_cleanly],
              per_test_timeout=90)


if __name__ == "__main__":
    main()
