/* trigger.h: one event on its way in, through what a room's rules ask of
 * it: the room accepts the event, the before_each hooks (the config's
 * trigger rules first) agree and may rewrite it, the payload passes its
 * schema; then it goes out (fanout.h) and the after_each hooks hear of it.
 * Clients' Triggers, the server API's dlg_server_trigger and the metrics
 * source all come through here. */
#ifndef DLG_TRIGGER_H
#define DLG_TRIGGER_H

#include <stddef.h>
#include <stdint.h>

#include "fanout.h"

struct dlg_conn;

/* Triggers event with data (len bytes) into room from sender (NULL = the
 * server itself, named "system"); recv_ns is when it arrived
 * (CLOCK_MONOTONIC). On success res says the seq and recipients, or (a room
 * the cluster log numbers) the ticket its Ack waits for. Returns 0, or a
 * DLG_E* code with res->status (the wire Status to refuse with) and err
 * naming the event and field; nothing is delivered then. */
int dlg_trigger(dlg_server *srv, dlg_room *room, const struct dlg_conn *sender,
                const char *event, const uint8_t *data, size_t len, uint64_t recv_ns,
                dlg_publish_result *res, char *err, size_t errlen);

#endif
