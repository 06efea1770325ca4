/* h2_int.h: what the files of the HTTP/2 transport share, private to
 * daemon/net: h2.c (the nghttp2 session of one connection, its streams,
 * flow control and abuse limits), grpc.c (what a gRPC call means: methods,
 * the sessions behind streams, replies turned into responses) and
 * reflect.c (server reflection).
 *
 * A gRPC call is one HTTP/2 stream. Session, Subscribe and reflection
 * streams each have a session of their own (a dlg_conn with parent = the
 * connection, conn.h), so dispatch, rooms, fan-out and the caps see an
 * ordinary client; the unary calls of one connection share a session per
 * credential (h2_usess), whose replies are routed to their streams by
 * request id. */
#ifndef DLG_H2_INT_H
#define DLG_H2_INT_H

#include <nghttp2/nghttp2.h>

#include "conn_int.h"

/* The methods a :path names. */
enum {
    GRPC_UNKNOWN = 0,
    GRPC_SESSION,
    GRPC_SUBSCRIBE,
    GRPC_TRIGGER,
    GRPC_LIST_ROOMS,
    GRPC_HISTORY,
    GRPC_GET_SCHEMA,
    GRPC_REFLECT_V1ALPHA,
    GRPC_REFLECT_V1,
};

/* What a session's codec_st points at: a stream, or a shared unary
 * session. */
enum { H2_OWNER_STREAM = 1, H2_OWNER_USESS = 2 };

typedef struct h2_conn h2_conn;

/* The session the unary calls of one connection with one credential share
 * (the value of their authorization header): Hello once, each room joined
 * once, requests numbered by it. */
typedef struct h2_usess {
    int kind;                    /* H2_OWNER_USESS */
    h2_conn *h;
    dlg_conn *sess;              /* NULL once it closed */
    char *auth;                  /* the authorization value ("" = none) */
    char **rooms;                /* rooms it joined (subscribed to nothing) */
    size_t n_rooms;
    uint64_t next_rid;
    uint64_t used_ms;            /* uv_now of its last call */
    int fail_status;             /* why it ended, for calls still waiting */
    char *fail_msg;
    struct h2_usess *next;
} h2_usess;

typedef struct h2_stream {
    int kind;                    /* H2_OWNER_STREAM */
    h2_conn *h;
    int32_t id;
    int method;                  /* GRPC_* */
    struct h2_stream *prev, *next;
    /* Request headers. */
    char *auth;                  /* authorization value, NULL = none */
    char *agent;                 /* user-agent, NULL = none */
    uint32_t hdr_bytes;          /* the header list so far, as HTTP/2 counts it */
    uint64_t deadline;           /* uv_now ms of grpc-timeout; 0 = none */
    unsigned bad_method : 1;     /* :method was not POST */
    unsigned ct_grpc : 1;        /* content-type application/grpc[+proto|;...] */
    unsigned enc_other : 1;      /* grpc-encoding other than identity */
    unsigned req_done : 1;       /* the client ended its side (END_STREAM) */
    unsigned began : 1;          /* the request headers were taken */
    unsigned got_msg : 1;        /* a request message arrived (unary) */
    unsigned responded : 1;      /* response headers submitted */
    unsigned deferred : 1;       /* the data source said NGHTTP2_ERR_DEFERRED */
    unsigned trailers : 1;       /* trailers (or a trailers-only response) submitted */
    unsigned reset : 1;          /* RST_STREAM submitted */
    unsigned setup : 1;          /* Subscribe: joined and subscribed; events flow */
    unsigned want_batch : 1;     /* Subscribe: the final Joined said history follows */
    unsigned recovering : 1;     /* Subscribe: the request named a position */
    unsigned complete : 1;       /* Subscribe: the recovery batch was complete */
    unsigned last_err : 1;       /* Session: the last frame staged was an Error */
    dlg_frame_dec dec;           /* request messages (not Session: its session's) */
    /* The stream's own session (Session, Subscribe, reflection); NULL when
     * it has none or it closed. */
    dlg_conn *sess;
    char *path;                  /* :path, for messages */
    /* Subscribe. */
    char *room;
    char **others;               /* auto-joined rooms that are not ours (during setup) */
    size_t n_others;
    unsigned member : 1;         /* auto-joined to ours */
    unsigned failed : 1;         /* the setup was refused (the stream is ended) */
    char **filter;               /* NULL = the room's default subscriptions */
    size_t n_filter;
    uint64_t rid_join, rid_final; /* the first Join, the one that ends the setup */
    uint64_t epoch, seq;         /* from the last Joined of the room */
    dlg_buf *stash;              /* a HistoryBatch to deliver before live events */
    size_t stash_pos;            /* the next field of the batch body to look at */
    /* Unary calls. */
    h2_usess *us;
    uint64_t rid_u_join, rid_u_unsub, rid_u_final;
    /* One response message: LPM header + resp->data[resp_off, +resp_len). */
    dlg_buf *resp;
    uint32_t resp_off, resp_len;
    /* Translation cursor: bytes of the current message (LPM header
     * included) already written. */
    uint32_t cursor;
    /* How the call ends: end_status >= 0 once decided. */
    int end_status;
    char *end_msg;
    int err_status;              /* Session: the code of the last Error staged */
    char *err_msg;
} h2_stream;

struct h2_conn {
    dlg_conn *c;
    nghttp2_session *ng;
    uv_timer_t timer;            /* grpc-timeout deadlines */
    uint64_t timer_at;           /* uv_now it is armed for; 0 = not */
    int timer_open;
    /* stage's destination during one call */
    uint8_t *out;
    size_t out_cap, out_used;
    int partial;                 /* the last frame was cut at the end of a stage */
    h2_stream *streams;          /* open streams, newest first */
    uint32_t n_streams;
    h2_usess *usess;             /* shared unary sessions, newest first */
    uint32_t n_usess;
    /* Sessions whose stream ended: closed on the loop thread (h2_after). */
    dlg_conn **closing_v;
    const char **closing_why;
    size_t n_closing, cap_closing;
    uint64_t in_buffered;        /* request bytes held by stream decoders */
    uint64_t held;               /* bytes of replies held by streams (resp, stash) */
    /* Abuse limits (h2.c). */
    double budget;               /* control frames the peer may still send */
    uint64_t budget_at;          /* uv_now it was last refilled */
    uint64_t last_ping;          /* uv_now of the last PING received */
    uint32_t ping_strikes;
    int sent_since_ping;         /* DATA or HEADERS went out since that PING */
    const char *abuse;           /* set: cut the connection (GOAWAY, close) */
    uint32_t abuse_code;         /* its HTTP/2 error code */
    const char *fatal;           /* set: the session failed; close */
};

/* ---- h2.c, for grpc.c ------------------------------------------------- */

/* Submits st's response headers (200, application/grpc, and extra, n
 * pairs of name and value) with st's data source. */
void h2_respond(h2_stream *st, const nghttp2_nv *extra, size_t n);

/* Ends st with a gRPC status: trailers after what is queued for it, or a
 * trailers-only response before any; or RST_STREAM when its flow-control
 * window is shut, as nothing else could reach the client. Once. */
void h2_finish(h2_stream *st, int status, const char *msg);

/* Queues sess to be closed on the loop thread after this callback
 * (h2_after): it is detached from its stream or unary session first. */
void h2_close_later(h2_conn *h, dlg_conn *sess, const char *why);

/* Lets st's data source run again (new output, or its end). */
void h2_resume(h2_stream *st);

/* ---- grpc.c, for h2.c ------------------------------------------------- */

/* The method :path names (not NUL-terminated). */
int grpc_method(const uint8_t *path, size_t len);

/* st's request headers are complete (st->began): checks them, answers
 * what is wrong, makes the stream's session for Session and reflection. */
void grpc_begin(h2_stream *st);

/* Request bytes of st (DATA). Returns 0, or non-zero when st takes no more
 * (it was answered). */
int grpc_data(h2_stream *st, const uint8_t *data, size_t len);

/* The client ended its side of st. */
void grpc_request_end(h2_stream *st);

/* Routes what the connection's sessions queued since the last look (unary
 * replies; Subscribe setups). Touches only this connection: stage may call
 * it on a send thread. */
void grpc_pump(h2_conn *h);

/* dlg_outq_put_fn of a stream's session: its queue's ServerFrames as the
 * stream's gRPC messages. */
size_t grpc_put(dlg_conn *sess, dlg_outq_item *it, uint8_t *dst, size_t cap);

/* Writes st's stashed history and its unary response into dst: bytes
 * written. */
size_t grpc_put_own(h2_stream *st, uint8_t *dst, size_t cap);

/* st is gone (closed by nghttp2): what grpc.c holds for it is dropped. */
void grpc_stream_free(h2_stream *st);

/* A session of this connection is closing (its codec's closing hook): the
 * stream or unary calls behind it end. */
void grpc_session_closing(dlg_conn *sess);

/* The shared unary sessions: every one is closed (the connection is). */
void grpc_usess_close_all(h2_conn *h);

/* Closes shared unary sessions unused for a minute (the sweep). */
void grpc_usess_sweep(h2_conn *h, uint64_t now);

/* The status a stream whose session ended gracefully ends with. */
int grpc_end_status(h2_stream *st, const char **msg);

/* ---- reflect.c -------------------------------------------------------- */

/* One ServerReflectionRequest of st (whose session said Welcome): queues
 * its response to st's session. Returns 0, or a DLG_E* code when the
 * request is malformed (st is then ended INVALID_ARGUMENT by the caller). */
int dlg_reflect_request(h2_stream *st, const uint8_t *body, size_t len);

/* ---- protobuf wire helpers (grpc.c) ------------------------------------ */

/* A protobuf wire reader over [p, end): next field's number, wire type and,
 * for length-delimited fields, its bytes; for varints, its value. Returns
 * 1 for a field, 0 at the end, -1 for malformed input. */
typedef struct pbw {
    const uint8_t *p, *end;
} pbw;
int pbw_next(pbw *r, uint32_t *field, int *wt, uint64_t *v, const uint8_t **b, size_t *n);

#endif
