/* h2.c: HTTP/2 (RFC 9113) over a connection's byte stream, with
 * libnghttp2: one nghttp2 server session per connection, its streams (each
 * a gRPC call, grpc.c), the output of the streams' sessions framed as DATA
 * as far as the peer's flow-control windows allow, and the limits that
 * keep a hostile peer bounded in memory and CPU: concurrent streams, the
 * header list, CONTINUATION frames, stream resets, control-frame floods,
 * keepalive PINGs, request bytes held. nghttp2 parses and frames every
 * byte; nothing here reads HTTP/2 by hand. */
#include "h2_int.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

/* Bytes of one stream's header list (RFC 9113 6.5.2: names, values, 32
 * each), advertised as SETTINGS_MAX_HEADER_LIST_SIZE; past it the stream
 * is reset (an HPACK bomb expands to no more than this). */
#define H2_MAX_HEADER_LIST 16384
/* CONTINUATION frames after one HEADERS (CVE-2024-27316 and kin). */
#define H2_MAX_CONTINUATIONS 8
/* Our receive window, per stream and for the connection: request bytes a
 * client may have in flight. */
#define H2_WINDOW (1u << 20)
/* Control frames (SETTINGS, PING, PRIORITY, RST_STREAM, empty DATA,
 * streams we had to reset) a peer may send: a token bucket of this many,
 * refilled at H2_BUDGET_RATE a second. Past it: GOAWAY
 * ENHANCE_YOUR_CALM, and the connection is closed. */
#define H2_BUDGET_BURST 1000.0
#define H2_BUDGET_RATE 200.0
/* nghttp2's own RST_STREAM limiter (rapid reset, CVE-2023-44487). */
#define H2_RESET_BURST 400
#define H2_RESET_RATE 100
/* Keepalive PINGs: one that comes sooner than this after the previous
 * while the server sent nothing (no DATA or HEADERS) is a strike; more than
 * H2_PING_STRIKES strikes is GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as
 * gRPC servers say it (gRPC clients then slow their keepalive down). */
#define H2_PING_MIN_MS 10000
#define H2_PING_STRIKES 2
/* SETTINGS and PING ACKs owed to a peer that does not read (nghttp2's
 * own flood guard, beside our budget). */
#define H2_MAX_OUTBOUND_ACK 1000

/* ---- helpers ---------------------------------------------------------- */

static uint64_t now_ms(const h2_conn *h) {
    return uv_now(h->c->srv->loop);
}

/* Takes n tokens of the peer's control-frame budget; an empty budget marks
 * the connection to be cut. */
static void charge(h2_conn *h, double n, const char *what) {
    uint64_t now = now_ms(h);
    h->budget += (double)(now - h->budget_at) * H2_BUDGET_RATE / 1000.0;
    if (h->budget > H2_BUDGET_BURST)
        h->budget = H2_BUDGET_BURST;
    h->budget_at = now;
    h->budget -= n;
    if (h->budget < 0 && h->abuse == NULL) {
        h->abuse = what;
        h->abuse_code = NGHTTP2_ENHANCE_YOUR_CALM;
    }
}

static nghttp2_nv nv(const char *name, const char *value) {
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

/* grpc-message is percent-encoded (gRPC's PROTOCOL-HTTP2): bytes outside
 * 0x20..0x7e and '%'. */
static void pct_encode(const char *in, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* RST_STREAM's code for a gRPC status, as gRPC clients read it back. */
static uint32_t rst_code(int status) {
    switch (status) {
    case DIALOGUE__V1__STATUS__CANCELLED:
    case DIALOGUE__V1__STATUS__DEADLINE_EXCEEDED:
        return NGHTTP2_CANCEL;
    case DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED:
        return NGHTTP2_ENHANCE_YOUR_CALM;
    case DIALOGUE__V1__STATUS__UNAVAILABLE:
        return NGHTTP2_REFUSED_STREAM;
    }
    return NGHTTP2_INTERNAL_ERROR;
}

/* GOAWAY's code for the status of an Error the connection ends with. */
static uint32_t goaway_code(int status) {
    switch (status) {
    case DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED:
        return NGHTTP2_ENHANCE_YOUR_CALM;
    case DIALOGUE__V1__STATUS__INVALID_ARGUMENT:
    case DIALOGUE__V1__STATUS__FAILED_PRECONDITION:
        return NGHTTP2_PROTOCOL_ERROR;
    }
    return NGHTTP2_NO_ERROR;
}

static void goaway(h2_conn *h, uint32_t code, const char *why) {
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          code, (const uint8_t *)why, strlen(why));
}

/* ---- what grpc.c calls ------------------------------------------------- */

static ssize_t on_read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud);

void h2_respond(h2_stream *st, const nghttp2_nv *extra, size_t n) {
    if (st->responded || st->trailers || st->reset)
        return;
    nghttp2_nv hv[8];
    size_t k = 0;
    hv[k++] = nv(":status", "200");
    hv[k++] = nv("content-type", "application/grpc");
    for (size_t i = 0; i < n && k < 8; i++)
        hv[k++] = extra[i];
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = on_read_data};
    if (nghttp2_submit_response(st->h->ng, st->id, hv, k, &prd) == 0)
        st->responded = 1;
}

/* Writes the trailers (or the trailers-only response) for st's end. */
static int submit_status(h2_stream *st, int headers_too) {
    char code[16], msg[1024];
    snprintf(code, sizeof(code), "%d", st->end_status);
    pct_encode(st->end_msg ? st->end_msg : "", msg, sizeof(msg));
    nghttp2_nv hv[4];
    size_t k = 0;
    if (headers_too) {
        hv[k++] = nv(":status", "200");
        hv[k++] = nv("content-type", "application/grpc");
    }
    hv[k++] = nv("grpc-status", code);
    if (msg[0])
        hv[k++] = nv("grpc-message", msg);
    if (headers_too)
        return nghttp2_submit_response(st->h->ng, st->id, hv, k, NULL);
    return nghttp2_submit_trailer(st->h->ng, st->id, hv, k);
}

static int window_shut(h2_stream *st) {
    return nghttp2_session_get_stream_remote_window_size(st->h->ng, st->id) <= 0 ||
           nghttp2_session_get_remote_window_size(st->h->ng) <= 0;
}

void h2_finish(h2_stream *st, int status, const char *msg) {
    if (st->trailers || st->reset || st->end_status >= 0)
        return;
    st->end_status = status;
    free(st->end_msg);
    st->end_msg = msg ? dlg_strdup(msg) : NULL;
    if (st->h->c->state == DLG_CONN_CLOSING)
        return;
    if (!st->responded) {
        if (submit_status(st, 1) == 0)
            st->trailers = st->responded = 1;
        return;
    }
    /* Trailers follow the data, which a shut window holds back for as long
     * as the client likes: then only RST_STREAM reaches it. */
    if (window_shut(st)) {
        nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id, rst_code(status));
        st->reset = 1;
        return;
    }
    h2_resume(st);
}

void h2_resume(h2_stream *st) {
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->h->ng, st->id);
    }
}

void h2_close_later(h2_conn *h, dlg_conn *sess, const char *why) {
    sess->codec_st = NULL; /* detached: its closing hook finds no owner */
    if (h->n_closing == h->cap_closing) {
        size_t nc = h->cap_closing ? 2 * h->cap_closing : 8;
        dlg_conn **nv_ = dlg_realloc(h->closing_v, nc * sizeof(*nv_));
        const char **nw = nv_ ? dlg_realloc(h->closing_why, nc * sizeof(*nw)) : NULL;
        if (nv_)
            h->closing_v = nv_;
        if (nw == NULL) {
            /* Out of memory: closed now (we are on the loop thread unless
             * inside a stage, where sessions are closed only through here
             * and this cannot fail twice in practice). */
            dlg_conn_close(sess, why);
            return;
        }
        h->closing_why = nw;
        h->cap_closing = nc;
    }
    h->closing_v[h->n_closing] = sess;
    h->closing_why[h->n_closing++] = why;
}

/* ---- the data source --------------------------------------------------- */

/* nghttp2 asks for up to length bytes of st's response body: its unary
 * response or stashed history first (grpc_put_own), then its session's
 * queue through grpc_put. At the end: EOF and the trailers. */
static ssize_t on_read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)ng;
    (void)id;
    (void)ud;
    h2_stream *st = src->ptr;
    size_t n = grpc_put_own(st, buf, length);
    if (n < length && st->stash == NULL && st->resp == NULL && st->sess != NULL &&
        st->sess->state != DLG_CONN_CLOSING && st->end_status < 0)
        n += dlg_outq_stage_with(st->sess, buf + n, length - n, grpc_put);
    if (n > 0)
        return (ssize_t)n;
    /* grpc_put ended the call (an Error, a deleted room): its session goes. */
    if (st->end_status >= 0 && st->sess != NULL) {
        h2_close_later(st->h, st->sess, "call ended");
        st->sess = NULL;
    }
    /* A session that closed gracefully has staged all it had. */
    if (st->end_status < 0 && st->sess != NULL && st->sess->close_after_flush &&
        st->sess->q_len == 0) {
        const char *m = NULL;
        st->end_status = grpc_end_status(st, &m);
        st->end_msg = m ? dlg_strdup(m) : NULL;
        h2_close_later(st->h, st->sess, st->sess->close_reason);
        st->sess = NULL;
    }
    if (st->end_status >= 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (submit_status(st, 0) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        st->trailers = 1;
        return 0;
    }
    st->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
}

/* ---- nghttp2 callbacks ------------------------------------------------- */

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    (void)ng;
    (void)flags;
    h2_conn *h = ud;
    size_t room = h->out_cap - h->out_used;
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t n = len < room ? len : room;
    memcpy(h->out + h->out_used, data, n);
    h->out_used += n;
    h->partial = n < len;
    return (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    h2_conn *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_stream *st = dlg_calloc(1, sizeof(*st));
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* reset, the connection goes on */
    st->kind = H2_OWNER_STREAM;
    st->h = h;
    st->id = f->hd.stream_id;
    st->end_status = -1;
    st->dec.max_frame = h->c->srv->opts.max_frame;
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->n_streams++;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static int eq(const uint8_t *a, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(a, lit, n) == 0;
}

/* grpc-timeout: 1 to 8 digits and a unit (H M S m u n), as milliseconds
 * rounded up; 0 when malformed (no deadline). */
static uint64_t timeout_ms(const uint8_t *v, size_t n) {
    if (n < 2 || n > 9)
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H': return x * 3600000;
    case 'M': return x * 60000;
    case 'S': return x * 1000;
    case 'm': return x;
    case 'u': return (x + 999) / 1000;
    case 'n': return (x + 999999) / 1000000;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    (void)flags;
    h2_conn *h = ud;
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st == NULL)
        return 0;
    st->hdr_bytes += (uint32_t)(namelen + valuelen + 32);
    if (st->hdr_bytes > H2_MAX_HEADER_LIST) {
        /* nghttp2 resets the stream; its remaining headers are decoded (the
         * HPACK state needs them) but not handed to us. */
        charge(h, 1, "streams reset for oversized header lists");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* the client's trailers: nothing in them matters */
    if (eq(name, namelen, ":method")) {
        st->bad_method = !eq(value, valuelen, "POST");
    } else if (eq(name, namelen, ":path")) {
        st->method = grpc_method(value, valuelen);
        free(st->path);
        st->path = dlg_strndup((const char *)value, valuelen < 128 ? valuelen : 128);
    } else if (eq(name, namelen, "content-type")) {
        st->ct_grpc = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                      (valuelen == 16 || value[16] == '+' || value[16] == ';');
    } else if (eq(name, namelen, "authorization")) {
        free(st->auth);
        st->auth = dlg_strndup((const char *)value, valuelen);
    } else if (eq(name, namelen, "user-agent")) {
        free(st->agent);
        st->agent = dlg_strndup((const char *)value, valuelen < 128 ? valuelen : 128);
    } else if (eq(name, namelen, "grpc-timeout")) {
        uint64_t ms = timeout_ms(value, valuelen);
        if (ms)
            st->deadline = now_ms(h) + ms;
    } else if (eq(name, namelen, "grpc-encoding")) {
        st->enc_other = !eq(value, valuelen, "identity");
    }
    return 0;
}

static void arm_timer(h2_conn *h);

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    h2_conn *h = ud;
    h2_stream *st = f->hd.stream_id ? nghttp2_session_get_stream_user_data(ng, f->hd.stream_id)
                                    : NULL;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (st && f->headers.cat == NGHTTP2_HCAT_REQUEST && !st->began) {
            st->began = 1;
            grpc_begin(st);
            if (st->deadline)
                arm_timer(h);
        }
        if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->req_done) {
            st->req_done = 1;
            grpc_request_end(st);
        }
        break;
    case NGHTTP2_DATA:
        if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            charge(h, 1, "empty DATA frames");
        if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->req_done) {
            st->req_done = 1;
            grpc_request_end(st);
        }
        break;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            charge(h, 1, "SETTINGS flood");
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            break;
        charge(h, 1, "PING flood");
        {
            uint64_t now = now_ms(h);
            if (!h->sent_since_ping && h->last_ping && now - h->last_ping < H2_PING_MIN_MS &&
                ++h->ping_strikes > H2_PING_STRIKES && h->abuse == NULL) {
                h->abuse = "too_many_pings";
                h->abuse_code = NGHTTP2_ENHANCE_YOUR_CALM;
            }
            h->last_ping = now;
            h->sent_since_ping = 0;
        }
        break;
    case NGHTTP2_PRIORITY:
        charge(h, 1, "PRIORITY flood");
        break;
    case NGHTTP2_RST_STREAM:
        charge(h, 1, "stream resets (rapid reset)");
        break;
    }
    /* Stop reading at once: what follows in this read is not looked at. */
    return h->abuse ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud) {
    (void)flags;
    (void)ud;
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL || st->trailers || st->reset)
        return 0;
    grpc_data(st, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
    h2_conn *h = ud;
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (st->sess != NULL) {
        /* Cancelled, reset, or done: the session leaves its rooms. */
        h2_close_later(h, st->sess,
                       st->trailers ? "call ended"
                       : code == NGHTTP2_CANCEL ? "call cancelled by the client"
                                                : "stream reset");
        st->sess = NULL;
    }
    grpc_stream_free(st);
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h->n_streams--;
    free(st);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    (void)ng;
    h2_conn *h = ud;
    if (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) {
        h->sent_since_ping = 1;
        h->ping_strikes = 0;
    }
    return 0;
}

/* ---- the session -------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *t) {
    dlg_conn_release(t->data);
}

static h2_conn *h2_get(dlg_conn *c) {
    if (c->codec_st != NULL)
        return c->codec_st;
    h2_conn *h = dlg_calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->c = c;
    h->budget = H2_BUDGET_BURST;
    h->budget_at = now_ms(h);
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
    nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
    nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
    if (nghttp2_session_server_new2(&h->ng, cb, h, opt) != 0)
        goto fail;
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    cb = NULL;
    opt = NULL;
    nghttp2_settings_entry set[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->srv->opts.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_MAX_HEADER_LIST},
    };
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, set, 3) != 0 ||
        nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_WINDOW) != 0)
        goto fail;
    uv_timer_init(c->srv->loop, &h->timer);
    h->timer.data = c;
    h->timer_open = 1;
    c->handles_open++; /* released by on_timer_closed */
    c->codec_st = h;
    return h;
fail:
    if (cb)
        nghttp2_session_callbacks_del(cb);
    if (opt)
        nghttp2_option_del(opt);
    if (h->ng)
        nghttp2_session_del(h->ng);
    free(h);
    return NULL;
}

/* Work that needs the loop thread, after a read or a flush: sessions of
 * ended streams are closed (they leave their rooms). */
static void h2_after(h2_conn *h) {
    while (h->n_closing > 0) {
        size_t i = --h->n_closing;
        dlg_conn_close(h->closing_v[i], h->closing_why[i]);
    }
}

/* Cuts the connection with GOAWAY for the reason given. */
static void cut(h2_conn *h, uint32_t code, const char *why) {
    dlg_conn *c = h->c;
    dlg_log_warn(&c->srv->log, "conn %s (%s): HTTP/2: %s: closing the connection (GOAWAY)",
                 c->client_id, c->peer, why);
    goaway(h, code, why);
    dlg_conn_close_after_flush(c, why);
}

/* The deadlines of calls (grpc-timeout) that passed: each ends with
 * DEADLINE_EXCEEDED, its session (if any) leaves its rooms. */
static void on_timer(uv_timer_t *t) {
    dlg_conn *c = t->data;
    h2_conn *h = c->codec_st;
    if (h == NULL || c->state == DLG_CONN_CLOSING)
        return;
    h->timer_at = 0;
    uint64_t now = now_ms(h);
    for (h2_stream *st = h->streams; st; st = st->next) {
        if (!st->deadline || st->deadline > now || st->end_status >= 0 || st->trailers ||
            st->reset)
            continue;
        st->deadline = 0;
        if (st->sess != NULL) {
            h2_close_later(h, st->sess, "deadline exceeded");
            st->sess = NULL;
        }
        h2_finish(st, DIALOGUE__V1__STATUS__DEADLINE_EXCEEDED, "deadline exceeded");
    }
    h2_after(h);
    arm_timer(h);
    dlg_conn_mark_dirty(c);
}

static void arm_timer(h2_conn *h) {
    uint64_t at = 0;
    for (h2_stream *st = h->streams; st; st = st->next)
        if (st->deadline && st->end_status < 0 && (at == 0 || st->deadline < at))
            at = st->deadline;
    if (at == h->timer_at)
        return;
    h->timer_at = at;
    if (at == 0) {
        uv_timer_stop(&h->timer);
        return;
    }
    uint64_t now = now_ms(h);
    uv_timer_start(&h->timer, on_timer, at > now ? at - now : 0, 0);
}

/* ---- the codec ----------------------------------------------------------- */

static int h2_feed(dlg_conn *c, const uint8_t *data, size_t len) {
    if (c->state == DLG_CONN_CLOSING || c->close_after_flush)
        return 1;
    h2_conn *h = h2_get(c);
    if (h == NULL) {
        dlg_conn_close(c, "out of memory starting HTTP/2");
        return 1;
    }
    ssize_t rv = nghttp2_session_mem_recv(h->ng, data, len);
    h2_after(h);
    if (c->state == DLG_CONN_CLOSING)
        return 1;
    if (h->abuse) {
        cut(h, h->abuse_code, h->abuse);
        return 1;
    }
    if (rv == NGHTTP2_ERR_FLOODED) {
        cut(h, NGHTTP2_ENHANCE_YOUR_CALM, "SETTINGS or PING flood (acknowledgements owed pile up)");
        return 1;
    }
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        dlg_log_info(&c->srv->log, "conn %s (%s): refused: not an HTTP/2 client preface",
                     c->client_id, c->peer);
        dlg_conn_close(c, "not an HTTP/2 client preface");
        return 1;
    }
    if (rv < 0) {
        /* nghttp2 stopped reading (too many CONTINUATION frames, a
         * malformed frame...): GOAWAY saying what it found. */
        cut(h, rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ? NGHTTP2_ENHANCE_YOUR_CALM
                                                         : NGHTTP2_PROTOCOL_ERROR,
            nghttp2_strerror((int)rv));
        return 1;
    }
    if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng)) {
        dlg_conn_close_after_flush(c, "HTTP/2 session ended");
        return 1;
    }
    if (nghttp2_session_want_write(h->ng) || c->kids_dirty)
        dlg_conn_mark_dirty(c);
    return 0;
}

/* The connection's own queue (conn.c and read.c queue dialogue/1 frames to
 * it: a heartbeat Ping, the Error it is closed with) in HTTP/2 terms: a
 * PING, or GOAWAY with the message as debug data. */
static void own_queue(h2_conn *h) {
    dlg_buf *b;
    while ((b = dlg_outq_take(h->c)) != NULL) {
        pbw r = {b->data + DLG_FRAME_HDR, b->data + b->len};
        uint32_t field;
        int wt;
        uint64_t v;
        const uint8_t *p;
        size_t n;
        while (pbw_next(&r, &field, &wt, &v, &p, &n) == 1) {
            if (field == 12 && wt == 2) { /* Ping{nonce} */
                pbw in = {p, p + n};
                uint64_t nonce = 0;
                while (pbw_next(&in, &field, &wt, &v, &p, &n) == 1)
                    if (field == 1 && wt == 0)
                        nonce = v;
                uint8_t op[8];
                for (int i = 0; i < 8; i++)
                    op[i] = (uint8_t)(nonce >> (56 - 8 * i));
                nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, op);
                break;
            }
            if (field == 7 && wt == 2) { /* Error{code, message} */
                pbw in = {p, p + n};
                int code = 0;
                char msg[256] = "";
                while (pbw_next(&in, &field, &wt, &v, &p, &n) == 1) {
                    if (field == 1 && wt == 0)
                        code = (int)v;
                    else if (field == 2 && wt == 2)
                        snprintf(msg, sizeof(msg), "%.*s", (int)n, (const char *)p);
                }
                goaway(h, goaway_code(code), msg);
                break;
            }
        }
        dlg_buf_unref(b);
    }
}

/* While a stream's session has output that its flow-control window holds
 * back, the session counts as a socket that takes nothing (its
 * inflight_since): the sweep cuts it after write_timeout_ms. */
static void note_stalls(h2_conn *h) {
    uint64_t now = now_ms(h);
    for (h2_stream *st = h->streams; st; st = st->next) {
        dlg_conn *s = st->sess;
        if (s == NULL)
            continue;
        int stalled = (s->q_len > 0 || st->stash != NULL) && st->responded && window_shut(st);
        if (!stalled)
            s->st.inflight_since = 0;
        else if (s->st.inflight_since == 0)
            s->st.inflight_since = now ? now : 1;
    }
}

static size_t h2_stage(dlg_conn *c, uint8_t *dst, size_t cap) {
    h2_conn *h = h2_get(c);
    if (h == NULL)
        return 0;
    own_queue(h);
    if (c->kids_dirty) {
        c->kids_dirty = 0;
        for (h2_stream *st = h->streams; st; st = st->next) {
            if (st->sess != NULL && st->sess->in_dirty) {
                st->sess->in_dirty = 0;
                if (st->setup || st->method != GRPC_SUBSCRIBE)
                    h2_resume(st);
            }
        }
        for (h2_usess *u = h->usess; u; u = u->next)
            if (u->sess != NULL)
                u->sess->in_dirty = 0;
        grpc_pump(h);
    }
    h->out = dst;
    h->out_cap = cap;
    h->out_used = 0;
    int rv = nghttp2_session_send(h->ng);
    if (rv != 0 && h->fatal == NULL)
        h->fatal = nghttp2_strerror(rv);
    note_stalls(h);
    h->out = NULL;
    return h->out_used;
}

static int h2_more(const dlg_conn *c) {
    const h2_conn *h = c->codec_st;
    if (h == NULL)
        return 0;
    return c->kids_dirty || nghttp2_session_want_write(h->ng);
}

static uint64_t h2_pending(const dlg_conn *c) {
    const h2_conn *h = c->codec_st;
    return h ? h->in_buffered + h->held : 0;
}

static size_t h2_final_error(dlg_conn *c, int status, const char *msg, uint8_t *dst, size_t cap) {
    h2_conn *h = h2_get(c);
    if (h == NULL || h->partial)
        return 0;
    goaway(h, goaway_code(status), msg);
    h->out = dst;
    h->out_cap = cap;
    h->out_used = 0;
    nghttp2_session_send(h->ng);
    h->out = NULL;
    return h->out_used;
}

static void h2_release_idle(dlg_conn *c) {
    h2_conn *h = c->codec_st;
    if (h == NULL)
        return;
    for (h2_stream *st = h->streams; st; st = st->next)
        if (st->dec.body != NULL && dlg_frame_dec_pending(&st->dec) == 0)
            dlg_frame_dec_free(&st->dec);
}

static void h2_closing(dlg_conn *c) {
    h2_conn *h = c->codec_st;
    if (h == NULL)
        return;
    for (h2_stream *st = h->streams; st; st = st->next) {
        if (st->sess != NULL) {
            dlg_conn *s = st->sess;
            st->sess = NULL;
            s->codec_st = NULL;
            dlg_conn_close(s, "connection closed");
        }
    }
    grpc_usess_close_all(h);
    h2_after(h);
    if (h->timer_open) {
        h->timer_open = 0;
        uv_close((uv_handle_t *)&h->timer, on_timer_closed);
    }
}

static void h2_flushed(dlg_conn *c) {
    h2_conn *h = c->codec_st;
    if (h == NULL)
        return;
    int closed = h->n_closing > 0;
    h2_after(h);
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (h->fatal) {
        dlg_log_info(&c->srv->log, "conn %s (%s): HTTP/2: %s", c->client_id, c->peer, h->fatal);
        dlg_conn_close(c, "HTTP/2 session failed");
        return;
    }
    /* Closing sessions may have ended streams: their trailers go now. */
    if (closed && (nghttp2_session_want_write(h->ng) || c->kids_dirty))
        dlg_conn_mark_dirty(c);
}

static void h2_sweep(dlg_conn *c, uint64_t now) {
    h2_conn *h = c->codec_st;
    if (h == NULL)
        return;
    for (h2_stream *st = h->streams; st; st = st->next)
        if (st->sess != NULL)
            dlg_conn_sweep_one(st->sess, now);
    for (h2_usess *u = h->usess; u; u = u->next)
        if (u->sess != NULL)
            dlg_conn_sweep_one(u->sess, now);
    grpc_usess_sweep(h, now);
    if (h->n_closing > 0) {
        h2_after(h);
        dlg_conn_mark_dirty(c);
    }
}

static void h2_free(dlg_conn *c) {
    h2_conn *h = c->codec_st;
    if (h == NULL)
        return;
    while (h->streams) {
        h2_stream *st = h->streams;
        h->streams = st->next;
        grpc_stream_free(st);
        free(st);
    }
    grpc_usess_close_all(h); /* frees what is left of them */
    nghttp2_session_del(h->ng);
    free(h->closing_v);
    free(h->closing_why);
    free(h);
    c->codec_st = NULL;
}

const dlg_codec dlg_codec_h2 = {
    .name = "h2",
    .sessions = 1,
    .feed = h2_feed,
    .stage = h2_stage,
    .more = h2_more,
    .pending = h2_pending,
    .final_error = h2_final_error,
    .release_idle = h2_release_idle,
    .free = h2_free,
    .closing = h2_closing,
    .flushed = h2_flushed,
    .sweep = h2_sweep,
};

/* ---- the codec of a stream's session ------------------------------------ */

static void stream_closing(dlg_conn *s) {
    /* Its queue is dropped with it, and a Session's unfinished request:
     * they no longer count in the parent's caps. */
    s->parent->kids_pending -= s->q_bytes + s->q_len * DLG_OUTQ_ITEM_COST;
    h2_conn *h = s->parent->codec_st;
    if (h != NULL)
        h->in_buffered -= dlg_frame_dec_pending(&s->dec);
    dlg_frame_dec_free(&s->dec);
    if (s->codec_st != NULL)
        grpc_session_closing(s);
    s->codec_st = NULL;
}

const dlg_codec dlg_codec_h2_stream = {
    .name = "grpc",
    .closing = stream_closing,
};
