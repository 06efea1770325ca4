"""History against a real daemon (issue 8): History requests (newest-first
and by seq), members only, sync on join with no gap and no duplicate while
events flow (Join and auto_join), recovery after a cut connection, epochs;
with `store: sqlite`: durability across SIGKILL, the epoch kept across a
clean restart and changed after a wipe, corrupt and truncated files at
start, and a full disk (a small tmpfs, or RLIMIT_FSIZE where mounting is
not allowed) while live delivery goes on."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import dlgtest  # noqa: E402
from dlgtest import Conn, Daemon, pb, run_tests, write_config  # noqa: E402

BASE = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  anonymous: true
"""

ROOMS = """
rooms:
  - id: feed
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 5000}
    sync_history_on_join: true
  - id: small
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: tick, limit: 5}
      - {event: "*", limit: 100}
  - id: pertype
    events: ["*"]
    default_subscriptions: [a, b]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 100}
    sync_history_on_join: 2
  - id: aged
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 100, max_age_seconds: 1}
  - id: closed
    events: ["*"]
    history:
      - {event: "*", limit: 10}
  - id: auto
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 100}
    sync_history_on_join: true
auto_join:
  - {role: "*", rooms: [auto]}
"""

D = None


def setup():
    global D
    D = Daemon(config=write_config(BASE + ROOMS))


def client(port, name="c"):
    c = Conn(port, timeout=10)
    w = c.hello(name=name)
    # Every client auto-joins "auto": its HistoryBatch answers the Hello.
    if any(j.room == "auto" for j in w.auto_joined):
        c.expect("history_batch")
    return c


SYNCED = {"feed", "pertype", "auto"}  # rooms that send a HistoryBatch on join


def join(c, room, **kw):
    """Joins room; a synced room's HistoryBatch is read too, into c.batch."""
    rid = c.send(join=pb.Join(room=room, **kw))
    j = c.expect("joined", rid)
    c.batch = c.expect("history_batch", rid) if room in SYNCED else None
    return j, rid


def seqs(events):
    return [e.seq for e in events]


def history(c, room, **kw):
    rid = c.send(history=pb.History(room=room, **kw))
    return c.expect("history_batch", rid)


class Publisher(threading.Thread):
    """Triggers `event` into room as fast as acks come back (with a short
    pause), until stop(); records every acked seq."""

    def __init__(self, port, room, event="tick", pause=0.001, payload=b"p"):
        super().__init__(daemon=True)
        self.c = client(port, "publisher")
        join(self.c, room)
        rid = self.c.send(unsubscribe=pb.Unsubscribe(room=room, all=True))
        self.c.expect("joined", rid)
        self.room, self.event, self.pause, self.payload = room, event, pause, payload
        self.acked = []
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                ack, _ = self.c.trigger(self.room, self.event,
                                        self.payload + b"%d" % len(self.acked))
                self.acked.append(ack.seq)
                time.sleep(self.pause)
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(10)
        assert not self.is_alive(), "publisher did not stop"
        if self.error:
            raise self.error
        self.c.close()
        return self.acked[-1]


def read_until(c, last_seq, have=0, within=10.0):
    """Live events until one with seq >= last_seq arrives (none when the
    caller already has up to last_seq)."""
    got = []
    deadline = time.time() + within
    while (got[-1].seq if got else have) < last_seq:
        assert time.time() < deadline, "live events stopped at %s, want %d" % (
            got[-1].seq if got else None, last_seq)
        got.append(c.expect("event", 0))
    return got


# ---- History requests ----------------------------------------------------

def test_history_newest_first_and_by_seq():
    c = client(D.port, "h")
    j, _ = join(c, "small")
    base = j.seq
    for i in range(8):
        c.trigger("small", "tick", b"t%d" % i)
    for i in range(3):
        c.trigger("small", "other", b"o%d" % i)
    ticks = list(range(base + 4, base + 9))  # limit 5: the last five ticks
    b = history(c, "small", event="tick")
    assert seqs(b.events) == ticks, b
    assert not b.complete, "ticks 1..3 were dropped: the whole range cannot be served"
    assert b.room == "small" and b.epoch == j.epoch
    assert [e.data for e in b.events] == [b"t%d" % i for i in range(3, 8)]
    b = history(c, "small", event="tick", limit=2)
    assert seqs(b.events) == ticks[-2:] and b.complete, b
    b = history(c, "small", event="tick", start=2, limit=2)
    assert seqs(b.events) == ticks[1:3] and b.complete, b
    b = history(c, "small", limit=4)  # every type, newest first
    assert seqs(b.events) == [base + 8, base + 9, base + 10, base + 11], b
    assert [e.event for e in b.events] == ["tick", "other", "other", "other"]
    b = history(c, "small", by_seq=True, since_seq=base + 6)
    assert seqs(b.events) == list(range(base + 7, base + 12)) and b.complete, b
    b = history(c, "small", by_seq=True, since_seq=base + 6, limit=2)
    assert seqs(b.events) == [base + 7, base + 8] and b.complete, b
    b = history(c, "small", event="tick", by_seq=True, since_seq=base)
    assert seqs(b.events) == ticks and not b.complete, "ticks after since_seq were dropped"
    b = history(c, "small", event="nothing")
    assert list(b.events) == [] and b.complete
    rid = c.send(history=pb.History(room="small", event="bad name!"))
    c.expect_error("INVALID_ARGUMENT", rid, contains="bad name!")
    c.close()


def test_history_max_age():
    c = client(D.port, "age")
    join(c, "aged")
    c.trigger("aged", "x", b"1")
    time.sleep(1.2)
    ack, _ = c.trigger("aged", "x", b"2")
    b = history(c, "aged")
    assert seqs(b.events) == [ack.seq], b
    c.close()


def test_history_members_only():
    outsider = client(D.port, "outsider")
    rid = outsider.send(history=pb.History(room="small"))
    outsider.expect_error("FAILED_PRECONDITION", rid, contains="not a member of room small")
    # Refused at Join: History says the same, nothing more.
    rid = outsider.send(join=pb.Join(room="closed"))
    outsider.expect_error("PERMISSION_DENIED", rid)
    rid = outsider.send(history=pb.History(room="closed"))
    outsider.expect_error("FAILED_PRECONDITION", rid, contains="not a member of room closed")
    rid = outsider.send(history=pb.History(room="nowhere"))
    outsider.expect_error("NOT_FOUND", rid)
    # After leaving, no more history either.
    join(outsider, "small")
    history(outsider, "small")
    rid = outsider.send(leave=pb.Leave(room="small"))
    outsider.expect("left", rid)
    rid = outsider.send(history=pb.History(room="small"))
    outsider.expect_error("FAILED_PRECONDITION", rid)
    outsider.close()


# ---- sync on join ----------------------------------------------------------

def test_sync_on_join_no_gap_no_duplicate_while_events_flow():
    pub = Publisher(D.port, "feed")
    pub.start()
    joiners = []
    try:
        for i in range(6):
            time.sleep(0.15)
            c = client(D.port, "j%d" % i)
            j, _ = join(c, "feed")
            batch = c.batch
            assert batch.complete and batch.epoch == j.epoch, batch
            joiners.append((c, j, batch))
        time.sleep(0.2)
    finally:
        last = pub.stop()
    assert len(pub.acked) > 50, "too few events flowed: %d" % len(pub.acked)
    first = None
    for c, j, batch in joiners:
        hist = seqs(batch.events)
        assert hist and hist[-1] == j.seq, (hist[-3:], j.seq)  # everything up to Joined
        live = seqs(read_until(c, last))
        assert live[0] == j.seq + 1, (j.seq, live[:3])          # then nothing missing
        every = hist + live
        assert every == list(range(every[0], last + 1)), "gap or duplicate"
        first = every[0] if first is None else first
        assert every[0] == first, "a joiner's history starts elsewhere"
        assert c.barrier() == []
        c.close()


def test_sync_last_n_per_type():
    p = client(D.port, "p")
    j0, _ = join(p, "pertype")
    for ev in ["a", "b", "c", "a", "a", "b", "c", "b"]:
        p.trigger("pertype", ev, ev.encode())
    c = client(D.port, "n")
    j, _ = join(c, "pertype")
    b = c.batch
    # Subscribed to a and b only: the last 2 of each, merged oldest first.
    s = j0.seq
    assert seqs(b.events) == [s + 4, s + 5, s + 6, s + 8], b
    assert b.complete
    p.close()
    c.close()


def test_sync_on_auto_join_answers_hello():
    p = client(D.port, "p")
    for i in range(3):
        p.trigger("auto", "x", b"%d" % i)
    c = Conn(D.port, timeout=10)
    rid = c.send(hello=pb.Hello(protocol_version=1, client_name="late"))
    w = c.expect("welcome", rid)
    (aj,) = [j for j in w.auto_joined if j.room == "auto"]
    b = c.expect("history_batch", rid)
    assert b.room == "auto" and b.complete and b.epoch == aj.epoch
    assert seqs(b.events)[-3:] == [aj.seq - 2, aj.seq - 1, aj.seq], (seqs(b.events), aj.seq)
    ack, _ = p.trigger("auto", "x", b"live")
    assert c.expect("event", 0).seq == ack.seq == aj.seq + 1
    p.close()
    c.close()


# ---- recovery --------------------------------------------------------------

def test_recovery_after_cut_connection_exactly_once_in_order():
    sub = client(D.port, "sub")
    j, _ = join(sub, "feed")
    rid = sub.send(unsubscribe=pb.Unsubscribe(room="feed", all=True))
    sub.expect("joined", rid)
    rid = sub.send(subscribe=pb.Subscribe(room="feed", events=["msg"]))
    sub.expect("joined", rid)
    pub = Publisher(D.port, "feed", event="msg", pause=0.005)
    pub.start()
    try:
        seen = []
        deadline = time.time() + 10
        while len(seen) < 20:
            assert time.time() < deadline
            seen.append(sub.expect("event", 0))
        epoch = seen[-1].epoch
        assert epoch == j.epoch
        sub.sock.close()  # cut: no Leave, whatever was in flight is lost
        time.sleep(2.0)   # events keep flowing while it is away
        sub = client(D.port, "sub-again")
        # Recovery replaces the room's sync-on-join batch: one batch.
        rid = sub.send(join=pb.Join(room="feed", recover=True, epoch=epoch,
                                    since_seq=seen[-1].seq))
        j2 = sub.expect("joined", rid)
        assert list(j2.subscriptions) == ["*"]  # a new membership: defaults
        b = sub.expect("history_batch", rid)
    finally:
        last = pub.stop()
    assert b.complete and b.epoch == epoch, b
    # Recovery replays the member's subscriptions: every type here ("*").
    missed = seqs(b.events)
    assert missed and missed[-1] == j2.seq and missed[0] == seen[-1].seq + 1, missed[:3]
    live = seqs(read_until(sub, last, have=j2.seq))
    every = seqs(seen) + missed + live
    assert every == list(range(every[0], last + 1)), "not exactly once, in order"
    assert len(missed) > 100, "the publisher stalled: %d missed" % len(missed)
    sub.close()


def test_recovery_impossible_says_so():
    c = client(D.port, "r")
    j, _ = join(c, "small")
    rid = c.send(leave=pb.Leave(room="small"))
    c.expect("left", rid)
    p = client(D.port, "p")
    join(p, "small")
    for i in range(7):  # the tick ring keeps 5: two are dropped
        p.trigger("small", "tick", b"%d" % i)
    rid = c.send(join=pb.Join(room="small", recover=True, epoch=j.epoch, since_seq=j.seq))
    j2 = c.expect("joined", rid)
    b = c.expect("history_batch", rid)
    assert not b.complete and b.epoch == j.epoch
    assert seqs(b.events)[-5:] == list(range(j2.seq - 4, j2.seq + 1)), (seqs(b.events), j2.seq)
    rid = c.send(leave=pb.Leave(room="small"))
    c.expect("left", rid)
    # Another epoch: incomplete, with what is kept, and the current epoch.
    rid = c.send(join=pb.Join(room="small", recover=True, epoch=j.epoch ^ 1, since_seq=j.seq))
    c.expect("joined", rid)
    b = c.expect("history_batch", rid)
    assert not b.complete and b.epoch == j.epoch and len(b.events) > 0
    rid = c.send(leave=pb.Leave(room="small"))
    c.expect("left", rid)
    # Ahead of the room: it saw events this daemon never had.
    rid = c.send(join=pb.Join(room="small", recover=True, epoch=j.epoch, since_seq=j2.seq + 50))
    c.expect("joined", rid)
    b = c.expect("history_batch", rid)
    assert not b.complete
    # Nothing missed: complete and empty.
    rid = c.send(leave=pb.Leave(room="small"))
    c.expect("left", rid)
    rid = c.send(join=pb.Join(room="small", recover=True, epoch=j.epoch, since_seq=j2.seq))
    c.expect("joined", rid)
    b = c.expect("history_batch", rid)
    assert b.complete and list(b.events) == []
    p.close()
    c.close()


def test_memory_store_epoch_changes_at_restart():
    c = client(D.port, "e")
    j, _ = join(c, "small")
    c.close()
    assert D.stop() == 0, D.logtext()[-2000:]
    setup()
    c = client(D.port, "e2")
    j2, _ = join(c, "small")
    assert j2.epoch != j.epoch and j2.seq == 0
    rid = c.send(leave=pb.Leave(room="small"))
    c.expect("left", rid)
    rid = c.send(join=pb.Join(room="small", recover=True, epoch=j.epoch, since_seq=j.seq))
    c.expect("joined", rid)
    b = c.expect("history_batch", rid)
    assert not b.complete and b.epoch == j2.epoch
    c.close()


# ---- SQLite ----------------------------------------------------------------

SQLITE_ROOMS = """
store: sqlite
store_path: {db}
rooms:
  - id: durable
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 100000}
"""


def sqlite_config(db):
    return write_config(BASE + SQLITE_ROOMS, db=db)


def all_history(c, room):
    """Pages through History by seq until an empty batch."""
    got, since, complete = [], 0, True
    for _ in range(1000):
        b = history(c, room, by_seq=True, since_seq=since)
        complete = complete and b.complete
        if not b.events:
            return got, complete
        got += list(b.events)
        since = b.events[-1].seq
    raise AssertionError("history paging did not end")


def test_sqlite_sigkill_keeps_every_acked_event():
    d = tempfile.mkdtemp(prefix="dlg-db-")
    db = os.path.join(d, "history.db")
    cfg = sqlite_config(db)
    daemon = Daemon(config=cfg)
    try:
        c = client(daemon.port, "w")
        j, _ = join(c, "durable")
        acked = []
        for i in range(300):
            ack, _ = c.trigger("durable", "e%d" % (i % 3), b"payload-%d" % i)
            acked.append((ack.seq, b"payload-%d" % i))
        # Not acked yet when the kill comes: no promise about these.
        for i in range(50):
            c.send(trigger=pb.Trigger(room="durable", event="late", data=b"x"))
        daemon.stop(signal.SIGKILL)
        assert daemon.proc.returncode == -signal.SIGKILL
        c.close()
        daemon = Daemon(config=cfg)
        c = client(daemon.port, "r")
        j2, _ = join(c, "durable")
        assert j2.epoch != j.epoch, "an unclean stop must change the epoch"
        got, complete = all_history(c, "durable")
        kept = {e.seq: e.data for e in got}
        for seq, data in acked:
            assert kept.get(seq) == data, "acked event %d lost or changed" % seq
        assert all(e.epoch == j2.epoch for e in got), "history must speak the current epoch"
        assert j2.seq >= acked[-1][0]
        ack, _ = c.trigger("durable", "after", b"y")
        assert ack.seq == j2.seq + 1, "seq must continue, not restart"
        c.close()
        assert daemon.stop() == 0, daemon.logtext()[-2000:]
    finally:
        if daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)
        shutil.rmtree(d, True)


def test_sqlite_clean_restart_recovers_and_wipe_changes_epoch():
    d = tempfile.mkdtemp(prefix="dlg-db-")
    db = os.path.join(d, "history.db")
    cfg = sqlite_config(db)
    daemon = Daemon(config=cfg)
    try:
        c = client(daemon.port, "w")
        j, _ = join(c, "durable")
        for i in range(10):
            ack, _ = c.trigger("durable", "x", b"%d" % i)
        pos = ack.seq - 4  # the client had seen up to here
        c.close()
        assert daemon.stop() == 0, daemon.logtext()[-2000:]
        daemon = Daemon(config=cfg)
        c = client(daemon.port, "r")
        rid = c.send(join=pb.Join(room="durable", recover=True, epoch=j.epoch, since_seq=pos))
        j2 = c.expect("joined", rid)
        b = c.expect("history_batch", rid)
        assert j2.epoch == j.epoch and j2.seq == ack.seq, (j2, ack)
        assert b.complete and seqs(b.events) == list(range(pos + 1, ack.seq + 1)), b
        c.close()
        assert daemon.stop() == 0
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        daemon = Daemon(config=cfg)
        c = client(daemon.port, "w")
        rid = c.send(join=pb.Join(room="durable", recover=True, epoch=j.epoch, since_seq=pos))
        j3 = c.expect("joined", rid)
        b = c.expect("history_batch", rid)
        assert j3.epoch != j.epoch and j3.seq == 0 and not b.complete and not b.events, (j3, b)
        c.close()
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)
        shutil.rmtree(d, True)


def test_sqlite_corrupt_or_truncated_file_at_start():
    d = tempfile.mkdtemp(prefix="dlg-db-")
    db = os.path.join(d, "history.db")
    cfg = sqlite_config(db)
    try:
        with open(db, "wb") as f:
            f.write(b"SQLite format 3\x00" + os.urandom(8000))
        daemon = Daemon(config=cfg)
        c = client(daemon.port, "w")
        j, _ = join(c, "durable")
        for i in range(200):
            ack, _ = c.trigger("durable", "x", b"z" * 200)
        c.close()
        assert daemon.stop() == 0, daemon.logtext()[-2000:]
        log = daemon.logtext()
        assert "moved it to %s.corrupt-" % db in log, log[-2000:]
        size = os.path.getsize(db)
        assert size > 4096 * 4, size
        with open(db, "r+b") as f:
            f.truncate(size // 2)
        daemon = Daemon(config=cfg)
        c = client(daemon.port, "r")
        j2, _ = join(c, "durable")
        assert j2.epoch != j.epoch and j2.seq == 0
        ack, _ = c.trigger("durable", "x", b"works")
        assert ack.seq == 1
        c.close()
        assert daemon.stop() == 0
        assert "moved it to %s.corrupt-" % db in daemon.logtext(), daemon.logtext()[-2000:]
        moved = [n for n in os.listdir(d) if ".corrupt-" in n and not n.endswith("-wal")]
        assert len(moved) == 2, moved
    finally:
        shutil.rmtree(d, True)


def test_sqlite_unusable_path_is_a_clear_error():
    cfg = sqlite_config("/nonexistent-dir/history.db")
    try:
        Daemon(config=cfg)
    except RuntimeError as e:
        assert "/nonexistent-dir/history.db" in str(e), e
        return
    raise AssertionError("daemon started with an unusable store path")


def test_sqlite_second_daemon_on_the_same_file_is_refused():
    d = tempfile.mkdtemp(prefix="dlg-db-")
    cfg = sqlite_config(os.path.join(d, "history.db"))
    first = Daemon(config=cfg)
    try:
        try:
            Daemon(config=cfg).stop()
        except RuntimeError as e:
            assert "history.db: database is locked" in str(e), e
        else:
            raise AssertionError("two daemons share one store file")
    finally:
        assert first.stop() == 0
        shutil.rmtree(d, True)


class SmallDisk:
    """A directory where writes fail once ~256 KiB are used: a tmpfs when
    this process may mount (root), else RLIMIT_FSIZE on the daemon (writes
    past the limit fail with EFBIG; SIGXFSZ is ignored so they fail instead
    of killing it)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dlg-full-")
        self.mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        self.wrapper = None
        if not self.mounted:
            self.wrapper = os.path.join(self.dir, "limited-dialogued")
            with open(self.wrapper, "w") as f:
                f.write("#!/bin/bash\ntrap '' XFSZ\nulimit -f 512\nexec %s \"$@\"\n"
                        % dlgtest.DAEMON)
            os.chmod(self.wrapper, 0o755)

    def start(self, cfg):
        if not self.wrapper:
            return Daemon(config=cfg)
        saved = dlgtest.DAEMON
        dlgtest.DAEMON = self.wrapper
        try:
            # The log goes to the same limit: keep it short.
            return Daemon("--log-level", "info", config=cfg)
        finally:
            dlgtest.DAEMON = saved

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.dir])
        shutil.rmtree(self.dir, True)


def test_sqlite_disk_full_keeps_serving_live_events():
    disk = SmallDisk()
    daemon = None
    try:
        cfg = sqlite_config(os.path.join(disk.dir, "history.db"))
        daemon = disk.start(cfg)
        sub = client(daemon.port, "sub")
        join(sub, "durable")
        pub = client(daemon.port, "pub")
        join(pub, "durable")
        rid = pub.send(unsubscribe=pb.Unsubscribe(room="durable", all=True))
        pub.expect("joined", rid)
        big = b"D" * 30000
        failed = acked = 0
        seen = []
        for i in range(40):
            rid = pub.send(trigger=pb.Trigger(room="durable", event="big", data=big))
            f = pub.recv()
            if f.WhichOneof("msg") == "ack":
                acked += 1
                seen.append(f.ack.seq)
            else:
                assert f.error.code == pb.DATA_LOSS, f
                assert "not stored" in f.error.message and "durable" in f.error.message, f
                failed += 1
            ev = sub.expect("event", 0)  # delivered live either way
            assert ev.data == big
        assert failed > 0, "the disk never filled (acked %d)" % acked
        assert acked > 0, "nothing fit on the disk"
        # Still serving: small events are delivered, pings answered.
        pub.send(trigger=pb.Trigger(room="durable", event="small", data=b"s"))
        pub.recv()  # Ack, or DATA_LOSS if even this does not fit
        assert sub.expect("event", 0).data == b"s"
        assert pub.barrier() == []
        log = daemon.logtext()
        assert "not written" in log and "live delivery goes on" in log, log[-3000:]
        # What was acked is readable (from memory while running).
        got, _ = all_history(sub, "durable")
        have = {e.seq for e in got}
        assert all(s in have for s in seen)
        sub.close()
        pub.close()
        assert daemon.stop() == 0, daemon.logtext()[-3000:]
    finally:
        if daemon and daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)
        disk.close()


AUTO_CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth: {anonymous: true}
rooms:
  - id: auto
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history: [{event: "*", limit: 10}]
auto_join:
  - {role: "*", rooms: [auto]}
"""


def test_recover_join_on_an_auto_joined_room_replays():
    d = Daemon(config=write_config(AUTO_CONFIG))
    try:
        c = Conn(d.port)
        w = c.hello()
        assert [j.room for j in w.auto_joined] == ["auto"]
        epoch = w.auto_joined[0].epoch
        for i in range(3):
            c.trigger("auto", "a:b", b"%d" % i)
        rid = c.send(join=pb.Join(room="auto", recover=True, epoch=epoch, since_seq=1))
        j = c.expect("joined", rid)
        assert j.seq == 3
        hb = c.expect("history_batch", rid)
        assert hb.complete and [e.seq for e in hb.events] == [2, 3], hb
        rid = c.send(join=pb.Join(room="auto"))
        c.expect_error("ALREADY_EXISTS", rid)  # a plain second Join is still refused
        c.close()
    finally:
        assert d.stop() == 0


def test_daemon_clean_exit():
    assert D.stop() == 0, D.logtext()[-2000:]


if __name__ == "__main__":
    setup()
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
