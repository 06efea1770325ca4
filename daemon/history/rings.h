/* rings.h: the in-memory history of one room (issue 8): a bounded ring per
 * event type, the queries over it (History, sync on join, recovery) and
 * the HistoryBatch frame that carries the answer. Knows nothing of the
 * server, the store or connections (history.h glues them). Single loop
 * thread. */
#ifndef DLG_RINGS_H
#define DLG_RINGS_H

#include <stddef.h>
#include <stdint.h>

#include "dlg_buf.h"

/* Most events one History request returns (limit 0 or above = this). */
#define DLG_HIST_MAX 1000
/* Most rings (event types) one room keeps; past it a new type is not kept. */
#define DLG_HIST_MAX_TYPES 1024

/* One kept event: the encoded dialogue.v1.Event message lies at
 * buf->data + off, len bytes. buf is a reference (usually the fan-out frame
 * itself, so keeping an event costs no copy). crc is the CRC-32C of those
 * bytes, taken when the event was kept and checked again before it is
 * served. buf NULL marks a damaged event (its stored copy failed the
 * checks, or its bytes no longer match crc): it holds its place in the
 * ring so a request covering seq is answered as incomplete, and is never
 * served. */
typedef struct dlg_hist_entry {
    dlg_buf *buf;
    uint32_t off, len;
    uint64_t seq;
    uint64_t ts_ms;
    uint32_t crc;
} dlg_hist_entry;

/* A history rule: keep the last `limit` events of `event` ("*" = every
 * event type without a rule of its own), none older than max_age_s
 * seconds (0 = no age limit). */
typedef struct dlg_hist_rule {
    const char *event;
    uint32_t limit;
    uint32_t max_age_s;
} dlg_hist_rule;

/* The rings of one room (opaque). */
typedef struct dlg_hroom dlg_hroom;

/* Creates the history of room `room` from rules (copied). sync is the
 * room's sync_history_on_join (0 off, -1 all kept, N last N per type).
 * Returns 0, DLG_EINVAL (a rule with limit 0 or no event) or DLG_ENOMEM;
 * *out is owned by the caller (dlg_hroom_free). */
int dlg_hroom_new(const char *room, const dlg_hist_rule *rules, size_t n, int32_t sync,
                  dlg_hroom **out);

/* Frees hr and drops its buffer references. NULL is ignored. */
void dlg_hroom_free(dlg_hroom *hr);

/* Keeps one event if a rule covers its type: takes a new reference to buf.
 * Events older than now_ms minus the ring's max age, and the oldest past
 * the limit, are dropped. seq must grow from one call to the next of the
 * same type; an older one is not kept. Returns 1 kept, 0 not kept (no rule,
 * too many types, or out of order), DLG_ENOMEM. *evicted_max (may be NULL)
 * gets the highest seq ever dropped from that type's ring (0 = none). */
int dlg_hroom_append(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                     dlg_buf *buf, uint32_t off, uint32_t len, uint64_t now_ms,
                     uint64_t *evicted_max);

/* Records that events of `event` up to seq were dropped before (a store
 * that pruned them): later requests reaching back there are incomplete.
 * Ignored when no rule covers event. */
void dlg_hroom_note_evicted(dlg_hroom *hr, const char *event, uint64_t seq);

/* Records that the event at seq could not be kept because its stored copy
 * is damaged (loading a store): it is never served, and a request whose
 * range covers seq is incomplete. event names its type (ignored when no
 * rule covers it, as a good event of that type would not be kept either);
 * event NULL = type unknown: every request reaching back to seq or before,
 * of any type, is incomplete. ts_ms is its time, for max_age_seconds.
 * Returns 0 or DLG_ENOMEM. */
int dlg_hroom_note_damaged(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                           uint64_t now_ms);

/* Events of hr's room may be missing between seq and seq + 1 (a cluster
 * node without the log lost events of other nodes): a recovery or a by-seq
 * request from a position at or below seq, or a page spanning it, is
 * incomplete from now on. The latest gap is kept (the earlier ones lie
 * below it). NULL hr is ignored. */
void dlg_hroom_note_gap(dlg_hroom *hr, uint64_t seq);

/* How many events hr can keep at most when the room has n_types event
 * types: the named rules' limits plus the "*" limit for each other type
 * (an upper bound: what a node fetches to fill its rings from a log). */
uint64_t dlg_hroom_capacity(const dlg_hroom *hr, size_t n_types);

/* The room's sync_history_on_join. */
int32_t dlg_hroom_sync(const dlg_hroom *hr);

/* What to read. events/n_events NULL/0 = every kept type. */
typedef struct dlg_hist_query {
    const char *const *events;
    size_t n_events;
    int by_seq;          /* 1: events with seq > since_seq, oldest first */
    uint64_t since_seq;
    uint32_t start;      /* by index: skip this many newest first */
    uint32_t limit;      /* most events; 0 = no count limit */
    uint32_t per_type;   /* by index only: at most this many per type (0 = no cap) */
    size_t max_bytes;    /* most encoded bytes in the batch (0 = no cap) */
} dlg_hist_query;

/* The answer: entries borrowed from the rings, oldest first. Valid until
 * the next append to the room; free with dlg_hist_batch_free. */
typedef struct dlg_hist_batch {
    const dlg_hist_entry **v;
    size_t n;
    int lost;            /* an event in the asked range was dropped (limit, age)
                          * or is damaged */
    int damaged;         /* an event in the range given is damaged (lost is set) */
    int more;            /* stopped at q->limit with more left (paging) */
    int truncated;       /* stopped at q->max_bytes with more left */
    size_t n_damaged;    /* events this query found no longer matching their
                          * checksum (left out, and marked damaged) */
    uint64_t damaged_seq;    /* the first of them */
    const char *damaged_event;
} dlg_hist_batch;

/* Runs q over hr at now_ms (expired events are dropped first). Every event
 * put in the batch has just been checked against its checksum; one that
 * fails is left out, marked damaged and counted in n_damaged. Damaged
 * events are never in the batch and take no index.
 *
 * by_seq: every kept event of the asked types with seq > since_seq, oldest
 * first; when stopped early, the newest are left out (page on with
 * since_seq = the last seq). lost = some asked type dropped an event with
 * seq > since_seq. damaged (and lost) = a damaged event of an asked type
 * was passed over, or one of unknown type lies above since_seq.
 *
 * by index (dialogue-ts getHistory): the asked types merged newest-first;
 * start skips, limit takes; per_type caps each type; the result is given
 * oldest first; when stopped early, the oldest are left out. lost = the
 * range ran past the oldest kept event of a type that had dropped events.
 * damaged (and lost) = a damaged event of an asked type lies among those
 * given (not among the skipped newest), or the range reached back to a
 * damaged event of unknown type (or ran past every kept event while one
 * exists).
 *
 * Returns 0 or DLG_ENOMEM (out is then empty). */
int dlg_hroom_query(dlg_hroom *hr, const dlg_hist_query *q, uint64_t now_ms,
                    dlg_hist_batch *out);

void dlg_hist_batch_free(dlg_hist_batch *b);

/* Encodes a whole frame (header + ServerFrame{request_id, history_batch})
 * with HistoryBatch{room, events = b's entries, complete, epoch}. The
 * events are copied as encoded, not re-encoded. Returns 0 or DLG_ENOMEM /
 * DLG_ETOOBIG (over 4 GiB); *out gets the one reference. */
int dlg_hist_pack(const char *room, uint64_t epoch, int complete, uint64_t request_id,
                  const dlg_hist_batch *b, dlg_buf **out);

/* Finds the encoded Event inside a fan-out frame (header +
 * ServerFrame{event}). Returns 0 with *off, *len set, or DLG_EINVAL when
 * the frame is not laid out that way. */
int dlg_hist_event_span(const dlg_buf *frame, uint32_t *off, uint32_t *len);

#endif
