/* history.c: the server's history: rings (rings.c) for the rooms of the
 * config, the durable store behind them, the History / sync-on-join /
 * recovery answers, and the Acks that wait for the store (see history.h
 * and docs/history.md). */
#include "history.h"
#include "rings_int.h"
#include "reply.h"
#include "dlg_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "dlg_alloc.h"
#include "dlg_crc32c.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "dlg_vec.h"
#include "room.h"
#include "server.h"
#include "store_sqlite.h"

/* ---- the server's history ------------------------------------------- */

typedef struct pending_ack {
    dlg_conn *c;                  /* NULL once the connection closed */
    uint64_t rid, seq, ticket;
    uint32_t recipients;
    const char *room, *event;     /* stable: owned by the history */
} pending_ack;

struct dlg_history {
    dlg_server *srv;
    dlg_hroom **rooms;
    size_t n_rooms;
    dlg_store *store;             /* NULL = memory only */
    int sync_mode;
    int started, stopped;
    int lost;                     /* the store refused an event this run */
    dlg_fifo acks;                /* pending_ack, by ticket */
    uint64_t refused_logged_ms, fail_logged_ms, fails_unlogged;
};

static const char *sync_name(int mode) {
    return mode == DLG_STORE_SYNC_BATCH ? "batch" : "ack";
}

int dlg_history_setup(dlg_server *srv, const dlg_config *cfg, char *err, size_t errlen) {
    int rc = DLG_ENOMEM;
    dlg_history *h = dlg_calloc(1, sizeof(*h));
    if (h == NULL || (h->rooms = dlg_calloc(cfg->n_rooms + 1, sizeof(*h->rooms))) == NULL) {
        snprintf(err, errlen, "out of memory setting up history");
        goto fail;
    }
    h->srv = srv;
    h->sync_mode = srv->opts.store_sync;
    if (cfg->store == DLG_CFG_STORE_SQLITE &&
        (rc = dlg_store_open(cfg->store_path, h->sync_mode, &srv->log, &h->store, err,
                             errlen)) != 0)
        goto fail;
    uint64_t now = dlg_wall_ms();
    for (size_t i = 0; i < cfg->n_rooms; i++) {
        const dlg_config_room *cr = &cfg->rooms[i];
        dlg_room *r = dlg_rooms_find(srv->rooms, cr->id);
        if (r == NULL || (cr->n_history == 0 && cr->sync_history_on_join == 0))
            continue;
        dlg_hist_rule *rules = dlg_calloc(cr->n_history + 1, sizeof(*rules));
        if (rules == NULL) {
            snprintf(err, errlen, "out of memory setting up the history of room %s", cr->id);
            rc = DLG_ENOMEM;
            goto fail;
        }
        for (size_t k = 0; k < cr->n_history; k++) {
            rules[k].event = cr->history[k].event;
            rules[k].limit = cr->history[k].limit;
            rules[k].max_age_s = cr->history[k].max_age_seconds;
        }
        dlg_hroom *hr = NULL;
        rc = dlg_hroom_new(cr->id, rules, cr->n_history, cr->sync_history_on_join, &hr);
        free(rules);
        if (rc != 0) {
            snprintf(err, errlen, "%s:%u: room %s: cannot set up history: %s",
                     cfg->path ? cfg->path : "(defaults)", cr->line, cr->id, dlg_strerror(rc));
            goto fail;
        }
        h->rooms[h->n_rooms++] = hr;
        r->hist = hr;
        if (h->store && cr->n_history > 0 &&
            (rc = dlg_store_load_room(h->store, r->id, hr, now, &r->epoch, &r->seq, err,
                                      errlen)) != 0)
            goto fail;
    }
    srv->history = h;
    if (h->store)
        dlg_log_info(&srv->log, "history: %zu room(s), store sqlite %s (store_sync %s)",
                     h->n_rooms, dlg_store_path(h->store), sync_name(h->sync_mode));
    else
        dlg_log_info(&srv->log, "history: %zu room(s), store memory", h->n_rooms);
    return 0;
fail:
    if (h)
        for (size_t i = 0; i < h->n_rooms; i++) {
            dlg_room *r = dlg_rooms_find(srv->rooms, h->rooms[i]->room);
            if (r)
                r->hist = NULL;
        }
    dlg_history_free(h);
    return rc;
}

/* Writer results arrive in ticket order, and so do the Acks waiting. */
static void on_store_done(void *ud, const dlg_store_result *res) {
    dlg_history *h = ud;
    dlg_server *s = h->srv;
    if (res->rc != 0) {
        uint64_t now = dlg_wall_ms();
        /* A full disk fails every batch: one line per 10 s is enough. */
        if (h->fail_logged_ms == 0 || now - h->fail_logged_ms >= 10000) {
            dlg_store_stats st;
            dlg_store_get_stats(h->store, &st);
            dlg_log_error(&s->log, "store %s: %zu event(s) not written: %s (%llu event(s) in "
                          "%llu failed batch(es) so far, %llu more since the last report); "
                          "live delivery goes on",
                          dlg_store_path(h->store), res->n, res->err,
                          (unsigned long long)st.failed, (unsigned long long)st.errors,
                          (unsigned long long)h->fails_unlogged);
            h->fail_logged_ms = now;
            h->fails_unlogged = 0;
        } else {
            h->fails_unlogged++;
        }
    }
    pending_ack *a;
    while (h->acks.n > 0 && (a = dlg_fifo_at(&h->acks, 0))->ticket <= res->last) {
        if (a->c && res->rc == 0)
            dlg_reply_ack(a->c, a->rid, a->seq, a->recipients);
        else if (a->c)
            dlg_reply_error(a->c, a->rid, DIALOGUE__V1__STATUS__DATA_LOSS,
                                "event %s seq %llu of room %s was delivered but not stored: %s",
                                a->event, (unsigned long long)a->seq, a->room, res->err);
        dlg_fifo_pop(&h->acks);
    }
}

void dlg_history_metrics_get(dlg_history *h, dlg_history_metrics *out) {
    memset(out, 0, sizeof(*out));
    if (h == NULL)
        return;
    out->rooms = h->n_rooms;
    for (size_t i = 0; i < h->n_rooms; i++)
        for (size_t k = 0; k < h->rooms[i]->n_rings; k++) {
            const ring *g = h->rooms[i]->rings[k];
            out->events += g->n;
            for (size_t j = 0; j < g->n; j++) {
                const dlg_hist_entry *e = &g->v[(g->head + j) % g->cap];
                out->bytes += e->len;
            }
        }
    if (h->store != NULL) {
        dlg_store_stats st;
        dlg_store_get_stats(h->store, &st);
        out->store = 1;
        out->store_open = h->started && !h->stopped;
        out->lost = h->lost;
        out->written = st.written;
        out->failed = st.failed;
        out->dropped = st.dropped;
        out->batches = st.batches;
        out->commit_ns = st.commit_ns;
    }
}

int dlg_history_start(dlg_history *h) {
    if (h == NULL || h->store == NULL || h->started)
        return 0;
    char err[512];
    if (dlg_store_start(h->store, h->srv->loop, on_store_done, h, err, sizeof(err)) != 0) {
        dlg_log_error(&h->srv->log, "%s", err);
        return DLG_EINTERNAL;
    }
    h->started = 1;
    return 0;
}

void dlg_history_stop(dlg_history *h) {
    if (h == NULL || h->store == NULL || h->stopped)
        return;
    h->stopped = 1;
    dlg_store_seq *seqs = dlg_calloc(h->n_rooms + 1, sizeof(*seqs));
    size_t n = 0;
    for (size_t i = 0; seqs && i < h->n_rooms; i++) {
        dlg_room *r = dlg_rooms_find(h->srv->rooms, h->rooms[i]->room);
        if (r) {
            seqs[n].room = h->rooms[i]->room;
            seqs[n++].seq = r->seq;
        }
    }
    /* Without the final seqs the next start cannot continue them: not clean. */
    dlg_store_close(h->store, seqs, n, h->lost || seqs == NULL);
    free(seqs);
    dlg_fifo_free(&h->acks);
    dlg_store_stats st;
    dlg_store_get_stats(h->store, &st);
    dlg_log_info(&h->srv->log, "store %s: closed: %llu event(s) written in %llu batch(es) "
                 "(%.1f us per batch), %llu failed, %llu refused",
                 dlg_store_path(h->store), (unsigned long long)st.written,
                 (unsigned long long)st.batches,
                 st.batches ? (double)st.commit_ns / 1e3 / (double)st.batches : 0.0,
                 (unsigned long long)st.failed, (unsigned long long)st.dropped);
}

void dlg_history_free(dlg_history *h) {
    if (h == NULL)
        return;
    dlg_store_free(h->store);
    for (size_t i = 0; i < h->n_rooms; i++)
        dlg_hroom_free(h->rooms[i]);
    free(h->rooms);
    dlg_fifo_free(&h->acks);
    free(h);
}

void dlg_history_append(dlg_server *srv, dlg_room *r, const char *event, uint64_t seq,
                        uint64_t ts_ms, dlg_buf *frame) {
    dlg_history *h = srv->history;
    dlg_hroom *hr = r->hist;
    if (h == NULL || hr == NULL)
        return;
    uint32_t off, len;
    if (dlg_hist_event_span(frame, &off, &len) != 0) {
        dlg_log_error(&srv->log, "history: event %s seq %llu of room %s: unexpected frame "
                      "layout, not kept", event, (unsigned long long)seq, r->id);
        return;
    }
    ring *rg = NULL;
    int rc = dlg__hroom_append(hr, event, seq, ts_ms, frame, off, len, ts_ms, &rg);
    if (rc == DLG_EINVAL)
        rc = 0; /* not newer than the ring's newest: not kept */
    if (rc < 0)
        dlg_log_warn(&srv->log, "history: event %s seq %llu of room %s not kept: %s", event,
                     (unsigned long long)seq, r->id, dlg_strerror(rc));
    if (rc != 1 || h->store == NULL || h->stopped)
        return;
    dlg_store_item it = {
        .room = hr->room, .event = rg->event, .seq = seq, .ts_ms = ts_ms, .epoch = r->epoch,
        .buf = frame, .off = off, .len = len, .evicted_max = rg->evicted_max,
    };
    uint64_t t = dlg_store_put(h->store, &it);
    hr->last_put_seq = seq;
    hr->last_ticket = t;
    hr->last_event = rg->event;
    if (t == 0) {
        h->lost = 1;
        uint64_t now = dlg_wall_ms();
        if (h->refused_logged_ms == 0 || now - h->refused_logged_ms >= 10000) {
            h->refused_logged_ms = now;
            dlg_store_stats st;
            dlg_store_get_stats(h->store, &st);
            dlg_log_error(&srv->log, "store %s: write queue full (the disk is slower than the "
                          "events): event %s seq %llu of room %s kept in memory only "
                          "(%llu refused so far)", dlg_store_path(h->store), event,
                          (unsigned long long)seq, r->id, (unsigned long long)st.dropped);
        }
    }
}

int dlg_history_defer_ack(dlg_server *srv, dlg_conn *c, uint64_t rid, dlg_room *r,
                          uint64_t seq, uint32_t recipients) {
    dlg_history *h = srv->history;
    dlg_hroom *hr = r->hist;
    if (h == NULL || h->store == NULL || h->sync_mode != DLG_STORE_SYNC_ACK || hr == NULL ||
        hr->last_put_seq != seq || seq == 0)
        return 0; /* not kept, so nothing to wait for */
    if (hr->last_ticket == 0) {
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__DATA_LOSS,
                            "event %s seq %llu of room %s was delivered but not stored: the "
                            "store's write queue is full", hr->last_event,
                            (unsigned long long)seq, r->id);
        return 1;
    }
    pending_ack *a = dlg_fifo_push(&h->acks, sizeof(*a));
    if (a != NULL) {
        *a = (pending_ack){.c = c, .rid = rid, .seq = seq, .ticket = hr->last_ticket,
                           .recipients = recipients, .room = hr->room, .event = hr->last_event};
    } else {
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__UNAVAILABLE,
                            "event %s seq %llu of room %s was delivered; out of memory "
                            "tracking its write", hr->last_event, (unsigned long long)seq, r->id);
    }
    return 1;
}

void dlg_history_conn_gone(dlg_server *srv, dlg_conn *c) {
    dlg_history *h = srv->history;
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->acks.n; i++) {
        pending_ack *a = dlg_fifo_at(&h->acks, i);
        if (a->c == c)
            a->c = NULL;
    }
}

/* Room for events in one HistoryBatch frame: max_frame less the frame's
 * own fields (request_id, room, complete, epoch, lengths). */
static size_t batch_budget(const dlg_server *s, const dlg_room *r) {
    size_t over = 64 + strlen(r->id);
    return s->opts.max_frame > over ? s->opts.max_frame - over : 1;
}

static void send_batch(dlg_conn *c, uint64_t rid, const dlg_room *r,
                       const dlg_hist_batch *b, int complete) {
    if (b->n_damaged)
        dlg_log_error(&c->srv->log, "history: room %s: %zu kept event(s) no longer match "
                      "their checksum in memory (first: event %s seq %llu): left out and "
                      "reported as a gap (complete=false)", r->id, b->n_damaged,
                      b->damaged_event, (unsigned long long)b->damaged_seq);
    dlg_buf *buf = NULL;
    int rc = dlg_hist_pack(r->id, r->epoch, complete, rid, b, &buf);
    if (rc != 0) {
        dlg_reply_error(c, rid, dlg_err_status(rc),
                            "cannot encode the history of room %s: %s", r->id, dlg_strerror(rc));
        return;
    }
    dlg_conn_send(c, buf);
    dlg_buf_unref(buf);
}

void dlg_history_request(dlg_conn *c, uint64_t rid, dlg_room *r,
                         const Dialogue__V1__History *req) {
    const char *ev = req->event ? req->event : "";
    const char *why = ev[0] ? dlg_name_check(ev) : NULL;
    if (why) {
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__INVALID_ARGUMENT,
                            "event name \"%.64s\" %s", ev, why);
        return;
    }
    dlg_hist_batch b = {0};
    if (r->hist) {
        dlg_hist_query q = {
            .events = ev[0] ? &ev : NULL, .n_events = ev[0] ? 1 : 0,
            .by_seq = req->by_seq, .since_seq = req->since_seq, .start = req->start,
            .limit = req->limit == 0 || req->limit > DLG_HIST_MAX ? DLG_HIST_MAX : req->limit,
            .max_bytes = batch_budget(c->srv, r),
        };
        int rc = dlg_hroom_query(r->hist, &q, dlg_wall_ms(), &b);
        if (rc != 0) {
            dlg_reply_error(c, rid, dlg_err_status(rc),
                                "cannot read the history of room %s: %s", r->id,
                                dlg_strerror(rc));
            return;
        }
    }
    /* A newest-first page (start 0) reaches the room's seq. */
    uint64_t upto = req->start == 0 ? r->seq : b.n ? b.v[b.n - 1]->seq : 0;
    int gap = dlg__hroom_spans_gap(r->hist, req->by_seq, req->since_seq, &b, upto);
    /* Reaching `limit` is paging, not loss: the client asks again from the
     * last seq (or index) it got. */
    send_batch(c, rid, r, &b, !b.lost && !b.truncated && !gap);
    dlg_hist_batch_free(&b);
}

int dlg_history_join_follows(const dlg_member *m, const Dialogue__V1__Join *j) {
    const dlg_hroom *hr = m->room->hist;
    return (j && j->recover) || (hr != NULL && hr->sync != 0);
}

void dlg_history_on_join(dlg_conn *c, uint64_t rid, dlg_member *m, const Dialogue__V1__Join *j) {
    dlg_room *r = m->room;
    dlg_hroom *hr = r->hist;
    int recover = j && j->recover;
    if (!dlg_history_join_follows(m, j))
        return;
    char **subs = NULL;
    size_t n_subs = 0;
    int rc = m->all ? 0 : dlg_room_subscriptions(m, &subs, &n_subs);
    if (rc != 0) {
        dlg_reply_error(c, rid, dlg_err_status(rc),
                            "cannot read the history of room %s: %s", r->id, dlg_strerror(rc));
        return;
    }
    dlg_hist_query q = {.events = (const char *const *)subs, .n_events = n_subs,
                        .max_bytes = batch_budget(c->srv, r)};
    /* A client ahead of the room (since_seq > seq) saw events this run never
     * had: its history is gone as surely as with another epoch. */
    int resume = recover && j->epoch == r->epoch && j->since_seq <= r->seq;
    if (resume) {
        q.by_seq = 1;
        q.since_seq = j->since_seq;
    } else if (!recover && hr->sync > 0) {
        q.per_type = (uint32_t)hr->sync;
    }
    dlg_hist_batch b = {0};
    /* Subscribed to nothing: n_events 0 would mean "every type". */
    int none = !m->all && n_subs == 0;
    if (hr && !none && (rc = dlg_hroom_query(hr, &q, dlg_wall_ms(), &b)) != 0) {
        free(subs);
        dlg_reply_error(c, rid, dlg_err_status(rc),
                            "cannot read the history of room %s: %s", r->id, dlg_strerror(rc));
        return;
    }
    /* A gap this node knows of after the client's position (a core-mode
     * node that lost its cluster link) is a loss like an eviction. */
    if (resume && dlg__hroom_spans_gap(hr, 1, j->since_seq, &b, 0))
        b.lost = 1;
    /* A sync batch is what is kept: dropped events are no gap in it, a
     * damaged one is. */
    int complete = recover ? resume && !b.lost && !b.truncated : !b.truncated && !b.damaged;
    send_batch(c, rid, r, &b, complete);
    dlg_hist_batch_free(&b);
    free(subs);
}

/* The core's keeper (seam.h). */
static void keep(void *ud, dlg_room *r, const char *event, uint64_t seq, uint64_t ts_ms,
                 dlg_buf *frame) {
    dlg_history_append(ud, r, event, seq, ts_ms, frame);
}

static void keeper_conn_gone(void *ud, dlg_conn *c) {
    dlg_history_conn_gone(ud, c);
}

void dlg_history_keeper(dlg_server *srv, dlg_keeper *out) {
    *out = (dlg_keeper){.ud = srv, .append = keep, .conn_gone = keeper_conn_gone};
}
