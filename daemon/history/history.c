/* history.c: per-room event rings, the History / sync-on-join / recovery
 * answers, and the Acks that wait for the durable store (see history.h and
 * docs/history.md). */
#include "history.h"
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
#include "dlg_crc32c.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "room.h"
#include "server.h"
#include "store_sqlite.h"

/* ---- rings ------------------------------------------------------------ */

typedef struct ring {
    char *event;
    uint32_t limit, max_age_s;
    dlg_hist_entry *v;            /* circular; grows up to limit */
    size_t head, n, cap;
    uint64_t evicted_max;         /* highest seq ever dropped (0 = none) */
} ring;

struct dlg_hroom {
    char *room;
    int has_star;                 /* a "*" rule covers types without their own */
    uint32_t star_limit, star_age;
    ring **rings;                 /* named rules first, then "*" types as seen */
    size_t n_rings, cap_rings;
    int32_t sync;
    /* Highest seq at or below which a damaged event of unknown type lies
     * (0 = none): requests reaching back there are incomplete. */
    uint64_t damaged_max;
    /* What the store was last handed, for deferred Acks (loop thread). */
    uint64_t last_put_seq, last_ticket;
    const char *last_event;
    /* Events may be missing just before this seq (dlg_hroom_note_gap):
     * a range reaching below it is incomplete. 0 = no gap known. */
    uint64_t gap_next;
};

static dlg_hist_entry *ring_at(const ring *rg, size_t i) {
    return &rg->v[(rg->head + i) % rg->cap];
}

static void ring_drop_oldest(ring *rg) {
    dlg_hist_entry *e = ring_at(rg, 0);
    if (e->seq > rg->evicted_max)
        rg->evicted_max = e->seq;
    dlg_buf_unref(e->buf);
    rg->head = (rg->head + 1) % rg->cap;
    rg->n--;
}

/* Age is checked lazily (append and query), so an idle ring costs nothing. */
static void ring_expire(ring *rg, uint64_t now_ms) {
    if (rg->max_age_s == 0)
        return;
    uint64_t age_ms = (uint64_t)rg->max_age_s * 1000u;
    while (rg->n > 0 && ring_at(rg, 0)->ts_ms + age_ms < now_ms)
        ring_drop_oldest(rg);
}

static void ring_free(ring *rg) {
    if (rg == NULL)
        return;
    while (rg->n > 0)
        ring_drop_oldest(rg);
    free(rg->v);
    free(rg->event);
    free(rg);
}

static ring *ring_find(const dlg_hroom *hr, const char *event) {
    for (size_t i = 0; i < hr->n_rings; i++)
        if (strcmp(hr->rings[i]->event, event) == 0)
            return hr->rings[i];
    return NULL;
}

static ring *ring_add(dlg_hroom *hr, const char *event, uint32_t limit, uint32_t age) {
    if (hr->n_rings == hr->cap_rings) {
        size_t nc = hr->cap_rings ? hr->cap_rings * 2 : 4;
        ring **nv = realloc(hr->rings, nc * sizeof(*nv));
        if (nv == NULL)
            return NULL;
        hr->rings = nv;
        hr->cap_rings = nc;
    }
    ring *rg = calloc(1, sizeof(*rg));
    if (rg == NULL || (rg->event = strdup(event)) == NULL) {
        free(rg);
        return NULL;
    }
    rg->limit = limit;
    rg->max_age_s = age;
    hr->rings[hr->n_rings++] = rg;
    return rg;
}

/* The ring that keeps `event`, made on first use for "*" rules. */
static ring *ring_for(dlg_hroom *hr, const char *event, int create) {
    ring *rg = ring_find(hr, event);
    if (rg || !hr->has_star || !create || hr->n_rings >= DLG_HIST_MAX_TYPES)
        return rg;
    return ring_add(hr, event, hr->star_limit, hr->star_age);
}

int dlg_hroom_new(const char *room, const dlg_hist_rule *rules, size_t n, int32_t sync,
                  dlg_hroom **out) {
    for (size_t i = 0; i < n; i++)
        if (rules[i].event == NULL || rules[i].limit == 0)
            return DLG_EINVAL;
    dlg_hroom *hr = calloc(1, sizeof(*hr));
    if (hr == NULL || (hr->room = strdup(room)) == NULL)
        goto fail;
    hr->sync = sync;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rules[i].event, "*") == 0) {
            hr->has_star = 1;
            hr->star_limit = rules[i].limit;
            hr->star_age = rules[i].max_age_s;
        } else if (ring_find(hr, rules[i].event) == NULL &&
                   ring_add(hr, rules[i].event, rules[i].limit, rules[i].max_age_s) == NULL) {
            goto fail;
        }
    }
    *out = hr;
    return 0;
fail:
    dlg_hroom_free(hr);
    return DLG_ENOMEM;
}

void dlg_hroom_free(dlg_hroom *hr) {
    if (hr == NULL)
        return;
    for (size_t i = 0; i < hr->n_rings; i++)
        ring_free(hr->rings[i]);
    free(hr->rings);
    free(hr->room);
    free(hr);
}

uint64_t dlg_hroom_capacity(const dlg_hroom *hr, size_t n_types) {
    uint64_t n = 0;
    /* Rings made for "*" types count as named: an over-estimate later on. */
    for (size_t i = 0; i < hr->n_rings; i++)
        n += hr->rings[i]->limit;
    if (hr->has_star)
        n += (uint64_t)hr->star_limit * (n_types > hr->n_rings ? n_types - hr->n_rings : 1);
    return n;
}

int32_t dlg_hroom_sync(const dlg_hroom *hr) {
    return hr->sync;
}

/* dlg_hroom_append, also telling which ring kept it (its name is stable,
 * which the store needs). buf NULL keeps a damaged event's place. Returns
 * DLG_EINVAL (with *kept_in set) when seq is not above the ring's newest. */
static int hroom_append(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                        dlg_buf *buf, uint32_t off, uint32_t len, uint64_t now_ms,
                        ring **kept_in) {
    ring *rg = ring_for(hr, event, 1);
    if (rg == NULL)
        return hr->has_star && hr->n_rings < DLG_HIST_MAX_TYPES ? DLG_ENOMEM : 0;
    ring_expire(rg, now_ms);
    if (rg->n > 0 && ring_at(rg, rg->n - 1)->seq >= seq) {
        *kept_in = rg;
        return DLG_EINVAL;
    }
    if (rg->max_age_s && ts_ms + (uint64_t)rg->max_age_s * 1000u < now_ms) {
        /* Already too old (loading a store): counts as dropped. */
        if (seq > rg->evicted_max)
            rg->evicted_max = seq;
        return 0;
    }
    if (rg->n == rg->limit)
        ring_drop_oldest(rg);
    if (rg->n == rg->cap) {
        size_t nc = rg->cap ? rg->cap * 2 : 8;
        if (nc > rg->limit)
            nc = rg->limit;
        dlg_hist_entry *nv = malloc(nc * sizeof(*nv));
        if (nv == NULL)
            return DLG_ENOMEM;
        for (size_t i = 0; i < rg->n; i++)
            nv[i] = *ring_at(rg, i);
        free(rg->v);
        rg->v = nv;
        rg->cap = nc;
        rg->head = 0;
    }
    dlg_hist_entry *e = &rg->v[(rg->head + rg->n) % rg->cap];
    e->buf = buf ? dlg_buf_ref(buf) : NULL;
    e->off = off;
    e->len = len;
    e->seq = seq;
    e->ts_ms = ts_ms;
    /* One pass over the bytes per kept event, so that what is served later
     * can be checked against what was kept. */
    e->crc = buf ? dlg_crc32c(0, buf->data + off, len) : 0;
    rg->n++;
    *kept_in = rg;
    return 1;
}

int dlg_hroom_append(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                     dlg_buf *buf, uint32_t off, uint32_t len, uint64_t now_ms,
                     uint64_t *evicted_max) {
    ring *rg = NULL;
    int rc = hroom_append(hr, event, seq, ts_ms, buf, off, len, now_ms, &rg);
    if (rc == DLG_EINVAL)
        rc = 0; /* out of order: not kept */
    if (evicted_max)
        *evicted_max = rc == 1 && rg ? rg->evicted_max : 0;
    return rc;
}

int dlg_hroom_note_damaged(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                           uint64_t now_ms) {
    ring *rg = NULL;
    int rc = event ? hroom_append(hr, event, seq, ts_ms, NULL, 0, 0, now_ms, &rg) : DLG_EINVAL;
    if (rc == DLG_EINVAL && seq > hr->damaged_max)
        hr->damaged_max = seq; /* no place in a ring: the whole room answers for it */
    return rc == DLG_ENOMEM ? rc : 0;
}

void dlg_hroom_note_evicted(dlg_hroom *hr, const char *event, uint64_t seq) {
    ring *rg = ring_for(hr, event, 1);
    if (rg && seq > rg->evicted_max)
        rg->evicted_max = seq;
}

void dlg_hroom_note_gap(dlg_hroom *hr, uint64_t seq) {
    if (hr && seq + 1 > hr->gap_next)
        hr->gap_next = seq + 1;
}

/* Whether a request for events after since_seq (by_seq), or a page whose
 * oldest event is b->v[0] and which reaches up to `upto`, spans a gap. */
static int spans_gap(const dlg_hroom *hr, int by_seq, uint64_t since_seq,
                     const dlg_hist_batch *b, uint64_t upto) {
    if (hr == NULL || hr->gap_next == 0)
        return 0;
    if (by_seq)
        return since_seq < hr->gap_next;
    return b->n > 0 && b->v[0]->seq < hr->gap_next && upto >= hr->gap_next;
}

/* ---- queries ---------------------------------------------------------- */

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Bytes one event adds to a HistoryBatch (tag, length, message). */
static size_t entry_cost(const dlg_hist_entry *e) {
    return 1 + varint_len(e->len) + e->len;
}

typedef struct cursor {
    ring *rg;
    size_t lo, hi;                /* entries [lo, hi) are candidates */
} cursor;

/* First index in rg with seq > since (seqs grow along a ring). */
static size_t ring_after(const ring *rg, uint64_t since) {
    size_t lo = 0, hi = rg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(rg, mid)->seq <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int pick_rings(dlg_hroom *hr, const dlg_hist_query *q, cursor **out, size_t *n) {
    size_t want = q->n_events ? q->n_events : hr->n_rings;
    cursor *cs = calloc(want ? want : 1, sizeof(*cs));
    if (cs == NULL)
        return DLG_ENOMEM;
    size_t k = 0;
    if (q->n_events == 0) {
        for (size_t i = 0; i < hr->n_rings; i++)
            cs[k++].rg = hr->rings[i];
    } else {
        for (size_t i = 0; i < q->n_events; i++) {
            ring *rg = ring_find(hr, q->events[i]);
            int dup = 0;
            for (size_t j = 0; j < k && !dup; j++)
                dup = cs[j].rg == rg;
            if (rg && !dup)
                cs[k++].rg = rg;
        }
    }
    *out = cs;
    *n = k;
    return 0;
}

int dlg_hroom_query(dlg_hroom *hr, const dlg_hist_query *q, uint64_t now_ms,
                    dlg_hist_batch *out) {
    memset(out, 0, sizeof(*out));
    cursor *cs = NULL;
    size_t nc = 0;
    if (pick_rings(hr, q, &cs, &nc) != 0)
        return DLG_ENOMEM;
    size_t avail = 0;
    for (size_t i = 0; i < nc; i++) {
        ring *rg = cs[i].rg;
        ring_expire(rg, now_ms);
        cs[i].hi = rg->n;
        if (q->by_seq) {
            cs[i].lo = ring_after(rg, q->since_seq);
            if (rg->evicted_max > q->since_seq)
                out->lost = 1;
        } else {
            cs[i].lo = q->per_type && rg->n > q->per_type ? rg->n - q->per_type : 0;
        }
        avail += cs[i].hi - cs[i].lo;
    }
    if (q->by_seq && hr->damaged_max > q->since_seq)
        out->lost = out->damaged = 1;
    size_t cap = q->limit && q->limit < avail ? q->limit : avail;
    out->v = calloc(cap ? cap : 1, sizeof(*out->v));
    if (out->v == NULL) {
        free(cs);
        return DLG_ENOMEM;
    }
    size_t bytes = 0, skip = q->by_seq ? 0 : q->start;
    int exhausted = 0;
    /* A k-way merge by seq: ascending from since_seq, or descending from
     * the newest. k (event types asked) is small, so a scan beats a heap. */
    for (;;) {
        cursor *best = NULL;
        for (size_t i = 0; i < nc; i++) {
            cursor *c = &cs[i];
            if (c->lo == c->hi)
                continue;
            uint64_t s = q->by_seq ? ring_at(c->rg, c->lo)->seq : ring_at(c->rg, c->hi - 1)->seq;
            uint64_t bs = best == NULL ? 0
                          : q->by_seq ? ring_at(best->rg, best->lo)->seq
                                      : ring_at(best->rg, best->hi - 1)->seq;
            if (best == NULL || (q->by_seq ? s < bs : s > bs))
                best = c;
        }
        if (best == NULL) {
            exhausted = 1;
            break;
        }
        dlg_hist_entry *e = q->by_seq ? ring_at(best->rg, best->lo)
                                      : ring_at(best->rg, best->hi - 1);
        if (q->by_seq)
            best->lo++;
        else
            best->hi--;
        /* A damaged event is no event: it takes no index, and is a gap
         * only inside the range given (not among the skipped newest). */
        if (e->buf == NULL) {
            if (skip == 0)
                out->lost = out->damaged = 1;
            continue;
        }
        if (skip > 0) {
            skip--;
            continue;
        }
        if (out->n == cap) {
            out->more = 1;
            break;
        }
        if (q->max_bytes && bytes + entry_cost(e) > q->max_bytes) {
            out->truncated = 1;
            break;
        }
        if (dlg_crc32c(0, e->buf->data + e->off, e->len) != e->crc) {
            /* Changed in memory since it was kept: never serve it. */
            if (out->n_damaged++ == 0) {
                out->damaged_seq = e->seq;
                out->damaged_event = best->rg->event;
            }
            dlg_buf_unref(e->buf);
            e->buf = NULL;
            out->lost = out->damaged = 1;
            continue;
        }
        bytes += entry_cost(e);
        out->v[out->n++] = e;
    }
    if (!q->by_seq) {
        if (exhausted)
            for (size_t i = 0; i < nc; i++)
                if (cs[i].lo == 0 && cs[i].rg->evicted_max > 0)
                    out->lost = 1;
        /* A damaged event of unknown type lies at or below damaged_max. */
        if (hr->damaged_max > 0 &&
            (exhausted || (out->n > 0 && out->v[out->n - 1]->seq <= hr->damaged_max)))
            out->lost = out->damaged = 1;
        for (size_t i = 0, j = out->n; i + 1 < j; i++, j--) {
            const dlg_hist_entry *t = out->v[i];
            out->v[i] = out->v[j - 1];
            out->v[j - 1] = t;
        }
    }
    free(cs);
    return 0;
}

void dlg_hist_batch_free(dlg_hist_batch *b) {
    free(b->v);
    memset(b, 0, sizeof(*b));
}

/* Written by hand because the events are already encoded: protobuf-c would
 * need every one decoded first only to encode it again. The unit test
 * checks the result with protobuf-c's own decoder. */
int dlg_hist_pack(const char *room, uint64_t epoch, int complete, uint64_t request_id,
                  const dlg_hist_batch *b, dlg_buf **out) {
    size_t room_len = strlen(room);
    uint64_t hb = 0;
    if (room_len)
        hb += 1 + varint_len(room_len) + room_len;
    for (size_t i = 0; i < b->n; i++)
        hb += entry_cost(b->v[i]);
    if (complete)
        hb += 2;
    if (epoch)
        hb += 1 + varint_len(epoch);
    uint64_t sf = (request_id ? 1 + varint_len(request_id) : 0) + 1 + varint_len(hb) + hb;
    if (sf > UINT32_MAX)
        return DLG_ETOOBIG;
    dlg_buf *buf = dlg_buf_new(DLG_FRAME_HDR + (size_t)sf);
    if (buf == NULL)
        return DLG_ENOMEM;
    dlg_frame_put_header(buf->data, (uint32_t)sf);
    uint8_t *p = buf->data + DLG_FRAME_HDR;
    if (request_id) {
        *p++ = 0x08; /* ServerFrame.request_id = 1, varint */
        p = put_varint(p, request_id);
    }
    *p++ = 0x4a; /* ServerFrame.history_batch = 9, length-delimited */
    p = put_varint(p, hb);
    if (room_len) {
        *p++ = 0x0a; /* HistoryBatch.room = 1 */
        p = put_varint(p, room_len);
        memcpy(p, room, room_len);
        p += room_len;
    }
    for (size_t i = 0; i < b->n; i++) {
        const dlg_hist_entry *e = b->v[i];
        *p++ = 0x12; /* HistoryBatch.events = 2 */
        p = put_varint(p, e->len);
        memcpy(p, e->buf->data + e->off, e->len);
        p += e->len;
    }
    if (complete) {
        *p++ = 0x18; /* HistoryBatch.complete = 3 */
        *p++ = 1;
    }
    if (epoch) {
        *p++ = 0x20; /* HistoryBatch.epoch = 4 */
        p = put_varint(p, epoch);
    }
    if ((size_t)(p - buf->data) != buf->len) {
        dlg_buf_unref(buf);
        return DLG_EINTERNAL;
    }
    *out = buf;
    return 0;
}

int dlg_hist_event_span(const dlg_buf *f, uint32_t *off, uint32_t *len) {
    if (f->len < DLG_FRAME_HDR + 2 || f->data[0] != 0)
        return DLG_EINVAL;
    uint32_t body = (uint32_t)f->data[1] << 24 | (uint32_t)f->data[2] << 16 |
                    (uint32_t)f->data[3] << 8 | f->data[4];
    if ((size_t)body + DLG_FRAME_HDR != f->len || f->data[5] != 0x2a) /* ServerFrame.event */
        return DLG_EINVAL;
    uint64_t v = 0;
    size_t i = 6;
    for (int shift = 0; i < f->len && shift < 35; shift += 7) {
        uint8_t ch = f->data[i++];
        v |= (uint64_t)(ch & 0x7f) << shift;
        if (!(ch & 0x80)) {
            if (i + v != f->len)
                return DLG_EINVAL;
            *off = (uint32_t)i;
            *len = (uint32_t)v;
            return 0;
        }
    }
    return DLG_EINVAL;
}

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
    pending_ack *acks;            /* FIFO by ticket */
    size_t acks_head, acks_n, acks_cap;
    uint64_t refused_logged_ms, fail_logged_ms, fails_unlogged;
};

static const char *sync_name(int mode) {
    return mode == DLG_STORE_SYNC_BATCH ? "batch" : "ack";
}

int dlg_history_setup(dlg_server *srv, const dlg_config *cfg, char *err, size_t errlen) {
    int rc = DLG_ENOMEM;
    dlg_history *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->rooms = calloc(cfg->n_rooms + 1, sizeof(*h->rooms))) == NULL) {
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
        dlg_hist_rule *rules = calloc(cr->n_history + 1, sizeof(*rules));
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

static pending_ack *ack_front(dlg_history *h) {
    return h->acks_n ? &h->acks[h->acks_head] : NULL;
}

static void ack_pop(dlg_history *h) {
    h->acks_head = (h->acks_head + 1) % h->acks_cap;
    h->acks_n--;
}

static int ack_push(dlg_history *h, const pending_ack *a) {
    if (h->acks_n == h->acks_cap) {
        size_t nc = h->acks_cap ? h->acks_cap * 2 : 64;
        pending_ack *nv = malloc(nc * sizeof(*nv));
        if (nv == NULL)
            return DLG_ENOMEM;
        for (size_t i = 0; i < h->acks_n; i++)
            nv[i] = h->acks[(h->acks_head + i) % h->acks_cap];
        free(h->acks);
        h->acks = nv;
        h->acks_cap = nc;
        h->acks_head = 0;
    }
    h->acks[(h->acks_head + h->acks_n) % h->acks_cap] = *a;
    h->acks_n++;
    return 0;
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
    while ((a = ack_front(h)) != NULL && a->ticket <= res->last) {
        if (a->c && res->rc == 0)
            dlg_reply_ack(a->c, a->rid, a->seq, a->recipients);
        else if (a->c)
            dlg_reply_error(a->c, a->rid, DIALOGUE__V1__STATUS__DATA_LOSS,
                                "event %s seq %llu of room %s was delivered but not stored: %s",
                                a->event, (unsigned long long)a->seq, a->room, res->err);
        ack_pop(h);
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
    dlg_store_seq *seqs = calloc(h->n_rooms + 1, sizeof(*seqs));
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
    while (ack_front(h))
        ack_pop(h);
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
    free(h->acks);
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
    int rc = hroom_append(hr, event, seq, ts_ms, frame, off, len, ts_ms, &rg);
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
    pending_ack a = {.c = c, .rid = rid, .seq = seq, .ticket = hr->last_ticket,
                     .recipients = recipients, .room = hr->room, .event = hr->last_event};
    if (ack_push(h, &a) != 0) {
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
    for (size_t i = 0; i < h->acks_n; i++) {
        pending_ack *a = &h->acks[(h->acks_head + i) % h->acks_cap];
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
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__INTERNAL,
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
        if (dlg_hroom_query(r->hist, &q, dlg_wall_ms(), &b) != 0) {
            dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__INTERNAL,
                                "out of memory reading the history of room %s", r->id);
            return;
        }
    }
    /* A newest-first page (start 0) reaches the room's seq. */
    uint64_t upto = req->start == 0 ? r->seq : b.n ? b.v[b.n - 1]->seq : 0;
    int gap = spans_gap(r->hist, req->by_seq, req->since_seq, &b, upto);
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
    if (!m->all && dlg_room_subscriptions(m, &subs, &n_subs) != 0) {
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__INTERNAL,
                            "out of memory reading the history of room %s", r->id);
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
    if (hr && !none && dlg_hroom_query(hr, &q, dlg_wall_ms(), &b) != 0) {
        free(subs);
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__INTERNAL,
                            "out of memory reading the history of room %s", r->id);
        return;
    }
    /* A gap this node knows of after the client's position (a core-mode
     * node that lost its cluster link) is a loss like an eviction. */
    if (resume && spans_gap(hr, 1, j->since_seq, &b, 0))
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
