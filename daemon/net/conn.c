/* conn.c: connection lifecycle, the read path (socket -> TLS -> frames ->
 * dispatch) and the write path (output queue -> one coalesced TLS write ->
 * socket), flushed once per loop turn. */
#include "conn.h"
#include "reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlg_err.h"
#include "sendpool.h"
#include "uring.h"

/* One uv_write still in flight, with the ciphertext it owns. */
typedef struct wreq {
    uv_write_t req;
    dlg_conn *conn;
    size_t len;
    uint8_t data[];
} wreq;

/* Drops one of the counts that keep c allocated (its two handles, an
 * io_uring send in flight); the last one frees it. */
static void conn_release(dlg_conn *c) {
    if (--c->handles_open > 0)
        return;
    c->srv->heap_churn++;
    for (size_t i = 0; i < c->q_len; i++)
        dlg_buf_unref(c->q[(c->q_head + i) % c->q_cap].buf);
    free(c->q);
    free(c->spill);
    free(c->latest);
    dlg_tlsio_free(&c->tls);
    dlg_frame_dec_free(&c->dec);
    for (size_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    free(c->roles);
    free(c->user_id);
    free(c->client_name);
    free(c->members);
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
    conn_release(h->data);
}

static void unlink_conn(dlg_conn *c) {
    dlg_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_conns--;
}

/* The connections admitted before Welcome, oldest first: the budget
 * pre_auth_max_connections counts them, and the oldest makes room for a
 * newcomer (dlg_conn_accept). */
static void pre_link(dlg_conn *c) {
    dlg_server *s = c->srv;
    c->pre_prev = s->pre_tail;
    c->pre_next = NULL;
    if (s->pre_tail)
        s->pre_tail->pre_next = c;
    else
        s->pre_head = c;
    s->pre_tail = c;
    c->pre_linked = 1;
    s->n_pre_auth++;
}

static void pre_unlink(dlg_conn *c) {
    dlg_server *s = c->srv;
    if (!c->pre_linked)
        return;
    if (c->pre_prev)
        c->pre_prev->pre_next = c->pre_next;
    else
        s->pre_head = c->pre_next;
    if (c->pre_next)
        c->pre_next->pre_prev = c->pre_prev;
    else
        s->pre_tail = c->pre_prev;
    c->pre_prev = c->pre_next = NULL;
    c->pre_linked = 0;
    s->n_pre_auth--;
}

/* RFC 8446 6.1: close_notify before the socket closes, when the socket
 * takes it now and nothing sent earlier still waits (it would come out
 * ahead of those bytes). Best effort: a peer that is gone or not reading
 * does not get it. */
static void tls_goodbye(dlg_conn *c) {
    if (!c->tls_on || !c->tls.done || c->inflight_bytes > 0 || c->usend != NULL ||
        c->spill_len > 0)
        return;
    dlg_tlsio_shutdown(&c->tls);
    uint8_t tmp[4096];
    size_t n;
    while ((n = dlg_tlsio_out_take(&c->tls, tmp, sizeof(tmp))) > 0) {
        uv_buf_t ub = uv_buf_init((char *)tmp, (unsigned)n);
        if (uv_try_write((uv_stream_t *)&c->tcp, &ub, 1) != (int)n)
            break;
    }
}

/* One info line per connection that ends, with its reason: at most
 * DLG_CLOSE_LOGS_PER_SEC a second, so that a flood of connections cannot
 * flood the log; the sweep reports how many were left out. */
static void log_close(dlg_conn *c, const char *reason) {
    dlg_server *s = c->srv;
    uint64_t now = uv_now(s->loop);
    /* Counted per second of the log's own clock, as a reader counts. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((uint64_t)ts.tv_sec != s->close_log_sec) {
        s->close_log_sec = (uint64_t)ts.tv_sec;
        s->close_logs = 0;
    }
    if (s->close_logs >= DLG_CLOSE_LOGS_PER_SEC) {
        s->close_logs_dropped++;
        return;
    }
    s->close_logs++;
    dlg_log_info(&s->log, "conn %s (%s): closed: %s (after %.1f s%s%s)", c->client_id, c->peer,
                 reason, (double)(now - c->born_ms) / 1000.0, c->user_id ? ", user " : "",
                 c->user_id ? c->user_id : "");
}

void dlg_conn_close(dlg_conn *c, const char *reason) {
    if (c->state == DLG_CONN_CLOSING)
        return;
    log_close(c, reason ? reason : "closed");
    int was_ready = c->state == DLG_CONN_READY;
    tls_goodbye(c);
    pre_unlink(c);
    if (c->refuse_full)
        c->srv->n_refusing--;
    c->state = DLG_CONN_CLOSING;
    if (c->srv->up.closing)
        c->srv->up.closing(c, reason ? reason : "closed", was_ready);
    unlink_conn(c);
    /* Before the descriptor closes: a send parked on a full socket would
     * otherwise keep the socket open until the peer reads. */
    if (c->usend != NULL)
        dlg_uring_cancel(c->srv->uring, c->usend);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void dlg_conn_doom(dlg_conn *c, const char *reason) {
    if (c->in_doomed || c->state == DLG_CONN_CLOSING)
        return;
    c->in_doomed = 1;
    c->close_reason = reason;
    c->doomed_next = c->srv->doomed;
    c->srv->doomed = c;
}

static int sock_write(dlg_conn *c, const uint8_t *data, size_t len);

/* Tells a client it is being cut, without waiting for its queue: the frame
 * goes straight to the socket if it has room, else it is lost. With TLS it
 * is sealed after what the session already holds and goes out with the
 * close_notify of the dlg_conn_close that follows (tls_goodbye). */
void dlg_conn_final_error(dlg_conn *c, int status, const char *msg) {
    Dialogue__V1__Error e = DIALOGUE__V1__ERROR__INIT;
    e.code = (Dialogue__V1__Status)status;
    e.message = (char *)msg;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    dlg_buf *b = NULL;
    if (c->inflight_bytes > 0 || c->usend != NULL || dlg_frame_pack(&f.base, 0, &b) != 0)
        return;
    /* Mid-frame output would corrupt the stream: only at a frame boundary. */
    if (c->q_len == 0 || c->q[c->q_head].off == 0) {
        if (c->tls_on) {
            dlg_tlsio_write(&c->tls, b->data, b->len);
        } else {
            uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
            uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
        }
    }
    dlg_buf_unref(b);
}

void dlg_conn_reap(dlg_server *srv) {
    while (srv->doomed) {
        dlg_conn *c = srv->doomed;
        srv->doomed = c->doomed_next;
        c->in_doomed = 0;
        if (c->close_after_flush)
            continue; /* already closing gracefully */
        if (c->close_status)
            dlg_conn_final_error(c, c->close_status, c->close_reason);
        dlg_conn_close(c, c->close_reason);
    }
}

/* Gives back what only traffic needs. Everything freed here is allocated
 * again on demand, so this only runs on a connection that had no traffic
 * for a whole sweep interval: busy ones are not made to churn malloc. */
static void release_idle(dlg_conn *c) {
    if (c->q_len == 0 && c->q != NULL) {
        /* With the queue empty every "latest" position is stale too. */
        free(c->q);
        c->q = NULL;
        c->q_cap = c->q_head = 0;
        free(c->latest);
        c->latest = NULL;
        c->n_latest = c->cap_latest = 0;
    }
    if (c->dec.body != NULL && dlg_frame_dec_pending(&c->dec) == 0)
        dlg_frame_dec_free(&c->dec); /* keeps max_frame */
    /* The TLS ciphertext buffers keep the largest size they reached (a
     * 16 KiB record stage, a 64 KiB read) until freed. */
    if (c->tls_bufs && c->state != DLG_CONN_TLS && dlg_tlsio_compact(&c->tls) != 0)
        c->tls_bufs = 0;
}

void dlg_conn_sweep(dlg_server *srv, uint64_t now) {
    for (dlg_conn *c = srv->conns; c; c = c->next) {
        if (c->state == DLG_CONN_CLOSING || c->in_doomed)
            continue;
        if (c->io_recent)
            c->io_recent = 0;
        else if (!c->close_after_flush)
            release_idle(c);
        /* In every state: a connection that is closing has its own
         * deadline (on_close_deadline). */
        if (!c->close_after_flush && c->inflight_since &&
            now - c->inflight_since > srv->opts.write_timeout_ms) {
            srv->counters.write_timeouts++;
            dlg_log_warn(&srv->log, "conn %s (%s): write did not drain in %u ms (the socket "
                                    "took nothing for that long)", c->client_id, c->peer,
                         srv->opts.write_timeout_ms);
            dlg_conn_doom(c, "write timeout");
            continue;
        }
        if (c->state != DLG_CONN_READY)
            continue;
        uint64_t pending = dlg_conn_pending(c);
        if (pending <= srv->opts.soft_pending_bytes) {
            c->soft_since = 0;
        } else if (c->soft_since == 0) {
            c->soft_since = now;
        } else if (now - c->soft_since > srv->opts.soft_pending_ms) {
            srv->counters.slow_consumers++;
            dlg_log_warn(&srv->log, "conn %s (%s): slow consumer: %llu bytes pending for %u ms",
                         c->client_id, c->peer, (unsigned long long)pending,
                         srv->opts.soft_pending_ms);
            c->close_status = DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED;
            dlg_conn_doom(c, "slow consumer");
        }
    }
    dlg_conn_reap(srv);
}

static void mark_dirty(dlg_conn *c) {
    if (c->in_dirty || c->state == DLG_CONN_CLOSING)
        return;
    c->in_dirty = 1;
    /* Output queued from a timer or async callback must not wait for the
     * next I/O event: an active idle handle makes the poll return at once. */
    if (c->srv->dirty == NULL)
        uv_idle_start(&c->srv->kick, dlg_conn_kick_noop);
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

/* How long a graceful close may take: the write timeout, or before
 * Welcome the handshake's (a client that never said Hello gets no more
 * time than it had to say it). */
static uint32_t close_deadline_ms(const dlg_conn *c) {
    return c->state == DLG_CONN_READY ? c->srv->opts.write_timeout_ms
                                      : c->srv->opts.handshake_timeout_ms;
}

/* A connection that is closing gracefully and whose output has not
 * drained: a peer that stopped reading must not hold it open. */
static void on_close_deadline(uv_timer_t *t) {
    dlg_conn *c = t->data;
    if (c->state == DLG_CONN_CLOSING)
        return;
    c->srv->counters.write_timeouts++;
    dlg_log_warn(&c->srv->log,
                 "conn %s (%s): output did not drain within %u ms of closing (%s): %llu bytes "
                 "dropped",
                 c->client_id, c->peer, close_deadline_ms(c), c->close_reason,
                 (unsigned long long)dlg_conn_pending(c));
    dlg_conn_close(c, "close timeout");
}

void dlg_conn_close_after_flush(dlg_conn *c, const char *reason) {
    if (c->state == DLG_CONN_CLOSING || c->close_after_flush)
        return;
    /* The reason is logged (at info) when the connection is gone. */
    dlg_log_debug(&c->srv->log, "conn %s (%s): closing: %s", c->client_id, c->peer, reason);
    c->close_after_flush = 1;
    c->close_reason = reason;
    /* The timer's handshake deadline or heartbeat has no more use. */
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_close_deadline, close_deadline_ms(c), 0);
    mark_dirty(c); /* flush_conn sends the queue, then close_notify */
}

static int q_push(dlg_conn *c, dlg_buf *b) {
    if (c->q_len == c->q_cap) {
        size_t ncap = c->q_cap ? c->q_cap * 2 : 16;
        dlg_outq_item *nq = malloc(ncap * sizeof(*nq));
        if (nq == NULL)
            return DLG_ENOMEM;
        for (size_t i = 0; i < c->q_len; i++)
            nq[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = nq;
        c->q_cap = ncap;
        c->q_head = 0;
    }
    dlg_outq_item *it = &c->q[(c->q_head + c->q_len) % c->q_cap];
    it->buf = dlg_buf_ref(b);
    it->off = 0;
    it->latest = NULL;
    c->q_len++;
    c->q_pushed++;
    c->q_bytes += b->len;
    return 0;
}

static int conn_gone(const dlg_conn *c) {
    return c->state == DLG_CONN_CLOSING || c->close_after_flush || c->in_doomed;
}

void dlg_conn_send_latest(dlg_conn *c, dlg_buf *b, const void *key) {
    if (conn_gone(c))
        return;
    dlg_latest_pos *lp = NULL;
    for (size_t i = 0; i < c->n_latest; i++)
        if (c->latest[i].key == key)
            lp = &c->latest[i];
    if (lp && lp->abs >= c->q_popped) {
        dlg_outq_item *it = &c->q[(c->q_head + (lp->abs - c->q_popped)) % c->q_cap];
        if (it->latest == key && it->off == 0) {
            c->q_bytes += b->len;
            c->q_bytes -= it->buf->len;
            dlg_buf_unref(it->buf);
            it->buf = dlg_buf_ref(b);
            c->conflated++;
            return;
        }
    }
    uint64_t before = c->q_pushed;
    dlg_conn_send(c, b);
    if (c->q_pushed == before)
        return; /* dropped (slow consumer) */
    c->q[(c->q_head + c->q_len - 1) % c->q_cap].latest = key;
    if (lp == NULL) {
        if (c->n_latest == c->cap_latest) {
            size_t nc = c->cap_latest ? c->cap_latest * 2 : 2;
            dlg_latest_pos *nv = realloc(c->latest, nc * sizeof(*nv));
            if (nv == NULL)
                return; /* only conflation is lost */
            c->latest = nv;
            c->cap_latest = nc;
        }
        lp = &c->latest[c->n_latest++];
        lp->key = key;
    }
    lp->abs = before;
}

uint64_t dlg_conn_pending(const dlg_conn *c) {
    return c->q_bytes + c->q_len * DLG_OUTQ_ITEM_COST + c->inflight_bytes + c->spill_len +
           (c->tls_on ? dlg_tlsio_out_pending(&c->tls) : 0);
}

/* Marks c a slow consumer: pending output (dlg_conn_pending, plus what was
 * about to be queued) passed max_pending_bytes. */
static void cut_slow(dlg_conn *c, uint64_t pending) {
    c->srv->counters.slow_consumers++;
    dlg_log_warn(&c->srv->log, "conn %s (%s): slow consumer: %llu bytes pending, cap %llu",
                 c->client_id, c->peer, (unsigned long long)pending,
                 (unsigned long long)c->srv->opts.max_pending_bytes);
    c->close_status = DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED;
    dlg_conn_doom(c, "slow consumer");
}

void dlg_conn_send(dlg_conn *c, dlg_buf *b) {
    if (conn_gone(c))
        return;
    uint64_t pending = dlg_conn_pending(c) + b->len + DLG_OUTQ_ITEM_COST;
    if (pending > c->srv->opts.max_pending_bytes) {
        cut_slow(c, pending);
        return;
    }
    if (q_push(c, b) != 0) {
        dlg_conn_doom(c, "out of memory queueing output");
        return;
    }
    mark_dirty(c);
}

/* ---- write path ------------------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
    wreq *w = (wreq *)req;
    dlg_conn *c = w->conn;
    c->inflight_bytes -= w->len;
    free(w);
    /* Progress: the write timeout counts from the last write the socket
     * finished, so a reader that drains a burst slowly is not taken for one
     * that is stuck (the soft and hard caps bound what it may hold). */
    c->inflight_since = c->inflight_bytes ? uv_now(c->srv->loop) : 0;
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (status < 0) {
        dlg_conn_close(c, uv_strerror(status));
        return;
    }
    if (c->close_after_flush && c->inflight_bytes == 0 && c->q_len == 0)
        dlg_conn_close(c, c->close_reason);
    else if (c->inflight_bytes == 0 &&
             (c->q_len > 0 || (c->tls_on && dlg_tlsio_out_pending(&c->tls) > 0)))
        mark_dirty(c); /* resume what waited for the socket */
}

/* Writes len bytes: as much as the socket takes now, the rest through a
 * uv_write that owns a copy. Returns 0 or a DLG_E* code. */
static int sock_write(dlg_conn *c, const uint8_t *data, size_t len) {
    size_t off = 0;
    if (c->srv->uring != NULL) {
        /* Only reached on the way to a close (a failed handshake's alert):
         * flush_conn_uring sends everything else. Best effort, and never
         * ahead of a send the ring still holds. */
        uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
        if (c->usend == NULL)
            uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
        return 0;
    }
    if (c->inflight_bytes == 0) {
        uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN)
            return DLG_EIO;
    }
    if (off == len)
        return 0;
    size_t rest = len - off;
    wreq *w = malloc(sizeof(*w) + rest);
    if (w == NULL)
        return DLG_ENOMEM;
    memcpy(w->data, data + off, rest);
    w->conn = c;
    w->len = rest;
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)rest);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
        free(w);
        return DLG_EIO;
    }
    if (c->inflight_bytes == 0)
        c->inflight_since = uv_now(c->srv->loop);
    c->inflight_bytes += rest;
    return 0;
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

/* sock_write for a send thread: as much as the socket takes now, the rest
 * copied to c->spill. Once there is a spill nothing more is written (the
 * caller stops), so the bytes stay in order. */
static int spill_write(dlg_conn *c, const uint8_t *data, size_t len) {
    size_t off = 0;
    if (c->spill_len == 0) {
        uv_os_fd_t fd;
        if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
            return DLG_EIO;
        while (off < len) {
            ssize_t n = write(fd, data + off, len - off);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno == EINTR)
                continue;
            else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            else
                return DLG_EIO;
        }
    }
    if (off == len)
        return 0;
    size_t rest = len - off;
    uint8_t *ns = realloc(c->spill, c->spill_len + rest);
    if (ns == NULL)
        return DLG_ENOMEM;
    memcpy(ns + c->spill_len, data + off, rest);
    c->spill = ns;
    c->spill_len += rest;
    return 0;
}

static int out_write(dlg_conn *c, const flush_ctx *x, const uint8_t *data, size_t len) {
    return x->send_thread ? spill_write(c, data, len) : sock_write(c, data, len);
}

/* The socket stopped taking data: what is left waits in the queue. */
static int backed_up(const dlg_conn *c) {
    return c->inflight_bytes > 0 || c->spill_len > 0;
}

/* Moves every ciphertext byte OpenSSL produced to the socket (on a send
 * thread: until the socket is full; the rest stays in OpenSSL's buffer). */
static int drain_tls(dlg_conn *c, const flush_ctx *x) {
    size_t n;
    while ((n = dlg_tlsio_out_take(&c->tls, x->wbuf, DLG_SCRATCH)) > 0) {
        int rc = out_write(c, x, x->wbuf, n);
        if (rc != 0)
            return rc;
        if (c->spill_len > 0)
            return 0;
    }
    return 0;
}

/* Moves up to cap bytes from the head of the queue to dst (frames are cut
 * anywhere: the offsets remember where); returns how many. */
static size_t stage(dlg_conn *c, uint8_t *dst, size_t cap) {
    size_t used = 0;
    while (c->q_len > 0 && used < cap) {
        dlg_outq_item *it = &c->q[c->q_head];
        size_t left = it->buf->len - it->off;
        size_t n = left < cap - used ? left : cap - used;
        memcpy(dst + used, it->buf->data + it->off, n);
        used += n;
        it->off += (uint32_t)n;
        c->q_bytes -= n;
        if (it->off == it->buf->len) {
            dlg_buf_unref(it->buf);
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_len--;
            c->q_popped++;
        }
    }
    return used;
}

/* TLS records carry at most 16 KiB of plaintext: one staged chunk each. */
#define DLG_TLS_RECORD_MAX (16 * 1024)

/* Output is about to be written: the sweep keeps this connection's buffers
 * (see release_idle). */
static void note_output(dlg_conn *c) {
    if (c->q_len > 0 || c->close_after_flush) {
        c->io_recent = 1;
        if (c->tls_on)
            c->tls_bufs = 1;
    }
}

/* Coalesces queued frames into stage-sized chunks: each chunk becomes one
 * SSL_write (a few TLS records at most) or one plain write. Touches only c
 * (and the shared frames' atomic counts), so a send thread may run it. */
static int flush_conn(dlg_conn *c, const flush_ctx *x) {
    /* While the socket is backed up, frames wait in the queue as shared
     * references (cheap, and "latest" events can still be conflated there)
     * rather than as per-connection ciphertext. on_write resumes. */
    if (backed_up(c) && !c->close_after_flush)
        return 0;
    note_output(c);
    const size_t stage_cap = c->tls_on ? DLG_TLS_RECORD_MAX : DLG_SCRATCH;
    while (c->q_len > 0) {
        size_t used = stage(c, x->pbuf, stage_cap);
        int rc = c->tls_on ? dlg_tlsio_write(&c->tls, x->pbuf, used)
                           : out_write(c, x, x->pbuf, used);
        if (rc != 0)
            return rc;
        if (c->tls_on && (rc = drain_tls(c, x)) != 0)
            return rc;
        /* The socket stopped taking data: the rest waits as references
         * (see above) instead of becoming copied ciphertext now. */
        if (backed_up(c) && !c->close_after_flush)
            return 0;
    }
    if (c->tls_on) {
        if (c->close_after_flush)
            dlg_tlsio_shutdown(&c->tls);
        int rc = drain_tls(c, x);
        /* The handshake grew the ciphertext buffers to its largest flight;
         * an idle connection should not keep that (memory per idle
         * connection). */
        if (rc == 0 && c->tls_compact && dlg_tlsio_compact(&c->tls) != 0)
            c->tls_compact = c->tls_bufs = 0;
        return rc;
    }
    return 0;
}

static flush_ctx loop_ctx(dlg_server *s) {
    return (flush_ctx){.pbuf = s->pbuf, .wbuf = s->wbuf, .send_thread = 0};
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
    c->inflight_bytes -= us->len;
    c->inflight_since = c->inflight_bytes ? uv_now(c->srv->loop) : 0; /* see on_write */
    if (c->state != DLG_CONN_CLOSING) {
        if (res < 0)
            dlg_conn_close(c, uv_strerror(res)); /* libuv's codes are -errno here */
        else if (c->q_len > 0 || c->close_after_flush ||
                 (c->tls_on && dlg_tlsio_out_pending(&c->tls) > 0))
            mark_dirty(c); /* flush_conn_uring sends it, or closes */
    }
    conn_release(c); /* the count the send held; may free c */
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
    if (c->tls_on) {
        size_t taken = 0;
        while (c->q_len > 0 && taken < DLG_URING_SEND_MAX) {
            size_t used = stage(c, s->pbuf, DLG_TLS_RECORD_MAX);
            int rc = dlg_tlsio_write(&c->tls, s->pbuf, used);
            if (rc != 0)
                return rc;
            taken += used;
        }
        if (c->q_len == 0 && c->close_after_flush)
            dlg_tlsio_shutdown(&c->tls); /* once more is harmless: nothing new */
        len = dlg_tlsio_out_pending(&c->tls);
        us = NULL;
        if (len > 0) {
            if ((us = dlg_uring_send_new(len)) == NULL)
                return DLG_ENOMEM;
            dlg_tlsio_out_take(&c->tls, us->bytes, len);
        }
        /* As in flush_conn: the handshake's large buffers go once drained. */
        if (c->tls_compact && dlg_tlsio_compact(&c->tls) != 0)
            c->tls_compact = c->tls_bufs = 0;
        if (us == NULL)
            return 0;
    } else {
        len = c->q_bytes < DLG_URING_SEND_MAX ? (size_t)c->q_bytes : DLG_URING_SEND_MAX;
        if (len == 0)
            return 0;
        if ((us = dlg_uring_send_new(len)) == NULL)
            return DLG_ENOMEM;
        stage(c, us->bytes, len);
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
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
    if (c->inflight_bytes == 0)
        c->inflight_since = uv_now(s->loop);
    c->inflight_bytes += len;
    return 0;
}

void dlg_conn_kick_noop(uv_idle_t *h) {
    (void)h;
}

/* What one flush left for the loop thread: an error to close on, bytes the
 * socket did not take, a close to finish. */
static void flush_done(dlg_conn *c, int rc) {
    if (c->state == DLG_CONN_CLOSING) {
        /* Closed by another connection's flush_done. */
        free(c->spill);
        c->spill = NULL;
        c->spill_len = 0;
        return;
    }
    if (rc == 0 && c->spill_len > 0) {
        /* From a send thread: libuv writes it (one more try, then a
         * uv_write); the rest of the queue follows from on_write. */
        rc = sock_write(c, c->spill, c->spill_len);
        free(c->spill);
        c->spill = NULL;
        c->spill_len = 0;
        if (rc == 0) {
            flush_ctx x = loop_ctx(c->srv);
            rc = flush_conn(c, &x); /* the socket took it all after all */
        }
    }
    if (rc != 0) {
        dlg_conn_close(c, dlg_strerror(rc));
        return;
    }
    if (c->close_after_flush && c->inflight_bytes == 0)
        dlg_conn_close(c, c->close_reason);
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
static void flush_all_shared(dlg_server *srv) {
    flush_ctx x = loop_ctx(srv);
    size_t n = 0;
    while (srv->dirty) {
        dlg_conn *c = srv->dirty;
        srv->dirty = c->dirty_next;
        if (c->state == DLG_CONN_CLOSING) {
            c->in_dirty = 0;
            continue;
        }
        if (c->state == DLG_CONN_READY && !c->close_after_flush && !backed_up(c)) {
            if (n == srv->cap_flush_v) {
                size_t ncap = n ? 2 * n : 256;
                dlg_conn **nv = realloc(srv->flush_v, ncap * sizeof(*nv));
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
    for (size_t i = 0; i < n; i++)
        srv->flush_v[i]->in_dirty = 0;
    for (size_t i = 0; i < n; i++)
        flush_done(srv->flush_v[i], srv->flush_v[i]->flush_rc);
}

void dlg_conn_flush_all(dlg_server *srv) {
    uv_idle_stop(&srv->kick);
    if (srv->sendpool != NULL && srv->uring == NULL) {
        flush_all_shared(srv);
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
            c->in_dirty = 0;
            if (c->state == DLG_CONN_CLOSING)
                continue;
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
    dlg_conn_reap(srv);
}

/* ---- read path -------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    dlg_conn *c = h->data;
    buf->base = (char *)c->srv->rbuf;
    buf->len = DLG_SCRATCH;
}

static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    dlg_conn *c = ctx;
    if (c->state == DLG_CONN_CLOSING || c->close_after_flush)
        return 1; /* stop: nothing more is read from a closing client */
    return c->srv->up.frame(c, body, len);
}

/* Feeds plaintext to the frame decoder, enforcing the pre-auth budget. */
static int feed_plain(dlg_conn *c, const uint8_t *data, size_t len) {
    c->in_bytes += len;
    if (c->state != DLG_CONN_READY &&
        c->in_bytes > c->srv->opts.pre_auth_max_bytes) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                            "more than %u bytes before Welcome",
                            c->srv->opts.pre_auth_max_bytes);
        dlg_conn_close_after_flush(c, "pre-auth input budget exceeded");
        return 1;
    }
    int rc = dlg_frame_dec_feed(&c->dec, data, len, on_frame, c, NULL);
    if (rc == DLG_ETOOBIG) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                            "frame length %u is above the limit %u",
                            dlg_frame_dec_bad_len(&c->dec),
                            c->dec.max_frame);
        dlg_conn_close_after_flush(c, "oversize frame");
        return 1;
    }
    if (rc == DLG_EFLAG) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__INVALID_ARGUMENT,
                            "frame flag %u is not supported (only 0, uncompressed)",
                            c->dec.hdr[0]);
        dlg_conn_close_after_flush(c, "bad frame flag");
        return 1;
    }
    return rc;
}

/* After a read: what TLS made for the peer by itself (a KeyUpdate answer,
 * an alert) is sent this turn even when no frame is, and counts in the
 * caps with the rest: a peer that never reads and sends what makes the
 * daemon answer is cut, before Welcome at pre_auth_max_bytes. */
static void tls_output_check(dlg_conn *c) {
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (dlg_tlsio_out_pending(&c->tls) > 0)
        mark_dirty(c);
    if (c->close_after_flush || c->in_doomed)
        return; /* reads no more: nothing grows */
    uint64_t pending = dlg_conn_pending(c);
    if (c->state == DLG_CONN_READY) {
        if (pending > c->srv->opts.max_pending_bytes)
            cut_slow(c, pending);
    } else if (pending > c->srv->opts.pre_auth_max_bytes) {
        dlg_log_info(&c->srv->log,
                     "conn %s (%s): refused: %llu bytes of output pending before Welcome "
                     "(pre_auth_max_bytes %u)",
                     c->client_id, c->peer, (unsigned long long)pending,
                     c->srv->opts.pre_auth_max_bytes);
        dlg_conn_close(c, "pre-auth output budget exceeded");
    }
}

static void refuse_full(dlg_conn *c) {
    dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                        "server full: %u connections is the limit",
                        c->srv->opts.max_connections);
    dlg_conn_close_after_flush(c, "connection limit");
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    dlg_conn *c = st->data;
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (nread < 0) {
        dlg_conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->close_after_flush)
        return;
    c->io_recent = 1;
    const uint8_t *data = (const uint8_t *)buf->base;
    if (!c->tls_on) {
        feed_plain(c, data, (size_t)nread);
        goto out;
    }
    c->tls_bufs = 1;
    if (dlg_tlsio_feed(&c->tls, data, (size_t)nread) != 0) {
        dlg_conn_close(c, "out of memory");
        return;
    }
    if (c->state == DLG_CONN_TLS) {
        char err[256] = "";
        int r = dlg_tlsio_handshake(&c->tls, err, sizeof(err));
        if (r < 0) {
            dlg_log_info(&c->srv->log, "conn %s (%s): TLS handshake refused: %s",
                         c->client_id, c->peer, err);
            flush_ctx x = loop_ctx(c->srv);
            drain_tls(c, &x); /* the alert, if OpenSSL made one */
            dlg_conn_close(c, "TLS handshake failed");
            return;
        }
        mark_dirty(c);
        if (r == 0)
            return;
        /* Clients with a certificate stay on OpenSSL: auth reads it at
         * Hello. */
        dlg_tlsio_handover(&c->tls);
        c->state = DLG_CONN_HELLO;
        c->tls_compact = 1;
        c->srv->heap_churn++; /* the handshake's transient memory is free now */
        if (c->refuse_full) {
            refuse_full(c);
            return;
        }
    }
    for (;;) {
        int n = dlg_tlsio_read(&c->tls, c->srv->pbuf, DLG_SCRATCH);
        if (n == 0)
            break;
        if (n == DLG_ECLOSED) {
            /* What it asked before is still answered, then our own
             * close_notify (RFC 8446 6.1). */
            dlg_conn_close_after_flush(c, "peer sent close_notify");
            break;
        }
        if (n < 0) {
            char why[256];
            dlg_tlsio_error(&c->tls, why, sizeof(why));
            flush_ctx x = loop_ctx(c->srv);
            drain_tls(c, &x); /* the alert that says why, if one was made */
            dlg_conn_close(c, why);
            return;
        }
        if (feed_plain(c, c->srv->pbuf, (size_t)n) != 0)
            break;
    }
    tls_output_check(c);
out:
    /* Replies are flushed by the check handle at the end of this loop turn. */
    dlg_conn_reap(c->srv);
}

static void on_deadline(uv_timer_t *t) {
    dlg_conn *c = t->data;
    if (c->state == DLG_CONN_READY || c->state == DLG_CONN_CLOSING)
        return;
    dlg_log_info(&c->srv->log,
                 "conn %s (%s): refused: no Hello within %u ms (handshake timeout)",
                 c->client_id, c->peer, c->srv->opts.handshake_timeout_ms);
    if (c->state == DLG_CONN_HELLO) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__DEADLINE_EXCEEDED,
                            "no Hello within %u ms", c->srv->opts.handshake_timeout_ms);
        dlg_conn_close_after_flush(c, "handshake timeout");
    } else {
        dlg_conn_close(c, "handshake timeout");
    }
}

/* One timer per connection serves the heartbeat and the token's expiry:
 * it is set for whichever comes first, so a session ends at its deadline
 * to the millisecond, not at the next heartbeat. */
static void on_tick(uv_timer_t *t);

static void arm_tick(dlg_conn *c) {
    uint64_t now = uv_now(c->srv->loop), at = c->srv->opts.heartbeat_ms ? c->ping_at : 0;
    if (c->expire_at && (at == 0 || c->expire_at < at))
        at = c->expire_at;
    if (at)
        uv_timer_start(&c->timer, on_tick, at > now ? at - now : 0, 0);
}

/* The heartbeat: 0 = alive or pinged, 1 = closing. */
static int heartbeat(dlg_conn *c) {
    if (c->in_bytes != c->in_at_tick) {
        /* Anything received proves the peer is alive. */
        c->in_at_tick = c->in_bytes;
        c->missed_pongs = 0;
        return 0;
    }
    if (c->missed_pongs >= 2) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__UNAVAILABLE,
                            "no answer to 2 heartbeats (%u ms apart)", c->srv->opts.heartbeat_ms);
        dlg_conn_close_after_flush(c, "heartbeat timeout");
        return 1;
    }
    c->missed_pongs++;
    Dialogue__V1__Ping p = DIALOGUE__V1__PING__INIT;
    p.nonce = (uint64_t)c->missed_pongs;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PING;
    f.ping = &p;
    dlg_reply_frame(c, &f);
    return 0;
}

static void on_tick(uv_timer_t *t) {
    dlg_conn *c = t->data;
    if (c->state != DLG_CONN_READY || c->close_after_flush)
        return;
    uint64_t now = uv_now(c->srv->loop), hb = c->srv->opts.heartbeat_ms;
    if (c->expire_at && now >= c->expire_at) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__UNAUTHENTICATED,
                            "token expired: session ended");
        dlg_conn_close_after_flush(c, "token expired");
        return;
    }
    if (hb && now >= c->ping_at) {
        if (heartbeat(c))
            return;
        c->ping_at = now + hb;
    }
    arm_tick(c);
}

void dlg_conn_start_heartbeat(dlg_conn *c) {
    uint64_t now = uv_now(c->srv->loop);
    c->dec.max_frame = c->srv->opts.max_frame; /* authenticated: the full limit */
    pre_unlink(c);
    uv_timer_stop(&c->timer);
    c->in_at_tick = c->in_bytes;
    c->ping_at = now + c->srv->opts.heartbeat_ms;
    c->expire_at = 0;
    if (c->session_deadline_ms) {
        /* The deadline is wall-clock time; the timer runs on the loop's. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t left = c->session_deadline_ms - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        c->expire_at = now + (left > 0 ? (uint64_t)left : 0);
        if (c->expire_at == 0)
            c->expire_at = 1; /* 0 means none */
    }
    arm_tick(c);
}

/* Closes the oldest connection that has not finished Hello. */
static void evict_oldest(dlg_server *srv) {
    dlg_conn *o = srv->pre_head;
    srv->counters.pre_auth_evicted++;
    dlg_log_debug(&srv->log, "conn %s (%s): closed before Welcome to make room for a new "
                             "connection (%u waiting, pre_auth_max_connections %u)",
                  o->client_id, o->peer, srv->n_pre_auth, srv->opts.pre_auth_max_connections);
    if (o->state == DLG_CONN_HELLO)
        dlg_conn_final_error(o, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                             "too many connections waiting for Hello: this one was the oldest");
    dlg_conn_close(o, "made room before Welcome");
}

/* Called with a new connection counted in n_conns but not yet admitted:
 * connections before Welcome keep within their own budget, and while some
 * are waiting, the newcomer does not find the server full (the oldest
 * waiting one goes; a client that finishes its handshake gets in, a
 * slowloris holds a slot only until someone needs it). */
static void make_room(dlg_server *srv) {
    uint32_t budget = srv->opts.pre_auth_max_connections;
    if (budget > srv->opts.max_connections)
        budget = srv->opts.max_connections;
    while (srv->pre_head != NULL && srv->n_pre_auth >= budget)
        evict_oldest(srv);
    if (srv->pre_head != NULL && srv->n_conns - srv->n_refusing > srv->opts.max_connections)
        evict_oldest(srv);
}

void dlg_conn_accept(dlg_listener *l, int fd) {
    dlg_server *srv = l->srv;
    dlg_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd); /* dropped: the backlog must not spin the loop */
        srv->counters.conns_refused++;
        return;
    }
    c->srv = srv;
    c->lis = l;
    c->born_ms = uv_now(srv->loop);
    c->id = ++srv->next_conn_id;
    snprintf(c->client_id, sizeof(c->client_id), "c%llu", (unsigned long long)c->id);
    /* Before Welcome no frame may exceed the pre-auth budget. */
    c->dec.max_frame = srv->opts.max_frame < srv->opts.pre_auth_max_bytes
                           ? srv->opts.max_frame : srv->opts.pre_auth_max_bytes;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->state = l->ssl_ctx ? DLG_CONN_TLS : DLG_CONN_HELLO;
    c->tls_on = l->ssl_ctx != NULL;
    /* Linked before anything can fail, so dlg_conn_close can unlink it. */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        dlg_conn_close(c, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char host[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    }
    srv->counters.conns_accepted++;
    make_room(srv);
    if (srv->n_conns - srv->n_refusing > srv->opts.max_connections) {
        srv->counters.conns_refused++;
        dlg_log_warn(&srv->log, "conn %s (%s): refused: %u connections is the limit",
                     c->client_id, c->peer, srv->opts.max_connections);
        /* A few over the limit are told why (after TLS, so the client can
         * read it); past that they are just closed. */
        if (srv->n_refusing >= 64) {
            dlg_conn_close(c, "connection limit");
            return;
        }
        c->refuse_full = 1;
        srv->n_refusing++;
    } else {
        pre_link(c);
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->tls_on && dlg_tlsio_init(&c->tls, l->ssl_ctx, 1, NULL, 0) != 0) {
        dlg_conn_close(c, "TLS session setup failed");
        return;
    }
    uv_timer_start(&c->timer, on_deadline, srv->opts.handshake_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        dlg_conn_close(c, "read start failed");
        return;
    }
    if (c->refuse_full && !c->tls_on)
        refuse_full(c);
}

const char *dlg_conn_name(const dlg_conn *c) {
    return c->user_id ? c->user_id : c->client_id;
}

int dlg_conn_has_role(const dlg_conn *c, const char *role) {
    for (size_t i = 0; i < c->n_roles; i++)
        if (strcmp(c->roles[i], role) == 0)
            return 1;
    return 0;
}
