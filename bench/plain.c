/* plain.c: the bench's plaintext client (see plain.h): one TCP connection,
 * frames packed straight into one output buffer flushed once per loop turn,
 * server frames unpacked into a per-connection arena so receiving an event
 * allocates nothing. With opts->websocket it upgrades GET /v1/ws first and
 * carries each frame as one WebSocket message (docs/websocket.md): a
 * minimal client framer, enough for what the daemon sends (unfragmented
 * binary messages, close); it masks with a zero key, which the format
 * allows and which keeps the bench's own cost out of the measurement. */
#include "plain.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_err.h"
#include "dlg_frame.h"

#define SF(x) DIALOGUE__V1__SERVER_FRAME__MSG_##x
#define CF(x) DIALOGUE__V1__CLIENT_FRAME__MSG_##x

enum { PH_IDLE, PH_CONNECTING, PH_HELLO, PH_JOIN, PH_SUBS, PH_READY, PH_DEAD };

#define ARENA_SIZE (32 * 1024)
#define READ_SIZE (64 * 1024)
#define MAX_IN_FRAME (16u << 20)

struct bench_plain {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_prepare_t flush;      /* one write per loop turn */
    uv_timer_t timer;        /* connect timeout until ready */
    int handles;             /* open uv handles; freed at 0 once freeing */
    int freeing;
    const bench_conn_opts *o;
    const bench_peer_cbs *cbs;
    void *ud;
    int role;
    int phase;
    struct sockaddr_storage addr;
    char peer[80];
    uint64_t next_id;
    uint64_t setup_id;       /* request_id of the Hello/Join/Subscribe in flight */
    uint32_t pending;        /* triggers without a reply yet */
    dlg_frame_dec dec;
    uint8_t *obuf;           /* packed frames waiting for the flush */
    size_t olen, ocap;
    int writing;             /* a uv_write owns the rest of an earlier flush */
    char server_error[256];  /* the last request_id-0 Error: why we got cut */
    ProtobufCAllocator alloc;
    size_t arena_used;
    /* WebSocket: the 101 being read (ws_open = 0), then partial frames. */
    int ws_open;
    char ws_head[1024];
    size_t ws_head_len;
    uint8_t *wsin;
    size_t wsin_len, wsin_cap;
    uint8_t arena[ARENA_SIZE];
    uint8_t rbuf[READ_SIZE];
};

typedef struct wreq {
    uv_write_t req;
    bench_plain *p;
    uint8_t data[];
} wreq;

/* ---- arena: unpacking a frame does not touch malloc unless it is big ---- */

static void *arena_alloc(void *ad, size_t n) {
    bench_plain *p = ad;
    n = (n + 15) & ~(size_t)15;
    if (n <= ARENA_SIZE - p->arena_used) {
        void *r = p->arena + p->arena_used;
        p->arena_used += n;
        return r;
    }
    return malloc(n);
}

static void arena_free(void *ad, void *ptr) {
    bench_plain *p = ad;
    if ((uint8_t *)ptr >= p->arena && (uint8_t *)ptr < p->arena + ARENA_SIZE)
        return;
    free(ptr);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void on_closed(uv_handle_t *h) {
    bench_plain *p = h->data;
    if (--p->handles > 0 || !p->freeing)
        return;
    dlg_frame_dec_free(&p->dec);
    free(p->obuf);
    free(p);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* Ends the connection and reports why (once, and never while freeing). */
static void die(bench_plain *p, const char *why) {
    if (p->phase == PH_DEAD)
        return;
    p->phase = PH_DEAD;
    uv_prepare_stop(&p->flush);
    uv_timer_stop(&p->timer);
    close_handle((uv_handle_t *)&p->tcp);
    if (!p->freeing) {
        char buf[600];
        if (p->server_error[0]) {
            snprintf(buf, sizeof(buf), "%s (%s)", why, p->server_error);
            why = buf;
        }
        p->cbs->failed(p->ud, why);
    }
}

int bench_plain_new(uv_loop_t *loop, const bench_conn_opts *o, int role,
                    const bench_peer_cbs *cbs, void *ud, bench_plain **out,
                    char *err, size_t errlen) {
    bench_plain *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for a plaintext peer");
        return DLG_ENOMEM;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)&p->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&p->addr;
    if (uv_ip4_addr(o->host, (int)o->port, a4) != 0 &&
        uv_ip6_addr(o->host, (int)o->port, a6) != 0) {
        /* A name: resolve it once, here (blocking is fine during setup). */
        struct addrinfo hints, *res = NULL;
        char port[8];
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%u", o->port);
        int g = getaddrinfo(o->host, port, &hints, &res);
        if (g != 0 || res == NULL) {
            snprintf(err, errlen, "cannot resolve %s: %s", o->host, gai_strerror(g));
            free(p);
            return DLG_EINVAL;
        }
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    }
    snprintf(p->peer, sizeof(p->peer), "%s:%u", o->host, o->port);
    p->loop = loop;
    p->o = o;
    p->cbs = cbs;
    p->ud = ud;
    p->role = role;
    p->next_id = 1;
    p->dec.max_frame = MAX_IN_FRAME;
    p->alloc.alloc = arena_alloc;
    p->alloc.free = arena_free;
    p->alloc.allocator_data = p;
    uv_tcp_init(loop, &p->tcp);
    uv_prepare_init(loop, &p->flush);
    uv_timer_init(loop, &p->timer);
    p->tcp.data = p->flush.data = p->timer.data = p;
    p->handles = 3;
    /* Before the socket exists: libuv applies it at creation. */
    uv_tcp_nodelay(&p->tcp, 1);
    *out = p;
    return 0;
}

void bench_plain_free(bench_plain *p) {
    if (p == NULL || p->freeing)
        return;
    p->freeing = 1;
    free(p->wsin);
    p->wsin = NULL;
    p->phase = PH_DEAD;
    close_handle((uv_handle_t *)&p->tcp);
    close_handle((uv_handle_t *)&p->flush);
    close_handle((uv_handle_t *)&p->timer);
}

/* ---- writing -------------------------------------------------------------- */

static void on_flush(uv_prepare_t *h);

static void on_write(uv_write_t *req, int status) {
    wreq *w = (wreq *)req;
    bench_plain *p = w->p;
    free(w);
    p->writing = 0;
    if (p->phase == PH_DEAD)
        return;
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof(why), "write to %s: %s", p->peer, uv_strerror(status));
        die(p, why);
        return;
    }
    if (p->olen > 0)
        uv_prepare_start(&p->flush, on_flush);
}

static void flush_out(bench_plain *p) {
    uv_prepare_stop(&p->flush);
    if (p->writing || p->olen == 0 || p->phase == PH_DEAD)
        return;
    uv_buf_t b = uv_buf_init((char *)p->obuf, (unsigned)p->olen);
    int n = uv_try_write((uv_stream_t *)&p->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        char why[200];
        snprintf(why, sizeof(why), "write to %s: %s", p->peer, uv_strerror(n));
        die(p, why);
        return;
    }
    size_t rest = p->olen - (size_t)n;
    if (rest > 0) {
        /* The socket is full: the rest goes out through libuv, which needs
         * the bytes to stay put, so they move to a buffer of their own. */
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

/* Packs f (request_id assigned here) behind the queued frames. */
static int queue_frame(bench_plain *p, Dialogue__V1__ClientFrame *f) {
    f->request_id = p->next_id++;
    size_t n = protobuf_c_message_get_packed_size(&f->base);
    if (n > UINT32_MAX - DLG_FRAME_HDR)
        return DLG_ETOOBIG;
    /* WebSocket: 2, 4 or 10 bytes of header and a 4-byte mask key. */
    size_t hdr = !p->o->websocket ? DLG_FRAME_HDR : n < 126 ? 6 : n < 65536 ? 8 : 14;
    size_t need = p->olen + hdr + n;
    if (need > p->ocap) {
        size_t cap = p->ocap ? p->ocap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *nb = realloc(p->obuf, cap);
        if (nb == NULL)
            return DLG_ENOMEM;
        p->obuf = nb;
        p->ocap = cap;
    }
    uint8_t *h = p->obuf + p->olen;
    if (!p->o->websocket) {
        dlg_frame_put_header(h, (uint32_t)n);
    } else {
        h[0] = 0x82; /* FIN, binary */
        if (n < 126) {
            h[1] = (uint8_t)(0x80 | n);
        } else if (n < 65536) {
            h[1] = 0x80 | 126;
            h[2] = (uint8_t)(n >> 8);
            h[3] = (uint8_t)n;
        } else {
            h[1] = 0x80 | 127;
            for (int i = 0; i < 8; i++)
                h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        }
        memset(h + hdr - 4, 0, 4); /* the mask key: zero, so the payload is as packed */
    }
    if (protobuf_c_message_pack(&f->base, h + hdr) != n)
        return DLG_EINTERNAL;
    p->olen = need;
    uv_prepare_start(&p->flush, on_flush);
    return 0;
}

int bench_plain_trigger(bench_plain *p, const char *event, const void *data, size_t len) {
    if (p->phase != PH_READY)
        return DLG_ESTATE;
    if (p->pending >= p->o->max_pending)
        return DLG_EFULL;
    Dialogue__V1__Trigger t = DIALOGUE__V1__TRIGGER__INIT;
    t.room = (char *)p->o->room;
    t.event = (char *)event;
    t.data.data = (uint8_t *)data;
    t.data.len = len;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.msg_case = CF(TRIGGER);
    f.trigger = &t;
    int rc = queue_frame(p, &f);
    if (rc == 0)
        p->pending++;
    return rc;
}

/* ---- setup: Hello, Join, subscriptions ------------------------------------ */

static void send_setup(bench_plain *p, Dialogue__V1__ClientFrame *f, int phase) {
    if (queue_frame(p, f) != 0) {
        die(p, "out of memory for a setup request");
        return;
    }
    p->setup_id = f->request_id;
    p->phase = phase;
}

static void send_subs(bench_plain *p, int unsub) {
    Dialogue__V1__Subscribe s = DIALOGUE__V1__SUBSCRIBE__INIT;
    Dialogue__V1__Unsubscribe u = DIALOGUE__V1__UNSUBSCRIBE__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    if (unsub) {
        u.room = (char *)p->o->room;
        u.all = 1;
        f.msg_case = CF(UNSUBSCRIBE);
        f.unsubscribe = &u;
    } else {
        s.room = (char *)p->o->room;
        s.all = 1;
        f.msg_case = CF(SUBSCRIBE);
        f.subscribe = &s;
    }
    send_setup(p, &f, PH_SUBS);
}

static void become_ready(bench_plain *p) {
    p->phase = PH_READY;
    uv_timer_stop(&p->timer);
    p->cbs->ready(p->ud);
}

static void on_setup_reply(bench_plain *p, const Dialogue__V1__ServerFrame *f) {
    char why[600];
    if (f->msg_case == SF(ERROR)) {
        snprintf(why, sizeof(why), "%s in room %s refused: %s: %s",
                 p->phase == PH_HELLO ? "Hello" : p->phase == PH_JOIN ? "join" : "subscription",
                 p->o->room, dlg_status_name((int)f->error->code), f->error->message);
        die(p, why);
        return;
    }
    if (p->phase == PH_HELLO && f->msg_case == SF(WELCOME)) {
        if (p->role == BENCH_ROLE_IDLE) {
            become_ready(p);
            return;
        }
        Dialogue__V1__Join j = DIALOGUE__V1__JOIN__INIT;
        j.room = (char *)p->o->room;
        Dialogue__V1__ClientFrame jf = DIALOGUE__V1__CLIENT_FRAME__INIT;
        jf.msg_case = CF(JOIN);
        jf.join = &j;
        send_setup(p, &jf, PH_JOIN);
        return;
    }
    if (f->msg_case != SF(JOINED) || p->phase == PH_HELLO) {
        snprintf(why, sizeof(why), "protocol error: unexpected reply %d from %s during setup",
                 (int)f->msg_case, p->peer);
        die(p, why);
        return;
    }
    if (p->phase == PH_SUBS) {
        become_ready(p);
        return;
    }
    const Dialogue__V1__Joined *j = f->joined;
    int all = 0;
    for (size_t i = 0; i < j->n_subscriptions; i++)
        if (strcmp(j->subscriptions[i], "*") == 0)
            all = 1;
    if (p->role == BENCH_ROLE_SUB && !all)
        send_subs(p, 0);
    else if (p->role == BENCH_ROLE_PUB && j->n_subscriptions > 0)
        send_subs(p, 1);
    else
        become_ready(p);
}

/* ---- reading -------------------------------------------------------------- */

static void answer_ping(bench_plain *p, uint64_t nonce) {
    Dialogue__V1__Pong m = DIALOGUE__V1__PONG__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.nonce = nonce;
    f.msg_case = CF(PONG);
    f.pong = &m;
    if (queue_frame(p, &f) != 0)
        die(p, "out of memory answering a heartbeat");
}

/* Returns non-zero to stop decoding (connection gone). */
static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    bench_plain *p = ctx;
    char why[600];
    p->arena_used = 0;
    Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(&p->alloc, len, body);
    if (f == NULL) {
        snprintf(why, sizeof(why), "protocol error: a %zu-byte frame from %s does not decode",
                 len, p->peer);
        die(p, why);
        return 1;
    }
    if (f->msg_case == SF(EVENT)) {
        const Dialogue__V1__Event *e = f->event;
        if (p->phase == PH_READY)
            p->cbs->event(p->ud, e->event, e->data.data, e->data.len, e->seq);
    } else if (f->msg_case == SF(PING)) {
        answer_ping(p, f->ping->nonce);
    } else if (f->request_id != 0 && f->request_id == p->setup_id && p->phase != PH_READY) {
        on_setup_reply(p, f);
    } else if (f->request_id != 0 && p->phase == PH_READY &&
               (f->msg_case == SF(ACK) || f->msg_case == SF(ERROR))) {
        if (p->pending > 0)
            p->pending--;
        if (f->msg_case == SF(ACK))
            p->cbs->acked(p->ud, 0, "");
        else
            p->cbs->acked(p->ud, (int)f->error->code, f->error->message);
    } else if (f->msg_case == SF(ERROR)) {
        snprintf(p->server_error, sizeof(p->server_error), "%s: %s",
                 dlg_status_name((int)f->error->code), f->error->message);
    } else if (f->msg_case == SF(LEFT)) {
        snprintf(why, sizeof(why), "removed from room %s: %s", f->left->room, f->left->reason);
        die(p, why);
    }
    dialogue__v1__server_frame__free_unpacked(f, &p->alloc);
    return p->phase == PH_DEAD;
}

/* WebSocket input: the 101, then frames; each binary message is one
 * frame body for on_frame. 0, or a DLG_E* code (the peer dies). */
static int ws_feed(bench_plain *p, const uint8_t *data, size_t len) {
    char why[300];
    if (!p->ws_open) {
        size_t room = sizeof(p->ws_head) - 1 - p->ws_head_len;
        size_t n = len < room ? len : room;
        memcpy(p->ws_head + p->ws_head_len, data, n);
        p->ws_head_len += n;
        p->ws_head[p->ws_head_len] = '\0';
        char *end = strstr(p->ws_head, "\r\n\r\n");
        if (end == NULL) {
            if (room == n)
                return DLG_EPROTO;
            return 0;
        }
        if (strncmp(p->ws_head, "HTTP/1.1 101 ", 13) != 0) {
            snprintf(why, sizeof(why), "%s refused the WebSocket upgrade: %.120s", p->peer,
                     p->ws_head);
            die(p, why);
            return 0;
        }
        p->ws_open = 1;
        size_t used = (size_t)(end + 4 - p->ws_head) - (p->ws_head_len - n);
        data += used;
        len -= used;
    }
    if (p->wsin_len + len > p->wsin_cap) {
        size_t cap = p->wsin_cap ? p->wsin_cap : READ_SIZE;
        while (cap < p->wsin_len + len)
            cap *= 2;
        uint8_t *nb = realloc(p->wsin, cap);
        if (nb == NULL)
            return DLG_ENOMEM;
        p->wsin = nb;
        p->wsin_cap = cap;
    }
    memcpy(p->wsin + p->wsin_len, data, len);
    p->wsin_len += len;
    size_t off = 0;
    while (p->wsin_len - off >= 2 && p->phase != PH_DEAD) {
        const uint8_t *h = p->wsin + off;
        uint64_t n = h[1] & 0x7f;
        size_t hl = 2;
        if (n == 126 || n == 127) {
            hl = n == 126 ? 4 : 10;
            if (p->wsin_len - off < hl)
                break;
            n = 0;
            for (size_t i = 2; i < hl; i++)
                n = (n << 8) | h[i];
        }
        if (n > MAX_IN_FRAME)
            return DLG_ETOOBIG;
        if (p->wsin_len - off < hl + n)
            break;
        unsigned op = h[0] & 0x0f;
        if (op == 2 && on_frame(p, h + hl, (size_t)n) != 0)
            return 0;
        if (op == 8) {
            unsigned code = n >= 2 ? ((unsigned)h[hl] << 8) | h[hl + 1] : 0;
            snprintf(why, sizeof(why), "%s closed the WebSocket (%u %.*s)", p->peer, code,
                     n >= 2 ? (int)(n - 2) : 0, (const char *)h + hl + 2);
            die(p, why);
            return 0;
        }
        off += hl + (size_t)n;
    }
    memmove(p->wsin, p->wsin + off, p->wsin_len - off);
    p->wsin_len -= off;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    bench_plain *p = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)p->rbuf, sizeof(p->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    bench_plain *p = s->data;
    char why[300];
    (void)buf;
    if (p->phase == PH_DEAD || nread == 0)
        return;
    if (nread < 0) {
        snprintf(why, sizeof(why), "%s: %s", p->peer,
                 nread == UV_EOF ? "connection closed by the server" : uv_strerror((int)nread));
        die(p, why);
        return;
    }
    int rc = p->o->websocket ? ws_feed(p, p->rbuf, (size_t)nread)
                             : dlg_frame_dec_feed(&p->dec, p->rbuf, (size_t)nread, on_frame, p, NULL);
    if (rc < 0 && p->phase != PH_DEAD) {
        snprintf(why, sizeof(why), "reading frames from %s: %s", p->peer, dlg_strerror(rc));
        die(p, why);
    }
}

static void on_connect(uv_connect_t *req, int status) {
    bench_plain *p = req->data;
    char why[300];
    if (p->phase == PH_DEAD)
        return;
    if (status < 0) {
        snprintf(why, sizeof(why), "connect to %s: %s", p->peer, uv_strerror(status));
        die(p, why);
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    if (uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) != 0) {
        snprintf(why, sizeof(why), "read from %s failed", p->peer);
        die(p, why);
        return;
    }
    if (p->o->websocket) {
        /* The upgrade goes first; Hello follows in the same write (the
         * daemon reads what comes after the request as WebSocket). */
        static const char req[] = "GET /v1/ws HTTP/1.1\r\nHost: bench\r\n"
                                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: ZGlhbG9ndWUtYmVuY2gtMQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Protocol: dialogue.v1\r\n\r\n";
        size_t rl = sizeof(req) - 1;
        uint8_t *nb = realloc(p->obuf, rl + 4096);
        if (nb == NULL) {
            die(p, "out of memory");
            return;
        }
        p->obuf = nb;
        p->ocap = rl + 4096;
        memcpy(p->obuf, req, rl);
        p->olen = rl;
    }
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = (char *)(p->o->token ? p->o->token : "");
    h.client_name = "dialogue-bench";
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.msg_case = CF(HELLO);
    f.hello = &h;
    send_setup(p, &f, PH_HELLO);
}

static void on_timeout(uv_timer_t *t) {
    bench_plain *p = t->data;
    char why[200];
    snprintf(why, sizeof(why), "setup with %s not done within %u ms", p->peer,
             p->o->connect_timeout_ms);
    die(p, why);
}

int bench_plain_start(bench_plain *p) {
    if (p->phase != PH_IDLE)
        return DLG_ESTATE;
    p->creq.data = p;
    int rc = uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&p->addr, on_connect);
    if (rc != 0)
        return DLG_EIO;
    p->phase = PH_CONNECTING;
    uv_timer_start(&p->timer, on_timeout, p->o->connect_timeout_ms, 0);
    return 0;
}
