/* seam.h: what the core (rooms, fan-out) calls in the layers above it, as
 * tables of functions those layers fill in (boot installs them): the
 * history keeps events, the cluster forwards them and numbers them in its
 * log. The core names neither; an empty table (NULL functions) means a
 * node without history, or alone. */
#ifndef DLG_SEAM_H
#define DLG_SEAM_H

#include <stddef.h>
#include <stdint.h>

#include "dlg_buf.h"

struct dlg_room;
struct dlg_conn;

/* The history (history.h: dlg_history_keeper). ud is its own. */
typedef struct dlg_keeper {
    void *ud;
    /* Event `event` of r went out with seq and ts_ms as frame (the encoded
     * ServerFrame): keep a reference if the room keeps that event. */
    void (*append)(void *ud, struct dlg_room *r, const char *event, uint64_t seq,
                   uint64_t ts_ms, dlg_buf *frame);
    /* c is closing: what waits for it (deferred Acks) has nowhere to go. */
    void (*conn_gone)(void *ud, struct dlg_conn *c);
} dlg_keeper;

/* The cluster bus (bus.h: dlg_bus_forwarder). ud is its own. */
typedef struct dlg_forwarder {
    void *ud;
    /* 1 when the cluster log numbers r's events (they go to the log, which
     * delivers them on every node, this one too). */
    int (*log_room)(void *ud, const struct dlg_room *r);
    /* Hands frame (an Event with seq 0) to the log; *ticket answers later.
     * 0 or a DLG_E* code with err. */
    int (*log_publish)(void *ud, const struct dlg_room *r, const char *event, dlg_buf *frame,
                       uint64_t *ticket, char *err, size_t errlen);
    /* A numbered event of this node: the other nodes get the same bytes. */
    void (*publish)(void *ud, const struct dlg_room *r, const char *event, dlg_buf *frame);
    /* r's local interest may have changed (first member came, last left). */
    void (*room_changed)(void *ud, const struct dlg_room *r);
    /* c is closing: its deferred Acks and parked Joins go. */
    void (*conn_gone)(void *ud, struct dlg_conn *c);
} dlg_forwarder;

#endif
