/* fanout.h: an event that passed the rules, on its way out: numbered,
 * encoded once into a shared buffer, queued to every subscribed member,
 * kept by the history and forwarded to the other nodes (seam.h), or handed
 * to the cluster log, which numbers it on every node. One function does it
 * for an event triggered here and for one relayed from another node. */
#ifndef DLG_FANOUT_H
#define DLG_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_buf.h"
#include "dlg_clock.h" /* dlg_now_ns, for latency accounting */
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

/* What emitting asks of the event. */
enum {
    DLG_EMIT_FORWARD = 1,    /* the other nodes get it (an event of this node) */
    DLG_EMIT_LOG = 2,        /* a room numbered by the cluster log: hand it there */
};

/* Emits event e (room, event, data, from, from_kind, ts_ms set by the
 * caller) in room. With DLG_EMIT_LOG and a room the cluster log numbers,
 * e goes to the log (seq and epoch 0; res->ticket set), and is delivered
 * when it comes back. Otherwise e gets the room's next seq and its epoch,
 * is encoded once, queued to every local subscriber of (room, event)
 * honouring the event's delivery policy, kept by the history (seam) and,
 * with DLG_EMIT_FORWARD, handed to the other nodes. recv_ns (CLOCK_MONOTONIC,
 * 0 = none) is when it arrived, for the fan-out latency counter. Returns 0,
 * or a DLG_E* code with res->status and err set; on error nothing went out.
 * Connections that overflow are closed after the loop, never during it. */
int dlg_fanout_emit(dlg_server *srv, dlg_room *room, Dialogue__V1__Event *e, unsigned flags,
                    uint64_t recv_ns, dlg_publish_result *res, char *err, size_t errlen);

/* Queues frame b (an encoded Event of `event` in room) to every local
 * subscriber of (room, event), honouring the event's delivery policy; the
 * caller keeps its reference. Returns the recipient count. */
uint32_t dlg_fanout_deliver(dlg_room *room, const char *event, dlg_buf *b);

#endif
