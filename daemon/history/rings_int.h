/* rings_int.h: the layout of a room's rings, shared by rings.c (which owns
 * it) and history.c (which hands what a ring kept to the store and keeps
 * the deferred-Ack state of the room next to it). Not for use outside
 * daemon/history. */
#ifndef DLG_RINGS_INT_H
#define DLG_RINGS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "rings.h"

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

/* dlg_hroom_append, also telling which ring kept it (its name is stable,
 * which the store needs). buf NULL keeps a damaged event's place. Returns
 * DLG_EINVAL (with *kept_in set) when seq is not above the ring's newest. */
int dlg__hroom_append(dlg_hroom *hr, const char *event, uint64_t seq, uint64_t ts_ms,
                      dlg_buf *buf, uint32_t off, uint32_t len, uint64_t now_ms,
                      ring **kept_in);

/* Whether a request for events after since_seq (by_seq), or a page whose
 * oldest event is b->v[0] and which reaches up to `upto`, spans a gap. */
int dlg__hroom_spans_gap(const dlg_hroom *hr, int by_seq, uint64_t since_seq,
                         const dlg_hist_batch *b, uint64_t upto);

#endif
