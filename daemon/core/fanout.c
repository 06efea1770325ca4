/* fanout.c: number once, encode once, share the buffer (see fanout.h). */
#include "fanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "conn.h"
#include "dlg_err.h"
#include "dlg_frame.h"

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
    room->triggers++;
    room->deliveries += n;
    if (slot) {
        slot->triggers++;
        slot->deliveries += n;
    }
    return n;
}

int dlg_fanout_emit(dlg_server *srv, dlg_room *room, Dialogue__V1__Event *e, unsigned flags,
                    uint64_t recv_ns, dlg_publish_result *res, char *err, size_t errlen) {
    const dlg_forwarder *fw = &srv->fwd;
    res->seq = 0;
    res->recipients = 0;
    res->status = 0;
    res->ticket = 0;
    /* With a cluster log the log numbers the event (every node, this one
     * too, delivers it from there); seq and epoch are filled in then. */
    int logged = (flags & DLG_EMIT_LOG) && fw->log_room && fw->log_room(fw->ud, room);
    e->seq = logged ? 0 : room->seq + 1;
    e->epoch = logged ? 0 : room->epoch;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
    f.event = e;
    dlg_buf *b = NULL;
    int rc = dlg_frame_pack(&f.base, 0, &b);
    if (rc != 0) {
        res->status = dlg_err_status(rc);
        snprintf(err, errlen, "cannot encode event %s of room %s: %s", e->event, room->id,
                 dlg_strerror(rc));
        return rc;
    }
    if (logged) {
        rc = fw->log_publish(fw->ud, room, e->event, b, &res->ticket, err, errlen);
        dlg_buf_unref(b);
        if (rc != 0)
            res->status = dlg_err_status(rc); /* the log refused (EIO): UNAVAILABLE */
        return rc;
    }
    room->seq++;
    res->seq = room->seq;
    uint32_t n = dlg_fanout_deliver(room, e->event, b);
    /* History keeps a reference to the same frame: no copy, no I/O here. */
    if (srv->keeper.append)
        srv->keeper.append(srv->keeper.ud, room, e->event, e->seq, e->ts_ms, b);
    /* Other nodes get the same bytes (cluster: one NATS publish). */
    if ((flags & DLG_EMIT_FORWARD) && fw->publish) {
        room->fwd_seq++;
        fw->publish(fw->ud, room, e->event, b);
    }
    dlg_buf_unref(b);
    res->recipients = n;
    srv->counters.deliveries += n;
    if (recv_ns) {
        srv->counters.fanout_ns += dlg_now_ns() - recv_ns;
        /* The histogram reads the clock once the flush that submits these
         * writes is done (dlg_conn_flush_all); past the table, now. */
        if (srv->n_fanout_pend < DLG_FANOUT_PENDING)
            srv->fanout_pend[srv->n_fanout_pend++] = recv_ns;
        else
            dlg_counters_fanout(&srv->counters, dlg_now_ns() - recv_ns);
    }
    return 0;
}
