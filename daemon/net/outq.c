/* outq.c: a connection's output queue: references to shared frames (one
 * encoded event serves every recipient), "latest" conflation in place,
 * the caps every queued byte counts against, and staging of the queue
 * through the connection's codec for the write path (flush.c). */
#include "conn_int.h"

#include <stdlib.h>
#include <string.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg__conn_mark_dirty_slow(dlg_conn *c) {
    c->in_dirty = 1;
    if (c->parent != NULL) {
        /* A stream's session is flushed by its connection, whose codec
         * looks for the sessions marked here (h2.c). */
        c->parent->kids_dirty = 1;
        dlg_conn_mark_dirty(c->parent);
        return;
    }
    /* Output queued from a timer or async callback must not wait for the
     * next I/O event: an active idle handle makes the poll return at once. */
    if (c->srv->dirty == NULL)
        uv_idle_start(&c->srv->kick, dlg_conn_kick_noop);
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}


/* A stream's session's queue counts in its connection's caps too
 * (conn.h: kids_pending): the change since q_cost was `before`. Unsigned
 * arithmetic wraps, so a queue that shrank subtracts. */
static void kids_account(dlg_conn *c, uint64_t before) {
    if (c->parent != NULL)
        c->parent->kids_pending += dlg__conn_q_cost(c) - before;
}

static int q_push(dlg_conn *c, dlg_buf *b, int raw) {
    if (c->q_len == c->q_cap) {
        size_t ncap = c->q_cap ? c->q_cap * 2 : 16;
        dlg_outq_item *nq = dlg_malloc(ncap * sizeof(*nq));
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
    it->raw = (uint8_t)raw;
    it->latest = NULL;
    c->q_len++;
    c->q_pushed++;
    c->q_bytes += b->len;
    return 0;
}

static int conn_gone(const dlg_conn *c) {
    return c->state == DLG_CONN_CLOSING || c->close_after_flush || c->in_doomed;
}

void dlg_conn_cut_slow(dlg_conn *c, uint64_t pending) {
    c->srv->counters.slow_consumers++;
    dlg_log_warn(&c->srv->log, "conn %s (%s): slow consumer: %llu bytes pending, cap %llu",
                 c->client_id, c->peer, (unsigned long long)pending,
                 (unsigned long long)c->srv->opts.max_pending_bytes);
    c->close_status = DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED;
    dlg_conn_doom(c, "slow consumer");
}

static void send_item(dlg_conn *c, dlg_buf *b, int raw) {
    if (conn_gone(c))
        return;
    /* A stream's session is held to its connection's cap, all streams
     * together; the one that passes it is cut. */
    uint64_t pending = dlg__conn_pending(dlg_conn_root(c)) + b->len + DLG_OUTQ_ITEM_COST;
    if (pending > c->srv->opts.max_pending_bytes) {
        dlg_conn_cut_slow(c, pending);
        return;
    }
    uint64_t before = dlg__conn_q_cost(c);
    if (q_push(c, b, raw) != 0) {
        dlg_conn_doom(c, "out of memory queueing output");
        return;
    }
    kids_account(c, before);
    dlg_conn_mark_dirty(c);
}

uint64_t dlg_conn_pending(const dlg_conn *c) {
    return dlg__conn_pending(c);
}

void dlg_conn_send(dlg_conn *c, dlg_buf *b) {
    send_item(c, b, 0);
}

void dlg_conn_send_raw(dlg_conn *c, dlg_buf *b) {
    send_item(c, b, 1);
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
            uint64_t before = dlg__conn_q_cost(c);
            c->q_bytes += b->len;
            c->q_bytes -= it->buf->len;
            dlg_buf_unref(it->buf);
            it->buf = dlg_buf_ref(b);
            c->conflated++;
            c->srv->counters.conflated++;
            kids_account(c, before);
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
            dlg_latest_pos *nv = dlg_realloc(c->latest, nc * sizeof(*nv));
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

/* Pops the head item once every byte of it is staged. */
static void pop_done(dlg_conn *c, dlg_outq_item *it) {
    if (it->off < it->buf->len)
        return;
    dlg_buf_unref(it->buf);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    c->q_popped++;
}

void dlg_outq_drop_head(dlg_conn *c) {
    dlg_outq_item *it = &c->q[c->q_head];
    c->q_bytes -= it->buf->len - it->off;
    it->off = (uint32_t)it->buf->len;
    pop_done(c, it);
}

size_t dlg_outq_stage(dlg_conn *c, uint8_t *dst, size_t cap) {
    uint64_t before = dlg__conn_q_cost(c);
    size_t used = 0;
    while (c->q_len > 0 && used < cap) {
        dlg_outq_item *it = &c->q[c->q_head];
        size_t left = it->buf->len - it->off;
        size_t n = left < cap - used ? left : cap - used;
        memcpy(dst + used, it->buf->data + it->off, n);
        used += n;
        it->off += (uint32_t)n;
        c->q_bytes -= n;
        pop_done(c, it);
    }
    kids_account(c, before);
    return used;
}

size_t dlg_outq_stage_with(dlg_conn *c, uint8_t *dst, size_t cap, dlg_outq_put_fn put) {
    uint64_t before = dlg__conn_q_cost(c);
    size_t used = 0;
    while (c->q_len > 0 && used < cap) {
        dlg_outq_item *it = &c->q[c->q_head];
        uint32_t off0 = it->off;
        size_t n = put(c, it, dst + used, cap - used);
        c->q_bytes -= it->off - off0;
        used += n;
        if (it->off < it->buf->len && (n == 0 || used >= cap))
            break; /* the rest of it does not fit now */
        pop_done(c, it);
    }
    kids_account(c, before);
    return used;
}

dlg_buf *dlg_outq_take(dlg_conn *c) {
    if (c->q_len == 0 || c->q[c->q_head].off != 0)
        return NULL;
    uint64_t before = dlg__conn_q_cost(c);
    dlg_outq_item *it = &c->q[c->q_head];
    dlg_buf *b = dlg_buf_ref(it->buf);
    c->q_bytes -= b->len;
    it->off = (uint32_t)b->len;
    pop_done(c, it);
    kids_account(c, before);
    return b;
}


size_t dlg_conn_stage(dlg_conn *c, uint8_t *dst, size_t cap) {
    if (c->codec && c->codec->stage)
        return c->codec->stage(c, dst, cap);
    return dlg_outq_stage(c, dst, cap);
}
