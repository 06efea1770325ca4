/* target.h: the servers dialogue-bench measures besides dialogued (NATS,
 * Redis and MQTT, through their Debian client libraries), each behind the
 * same four calls so that bench_peer dispatches to them as it does to
 * plain.c; and what their peers share (bench_xbase): setup and failure
 * reports deferred to the next loop turn, the connect timeout, the subjects
 * events travel on, and publishes acknowledged once written where the
 * protocol has no reply. Same loop-mode contract as peer.h. */
#ifndef BENCH_TARGET_H
#define BENCH_TARGET_H

#include "peer.h"

enum {
    BENCH_TARGET_DIALOGUE = 0, /* dialogued (the default) */
    BENCH_TARGET_NATS,         /* nats-server, core publish/subscribe, libnats */
    BENCH_TARGET_REDIS,        /* redis-server PUBLISH/SUBSCRIBE, hiredis */
    BENCH_TARGET_MQTT,         /* mosquitto, MQTT 3.1.1 QoS 0, libmosquitto */
    BENCH_TARGET_COUNT
};

/* One kind of server: the calls of peer.h for its peers. p is what
 * new_peer returned. */
typedef struct bench_target_ops {
    const char *name;        /* the --target value: dialogue, nats, redis, mqtt */
    /* Why this client cannot reach the server over TLS, or NULL when it
     * can: a TLS run against it is refused up front with this reason. */
    const char *no_tls;
    int (*new_peer)(uv_loop_t *loop, const bench_conn_opts *o, int role,
                    const bench_peer_cbs *cbs, void *ud, void **out, char *err,
                    size_t errlen);
    int (*start)(void *p);
    int (*trigger)(void *p, const char *event, const void *data, size_t len);
    void (*free_peer)(void *p);
} bench_target_ops;

/* The ops of target (BENCH_TARGET_NATS ... MQTT), NULL for dialogued (peer.c
 * handles it) or an unknown value. */
const bench_target_ops *bench_target_ops_of(int target);

/* The target called name, or -1. */
int bench_target_parse(const char *name);

/* The name of target ("dialogue" for BENCH_TARGET_DIALOGUE). */
const char *bench_target_name(int target);

/* Why target cannot be measured over TLS, or NULL when it can. */
const char *bench_target_no_tls(int target);

/* ---- what the peers of other servers share -------------------------------- */

enum { XS_IDLE, XS_CONNECTING, XS_READY, XS_DEAD };

/* The first member of every NATS, Redis and MQTT peer. It owns two timers;
 * the peer adds its own handles to `handles` and calls bench_xbase_closed
 * from each handle's close callback, so release runs once everything is
 * closed and bench_xbase_free was called. */
typedef struct bench_xbase {
    uv_loop_t *loop;
    const bench_conn_opts *o;
    const bench_peer_cbs *cbs;
    void *ud;
    int role;
    int state;               /* XS_* */
    int freeing;
    int handles;             /* open uv handles (these timers included) */
    void (*release)(struct bench_xbase *b); /* frees the peer */
    uv_timer_t timeout;      /* connect timeout until ready */
    uv_timer_t defer;        /* reports for the next loop turn */
    int report_ready;        /* ready is owed */
    int report_failed;       /* failed is owed (with why) */
    uint64_t acks_owed;      /* written publishes not yet reported as acked */
    uint64_t seq;            /* deliveries so far: the seq handed to event */
    char why[512];
    char peer[300];          /* "nats host:port": messages */
    /* Subjects: PREFIX EVENT for the events of sub_events (subscribers) and
     * the last two events published (a cache, so publishing formats
     * nothing). prefix is the room and the target's separator. */
    char prefix[80];
    size_t prefix_len;
    char sub_subject[2][160];
    char pub_event[2][64];
    char pub_subject[2][160];
    int pub_next;            /* cache slot to overwrite next */
} bench_xbase;

/* Sets b up on loop (two timers) for the given server kind; sep separates
 * the room from the event in a subject ("." for NATS, "/" for MQTT, ":" for
 * Redis). 0, or DLG_EINVAL when a room or event name is too long for the
 * subject buffers (err says which). */
int bench_xbase_init(bench_xbase *b, uv_loop_t *loop, const bench_conn_opts *o, int role,
                     const bench_peer_cbs *cbs, void *ud, const char *kind, const char *sep,
                     void (*release)(bench_xbase *b), char *err, size_t errlen);

/* State XS_CONNECTING and the connect timeout started. */
void bench_xbase_connecting(bench_xbase *b);

/* Set up for its role: ready is reported on the next loop turn. */
void bench_xbase_ready(bench_xbase *b);

/* Fails the peer (once): why (prefixed with the peer's name) is reported
 * through failed on the next loop turn; the peer does nothing more. */
void bench_xbase_fail(bench_xbase *b, const char *why);

/* A publish was written (or queued) and its protocol has no reply: acked is
 * reported on the next loop turn. */
void bench_xbase_ack_later(bench_xbase *b);

/* The subject to publish event on; NULL when it is too long. */
const char *bench_xbase_pub_subject(bench_xbase *b, const char *event);

/* A message arrived on subject: reports it as the event after the room
 * prefix, with the next local sequence number (these servers carry none).
 * Nothing once dead or before ready. */
void bench_xbase_deliver(bench_xbase *b, const char *subject, const void *data, size_t len);

/* Starts freeing: no callback is called from now on; the two timers close
 * and release runs once every handle counted in `handles` is closed. */
void bench_xbase_free(bench_xbase *b);

/* Close callback of every handle counted in b->handles (handle->data = b). */
void bench_xbase_closed(uv_handle_t *h);

/* The peers of each server (peer_nats.c, peer_redis.c, peer_mqtt.c). */
extern const bench_target_ops bench_nats_ops, bench_redis_ops, bench_mqtt_ops;

#endif
