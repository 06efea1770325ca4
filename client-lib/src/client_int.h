/* client_int.h: the client's internal layout and the dlg__ functions its
 * source files share. Nothing here is part of the public API. */
#ifndef DLG_CLIENT_INT_H
#define DLG_CLIENT_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "dialogue/client.h"
#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_buf.h"
#include "dlg_frame.h"
#include "dlg_log.h"
#include "dlg_stream.h"
#include "dlg_tlsio.h"

#define DLG__ALPN "dialogue/1"

/* ---- allocation: the one choke point ----------------------------------- */
void *dlg__malloc(size_t n);
void *dlg__calloc(size_t n, size_t size);
void *dlg__realloc(void *p, size_t n);
char *dlg__strdup(const char *s);  /* NULL in, NULL out */
void dlg__free(void *p);

/* Copies the n strings of v into a new NULL-terminated array (one
 * allocation per string). 0 or DLG_ENOMEM (nothing left allocated). */
int dlg__strv_dup(const char *const *v, size_t n, char ***out);
void dlg__strv_free(char **v, size_t n);

/* ---- options ------------------------------------------------------------ */

/* The options that are plain values: a client keeps them as the caller
 * set them (once validated). */
typedef struct dlg__values {
    int reconnect;
    uint32_t backoff_min_ms, backoff_max_ms;
    double backoff_jitter;
    uint32_t connect_timeout_ms, request_timeout_ms;
    uint32_t max_frame, offline_queue, max_pending;
    int log_level;
} dlg__values;

/* The object behind the public opaque dlg_client_opts: the options as the
 * caller set them, strings owned ("" kept as NULL). Validated only when a
 * client is made from it (dlg__opts_copy). */
struct dlg_client_opts {
    char *host;
    unsigned port;
    char *servers;
    char *ca_file, *cert_file, *key_file;
    char *token;
    char *client_name;
    dlg__values v;
};

/* One server to connect to: host/port, or an entry of servers. */
typedef struct dlg__server {
    char *host;       /* what is resolved and what the certificate must match
                       * (an IPv6 literal without its brackets) */
    unsigned port;
    char *name;       /* "host:port" or "[v6]:port": messages, dlg_client_server */
} dlg__server;

/* The validated copy of dlg_client_opts a client keeps. */
typedef struct dlg__opts {
    /* host/port become a list of one, so the connection code has one path. */
    dlg__server servers[DLG_CLIENT_MAX_SERVERS];
    size_t n_servers;  /* 1..DLG_CLIENT_MAX_SERVERS */
    char *ca_file, *cert_file, *key_file;
    char *token;
    char *client_name;
    dlg__values v;
} dlg__opts;

/* Validates and copies o (host/port or servers into servers[]). 0 or
 * DLG_EINVAL/DLG_ENOMEM with err set. */
int dlg__opts_copy(const dlg_client_opts *o, dlg__opts *out, char *err,
                   size_t errlen);
void dlg__opts_free(dlg__opts *o);

/* The TLS client context for o: TLS 1.2+, peer verification against the CA
 * file, ALPN dialogue/1, client certificate if set. 0 or DLG_ETLS/DLG_ENOMEM
 * with err naming the file at fault. */
int dlg__ssl_ctx_new(const dlg__opts *o, SSL_CTX **out, char *err,
                     size_t errlen);

/* ---- backoff ------------------------------------------------------------ */

/* Delay before retry number attempt (0 = the first retry): min doubled per
 * attempt, capped at max, then reduced by up to jitter (0..1) of itself at
 * random. *rng is a per-client xorshift state (never 0). */
uint64_t dlg__backoff_ms(uint32_t min, uint32_t max, double jitter,
                         unsigned attempt, uint64_t *rng);

/* Next value of a xorshift64 generator; *s must not be 0. */
uint64_t dlg__rand(uint64_t *s);

/* ---- requests ------------------------------------------------------------ */

enum {
    DLG__REQ_JOIN = 1,
    DLG__REQ_LEAVE,
    DLG__REQ_SUBSCRIBE,
    DLG__REQ_UNSUBSCRIBE,
    DLG__REQ_TRIGGER,
    DLG__REQ_LIST_ROOMS,
    DLG__REQ_GET_SCHEMA,
    DLG__REQ_PING,
    DLG__REQ_CREATE_ROOM,
    DLG__REQ_DELETE_ROOM,
    DLG__REQ_HISTORY,
};

/* Who gets the completion of a request. */
enum {
    DLG__OWNER_USER = 0,  /* cb/ud from the API */
    DLG__OWNER_RESTORE,   /* a rejoin or resubscribe after reconnect */
};

typedef struct dlg__req {
    struct dlg__req *prev, *next;   /* c->reqs, in creation order */
    uint64_t id;                    /* request_id on the wire */
    int kind;                       /* DLG__REQ_* */
    int owner;                      /* DLG__OWNER_* */
    int sent;                       /* handed to the connection */
    uint32_t timeout_ms;
    uint64_t deadline;              /* uv_now() ms; set when it reaches the loop */
    uint64_t t0_ns;                 /* uv_hrtime() at the call (ping rtt) */
    dlg_buf *frame;                 /* header + ClientFrame, packed at the call */
    char *room;                     /* join/leave/(un)subscribe: record key */
    dlg_reply_cb cb;
    void *ud;
} dlg__req;

/* Builds a request: packs a ClientFrame with the next request_id around the
 * message set in f (f->msg_case and the union member; request_id is filled
 * in). room (may be NULL) is copied. 0 or DLG_ENOMEM/DLG_ETOOBIG/DLG_EINVAL;
 * on error nothing is allocated. */
int dlg__req_new(dlg_client *c, int kind, Dialogue__V1__ClientFrame *f,
                 const char *room, dlg__req **out);
void dlg__req_free(dlg__req *r);

/* A short name of the request for messages ("join dashboard"). */
void dlg__req_describe(const dlg__req *r, char *buf, size_t len);

/* Calls r's completion with a server reply frame (status from an Error, or
 * the typed reply), updating the restore record first. Returns DLG_EPROTO
 * when the reply does not fit the request (after completing it with
 * DLG_EPROTO), else 0. Does not free r. */
int dlg__req_complete_reply(dlg_client *c, dlg__req *r,
                            const Dialogue__V1__ServerFrame *f);

/* Completes r with a local failure (status < 0) and message. */
void dlg__req_complete_local(dlg_client *c, dlg__req *r, int status,
                             const char *message);

/* "Joined", "Pong", ... for messages about unexpected frames. */
const char *dlg__server_case_name(int msg_case);

/* Request builders shared by the async, sync and restore paths. Each packs
 * the frame (with a fresh request_id); cb/ud/owner/timeout are set by the
 * caller. 0 or DLG_EINVAL/DLG_ENOMEM/DLG_ETOOBIG. */
int dlg__build_join(dlg_client *c, const char *room, dlg__req **out);
int dlg__build_subscription(dlg_client *c, int unsub, const char *room,
                            const char *const *events, size_t n, int all,
                            dlg__req **out);
int dlg__build_trigger(dlg_client *c, const char *room, const char *event,
                       const void *data, size_t len, dlg__req **out);
int dlg__build_ping(dlg_client *c, dlg__req **out);
int dlg__build_history(dlg_client *c, const char *room, const char *event,
                       uint32_t start, uint32_t limit, int by_seq,
                       uint64_t since_seq, dlg__req **out);

/* ---- event handlers ---------------------------------------------------- */

typedef struct dlg__handler {
    char *room, *event;   /* NULL = any */
    dlg_event_cb cb;      /* NULL = removed during a dispatch */
    void *ud;
} dlg__handler;

/* An event waiting for the batch callback (dlg_client_on_events): its
 * strings (NUL-terminated) and data copied into the client's batch arena,
 * as offsets because the arena may move while the batch fills. */
typedef struct dlg__bev {
    size_t room, event, from, data, len;
    uint64_t ts_ms, seq, epoch;
    int from_kind;
} dlg__bev;

/* ---- the restore record ------------------------------------------------ */

typedef struct dlg__room {
    char *room;
    char **subs;            /* the subscriptions the server last confirmed */
    size_t n_subs;
    /* The position (recover.c): in epoch, seq is the newest event delivered
     * and floor the seq of the newest Joined whose batch is settled; the
     * client owes nothing up to max(seq, floor). */
    int known;              /* epoch is set */
    uint64_t epoch, seq, floor;
    /* A Joined whose HistoryBatch may still come (it would be the very next
     * frame for this room, carrying pend_rid). */
    uint64_t pend_rid;      /* 0 = none */
    uint64_t pend_epoch, pend_seq;  /* the Joined's */
    int pend_recover;       /* that Join asked for recovery */
    int rejoin_recover;     /* the rejoin in flight was sent with recover */
    int in_restore;         /* a rejoin is in flight on this connection */
    int auto_joined;        /* listed in this connection's Welcome.auto_joined */
} dlg__room;

/* ---- the connection ---------------------------------------------------- */

enum {
    DLG__CONN_RESOLVING = 1,
    DLG__CONN_CONNECTING,
    DLG__CONN_HANDSHAKE,
    DLG__CONN_HELLO,      /* Hello sent, waiting for Welcome */
    DLG__CONN_READY,
    DLG__CONN_DEAD,       /* closing; no more processing */
};

typedef struct dlg__conn {
    dlg_client *c;
    int phase;            /* DLG__CONN_* */
    int refs;             /* the socket's handle + getaddrinfo in flight */
    /* The socket and its TLS session (lib/stream/dlg_stream.h: the daemon's
     * connections use the same object); st.tcp.data is this conn. */
    dlg_stream st;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    struct addrinfo *ai_list, *ai_next;
    char peer[64];        /* address being tried, for messages */
    dlg_frame_dec dec;
    uint64_t hello_id;
    uint64_t last_rx;     /* uv_now() of the newest read */
    uint64_t ready_at;    /* uv_now() of the Welcome (phase READY) */
    char server_error[256];  /* newest request_id-0 Error: the likely cause of a close */
    uint8_t rbuf[64 * 1024];
    uint8_t pbuf[16 * 1024];
} dlg__conn;

/* ---- thread-mode commands ---------------------------------------------- */

enum {
    DLG__CMD_REQ = 1,
    DLG__CMD_CONNECT,
    DLG__CMD_CLOSE,
    DLG__CMD_ON_EVENT,
    DLG__CMD_OFF_EVENT,
    DLG__CMD_ON_STATE,
    DLG__CMD_ON_LEFT,
    DLG__CMD_ON_GAP,
    DLG__CMD_ON_EVENTS,
    DLG__CMD_STOP,
};

typedef struct dlg__cmd {
    struct dlg__cmd *next;
    int op;
    dlg__req *req;          /* REQ */
    dlg__handler h;         /* ON_EVENT/OFF_EVENT (strings owned) */
    void *cb, *ud;          /* ON_STATE/ON_LEFT/ON_GAP/CLOSE, as plain pointers */
} dlg__cmd;

/* ---- the client -------------------------------------------------------- */

struct dlg_client {
    dlg__opts o;
    dlg_log log;
    SSL_CTX *ssl_ctx;
    uv_loop_t *loop;
    int threaded;

    /* Thread mode: the private loop, its thread and the command queue. */
    uv_loop_t own_loop;
    uv_thread_t thread;
    uv_async_t async;
    uv_mutex_t mu;          /* guards cmds, reason, state_gen */
    uv_cond_t cv;           /* signalled on every state change */
    dlg__cmd *cmd_head, *cmd_tail;
    char reason[256];       /* newest disconnect reason (for sync waiters) */
    uint64_t state_gen;
    int final_failure;      /* no retry follows: 1 = reconnect off, 2 = refused Hello */

    /* Any thread may read these. */
    atomic_int pub_state;
    atomic_size_t pub_srv;  /* srv, for dlg_client_server */
    atomic_uint_fast64_t next_id;

    /* Loop thread only from here on. */
    int state;
    int closing, freeing;
    int open_handles;       /* our uv handles not yet closed */
    int live_conns;         /* dlg__conn objects not yet released */
    dlg_close_cb close_cb;
    void *close_ud;
    int no_retry;           /* a refused Hello: do not reconnect */
    unsigned attempt;       /* failed attempts since the last Welcome */
    size_t srv;             /* o.servers index of the current or last attempt */
    int tried;              /* an attempt was made: the next one moves on */
    size_t pass_left;       /* reconnect off: attempts left in this connect's
                             * pass over the list */
    uint64_t rng;
    dlg__conn *conn;        /* the current connection, if any */
    uint32_t server_max_frame;
    uint32_t heartbeat_ms;
    int cb_depth;           /* > 0 while a user callback runs */

    uv_timer_t retry_timer;
    uv_timer_t conn_timer;  /* connect_timeout for the current attempt */
    uv_timer_t req_timer;   /* the earliest request deadline */
    uv_timer_t hb_timer;    /* silence watchdog when the server pings */
    uv_prepare_t flush;     /* one coalesced write per loop turn */
    uint64_t req_timer_due; /* 0 = not armed */

    dlg__req *reqs_head, *reqs_tail;
    size_t n_reqs;
    size_t n_waiting;       /* user requests linked but not yet sent */

    dlg_buf **out;          /* frames waiting for the next flush */
    size_t n_out, cap_out;
    uint8_t *stage;         /* plaintext staging for the one TLS write */
    size_t stage_cap;

    dlg__handler *handlers;
    size_t n_handlers, cap_handlers;
    int dispatching;        /* > 0 while event handlers run */

    dlg__room *rooms;
    size_t n_rooms, cap_rooms;
    int pend_any;           /* some room may wait for its HistoryBatch */

    dlg_state_cb state_cb;
    void *state_ud;
    dlg_left_cb left_cb;
    void *left_ud;
    dlg_gap_cb gap_cb;
    void *gap_ud;

    /* The batch callback and the events of the current read waiting for
     * it (session.c, dlg__events_*). */
    dlg_events_cb events_cb;
    void *events_ud;
    dlg__bev batch[DLG_EVENTS_BATCH_MAX];
    size_t n_batch;
    uint8_t *batch_arena;
    size_t arena_len, arena_cap;
    int batch_busy;         /* the batch callback runs */
};

/* ---- client.c ----------------------------------------------------------- */

/* Runs cmd on the loop thread. Loop mode: at once, and a refused request
 * is returned as an error without calling its callback. Thread mode: queued
 * for the library thread (0 unless out of memory); a refusal found there is
 * reported through the request's callback. Takes ownership of cmd. */
int dlg__exec(dlg_client *c, dlg__cmd *cmd);

/* Submits an already built request (API entry point for every request
 * kind). Takes ownership of r in every case. */
int dlg__submit(dlg_client *c, dlg__req *r);

/* Sets the state, publishes it to other threads and calls the state
 * callback (reason may be NULL). */
void dlg__set_state(dlg_client *c, int st, const char *reason);

/* Starts the next connection attempt after delay_ms. */
void dlg__schedule_retry(dlg_client *c, uint64_t delay_ms);

/* The server of the current or last attempt (loop thread). */
const dlg__server *dlg__server_now(const dlg_client *c);

/* For messages: "HOST:PORT" with one server; with a list, "any of the N
 * servers (last tried HOST:PORT)". Any thread. */
void dlg__servers_desc(const dlg_client *c, char *buf, size_t len);

/* Calls the user's left callback. */
void dlg__notify_left(dlg_client *c, const char *room, const char *reason);

/* Appends r to c->reqs, sets its deadline and arms the request timer. */
void dlg__req_link(dlg_client *c, dlg__req *r);

/* Takes a request out of c->reqs (it stays allocated). */
void dlg__req_unlink(dlg_client *c, dlg__req *r);

/* Frees the client once its handles and connections are all closed (free),
 * or reports CLOSED and calls the close callback (close). */
void dlg__maybe_finalize(dlg_client *c);

/* The request with this id, or NULL. */
dlg__req *dlg__req_find(dlg_client *c, uint64_t id);

/* Re-arms the request timer for r's deadline if it is the earliest. */
void dlg__req_timer_arm(dlg_client *c, uint64_t deadline);

/* ---- conn.c ------------------------------------------------------------- */

/* Starts a connection attempt (c->conn must be NULL). Failures go through
 * dlg__conn_fail like any failed attempt. */
void dlg__conn_start(dlg_client *c);

/* Queues a packed frame (takes one reference) for the next flush. 0 or
 * DLG_ENOMEM (the reference is dropped). */
int dlg__conn_queue(dlg_client *c, dlg_buf *frame);

/* Tears the current connection down with reason: fails or keeps requests,
 * reports DISCONNECTED, schedules a retry. fatal stops reconnecting. */
void dlg__conn_fail(dlg_client *c, const char *reason, int fatal);

/* Starts (or stops, when the server sends no heartbeats) the silence
 * watchdog after Welcome. */
void dlg__conn_watchdog(dlg_client *c);

/* Closes conn's socket without any notification (client close or free). */
void dlg__conn_abort(dlg_client *c, int send_close_notify);

/* The flush handle's callback body (also called directly after a
 * handshake step). */
void dlg__flush(dlg_client *c);

/* ---- session.c ---------------------------------------------------------- */

/* Handles one decoded ServerFrame body. Returns 0 to go on, non-zero when
 * the connection was torn down and decoding must stop. */
int dlg__session_frame(dlg_client *c, const uint8_t *body, size_t len);

/* TLS is up: queue Hello. 0 or a DLG_E* code. */
int dlg__session_hello(dlg_client *c);

/* The reply to a rejoin or resubscribe sent by the restore logic. */
void dlg__session_restore_reply(dlg_client *c, dlg__req *r,
                                const Dialogue__V1__ServerFrame *f);

/* Sends the requests that waited for a connection (after the restore
 * traffic queued from Welcome). */
void dlg__session_send_waiting(dlg_client *c);

/* Queues r on the connection if ready (marks it sent). 0, or DLG_ETOOBIG
 * when the frame is above the server's max_frame, or DLG_ENOMEM. */
int dlg__session_send(dlg_client *c, dlg__req *r);

/* Delivers e to the matching handlers unless it is a duplicate for the
 * room's position (which it advances). */
void dlg__dispatch_event(dlg_client *c, const Dialogue__V1__Event *e);

/* Queues a delivered event for the batch callback (nothing when none is
 * set). Out of memory, the batch so far is flushed and ev is handed over
 * alone. */
void dlg__events_add(dlg_client *c, const dlg_event *ev);

/* Hands the queued events to the batch callback. Called at the end of
 * each read and before anything else the server sent is acted on. The
 * callback may tear the connection down: check c->conn afterwards. */
void dlg__events_flush(dlg_client *c);

/* The restore record. dlg__room_set records room (new ones with an unknown
 * position) with subs as its subscriptions; *out (may be NULL) gets the
 * entry, valid until the table next changes. 0 or DLG_ENOMEM/DLG_EINVAL. */
dlg__room *dlg__room_find(dlg_client *c, const char *room);
int dlg__room_set(dlg_client *c, const char *room, char *const *subs,
                  size_t n_subs, dlg__room **out);
void dlg__room_drop(dlg_client *c, const char *room);
void dlg__rooms_free(dlg_client *c);

/* ---- recover.c ------------------------------------------------------------ */

/* Whether e is new for its room's position, which it then advances. 1 =
 * deliver, 0 = a duplicate to drop. Events of rooms not recorded pass. */
int dlg__pos_accept(dlg_client *c, const Dialogue__V1__Event *e);

/* A Joined for rm arrived answering request rid. batch: a HistoryBatch may
 * follow with the same request_id (Join, auto_join at Welcome); recover:
 * the Join asked for recovery, so an incomplete batch is a gap. Without
 * batch (subscribe, unsubscribe) the position settles at once. */
void dlg__pos_joined(dlg_client *c, dlg__room *rm, const Dialogue__V1__Joined *j,
                     uint64_t rid, int batch, int recover);

/* Handles f when it is the HistoryBatch a recorded room waits for (gap
 * report, delivery, position). 1 when handled, 0 when f is anything else
 * (then every waiting room is settled without a batch: the server sends a
 * batch right after its Joined, so any other frame means none is coming).
 * Callbacks run inside: check c->conn afterwards. */
int dlg__pos_frame(dlg_client *c, const Dialogue__V1__ServerFrame *f);

/* Forgets the batches still expected (the connection is gone); positions
 * stay as they are for the next recovery. */
void dlg__pos_disconnected(dlg_client *c);

/* The server says events of a recorded room may be missing after g->seq
 * (a cluster node that lost its link): reported to the gap callback. The
 * position is unchanged (the numbering goes on). Rooms not recorded are
 * ignored. Callbacks run inside: check c->conn afterwards. */
void dlg__pos_gap(dlg_client *c, const Dialogue__V1__Gap *g);

/* The Join that restores rm after a reconnect: with recover, epoch and
 * since_seq when rm's position is known. 0 or DLG_ENOMEM/DLG_ETOOBIG. */
int dlg__build_rejoin(dlg_client *c, dlg__room *rm, dlg__req **out);

/* Event handler table. */
int dlg__handler_add(dlg_client *c, dlg__handler *h);   /* takes h's strings */
void dlg__handler_remove(dlg_client *c, dlg_event_cb cb, void *ud);
void dlg__handlers_free(dlg_client *c);

#endif
