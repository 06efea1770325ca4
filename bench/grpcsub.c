/* grpcsub.c: a bench subscriber over gRPC (see grpcsub.h): one HTTP/2
 * connection with prior knowledge to a plaintext listener (nghttp2's
 * client session), one Subscribe stream on it, its Event messages
 * unpacked into a per-connection arena as plain.c does. Output is flushed
 * once per loop turn. */
#include "grpcsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dialogue/v1/service.pb-c.h"
#include "dlg_err.h"
#include "dlg_frame.h"

#define ARENA_SIZE (32 * 1024)
#define READ_SIZE (64 * 1024)
#define WINDOW (16 << 20) /* the subscriber reads at once: a large window */

enum { PH_CONNECTING, PH_WAITING, PH_READY, PH_DEAD };

struct bench_grpcsub {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_prepare_t flush;
    uv_timer_t timer;          /* connect timeout until ready */
    int handles, freeing, phase, writing;
    const bench_conn_opts *o;
    const bench_peer_cbs *cbs;
    void *ud;
    struct sockaddr_storage addr;
    char peer[80];
    nghttp2_session *ng;
    int32_t sid;
    uint8_t req[512];          /* the request message, LPM-framed */
    size_t req_len, req_off;
    char status[16], message[256]; /* the call's grpc-status and grpc-message */
    dlg_frame_dec dec;
    uint8_t *obuf;
    size_t olen, ocap;
    ProtobufCAllocator alloc;
    size_t arena_used;
    uint8_t arena[ARENA_SIZE];
    uint8_t rbuf[READ_SIZE];
};

typedef struct wreq {
    uv_write_t req;
    bench_grpcsub *p;
    uint8_t data[];
} wreq;

static void *arena_alloc(void *ad, size_t n) {
    bench_grpcsub *p = ad;
    n = (n + 15) & ~(size_t)15;
    if (n <= ARENA_SIZE - p->arena_used) {
        void *r = p->arena + p->arena_used;
        p->arena_used += n;
        return r;
    }
    return malloc(n);
}

static void arena_free(void *ad, void *ptr) {
    bench_grpcsub *p = ad;
    if ((uint8_t *)ptr < p->arena || (uint8_t *)ptr >= p->arena + ARENA_SIZE)
        free(ptr);
}

static void on_closed(uv_handle_t *h) {
    bench_grpcsub *p = h->data;
    if (--p->handles > 0 || !p->freeing)
        return;
    nghttp2_session_del(p->ng);
    dlg_frame_dec_free(&p->dec);
    free(p->obuf);
    free(p);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

static void die(bench_grpcsub *p, const char *why) {
    if (p->phase == PH_DEAD)
        return;
    p->phase = PH_DEAD;
    uv_prepare_stop(&p->flush);
    uv_timer_stop(&p->timer);
    close_handle((uv_handle_t *)&p->tcp);
    if (!p->freeing)
        p->cbs->failed(p->ud, why);
}

/* ---- output: nghttp2's bytes gathered, written once per loop turn ------- */

static void on_flush(uv_prepare_t *h);

static void on_write(uv_write_t *req, int status) {
    wreq *w = (wreq *)req;
    bench_grpcsub *p = w->p;
    free(w);
    p->writing = 0;
    if (p->phase == PH_DEAD)
        return;
    if (status < 0) {
        die(p, uv_strerror(status));
        return;
    }
    if (p->olen > 0)
        uv_prepare_start(&p->flush, on_flush);
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    (void)ng;
    (void)flags;
    bench_grpcsub *p = ud;
    if (p->olen + len > p->ocap) {
        size_t cap = p->ocap ? p->ocap : 4096;
        while (cap < p->olen + len)
            cap *= 2;
        uint8_t *nb = realloc(p->obuf, cap);
        if (nb == NULL)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        p->obuf = nb;
        p->ocap = cap;
    }
    memcpy(p->obuf + p->olen, data, len);
    p->olen += len;
    return (ssize_t)len;
}

static void flush_out(bench_grpcsub *p) {
    uv_prepare_stop(&p->flush);
    if (p->phase == PH_DEAD)
        return;
    if (nghttp2_session_send(p->ng) != 0) {
        die(p, "HTTP/2 session failed");
        return;
    }
    if (p->writing || p->olen == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)p->obuf, (unsigned)p->olen);
    int n = uv_try_write((uv_stream_t *)&p->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        die(p, uv_strerror(n));
        return;
    }
    size_t rest = p->olen - (size_t)n;
    if (rest > 0) {
        wreq *w = malloc(sizeof(*w) + rest);
        if (w == NULL) {
            die(p, "out of memory for output");
            return;
        }
        memcpy(w->data, p->obuf + n, rest);
        w->p = p;
        uv_buf_t wb = uv_buf_init((char *)w->data, (unsigned)rest);
        if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &wb, 1, on_write) != 0) {
            free(w);
            die(p, "write failed");
            return;
        }
        p->writing = 1;
    }
    p->olen = 0;
}

static void on_flush(uv_prepare_t *h) {
    flush_out(h->data);
}

/* ---- the call --------------------------------------------------------------- */

static ssize_t on_req_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)ng;
    (void)id;
    (void)src;
    bench_grpcsub *p = ud;
    size_t n = p->req_len - p->req_off < len ? p->req_len - p->req_off : len;
    memcpy(buf, p->req + p->req_off, n);
    p->req_off += n;
    if (p->req_off == p->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_msg(void *ctx, const uint8_t *body, size_t len) {
    bench_grpcsub *p = ctx;
    p->arena_used = 0;
    Dialogue__V1__Event *e = dialogue__v1__event__unpack(&p->alloc, len, body);
    if (e == NULL) {
        die(p, "a message of the Subscribe stream is not an Event");
        return 1;
    }
    if (p->phase == PH_READY)
        p->cbs->event(p->ud, e->event, e->data.data, e->data.len, e->seq);
    dialogue__v1__event__free_unpacked(e, &p->alloc);
    return p->phase == PH_DEAD;
}

static int on_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                    size_t len, void *ud) {
    (void)ng;
    (void)flags;
    bench_grpcsub *p = ud;
    if (id == p->sid && p->phase != PH_DEAD &&
        dlg_frame_dec_feed(&p->dec, data, len, on_msg, p, NULL) < 0)
        die(p, "malformed message on the Subscribe stream");
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud) {
    (void)ng;
    (void)f;
    (void)flags;
    bench_grpcsub *p = ud;
    if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0)
        snprintf(p->status, sizeof(p->status), "%.*s", (int)vlen, (const char *)value);
    else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0)
        snprintf(p->message, sizeof(p->message), "%.*s", (int)vlen, (const char *)value);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    (void)ng;
    bench_grpcsub *p = ud;
    if (f->hd.stream_id != p->sid || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM) && p->phase == PH_WAITING) {
        /* The response headers: joined and subscribed. */
        p->phase = PH_READY;
        uv_timer_stop(&p->timer);
        p->cbs->ready(p->ud);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
    (void)ng;
    bench_grpcsub *p = ud;
    if (id != p->sid)
        return 0;
    char why[400];
    snprintf(why, sizeof(why), "Subscribe ended: grpc-status %s %s (HTTP/2 code %u)",
             p->status[0] ? p->status : "-", p->message, code);
    die(p, why);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    bench_grpcsub *p = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)p->rbuf, sizeof(p->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    bench_grpcsub *p = s->data;
    if (p->phase == PH_DEAD)
        return;
    if (n < 0) {
        die(p, n == UV_EOF ? "server closed the connection" : uv_strerror((int)n));
        return;
    }
    if (nghttp2_session_mem_recv(p->ng, (const uint8_t *)buf->base, (size_t)n) < 0) {
        die(p, "HTTP/2 error from the server");
        return;
    }
    if (p->phase != PH_DEAD && nghttp2_session_want_write(p->ng))
        uv_prepare_start(&p->flush, on_flush);
}

static void on_connect(uv_connect_t *req, int status) {
    bench_grpcsub *p = req->data;
    if (p->phase == PH_DEAD)
        return;
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof(why), "connect to %s: %s", p->peer, uv_strerror(status));
        die(p, why);
        return;
    }
    uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
    nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW}};
    nghttp2_submit_settings(p->ng, NGHTTP2_FLAG_NONE, set, 1);
    nghttp2_session_set_local_window_size(p->ng, NGHTTP2_FLAG_NONE, 0, WINDOW);
    char auth[2048] = "";
    if (p->o->token && p->o->token[0])
        snprintf(auth, sizeof(auth), "Bearer %s", p->o->token);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv hv[] = {NV(":method", "POST"), NV(":scheme", "http"),
                       NV(":path", "/dialogue.v1.Dialogue/Subscribe"),
                       NV(":authority", p->peer), NV("content-type", "application/grpc"),
                       NV("te", "trailers"), NV("user-agent", "dialogue-bench"),
                       NV("authorization", auth)};
#undef NV
    nghttp2_data_provider prd = {.read_callback = on_req_data};
    p->sid = nghttp2_submit_request(p->ng, NULL, hv, auth[0] ? 8 : 7, &prd, p);
    if (p->sid < 0) {
        die(p, "cannot start the Subscribe call");
        return;
    }
    p->phase = PH_WAITING;
    flush_out(p);
}

static void on_timeout(uv_timer_t *t) {
    bench_grpcsub *p = t->data;
    char why[200];
    snprintf(why, sizeof(why), "no Subscribe response from %s within %u ms", p->peer,
             p->o->connect_timeout_ms);
    die(p, why);
}

int bench_grpcsub_new(uv_loop_t *loop, const bench_conn_opts *o, const bench_peer_cbs *cbs,
                      void *ud, bench_grpcsub **out, char *err, size_t errlen) {
    bench_grpcsub *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for a gRPC subscriber");
        return DLG_ENOMEM;
    }
    if (uv_ip4_addr(o->host, (int)o->port, (struct sockaddr_in *)&p->addr) != 0 &&
        uv_ip6_addr(o->host, (int)o->port, (struct sockaddr_in6 *)&p->addr) != 0) {
        snprintf(err, errlen, "--grpc takes a numeric address, not %s", o->host);
        free(p);
        return DLG_EINVAL;
    }
    /* SubscribeRequest{room, events: ["*"]}: every event of the room. */
    Dialogue__V1__SubscribeRequest r = DIALOGUE__V1__SUBSCRIBE_REQUEST__INIT;
    char *all[] = {"*"};
    r.room = (char *)o->room;
    r.events = all;
    r.n_events = 1;
    size_t n = protobuf_c_message_get_packed_size(&r.base);
    if (n + DLG_FRAME_HDR > sizeof(p->req)) {
        snprintf(err, errlen, "room name too long");
        free(p);
        return DLG_EINVAL;
    }
    dlg_frame_put_header(p->req, (uint32_t)n);
    protobuf_c_message_pack(&r.base, p->req + DLG_FRAME_HDR);
    p->req_len = DLG_FRAME_HDR + n;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        free(p);
        return DLG_ENOMEM;
    }
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_chunk);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rc = nghttp2_session_client_new(&p->ng, cb, p);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        free(p);
        return DLG_ENOMEM;
    }
    snprintf(p->peer, sizeof(p->peer), "%s:%u", o->host, o->port);
    p->loop = loop;
    p->o = o;
    p->cbs = cbs;
    p->ud = ud;
    p->dec.max_frame = 16u << 20;
    p->alloc.alloc = arena_alloc;
    p->alloc.free = arena_free;
    p->alloc.allocator_data = p;
    uv_tcp_init(loop, &p->tcp);
    uv_prepare_init(loop, &p->flush);
    uv_timer_init(loop, &p->timer);
    p->tcp.data = p->flush.data = p->timer.data = p->creq.data = p;
    p->handles = 3;
    uv_tcp_nodelay(&p->tcp, 1);
    *out = p;
    return 0;
}

int bench_grpcsub_start(bench_grpcsub *p) {
    p->phase = PH_CONNECTING;
    if (p->o->connect_timeout_ms)
        uv_timer_start(&p->timer, on_timeout, p->o->connect_timeout_ms, 0);
    int rc = uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&p->addr, on_connect);
    return rc == 0 ? 0 : DLG_EIO;
}

void bench_grpcsub_free(bench_grpcsub *p) {
    if (p == NULL || p->freeing)
        return;
    p->freeing = 1;
    p->phase = PH_DEAD;
    close_handle((uv_handle_t *)&p->tcp);
    close_handle((uv_handle_t *)&p->flush);
    close_handle((uv_handle_t *)&p->timer);
}
