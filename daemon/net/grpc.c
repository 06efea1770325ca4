/* grpc.c: what a gRPC call of proto/dialogue/v1/service.proto means: the
 * method a :path names, the session behind each stream (an implicit Hello
 * with the authorization metadata for every method but Session), the
 * ClientFrames a call becomes (handed to srv->up.frame as any client's
 * are), and the session's ServerFrames turned into the call's response
 * messages and status. The frames are wrapped and unwrapped at the
 * protobuf wire level: a request message is the body of a ClientFrame
 * field as it is, an Event is the bytes of its ServerFrame field, so the
 * fan-out's shared frames reach gRPC clients without being decoded. */
#include "h2_int.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/v1/service.pb-c.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

#define ST(x) DIALOGUE__V1__STATUS__##x

/* Shared unary sessions per connection (distinct credentials); past it
 * the one used longest ago goes. */
#define GRPC_MAX_USESS 8
/* A shared unary session unused this long is closed by the sweep. */
#define GRPC_USESS_IDLE_MS 60000

/* ServerFrame and ClientFrame field numbers (protocol.proto). */
enum {
    SF_WELCOME = 2, SF_JOINED = 3, SF_LEFT = 4, SF_EVENT = 5, SF_ACK = 6, SF_ERROR = 7,
    SF_ROOMS = 8, SF_HISTORY_BATCH = 9, SF_SCHEMA = 11, SF_GAP = 13,
};
enum {
    CF_HELLO = 2, CF_JOIN = 3, CF_SUBSCRIBE = 5, CF_UNSUBSCRIBE = 6, CF_TRIGGER = 7,
    CF_LIST_ROOMS = 8, CF_HISTORY = 9, CF_GET_SCHEMA = 11,
};

/* The session's own close reason when the client ended a Session stream:
 * the call then ends OK whatever the last frame was. */
static const char client_ended[] = "client ended the stream";

/* ---- protobuf wire ------------------------------------------------------ */

static int varint(pbw *r, uint64_t *v) {
    uint64_t x = 0;
    for (int s = 0; s < 64 && r->p < r->end; s += 7) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int pbw_next(pbw *r, uint32_t *field, int *wt, uint64_t *v, const uint8_t **b, size_t *n) {
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (varint(r, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    *v = 0;
    *b = NULL;
    *n = 0;
    switch (*wt) {
    case 0:
        return varint(r, v) == 0 ? 1 : -1;
    case 1:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (varint(r, &len) != 0 || len > (uint64_t)(r->end - r->p))
            return -1;
        *b = r->p;
        *n = (size_t)len;
        r->p += len;
        return 1;
    }
    }
    return -1;
}

/* A ServerFrame (b: header + body): its request id and the field of its
 * message. 0, or -1 when it is not one. */
static int frame_msg(const dlg_buf *b, uint64_t *rid, uint32_t *field, const uint8_t **p,
                     size_t *n) {
    pbw r = {b->data + DLG_FRAME_HDR, b->data + b->len};
    uint32_t f;
    int wt;
    uint64_t v;
    const uint8_t *q;
    size_t m;
    int k;
    *rid = 0;
    *field = 0;
    while ((k = pbw_next(&r, &f, &wt, &v, &q, &m)) == 1) {
        if (f == 1 && wt == 0)
            *rid = v;
        else if (wt == 2) {
            *field = f;
            *p = q;
            *n = m;
        }
    }
    return k == 0 && *field ? 0 : -1;
}

/* The string field f of message [p, p+n) into out (cut to cap). */
static void str_field(const uint8_t *p, size_t n, uint32_t f, char *out, size_t cap) {
    if (p == NULL) /* an empty message may come without bytes */
        p = (const uint8_t *)"";
    pbw r = {p, p + n};
    uint32_t g;
    int wt;
    uint64_t v;
    const uint8_t *q;
    size_t m;
    out[0] = '\0';
    while (pbw_next(&r, &g, &wt, &v, &q, &m) == 1)
        if (g == f && wt == 2)
            snprintf(out, cap, "%.*s", (int)(m < cap ? m : cap - 1), (const char *)q);
}

/* The varint field f of message [p, p+n); 0 when absent. */
static uint64_t int_field(const uint8_t *p, size_t n, uint32_t f) {
    if (p == NULL) /* an empty message may come without bytes */
        p = (const uint8_t *)"";
    pbw r = {p, p + n};
    uint32_t g;
    int wt;
    uint64_t v, out = 0;
    const uint8_t *q;
    size_t m;
    while (pbw_next(&r, &g, &wt, &v, &q, &m) == 1)
        if (g == f && wt == 0)
            out = v;
    return out;
}

/* Is the string field f of [p, p+n) equal to s? */
static int str_is(const uint8_t *p, size_t n, uint32_t f, const char *s) {
    if (p == NULL) /* an empty message may come without bytes */
        p = (const uint8_t *)"";
    pbw r = {p, p + n};
    uint32_t g;
    int wt;
    uint64_t v;
    const uint8_t *q;
    size_t m;
    size_t sl = strlen(s);
    int found = sl == 0;
    while (pbw_next(&r, &g, &wt, &v, &q, &m) == 1)
        if (g == f && wt == 2)
            found = m == sl && memcmp(q, s, m) == 0;
    return found;
}

/* ---- methods ------------------------------------------------------------ */

int grpc_method(const uint8_t *path, size_t len) {
    static const struct {
        const char *path;
        int m;
    } tab[] = {
        {"/dialogue.v1.Dialogue/Session", GRPC_SESSION},
        {"/dialogue.v1.Dialogue/Subscribe", GRPC_SUBSCRIBE},
        {"/dialogue.v1.Dialogue/Trigger", GRPC_TRIGGER},
        {"/dialogue.v1.Dialogue/ListRooms", GRPC_LIST_ROOMS},
        {"/dialogue.v1.Dialogue/History", GRPC_HISTORY},
        {"/dialogue.v1.Dialogue/GetSchema", GRPC_GET_SCHEMA},
        {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", GRPC_REFLECT_V1ALPHA},
        {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", GRPC_REFLECT_V1},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strlen(tab[i].path) == len && memcmp(tab[i].path, path, len) == 0)
            return tab[i].m;
    return GRPC_UNKNOWN;
}

/* ---- frames to a session -------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* Hands sess one ClientFrame body as a client's frame (srv->up.frame).
 * Returns what that did (non-zero: the session stops reading), or 1 when
 * the session is closing. */
static int deliver(dlg_conn *sess, const uint8_t *body, size_t n) {
    if (sess->state == DLG_CONN_CLOSING || sess->close_after_flush)
        return 1;
    sess->io_recent = 1;
    int rc = sess->srv->up.frame(sess, body, n);
    /* The first session that says Welcome makes its connection ready
     * (heartbeats; it leaves the count of connections before Welcome). */
    dlg_conn *p = sess->parent;
    if (sess->state == DLG_CONN_READY && p->state == DLG_CONN_HELLO && !p->close_after_flush) {
        p->state = DLG_CONN_READY;
        dlg_conn_start_heartbeat(p);
    }
    return rc;
}

/* deliver for ClientFrame{request_id: rid, <field>: body}, built at the
 * wire level around the bytes the client sent. 1 also when out of
 * memory. */
static int send_frame(dlg_conn *sess, uint64_t rid, uint32_t field, const uint8_t *body,
                      size_t n) {
    if (sess->state == DLG_CONN_CLOSING || sess->close_after_flush)
        return 1;
    uint8_t small[512];
    size_t cap = 1 + 10 + 5 + 10 + n;
    uint8_t *buf = cap <= sizeof(small) ? small : dlg_malloc(cap);
    if (buf == NULL)
        return 1;
    size_t k = 0;
    buf[k++] = 0x08;
    k += put_varint(buf + k, rid);
    k += put_varint(buf + k, (uint64_t)field << 3 | 2);
    k += put_varint(buf + k, n);
    if (n)
        memcpy(buf + k, body, n);
    k += n;
    int rc = deliver(sess, buf, k);
    if (buf != small)
        free(buf);
    return rc;
}

/* send_frame for a message protobuf-c packs. */
static int send_msg(dlg_conn *sess, uint64_t rid, uint32_t field, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t small[1024];
    uint8_t *b = n <= sizeof(small) ? small : dlg_malloc(n);
    if (b == NULL)
        return 1;
    protobuf_c_message_pack(m, b);
    int rc = send_frame(sess, rid, field, b, n);
    if (b != small)
        free(b);
    return rc;
}

/* The implicit Hello of every method but Session: the token from
 * `authorization: Bearer <token>`, the user-agent as client name. */
static void hello(dlg_conn *sess, const char *auth, const char *agent) {
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = (char *)(agent ? agent : "grpc");
    h.token = "";
    if (auth != NULL) {
        if (strncasecmp(auth, "Bearer ", 7) == 0)
            h.token = (char *)auth + 7;
        else
            h.token = (char *)auth; /* refused as a malformed token, saying so */
    }
    send_msg(sess, 1, CF_HELLO, &h.base);
}

static int join(dlg_conn *sess, uint64_t rid, const char *room, int recover, uint64_t epoch,
                uint64_t since) {
    Dialogue__V1__Join j = DIALOGUE__V1__JOIN__INIT;
    j.room = (char *)room;
    j.recover = recover;
    j.epoch = epoch;
    j.since_seq = since;
    return send_msg(sess, rid, CF_JOIN, &j.base);
}

static int sub(dlg_conn *sess, uint64_t rid, const char *room, char **events, size_t n,
               int all, int unsub) {
    Dialogue__V1__Subscribe s = DIALOGUE__V1__SUBSCRIBE__INIT;
    s.room = (char *)room;
    s.events = events;
    s.n_events = n;
    s.all = all;
    return send_msg(sess, rid, unsub ? CF_UNSUBSCRIBE : CF_SUBSCRIBE, &s.base);
}

static void error_of(const uint8_t *p, size_t n, int *code, char *msg, size_t cap) {
    *code = (int)int_field(p, n, 1);
    str_field(p, n, 2, msg, cap);
}

/* ---- messages out ----------------------------------------------------------- */

/* Writes message [p, p+n) as a Length-Prefixed-Message, from st->cursor
 * on, into dst; *done when its last byte is written (the cursor is then
 * 0 again). */
static size_t put_msg(h2_stream *st, const uint8_t *p, size_t n, uint8_t *dst, size_t cap,
                      int *done) {
    uint8_t hdr[DLG_FRAME_HDR];
    dlg_frame_put_header(hdr, (uint32_t)n);
    size_t total = DLG_FRAME_HDR + n, w = 0;
    while (st->cursor < total && w < cap) {
        size_t k;
        if (st->cursor < DLG_FRAME_HDR) {
            k = DLG_FRAME_HDR - st->cursor;
            if (k > cap - w)
                k = cap - w;
            memcpy(dst + w, hdr + st->cursor, k);
        } else {
            size_t at = st->cursor - DLG_FRAME_HDR;
            k = n - at;
            if (k > cap - w)
                k = cap - w;
            memcpy(dst + w, p + at, k);
        }
        w += k;
        st->cursor += (uint32_t)k;
    }
    *done = st->cursor == total;
    if (*done)
        st->cursor = 0;
    return w;
}

/* Does the Subscribe stream st want Event [p, p+n)? Its room, and its
 * filter's names when it has one (the session is subscribed to them; the
 * history batch of a Join is not filtered by them). */
static int wanted(const h2_stream *st, const uint8_t *p, size_t n) {
    if (!str_is(p, n, 1, st->room))
        return 0;
    if (st->filter == NULL)
        return 1;
    for (size_t i = 0; i < st->n_filter; i++)
        if (strcmp(st->filter[i], "*") == 0 || str_is(p, n, 2, st->filter[i]))
            return 1;
    return 0;
}

static void end_with(h2_stream *st, int status, const char *msg) {
    if (st->end_status >= 0)
        return;
    st->end_status = status;
    free(st->end_msg);
    st->end_msg = dlg_strdup(msg);
}

/* An item staged whole or part: its offset as outq.c counts it (the
 * translation's own position is st->cursor). */
static void advance(dlg_outq_item *it, int done) {
    if (done)
        it->off = (uint32_t)it->buf->len;
    else if (it->off == 0)
        it->off = 1;
}

static size_t put_subscribe(h2_stream *st, dlg_outq_item *it, uint8_t *dst, size_t cap) {
    uint64_t rid;
    uint32_t field;
    const uint8_t *p = NULL;
    size_t n = 0;
    int done = 1;
    if (frame_msg(it->buf, &rid, &field, &p, &n) != 0) {
        advance(it, 1);
        return 0;
    }
    char msg[512], room[256];
    switch (field) {
    case SF_EVENT:
        if (!wanted(st, p, n))
            break;
        {
            size_t w = put_msg(st, p, n, dst, cap, &done);
            advance(it, done);
            return w;
        }
    case SF_ERROR: {
        int code;
        error_of(p, n, &code, msg, sizeof(msg));
        end_with(st, code ? code : ST(UNKNOWN), msg);
        return 0; /* left in the queue: nothing after it is sent */
    }
    case SF_LEFT:
        str_field(p, n, 1, room, sizeof(room));
        if (strcmp(room, st->room) != 0)
            break;
        str_field(p, n, 2, msg, sizeof(msg));
        {
            char m[1024];
            snprintf(m, sizeof(m), "room %s: left (%.500s)", room, msg);
            end_with(st, ST(NOT_FOUND), m);
        }
        return 0;
    case SF_GAP:
        str_field(p, n, 1, room, sizeof(room));
        if (strcmp(room, st->room) != 0)
            break;
        str_field(p, n, 4, msg, sizeof(msg));
        {
            char m[1024];
            snprintf(m, sizeof(m), "room %s: events may be missing after seq %llu (%.500s): "
                                   "subscribe again from your last position",
                     room, (unsigned long long)int_field(p, n, 3), msg);
            end_with(st, ST(DATA_LOSS), m);
        }
        return 0;
    }
    advance(it, 1); /* not for this call: passed over */
    return 0;
}

static size_t put_copy(h2_stream *st, dlg_outq_item *it, uint8_t *dst, size_t cap) {
    if (it->off == 0 && st->method == GRPC_SESSION) {
        /* The status a Session ends with is the Error it was closed with. */
        uint64_t rid;
        uint32_t field;
        const uint8_t *p;
        size_t n;
        st->last_err = frame_msg(it->buf, &rid, &field, &p, &n) == 0 && field == SF_ERROR;
        if (st->last_err) {
            char msg[512];
            error_of(p, n, &st->err_status, msg, sizeof(msg));
            free(st->err_msg);
            st->err_msg = dlg_strdup(msg);
        }
    }
    size_t k = it->buf->len - it->off;
    if (k > cap)
        k = cap;
    memcpy(dst, it->buf->data + it->off, k);
    it->off += (uint32_t)k;
    return k;
}

size_t grpc_put(dlg_conn *sess, dlg_outq_item *it, uint8_t *dst, size_t cap) {
    h2_stream *st = sess->codec_st;
    if (st == NULL || st->kind != H2_OWNER_STREAM) {
        advance(it, 1);
        return 0;
    }
    if (st->method == GRPC_SUBSCRIBE)
        return put_subscribe(st, it, dst, cap);
    return put_copy(st, it, dst, cap);
}

static void drop_held(h2_stream *st, dlg_buf **b, uint64_t n) {
    if (*b == NULL)
        return;
    dlg_buf_unref(*b);
    *b = NULL;
    st->h->held -= n;
}

size_t grpc_put_own(h2_stream *st, uint8_t *dst, size_t cap) {
    size_t w = 0;
    int done;
    if (st->resp != NULL) {
        w = put_msg(st, st->resp->data + st->resp_off, st->resp_len, dst, cap, &done);
        if (done)
            drop_held(st, &st->resp, st->resp->len);
        return w;
    }
    /* A HistoryBatch before the live events: its Events one by one. */
    while (st->stash != NULL && w < cap) {
        const dlg_buf *b = st->stash;
        uint64_t rid;
        uint32_t field;
        const uint8_t *bp;
        size_t bn;
        if (frame_msg(b, &rid, &field, &bp, &bn) != 0 || st->stash_pos >= bn) {
            drop_held(st, &st->stash, b->len);
            break;
        }
        pbw r = {bp + st->stash_pos, bp + bn};
        uint32_t f;
        int wt;
        uint64_t v;
        const uint8_t *p;
        size_t n;
        if (pbw_next(&r, &f, &wt, &v, &p, &n) != 1) {
            drop_held(st, &st->stash, b->len);
            break;
        }
        if (f != 2 || wt != 2 || !wanted(st, p, n)) {
            st->stash_pos = (size_t)(r.p - bp);
            continue;
        }
        w += put_msg(st, p, n, dst + w, cap - w, &done);
        if (!done)
            break;
        st->stash_pos = (size_t)(r.p - bp);
    }
    return w;
}

int grpc_end_status(h2_stream *st, const char **msg) {
    dlg_conn *s = st->sess;
    *msg = NULL;
    if (s != NULL && s->close_reason == client_ended)
        return ST(OK);
    if (st->last_err && st->err_status) {
        *msg = st->err_msg;
        return st->err_status;
    }
    if (s != NULL && s->close_status) {
        *msg = s->close_reason;
        return s->close_status;
    }
    return ST(OK);
}

/* ---- Subscribe ---------------------------------------------------------------- */

static void room_list_add(char ***v, size_t *n, const char *room) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], room) == 0)
            return;
    char **nv = dlg_realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL)
        return;
    *v = nv;
    if ((nv[*n] = dlg_strdup(room)) != NULL)
        (*n)++;
}

static void room_list_free(char ***v, size_t *n) {
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

/* The setup of st has failed with an Error: the call ends with it. */
static void setup_failed(h2_stream *st, int code, const char *msg) {
    st->failed = 1;
    if (st->sess != NULL) {
        h2_close_later(st->h, st->sess, "call refused");
        st->sess = NULL;
    }
    h2_finish(st, code ? code : ST(UNKNOWN), msg);
}

static void stash(h2_stream *st, dlg_buf *b) {
    if (st->stash)
        drop_held(st, &st->stash, st->stash->len);
    st->stash = dlg_buf_ref(b);
    st->stash_pos = 0;
    st->h->held += b->len;
}

/* The setup is over: response headers, with where the room stands. */
static void setup_done(h2_stream *st) {
    st->setup = 1;
    room_list_free(&st->others, &st->n_others);
    char ep[24], sq[24];
    snprintf(ep, sizeof(ep), "%llu", (unsigned long long)st->epoch);
    snprintf(sq, sizeof(sq), "%llu", (unsigned long long)st->seq);
    nghttp2_nv hv[3] = {
        {(uint8_t *)"dialogue-epoch", (uint8_t *)ep, 14, strlen(ep), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"dialogue-seq", (uint8_t *)sq, 12, strlen(sq), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"dialogue-recovery", (uint8_t *)(st->complete ? "complete" : "incomplete"),
         17, st->complete ? 8 : 10, NGHTTP2_NV_FLAG_NONE},
    };
    h2_respond(st, hv, st->recovering ? 3 : 2);
}

/* Takes what st's session queued during the setup (before events flow):
 * Welcome, the Joined and Errors that answer the setup's frames, the
 * history to deliver first. Stage may call it (no libuv, no up-calls). */
static void setup_take(h2_stream *st) {
    dlg_buf *b;
    while (!st->setup && !st->failed && st->sess != NULL &&
           (b = dlg_outq_take(st->sess)) != NULL) {
        uint64_t rid;
        uint32_t field;
        const uint8_t *p;
        size_t n;
        char msg[512], room[256];
        if (frame_msg(b, &rid, &field, &p, &n) != 0)
            field = 0;
        switch (field) {
        case SF_WELCOME: {
            pbw r = {p, p + n};
            uint32_t f;
            int wt;
            uint64_t v;
            const uint8_t *q;
            size_t m;
            while (pbw_next(&r, &f, &wt, &v, &q, &m) == 1) {
                if (f != 7 || wt != 2)
                    continue;
                str_field(q, m, 1, room, sizeof(room));
                if (strcmp(room, st->room) == 0) {
                    st->member = 1;
                    st->epoch = int_field(q, m, 3);
                    st->seq = int_field(q, m, 4);
                } else {
                    room_list_add(&st->others, &st->n_others, room);
                }
            }
            break;
        }
        case SF_JOINED:
            str_field(p, n, 1, room, sizeof(room));
            if (strcmp(room, st->room) == 0) {
                st->epoch = int_field(p, n, 3);
                st->seq = int_field(p, n, 4);
                if (rid && rid == st->rid_final) {
                    st->want_batch = int_field(p, n, 6) != 0;
                    if (!st->want_batch)
                        setup_done(st);
                }
            }
            break;
        case SF_HISTORY_BATCH:
            if (str_is(p, n, 1, st->room)) {
                stash(st, b);
                if (st->want_batch && rid == st->rid_final) {
                    st->complete = int_field(p, n, 3) != 0;
                    setup_done(st);
                }
            }
            break;
        case SF_ERROR: {
            int code;
            error_of(p, n, &code, msg, sizeof(msg));
            if (rid == st->rid_join && code == ST(ALREADY_EXISTS))
                break;
            setup_failed(st, code, msg);
            break;
        }
        }
        dlg_buf_unref(b);
    }
}

static void subscribe(h2_stream *st, const uint8_t *body, size_t len) {
    h2_conn *h = st->h;
    Dialogue__V1__SubscribeRequest *req = dialogue__v1__subscribe_request__unpack(NULL, len, body);
    if (req == NULL) {
        h2_finish(st, ST(INVALID_ARGUMENT), "malformed SubscribeRequest");
        return;
    }
    st->room = dlg_strdup(req->room ? req->room : "");
    st->recovering = req->after != NULL;
    if (req->n_events > 0) {
        st->filter = dlg_calloc(req->n_events, sizeof(char *));
        for (size_t i = 0; st->filter && i < req->n_events; i++)
            if ((st->filter[st->n_filter] = dlg_strdup(req->events[i])) != NULL)
                st->n_filter++;
    }
    uint64_t epoch = req->after ? req->after->epoch : 0, since = req->after ? req->after->seq : 0;
    size_t n_events = req->n_events;
    dialogue__v1__subscribe_request__free_unpacked(req, NULL);
    dlg_conn *s = dlg_conn_new_session(h->c);
    if (st->room == NULL || (n_events > 0 && st->filter == NULL) || s == NULL) {
        if (s)
            dlg_conn_close(s, "out of memory");
        h2_finish(st, ST(INTERNAL), "out of memory");
        return;
    }
    s->codec_st = st;
    st->sess = s;
    hello(s, st->auth, st->agent);
    setup_take(st);
    uint64_t rid = 1;
    /* Events come from this room only: the others the identity is
     * auto-joined to stay joined (as for any client) but send nothing. */
    for (size_t i = 0; i < st->n_others && st->sess && !st->failed; i++) {
        sub(s, ++rid, st->others[i], NULL, 0, 1, 1);
        setup_take(st);
    }
    if (st->sess == NULL || st->failed)
        return;
    int has_filter = st->filter != NULL;
    int all = 0;
    for (size_t i = 0; i < st->n_filter; i++)
        all |= strcmp(st->filter[i], "*") == 0;
    if (!st->member) {
        /* Without a filter this Join ends the setup (and recovers); with
         * one, the subscriptions are set first. */
        st->rid_join = ++rid;
        if (!has_filter)
            st->rid_final = rid;
        join(s, rid, st->room, st->recovering && !has_filter, epoch, since);
        setup_take(st);
    }
    if (has_filter && st->sess && !st->failed) {
        sub(s, ++rid, st->room, NULL, 0, 1, 1);
        setup_take(st);
        if (st->sess && !st->failed) {
            sub(s, ++rid, st->room, all ? NULL : st->filter, all ? 0 : st->n_filter, all, 0);
            setup_take(st);
        }
    }
    if (st->sess == NULL || st->failed)
        return;
    if (st->recovering && (has_filter || st->member)) {
        /* A recovery Join from a member: its history for the
         * subscriptions just set (dispatch.c, join_now). */
        st->rid_final = ++rid;
        join(s, rid, st->room, 1, epoch, since);
        setup_take(st);
    } else if (!st->setup && st->rid_final == 0) {
        setup_done(st);
    }
}

/* ---- unary calls ---------------------------------------------------------------- */

static void usess_unlink(h2_usess *u) {
    h2_conn *h = u->h;
    for (h2_usess **pp = &h->usess; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            h->n_usess--;
            break;
        }
    }
    for (h2_stream *st = h->streams; st; st = st->next)
        if (st->us == u)
            st->us = NULL;
    room_list_free(&u->rooms, &u->n_rooms);
    free(u->auth);
    free(u->fail_msg);
    free(u);
}

/* u's session ended: its calls still waiting end with why it did. */
static void usess_end(h2_usess *u, int status, const char *msg) {
    for (h2_stream *st = u->h->streams; st; st = st->next)
        if (st->us == u)
            h2_finish(st, status, msg);
    if (u->sess != NULL) {
        h2_close_later(u->h, u->sess, "unary session ended");
        u->sess = NULL;
    }
    usess_unlink(u);
}

static h2_stream *usess_call(h2_usess *u, uint64_t rid) {
    for (h2_stream *st = u->h->streams; st; st = st->next)
        if (st->us == u && (rid == st->rid_u_join || rid == st->rid_u_unsub || rid == st->rid_u_final))
            return st;
    return NULL;
}

static int usess_has(const h2_usess *u, const char *room) {
    for (size_t i = 0; i < u->n_rooms; i++)
        if (strcmp(u->rooms[i], room) == 0)
            return 1;
    return 0;
}

static void room_list_del(char ***v, size_t *n, const char *room) {
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*v)[i], room) == 0) {
            free((*v)[i]);
            (*v)[i] = (*v)[--*n];
            return;
        }
    }
}

/* The response message of each method: its ServerFrame field. */
static uint32_t reply_field(int method) {
    switch (method) {
    case GRPC_TRIGGER: return SF_ACK;
    case GRPC_LIST_ROOMS: return SF_ROOMS;
    case GRPC_HISTORY: return SF_HISTORY_BATCH;
    case GRPC_GET_SCHEMA: return SF_SCHEMA;
    }
    return 0;
}

/* Routes u's replies to the calls they answer. Stage may call it. Returns
 * 1 when u is gone (freed). */
static int usess_pump(h2_usess *u) {
    dlg_buf *b;
    while (u->sess != NULL && (b = dlg_outq_take(u->sess)) != NULL) {
        uint64_t rid;
        uint32_t field;
        const uint8_t *p;
        size_t n;
        char msg[512], room[256];
        if (frame_msg(b, &rid, &field, &p, &n) != 0) {
            dlg_buf_unref(b);
            continue;
        }
        h2_stream *st = rid ? usess_call(u, rid) : NULL;
        if (rid == 0 || rid == 1) {
            /* The server's own (and the Hello's): how the session ends, a
             * room deleted under it. */
            if (field == SF_ERROR) {
                int code;
                error_of(p, n, &code, msg, sizeof(msg));
                u->fail_status = code;
                free(u->fail_msg);
                u->fail_msg = dlg_strdup(msg);
            } else if (field == SF_LEFT) {
                str_field(p, n, 1, room, sizeof(room));
                room_list_del(&u->rooms, &u->n_rooms, room);
            }
        } else if (st != NULL && rid == st->rid_u_join) {
            if (field == SF_JOINED) {
                room_list_add(&u->rooms, &u->n_rooms, st->room);
            } else if (field == SF_ERROR) {
                int code;
                error_of(p, n, &code, msg, sizeof(msg));
                if (code == ST(ALREADY_EXISTS))
                    room_list_add(&u->rooms, &u->n_rooms, st->room);
                else
                    h2_finish(st, code, msg);
            }
        } else if (st != NULL && rid == st->rid_u_final && st->end_status < 0) {
            if (field == SF_ERROR) {
                int code;
                error_of(p, n, &code, msg, sizeof(msg));
                h2_finish(st, code ? code : ST(UNKNOWN), msg);
            } else if (field == reply_field(st->method) && st->resp == NULL) {
                st->resp = dlg_buf_ref(b);
                st->resp_off = (uint32_t)(p - b->data);
                st->resp_len = (uint32_t)n;
                st->h->held += b->len;
                st->end_status = ST(OK);
                h2_respond(st, NULL, 0);
            }
        }
        dlg_buf_unref(b);
    }
    if (u->sess != NULL && (u->sess->close_after_flush || u->sess->in_doomed)) {
        usess_end(u, u->fail_status ? u->fail_status : ST(UNAVAILABLE),
                  u->fail_msg ? u->fail_msg : "session ended");
        return 1;
    }
    return 0;
}

/* The shared unary session for st's credentials: found, or made (its
 * implicit Hello said). NULL when it could not be: st was ended. */
static h2_usess *usess_get(h2_stream *st) {
    h2_conn *h = st->h;
    const char *auth = st->auth ? st->auth : "";
    uint64_t now = uv_now(h->c->srv->loop);
    for (h2_usess *u = h->usess; u; u = u->next) {
        if (u->sess != NULL && strcmp(u->auth, auth) == 0 && !u->sess->close_after_flush) {
            u->used_ms = now;
            return u;
        }
    }
    if (h->n_usess >= GRPC_MAX_USESS) {
        h2_usess *old = NULL;
        for (h2_usess *u = h->usess; u; u = u->next) {
            int busy = 0;
            for (h2_stream *s = h->streams; s && !busy; s = s->next)
                busy = s->us == u;
            if (!busy && (old == NULL || u->used_ms < old->used_ms))
                old = u;
        }
        if (old == NULL) {
            h2_finish(st, ST(RESOURCE_EXHAUSTED), "too many credentials in use on one connection");
            return NULL;
        }
        usess_end(old, ST(UNAVAILABLE), "session replaced");
    }
    h2_usess *u = dlg_calloc(1, sizeof(*u));
    dlg_conn *s = u ? dlg_conn_new_session(h->c) : NULL;
    if (u == NULL || s == NULL || (u->auth = dlg_strdup(auth)) == NULL) {
        if (s)
            dlg_conn_close(s, "out of memory");
        free(u);
        h2_finish(st, ST(INTERNAL), "out of memory");
        return NULL;
    }
    u->kind = H2_OWNER_USESS;
    u->h = h;
    u->sess = s;
    u->next_rid = 1; /* 1 is the Hello */
    u->used_ms = now;
    u->next = h->usess;
    h->usess = u;
    h->n_usess++;
    s->codec_st = u;
    hello(s, st->auth, st->agent);
    /* Welcome: the rooms it was joined to send it nothing. */
    dlg_buf *b;
    while (u->sess != NULL && (b = dlg_outq_take(s)) != NULL) {
        uint64_t rid;
        uint32_t field;
        const uint8_t *p;
        size_t n;
        if (frame_msg(b, &rid, &field, &p, &n) == 0 && field == SF_ERROR) {
            int code;
            char msg[512];
            error_of(p, n, &code, msg, sizeof(msg));
            h2_finish(st, code, msg);
            dlg_buf_unref(b);
            usess_end(u, code, msg);
            return NULL;
        }
        if (field == SF_WELCOME) {
            pbw r = {p, p + n};
            uint32_t f;
            int wt;
            uint64_t v;
            const uint8_t *q;
            size_t m;
            char room[256];
            while (pbw_next(&r, &f, &wt, &v, &q, &m) == 1) {
                if (f != 7 || wt != 2)
                    continue;
                str_field(q, m, 1, room, sizeof(room));
                room_list_add(&u->rooms, &u->n_rooms, room);
            }
        }
        dlg_buf_unref(b);
    }
    for (size_t i = 0; i < u->n_rooms && u->sess != NULL; i++)
        sub(s, ++u->next_rid, u->rooms[i], NULL, 0, 1, 1);
    if (usess_pump(u))
        return NULL;
    return u;
}

static void unary_call(h2_stream *st, const uint8_t *body, size_t len) {
    h2_usess *u = usess_get(st);
    if (u == NULL) {
        if (st->end_status < 0)
            h2_finish(st, ST(UNAVAILABLE), "session ended");
        return;
    }
    st->us = u;
    uint32_t field = st->method == GRPC_TRIGGER     ? CF_TRIGGER
                     : st->method == GRPC_HISTORY   ? CF_HISTORY
                     : st->method == GRPC_LIST_ROOMS ? CF_LIST_ROOMS
                                                     : CF_GET_SCHEMA;
    if (st->method == GRPC_TRIGGER || st->method == GRPC_HISTORY) {
        /* Only members trigger and read history: the call joins first (once
         * per session and room), subscribed to nothing. */
        char room[256];
        str_field(body, len, 1, room, sizeof(room));
        st->room = dlg_strdup(room);
        if (st->room == NULL) {
            h2_finish(st, ST(INTERNAL), "out of memory");
            return;
        }
        if (!usess_has(u, room)) {
            st->rid_u_join = ++u->next_rid;
            join(u->sess, st->rid_u_join, room, 0, 0, 0);
            if (usess_pump(u) || st->end_status >= 0)
                return;
            if (usess_has(u, room)) {
                st->rid_u_unsub = ++u->next_rid;
                sub(u->sess, st->rid_u_unsub, room, NULL, 0, 1, 1);
                if (usess_pump(u) || st->end_status >= 0)
                    return;
            }
        }
    }
    st->rid_u_final = ++u->next_rid;
    send_frame(u->sess, st->rid_u_final, field, body, len);
    usess_pump(u);
}

/* ---- the stream's life ---------------------------------------------------------- */

static void http_error(h2_stream *st, const char *status) {
    nghttp2_nv hv[] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
    };
    if (nghttp2_submit_response(st->h->ng, st->id, hv, 1, NULL) == 0)
        st->responded = st->trailers = 1;
}

void grpc_begin(h2_stream *st) {
    h2_conn *h = st->h;
    if (st->bad_method) {
        http_error(st, "405");
        return;
    }
    if (!st->ct_grpc) {
        http_error(st, "415");
        return;
    }
    if (st->method == GRPC_UNKNOWN) {
        char m[200];
        snprintf(m, sizeof(m), "unknown method %s", st->path ? st->path : "(no :path)");
        h2_finish(st, ST(UNIMPLEMENTED), m);
        return;
    }
    if (st->method == GRPC_SESSION || st->method == GRPC_REFLECT_V1ALPHA ||
        st->method == GRPC_REFLECT_V1) {
        dlg_conn *s = dlg_conn_new_session(h->c);
        if (s == NULL) {
            h2_finish(st, ST(INTERNAL), "out of memory");
            return;
        }
        s->codec_st = st;
        st->sess = s;
        if (st->method != GRPC_SESSION) {
            /* Reflection answers who may see the schemas: an implicit
             * Hello, its Welcome passed over. */
            hello(s, st->auth, st->agent);
            dlg_buf *b;
            while (st->sess != NULL && (b = dlg_outq_take(s)) != NULL) {
                uint64_t rid;
                uint32_t field;
                const uint8_t *p;
                size_t n;
                if (frame_msg(b, &rid, &field, &p, &n) == 0 && field == SF_ERROR) {
                    int code;
                    char msg[512];
                    error_of(p, n, &code, msg, sizeof(msg));
                    setup_failed(st, code, msg);
                }
                dlg_buf_unref(b);
            }
            if (st->sess == NULL)
                return;
        }
        h2_respond(st, NULL, 0);
    }
}

static int on_msg(void *ctx, const uint8_t *body, size_t len) {
    h2_stream *st = ctx;
    if (body == NULL) /* an empty message split from its header comes without bytes */
        body = (const uint8_t *)"";
    if (st->end_status >= 0 || st->trailers || st->reset)
        return 1;
    switch (st->method) {
    case GRPC_SESSION:
        return st->sess == NULL ? 1 : deliver(st->sess, body, len);
    case GRPC_SUBSCRIBE:
        if (st->got_msg)
            return 1;
        st->got_msg = 1;
        subscribe(st, body, len);
        return 1;
    case GRPC_REFLECT_V1ALPHA:
    case GRPC_REFLECT_V1:
        if (st->sess == NULL || st->sess->close_after_flush)
            return 1;
        if (dlg_reflect_request(st, body, len) != 0) {
            h2_close_later(st->h, st->sess, "malformed reflection request");
            st->sess = NULL;
            h2_finish(st, ST(INVALID_ARGUMENT), "malformed ServerReflectionRequest");
            return 1;
        }
        return 0;
    default:
        if (st->got_msg) {
            h2_finish(st, ST(INVALID_ARGUMENT), "a unary call takes one request message");
            return 1;
        }
        st->got_msg = 1;
        unary_call(st, body, len);
        return 1;
    }
}

/* Bytes a connection's streams may hold of requests not yet whole, all
 * together: more than one largest message at a time is not needed. */
static uint64_t held_cap(const h2_conn *h) {
    return 2 * (uint64_t)h->c->srv->opts.max_frame + 65536;
}

int grpc_data(h2_stream *st, const uint8_t *data, size_t len) {
    h2_conn *h = st->h;
    dlg_server *srv = h->c->srv;
    if (st->end_status >= 0 || st->trailers || st->reset || !st->began || st->method == GRPC_UNKNOWN)
        return 1;
    dlg_conn *s = st->sess;
    dlg_frame_dec *d = st->method == GRPC_SESSION ? (s ? &s->dec : NULL) : &st->dec;
    if (d == NULL)
        return 1;
    if (s != NULL) {
        s->io_recent = 1;
        s->in_bytes += len;
        if (st->method == GRPC_SESSION && s->state != DLG_CONN_READY &&
            s->in_bytes > srv->opts.pre_auth_max_bytes) {
            dlg_reply_error(s, 0, ST(RESOURCE_EXHAUSTED), "more than %u bytes before Welcome",
                            srv->opts.pre_auth_max_bytes);
            dlg_conn_close_after_flush(s, "pre-auth input budget exceeded");
            return 1;
        }
    }
    size_t before = dlg_frame_dec_pending(d);
    int rc = dlg_frame_dec_feed(d, data, len, on_msg, st, NULL);
    if (rc < 0) /* a decoder that failed is not fed again */
        dlg_frame_dec_free(d);
    size_t after = dlg_frame_dec_pending(d);
    h->in_buffered = h->in_buffered + after - before;
    char m[200];
    if (rc == DLG_ETOOBIG) {
        snprintf(m, sizeof(m), "message length %u is above the limit %u",
                 dlg_frame_dec_bad_len(d), d->max_frame);
        if (st->method == GRPC_SESSION && s != NULL) {
            /* As dialogue/1 says it, in the stream, then the status. */
            dlg_reply_error(s, 0, ST(RESOURCE_EXHAUSTED), "%s", m);
            dlg_conn_close_after_flush(s, "oversize frame");
            return 1;
        }
        h2_finish(st, ST(RESOURCE_EXHAUSTED), m);
        return 1;
    }
    if (rc == DLG_EFLAG) {
        if (st->sess != NULL) {
            h2_close_later(h, st->sess, "compressed message");
            st->sess = NULL;
        }
        h2_finish(st, ST(UNIMPLEMENTED),
                  "compressed messages are not supported (grpc-encoding identity only)");
        return 1;
    }
    if (h->in_buffered > held_cap(h)) {
        if (st->sess != NULL) {
            h2_close_later(h, st->sess, "request bytes over the limit");
            st->sess = NULL;
        }
        snprintf(m, sizeof(m), "more than %llu bytes of unfinished request messages on one "
                               "connection", (unsigned long long)held_cap(h));
        h->in_buffered -= after;
        dlg_frame_dec_free(d);
        h2_finish(st, ST(RESOURCE_EXHAUSTED), m);
        return 1;
    }
    return rc;
}

void grpc_request_end(h2_stream *st) {
    switch (st->method) {
    case GRPC_UNKNOWN:
        return;
    case GRPC_SESSION:
    case GRPC_REFLECT_V1ALPHA:
    case GRPC_REFLECT_V1:
        /* As EOF on a dialogue/1 connection: what was asked is answered,
         * then the call ends (OK). */
        if (st->sess != NULL && !st->sess->close_after_flush &&
            st->sess->state != DLG_CONN_CLOSING) {
            dlg_conn_close_after_flush(st->sess, client_ended);
            st->sess->close_reason = client_ended;
        }
        return;
    default:
        if (!st->got_msg)
            h2_finish(st, ST(INVALID_ARGUMENT), "the call ended without its request message");
    }
}

void grpc_pump(h2_conn *h) {
    for (h2_usess *u = h->usess, *next; u; u = next) {
        next = u->next;
        usess_pump(u);
    }
    for (h2_stream *st = h->streams; st; st = st->next)
        if (st->method == GRPC_SUBSCRIBE && !st->setup && st->sess != NULL) {
            setup_take(st);
            if (st->setup)
                h2_resume(st);
        }
}

void grpc_stream_free(h2_stream *st) {
    h2_conn *h = st->h;
    h->in_buffered -= dlg_frame_dec_pending(&st->dec);
    dlg_frame_dec_free(&st->dec);
    if (st->resp)
        drop_held(st, &st->resp, st->resp->len);
    if (st->stash)
        drop_held(st, &st->stash, st->stash->len);
    room_list_free(&st->filter, &st->n_filter);
    room_list_free(&st->others, &st->n_others);
    free(st->auth);
    free(st->agent);
    free(st->path);
    free(st->room);
    free(st->end_msg);
    free(st->err_msg);
    st->us = NULL;
}

void grpc_session_closing(dlg_conn *sess) {
    int *kind = sess->codec_st;
    dlg_conn *parent = sess->parent;
    int status = sess->close_status ? sess->close_status : ST(UNAVAILABLE);
    const char *why = sess->close_reason ? sess->close_reason : "session closed";
    if (*kind == H2_OWNER_STREAM) {
        h2_stream *st = (h2_stream *)kind;
        st->sess = NULL;
        h2_finish(st, status, why);
    } else {
        h2_usess *u = (h2_usess *)kind;
        u->sess = NULL;
        usess_end(u, u->fail_status ? u->fail_status : status, u->fail_msg ? u->fail_msg : why);
    }
    sess->codec_st = NULL;
    if (parent->state != DLG_CONN_CLOSING)
        dlg_conn_mark_dirty(parent);
}

void grpc_usess_close_all(h2_conn *h) {
    while (h->usess) {
        h2_usess *u = h->usess;
        dlg_conn *s = u->sess;
        u->sess = NULL;
        if (s != NULL) {
            s->codec_st = NULL;
            dlg_conn_close(s, "connection closed");
        }
        usess_unlink(u);
    }
}

/* Closes shared unary sessions nobody used for a while (the sweep). */
void grpc_usess_sweep(h2_conn *h, uint64_t now) {
    /* (usess_end only queues the session's close: h2_after does it.) */
    for (h2_usess *u = h->usess, *next; u; u = next) {
        next = u->next;
        int busy = 0;
        for (h2_stream *s = h->streams; s && !busy; s = s->next)
            busy = s->us == u;
        if (!busy && now - u->used_ms > GRPC_USESS_IDLE_MS)
            usess_end(u, ST(UNAVAILABLE), "idle");
    }
}
