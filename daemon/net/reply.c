/* reply.c: the reply floor (as Redis's addReply*): the frames every layer
 * above the network sends to one connection, built and queued here. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>

#include "dlg_err.h"
#include "dlg_frame.h"
#include "dlg_log.h"

int dlg_reply_frame(dlg_conn *c, Dialogue__V1__ServerFrame *f) {
    dlg_buf *b = NULL;
    int rc = dlg_frame_pack(&f->base, 0, &b);
    if (rc != 0) {
        dlg_log_error(&c->srv->log, "conn %s: cannot pack reply: %s",
                      c->client_id, dlg_strerror(rc));
        return rc;
    }
    dlg_conn_send(c, b);
    dlg_buf_unref(b);
    return 0;
}

void dlg_reply_error(dlg_conn *c, uint64_t request_id, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->srv->counters.frames_rejected++;
    dlg_log_debug(&c->srv->log, "conn %s (%s): request %llu refused: %s: %s",
                  c->client_id, c->peer, (unsigned long long)request_id,
                  dlg_status_name(status), msg);
    /* Messages quote what the client sent, cut to a length that may split
     * a character: escaped, so the frame stays valid UTF-8 for strict
     * decoders and holds no control characters. */
    char safe[4 * sizeof(msg)];
    dlg_log_escape(msg, safe, sizeof(safe));
    Dialogue__V1__Error e = DIALOGUE__V1__ERROR__INIT;
    e.code = (Dialogue__V1__Status)status;
    e.message = safe;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = request_id;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    dlg_reply_frame(c, &f);
}

void dlg_reply_ack(dlg_conn *c, uint64_t request_id, uint64_t seq, uint32_t recipients) {
    Dialogue__V1__Ack a = DIALOGUE__V1__ACK__INIT;
    a.seq = seq;
    a.recipients = recipients;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = request_id;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ACK;
    f.ack = &a;
    dlg_reply_frame(c, &f);
}

int dlg_reply_left_frame(const char *room, const char *reason, uint64_t request_id,
                         dlg_buf **out) {
    Dialogue__V1__Left left = DIALOGUE__V1__LEFT__INIT;
    left.room = (char *)room;
    left.reason = (char *)reason;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = request_id;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_LEFT;
    f.left = &left;
    return dlg_frame_pack(&f.base, 0, out);
}

void dlg_reply_left(dlg_conn *c, uint64_t request_id, const char *room, const char *reason) {
    dlg_buf *b = NULL;
    if (dlg_reply_left_frame(room, reason, request_id, &b) == 0) {
        dlg_conn_send(c, b);
        dlg_buf_unref(b);
    }
}
