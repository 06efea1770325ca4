/* peer_nats.c: a bench peer on nats-server through libnats (core NATS
 * publish/subscribe, no JetStream), driven from the worker's libuv loop.
 *
 * Why not libnats' own adapter (nats/adapters/libuv.h) as is: its poll
 * callback gives no hook after a read, so messages could only be taken by
 * asynchronous subscriptions, which libnats delivers on a thread of its own
 * per subscription. Here the connection is attached to the loop by a few
 * lines of glue (the same four callbacks the adapter implements); each
 * subscriber holds synchronous subscriptions and takes what a read
 * produced right after natsConnection_ProcessReadEvent, on the loop
 * thread: one thread for all subscribers, as for dialogued.
 *
 * Every connection sets SendAsap (libnats otherwise starts a flusher
 * thread per connection that waits 1 ms before writing) and PINGs are off,
 * so every event-loop callback comes from the loop thread. A core NATS publish has
 * no reply: it counts as acknowledged once written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "dlg_err.h"
#include "target.h"

typedef struct npeer {
    bench_xbase b;            /* first: bench_xbase_closed finds the peer */
    natsConnection *nc;
    natsSubscription *sub[2]; /* the measured and the warm-up subject */
    natsSubscription *probe;  /* subscribers until ready: their own echo */
    char inbox[128];
    uv_poll_t poll;
    int poll_open;            /* poll initialised and not closing */
    int events;               /* UV_READABLE | UV_WRITABLE wanted */
    uv_thread_t loop_thread;  /* where every glue callback must run */
} npeer;

static void release(bench_xbase *b) {
    free(b);
}

static void nats_fail(npeer *p, const char *what, natsStatus s) {
    char why[400];
    const char *last = NULL;
    /* Before there is a connection, libnats keeps the cause per thread. */
    if (p->nc != NULL)
        (void)natsConnection_GetLastError(p->nc, &last);
    else
        last = nats_GetLastError(NULL);
    snprintf(why, sizeof(why), "%s: %s%s%s", what, natsStatus_GetText(s),
             last && *last ? ": " : "", last && *last ? last : "");
    bench_xbase_fail(&p->b, why);
}

/* ---- event-loop glue (natsOptions_SetEventLoop) ---------------------------- */

static natsStatus update_poll(npeer *p);

/* Takes every message a read produced. */
static void drain(npeer *p) {
    natsMsg *m = NULL;
    for (int i = 0; i < 2; i++) {
        while (p->sub[i] != NULL && natsSubscription_NextMsg(&m, p->sub[i], 0) == NATS_OK) {
            bench_xbase_deliver(&p->b, natsMsg_GetSubject(m), natsMsg_GetData(m),
                                (size_t)natsMsg_GetDataLength(m));
            natsMsg_Destroy(m);
        }
    }
    if (p->probe != NULL && natsSubscription_NextMsg(&m, p->probe, 0) == NATS_OK) {
        /* Our own message came back: the server has both subscriptions. */
        natsMsg_Destroy(m);
        natsSubscription_Unsubscribe(p->probe);
        natsSubscription_Destroy(p->probe);
        p->probe = NULL;
        bench_xbase_ready(&p->b);
    }
}

static void on_poll(uv_poll_t *h, int status, int events) {
    npeer *p = h->data;
    if (status < 0 || (events & UV_READABLE)) {
        /* An error surfaces through the read, as in libnats' adapter. */
        natsConnection_ProcessReadEvent(p->nc);
        drain(p);
    }
    if (p->poll_open && (events & UV_WRITABLE))
        natsConnection_ProcessWriteEvent(p->nc);
}

static natsStatus update_poll(npeer *p) {
    if (!p->poll_open)
        return NATS_OK;
    int rc = p->events ? uv_poll_start(&p->poll, p->events, on_poll) : uv_poll_stop(&p->poll);
    return rc == 0 ? NATS_OK : NATS_ERR;
}

static int on_loop_thread(npeer *p) {
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &p->loop_thread);
}

/* The "loop" libnats hands back is the peer itself. */
static natsStatus ev_attach(void **user, void *loop, natsConnection *nc, natsSock fd) {
    npeer *p = loop;
    (void)nc;
    if (!on_loop_thread(p) || p->poll_open || p->b.freeing)
        return NATS_ILLEGAL_STATE; /* no reconnects here: attached once */
    if (uv_poll_init_socket(p->b.loop, &p->poll, fd) != 0)
        return NATS_ERR;
    p->poll.data = &p->b;
    p->poll_open = 1;
    p->b.handles++;
    p->events = UV_READABLE;
    *user = p;
    return update_poll(p);
}

static natsStatus ev_set(npeer *p, int flag, bool add) {
    if (!on_loop_thread(p))
        return NATS_ILLEGAL_STATE;
    p->events = add ? p->events | flag : p->events & ~flag;
    return update_poll(p);
}

static natsStatus ev_read(void *user, bool add) {
    return ev_set(user, UV_READABLE, add);
}

static natsStatus ev_write(void *user, bool add) {
    return ev_set(user, UV_WRITABLE, add);
}

static void close_poll(npeer *p) {
    if (!p->poll_open)
        return;
    p->poll_open = 0;
    uv_close((uv_handle_t *)&p->poll, bench_xbase_closed);
}

static natsStatus ev_detach(void *user) {
    npeer *p = user;
    if (!on_loop_thread(p))
        return NATS_ILLEGAL_STATE;
    close_poll(p);
    /* Detached without bench_peer_free: the connection closed under us. */
    if (!p->b.freeing)
        nats_fail(p, "connection closed", NATS_CONNECTION_CLOSED);
    return NATS_OK;
}

/* ---- the peer ------------------------------------------------------------------ */

static uv_once_t lib_once = UV_ONCE_INIT;
static int lib_ok;

static void close_lib(void) {
    /* Joins libnats' own threads and frees its globals: a clean leak check. */
    nats_Close();
}

static void open_lib(void) {
    if (nats_Open(-1) == NATS_OK) {
        lib_ok = 1;
        atexit(close_lib);
    }
}

static int new_peer(uv_loop_t *loop, const bench_conn_opts *o, int role,
                    const bench_peer_cbs *cbs, void *ud, void **out, char *err,
                    size_t errlen) {
    uv_once(&lib_once, open_lib);
    if (!lib_ok) {
        snprintf(err, errlen, "libnats did not initialise");
        return DLG_EINTERNAL;
    }
    npeer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for a NATS peer");
        return DLG_ENOMEM;
    }
    /* NATS subjects are dot-separated tokens: room.event. */
    int rc = bench_xbase_init(&p->b, loop, o, role, cbs, ud, "nats", ".", release, err, errlen);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int start(void *vp) {
    npeer *p = vp;
    natsOptions *opts = NULL;
    natsStatus s;
    char url[320];
    if (p->b.state != XS_IDLE)
        return DLG_ESTATE;
    p->loop_thread = uv_thread_self();
    bench_xbase_connecting(&p->b);
    const bench_conn_opts *o = p->b.o;
    int v6 = strchr(o->host, ':') != NULL;
    snprintf(url, sizeof(url), "%s://%s%s%s:%u", o->plaintext ? "nats" : "tls", v6 ? "[" : "",
             o->host, v6 ? "]" : "", o->port);
    /* A lost connection is a result, not something to hide: no reconnect.
     * The connect itself blocks this loop (setup is not measured); every
     * later callback runs from the loop. */
    if ((s = natsOptions_Create(&opts)) != NATS_OK ||
        (s = natsOptions_SetURL(opts, url)) != NATS_OK ||
        (s = natsOptions_SetName(opts, "dialogue-bench")) != NATS_OK ||
        (s = natsOptions_SetAllowReconnect(opts, false)) != NATS_OK ||
        (s = natsOptions_SetPingInterval(opts, 0)) != NATS_OK ||
        (s = natsOptions_SetSendAsap(opts, true)) != NATS_OK ||
        (s = natsOptions_SetTimeout(opts, o->connect_timeout_ms)) != NATS_OK ||
        (s = natsOptions_SetEventLoop(opts, p, ev_attach, ev_read, ev_write, ev_detach)) !=
            NATS_OK) {
        nats_fail(p, "options", s);
        goto out;
    }
    if (!o->plaintext) {
        if ((s = natsOptions_SetSecure(opts, true)) != NATS_OK ||
            (o->ca && (s = natsOptions_LoadCATrustedCertificates(opts, o->ca)) != NATS_OK)) {
            nats_fail(p, "TLS options", s);
            goto out;
        }
    }
    if ((s = natsConnection_Connect(&p->nc, opts)) != NATS_OK) {
        nats_fail(p, "connect", s);
        goto out;
    }
    if (p->b.role == BENCH_ROLE_SUB) {
        for (int i = 0; i < 2; i++) {
            if ((s = natsConnection_SubscribeSync(&p->sub[i], p->nc, p->b.sub_subject[i])) !=
                NATS_OK) {
                nats_fail(p, "subscribe", s);
                goto out;
            }
        }
        /* libnats' Flush would wait for a PONG this very loop has to read:
         * instead, a message to ourselves, sent after the SUBs on the same
         * connection, comes back once the server has them. */
        natsInbox *ib = NULL;
        if ((s = natsInbox_Create(&ib)) != NATS_OK) {
            nats_fail(p, "inbox", s);
            goto out;
        }
        snprintf(p->inbox, sizeof(p->inbox), "%s", (const char *)ib);
        natsInbox_Destroy(ib);
        if ((s = natsConnection_SubscribeSync(&p->probe, p->nc, p->inbox)) != NATS_OK ||
            (s = natsConnection_Publish(p->nc, p->inbox, "r", 1)) != NATS_OK) {
            nats_fail(p, "subscription probe", s);
            goto out;
        }
    } else {
        /* Connect waited for the server's PONG: the connection is up. */
        bench_xbase_ready(&p->b);
    }
out:
    natsOptions_Destroy(opts);
    return 0;
}

static int trigger(void *vp, const char *event, const void *data, size_t len) {
    npeer *p = vp;
    if (p->b.state != XS_READY)
        return DLG_ESTATE;
    const char *subj = bench_xbase_pub_subject(&p->b, event);
    if (subj == NULL)
        return DLG_EINVAL;
    natsStatus s = natsConnection_Publish(p->nc, subj, data, (int)len);
    if (s != NATS_OK) {
        nats_fail(p, "publish", s);
        return DLG_ECLOSED;
    }
    bench_xbase_ack_later(&p->b);
    return 0;
}

static void free_peer(void *vp) {
    npeer *p = vp;
    if (p == NULL)
        return;
    p->b.freeing = 1; /* detach comes from Close: nothing to report */
    if (p->nc != NULL) {
        /* libnats' Close waits up to 500 ms for a PONG while output is still
         * buffered, a PONG only this loop could read: write it out first.
         * And the connection closes before its subscriptions are destroyed
         * (destroying a live one buffers an UNSUB). The poll goes before
         * libnats closes the socket, so the loop never watches a descriptor
         * number that may be reused. */
        natsConnection_ProcessWriteEvent(p->nc);
        close_poll(p);
        natsConnection_Close(p->nc);
    }
    close_poll(p);
    for (int i = 0; i < 2; i++)
        natsSubscription_Destroy(p->sub[i]);
    natsSubscription_Destroy(p->probe);
    natsConnection_Destroy(p->nc);
    bench_xbase_free(&p->b);
}

const bench_target_ops bench_nats_ops = {
    .name = "nats",
    .no_tls = NULL,
    .new_peer = new_peer,
    .start = start,
    .trigger = trigger,
    .free_peer = free_peer,
};
