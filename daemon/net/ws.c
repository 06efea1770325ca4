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
#include "dlg_alloc.h"
#include "dlg_err.h"
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
    /* Bytes wslay took from us, and those of the whole frames it parsed
     * (counting the shortest header: a longer one only keeps them apart),
     * and the frame being parsed: equal = wslay holds nothing half-read. */
    uint64_t consumed, framed, frame_bytes;
    uint8_t *mbuf;            /* that message's bytes so far (wslay buffers none:
                                 no_buffering), cap mcap, mlen used */
    size_t mcap, mlen;
    unsigned in_ctrl : 1;     /* the frame being received is a control frame */
    unsigned stop : 1;        /* read no more */
    unsigned wslay_has : 1;   /* wslay may hold output (a pong, the close): set where
                                 it could have queued some, cleared once it has none;
                                 spares asking it on every flush */
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
    w->consumed += n;
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
    /* Client frames are masked (or refused): 2 + 4 bytes of header, plus
     * 2 or 8 for a longer length. */
    uint64_t n = arg->payload_length;
    w->frame_bytes = 6 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + n;
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
        uint8_t *nb = dlg_realloc(w->mbuf, (size_t)w->msg_len);
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

static void on_frame_end(wslay_event_context_ptr ctx, void *ud) {
    (void)ctx;
    dlg_ws *w = ud;
    w->framed += w->frame_bytes;
}

/* wslay's context holds about 8.5 KiB of buffers whatever the traffic:
 * made when the session needs it, given back when it is idle (see
 * dlg_ws_release_idle). 0 or DLG_ENOMEM. */
static int ensure_ctx(dlg_ws *w) {
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_chunk,
        .on_frame_recv_end_callback = on_frame_end,
        .on_msg_recv_callback = on_msg,
    };
    if (w->ctx != NULL)
        return 0;
    if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0)
        return DLG_ENOMEM;
    /* wslay buffers no data frame (it would allocate a frame's announced
     * length before asking us): on_frame_start enforces max_frame (which
     * rises at Welcome) with an Error that says so, on_chunk gathers the
     * message. wslay's own limit (a close 1009 without a reason) is off. */
    wslay_event_config_set_no_buffering(w->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(w->ctx, UINT64_MAX);
    return 0;
}

dlg_ws *dlg_ws_new(dlg_conn *c) {
    dlg_ws *w = dlg_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->c = c;
    if (ensure_ctx(w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void dlg_ws_release_idle(dlg_ws *w) {
    /* Only between frames, with every byte wslay read accounted for by
     * whole frames (nothing of a next frame in its buffer), and nothing
     * for it to send: a new context then starts where this one stands. */
    if (w->ctx == NULL || w->consumed != w->framed || w->wslay_has || w->close_queued ||
        w->stop || w->mlen != 0)
        return;
    wslay_event_context_free(w->ctx);
    w->ctx = NULL;
    free(w->mbuf);
    w->mbuf = NULL;
    w->mcap = 0;
    w->c->srv->heap_churn++; /* freed chunks between live ones: the sweep trims */
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
    if (ensure_ctx(w) != 0) {
        dlg_conn_close(c, "out of memory");
        return 1;
    }
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
    if (wslay_event_want_write(w->ctx)) {
        w->wslay_has = 1;
        dlg_conn_mark_dirty(c);
    }
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
    if (ensure_ctx(w) != 0)
        return; /* out of memory: the connection closes without the frame */
    uint16_t code = w->close_code;
    if (code == 0)
        code = w->err_status ? (uint16_t)(DLG_WS_CLOSE_STATUS_BASE + w->err_status)
                             : WSLAY_CODE_NORMAL_CLOSURE;
    wslay_event_queue_close(w->ctx, code, (const uint8_t *)w->close_reason,
                            strlen(w->close_reason));
    w->close_queued = 1;
    w->wslay_has = 1;
}

/* Whether no data frame is half written: wslay's own frames (pongs, the
 * close) may go out only between ours. */
static int at_boundary(const dlg_conn *c) {
    return c->q_len == 0 || c->q[c->q_head].off == 0;
}

/* Lets wslay write what it holds (pongs, the close) into the stage. */
static void wslay_out(dlg_ws *w) {
    if (!w->wslay_has)
        return;
    for (int round = 0; round < DLG_WS_STAGE_ROUNDS && wslay_event_want_write(w->ctx) &&
                        w->out_used < w->out_cap; round++) {
        size_t before = w->out_used;
        if (wslay_event_send(w->ctx) != 0 || w->out_used == before)
            break;
    }
    w->wslay_has = wslay_event_want_write(w->ctx) != 0;
}

/* Our data frames are written here, not queued to wslay: its event API
 * copies every message into an allocation of its own (measured: malloc
 * and free were a third of the daemon's instructions per delivery), where
 * the queue already holds the frame in a buffer every recipient shares.
 * What is written is the RFC 6455 5.2 header of an unmasked, unfragmented
 * binary frame (2, 4 or 10 bytes) and the frame's bytes as they are;
 * everything read (parsing, unmasking, checks, control frames, the close
 * handshake) stays libwslay's. */
static size_t put_frames(dlg_ws *w, uint8_t *dst, size_t cap) {
    dlg_conn *c = w->c;
    size_t used = 0;
    while (c->q_len > 0 && used < cap && !w->close_queued) {
        dlg_outq_item *it = &c->q[c->q_head];
        if (it->raw || it->buf->len < DLG_FRAME_HDR) {
            dlg_outq_drop_head(c); /* nothing of ours to frame */
            continue;
        }
        if (it->off == 0) {
            const uint8_t *body = it->buf->data + DLG_FRAME_HDR;
            uint64_t n = it->buf->len - DLG_FRAME_HDR;
            size_t hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
            if (cap - used < hl)
                break;
            if (c->close_after_flush)
                note_error(w, body, (size_t)n);
            uint8_t *h = dst + used;
            h[0] = 0x80 | WSLAY_BINARY_FRAME; /* FIN, no RSV, binary */
            if (n < 126) {
                h[1] = (uint8_t)n;
            } else if (n < 65536) {
                h[1] = 126;
                h[2] = (uint8_t)(n >> 8);
                h[3] = (uint8_t)n;
            } else {
                h[1] = 127;
                for (int i = 0; i < 8; i++)
                    h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
            }
            used += hl;
            it->off = DLG_FRAME_HDR; /* ours is replaced by theirs */
            c->q_bytes -= DLG_FRAME_HDR;
        }
        size_t left = it->buf->len - it->off;
        size_t k = left < cap - used ? left : cap - used;
        memcpy(dst + used, it->buf->data + it->off, k);
        used += k;
        it->off += (uint32_t)k;
        c->q_bytes -= k;
        if (it->off == it->buf->len)
            dlg_outq_drop_head(c);
    }
    return used;
}

size_t dlg_ws_stage(dlg_ws *w, uint8_t *dst, size_t cap) {
    dlg_conn *c = w->c;
    w->out = dst;
    w->out_cap = cap;
    w->out_used = 0;
    if (at_boundary(c))
        wslay_out(w);
    w->out_used += put_frames(w, dst + w->out_used, cap - w->out_used);
    if (c->close_after_flush && c->q_len == 0 && !w->close_queued)
        queue_close(w);
    if (at_boundary(c))
        wslay_out(w);
    w->out = NULL;
    return w->out_used;
}

int dlg_ws_more(const dlg_ws *w) {
    return w->wslay_has || (w->c->close_after_flush && !w->close_queued);
}

uint64_t dlg_ws_pending(const dlg_ws *w) {
    return w->ctx ? wslay_event_get_queued_msg_length(w->ctx) : 0;
}

size_t dlg_ws_final_error(dlg_ws *w, int status, const char *msg, uint8_t *dst, size_t cap) {
    uint8_t body[512];
    Dialogue__V1__Error e = DIALOGUE__V1__ERROR__INIT;
    e.code = (Dialogue__V1__Status)status;
    e.message = (char *)msg;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    if (w->close_queued || protobuf_c_message_get_packed_size(&f.base) > sizeof(body) ||
        ensure_ctx(w) != 0)
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

/* ---- the codec after the upgrade ------------------------------------------ */

/* Once the 101 is out, http.c hands the connection to this codec (its
 * state is the dlg_ws), so a delivery pays for nothing of HTTP's. */

static int ws_feed(dlg_conn *c, const uint8_t *data, size_t len) {
    return dlg_ws_feed(c->codec_st, data, len);
}

static size_t ws_stage(dlg_conn *c, uint8_t *dst, size_t cap) {
    return dlg_ws_stage(c->codec_st, dst, cap);
}

static int ws_more(const dlg_conn *c) {
    return dlg_ws_more(c->codec_st);
}

static uint64_t ws_pending(const dlg_conn *c) {
    return dlg_ws_pending(c->codec_st);
}

static size_t ws_final_error(dlg_conn *c, int status, const char *msg, uint8_t *dst,
                             size_t cap) {
    return dlg_ws_final_error(c->codec_st, status, msg, dst, cap);
}

static void ws_release_idle(dlg_conn *c) {
    dlg_ws_release_idle(c->codec_st);
}

static void ws_free(dlg_conn *c) {
    dlg_ws_free(c->codec_st);
    c->codec_st = NULL;
}

const dlg_codec dlg_codec_ws = {
    .name = "websocket",
    .feed = ws_feed,
    .stage = ws_stage,
    .more = ws_more,
    .pending = ws_pending,
    .final_error = ws_final_error,
    .release_idle = ws_release_idle,
    .free = ws_free,
};
