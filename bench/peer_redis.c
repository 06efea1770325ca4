/* peer_redis.c: a bench peer on redis-server through hiredis' asynchronous
 * API and its libuv adapter (hiredis/adapters/libuv.h): subscribers
 * SUBSCRIBE to the measured and the warm-up channel, publishers PUBLISH,
 * whose integer reply is the acknowledgement. Plaintext only: Debian 12's
 * hiredis (0.14) has no TLS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "dlg_err.h"
#include "target.h"

typedef struct rpeer {
    bench_xbase b;            /* first: bench_xbase_closed finds the peer */
    redisAsyncContext *ac;    /* NULL once hiredis freed it (connect failure, lost) */
    int subscribed;           /* SUBSCRIBE confirmations so far */
    uint64_t pending;         /* PUBLISHes without a reply yet */
} rpeer;

static void release(bench_xbase *b) {
    free(b);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    rpeer *p = ac->data;
    char why[300];
    if (p->b.freeing)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        snprintf(why, sizeof(why), "connect: %s", ac->errstr[0] ? ac->errstr : "failed");
        p->ac = NULL;
        bench_xbase_fail(&p->b, why);
        return;
    }
    if (p->b.role != BENCH_ROLE_SUB)
        bench_xbase_ready(&p->b); /* SUBSCRIBE's confirmations say it for subscribers */
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    rpeer *p = ac->data;
    char why[300];
    p->ac = NULL; /* hiredis frees it after this callback */
    if (p->b.freeing)
        return;
    snprintf(why, sizeof(why), "connection %s%s%s", status == REDIS_OK ? "closed" : "lost",
             ac->errstr[0] ? ": " : "", ac->errstr);
    bench_xbase_fail(&p->b, why);
}

/* Every reply on a subscriber: the confirmations of SUBSCRIBE, then
 * ["message", channel, payload]. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *ud) {
    rpeer *p = ud;
    redisReply *rep = r;
    (void)ac;
    if (rep == NULL || p->b.freeing)
        return; /* the connection is going: on_disconnect reports it */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING) {
        char why[200];
        snprintf(why, sizeof(why), "unexpected reply to SUBSCRIBE (type %d): %.100s", rep->type,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        bench_xbase_fail(&p->b, why);
        return;
    }
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "message") == 0) {
        const redisReply *ch = rep->element[1], *data = rep->element[2];
        bench_xbase_deliver(&p->b, ch->str, data->str, data->len);
    } else if (strcmp(kind, "subscribe") == 0 && ++p->subscribed == 2) {
        bench_xbase_ready(&p->b);
    }
}

static void on_pub_reply(redisAsyncContext *ac, void *r, void *ud) {
    rpeer *p = ud;
    redisReply *rep = r;
    (void)ac;
    if (p->pending > 0)
        p->pending--;
    if (rep == NULL || p->b.freeing || p->b.state != XS_READY)
        return; /* lost with the connection: the fan-out counts it */
    if (rep->type == REDIS_REPLY_INTEGER)
        p->b.cbs->acked(p->b.ud, 0, "");
    else
        p->b.cbs->acked(p->b.ud, DLG_EPROTO,
                        rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply to PUBLISH");
}

static int new_peer(uv_loop_t *loop, const bench_conn_opts *o, int role,
                    const bench_peer_cbs *cbs, void *ud, void **out, char *err,
                    size_t errlen) {
    if (!o->plaintext) {
        snprintf(err, errlen, "redis: %s", bench_redis_ops.no_tls);
        return DLG_EINVAL;
    }
    rpeer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for a Redis peer");
        return DLG_ENOMEM;
    }
    /* Redis channels are free-form; ':' is the usual separator. */
    int rc = bench_xbase_init(&p->b, loop, o, role, cbs, ud, "redis", ":", release, err, errlen);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int start(void *vp) {
    rpeer *p = vp;
    char why[300];
    if (p->b.state != XS_IDLE)
        return DLG_ESTATE;
    bench_xbase_connecting(&p->b);
    /* Non-blocking connect; hiredis sets TCP_NODELAY itself. */
    p->ac = redisAsyncConnect(p->b.o->host, (int)p->b.o->port);
    if (p->ac == NULL || p->ac->err) {
        snprintf(why, sizeof(why), "connect: %s", p->ac ? p->ac->errstr : "out of memory");
        if (p->ac != NULL)
            redisAsyncFree(p->ac);
        p->ac = NULL;
        bench_xbase_fail(&p->b, why);
        return 0;
    }
    p->ac->data = p;
    if (redisLibuvAttach(p->ac, p->b.loop) != REDIS_OK ||
        redisAsyncSetConnectCallback(p->ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(p->ac, on_disconnect) != REDIS_OK) {
        redisAsyncFree(p->ac);
        p->ac = NULL;
        bench_xbase_fail(&p->b, "attaching to the loop failed");
        return 0;
    }
    if (p->b.role == BENCH_ROLE_SUB) {
        /* Queued now, written once connected. */
        if (redisAsyncCommand(p->ac, on_sub_reply, p, "SUBSCRIBE %s %s", p->b.sub_subject[0],
                              p->b.sub_subject[1]) != REDIS_OK)
            bench_xbase_fail(&p->b, "SUBSCRIBE could not be queued");
    }
    return 0;
}

static int trigger(void *vp, const char *event, const void *data, size_t len) {
    rpeer *p = vp;
    if (p->b.state != XS_READY || p->ac == NULL)
        return DLG_ESTATE;
    if (p->pending >= p->b.o->max_pending)
        return DLG_EFULL;
    const char *ch = bench_xbase_pub_subject(&p->b, event);
    if (ch == NULL)
        return DLG_EINVAL;
    const char *argv[3] = {"PUBLISH", ch, data};
    size_t lens[3] = {7, strlen(ch), len};
    if (redisAsyncCommandArgv(p->ac, on_pub_reply, p, 3, argv, lens) != REDIS_OK)
        return DLG_ECLOSED;
    p->pending++;
    return 0;
}

static void free_peer(void *vp) {
    rpeer *p = vp;
    if (p == NULL)
        return;
    p->b.freeing = 1; /* the callbacks hiredis calls while freeing report nothing */
    if (p->ac != NULL) {
        /* Its poll handle closes on the loop and frees itself. */
        redisAsyncFree(p->ac);
        p->ac = NULL;
    }
    bench_xbase_free(&p->b);
}

const bench_target_ops bench_redis_ops = {
    .name = "redis",
    .no_tls = "Debian 12's hiredis (0.14) has no TLS support",
    .new_peer = new_peer,
    .start = start,
    .trigger = trigger,
    .free_peer = free_peer,
};
