/* peer.c: a bench connection over libdialogue-client (TLS), or handed to
 * plain.c for plaintext daemons, to grpcsub.c for gRPC subscribers, or to
 * another server's peer (target.h); the role's setup (join, subscriptions)
 * as a small chain of request callbacks. */
#include "peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/client.h"
#include "dlg_err.h"
#include "grpcsub.h"
#include "plain.h"
#include "target.h"

struct bench_peer {
    const bench_target_ops *ext; /* set: another server's peer (xp) does everything */
    void *xp;
    bench_plain *plain;      /* set: the plaintext client does everything */
    bench_grpcsub *grpc;     /* set: a gRPC subscriber does everything */
    dlg_client *c;
    const bench_conn_opts *o;
    const bench_peer_cbs *cbs;
    void *ud;
    int role;
    int ready, failed;
};

static void fail(bench_peer *p, const char *why) {
    if (p->failed)
        return;
    p->failed = 1;
    p->cbs->failed(p->ud, why);
}

static void set_ready(bench_peer *p) {
    p->ready = 1;
    p->cbs->ready(p->ud);
}

static void on_subscribed(dlg_client *c, void *ud, int status, const char *msg,
                          const void *reply) {
    bench_peer *p = ud;
    char why[512];
    (void)c;
    (void)reply;
    if (status != 0) {
        snprintf(why, sizeof(why), "%s room %s: %s: %s",
                 p->role == BENCH_ROLE_SUB ? "subscribe to" : "unsubscribe from", p->o->room,
                 status > 0 ? dlg_client_status_name(status) : dlg_client_strerror(status), msg);
        fail(p, why);
        return;
    }
    set_ready(p);
}

static void on_joined(dlg_client *c, void *ud, int status, const char *msg,
                      const void *reply) {
    bench_peer *p = ud;
    char why[512];
    if (status != 0) {
        snprintf(why, sizeof(why), "join room %s: %s: %s", p->o->room,
                 status > 0 ? dlg_client_status_name(status) : dlg_client_strerror(status), msg);
        fail(p, why);
        return;
    }
    const dlg_joined *j = reply;
    int all = 0;
    for (size_t i = 0; i < j->n_subscriptions; i++)
        if (strcmp(j->subscriptions[i], "*") == 0)
            all = 1;
    int rc = 0;
    /* The room's default subscriptions decide what a member gets: fix them
     * for the role, so publishers do not receive their own fan-out. */
    if (p->role == BENCH_ROLE_SUB && !all)
        rc = dlg_client_subscribe(c, p->o->room, NULL, 0, 1, on_subscribed, p);
    else if (p->role == BENCH_ROLE_PUB && j->n_subscriptions > 0)
        rc = dlg_client_unsubscribe(c, p->o->room, NULL, 0, 1, on_subscribed, p);
    else
        set_ready(p);
    if (rc != 0) {
        snprintf(why, sizeof(why), "subscriptions in room %s: %s", p->o->room,
                 dlg_client_strerror(rc));
        fail(p, why);
    }
}

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    bench_peer *p = ud;
    char why[512];
    if (st == DLG_STATE_DISCONNECTED || st == DLG_STATE_CLOSED) {
        /* No address here: the fan-out and scale runs name the server. */
        fail(p, reason ? reason : dlg_client_state_name(st));
        return;
    }
    if (st != DLG_STATE_CONNECTED)
        return;
    if (p->role == BENCH_ROLE_IDLE) {
        set_ready(p);
        return;
    }
    int rc = dlg_client_join(c, p->o->room, on_joined, p);
    if (rc != 0) {
        snprintf(why, sizeof(why), "join room %s: %s", p->o->room, dlg_client_strerror(rc));
        fail(p, why);
    }
}

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    bench_peer *p = ud;
    (void)c;
    p->cbs->event(p->ud, ev->event, ev->data, ev->len, ev->seq);
}

static void on_ack(dlg_client *c, void *ud, int status, const char *msg, const void *reply) {
    bench_peer *p = ud;
    (void)c;
    (void)reply;
    p->cbs->acked(p->ud, status, msg);
}

int bench_peer_new(uv_loop_t *loop, const bench_conn_opts *o, int role,
                   const bench_peer_cbs *cbs, void *ud, bench_peer **out,
                   char *err, size_t errlen) {
    int rc;
    bench_peer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for a peer");
        return DLG_ENOMEM;
    }
    p->o = o;
    p->cbs = cbs;
    p->ud = ud;
    p->role = role;
    if ((p->ext = bench_target_ops_of(o->target)) != NULL) {
        if ((rc = p->ext->new_peer(loop, o, role, cbs, ud, &p->xp, err, errlen)) != 0)
            goto fail;
        *out = p;
        return 0;
    }
    if (o->grpc && role == BENCH_ROLE_SUB) {
        if ((rc = bench_grpcsub_new(loop, o, cbs, ud, &p->grpc, err, errlen)) != 0)
            goto fail;
        *out = p;
        return 0;
    }
    if (o->plaintext) {
        if ((rc = bench_plain_new(loop, o, role, cbs, ud, &p->plain, err, errlen)) != 0)
            goto fail;
        *out = p;
        return 0;
    }
    /* A lost peer is a result to report, not to hide: no reconnect. A deep
     * trigger window must not time out while the daemon works through it;
     * the run's own time limit bounds everything. */
    dlg_client_opts *co = NULL;
    if ((rc = dlg_client_opts_new(&co)) != 0 ||
        (rc = dlg_client_opts_set_host(co, o->host)) != 0 ||
        (rc = dlg_client_opts_set_port(co, o->port)) != 0 ||
        (rc = dlg_client_opts_set_ca_file(co, o->ca)) != 0 ||
        (rc = dlg_client_opts_set_token(co, o->token)) != 0 ||
        (rc = dlg_client_opts_set_client_name(co, "dialogue-bench")) != 0 ||
        (rc = dlg_client_opts_set_reconnect(co, 0)) != 0 ||
        (rc = dlg_client_opts_set_max_pending(co, o->max_pending)) != 0 ||
        (rc = dlg_client_opts_set_connect_timeout_ms(co, o->connect_timeout_ms)) != 0 ||
        (rc = dlg_client_opts_set_request_timeout_ms(co, 120000)) != 0 ||
        (rc = dlg_client_new(loop, co, &p->c)) != 0) {
        char why[256] = "";
        if (co != NULL)
            dlg_client_opts_check(co, why, sizeof(why));
        snprintf(err, errlen, "client for %s:%u: %s", o->host, o->port,
                 why[0] ? why : dlg_client_strerror(rc));
        dlg_client_opts_free(co);
        goto fail;
    }
    dlg_client_opts_free(co);
    if ((rc = dlg_client_on_state(p->c, on_state, p)) != 0 ||
        (role == BENCH_ROLE_SUB &&
         (rc = dlg_client_on_event(p->c, o->room, NULL, on_event, p)) != 0)) {
        snprintf(err, errlen, "client for %s:%u: %s", o->host, o->port, dlg_client_strerror(rc));
        goto fail_client;
    }
    *out = p;
    return 0;

fail_client:
    dlg_client_free(p->c);
fail:
    free(p);
    return rc;
}

int bench_peer_start(bench_peer *p) {
    if (p->ext)
        return p->ext->start(p->xp);
    if (p->grpc)
        return bench_grpcsub_start(p->grpc);
    if (p->plain)
        return bench_plain_start(p->plain);
    return dlg_client_connect(p->c);
}

int bench_peer_trigger(bench_peer *p, const char *event, const void *data, size_t len) {
    if (p->ext)
        return p->ext->trigger(p->xp, event, data, len);
    if (p->grpc)
        return DLG_ESTATE; /* subscribers only */
    if (p->plain)
        return bench_plain_trigger(p->plain, event, data, len);
    if (!p->ready || p->failed)
        return DLG_ESTATE;
    return dlg_client_trigger(p->c, p->o->room, event, data, len, on_ack, p);
}

void bench_peer_free(bench_peer *p) {
    if (p == NULL)
        return;
    if (p->ext)
        p->ext->free_peer(p->xp);
    else if (p->grpc)
        bench_grpcsub_free(p->grpc);
    else if (p->plain)
        bench_plain_free(p->plain);
    else
        dlg_client_free(p->c);
    free(p);
}
