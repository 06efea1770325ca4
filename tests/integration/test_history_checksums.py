"""Damaged history in the SQLite store (issue 17, item 4) against a real
daemon: each test fills a store through the daemon, stops it cleanly,
damages the file the way the reliability review did (an empty body, single
bit flips inside bodies that SQLite's own check cannot see, garbage bodies,
a row with seq -7), starts again and checks that every good event is served
unchanged, no damaged one is served, the damage is a gap (complete=false)
only where it lies, and the log names each damaged seq. Also: a store in
the first schema (no checksums) is migrated and still served, and a newer
schema is refused."""
import contextlib
import os
import shutil
import signal
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import Conn, Daemon, pb, run_tests, write_config  # noqa: E402

CONFIG = """
listen:
  - address: 127.0.0.1:0
    cert: {certs}/server.crt
    key: {certs}/server.key
auth:
  anonymous: true
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
  - id: synced
    events: ["*"]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: "*", limit: 100000}
    sync_history_on_join: true
"""


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C, written here independently of the daemon's."""
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


class Store:
    """A temp folder with a store file and the daemon config using it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dlg-crc-")
        self.db = os.path.join(self.dir, "history.db")
        self.cfg = write_config(CONFIG, db=self.db)
        self.daemon = None

    def start(self):
        self.daemon = Daemon(config=self.cfg)
        return self.daemon

    def stop(self):
        assert self.daemon.stop() == 0, self.daemon.logtext()[-3000:]

    def close(self):
        if self.daemon and self.daemon.proc.poll() is None:
            self.daemon.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, True)

    def sql(self):
        """A connection to the file, closed at the end of the with block
        (the daemon must be stopped; it cannot open a file held open)."""
        return contextlib.closing(sqlite3.connect(self.db, isolation_level=None))

    def columns(self):
        with self.sql() as con:
            return [r[1] for r in con.execute("PRAGMA table_info(events)")]


def client(port):
    c = Conn(port, timeout=10)
    c.hello(name="t")
    return c


def fill(store, payloads, room="durable", event="tick"):
    """Starts the daemon, publishes one event per payload (pipelined, every
    one acked: durable), stops cleanly. Returns (epoch, {seq: data})."""
    d = store.start()
    c = client(d.port)
    rid = c.send(join=pb.Join(room=room))
    j = c.expect("joined", rid)
    rid = c.send(unsubscribe=pb.Unsubscribe(room=room, all=True))
    c.expect("joined", rid)
    rids = [c.send(trigger=pb.Trigger(room=room, event=event, data=p)) for p in payloads]
    sent = dict(zip(rids, payloads))
    kept = {}
    while len(kept) < len(payloads):
        f = c.recv()
        if f.WhichOneof("msg") == "history_batch":
            continue
        assert f.WhichOneof("msg") == "ack", f
        kept[f.ack.seq] = sent[f.request_id]
    c.close()
    store.stop()
    return j.epoch, kept


def history(c, room, **kw):
    rid = c.send(history=pb.History(room=room, **kw))
    return c.expect("history_batch", rid)


def all_history(c, room, since=0):
    """Pages by seq until an empty batch: (events, every batch complete)."""
    got, complete = [], True
    for _ in range(1000):
        b = history(c, room, by_seq=True, since_seq=since)
        complete = complete and b.complete
        if not b.events:
            return got, complete
        got += list(b.events)
        since = b.events[-1].seq
    raise AssertionError("history paging did not end")


def recover(c, room, epoch, since):
    rid = c.send(join=pb.Join(room=room, recover=True, epoch=epoch, since_seq=since))
    j = c.expect("joined", rid)
    b = c.expect("history_batch", rid)
    rid = c.send(leave=pb.Leave(room=room))
    c.expect("left", rid)
    return j, b


def check_served(c, room, epoch, kept, damaged):
    """Every kept event but the damaged ones is served unchanged, in order;
    the damaged ones are not; recovering or paging from before the first
    damaged seq is incomplete, from after the last one complete. Leaves c a
    member of room."""
    want = [s for s in sorted(kept) if s not in damaged]
    last = max(damaged)
    j, b = recover(c, room, epoch, 0)
    assert j.epoch == epoch
    assert [e.seq for e in b.events] == want, ([e.seq for e in b.events], sorted(damaged))
    assert not b.complete, "damaged events were left out: the batch must say it is incomplete"
    j, b = recover(c, room, epoch, last)
    assert b.complete and [e.seq for e in b.events] == [s for s in want if s > last]
    rid = c.send(join=pb.Join(room=room))
    c.expect("joined", rid)
    got, complete = all_history(c, room)
    assert [e.seq for e in got] == want, ([e.seq for e in got], sorted(damaged))
    for e in got:
        assert e.data == kept[e.seq] and e.event == "tick" and e.room == room, e
        assert e.epoch == epoch, e
    assert not complete, "damaged events were left out: the history must say it is incomplete"
    got, complete = all_history(c, room, since=last)
    assert complete and [e.seq for e in got] == [s for s in want if s > last]


def damaged_logged(log, seqs):
    for s in seqs:
        assert "stored event seq %d " % s in log, (s, log[-3000:])


def set_body(store, seq, body, crc=None):
    """Replaces the body of event seq; crc: also set the checksum (when the
    file has one) to this value."""
    with store.sql() as con:
        con.execute("UPDATE events SET body = ? WHERE room = 'durable' AND seq = ?", (body, seq))
        if crc is not None and "crc" in store.columns():
            con.execute("UPDATE events SET crc = ? WHERE room = 'durable' AND seq = ?",
                        (crc, seq))


# ---- the findings --------------------------------------------------------

def test_empty_body_is_a_reported_gap():
    """Finding: an empty stored body aborted the ASan build at start
    (memcpy from NULL) and was served as an event by the release build. An
    encoded Event is never empty, so an empty body is damage."""
    st = Store()
    try:
        epoch, kept = fill(st, [b"e%02d" % i for i in range(20)])
        seqs = sorted(kept)
        # One with its old checksum, one whose checksum matches the empty
        # body (CRC-32C of nothing is 0): the body check must catch it.
        set_body(st, seqs[5], b"")
        set_body(st, seqs[12], b"", crc=0)
        d = st.start()
        c = client(d.port)
        check_served(c, "durable", epoch, kept, {seqs[5], seqs[12]})
        c.close()
        st.stop()
        log = d.logtext()
        damaged_logged(log, [seqs[5], seqs[12]])
        assert "empty body" in log, log[-3000:]
    finally:
        st.close()


def test_bit_flips_in_bodies_are_gaps_never_altered_data():
    """Finding: 10 of 10 single-bit flips inside stored bodies passed
    SQLite's integrity check and were served altered with complete=true.
    Here the bits are flipped in the file itself, as a disk would."""
    st = Store()
    try:
        epoch, kept = fill(st, [b"flip-%03d-" % i + b"abcdefghij" * 6 for i in range(40)])
        seqs = sorted(kept)
        with st.sql() as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            bodies = dict(con.execute("SELECT seq, body FROM events WHERE room = 'durable'"))
        victims = seqs[3:40:4]  # 10 events spread over the room
        assert len(victims) == 10
        with open(st.db, "rb") as f:
            raw = bytearray(f.read())
        for n, s in enumerate(victims):
            body = bodies[s]
            at = raw.find(body)
            assert at >= 0 and raw.find(body, at + 1) < 0, "body of %d not found once" % s
            # Five inside the payload (the body still decodes, altered), five
            # anywhere in the body (lengths, seq, epoch... may change).
            data = body.find(b"abcdefghij")
            bit = (data * 8 + n * 37) if n < 5 else (n * 37 + 11) % (len(body) * 8)
            raw[at + bit // 8] ^= 1 << (bit % 8)
        with open(st.db, "wb") as f:
            f.write(raw)
        with st.sql() as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        d = st.start()
        c = client(d.port)
        check_served(c, "durable", epoch, kept, set(victims))
        c.close()
        st.stop()
        log = d.logtext()
        damaged_logged(log, victims)
        assert "10 damaged stored event(s)" in log, log[-3000:]
    finally:
        st.close()


def test_garbage_body_is_a_gap_and_batches_still_decode():
    """Finding: a garbage body made every History batch covering it
    undecodable. One garbage body keeps its old checksum; the other gets a
    checksum that matches the garbage, so only the body check can refuse
    it; a third row holds a valid Event of another seq."""
    st = Store()
    try:
        epoch, kept = fill(st, [b"g%02d" % i for i in range(30)])
        seqs = sorted(kept)
        garbage = b"\xff\xfe\x00garbage" * 4
        set_body(st, seqs[4], garbage)
        set_body(st, seqs[9], garbage, crc=crc32c(garbage))
        other = pb.Event(room="durable", event="tick", data=b"moved", seq=seqs[20],
                         epoch=epoch, ts_ms=1).SerializeToString()
        set_body(st, seqs[15], other, crc=crc32c(other))
        d = st.start()
        c = client(d.port)
        check_served(c, "durable", epoch, kept, {seqs[4], seqs[9], seqs[15]})
        c.close()
        st.stop()
        damaged_logged(d.logtext(), [seqs[4], seqs[9], seqs[15]])
    finally:
        st.close()


def test_row_with_seq_minus_7_hides_nothing():
    """Finding: one row with seq -7 made 399 of 400 events disappear
    silently (and pushed the room's seq to 2^64-7). The row is a copy of a
    good one, checksum included: only the seq check can refuse it. Its true
    place is unknown, so a request reaching back before this start is
    incomplete; one from the room's seq on is complete."""
    st = Store()
    try:
        epoch, kept = fill(st, [b"m%03d" % i for i in range(400)])
        seqs = sorted(kept)
        cols = st.columns()
        with st.sql() as con:
            sel = ", ".join("-7" if col == "seq" else col for col in cols)
            con.execute("INSERT INTO events SELECT %s FROM events WHERE room = 'durable' AND "
                        "seq = ?" % sel, (seqs[0],))
        d = st.start()
        c = client(d.port)
        j, b = recover(c, "durable", epoch, seqs[100])
        assert j.seq == seqs[-1], "the bad row moved the room's seq to %d" % j.seq
        assert [e.seq for e in b.events] == seqs[101:], "events hidden by the bad row"
        assert not b.complete, "a damaged row of unknown place: history before it is incomplete"
        j, b = recover(c, "durable", epoch, seqs[-1])
        assert b.complete and list(b.events) == []
        rid = c.send(join=pb.Join(room="durable"))
        c.expect("joined", rid)
        got, complete = all_history(c, "durable")
        assert [e.seq for e in got] == seqs, "events hidden by the bad row: %d of %d served" % (
            len(got), len(seqs))
        assert all(e.data == kept[e.seq] for e in got)
        assert not complete
        ack, _ = c.trigger("durable", "tick", b"after")
        assert ack.seq == seqs[-1] + 1, ack
        got, complete = all_history(c, "durable", since=seqs[-1])
        assert complete and [e.data for e in got] == [b"after"]
        c.close()
        st.stop()
        log = d.logtext()
        assert "stored event seq -7 " in log and "no known place" in log, log[-3000:]
    finally:
        st.close()


def test_bad_event_name_and_sync_on_join():
    """A row whose event name is not a valid name is damage of unknown type:
    requests of every type reaching back to its seq are incomplete. A sync
    on join batch holding the place of a damaged event is incomplete too
    (a dropped event is not a gap in it; a damaged one is)."""
    st = Store()
    try:
        epoch, kept = fill(st, [b"s%02d" % i for i in range(10)], room="synced")
        seqs = sorted(kept)
        with st.sql() as con:
            con.execute("UPDATE events SET body = x'00' WHERE room = 'synced' AND seq = ?",
                        (seqs[3],))
        d = st.start()
        c = client(d.port)
        rid = c.send(join=pb.Join(room="synced"))
        c.expect("joined", rid)
        b = c.expect("history_batch", rid)
        assert [e.seq for e in b.events] == seqs[:3] + seqs[4:] and not b.complete, b
        c.close()
        st.stop()
        with st.sql() as con:
            con.execute("UPDATE events SET event = 'bad name!' WHERE room = 'synced' AND seq = ?",
                        (seqs[6],))
        d = st.start()
        c = client(d.port)
        rid = c.send(join=pb.Join(room="synced"))
        c.expect("joined", rid)
        c.expect("history_batch", rid)
        b = history(c, "synced", event="tick", by_seq=True, since_seq=seqs[5])
        assert not b.complete and [e.seq for e in b.events] == seqs[7:], b
        b = history(c, "synced", event="other", by_seq=True, since_seq=seqs[5])
        assert not b.complete and list(b.events) == [], "type unknown: every type is incomplete"
        b = history(c, "synced", by_seq=True, since_seq=seqs[6])
        assert b.complete and [e.seq for e in b.events] == seqs[7:], b
        c.close()
        st.stop()
        log = d.logtext()
        assert "stored event seq %d (event \"bad name!\")" % seqs[6] in log, log[-3000:]
    finally:
        st.close()


# ---- the schema ----------------------------------------------------------

SCHEMA_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES('version', 1), ('clean', 1);
CREATE TABLE rooms(room TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE events(room TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
 ts_ms INTEGER NOT NULL, epoch INTEGER NOT NULL, body BLOB NOT NULL,
 PRIMARY KEY(room, seq)) WITHOUT ROWID;
CREATE INDEX events_by_type ON events(room, event, seq);
CREATE TABLE evicted(room TEXT NOT NULL, event TEXT NOT NULL, seq INTEGER NOT NULL,
 PRIMARY KEY(room, event)) WITHOUT ROWID;
"""


def write_v1_store(path, epoch, n):
    """A store as the first release wrote it (schema 1, no checksums),
    after a clean stop: room durable at seq n + 2, events 1..n."""
    events = [pb.Event(room="durable", event="e%d" % (i % 3), data=b"old-%d" % i,
                       ts_ms=1700000000000 + i, seq=i, epoch=epoch, **{"from": "u1"})
              for i in range(1, n + 1)]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA_V1)
    con.execute("INSERT INTO rooms VALUES('durable', ?, ?)", (epoch, n + 2))
    con.executemany("INSERT INTO events VALUES('durable', ?, ?, ?, ?, ?)",
                    [(e.seq, e.event, e.ts_ms, e.epoch, e.SerializeToString()) for e in events])
    con.close()
    return events


def test_schema_1_store_is_migrated_and_served():
    st = Store()
    try:
        epoch = 123456789
        events = write_v1_store(st.db, epoch, 50)
        d = st.start()
        c = client(d.port)
        j, b = recover(c, "durable", epoch, 0)
        assert j.epoch == epoch and j.seq == 52, j
        assert b.complete and list(b.events) == events, "migrated events served unchanged"
        c.close()
        st.stop()
        log = d.logtext()
        assert "schema migrated from version 1 to 2: 50 stored event(s) given a checksum" in log, \
            log[-3000:]
        with st.sql() as con:
            assert con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] == 2
            rows = con.execute("SELECT body, crc FROM events").fetchall()
        assert len(rows) == 50 and all(crc == crc32c(body) for body, crc in rows)
        d = st.start()  # once migrated, a plain start
        c = client(d.port)
        rid = c.send(join=pb.Join(room="durable"))
        c.expect("joined", rid)
        got, complete = all_history(c, "durable")
        assert complete and [e.data for e in got] == [e.data for e in events]
        c.close()
        st.stop()
        assert "migrated" not in d.logtext()
    finally:
        st.close()


def test_newer_schema_is_refused():
    st = Store()
    try:
        write_v1_store(st.db, 5, 1)
        with st.sql() as con:
            con.execute("UPDATE meta SET value = 99 WHERE key = 'version'")
        try:
            st.start()
        except RuntimeError as e:
            assert "schema version 99 is newer" in str(e) and st.db in str(e), e
        else:
            raise AssertionError("a store from a newer dialogued was opened")
        assert os.path.exists(st.db), "a newer store must be left alone, not moved aside"
    finally:
        st.close()


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")])
