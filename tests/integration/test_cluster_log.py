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
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from dlgtest import CERTS, CTL, Conn, Daemon, pb, run_tests, status_name, write_config  # noqa: E402
from test_cluster import (NATS_SERVER, LinkProxy, NatsServer, free_port, http_json,  # noqa: E402
                          join, nats_request, read_events, stop_all, wait_for, wait_routes)

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


def start_node(node, env=None, urls=None, config=NODE_CONFIG):
    urls = urls or ", ".join("nats://127.0.0.1:%d" % s.port for s in NATS)
    d = Daemon(config=write_config(config, node=node, urls=urls), env=env)
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
        # Node q is catching up: its events may reach w2 before the reply.
        rid = w2.send(unsubscribe=pb.Unsubscribe(room=room, all=True))
        for _ in range(200):
            f = w2.recv()
            if f.WhichOneof("msg") != "event":
                break
        assert f.WhichOneof("msg") == "joined" and f.request_id == rid, f
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


# ---- NATS servers dying: where JetStream put things -----------------------

def alive_nats():
    return [s for s in NATS if s.alive()]


def meta_leader():
    for s in alive_nats():
        leader = (http_json(s.mport, "/jsz").get("meta_cluster") or {}).get("leader")
        if leader:
            return leader
    return None


def stream_detail(stream):
    """(leader, {consumer deliver subject: the server it runs on}) of a
    room's stream, from every live server's monitoring."""
    leader, hosts = None, {}
    for s in alive_nats():
        j = http_json(s.mport, "/jsz?streams=true&consumers=true&config=true")
        for acc in j.get("account_details") or []:
            for sd in acc.get("stream_detail") or []:
                if sd.get("name") != stream:
                    continue
                leader = leader or (sd.get("cluster") or {}).get("leader")
                for cd in sd.get("consumer_detail") or []:
                    host = (cd.get("cluster") or {}).get("leader")
                    dlv = (cd.get("config") or {}).get("deliver_subject")
                    if host and dlv:
                        hosts[dlv] = host
    return leader, hosts


def node_link(node):
    """(the NATS server node is connected to, its subscriptions there)."""
    for s in alive_nats():
        for c in http_json(s.mport, "/connz?subs=1").get("connections", []):
            if c.get("name") == "dialogued " + node:
                return s, set(c.get("subscriptions_list") or [])
    return None, set()


def consumer_host(node, room):
    """The NATS server running node's consumer of room's stream, or None."""
    _, subs = node_link(node)
    _, hosts = stream_detail("DLG_" + room)
    for dlv, host in hosts.items():
        if dlv in subs:
            return host
    return None


def step_down(stream):
    """Moves the stream's leader to another replica (JetStream's API)."""
    old = stream_detail(stream)[0]
    nats_request(alive_nats()[0].port, "$JS.API.STREAM.LEADER.STEPDOWN." + stream)
    wait_for("a new leader of %s" % stream,
             lambda: stream_detail(stream)[0] not in (None, old), within=20)


def restart_nats(victim):
    victim.start()
    wait_routes(NATS)
    for s in NATS:
        wait_for("%s JetStream meta leader" % s.name, lambda s=s: js_ready(s), within=30)


class Pipeline(threading.Thread):
    """Triggers into room from node, at most `window` unanswered, one every
    `pause` s, recording when each Ack (with its seq) or Error came; a
    member on the same node (a second connection, read by its own thread)
    records when each event arrived."""

    def __init__(self, node, room, window=1, pause=0.01):
        super().__init__(daemon=True)
        self.c = client(node, "pipe")
        join(self.c, room)
        self.c.expect("joined", self.c.send(unsubscribe=pb.Unsubscribe(room=room, all=True)))
        self.m = client(node, "pipe-member")
        join(self.m, room)
        self.room, self.window, self.pause = room, window, pause
        self.sent, self.acked, self.refused, self.events = {}, {}, {}, {}
        self.dup_events = 0
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._member, daemon=True)

    def _member(self):
        self.m.sock.settimeout(0.5)
        while not self.done.is_set():
            try:
                f = self.m.recv()
            except socket.timeout:
                continue
            except (OSError, EOFError):
                return
            if f.WhichOneof("msg") == "event":
                if f.event.seq in self.events:
                    self.dup_events += 1
                self.events.setdefault(f.event.seq, time.time())

    def outstanding(self):
        return len(self.sent) - len(self.acked) - len(self.refused)

    def run(self):
        self.reader.start()
        self.c.sock.settimeout(0.005)
        i, nxt, deadline = 0, time.time(), None
        while True:
            now = time.time()
            if self.stopping.is_set():
                deadline = deadline or now + 20
                if self.outstanding() == 0 or now > deadline:
                    break
            elif self.outstanding() < self.window and now >= nxt:
                rid = self.c.send(trigger=pb.Trigger(room=self.room, event="p", data=b"p%d" % i))
                self.sent[rid] = now
                i += 1
                nxt = now + self.pause
                continue
            try:
                f = self.c.recv()
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            kind, now = f.WhichOneof("msg"), time.time()
            if kind == "ack":
                self.acked[f.request_id] = (now, f.ack.seq)
            elif kind == "error":
                self.refused[f.request_id] = (now, status_name(f.error.code), f.error.message)

    def finish(self):
        """Stops sending and waits for every answer (at most 20 s); returns
        (acks as [(sent, answered, seq)], refusals)."""
        self.stopping.set()
        self.join(25)
        assert not self.is_alive() and self.outstanding() == 0, \
            "%d triggers unanswered" % self.outstanding()
        return sorted((self.sent[r], t, seq) for r, (t, seq) in self.acked.items()), \
            dict(self.refused)

    def close(self):
        self.done.set()
        self.reader.join(5)
        self.c.close()
        self.m.close()


def test_consumer_server_killed_delivery_resumes_soon():
    """Issue 24, item 3. JetStream runs each node's consumer of a room on a
    random replica of the stream, leader or not; killing a follower NATS
    server that runs node H's consumer (not H's own server, not the stream's
    leader, not the JetStream API's leader) stops H's deliveries although
    every Ack comes back at once. H notices by missed heartbeats (2 x 0.5 s)
    and follows the stream again at once, without first waiting for the dead
    consumer's deletion: its member gets every Acked event once, in order,
    and none later than 4.5 s after its Ack (before: 7-8 s: heartbeats of
    1 s, then the deletion's 5-s timeout first)."""
    meta = meta_leader()
    victim = [s for s in NATS if s.name != meta][0]
    urls = ", ".join("nats://127.0.0.1:%d" % s.port for s in NATS if s is not victim)
    rooms = ["live", "kept"] + ["x%d" % i for i in range(1, 5)]
    wide = NODE_CONFIG.replace("cluster:\n", "".join(
        "  - id: %s\n    events: [\"*\"]\n    default_subscriptions: [\"*\"]\n"
        "    join: [\"*\"]\n    trigger: [\"*\"]\n" % r for r in rooms[2:]) + "cluster:\n")
    h, room = None, None
    # Where a consumer runs is JetStream's random pick: six rooms, a few
    # tries, until one of node H's consumers runs on the victim.
    for _ in range(5):
        h = start_node("h", urls=urls, config=wide)
        wait_for("node h's consumers", lambda: all(consumer_host("h", r) for r in rooms))
        on_victim = [r for r in rooms if consumer_host("h", r) == victim.name]
        if on_victim:
            room = on_victim[0]
            break
        assert h.stop() == 0
    assert room, "no consumer of node h ran on %s in 5 tries" % victim.name
    try:
        if stream_detail("DLG_" + room)[0] == victim.name:
            step_down("DLG_" + room)
        assert consumer_host("h", room) == victim.name
        assert node_link("h")[0] is not victim and meta_leader() != victim.name
        pipe = Pipeline("h", room, window=1, pause=0.01)
        pipe.start()
        wait_for("triggers flowing", lambda: len(pipe.acked) >= 50, within=20)
        t_kill = time.time()
        victim.kill()
        time.sleep(7)
        acks, refused = pipe.finish()
        assert not refused, refused
        seqs = [seq for _, _, seq in acks]
        assert seqs == sorted(set(seqs))
        wait_for("every Acked event delivered", lambda: set(seqs) <= set(pipe.events),
                 within=20)
        assert pipe.dup_events == 0
        late = sorted((pipe.events[seq] - t, seq, sent - t_kill) for sent, t, seq in acks)
        worst = late[-1]
        print("  %d Acked; node h's consumer was on %s; latest delivery %.2f s after its Ack "
              "(sent %+.2f s after the kill)" % (len(acks), victim.name, worst[0], worst[2]))
        assert worst[0] < 4.5, "event %d reached node h %.2f s after its Ack; its log:\n%s" % (
            worst[1], worst[0], "\n".join(l for l in h.logtext().splitlines()
                                          if "cluster" in l)[-3000:])
        pipe.close()
    finally:
        if not victim.alive():
            restart_nats(victim)
        rc = h.stop()
        NODES.pop("h", None)
    assert rc == 0, h.logtext()[-2000:]


def test_stream_leader_killed_no_trigger_refused():
    """Issue 24, item 4. The NATS server leading a room's stream dies while
    20 triggers are always in flight from a node connected to that very
    server (its connection dies too, with triggers and Acks on the way).
    JetStream elects another leader (4-9 s in nats-server 2.9); meanwhile
    each trigger is sent again, with the same message id: none is refused,
    each Acked seq is unique, and every member gets every Acked event once,
    in order (before: those in flight were refused after 5 s, 0-20 per kill,
    although some had been stored)."""
    stream = "DLG_live"
    pub_node = None
    for _ in range(8):
        leader = stream_detail(stream)[0]
        on_leader = [n for n in ("a", "b", "c") if node_link(n)[0] and
                     node_link(n)[0].name == leader]
        if on_leader:
            pub_node = on_leader[0]
            break
        step_down(stream)
    assert pub_node, "no node connected to the leader of %s after 8 step-downs" % stream
    victim = [s for s in NATS if s.name == leader][0]
    members = {n: client(n, "sl-" + n) for n in ("a", "b", "c")}
    for c in members.values():
        join(c, "live")
    pipe = Pipeline(pub_node, "live", window=20, pause=0)
    pipe.start()
    try:
        wait_for("triggers flowing", lambda: len(pipe.acked) >= 200, within=20)
        in_flight = pipe.outstanding()
        t_kill = time.time()
        victim.kill()
        n0 = len(pipe.acked)
        wait_for("triggers Acked after the election", lambda: len(pipe.acked) >= n0 + 200,
                 within=30)
        acks, refused = pipe.finish()
        assert not refused, "%d refused, e.g. %s" % (len(refused), list(refused.values())[:2])
        seqs = [seq for _, _, seq in acks]
        assert len(seqs) == len(set(seqs)), "an Ack seq came twice"
        slow = sorted(t - sent for sent, t, _ in acks if sent >= t_kill - 1)
        print("  %d Acked, none refused; %d in flight at the kill; slowest Ack %.2f s" % (
            len(acks), in_flight, slow[-1]))
        for n, c in members.items():
            got = []
            deadline = time.time() + 30
            while not set(seqs) <= set(e.seq for e in got) and time.time() < deadline:
                got += read_events(c, 100000, within=0.5)
            mine = [e.seq for e in got]
            assert mine == sorted(set(mine)), "node %s: duplicated or out of order" % n
            missing = sorted(set(seqs) - set(mine))
            assert not missing, "node %s lost Acked events %s" % (n, missing[:10])
            c.close()
        pipe.close()
    finally:
        if not victim.alive():
            restart_nats(victim)


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
               test_consumer_server_killed_delivery_resumes_soon,
               test_stream_leader_killed_no_trigger_refused,
               test_nats_server_killed_nothing_acked_lost,
               test_nodes_stop_cleanly],
              per_test_timeout=90)


if __name__ == "__main__":
    main()
