/* fanout.h: accepting one event into a room and delivering it: validate
 * once, number it, encode the Event frame once into a shared buffer, and
 * queue a reference to every subscribed member. */
#ifndef DLG_FANOUT_H
#define DLG_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "dlg_buf.h"
#include "room.h"
#include "server.h"

typedef struct dlg_publish_result {
    uint64_t seq;
    uint32_t recipients;
    int status;              /* dialogue.v1.Status when refused */
    uint64_t ticket;         /* cluster log: != 0 when the event went to the
                                log, which numbers and delivers it later;
                                seq and recipients are then 0 and the Ack
                                waits (dlg_bus_defer_ack) */
} dlg_publish_result;

/* Runs the before_each hooks (the config's trigger rules among them; sender
 * NULL = the server itself), validates data against event's schema (when
 * the room is typed), assigns
 * the next sequence number and queues the event to every subscriber of
 * (room, event). The event's `from` is the sender's name and kind
 * (dlg_auth_name; "system" and IDENTITY_SERVER when sender is NULL);
 * recv_ns is when the trigger arrived (CLOCK_MONOTONIC), for latency
 * accounting. The frame is then handed to srv->bus for the other nodes of
 * a cluster (bus.h); res->recipients counts this node's members only.
 * after_each hooks get the recipient count. With a cluster log (bus.h) the
 * event is handed to the log instead of being numbered and delivered here:
 * res->ticket is set and after_each runs with seq 0 and no recipients.
 * Returns 0, or a DLG_E* code with res->status and err (naming
 * the event and field) set; on error nothing is delivered. Connections that
 * overflow are closed after the loop, never during it. */
struct dlg_conn;

int dlg_fanout_publish(dlg_server *srv, dlg_room *room, const struct dlg_conn *sender,
                       const char *event,
                       const uint8_t *data, size_t len, uint64_t recv_ns, dlg_publish_result *res, char *err,
                       size_t errlen);

/* Queues frame b (an encoded Event of `event` in room) to every local
 * subscriber of (room, event), honouring the event's delivery policy; the
 * caller keeps its reference. Returns the recipient count. Used by publish
 * and by the cluster bus for events from other nodes. */
uint32_t dlg_fanout_deliver(dlg_room *room, const char *event, dlg_buf *b);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t dlg_now_ns(void);

#endif
