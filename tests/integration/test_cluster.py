"""Several dialogued nodes sharing rooms through a 3-server NATS cluster, all
on loopback: cross-node delivery exactly once, interest that follows local
membership (seen in the NATS servers' monitoring), a NATS server killed
during a stream, a dialogue node killed with its client moving to another
node and recovering from history there, TLS (with a client certificate) to
NATS, and a node_id used twice. Each test is bounded (run_tests alarm), and
every process started here is killed at exit."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import CERTS, Conn, Daemon, frame, pb, run_tests, write_config  # noqa: E402

NATS_SERVER = shutil.which("nats-server")

NODE_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  anonymous: true
rooms:
  - id: chat.main:1
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
  - id: quiet
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
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(port, path, timeout=2.0):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return json.loads(r.read())


class NatsServer:
    """One nats-server of the cluster, from a config file in its own folder."""

    def __init__(self, name, port, cport, mport, routes, folder, extra=""):
        self.name, self.port, self.cport, self.mport = name, port, cport, mport
        self.conf = os.path.join(folder, name + ".conf")
        self.log_path = os.path.join(folder, name + ".log")
        with open(self.conf, "w") as f:
            f.write("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
                    # no_advertise: a node reconnects only to the URLs it was
                    # given (a LinkProxy's link cannot be bypassed).
                    "cluster {\n  name: dlg\n  listen: 127.0.0.1:%d\n  no_advertise: true\n"
                    "  routes: [%s]\n}\n"
                    % (name, port, mport, cport,
                       ", ".join("nats-route://127.0.0.1:%d" % r for r in routes)) + extra)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        atexit.register(lambda p=self.proc: p.poll() is None and p.kill())

    def kill(self):
        self.proc.kill()
        self.proc.wait(5)
        self.log.close()

    def alive(self):
        return self.proc.poll() is None

    def routes(self):
        return http_json(self.mport, "/routez").get("num_routes", 0)

    def subjects_of(self, client_name):
        """The subjects client_name subscribes to here, or None when it is
        not connected to this server."""
        for c in http_json(self.mport, "/connz?subs=1").get("connections", []):
            if c.get("name") == client_name:
                return set(c.get("subscriptions_list") or [])
        return None


class LinkProxy:
    """A TCP relay on loopback between a node and its NATS server, so a test
    can hold that one link: pause() stops carrying bytes both ways (the TCP
    connection stays up, as on a stalled network), resume() carries on with
    what was held; cut() closes the link and refuses new connections (the
    node reconnects in a loop), restore() accepts again. close() at the end."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.accepting = True
        self.closed = False
        self.lock = threading.Lock()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            if not self.accepting or self.closed:
                s.close()
                continue
            try:
                t = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                s.close()
                continue
            t.settimeout(None)
            with self.lock:
                self.socks += [s, t]
            for a, b in ((s, t), (t, s)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self.flowing.wait(0.2):
                    if self.closed:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for x in (src, dst):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def pause(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def cut(self):
        self.accepting = False
        with self.lock:
            socks, self.socks = self.socks, []
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)  # the pumps end and drop them
            except OSError:
                pass

    def restore(self):
        self.accepting = True

    def close(self):
        self.closed = True
        self.flowing.set()
        self.cut()
        self.lsock.close()


def nats_request(port, subject, payload=b"", timeout=5.0):
    """One request to a NATS server over its text protocol (a test needs no
    NATS client library): returns the reply's payload."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO")
        inbox = "_INBOX.dlgtest%d" % os.getpid()
        s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                  + ("SUB %s 1\r\n" % inbox).encode()
                  + ("PUB %s %s %d\r\n" % (subject, inbox, len(payload))).encode()
                  + payload + b"\r\n")
        while True:
            line = f.readline()
            if not line:
                raise EOFError("NATS closed the connection: %s" % subject)
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG") or line.startswith(b"HMSG"):
                parts = line.split()
                total = int(parts[-1])
                hdr = int(parts[-2]) if line.startswith(b"HMSG") else 0
                return f.read(total + 2)[hdr:total]
            elif line.startswith(b"-ERR"):
                raise RuntimeError("NATS: %s" % line)
    finally:
        s.close()


NATS = []
NODES = {}
TMP = tempfile.mkdtemp(prefix="dlg-cluster-")
atexit.register(shutil.rmtree, TMP, True)


def wait_for(what, pred, within=10.0, step=0.05):
    deadline = time.time() + within
    while True:
        try:
            v = pred()
        except OSError:
            v = None
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(step)


def wait_routes(servers):
    for s in servers:
        wait_for("%s to route to the others" % s.name,
                 lambda s=s: s.routes() >= len(servers) - 1)


def start_node(node, urls=None):
    urls = urls or ", ".join("nats://127.0.0.1:%d" % s.port for s in NATS)
    d = Daemon(config=write_config(NODE_CONFIG, node=node, urls=urls))
    NODES[node] = d
    return d


def setup():
    assert NATS_SERVER, "nats-server is not installed (apt-get install nats-server)"
    ports = [(free_port(), free_port(), free_port()) for _ in range(3)]
    for i, (p, c, m) in enumerate(ports):
        routes = [ports[j][1] for j in range(3) if j != i]
        NATS.append(NatsServer("n%d" % (i + 1), p, c, m, routes, TMP))
    for s in NATS:
        wait_for("%s monitoring" % s.name, lambda s=s: http_json(s.mport, "/varz"))
    wait_routes(NATS)
    for node in ("a", "b", "c"):
        start_node(node)


def server_of(node):
    """The NATS server node's connection is on."""
    def find():
        for s in NATS:
            if s.alive() and s.subjects_of("dialogued " + node) is not None:
                return s
        return None
    return wait_for("node %s on a NATS server" % node, find)


def client(node, name):
    c = Conn(NODES[node].port, timeout=10)
    c.hello(name=name)
    return c


def join(c, room, **kw):
    rid = c.send(join=pb.Join(room=room, **kw))
    return c.expect("joined", rid), rid


def read_events(c, want, within=10.0):
    """Events (and only events) until `want` of them or `within` seconds."""
    got = []
    deadline = time.time() + within
    while len(got) < want and time.time() < deadline:
        c.sock.settimeout(max(0.05, deadline - time.time()))
        try:
            f = c.recv()
        except socket.timeout:
            break
        kind = f.WhichOneof("msg")
        assert kind == "event", "unexpected %s: %s" % (kind, f)
        got.append(f.event)
    c.sock.settimeout(10)
    return got


def quiet_for(c, seconds=0.3):
    """Nothing more arrives for a while (then a Ping round-trips)."""
    extra = read_events(c, 1, within=seconds)
    assert not extra, "unexpected extra event: %s" % extra[0]
    assert c.barrier() == []


def interest_on(node, room_subject):
    """node's connection subscribes to room_subject on its NATS server."""
    return room_subject in (server_of(node).subjects_of("dialogued " + node) or set())


def interest_everywhere(node, room_subject):
    """...and every other live server has learnt it over its route from
    that server: a publisher anywhere now reaches node."""
    own = server_of(node)
    if room_subject not in (own.subjects_of("dialogued " + node) or set()):
        return False
    own_id = http_json(own.mport, "/varz")["server_id"]
    for s in NATS:
        if s is own or not s.alive():
            continue
        routes = http_json(s.mport, "/routez?subs=1").get("routes") or []
        if not any(r.get("remote_id") == own_id and
                   room_subject in (r.get("subscriptions_list") or []) for r in routes):
            return False
    return True


# ---- tests ---------------------------------------------------------------

def test_cross_node_exactly_once():
    """Publisher on B; members on A, B and C: each event once for each, in
    order, numbered by each member's own node without gaps."""
    room = "chat.main:1"
    subs = {}
    for node in ("a", "b", "c"):
        c = client(node, "sub-" + node)
        j, _ = join(c, room)
        subs[node] = (c, j)
    # The room subject escapes '.' and ':' (docs/cluster.md).
    for node in ("a", "b", "c"):
        wait_for("interest of node " + node,
                 lambda n=node: interest_everywhere(n, "dialogue.room.chat%2Emain%3A1"))
    pub = client("b", "pub")
    join(pub, room)
    n = 200
    for i in range(n):
        ack, before = pub.trigger(room, "say", b"m%d" % i)
        assert [e.data for e in before] == [b"m%d" % i], before
        assert ack.recipients == 2, ack  # this node's members: sub-b and pub
    for node, (c, j) in subs.items():
        got = read_events(c, n)
        assert [e.data for e in got] == [b"m%d" % i for i in range(n)], \
            "node %s: %d events, first differences: %s" % (
                node, len(got), [e.data for e in got][:5])
        assert [e.seq for e in got] == list(range(j.seq + 1, j.seq + n + 1)), node
        assert {e.epoch for e in got} == {j.epoch}, node
        assert {e.room for e in got} == {room}
        quiet_for(c)
    quiet_for(pub)
    for c, _ in subs.values():
        c.close()
    pub.close()


def test_interest_follows_local_members():
    """Node C subscribes to a room's subject on its first local member and
    unsubscribes when the last one leaves."""
    subject = "dialogue.room.quiet"
    assert not interest_on("c", subject)
    c1 = client("c", "q1")
    c2 = client("c", "q2")
    join(c1, "quiet")
    wait_for("interest on", lambda: interest_everywhere("c", subject))
    join(c2, "quiet")
    # Another node's event reaches both once.
    pa = client("a", "qpub")
    join(pa, "quiet")
    pa.trigger("quiet", "x", b"one")
    for c in (c1, c2):
        assert [e.data for e in read_events(c, 1)] == [b"one"]
    rid = c1.send(leave=pb.Leave(room="quiet"))
    c1.expect("left", rid)
    time.sleep(0.3)
    assert interest_on("c", subject), "c2 is still a member"
    c2.close()  # a disconnect counts as leaving
    wait_for("interest off", lambda: not interest_on("c", subject))
    assert "interest in room quiet off" in NODES["c"].logtext()
    # Events go on without node C taking them.
    pa.trigger("quiet", "x", b"two")
    quiet_for(c1)
    c1.close()
    pa.close()


class Streamer(threading.Thread):
    """Triggers numbered events into room from node as fast as acks come
    back (with a pause), until stop()."""

    def __init__(self, node, room, pause=0.004):
        super().__init__(daemon=True)
        self.c = client(node, "streamer")
        join(self.c, room)
        rid = self.c.send(unsubscribe=pb.Unsubscribe(room=room, all=True))
        self.c.expect("joined", rid)
        self.room, self.pause = room, pause
        self.sent = 0
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                rid = self.c.send(trigger=pb.Trigger(room=self.room, event="tick",
                                                     data=b"%d" % self.sent))
                while True:
                    f = self.c.recv()
                    # A member: its node's Gap (after a reconnect) may come.
                    if f.WhichOneof("msg") in ("event", "gap"):
                        continue
                    assert f.WhichOneof("msg") == "ack" and f.request_id == rid, f
                    break
                self.sent += 1
                time.sleep(self.pause)
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(10)
        assert not self.is_alive(), "streamer did not stop"
        if self.error:
            raise self.error
        self.c.close()
        return self.sent


def test_nats_server_killed_during_stream():
    """The NATS server node A is connected to dies mid-stream: A reconnects
    to another one and its member keeps receiving; what it misses is only
    the failover window (reported), never a duplicate or a reordering. The
    publisher's own node (B) delivers everything to its members."""
    room = "chat.main:1"
    members = {}
    for node in ("a", "b", "c"):
        c = client(node, "kill-" + node)
        join(c, room)
        members[node] = c
    for node in members:
        wait_for("interest",
                 lambda n=node: interest_everywhere(n, "dialogue.room.chat%2Emain%3A1"))
    victim = server_of("a")
    st = Streamer("b", room)
    st.start()
    time.sleep(1.0)
    killed_at = st.sent
    victim.kill()
    t_kill = time.time()
    # Wait until A is on another server again, then stream a while more.
    wait_for("node a to reconnect", lambda: server_of("a") is not victim, within=15)
    reconnect_s = time.time() - t_kill
    time.sleep(1.5)
    after_reconnect = st.sent
    time.sleep(1.0)
    total = st.stop()
    assert total > after_reconnect + 50, "the stream was too slow to say anything"
    report = []
    for node, c in members.items():
        frames = read_frames(c, total, within=10)
        got = [int(f.event.data) for f in frames if f.WhichOneof("msg") == "event"]
        gaps = [f.gap for f in frames if f.WhichOneof("msg") == "gap"]
        assert len(got) == len(set(got)), "node %s: duplicates" % node
        assert got == sorted(got), "node %s: out of order" % node
        missing = sorted(set(range(total)) - set(got))
        report.append("%s lost %d of %d %s, %d Gap" % (
            node, len(missing), total, missing[:3] + (["..."] if len(missing) > 3 else []),
            len(gaps)))
        # Issue 24: a member whose node lost events is told so.
        assert gaps or not missing, "node %s lost %s without a Gap" % (node, missing[:5])
        if node == "a":
            assert gaps, "node a reconnected: its member must get a Gap"
        if node == "b":
            assert not missing, "local delivery on the publisher's node lost %s" % missing
        # Everything sent once the node was back is there.
        assert all(i in set(got) for i in range(after_reconnect, total)), \
            "node %s missed events after the failover: %s" % (node, missing)
        # Loss, if any, lies around the kill.
        assert all(m >= killed_at - 50 for m in missing), \
            "node %s lost events long before the kill: %s" % (node, missing[:5])
        c.close()
    print("failover: killed %s after %d events; node a back in %.2fs; %s"
          % (victim.name, killed_at, reconnect_s, "; ".join(report)), flush=True)
    victim.start()
    wait_routes(NATS)


def test_dialogue_node_killed_client_moves():
    """Node C is killed; its client reconnects to node A, asks to recover
    from its position on C, and gets A's kept history (complete = false:
    another node's numbering) holding what was published meanwhile, then
    live events from A."""
    room = "kept"
    sc = client("c", "mover")
    j, _ = join(sc, room)
    pub = client("b", "kept-pub")
    join(pub, room)
    watch = client("a", "kept-watch")  # tells when node A has an event
    join(watch, room)
    # Rooms that keep history are taken by every node from the start.
    wait_for("node a takes kept", lambda: interest_everywhere("a", "dialogue.room.kept"))
    wait_for("node c takes kept", lambda: interest_everywhere("c", "dialogue.room.kept"))
    for i in range(3):
        pub.trigger(room, "note", b"before-%d" % i)
    got = read_events(sc, 3)
    assert [e.data for e in got] == [b"before-%d" % i for i in range(3)]
    epoch_c, seq_c = got[-1].epoch, got[-1].seq
    NODES["c"].stop(signal.SIGKILL)
    for i in range(3):
        pub.trigger(room, "note", b"away-%d" % i)
    sc.close()
    # An Ack says node B took the event, not that the others have it yet.
    seen = [e.data for e in read_events(watch, 6)]
    assert seen[-3:] == [b"away-%d" % i for i in range(3)], seen
    # The client library takes one server; a client that knows another
    # node's port moves there (docs/cluster.md).
    moved = client("a", "mover")
    rid = moved.send(join=pb.Join(room=room, recover=True, epoch=epoch_c, since_seq=seq_c))
    ja = moved.expect("joined", rid)
    batch = moved.expect("history_batch", rid)
    assert ja.epoch != epoch_c
    assert not batch.complete, "another node's epoch cannot be recovered exactly"
    assert batch.epoch == ja.epoch
    datas = [e.data for e in batch.events]
    for i in range(3):
        assert b"away-%d" % i in datas, datas
        assert b"before-%d" % i in datas, datas
    assert [e.seq for e in batch.events] == sorted(e.seq for e in batch.events)
    pub.trigger(room, "note", b"live")
    assert [e.data for e in read_events(moved, 1)] == [b"live"]
    moved.close()
    watch.close()
    pub.close()


def read_frames(c, want_events, within=10.0):
    """Events and Gap frames, in arrival order, until `want_events` events or
    `within` seconds."""
    got, n = [], 0
    deadline = time.time() + within
    while n < want_events and time.time() < deadline:
        c.sock.settimeout(max(0.05, deadline - time.time()))
        try:
            f = c.recv()
        except socket.timeout:
            break
        kind = f.WhichOneof("msg")
        assert kind in ("event", "gap"), "unexpected %s: %s" % (kind, f)
        got.append(f)
        n += kind == "event"
    c.sock.settimeout(10)
    return got


def nats_hpub(port, subject, headers, payload, timeout=5.0):
    """Publishes one message with headers to a NATS server over its text
    protocol, as another node would, and waits for the server's PONG (the
    message is routed by then)."""
    hdr = b"NATS/1.0\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                                       for k, v in headers) + b"\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO")
        s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\n'
                  + b"HPUB %s %d %d\r\n" % (subject.encode(), len(hdr), len(hdr) + len(payload))
                  + hdr + payload + b"\r\nPING\r\n")
        while True:
            line = f.readline()
            if not line or line.startswith(b"-ERR"):
                raise RuntimeError("NATS: %r" % line)
            if line.startswith(b"PONG"):
                return
    finally:
        s.close()


def test_events_lost_between_nodes_told_of_the_gap():
    """Issue 24: core NATS may drop a message in its routes (a server dying
    mid-stream) while this node's own link never breaks. Each node numbers
    what it publishes per room (header Dialogue-Seq: RUN-N), so a jump in
    another node's numbers reaches the members as a Gap. A node that
    started again (new RUN) is not a loss; neither is a repeated number."""
    room, subject = "quiet", "dialogue.room.quiet"
    m = client("a", "seq-m")
    jm, _ = join(m, room)
    wait_for("a's interest", lambda: interest_everywhere("a", subject))

    def publish(run, n, text):
        ev = pb.Event(room=room, event="say", data=text.encode(), seq=n, epoch=1, ts_ms=1)
        nats_hpub(server_of("a").port, subject,
                  [("Dialogue-Node", "ghost"), ("Dialogue-Seq", "%x-%d" % (run, n))],
                  frame(pb.ServerFrame(event=ev).SerializeToString()))

    publish(0xabc, 1, "one")
    publish(0xabc, 2, "two")
    publish(0xabc, 5, "five")      # 3 and 4 never came
    publish(0xdef, 1, "restart")  # the node started again: no gap
    publish(0xdef, 1, "repeat")   # a repeat: no gap
    publish(0xdef, 2, "next")
    got = read_frames(m, 6)
    kinds = [(f.WhichOneof("msg"), f.event.data if f.WhichOneof("msg") == "event" else b"")
             for f in got]
    assert kinds == [("event", b"one"), ("event", b"two"), ("gap", b""), ("event", b"five"),
                     ("event", b"restart"), ("event", b"repeat"), ("event", b"next")], kinds
    g = got[2].gap
    assert g.room == room and g.epoch == jm.epoch and g.seq == got[1].event.seq, (g, got[1])
    assert "2 event(s) node ghost published in room quiet did not reach node a" in g.reason, \
        g.reason
    quiet_for(m)
    m.close()


def recover(c, room, epoch, since_seq):
    rid = c.send(join=pb.Join(room=room, recover=True, epoch=epoch, since_seq=since_seq))
    c.expect("joined", rid)
    return c.expect("history_batch", rid)


def test_link_lost_members_told_of_the_gap():
    """Issue 24: node P's NATS link is down for a while (a TCP relay in the
    test refuses it) and events published on node B meanwhile never reach
    it. When the link is back, each member of P's rooms gets one Gap frame
    (room, P's epoch, the last seq before the hole) in order with the
    events; a recovery on P from a position before the hole is incomplete,
    one from after it is exact."""
    room, subject = "chat.main:1", "dialogue.room.chat%2Emain%3A1"
    px = LinkProxy(NATS[0].port)
    atexit.register(px.close)
    p = start_node("p", urls="nats://127.0.0.1:%d" % px.port)
    try:
        m = client("p", "gap-m")
        jm, _ = join(m, room)
        mk = client("p", "gap-k")
        jk, _ = join(mk, "kept")
        wait_for("p's interest", lambda: interest_everywhere("p", subject))
        wait_for("p's interest in kept", lambda: interest_everywhere("p", "dialogue.room.kept"))
        pub = client("b", "gap-pub")
        join(pub, room)
        join(pub, "kept")
        pub.trigger(room, "say", b"before")
        pub.trigger("kept", "note", b"before")
        before = read_events(m, 1)
        kept_before = read_events(mk, 1)
        assert [e.data for e in before] == [b"before"]
        px.cut()
        wait_for("p to lose its link", lambda: "lost its NATS connection" in p.logtext())
        for i in range(20):
            pub.trigger(room, "say", b"during-%d" % i)
            pub.trigger("kept", "note", b"during-%d" % i)
        time.sleep(0.5)
        px.restore()
        wait_for("p to reconnect", lambda: "reconnected to NATS" in p.logtext(), within=15)
        wait_for("p's interest again", lambda: interest_everywhere("p", subject))
        wait_for("p's kept interest again",
                 lambda: interest_everywhere("p", "dialogue.room.kept"))
        pub.trigger(room, "say", b"after")
        pub.trigger("kept", "note", b"after")
        for c, r, b4, j in ((m, room, before, jm), (mk, "kept", kept_before, jk)):
            got = read_frames(c, 1)
            kinds = [f.WhichOneof("msg") for f in got]
            assert kinds == ["gap", "event"], (r, got)
            g, after = got[0].gap, got[1].event
            assert g.room == r and g.epoch == j.epoch and g.seq == b4[-1].seq, (g, b4[-1])
            assert "not connected to NATS" in g.reason, g.reason
            assert after.data == b"after" and after.seq == g.seq + 1, after
            quiet_for(c)
        # The hole is in P's history too.
        late = client("p", "gap-late")
        b = recover(late, "kept", jk.epoch, kept_before[-1].seq)
        assert not b.complete and [e.data for e in b.events] == [b"after"], b
        late.close()
        late = client("p", "gap-late2")
        b = recover(late, "kept", jk.epoch, kept_before[-1].seq + 1)
        assert b.complete and list(b.events) == [], b
        late.close()
        assert "1 member(s) told" in p.logtext() or "2 member(s) told" in p.logtext()
        for c in (m, mk, pub):
            c.close()
    finally:
        px.restore()
        rc = p.stop()
        NODES.pop("p", None)
        px.close()
    assert rc == 0, p.logtext()[-2000:]


TLS_NODE_CONFIG = NODE_CONFIG.replace("  nats: [{urls}]\n", """  nats: [{urls}]
  tls:
    ca: {certs}/ca.crt
    cert: {certs}/client-publisher.crt
    key: {certs}/client-publisher.key
""")


def test_tls_to_nats_and_duplicate_node_id():
    """A NATS server that requires TLS and a client certificate: two nodes
    reach each other through it. A third node started with an id already
    in use drops what comes under its own id, and says why."""
    port, mport = free_port(), free_port()
    conf = os.path.join(TMP, "tls.conf")
    with open(conf, "w") as f:
        f.write("listen: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\ntls {\n  cert_file: %s/server.crt\n"
                "  key_file: %s/server.key\n  ca_file: %s/ca.crt\n  verify: true\n}\n"
                % (port, mport, CERTS, CERTS, CERTS))
    log = open(os.path.join(TMP, "tls.log"), "w")
    srv = subprocess.Popen([NATS_SERVER, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    atexit.register(lambda: srv.poll() is None and srv.kill())
    nodes = []
    try:
        wait_for("TLS NATS server", lambda: http_json(mport, "/varz"))
        urls = "tls://127.0.0.1:%d" % port
        for node in ("t1", "t2", "t1"):
            nodes.append(Daemon(config=write_config(TLS_NODE_CONFIG, node=node, urls=urls)))
        t1, t2, dup = nodes
        for d in nodes:
            assert "connected to NATS at tls://127.0.0.1:%d" % port in d.logtext(), d.logtext()
        members = []
        for d in (t2, dup):
            c = Conn(d.port, timeout=10)
            c.hello(name="tls-sub")
            join(c, "quiet")
            members.append(c)
        names = ("dialogued t2", "dialogued t1")

        def subscribed():
            conns = http_json(mport, "/connz?subs=1").get("connections", [])
            subs = [set(c.get("subscriptions_list") or []) for c in conns
                    if c.get("name") in names]
            return len(subs) == 3 and sum("dialogue.room.quiet" in x for x in subs) == 2
        wait_for("the TLS nodes' interest", subscribed)
        p = Conn(t1.port, timeout=10)
        p.hello(name="tls-pub")
        join(p, "quiet")
        p.trigger("quiet", "x", b"over tls")
        assert [e.data for e in read_events(members[0], 1)] == [b"over tls"]
        quiet_for(members[1])
        wait_for("the duplicate id warning",
                 lambda: "carries this node's node_id t1" in dup.logtext())
        for c in members + [p]:
            c.close()
    finally:
        for d in nodes:
            d.stop()
        srv.kill()
        srv.wait(5)
        log.close()


def stop_all(nodes, nats):
    """Every node exits 0 on SIGTERM (NATS connection closed on the loop, no
    leak under ASan); then the NATS servers are stopped."""
    for node, d in nodes.items():
        if d.proc.poll() is None:
            rc = d.stop()
            assert rc == 0, "node %s exited %s: %s" % (node, rc, d.logtext()[-2000:])
    for s in nats:
        if s.alive():
            s.kill()


def test_nodes_stop_cleanly():
    """Last: see stop_all."""
    stop_all(NODES, NATS)


def main():
    try:
        setup()
    except BaseException:
        for s in NATS:
            if s.alive():
                s.kill()
        raise
    run_tests([test_cross_node_exactly_once, test_interest_follows_local_members,
               test_nats_server_killed_during_stream, test_dialogue_node_killed_client_moves,
               test_link_lost_members_told_of_the_gap, test_events_lost_between_nodes_told_of_the_gap,
               test_tls_to_nats_and_duplicate_node_id, test_nodes_stop_cleanly],
              per_test_timeout=60)


if __name__ == "__main__":
    main()
