/* peer.h: one bench connection in one role (subscriber, publisher, idle),
 * carried by libdialogue-client (TLS) or by the bench's own plaintext client
 * (plain.c, because the library speaks TLS only), or, with
 * bench_conn_opts.target, by the client library of another server
 * (target.h: NATS, Redis, MQTT). Loop mode: every call and callback happens
 * on the loop the peer was created on. */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

enum {
    BENCH_ROLE_SUB = 1,  /* joins the room, subscribes to every event */
    BENCH_ROLE_PUB,      /* joins the room, subscribes to nothing */
    BENCH_ROLE_IDLE,     /* Hello only: connection-scale runs */
};

/* Where and how to connect; shared by every peer of a run. Borrowed: the
 * strings must outlive the peers. */
typedef struct bench_conn_opts {
    const char *host;
    unsigned port;
    const char *ca;          /* NULL = system trust store */
    const char *token;       /* NULL or "" = anonymous */
    int plaintext;           /* the daemon listens without TLS */
    int websocket;           /* with plaintext: speak through GET /v1/ws (one frame per
                                WebSocket message) instead of dialogue/1 */
    int grpc;                /* subscribers use gRPC Subscribe streams (grpcsub.h;
                                plaintext only) */
    const char *room;
    int target;              /* BENCH_TARGET_* (target.h): which kind of server */
    /* Other servers (target != dialogue): what a subscriber subscribes to,
     * the measured and the warm-up event (dialogued's rooms subscribe to
     * every event instead). */
    const char *sub_events[2];
    uint32_t max_pending;    /* triggers that may wait for their Ack */
    uint32_t connect_timeout_ms;
} bench_conn_opts;

/* What a peer reports. Every callback gets the ud given at creation. None is
 * called from inside the bench_peer_* call that caused it, and none after
 * bench_peer_free has started. */
typedef struct bench_peer_cbs {
    /* Connected and set up for its role (subscriptions as the role wants). */
    void (*ready)(void *ud);
    /* Setup failed, or the connection was lost afterwards; why names the
     * cause. Called at most once; the peer does nothing more. */
    void (*failed)(void *ud, const char *why);
    /* An event (subscribers); data is valid during the call only. */
    void (*event)(void *ud, const char *event, const uint8_t *data, size_t len,
                  uint64_t seq);
    /* Completion of one trigger: status 0 = Ack, > 0 = the server's Status,
     * < 0 = a local DLG_E* code; msg explains a failure. */
    void (*acked)(void *ud, int status, const char *msg);
} bench_peer_cbs;

typedef struct bench_peer bench_peer;

/* Creates a peer on loop (nothing is sent yet). o and cbs are copied by
 * reference: both must outlive the peer. Returns 0, DLG_ENOMEM, DLG_EINVAL
 * or DLG_ETLS (CA file) with err naming the cause; *out untouched then. */
int bench_peer_new(uv_loop_t *loop, const bench_conn_opts *o, int role,
                   const bench_peer_cbs *cbs, void *ud, bench_peer **out,
                   char *err, size_t errlen);

/* Starts connecting; ready or failed follows. 0 or a DLG_E* code. */
int bench_peer_start(bench_peer *p);

/* Publishes one event without waiting (the Ack comes through acked).
 * data is copied. 0; DLG_EFULL when max_pending triggers are already
 * waiting (try again after an Ack); DLG_ECLOSED/DLG_ESTATE when not ready. */
int bench_peer_trigger(bench_peer *p, const char *event, const void *data,
                       size_t len);

/* Closes and releases p without calling any callback. Not from inside one
 * of p's callbacks; run the loop afterwards so handles finish closing.
 * NULL is ignored. */
void bench_peer_free(bench_peer *p);

#endif
