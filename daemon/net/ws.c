/* ws.c: a WebSocket session over a connection (see ws.h), on libwslay's
 * event API. wslay pulls the peer's bytes through recv_cb from the chunk
 * being fed and pushes its output through send_cb into the chunk being
 * staged, so nothing here touches the socket: TLS, the caps and the three
 * senders stay the connection's. */
#include "ws.h"

#include <string.h>

#include <wslay/wslay.h>

#include "conn_int.h"
#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_frame.h"
#include "reply.h"

/* The close codes of a session that ends with an Error: 4000 + its
 * dialogue Status (RFC 6455 7.4.2 leaves 4000-4999 to applications). */
#define DLG_WS_CLOSE_STATUS_BASE 4000

/* The most work one stage call does (messages taken, sends): the loop
 * below ends on its own; this only bounds a library that stopped making
 * progress. */
#define DLG_WS_STAGE_ROUNDS 4096

/* A message buffer up to this size is kept for the next message. */
#define DLG_WS_KEEP_BUF 4096

struct dlg_ws {
    dlg_conn *c;
    wslay_event_context_ptr ctx;
    const uint8_t *in;        /* during dlg_ws_feed: bytes not yet given to wslay */
    size_t in_len;
    uint8_t *out;             /* during a stage: where wslay's output goes */
    size_t out_cap, out_used;
    uint64_t msg_len;         /* bytes announced so far by the frames of the message
                                 being received */
    uint8_t *mbuf;            /* that message's bytes so far (wslay buffers none:
                                 no_buffering), cap mcap, mlen used */
    size_t mcap, mlen;
    unsigned in_ctrl : 1;     /* the frame being received is a control frame */
    unsigned stop : 1;        /* read no more */
    unsigned close_queued : 1;
    uint16_t close_code;      /* 0 = from the last Error sent (or 1000) */
    int err_status;           /* Status of the last Error sent while closing, 0 = none */
    char close_reason[124];   /* RFC 6455 5.5: a close payload is at most 125 bytes */
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud) {
    (void)flags;
    dlg_ws *w = ud;
    if (w->stop || w->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < w->in_len ? len : w->in_len;
    memcpy(buf, w->in, n);
    w->in += n;
    w->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    (void)flags;
    dlg_ws *w = ud;
    size_t room = w->out ? w->out_cap - w->out_used : 0;
    if (room == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < room ? len : room;
    memcpy(w->out + w->out_used, data, n);
    w->out_used += n;
    return (ssize_t)n;
}

/* Copies msg into the close reason, cut at a character boundary so that
 * the reason stays UTF-8 (RFC 6455 7.4). */
static void set_reason(dlg_ws *w, const char *msg) {
    size_t n = strlen(msg);
    if (n >= sizeof(w->close_reason)) {
        n = sizeof(w->close_reason) - 1;
        while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(w->close_reason, msg, n);
    w->close_reason[n] = '\0';
}

/* Ends reading with close code and reason, after what is queued. */
static void refuse(dlg_ws *w, uint16_t code, const char *why, const char *log_reason) {
    w->stop = 1;
    w->close_code = code;
    set_reason(w, why);
    dlg_conn_close_after_flush(w->c, log_reason);
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud) {
    (void)ctx;
    dlg_ws *w = ud;
    if (w->stop)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        refuse(w, WSLAY_CODE_UNSUPPORTED_DATA,
               "text frames are not accepted: send one ClientFrame per binary message",
               "WebSocket text frame");
        return;
    }
    w->in_ctrl = arg->opcode >= 0x8;
    if (w->in_ctrl)
        return; /* wslay bounds them (125 bytes) and hands them to on_msg whole */
    /* Refused on its header, before wslay buffers any of it: the frames
     * of one message add up. */
    if (arg->opcode != 0)
        w->msg_len = w->mlen = 0; /* a new message */
    w->msg_len += arg->payload_length;
    if (w->msg_len > w->c->dec.max_frame) {
        w->stop = 1;
        dlg_reply_error(w->c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                        "message length %llu is above the limit %u",
                        (unsigned long long)w->msg_len, w->c->dec.max_frame);
        dlg_conn_close_after_flush(w->c, "oversize WebSocket message");
        return;
    }
    if (w->msg_len > w->mcap) {
        /* Grown to what the frames announced (at most max_frame), once
         * per frame: the bytes then arrive into it. */
        uint8_t *nb = realloc(w->mbuf, (size_t)w->msg_len);
        if (nb == NULL) {
            w->stop = 1;
            dlg_conn_doom(w->c, "out of memory reading a WebSocket message");
            return;
        }
        w->mbuf = nb;
        w->mcap = (size_t)w->msg_len;
    }
}

static void on_chunk(wslay_event_context_ptr ctx,
                     const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud) {
    (void)ctx;
    dlg_ws *w = ud;
    /* Control frames come whole to on_msg; data frames only here. */
    if (w->stop || w->in_ctrl || arg->data_length == 0 ||
        arg->data_length > w->mcap - w->mlen)
        return;
    memcpy(w->mbuf + w->mlen, arg->data, arg->data_length);
    w->mlen += arg->data_length;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud) {
    (void)ctx;
    dlg_ws *w = ud;
    dlg_conn *c = w->c;
    if (w->stop || c->state == DLG_CONN_CLOSING || c->close_after_flush)
        return;
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        size_t n = w->mlen;
        w->mlen = 0;
        static const uint8_t empty[1];
        if (c->srv->up.frame(c, n ? w->mbuf : empty, n) != 0)
            w->stop = 1;
        /* A large message's buffer is not kept for the next one. */
        if (w->mcap > DLG_WS_KEEP_BUF) {
            free(w->mbuf);
            w->mbuf = NULL;
            w->mcap = 0;
        }
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* wslay answers with a close of its own (echoing the code). */
        w->stop = 1;
        w->close_queued = 1;
        dlg_conn_close_after_flush(c, "peer closed the WebSocket");
    }
    /* Pings are answered by wslay; pongs need nothing. */
}

dlg_ws *dlg_ws_new(dlg_conn *c) {
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_chunk,
        .on_msg_recv_callback = on_msg,
    };
    dlg_ws *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->c = c;
    if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
        free(w);
        return NULL;
    }
    /* wslay buffers no data frame (it would allocate a frame's announced
     * length before asking us): on_frame_start enforces max_frame (which
     * rises at Welcome) with an Error that says so, on_chunk gathers the
     * message. wslay's own limit (a close 1009 without a reason) is off. */
    wslay_event_config_set_no_buffering(w->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(w->ctx, UINT64_MAX);
    return w;
}

void dlg_ws_free(dlg_ws *w) {
    if (w == NULL)
        return;
    wslay_event_context_free(w->ctx);
    free(w->mbuf);
    free(w);
}

int dlg_ws_feed(dlg_ws *w, const uint8_t *data, size_t len) {
    dlg_conn *c = w->c;
    if (w->stop)
        return 1;
    w->in = data;
    w->in_len = len;
    int r = wslay_event_recv(w->ctx);
    w->in = NULL;
    w->in_len = 0;
    if (c->state == DLG_CONN_CLOSING)
        return 1;
    if (r != 0) {
        dlg_conn_close(c, r == WSLAY_ERR_NOMEM ? "out of memory" : "WebSocket read failed");
        return 1;
    }
    if (!w->stop && !wslay_event_get_read_enabled(w->ctx)) {
        /* wslay found a protocol violation (an unmasked frame, a bad
         * opcode, a control frame too long, a message over the limit)
         * and queued its close (1002, 1007 or 1009). */
        w->stop = 1;
        w->close_queued = 1;
        dlg_log_info(&c->srv->log, "conn %s (%s): WebSocket protocol violation: closing",
                     c->client_id, c->peer);
        dlg_conn_close_after_flush(c, "WebSocket protocol violation");
    }
    if (wslay_event_want_write(w->ctx))
        dlg_conn_mark_dirty(c);
    return w->stop;
}

/* While the session is closing: the Error among the last frames sent says
 * the close code and reason. Only then is a frame decoded here. */
static void note_error(dlg_ws *w, const uint8_t *body, size_t len) {
    Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(NULL, len, body);
    if (f == NULL)
        return;
    if (f->msg_case == DIALOGUE__V1__SERVER_FRAME__MSG_ERROR && f->error != NULL) {
        w->err_status = (int)f->error->code;
        set_reason(w, f->error->message ? f->error->message : "");
    }
    dialogue__v1__server_frame__free_unpacked(f, NULL);
}

static void queue_close(dlg_ws *w) {
    uint16_t code = w->close_code;
    if (code == 0)
        code = w->err_status ? (uint16_t)(DLG_WS_CLOSE_STATUS_BASE + w->err_status)
                             : WSLAY_CODE_NORMAL_CLOSURE;
    wslay_event_queue_close(w->ctx, code, (const uint8_t *)w->close_reason,
                            strlen(w->close_reason));
    w->close_queued = 1;
}

size_t dlg_ws_stage(dlg_ws *w, uint8_t *dst, size_t cap) {
    dlg_conn *c = w->c;
    w->out = dst;
    w->out_cap = cap;
    w->out_used = 0;
    for (int round = 0; round < DLG_WS_STAGE_ROUNDS && w->out_used < cap; round++) {
        /* One message at a time goes to wslay (which copies it): the rest
         * wait in the queue as shared references, where "latest" events
         * are still conflated. */
        if (wslay_event_get_queued_msg_count(w->ctx) == 0 && c->q_len > 0) {
            dlg_outq_item *it = &c->q[c->q_head];
            if (!it->raw && it->buf->len >= DLG_FRAME_HDR && !w->close_queued) {
                const uint8_t *body = it->buf->data + DLG_FRAME_HDR;
                size_t blen = it->buf->len - DLG_FRAME_HDR;
                if (c->close_after_flush)
                    note_error(w, body, blen);
                struct wslay_event_msg m = {WSLAY_BINARY_FRAME, body, blen};
                wslay_event_queue_msg(w->ctx, &m);
            }
            dlg_outq_drop_head(c);
            continue;
        }
        if (c->close_after_flush && c->q_len == 0 && !w->close_queued &&
            wslay_event_get_queued_msg_count(w->ctx) == 0)
            queue_close(w);
        if (!wslay_event_want_write(w->ctx))
            break;
        size_t before = w->out_used;
        if (wslay_event_send(w->ctx) != 0 || w->out_used == before)
            break;
    }
    w->out = NULL;
    return w->out_used;
}

int dlg_ws_more(const dlg_ws *w) {
    if (wslay_event_want_write(w->ctx))
        return 1;
    return w->c->close_after_flush && !w->close_queued;
}

uint64_t dlg_ws_pending(const dlg_ws *w) {
    return wslay_event_get_queued_msg_length(w->ctx);
}

size_t dlg_ws_final_error(dlg_ws *w, int status, const char *msg, uint8_t *dst, size_t cap) {
    uint8_t body[512];
    Dialogue__V1__Error e = DIALOGUE__V1__ERROR__INIT;
    e.code = (Dialogue__V1__Status)status;
    e.message = (char *)msg;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    if (w->close_queued || protobuf_c_message_get_packed_size(&f.base) > sizeof(body))
        return 0;
    size_t blen = protobuf_c_message_pack(&f.base, body);
    struct wslay_event_msg m = {WSLAY_BINARY_FRAME, body, blen};
    if (wslay_event_queue_msg(w->ctx, &m) != 0)
        return 0;
    w->err_status = status;
    set_reason(w, msg);
    queue_close(w);
    w->out = dst;
    w->out_cap = cap;
    w->out_used = 0;
    wslay_event_send(w->ctx);
    w->out = NULL;
    return w->out_used;
}
