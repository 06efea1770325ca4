/* fanout.c: validate once, encode once, share the buffer (see fanout.h). */
#include "fanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "auth.h"
#include "bus.h"
#include "conn.h"
#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "history.h"
#include "hooks.h"

uint64_t dlg_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint32_t dlg_fanout_deliver(dlg_room *room, const char *event, dlg_buf *b) {
    /* Members subscribed to this event, then all-subscribers: disjoint sets. */
    dlg_evslot *slot = dlg_room_slot(room, event);
    uint32_t n = 0;
    if (slot && slot->delivery == DLG_DELIVERY_LATEST) {
        for (size_t i = 0; i < slot->subs.n; i++, n++)
            dlg_conn_send_latest(slot->subs.v[i]->conn, b, slot);
        for (size_t i = 0; i < room->all_subs.n; i++, n++)
            dlg_conn_send_latest(room->all_subs.v[i]->conn, b, slot);
    } else {
        if (slot)
            for (size_t i = 0; i < slot->subs.n; i++, n++)
                dlg_conn_send(slot->subs.v[i]->conn, b);
        for (size_t i = 0; i < room->all_subs.n; i++, n++)
            dlg_conn_send(room->all_subs.v[i]->conn, b);
    }
    return n;
}

int dlg_fanout_publish(dlg_server *srv, dlg_room *room, const struct dlg_conn *sender,
                       const char *event,
                       const uint8_t *data, size_t len, uint64_t recv_ns, dlg_publish_result *res, char *err,
                       size_t errlen) {
    res->seq = 0;
    res->recipients = 0;
    res->status = 0;
    res->ticket = 0;
    if (!dlg_room_allows_event(room, event)) {
        res->status = DIALOGUE__V1__STATUS__INVALID_ARGUMENT;
        snprintf(err, errlen, "room %s does not accept event %s", room->id, event);
        return DLG_EINVAL;
    }
    dlg_event_info info = {
        .room = room->id, .event = event, .data = data, .len = len,
        .from = sender ? dlg_auth_name(sender) : "system",
        .from_kind = sender ? sender->id_kind : DIALOGUE__V1__IDENTITY_KIND__IDENTITY_SERVER};
    uint8_t *owned = NULL;
    if (dlg_hooks_before_each(srv, sender, &info, &owned, err, errlen) != 0) {
        res->status = DIALOGUE__V1__STATUS__PERMISSION_DENIED;
        return DLG_EPERM;
    }
    data = info.data;
    len = info.len;
    int rc;
    /* Rooms with a fixed event list are typed: every event has a schema
     * (checked at load). "*" rooms pass payloads through unvalidated. */
    if (!room->any_event) {
        const dlg_schema_event *ev =
            srv->schema ? dlg_schema_event_find(srv->schema, event) : NULL;
        if (ev == NULL) {
            res->status = DIALOGUE__V1__STATUS__FAILED_PRECONDITION;
            snprintf(err, errlen, "event %s has no schema loaded", event);
            rc = DLG_ESCHEMA;
            goto out;
        }
        unsigned flags = srv->opts.allow_unknown_fields ? DLG_SCHEMA_ALLOW_UNKNOWN : 0;
        if (dlg_schema_validate(ev, data, len, flags, err, errlen) != 0) {
            res->status = DIALOGUE__V1__STATUS__INVALID_ARGUMENT;
            rc = DLG_ESCHEMA;
            goto out;
        }
    }

    Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
    e.room = room->id;
    e.event = (char *)event;
    e.data.data = (uint8_t *)data;
    e.data.len = len;
    e.from = (char *)info.from;
    e.from_kind = (Dialogue__V1__IdentityKind)info.from_kind;
    e.ts_ms = dlg_server_now_ms();
    /* With a cluster log the log numbers the event (every node, this one
     * too, delivers it from there); seq and epoch are filled in then. */
    int logged = dlg_bus_log_room(srv->bus, room);
    e.seq = logged ? 0 : room->seq + 1;
    e.epoch = logged ? 0 : room->epoch;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
    f.event = &e;
    dlg_buf *b = NULL;
    rc = dlg_frame_pack(&f.base, 0, &b);
    if (rc != 0) {
        res->status = DIALOGUE__V1__STATUS__INTERNAL;
        snprintf(err, errlen, "cannot encode event %s: %s", event, dlg_strerror(rc));
        goto out;
    }
    if (logged) {
        rc = dlg_bus_log_publish(srv->bus, room, event, b, &res->ticket, err, errlen);
        dlg_buf_unref(b);
        if (rc != 0) {
            res->status = DIALOGUE__V1__STATUS__UNAVAILABLE;
            goto out;
        }
        srv->counters.events_in++;
        dlg_hooks_after_each(srv, &info, 0, 0);
        goto out;
    }
    room->seq++;
    res->seq = room->seq;

    uint32_t n = dlg_fanout_deliver(room, event, b);
    /* History keeps a reference to the same frame: no copy, no I/O here. */
    dlg_history_append(srv, room, event, e.seq, e.ts_ms, b);
    /* Other nodes get the same bytes (cluster: one NATS publish). */
    dlg_bus_publish(srv->bus, room, event, b);
    dlg_buf_unref(b);
    res->recipients = n;
    srv->counters.events_in++;
    srv->counters.deliveries += n;
    srv->counters.fanout_ns += dlg_now_ns() - recv_ns;
    dlg_hooks_after_each(srv, &info, res->seq, n);
out:
    free(owned);
    return rc;
}
