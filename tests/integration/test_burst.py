"""A burst is not a stuck reader (issue 17, item 8): a publisher that sends as
fast as it can into a room must not get its readers cut while they are
reading; a reader that is stuck still is, and one cut for falling behind
gets what it missed from history when it comes back."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from dlgtest import (Conn, Daemon, frame, joined_room, open_room_config, pb,  # noqa: E402
                     run_tests, wait_until, write_config)

EVENTS = 20000
PAYLOAD = b"x" * 1000  # 20 MB in all: over main's 8 MiB hard cap, under 64 MiB


def publish_burst(port, n):
    """Pipelines n triggers with no window of its own, then waits for every
    Ack; returns the seqs Acked."""
    p = joined_room(port, "r", "publisher")
    rid = p.send(unsubscribe=pb.Unsubscribe(room="r", all=True))
    p.expect("joined", rid)
    first = p.next_id
    data = b"".join(frame(pb.ClientFrame(request_id=first + i, trigger=pb.Trigger(
        room="r", event="burst:e", data=PAYLOAD)).SerializeToString()) for i in range(n))
    p.next_id += n
    p.send_raw(data)
    seqs = []
    while len(seqs) < n:
        f = p.recv()
        assert f.WhichOneof("msg") == "ack", f
        seqs.append(f.ack.seq)
    p.close()
    return seqs


def test_a_reading_subscriber_survives_a_burst():
    # Default limits: 64 MiB hard, 8 MiB held 30 s soft, 10 s without
    # progress. main's 8 MiB hard cap cut this reader within the burst.
    d = Daemon(config=write_config(open_room_config()))
    try:
        r = joined_room(d.port, "r", "reader", rcvbuf=65536)
        got = []
        stop = threading.Event()

        def read_slowly():
            # ~1.3 MB/s while the burst is on, then as fast as it can.
            buf = b""
            while len(got) < EVENTS:
                if not stop.is_set():
                    time.sleep(0.05)
                chunk = r.sock.recv(65536)
                if not chunk:
                    raise EOFError("cut after %d events" % len(got))
                buf += chunk
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big"):
                    n = int.from_bytes(buf[1:5], "big")
                    f = pb.ServerFrame()
                    f.ParseFromString(buf[5:5 + n])
                    buf = buf[5 + n:]
                    if f.WhichOneof("msg") == "event":
                        got.append(f.event.seq)
                    elif f.WhichOneof("msg") == "error":
                        raise AssertionError("reader got %s" % f)
        errors = []

        def run():
            try:
                read_slowly()
            except BaseException as e:  # noqa: B902
                errors.append(e)
        t = threading.Thread(target=run)
        r.sock.settimeout(30)
        t.start()
        seqs = publish_burst(d.port, EVENTS)
        stop.set()
        t.join(120)
        assert not t.is_alive(), "reader still reading after 120 s (%d events)" % len(got)
        assert not errors, "%r; %s" % (errors, d.logtext()[-1500:])
        assert got == seqs == list(range(1, EVENTS + 1)), (len(got), got[:3], got[-3:])
        assert "slow consumer" not in d.logtext()
        r.close()
    finally:
        assert d.stop() == 0


CUT_CONFIG = open_room_config(limits=(
    "max_pending_bytes: 1048576", "soft_pending_bytes: 1048576", "soft_pending_seconds: 3600"))


def test_cut_reader_recovers_what_it_missed_from_history():
    cfg = CUT_CONFIG.replace('    trigger: ["*"]\n',
                             '    trigger: ["*"]\n    history: [{event: "*", limit: 100000}]\n')
    d = Daemon(config=write_config(cfg))
    try:
        r = joined_room(d.port, "r", "reader", rcvbuf=16384)
        joined_epoch = None
        rid = r.send(ping=pb.Ping(nonce=1))
        r.expect("pong", rid)
        # The reader reads nothing: it is cut at the 1 MiB hard cap.
        seqs = publish_burst(d.port, 3000)
        assert wait_until(lambda: "slow consumer" in d.logtext(), 10), d.logtext()[-1500:]
        # What it did get before the cut, then what it missed, from history.
        seen = []
        r.sock.settimeout(5)
        try:
            while True:
                f = r.recv()
                if f.WhichOneof("msg") == "event":
                    seen.append(f.event.seq)
                    joined_epoch = f.event.epoch
        except (EOFError, OSError, socket.timeout, ConnectionResetError):
            pass
        assert len(seen) < len(seqs), "the reader was not cut"
        last = seen[-1] if seen else 0
        c = Conn(d.port)
        c.hello(name="reader-again")
        rid = c.send(join=pb.Join(room="r", recover=True, epoch=joined_epoch or 0,
                                  since_seq=last))
        assert c.expect("joined", rid).history_follows
        b = c.expect("history_batch", rid)
        assert b.epoch == joined_epoch
        missed = [e.seq for e in b.events]
        # More than one frame holds (docs/history.md: complete is then
        # false, and the rest is paged in with History by seq).
        while True:
            rid = c.send(history=pb.History(room="r", by_seq=True,
                                            since_seq=missed[-1] if missed else last))
            page = c.expect("history_batch", rid)
            if not page.events:
                break
            missed += [e.seq for e in page.events]
        assert missed == list(range(last + 1, len(seqs) + 1)), (last, missed[:3], missed[-3:])
        c.close()
    finally:
        assert d.stop() == 0


def test_a_stuck_reader_is_still_cut():
    # Progress resets the write timeout; no progress at all does not.
    d = Daemon(config=write_config(open_room_config(limits=("write_timeout_ms: 1500",))))
    try:
        r = joined_room(d.port, "r", "stuck", rcvbuf=16384)
        publish_burst(d.port, EVENTS)
        assert wait_until(lambda: "write did not drain in 1500 ms" in d.logtext(), 10), \
            d.logtext()[-1500:]
        r.close()
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    run_tests([v for k, v in list(globals().items()) if k.startswith("test_")], 180)
