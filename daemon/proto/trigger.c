/* trigger.c: an event's way in through the rules (see trigger.h). */
#include "presence.h"
#include "trigger.h"

#include <stdio.h>
#include <stdlib.h>

#include "conn.h"
#include "dlg_clock.h"
#include "dlg_err.h"
#include "hooks.h"

int dlg_trigger(dlg_server *srv, dlg_room *room, const dlg_conn *sender, const char *event,
                const uint8_t *data, size_t len, uint64_t recv_ns, dlg_publish_result *res,
                char *err, size_t errlen) {
    res->seq = 0;
    res->recipients = 0;
    res->status = 0;
    res->ticket = 0;
    if (dlg_presence_bit(event) != 0) {
        /* Reserved: only the server says who joined and left. */
        res->status = DIALOGUE__V1__STATUS__PERMISSION_DENIED;
        snprintf(err, errlen, "event %s: the presence: events are the server's own", event);
        return DLG_EPERM;
    }
    if (!dlg_room_allows_event(room, event)) {
        res->status = DIALOGUE__V1__STATUS__INVALID_ARGUMENT;
        snprintf(err, errlen, "room %s does not accept event %s", room->id, event);
        return DLG_EINVAL;
    }
    dlg_event_info info = {
        .room = room->id, .event = event, .data = data, .len = len,
        .from = sender ? dlg_conn_name(sender) : "system",
        .from_kind = sender ? sender->id_kind : DIALOGUE__V1__IDENTITY_KIND__IDENTITY_SERVER};
    uint8_t *owned = NULL;
    if (dlg_hooks_before_each(srv, sender, &info, &owned, err, errlen) != 0) {
        res->status = DIALOGUE__V1__STATUS__PERMISSION_DENIED;
        return DLG_EPERM;
    }
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
        if (dlg_schema_validate(ev, info.data, info.len, flags, err, errlen) != 0) {
            res->status = DIALOGUE__V1__STATUS__INVALID_ARGUMENT;
            rc = DLG_ESCHEMA;
            goto out;
        }
    }
    Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
    e.room = room->id;
    e.event = (char *)event;
    e.data.data = (uint8_t *)info.data;
    e.data.len = info.len;
    e.from = (char *)info.from;
    e.from_kind = (Dialogue__V1__IdentityKind)info.from_kind;
    e.ts_ms = dlg_wall_ms();
    rc = dlg_fanout_emit(srv, room, &e, DLG_EMIT_FORWARD | DLG_EMIT_LOG, recv_ns, res, err,
                         errlen);
    if (rc != 0)
        goto out;
    srv->counters.events_in++;
    dlg_hooks_after_each(srv, &info, res->seq, res->recipients);
out:
    free(owned);
    return rc;
}
