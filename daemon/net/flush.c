/* flush.c: the write path: once per loop turn each dirty connection's
 * queue is staged through its codec into 16 KiB chunks, sealed by TLS and
 * written by one of three senders: libuv (uv_try_write, then uv_write),
 * io_uring (one send per connection, submitted together), or the send
 * threads (sendpool.h) for large fan-outs. */
#include "conn_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlg_alloc.h"
#include "dlg_clock.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "sendpool.h"
#include "uring.h"

/* RFC 8446 6.1 (dlg_stream_goodbye), never ahead of an io_uring send. */
void dlg_conn_goodbye(dlg_conn *c) {
    if (c->usend == NULL)
        dlg_stream_goodbye(&c->st);
}

static int sock_write(dlg_conn *c, const uint8_t *data, size_t len);

/* Tells a client it is being cut, without waiting for its queue: the frame
 * goes straight to the socket if it has room, else it is lost. With TLS it
 * is sealed after what the session already holds and goes out with the
 * close_notify of the dlg_conn_close that follows (dlg_conn_goodbye). */
void dlg_conn_final_error(dlg_conn *c, int status, const char *msg) {
    uint8_t fr[1024];
    if (c->st.inflight_bytes > 0 || c->usend != NULL || c->codec == NULL ||
        c->codec->final_error == NULL)
        return;
    /* Mid-frame output would corrupt the stream: only at a frame boundary. */
    if (c->q_len > 0 && c->q[c->q_head].off != 0)
        return;
    size_t n = c->codec->final_error(c, status, msg, fr, sizeof(fr));
    if (n == 0)
        return;
    if (c->st.tls_on) {
        dlg_tlsio_write(&c->st.tls, fr, n);
    } else {
        uv_buf_t ub = uv_buf_init((char *)fr, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->st.tcp, &ub, 1);
    }
}
/* ---- write path ------------------------------------------------------- */

/* A uv_write of c's finished (dlg_stream.h: on_written). */
void dlg_conn_on_written(dlg_stream *st, int status) {
    dlg_conn *c = st->tcp.data;
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (status < 0) {
        dlg_conn_close(c, uv_strerror(status));
        return;
    }
    if (c->close_after_flush && c->st.inflight_bytes == 0 && !dlg_conn_has_output(c))
        dlg_conn_close(c, c->close_reason);
    else if (c->st.inflight_bytes == 0 &&
             (dlg_conn_has_output(c) || (c->st.tls_on && dlg_tlsio_out_pending(&c->st.tls) > 0)))
        dlg_conn_mark_dirty(c); /* resume what waited for the socket */
}

/* Writes len bytes through c's stream (dlg_stream_write). Returns 0 or a
 * DLG_E* code. */
static int sock_write(dlg_conn *c, const uint8_t *data, size_t len) {
    if (c->srv->uring != NULL) {
        /* Only reached on the way to a close (a failed handshake's alert):
         * flush_conn_uring sends everything else. Best effort, and never
         * ahead of a send the ring still holds. */
        uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
        if (c->usend == NULL)
            uv_try_write((uv_stream_t *)&c->st.tcp, &ub, 1);
        return 0;
    }
    return dlg_stream_write(&c->st, data, len);
}

/* Where one flush writes. On the loop thread: sock_write (libuv takes what
 * the socket does not). On a send thread (sendpool.h), which must not touch
 * libuv: write(2), and what the socket does not take becomes the
 * connection's spill, handed to libuv by the loop thread after the turn. */
typedef struct flush_ctx {
    uint8_t *pbuf;   /* staging for plaintext, DLG_SCRATCH bytes */
    uint8_t *wbuf;   /* ciphertext taken from OpenSSL, DLG_SCRATCH bytes */
    int send_thread;
} flush_ctx;

static int out_write(dlg_conn *c, const flush_ctx *x, const uint8_t *data, size_t len) {
    return x->send_thread ? dlg_stream_write_off_loop(&c->st, data, len)
                          : sock_write(c, data, len);
}

/* The socket stopped taking data: what is left waits in the queue. */
static int backed_up(const dlg_conn *c) {
    return dlg_stream_backed_up(&c->st);
}

/* Moves every ciphertext byte OpenSSL produced to the socket (on a send
 * thread: until the socket is full; the rest stays in OpenSSL's buffer). */
static int drain_tls(dlg_conn *c, const flush_ctx *x) {
    if (c->srv->uring != NULL) {
        /* Only on the way to a close: best effort (sock_write). */
        size_t n;
        while ((n = dlg_tlsio_out_take(&c->st.tls, x->wbuf, DLG_SCRATCH)) > 0)
            sock_write(c, x->wbuf, n);
        return 0;
    }
    return dlg_stream_tls_drain(&c->st, x->wbuf, DLG_SCRATCH, x->send_thread);
}

/* Output is about to be written: the sweep keeps this connection's buffers
 * (see release_idle). */
static void note_output(dlg_conn *c) {
    if (dlg_conn_has_output(c) || c->close_after_flush) {
        c->io_recent = 1;
        if (c->st.tls_on)
            c->tls_bufs = 1;
    }
}

/* Coalesces queued frames into stage-sized chunks: each chunk becomes one
 * SSL_write (a few TLS records at most) or one plain write. Touches only c
 * (and the shared frames' atomic counts), so a send thread may run it. */
static int flush_conn(dlg_conn *c, const flush_ctx *x) {
    /* While the socket is backed up, frames wait in the queue as shared
     * references (cheap, and "latest" events can still be conflated there)
     * rather than as per-connection ciphertext. dlg_conn_on_written
     * resumes. */
    if (backed_up(c) && !c->close_after_flush)
        return 0;
    note_output(c);
    const size_t stage_cap = c->st.tls_on ? DLG_TLS_RECORD_MAX : DLG_SCRATCH;
    while (dlg_conn_has_output(c)) {
        size_t used = dlg_conn_stage(c, x->pbuf, stage_cap);
        if (used == 0)
            break;
        c->out_staged += used; /* c's own: a send thread may count it */
        int rc = c->st.tls_on ? dlg_tlsio_write(&c->st.tls, x->pbuf, used)
                           : out_write(c, x, x->pbuf, used);
        if (rc != 0)
            return rc;
        if (c->st.tls_on && (rc = drain_tls(c, x)) != 0)
            return rc;
        /* The socket stopped taking data: the rest waits as references
         * (see above) instead of becoming copied ciphertext now. */
        if (backed_up(c) && !c->close_after_flush)
            return 0;
    }
    if (c->st.tls_on) {
        if (c->close_after_flush)
            dlg_tlsio_shutdown(&c->st.tls);
        int rc = drain_tls(c, x);
        /* The handshake grew the ciphertext buffers to its largest flight;
         * an idle connection should not keep that (memory per idle
         * connection). */
        if (rc == 0 && c->tls_compact && dlg_tlsio_compact(&c->st.tls) != 0)
            c->tls_compact = c->tls_bufs = 0;
        return rc;
    }
    return 0;
}

static flush_ctx loop_ctx(dlg_server *s) {
    return (flush_ctx){.pbuf = s->pbuf, .wbuf = s->wbuf, .send_thread = 0};
}

void dlg_conn_drain_now(dlg_conn *c) {
    flush_ctx x = loop_ctx(c->srv);
    drain_tls(c, &x);
}

/* ---- write path with io_uring ------------------------------------------ */

/* Plaintext bytes of the queue one io_uring send carries at most (four TLS
 * records): the rest waits in the queue as references until the send
 * completes, as it does behind a full socket in flush_conn. */
#define DLG_URING_SEND_MAX (64 * 1024)

/* The completion of c's send (see uring.h): resume what waited for it. */
static void on_usend(dlg_uring_send *us, int res) {
    dlg_conn *c = us->data;
    c->usend = NULL;
    dlg_stream_inflight_done(&c->st, us->len);
    if (c->state != DLG_CONN_CLOSING) {
        if (res < 0)
            dlg_conn_close(c, uv_strerror(res)); /* libuv's codes are -errno here */
        else if (dlg_conn_has_output(c) || c->close_after_flush ||
                 (c->st.tls_on && dlg_tlsio_out_pending(&c->st.tls) > 0))
            dlg_conn_mark_dirty(c); /* flush_conn_uring sends it, or closes */
    }
    dlg_conn_release(c); /* the count the send held; may free c */
}

/* flush_conn for a server with io_uring: up to DLG_URING_SEND_MAX bytes of
 * the queue (encrypted, with any handshake or close_notify bytes) become
 * one send that owns a copy; it is submitted with every other connection's
 * at the end of dlg_conn_flush_all. One send per connection at a time
 * keeps the bytes in order. */
static int flush_conn_uring(dlg_conn *c) {
    dlg_server *s = c->srv;
    if (c->usend != NULL)
        return 0; /* on_usend resumes */
    note_output(c);
    size_t len;
    dlg_uring_send *us;
    if (c->st.tls_on) {
        size_t taken = 0;
        while (dlg_conn_has_output(c) && taken < DLG_URING_SEND_MAX) {
            size_t used = dlg_conn_stage(c, s->pbuf, DLG_TLS_RECORD_MAX);
            c->out_staged += used;
            if (used == 0)
                break;
            int rc = dlg_tlsio_write(&c->st.tls, s->pbuf, used);
            if (rc != 0)
                return rc;
            taken += used;
        }
        if (!dlg_conn_has_output(c) && c->close_after_flush)
            dlg_tlsio_shutdown(&c->st.tls); /* once more is harmless: nothing new */
        len = dlg_tlsio_out_pending(&c->st.tls);
        us = NULL;
        if (len > 0) {
            if ((us = dlg_uring_send_new(len)) == NULL)
                return DLG_ENOMEM;
            dlg_tlsio_out_take(&c->st.tls, us->bytes, len);
        }
        /* As in flush_conn: the handshake's large buffers go once drained. */
        if (c->tls_compact && dlg_tlsio_compact(&c->st.tls) != 0)
            c->tls_compact = c->tls_bufs = 0;
        if (us == NULL)
            return 0;
    } else {
        /* A codec may frame items with more bytes than they hold (a
         * WebSocket header is up to 10 bytes where ours is 5) and add
         * its own: room for that, then the send is as long as it came.
         * The queues of the sessions on its streams (HTTP/2) go out
         * through it too. */
        uint64_t want = c->q_bytes + 8 * (uint64_t)c->q_len + c->kids_pending +
                        (c->codec && c->codec->more && c->codec->more(c) ? 4096 : 0);
        len = want < DLG_URING_SEND_MAX ? (size_t)want : DLG_URING_SEND_MAX;
        if (len == 0)
            return 0;
        if ((us = dlg_uring_send_new(len)) == NULL)
            return DLG_ENOMEM;
        us->len = len = dlg_conn_stage(c, us->bytes, len);
        c->out_staged += len;
        if (len == 0) {
            free(us);
            return 0;
        }
    }
    uv_os_fd_t fd;
    if (dlg_stream_fd(&c->st, &fd) != 0) {
        free(us);
        return DLG_EIO;
    }
    us->fd = fd;
    us->cb = on_usend;
    us->data = c;
    int rc = dlg_uring_queue(s->uring, us);
    if (rc != 0) {
        free(us);
        return rc;
    }
    c->usend = us;
    c->handles_open++; /* released by on_usend */
    dlg_stream_inflight_add(&c->st, len);
    return 0;
}

void dlg_conn_kick_noop(uv_idle_t *h) {
    (void)h;
}

/* What one flush left for the loop thread: an error to close on, bytes the
 * socket did not take, a close to finish. */
static void flush_done(dlg_conn *c, int rc) {
    c->srv->counters.bytes_out += c->out_staged;
    c->out_staged = 0;
    if (c->state == DLG_CONN_CLOSING) {
        /* Closed by another connection's flush_done. */
        dlg_stream_spill_drop(&c->st);
        return;
    }
    if (rc == 0 && c->st.spill_len > 0) {
        /* From a send thread: libuv writes it (one more try, then a
         * uv_write); the rest of the queue follows from
         * dlg_conn_on_written. */
        rc = dlg_stream_spill_flush(&c->st);
        if (rc == 0) {
            flush_ctx x = loop_ctx(c->srv);
            rc = flush_conn(c, &x); /* the socket took it all after all */
        }
    }
    if (rc != 0) {
        dlg_conn_close(c, dlg_stream_strerror(&c->st, rc));
        return;
    }
    if (c->close_after_flush && c->st.inflight_bytes == 0) {
        dlg_conn_close(c, c->close_reason);
        return;
    }
    /* What the codec's stage left for the loop thread (h2.c: the sessions
     * of streams that ended). */
    if (c->codec && c->codec->flushed)
        c->codec->flushed(c);
}

/* dlg_sendpool_fn: one connection's flush on whichever thread took it. */
static void flush_on_send_thread(void *item, uint8_t *scratch, void *ud) {
    (void)ud;
    dlg_conn *c = item;
    flush_ctx x = {.pbuf = scratch, .wbuf = scratch + DLG_SCRATCH, .send_thread = 1};
    c->flush_rc = flush_conn(c, &x);
}

/* Below this many connections to flush, waking a send thread costs more
 * than it saves (a wake-up is a futex call and a few microseconds; one
 * connection's flush is about 4-5 us of encryption and write()). */
#define DLG_SEND_PARALLEL_MIN 8

/* Flushes the dirty list with the send threads: ready connections that are
 * not backed up are shared out (each flushed by exactly one thread); the
 * rest, and everything a send thread could not finish, on this thread. */
/* Takes c off the dirty list. A connection closed while on it gives back
 * the count the list held (dlg_conn_close), which may free it: the caller
 * must not touch c afterwards when it is closing. */
static void unlist(dlg_conn *c) {
    c->in_dirty = 0;
    if (c->dirty_hold) {
        c->dirty_hold = 0;
        dlg_conn_release(c);
    }
}

static void flush_all_shared(dlg_server *srv) {
    flush_ctx x = loop_ctx(srv);
    size_t n = 0;
    while (srv->dirty) {
        dlg_conn *c = srv->dirty;
        srv->dirty = c->dirty_next;
        if (c->state == DLG_CONN_CLOSING) {
            unlist(c);
            continue;
        }
        if (c->state == DLG_CONN_READY && !c->close_after_flush && !backed_up(c)) {
            if (n == srv->cap_flush_v) {
                size_t ncap = n ? 2 * n : 256;
                dlg_conn **nv = dlg_realloc(srv->flush_v, ncap * sizeof(*nv));
                if (nv != NULL) {
                    srv->flush_v = nv;
                    srv->cap_flush_v = ncap;
                }
            }
            if (n < srv->cap_flush_v) {
                /* in_dirty stays set until the shared flush is over: a
                 * frame queued to c meanwhile (a close below sending to
                 * its room) must not list c twice. */
                srv->flush_v[n++] = c;
                continue;
            }
        }
        c->in_dirty = 0;
        flush_done(c, flush_conn(c, &x));
    }
    if (n >= DLG_SEND_PARALLEL_MIN) {
        dlg_sendpool_run(srv->sendpool, (void **)srv->flush_v, n, flush_on_send_thread, NULL,
                         srv->pbuf);
        srv->send_turns++;
    } else {
        for (size_t i = 0; i < n; i++)
            srv->flush_v[i]->flush_rc = flush_conn(srv->flush_v[i], &x);
    }
    /* Off the list before flush_done, which may queue more (and list them
     * again); one closed meanwhile keeps the list's count until after it
     * (its handles close after this phase of the loop anyway). */
    for (size_t i = 0; i < n; i++)
        srv->flush_v[i]->in_dirty = 0;
    for (size_t i = 0; i < n; i++)
        flush_done(srv->flush_v[i], srv->flush_v[i]->flush_rc);
    for (size_t i = 0; i < n; i++)
        if (srv->flush_v[i]->dirty_hold && !srv->flush_v[i]->in_dirty)
            unlist(srv->flush_v[i]);
}

/* The triggers this flush submitted the writes of: one clock read, one
 * histogram increment each (server.h: DLG_FANOUT_PENDING). */
static void fanout_observe(dlg_server *srv) {
    if (srv->n_fanout_pend == 0)
        return;
    uint64_t now = dlg_now_ns();
    for (uint32_t i = 0; i < srv->n_fanout_pend; i++)
        dlg_counters_fanout(&srv->counters, now - srv->fanout_pend[i]);
    srv->n_fanout_pend = 0;
}

void dlg_conn_flush_all(dlg_server *srv) {
    uv_idle_stop(&srv->kick);
    if (srv->sendpool != NULL && srv->uring == NULL) {
        flush_all_shared(srv);
        fanout_observe(srv);
        dlg_conn_reap(srv);
        return;
    }
    flush_ctx x = loop_ctx(srv);
    /* With io_uring, a send that completes during the submit lets the rest
     * of its connection's queue go in this turn too: a few rounds, then the
     * next turn (mark_dirty kicked the loop). */
    for (int round = 0; round < 4; round++) {
        while (srv->dirty) {
            dlg_conn *c = srv->dirty;
            srv->dirty = c->dirty_next;
            if (c->state == DLG_CONN_CLOSING) {
                unlist(c);
                continue;
            }
            c->in_dirty = 0;
            flush_done(c, srv->uring ? flush_conn_uring(c) : flush_conn(c, &x));
        }
        if (srv->uring == NULL)
            break;
        /* One submit for every send queued above; completions run here. */
        dlg_uring_flush(srv->uring);
        if (srv->dirty == NULL) {
            /* A completion above may have kicked the loop for a connection
             * the next round then flushed: nothing is left to kick for. */
            uv_idle_stop(&srv->kick);
            break;
        }
    }
    fanout_observe(srv);
    dlg_conn_reap(srv);
}
