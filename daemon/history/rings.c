/* rings.c: the in-memory history of one room: a bounded ring per event
 * type (limit, max age, damaged and evicted marks, gaps) and the queries
 * over it, packed as a HistoryBatch frame (see rings.h). The server-wide
 * glue (config, store, requests, deferred Acks) is history.c. */
#include <stdlib.h>
#include <string.h>

#include "dlg_alloc.h"
#include "dlg_crc32c.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "dlg_varint.h"
#include "dlg_vec.h"
#include "rings.h"
#include "rings_int.h"

/* ---- rings ------------------------------------------------------------ */

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
    if (DLG_GROW(hr->rings, hr->cap_rings, hr->n_rings + 1) != 0)
        return NULL;
    ring *rg = dlg_calloc(1, sizeof(*rg));
    if (rg == NULL || (rg->event = dlg_strdup(event)) == NULL) {
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
    dlg_hroom *hr = dlg_calloc(1, sizeof(*hr));
    if (hr == NULL || (hr->room = dlg_strdup(room)) == NULL)
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

int dlg__hroom_append(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
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
        dlg_hist_entry *nv = dlg_malloc(nc * sizeof(*nv));
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
    int rc = dlg__hroom_append(hr, event, seq, ts_ms, buf, off, len, now_ms, &rg);
    if (rc == DLG_EINVAL)
        rc = 0; /* out of order: not kept */
    if (evicted_max)
        *evicted_max = rc == 1 && rg ? rg->evicted_max : 0;
    return rc;
}

int dlg_hroom_note_damaged(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                           uint64_t now_ms) {
    ring *rg = NULL;
    int rc = event ? dlg__hroom_append(hr, event, seq, ts_ms, NULL, 0, 0, now_ms, &rg) : DLG_EINVAL;
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

int dlg__hroom_spans_gap(const dlg_hroom *hr, int by_seq, uint64_t since_seq,
                     const dlg_hist_batch *b, uint64_t upto) {
    if (hr == NULL || hr->gap_next == 0)
        return 0;
    if (by_seq)
        return since_seq < hr->gap_next;
    return b->n > 0 && b->v[0]->seq < hr->gap_next && upto >= hr->gap_next;
}

/* ---- queries ---------------------------------------------------------- */

/* Bytes one event adds to a HistoryBatch (tag, length, message). */
static size_t entry_cost(const dlg_hist_entry *e) {
    return 1 + dlg_varint_len(e->len) + e->len;
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
    cursor *cs = dlg_calloc(want ? want : 1, sizeof(*cs));
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
    out->v = dlg_calloc(cap ? cap : 1, sizeof(*out->v));
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
        hb += 1 + dlg_varint_len(room_len) + room_len;
    for (size_t i = 0; i < b->n; i++)
        hb += entry_cost(b->v[i]);
    if (complete)
        hb += 2;
    if (epoch)
        hb += 1 + dlg_varint_len(epoch);
    uint64_t sf = (request_id ? 1 + dlg_varint_len(request_id) : 0) + 1 + dlg_varint_len(hb) + hb;
    if (sf > UINT32_MAX)
        return DLG_ETOOBIG;
    dlg_buf *buf = dlg_buf_new(DLG_FRAME_HDR + (size_t)sf);
    if (buf == NULL)
        return DLG_ENOMEM;
    dlg_frame_put_header(buf->data, (uint32_t)sf);
    uint8_t *p = buf->data + DLG_FRAME_HDR;
    if (request_id) {
        *p++ = 0x08; /* ServerFrame.request_id = 1, varint */
        p = dlg_varint_put(p, request_id);
    }
    *p++ = 0x4a; /* ServerFrame.history_batch = 9, length-delimited */
    p = dlg_varint_put(p, hb);
    if (room_len) {
        *p++ = 0x0a; /* HistoryBatch.room = 1 */
        p = dlg_varint_put(p, room_len);
        memcpy(p, room, room_len);
        p += room_len;
    }
    for (size_t i = 0; i < b->n; i++) {
        const dlg_hist_entry *e = b->v[i];
        *p++ = 0x12; /* HistoryBatch.events = 2 */
        p = dlg_varint_put(p, e->len);
        memcpy(p, e->buf->data + e->off, e->len);
        p += e->len;
    }
    if (complete) {
        *p++ = 0x18; /* HistoryBatch.complete = 3 */
        *p++ = 1;
    }
    if (epoch) {
        *p++ = 0x20; /* HistoryBatch.epoch = 4 */
        p = dlg_varint_put(p, epoch);
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
    const uint8_t *p = f->data + 6, *end = f->data + f->len;
    uint64_t v;
    if (dlg_varint_get_max(&p, end, 5, &v) != DLG_VARINT_OK || v != (uint64_t)(end - p))
        return DLG_EINVAL;
    *off = (uint32_t)(p - f->data);
    *len = (uint32_t)v;
    return 0;
}
