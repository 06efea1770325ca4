/* bus_nats.c: the cluster bus over NATS (see bus.h, docs/cluster.md): one
 * connection per node, one subscription per room with local interest, and
 * the hand-over of received messages from NATS threads to the loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include <nats/adapters/libuv.h> /* defines functions: this file only */

#include "bus_nats_int.h"
#include "dlg_alloc.h"
#include "dlg_clock.h"
#include "config.h"
#include "dlg_err.h"
#include "dlg_random.h"
#include "room.h"
#include "server.h"

/* ---- the inbox (any thread) -------------------------------------------- */

void dlg__nats_inbox_ref(inbox *ib) {
    uv_mutex_lock(&ib->mu);
    ib->refs++;
    uv_mutex_unlock(&ib->mu);
}

/* Frees what waits in ib and makes every later push free its item at
 * once (closing). Any thread. */
static void inbox_drain(inbox *ib) {
    uv_mutex_lock(&ib->mu);
    ib->closing = 1;
    inbox_item *list = ib->head;
    ib->head = ib->tail = NULL;
    ib->n = ib->bytes = 0;
    uv_mutex_unlock(&ib->mu);
    while (list) {
        inbox_item *it = list;
        list = it->next;
        dlg__nats_item_free(it);
    }
}

void dlg__nats_inbox_unref(inbox *ib) {
    uv_mutex_lock(&ib->mu);
    int left = --ib->refs;
    uv_mutex_unlock(&ib->mu);
    if (left > 0)
        return;
    inbox_drain(ib);
    uv_mutex_destroy(&ib->mu);
    free(ib);
}

/* Under ib->mu. */
static void wake_loop(inbox *ib) {
    if (!ib->closing)
        uv_async_send(ib->async);
}

void dlg__nats_item_free(inbox_item *it) {
    if (it == NULL)
        return;
    natsMsg_Destroy(it->msg);
    free(it->error);
    free(it);
}

void dlg__nats_inbox_push(inbox *ib, inbox_item *it) {
    uv_mutex_lock(&ib->mu);
    if (ib->closing || ib->n >= INBOX_MAX_MSGS || ib->bytes + it->bytes > INBOX_MAX_BYTES) {
        if (!ib->closing)
            ib->overflow++;
        wake_loop(ib); /* to log it */
        uv_mutex_unlock(&ib->mu);
        dlg__nats_item_free(it);
        return;
    }
    if (ib->tail)
        ib->tail->next = it;
    else
        ib->head = it;
    ib->tail = it;
    ib->n++;
    ib->bytes += it->bytes;
    wake_loop(ib);
    uv_mutex_unlock(&ib->mu);
}

void dlg__nats_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)nc;
    inbox *ib = closure;
    inbox_item *it = dlg_calloc(1, sizeof(*it));
    if (it == NULL) {
        uv_mutex_lock(&ib->mu);
        ib->overflow++;
        wake_loop(ib);
        uv_mutex_unlock(&ib->mu);
        natsMsg_Destroy(msg);
        return;
    }
    it->msg = msg;
    it->sub = sub;
    it->bytes = (size_t)natsMsg_GetDataLength(msg);
    dlg__nats_inbox_push(ib, it);
}

void dlg__nats_on_sub_complete(void *closure) {
    dlg__nats_inbox_unref(closure);
}

/* A LINK_* marker after the messages already queued (dropped, and counted
 * as an overflow, when the inbox is full: that is a gap too). */
static void push_link(inbox *ib, int link, const void *sub) {
    inbox_item *it = dlg_calloc(1, sizeof(*it));
    if (it == NULL) {
        uv_mutex_lock(&ib->mu);
        ib->overflow++;
        wake_loop(ib);
        uv_mutex_unlock(&ib->mu);
        return;
    }
    it->link = link;
    it->sub = sub;
    dlg__nats_inbox_push(ib, it);
}

static void on_disconnected(natsConnection *nc, void *closure) {
    (void)nc;
    inbox *ib = closure;
    uv_mutex_lock(&ib->mu);
    ib->disconnects++;
    wake_loop(ib);
    uv_mutex_unlock(&ib->mu);
    push_link(ib, LINK_LOST, NULL);
}

static void on_reconnected(natsConnection *nc, void *closure) {
    (void)nc;
    inbox *ib = closure;
    uv_mutex_lock(&ib->mu);
    ib->reconnects++;
    wake_loop(ib);
    uv_mutex_unlock(&ib->mu);
    /* libnats has sent the subscriptions again before this callback: from
     * here on, other nodes' events arrive again. */
    push_link(ib, LINK_BACK, NULL);
}

static void on_closed(natsConnection *nc, void *closure) {
    (void)nc;
    dlg__nats_inbox_unref(closure);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure) {
    (void)nc;
    inbox *ib = closure;
    uv_mutex_lock(&ib->mu);
    snprintf(ib->error, sizeof(ib->error), "%s%s", natsStatus_GetText(err),
             sub ? " (on a room subscription)" : "");
    wake_loop(ib);
    uv_mutex_unlock(&ib->mu);
    /* A log subscription that stopped hearing from its consumer (or could
     * not remake it after a failover) may stay silent for good: the loop
     * makes a new one (bus_log.c). The item names the subscription only. */
    if (sub && (err == NATS_MISSED_HEARTBEAT || err == NATS_TIMEOUT)) {
        inbox_item *it = dlg_calloc(1, sizeof(*it));
        if (it) {
            it->sub = sub;
            dlg__nats_inbox_push(ib, it);
        }
    }
    /* libnats dropped messages of a room subscription that fell behind. */
    if (sub && err == NATS_SLOW_CONSUMER)
        push_link(ib, LINK_SLOW, sub);
}

/* ---- the loop side ----------------------------------------------------- */

/* One line per kind of trouble per LOG_EVERY_MS, with what was not logged:
 * a broken peer must not flood the log with a line per event. */
void dlg__nats_warn(nats_bus *nb, int kind, const char *fmt, ...) {
    uint64_t now = dlg_wall_ms();
    if (nb->logged_ms[kind] && now - nb->logged_ms[kind] < LOG_EVERY_MS) {
        nb->unlogged[kind]++;
        return;
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (nb->unlogged[kind])
        dlg_log_warn(&nb->base.srv->log, "%s (and %llu more like it not logged)", msg,
                     (unsigned long long)nb->unlogged[kind]);
    else
        dlg_log_warn(&nb->base.srv->log, "%s", msg);
    nb->logged_ms[kind] = now;
    nb->unlogged[kind] = 0;
}

/* The connection or a subscription changed, in order with the messages.
 * Without the log, events other nodes published while this node was not
 * receiving them are gone: the rooms' members are told (Gap) when the link
 * is back. With the log nothing is lost: each room's consumer resumes from
 * the first event the room lacks (bus_log.c). */
static void handle_link(nats_bus *nb, const inbox_item *it) {
    dlg_bus *b = &nb->base;
    uint64_t now = dlg_wall_ms();
    char why[192];
    if (it->link == LINK_LOST) {
        if (nb->link_lost_ms == 0)
            nb->link_lost_ms = now ? now : 1;
        return;
    }
    if (it->link == LINK_BACK) {
        if (nb->link_lost_ms)
            snprintf(why, sizeof(why), "node %s was not connected to NATS for %.1f s",
                     nb->node_id, (double)(now - nb->link_lost_ms) / 1000.0);
        else
            snprintf(why, sizeof(why), "node %s reconnected to NATS", nb->node_id);
        nb->link_lost_ms = 0;
        if (nb->log == NULL) {
            dlg__bus_gap(b, NULL, why);
            dlg__bus_origins_reset(b); /* told already: no second Gap */
        }
        return;
    }
    if (nb->log)
        return;
    for (size_t i = 0; i < b->n_rooms; i++) {
        if (b->rooms[i].handle != it->sub)
            continue;
        snprintf(why, sizeof(why), "NATS dropped events of room %.64s for node %s (slow "
                 "consumer)", b->rooms[i].id, nb->node_id);
        dlg__bus_gap(b, b->rooms[i].id, why);
        return;
    }
}

/* Core mode may lose events between nodes (a NATS server that dies with
 * messages in its routes): each node numbers what it publishes per room
 * (HDR_SEQ), so a jump in one node's numbers is a loss this node's
 * members are told of (a Gap), even though this node's link never broke. */
static void check_origin_seq(nats_bus *nb, natsMsg *msg, const char *room, const char *origin) {
    const char *hs = NULL;
    if (origin == NULL || natsMsgHeader_Get(msg, HDR_SEQ, &hs) != NATS_OK || hs == NULL)
        return;
    char *end;
    uint64_t run = strtoull(hs, &end, 16);
    if (*end != '-')
        return;
    uint64_t n = strtoull(end + 1, &end, 10);
    if (*end != '\0' || n == 0)
        return;
    dlg_bus_room *br = dlg__bus_find(&nb->base, room);
    if (br == NULL)
        return;
    uint64_t skipped = dlg__bus_origin_note(br, origin, run, n);
    if (skipped == 0)
        return;
    char why[384];
    snprintf(why, sizeof(why), "%llu event(s) node %.64s published in room %.64s did not reach "
             "node %.64s", (unsigned long long)skipped, origin, room, nb->node_id);
    dlg__bus_gap(&nb->base, room, why);
}

/* Returns 1 when the log kept it (it is then its owner). */
static int handle_msg(nats_bus *nb, inbox_item *it) {
    natsMsg *msg = it->msg;
    dlg_bus *b = &nb->base;
    const char *origin = NULL;
    if (natsMsgHeader_Get(msg, HDR_NODE, &origin) != NATS_OK)
        origin = NULL;
    /* NoEcho keeps this node's own messages away, so one carrying its id
     * was sent by another node configured with the same node_id. With the
     * log, this node's own events come back from it like any other. */
    if (nb->log == NULL && origin && strcmp(origin, nb->node_id) == 0) {
        b->stats.received++;
        b->stats.dropped++;
        dlg__nats_warn(nb, LOG_SELF, "cluster: an event on %s carries this node's node_id %s: "
                     "another node uses the same node_id; its events are dropped here",
                     natsMsg_GetSubject(msg), nb->node_id);
        return 0;
    }
    char room[256], err[512];
    if (dlg_bus_subject_room(natsMsg_GetSubject(msg), room, sizeof(room)) < 0) {
        b->stats.received++;
        b->stats.dropped++;
        dlg__nats_warn(nb, LOG_RELAY, "cluster: message on subject \"%.300s\" from node %s "
                     "dropped: not a room subject", natsMsg_GetSubject(msg),
                     origin ? origin : "(none)");
        return 0;
    }
    if (nb->log)
        return dlg__nats_log_msg(nb, it, room);
    check_origin_seq(nb, msg, room, origin);
    uint32_t n;
    int rc = dlg_bus_relay(b->srv, b, room, (const uint8_t *)natsMsg_GetData(msg),
                           (size_t)natsMsg_GetDataLength(msg), &n, err, sizeof(err));
    if (rc != 0)
        dlg__nats_warn(nb, LOG_RELAY, "cluster: event from node %s dropped: %s",
                     origin ? origin : "(none)", err);
    return 0;
}

static void on_async(uv_async_t *h) {
    nats_bus *nb = h->data;
    inbox *ib = nb->ib;
    uv_mutex_lock(&ib->mu);
    /* While the log is set up, room events wait (their room's position is
     * not known yet); answers to triggers go through. */
    inbox_item *list = NULL, **lt = &list;
    if (ib->hold) {
        inbox_item **pp = &ib->head;
        ib->tail = NULL;
        while (*pp) {
            inbox_item *it = *pp;
            if (it->msg == NULL) {
                *pp = it->next;
                it->next = NULL;
                *lt = it;
                lt = &it->next;
                ib->n--;
            } else {
                ib->tail = it;
                pp = &it->next;
            }
        }
    } else {
        list = ib->head;
        ib->head = ib->tail = NULL;
        ib->n = ib->bytes = 0;
    }
    uint64_t overflow = ib->overflow;
    uint32_t disc = ib->disconnects, reco = ib->reconnects;
    char error[sizeof(ib->error)];
    memcpy(error, ib->error, sizeof(error));
    ib->overflow = 0;
    ib->disconnects = ib->reconnects = 0;
    ib->error[0] = '\0';
    uv_mutex_unlock(&ib->mu);

    dlg_server *srv = nb->base.srv;
    if (disc)
        dlg_log_warn(&srv->log, "cluster: node %s lost its NATS connection; reconnecting "
                     "(events of other nodes published meanwhile are not received)",
                     nb->node_id);
    if (reco) {
        char url[256] = "";
        natsConnection_GetConnectedUrl(nb->nc, url, sizeof(url));
        dlg_log_info(&srv->log, "cluster: node %s reconnected to NATS at %s", nb->node_id,
                     url[0] ? url : "(unknown)");
    }
    if (error[0])
        dlg_log_warn(&srv->log, "cluster: NATS reports: %s", error);
    if (overflow) {
        nb->base.stats.received += overflow;
        nb->base.stats.dropped += overflow;
        dlg__nats_warn(nb, LOG_OVERFLOW, "cluster: %llu event(s) from other nodes dropped: more "
                     "than %u messages or %u MiB waited for the loop",
                     (unsigned long long)overflow, INBOX_MAX_MSGS, INBOX_MAX_BYTES >> 20);
        /* Which rooms lost them is not known here: every room is told. The
         * log needs nothing: its gap check fetches what is missing. */
        if (nb->log == NULL && !nb->base.stopped)
            dlg__bus_gap(&nb->base, NULL, "events of other nodes were dropped: this node's "
                         "inbox was full");
    }
    while (list) {
        inbox_item *it = list;
        list = it->next;
        if (nb->base.stopped)
            ;
        else if (it->link)
            handle_link(nb, it);
        else if (it->msg && it->ticket) {
            dlg__nats_log_retry(nb, it);
            continue;
        } else if (!it->msg && !it->ticket && it->sub) {
            if (nb->log)
                dlg__nats_log_stalled(nb, it->sub);
        } else if (it->msg && handle_msg(nb, it)) {
            continue;
        }
        else
            dlg__bus_ack_done(&nb->base, it->ticket, it->seq, it->error);
        dlg__nats_item_free(it);
    }
}

/* ---- the bus operations ------------------------------------------------ */

static void nats_publish(dlg_bus *b, const dlg_room *r, const char *event, dlg_buf *frame) {
    nats_bus *nb = (nats_bus *)b;
    if (nb->log)
        return; /* a room outside the log (made at run time): this node's only */
    char subj[SUBJECT_MAX];
    natsMsg *m = NULL;
    natsStatus s = NATS_ERR;
    if (dlg_bus_subject(r->id, subj, sizeof(subj)) >= 0 && frame->len <= INT32_MAX) {
        /* One copy into the message, one into the connection's buffer:
         * the frame itself stays shared with the local recipients. */
        s = natsMsg_Create(&m, subj, NULL, (const char *)frame->data, (int)frame->len);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, HDR_NODE, nb->node_id);
        char seq[48];
        snprintf(seq, sizeof(seq), "%llx-%llu", (unsigned long long)nb->run,
                 (unsigned long long)r->fwd_seq);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, HDR_SEQ, seq);
        if (s == NATS_OK)
            s = natsConnection_PublishMsg(nb->nc, m);
        natsMsg_Destroy(m);
    }
    if (s == NATS_OK) {
        b->stats.published++;
        return;
    }
    b->stats.publish_failed++;
    dlg__nats_warn(nb, LOG_PUBLISH, "cluster: event %s of room %s (%zu bytes) not sent to the "
                 "other nodes: %s%s", event, r->id, frame->len, natsStatus_GetText(s),
                 s == NATS_MAX_PAYLOAD ? " (raise max_payload on the NATS servers above "
                                         "limits.max_frame)" : "");
}

static int nats_interest(dlg_bus *b, const char *room, int on, void **handle) {
    nats_bus *nb = (nats_bus *)b;
    if (!on) {
        natsSubscription *sub = *handle;
        *handle = NULL;
        if (sub) {
            natsSubscription_Unsubscribe(sub);
            natsSubscription_Destroy(sub);
        }
        return 0;
    }
    char subj[SUBJECT_MAX];
    if (dlg_bus_subject(room, subj, sizeof(subj)) < 0)
        return DLG_EINVAL;
    natsSubscription *sub = NULL;
    dlg__nats_inbox_ref(nb->ib); /* the subscription's, given back when it completes */
    natsStatus s = natsConnection_Subscribe(&sub, nb->nc, subj, dlg__nats_on_msg, nb->ib);
    if (s != NATS_OK) {
        dlg__nats_inbox_unref(nb->ib);
        dlg_log_error(&b->srv->log, "cluster: cannot subscribe to %s for room %s: %s", subj,
                      room, natsStatus_GetText(s));
        return DLG_EIO;
    }
    s = natsSubscription_SetOnCompleteCB(sub, dlg__nats_on_sub_complete, nb->ib);
    if (s != NATS_OK) {
        /* Nobody will give the reference back: keep the inbox (a few
         * bytes) rather than risk freeing it under a late callback. */
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        dlg_log_error(&b->srv->log, "cluster: cannot watch the subscription of room %s: %s",
                      room, natsStatus_GetText(s));
        return DLG_EIO;
    }
    *handle = sub;
    return 0;
}

static void close_async(nats_bus *nb) {
    uv_mutex_lock(&nb->ib->mu);
    nb->ib->closing = 1;
    uv_mutex_unlock(&nb->ib->mu);
    if (nb->async_open)
        uv_close((uv_handle_t *)&nb->async, NULL);
    nb->async_open = 0;
}

static void nats_stop(dlg_bus *b);

static int nats_start(dlg_bus *b) {
    nats_bus *nb = (nats_bus *)b;
    dlg_server *srv = b->srv;
    natsLibuv_Init();
    /* The adapter runs socket events itself when called on this thread,
     * and schedules them through its uv_async from the others. */
    natsLibuv_SetThreadLocalLoop(srv->loop);
    natsStatus s = natsOptions_SetEventLoop(nb->opts, srv->loop, natsLibuv_Attach,
                                            natsLibuv_Read, natsLibuv_Write, natsLibuv_Detach);
    if (s != NATS_OK) {
        dlg_log_error(&srv->log, "cluster: cannot attach NATS to the loop: %s",
                      natsStatus_GetText(s));
        return DLG_EINTERNAL;
    }
    if (uv_async_init(srv->loop, &nb->async, on_async) != 0) {
        dlg_log_error(&srv->log, "cluster: cannot create the NATS inbox handle");
        return DLG_EINTERNAL;
    }
    nb->async.data = nb;
    nb->async_open = 1;
    nb->ib->async = &nb->async;
    dlg__nats_inbox_ref(nb->ib); /* the connection's, given back by on_closed */
    s = natsConnection_Connect(&nb->nc, nb->opts);
    if (s != NATS_OK) {
        /* A failed connect makes no callback: the reference is ours. */
        dlg__nats_inbox_unref(nb->ib);
        const char *why = nats_GetLastError(NULL);
        dlg_log_error(&srv->log, "cluster: node %s cannot connect to NATS (%s): %s",
                      nb->node_id, nb->servers, why && *why ? why : natsStatus_GetText(s));
        nb->nc = NULL;
        close_async(nb);
        return DLG_EIO;
    }
    char url[256] = "";
    natsConnection_GetConnectedUrl(nb->nc, url, sizeof(url));
    dlg_log_info(&srv->log, "cluster: node %s connected to NATS at %s (servers: %s)",
                 nb->node_id, url, nb->servers);
    if (nb->log) {
        int rc = dlg__nats_log_start(nb);
        if (rc != 0)
            nats_stop(b); /* the bus is left stopped: close what start opened */
        return rc;
    }
    return 0;
}

static void nats_stop(dlg_bus *b) {
    nats_bus *nb = (nats_bus *)b;
    if (nb->ib->async == NULL)
        return; /* never started */
    close_async(nb);
    if (nb->log)
        dlg__nats_log_stop(nb);
    if (nb->nc)
        natsConnection_Close(nb->nc); /* closes every subscription */
    for (size_t i = 0; i < b->n_rooms; i++) {
        natsSubscription_Destroy(b->rooms[i].handle);
        b->rooms[i].handle = NULL;
    }
}

static void nats_free(dlg_bus *b) {
    nats_bus *nb = (nats_bus *)b;
    dlg__nats_log_free(nb->log);
    natsConnection_Destroy(nb->nc);
    natsOptions_Destroy(nb->opts);
    /* The messages still in the inbox go now, while the library runs:
     * natsMsg_Destroy hands a message to libnats's collector thread, which
     * nats_CloseAndWait ends. Freed after it, one was left unfreed at exit
     * (LeakSanitizer, test_cluster and test_cluster_log, about one run in
     * four) or, once the library's state was gone, crashed the stop
     * (natsGC_collect, a SEGV under ASan in test_cluster_log). */
    inbox_drain(nb->ib);
    /* libnats may still run a callback (an error reported after the closed
     * callback was seen at shutdown) on its own threads: wait for them all
     * before the inbox can go. The daemon has one bus, freed at exit. If
     * they do not stop in time, the inbox is kept (a few bytes) rather
     * than freed under a late callback. The wait is longer than a
     * JetStream request (API_WAIT_MS, 5 s): libnats remakes a stalled
     * ordered consumer on a thread of its own, whose request may still
     * run at the stop; 5 s here was seen to end just before it, and the
     * kept inbox was reported at exit (asan:test_cluster_log, 2 of 12). */
    if (nb->nc == NULL || nats_CloseAndWait(8000) == NATS_OK)
        dlg__nats_inbox_unref(nb->ib);
    free(nb->node_id);
    free(nb);
}

static const dlg_bus_ops nats_ops = {
    .name = "nats",
    .start = nats_start,
    .publish = nats_publish,
    .interest = nats_interest,
    .log_room = dlg__nats_log_room,
    .log_publish = dlg__nats_log_publish,
    .stop = nats_stop,
    .free = nats_free,
};

/* ---- construction ------------------------------------------------------ */

/* Sets what cc asks for on o; err names the key at fault. */
static int apply_config(nats_bus *nb, const dlg_config_cluster *cc, char *err, size_t errlen) {
    natsOptions *o = nb->opts;
    char name[96];
    int secure = cc->tls;
    for (size_t i = 0; i < cc->nats.n; i++)
        secure |= strncmp(cc->nats.v[i], "tls://", 6) == 0;
    snprintf(name, sizeof(name), "dialogued %s", nb->node_id);
    natsStatus s = natsOptions_SetServers(o, (const char **)cc->nats.v, (int)cc->nats.n);
    if (s != NATS_OK) {
        snprintf(err, errlen, "cluster.nats: %s", natsStatus_GetText(s));
        return DLG_ECONFIG;
    }
    /* The server never sends a node its own messages: the origin has
     * delivered them locally already (exactly once per member). */
    if ((s = natsOptions_SetNoEcho(o, true)) != NATS_OK ||
        (s = natsOptions_SetName(o, name)) != NATS_OK ||
        /* One pool of delivery threads, not a thread per room. */
        (s = natsOptions_UseGlobalMessageDelivery(o, true)) != NATS_OK ||
        /* A node without NATS keeps serving its own members, and keeps
         * trying: it never gives the cluster up by itself. */
        (s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
        (s = natsOptions_SetDisconnectedCB(o, on_disconnected, nb->ib)) != NATS_OK ||
        (s = natsOptions_SetReconnectedCB(o, on_reconnected, nb->ib)) != NATS_OK ||
        (s = natsOptions_SetClosedCB(o, on_closed, nb->ib)) != NATS_OK ||
        (s = natsOptions_SetErrorHandler(o, on_error, nb->ib)) != NATS_OK) {
        snprintf(err, errlen, "cluster: cannot set NATS options: %s", natsStatus_GetText(s));
        return s == NATS_NO_MEMORY ? DLG_ENOMEM : DLG_EINTERNAL;
    }
    if (cc->creds) {
        /* libnats reads the file at connect time; say now if it cannot. */
        if (access(cc->creds, R_OK) != 0) {
            snprintf(err, errlen, "cluster.creds: cannot read %s: %s", cc->creds,
                     strerror(errno));
            return DLG_ECONFIG;
        }
        if ((s = natsOptions_SetUserCredentialsFromFiles(o, cc->creds, NULL)) != NATS_OK) {
            snprintf(err, errlen, "cluster.creds: %s: %s", cc->creds, natsStatus_GetText(s));
            return DLG_ECONFIG;
        }
    }
    if (secure && (s = natsOptions_SetSecure(o, true)) != NATS_OK) {
        snprintf(err, errlen, "cluster.tls: %s", natsStatus_GetText(s));
        return DLG_ECONFIG;
    }
    if (cc->tls_ca && (s = natsOptions_LoadCATrustedCertificates(o, cc->tls_ca)) != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        snprintf(err, errlen, "cluster.tls.ca: cannot load %s: %s", cc->tls_ca,
                 why && *why ? why : natsStatus_GetText(s));
        return DLG_ECONFIG;
    }
    if (cc->tls_cert &&
        (s = natsOptions_LoadCertificatesChain(o, cc->tls_cert, cc->tls_key)) != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        snprintf(err, errlen, "cluster.tls: cannot load cert %s / key %s: %s", cc->tls_cert,
                 cc->tls_key, why && *why ? why : natsStatus_GetText(s));
        return DLG_ECONFIG;
    }
    return 0;
}

int dlg__bus_nats_new(dlg_server *srv, const dlg_config_cluster *cc, dlg_bus **out, char *err,
                      size_t errlen) {
    int rc = DLG_ENOMEM;
    nats_bus *nb = dlg_calloc(1, sizeof(*nb));
    if (nb == NULL)
        goto fail;
    nb->base.ops = &nats_ops;
    nb->base.srv = srv;
    nb->run = dlg_random_epoch();
    if ((nb->node_id = dlg_strdup(cc->node_id)) == NULL)
        goto fail_bus;
    if ((nb->ib = dlg_calloc(1, sizeof(*nb->ib))) == NULL)
        goto fail_id;
    if (uv_mutex_init(&nb->ib->mu) != 0) {
        free(nb->ib);
        goto fail_id;
    }
    nb->ib->refs = 1;
    size_t o = 0;
    for (size_t i = 0; i < cc->nats.n && o < sizeof(nb->servers); i++)
        o += (size_t)snprintf(nb->servers + o, sizeof(nb->servers) - o, "%s%s", i ? ", " : "",
                              cc->nats.v[i]);
    if (natsOptions_Create(&nb->opts) != NATS_OK)
        goto fail_ib;
    if ((rc = apply_config(nb, cc, err, errlen)) != 0)
        goto fail_opts;
    if (cc->log) {
        if ((rc = dlg__nats_log_new(nb, cc)) != 0)
            goto fail_opts;
        nb->base.follow_all = 1;
    }
    *out = &nb->base;
    return 0;

fail_opts:
    natsOptions_Destroy(nb->opts);
fail_ib:
    dlg__nats_inbox_unref(nb->ib);
fail_id:
    free(nb->node_id);
fail_bus:
    free(nb);
fail:
    if (rc == DLG_ENOMEM)
        snprintf(err, errlen, "cluster: out of memory setting up node %s", cc->node_id);
    return rc;
}
