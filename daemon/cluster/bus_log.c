/* bus_log.c: the cluster log (docs/cluster.md): each configured room's
 * events go through a JetStream stream of their own, which numbers them;
 * every node, the origin included, delivers them from there, so seq, epoch
 * and history are the same on every node. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bus_nats_int.h"
#include "config.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "history.h"
#include "room.h"
#include "server.h"

#define HDR_MSG_ID "Nats-Msg-Id"
#define HDR_TRY "Dialogue-Try"
/* A stream without a leader (its NATS server died; JetStream elects
 * another within 4-9 s) answers "no responders": the trigger is sent
 * again every RETRY_MS. A trigger that gets no answer within
 * PUBLISH_TRY_WAIT_MS (it was on its way to the server that died, or its
 * answer was) is sent again too, and counts as PUBLISH_TRY_WAIT_MS /
 * RETRY_MS tries: past RETRY_MAX tries (10-12 s) it is refused. The
 * message id makes a copy that did get stored harmless: JetStream answers
 * a resent copy with the seq it stored the first one at (issue 24: these
 * were refused after 5 s although they had been, or could still be,
 * stored). */
#define RETRY_MS 250
#define RETRY_MAX 40
#define PUBLISH_TRY_WAIT_MS 2000
/* How long a node waits for JetStream to answer at start (a new cluster
 * elects its JetStream leaders first) and to catch up with history. */
#define SETUP_WAIT_MS 30000
#define CATCHUP_WAIT_MS 15000
/* JetStream API requests (stream info, consumers) made at start. */
#define API_WAIT_MS 5000
/* The consumers' idle heartbeat. A consumer dies with the NATS server it
 * was placed on, which is any replica of the stream (JetStream puts an
 * ordered consumer, R1, on a random one), leader or not; libnats reports
 * it after two heartbeat intervals without a message, so this bounds how
 * long a node goes without noticing (issue 24: 1 s made it 2-4 s). */
#define HEARTBEAT_MS 500
/* A new subscription is a JetStream API request that gets no answer
 * while the API has no leader (its NATS server died: JetStream elects
 * another within 4-9 s), and none either when JetStream puts the new
 * consumer on a replica that is down (nats-server 2.9 picks among all the
 * stream's replicas, dead or alive: a third of the attempts after one of
 * three servers died). So it is asked with a short timeout and asked again
 * at once; creating a consumer takes milliseconds otherwise. */
#define RESYNC_WAIT_MS 500
#define RESYNC_RETRY_MS 100
/* Stream names are directory names on the NATS servers: keep them short. */
#define STREAM_MAX 200

typedef struct log_room {
    char *id;                       /* sorted like srv->rooms */
    char subject[SUBJECT_MAX];
    char stream[STREAM_MAX + 1];
    uint64_t keep;                  /* events the node's history can hold */
    /* Set by the setup thread, read by the loop once it is done. */
    natsSubscription *sub;
    uint64_t epoch, start, last;
    char err[320];
    /* Loop thread, after set-up. */
    int fresh;                      /* the next event of sub is its first */
    int resyncing;                  /* a new subscription is being made */
    const void *old_sub;            /* ...replacing this one, whose events
                                       are dropped meanwhile */
    inbox_item *parked, **parked_tail; /* ...and the new one's events that
                                       came before it was known */
    size_t n_parked;
    uint64_t resync_from;           /* ...or waits for the timer (0 = none) */
    uint64_t last_msg_ms;           /* when sub last delivered (mono_ms) */
} log_room;

struct nats_log {
    jsCtx *js;
    jsCtx *js_resync;               /* the same with RESYNC_WAIT_MS requests */
    uint32_t replicas;
    uint64_t max_events;
    uint32_t max_age_s;
    int memory;
    uint64_t nonce;                 /* tells this run's message ids apart */
    log_room *rooms;
    size_t n;
    nats_bus *nb;                   /* borrowed (the thread reads its nc) */
    atomic_int done;
    int inbox_ref;                  /* the ack handler's reference taken */
    uint64_t drop_seq;              /* test fault: lose this event once (the
                                       DIALOGUE_TEST_LOG_DROP variable) */
    uv_timer_t retry_timer;         /* open from start to stop */
    uv_timer_t resync_timer;        /* idem: retries a failed resubscription */
    int timer_open;
    int works;                      /* resubscriptions in flight */
    inbox_item *retry;              /* triggers to send again (loop thread) */
};

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int dlg__nats_log_new(nats_bus *nb, const dlg_config_cluster *cc) {
    struct nats_log *lg = dlg_calloc(1, sizeof(*lg));
    if (lg == NULL)
        return DLG_ENOMEM;
    lg->replicas = cc->log_replicas ? cc->log_replicas : cc->nats.n < 3 ? (uint32_t)cc->nats.n : 3;
    lg->max_events = cc->log_max_events;
    lg->max_age_s = cc->log_max_age_s;
    lg->memory = cc->log_memory;
    if (getrandom(&lg->nonce, sizeof(lg->nonce), 0) != sizeof(lg->nonce))
        lg->nonce = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)lg;
    lg->nb = nb;
    /* Tests make a node lose one event the way a failover can, to see the
     * gap repaired; nothing else reads it. */
    const char *drop = getenv("DIALOGUE_TEST_LOG_DROP");
    if (drop)
        lg->drop_seq = strtoull(drop, NULL, 10);
    nb->log = lg;
    return 0;
}

void dlg__nats_log_free(struct nats_log *lg) {
    if (lg == NULL)
        return;
    for (size_t i = 0; i < lg->n; i++) {
        while (lg->rooms[i].parked) {
            inbox_item *it = lg->rooms[i].parked;
            lg->rooms[i].parked = it->next;
            dlg__nats_item_free(it);
        }
        natsSubscription_Destroy(lg->rooms[i].sub);
        free(lg->rooms[i].id);
    }
    free(lg->rooms);
    jsCtx_Destroy(lg->js);
    jsCtx_Destroy(lg->js_resync);
    if (lg->inbox_ref)
        dlg__nats_inbox_unref(lg->nb->ib);
    free(lg);
}

static log_room *find(const struct nats_log *lg, const char *room) {
    size_t lo = 0, hi = lg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(room, lg->rooms[mid].id);
        if (c == 0)
            return &lg->rooms[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* "DLG_" + the subject's room token ('%' is allowed in stream names, '.'
 * is not, and the token has none); long ids by their hash. */
static void stream_name(const char *subject, char *out) {
    const char *tok = subject + strlen("dialogue.room.");
    if (strlen(tok) + 4 <= STREAM_MAX) {
        snprintf(out, STREAM_MAX + 1, "DLG_%s", tok);
        return;
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a: a name, not security */
    for (const char *p = tok; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, STREAM_MAX + 1, "DLG_%.120s_%016" PRIx64, tok, h);
}

/* ---- the answers to triggers (a libnats thread) ------------------------ */

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
    (void)js;
    inbox *ib = closure;
    const char *id = NULL;
    inbox_item *it = dlg_calloc(1, sizeof(*it));
    if (it && natsMsgHeader_Get(msg, HDR_MSG_ID, &id) == NATS_OK && id) {
        const char *colon = strrchr(id, ':');
        it->ticket = colon ? strtoull(colon + 1, NULL, 10) : 0;
        const char *tries = NULL;
        if (natsMsgHeader_Get(msg, HDR_TRY, &tries) != NATS_OK || tries == NULL)
            tries = "0";
        int again = pae == NULL ? 0
                    : pae->Err == NATS_NO_RESPONDERS ? 1
                    : pae->Err == NATS_TIMEOUT ? PUBLISH_TRY_WAIT_MS / RETRY_MS : 0;
        int n = atoi(tries) + again;
        char count[16];
        snprintf(count, sizeof(count), "%d", n);
        if (again && n <= RETRY_MAX && it->ticket &&
            natsMsgHeader_Set(msg, HDR_TRY, count) == NATS_OK) {
            it->msg = msg; /* the loop sends it again */
            dlg__nats_inbox_push(ib, it);
            return;
        }
        if (pa) {
            it->seq = pa->Sequence;
        } else {
            char why[256];
            snprintf(why, sizeof(why), "%s%s%s",
                     pae && pae->ErrText ? pae->ErrText : "",
                     pae && pae->ErrText ? ": " : "",
                     natsStatus_GetText(pae ? pae->Err : NATS_ERR));
            if ((it->error = dlg_strdup(why)) == NULL)
                it->ticket = 0;
        }
    }
    if (it && it->ticket)
        dlg__nats_inbox_push(ib, it);
    else
        free(it);
    natsMsg_Destroy(msg);
}

/* ---- set-up (a thread of its own: the JetStream API is request/reply) -- */

static int stream_info(struct nats_log *lg, log_room *lr, jsStreamInfo **si) {
    uint64_t deadline = mono_ms() + SETUP_WAIT_MS;
    for (;;) {
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(si, lg->js, lr->stream, NULL, &jerr);
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
            jsStreamConfig cfg;
            const char *subjects[1] = {lr->subject};
            jsStreamConfig_Init(&cfg);
            cfg.Name = lr->stream;
            cfg.Subjects = subjects;
            cfg.SubjectsLen = 1;
            cfg.Storage = lg->memory ? js_MemoryStorage : js_FileStorage;
            cfg.Replicas = (int64_t)lg->replicas;
            cfg.MaxMsgs = (int64_t)lg->max_events;
            cfg.MaxAge = (int64_t)lg->max_age_s * 1000000000;
            cfg.Discard = js_DiscardOld;
            jerr = 0;
            s = js_AddStream(si, lg->js, &cfg, NULL, &jerr);
            /* Another node made it first with the same config: fine. */
            if (s != NATS_OK && jerr == JSStreamNameExistErr)
                continue;
        }
        if (s == NATS_OK)
            return 0;
        if (mono_ms() >= deadline) {
            const char *why = nats_GetLastError(NULL);
            snprintf(lr->err, sizeof(lr->err), "stream %s for room %s: %s (JetStream error %d)",
                     lr->stream, lr->id, why && *why ? why : natsStatus_GetText(s), (int)jerr);
            return -1;
        }
        /* JetStream not ready yet (a cluster still electing its leaders). */
        struct timespec ts = {0, 250 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* An ordered push consumer of lr's stream from seq `from`, delivering to
 * the inbox. Any thread but the loop's (request/reply). */
static int subscribe(struct nats_log *lg, jsCtx *js, const log_room *lr, uint64_t from,
                     natsSubscription **out, char *err, size_t errlen) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = lr->stream;
    so.Ordered = true; /* in order, restarted by libnats after a failover */
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    /* A consumer lost with its NATS server is noticed after two missed
     * heartbeats (libnats's default is 5 s each): then a new one is made. */
    so.Config.Heartbeat = (int64_t)HEARTBEAT_MS * 1000000;
    inbox *ib = lg->nb->ib;
    dlg__nats_inbox_ref(ib); /* the subscription's, given back when it completes */
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe(out, js, lr->subject, dlg__nats_on_msg, ib, NULL, &so, &jerr);
    if (s != NATS_OK) {
        dlg__nats_inbox_unref(ib);
        *out = NULL;
        const char *why = nats_GetLastError(NULL);
        snprintf(err, errlen, "cannot follow stream %s of room %s from %" PRIu64 ": %s "
                 "(JetStream error %d)", lr->stream, lr->id, from,
                 why && *why ? why : natsStatus_GetText(s), (int)jerr);
        return -1;
    }
    if (natsSubscription_SetOnCompleteCB(*out, dlg__nats_on_sub_complete, ib) != NATS_OK) {
        /* Nobody gives that reference back: a few bytes kept, never a
         * use after free. */
        snprintf(err, errlen, "cannot watch the subscription of room %s", lr->id);
        return -1;
    }
    return 0;
}

static int follow(struct nats_log *lg, log_room *lr) {
    jsStreamInfo *si = NULL;
    if (stream_info(lg, lr, &si) != 0)
        return -1;
    /* The epoch names the stream's lineage: a stream deleted and made again
     * starts a new one, as a lost history does on a single node. */
    lr->epoch = (uint64_t)si->Created % ((UINT64_C(1) << 63) - 1) + 1;
    lr->last = si->State.LastSeq;
    uint64_t held = si->State.Msgs;
    uint64_t back = lr->keep < held ? lr->keep : held;
    lr->start = lr->last + 1 - back;
    if (si->State.FirstSeq > lr->start && back)
        lr->start = si->State.FirstSeq;
    jsStreamInfo_Destroy(si);

    lr->fresh = 1;
    return subscribe(lg, lg->js, lr, lr->start, &lr->sub, lr->err, sizeof(lr->err));
}

static void setup_thread(void *arg) {
    struct nats_log *lg = arg;
    for (size_t i = 0; i < lg->n; i++)
        if (follow(lg, &lg->rooms[i]) != 0)
            break;
    atomic_store(&lg->done, 1);
    uv_mutex_lock(&lg->nb->ib->mu);
    uv_async_send(&lg->nb->async);
    uv_mutex_unlock(&lg->nb->ib->mu);
}

static void on_tick(uv_timer_t *t) {
    (void)t; /* only wakes the loop so that the waits below see the clock */
}

static void hold(inbox *ib, int on) {
    uv_mutex_lock(&ib->mu);
    ib->hold = on;
    uv_mutex_unlock(&ib->mu);
}

static int caught_up(const nats_bus *nb) {
    const struct nats_log *lg = nb->log;
    for (size_t i = 0; i < lg->n; i++) {
        const dlg_room *r = dlg_rooms_find(nb->base.srv->rooms, lg->rooms[i].id);
        if (r && r->seq < lg->rooms[i].last)
            return 0;
    }
    return 1;
}

int dlg__nats_log_start(nats_bus *nb) {
    struct nats_log *lg = nb->log;
    dlg_server *srv = nb->base.srv;
    const dlg_rooms *rs = srv->rooms;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = API_WAIT_MS;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = nb->ib;
    jo.PublishAsync.MaxPending = 65536;
    jo.PublishAsync.StallWait = 50; /* blocks the loop at most that long */
    natsStatus s = natsConnection_JetStream(&lg->js, nb->nc, &jo);
    if (s == NATS_OK) {
        jsOptions jr;
        jsOptions_Init(&jr);
        jr.Wait = RESYNC_WAIT_MS;
        s = natsConnection_JetStream(&lg->js_resync, nb->nc, &jr);
    }
    if (s != NATS_OK) {
        dlg_log_error(&srv->log, "cluster: cannot use JetStream: %s", natsStatus_GetText(s));
        return DLG_EIO;
    }
    dlg__nats_inbox_ref(nb->ib);
    lg->inbox_ref = 1;
    uv_timer_init(srv->loop, &lg->retry_timer);
    lg->retry_timer.data = lg;
    uv_timer_init(srv->loop, &lg->resync_timer);
    lg->resync_timer.data = lg;
    lg->timer_open = 1;
    if ((lg->rooms = dlg_calloc(rs->n ? rs->n : 1, sizeof(*lg->rooms))) == NULL)
        return DLG_ENOMEM;
    for (size_t i = 0; i < rs->n; i++) {
        const dlg_room *r = rs->v[i];
        log_room *lr = &lg->rooms[lg->n];
        if ((lr->id = dlg_strdup(r->id)) == NULL)
            return DLG_ENOMEM;
        lg->n++;
        if (dlg_bus_subject(r->id, lr->subject, sizeof(lr->subject)) < 0)
            return DLG_EINVAL;
        stream_name(lr->subject, lr->stream);
        uint64_t keep = r->hist ? dlg_hroom_capacity(r->hist, r->any_event ? 64 : r->n_events)
                                : 0;
        lr->keep = keep < lg->max_events ? keep : lg->max_events;
    }

    /* The loop must run for the JetStream replies to be read, but room
     * events stay queued until every room's position is known. */
    hold(nb->ib, 1);
    uv_timer_t tick;
    uv_timer_init(srv->loop, &tick);
    uv_timer_start(&tick, on_tick, 100, 100);
    uv_thread_t th;
    int rc = 0;
    if (uv_thread_create(&th, setup_thread, lg) != 0) {
        dlg_log_error(&srv->log, "cluster: cannot start the log set-up thread");
        rc = DLG_EINTERNAL;
        goto out;
    }
    while (!atomic_load(&lg->done))
        uv_run(srv->loop, UV_RUN_ONCE);
    uv_thread_join(&th);
    for (size_t i = 0; i < lg->n; i++)
        if (lg->rooms[i].err[0]) {
            dlg_log_error(&srv->log, "cluster: log: %s", lg->rooms[i].err);
            rc = DLG_EIO;
            goto out;
        }
    for (size_t i = 0; i < lg->n; i++) {
        log_room *lr = &lg->rooms[i];
        dlg_room *r = dlg_rooms_find(rs, lr->id);
        if (r) {
            r->epoch = lr->epoch;
            r->seq = lr->start - 1;
        }
    }
    hold(nb->ib, 0);
    uv_async_send(&nb->async);
    uint64_t deadline = mono_ms() + CATCHUP_WAIT_MS;
    while (!caught_up(nb) && mono_ms() < deadline)
        uv_run(srv->loop, UV_RUN_ONCE);
    if (!caught_up(nb))
        dlg_log_warn(&srv->log, "cluster: log: history not caught up after %u ms; serving "
                     "anyway (it fills in as events arrive)", CATCHUP_WAIT_MS);
    nb->base.stats.interests = (uint32_t)lg->n;
    dlg_log_info(&srv->log, "cluster: log ready: %zu room(s) followed through JetStream "
                 "(replicas %u, at most %llu events per room%s)", lg->n, lg->replicas,
                 (unsigned long long)lg->max_events, lg->memory ? ", in memory" : "");
out:
    hold(nb->ib, 0);
    uv_timer_stop(&tick);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(srv->loop, UV_RUN_NOWAIT); /* the timer is on this stack */
    return rc;
}

/* ---- the loop side ----------------------------------------------------- */

/* ---- gaps: a new subscription from the first missing event ----------- */

/* libnats's ordered consumer restarts itself after a failover, but an event
 * it had counted as delivered can be missing here (seen once in about a
 * dozen runs of the NATS-server-killed test). A node never delivers past a
 * gap: it drops the old subscription and makes a new one from the first
 * event it lacks, and only the new one's events count from then on. */
typedef struct resync_work {
    uv_work_t req;
    struct nats_log *lg;
    log_room *lr;
    uint64_t from;
    natsSubscription *old, *sub;
    int rc;
    char err[320];
} resync_work;

static void resync_run(uv_work_t *req) {
    resync_work *w = req->data;
    w->rc = subscribe(w->lg, w->lg->js_resync, w->lr, w->from, &w->sub, w->err,
                      sizeof(w->err));
}

/* A replaced subscription is dropped off the loop and after its successor
 * is made: deleting its consumer is a JetStream request, which waits for
 * the API timeout when the consumer's NATS server is gone (issue 24: that
 * wait used to come before the new subscription, up to 5 s more of
 * delay). Its events are ignored meanwhile (not the room's sub). */
typedef struct retire_work {
    uv_work_t req;
    natsSubscription *sub;
} retire_work;

static void retire_run(uv_work_t *req) {
    retire_work *w = req->data;
    natsSubscription_Unsubscribe(w->sub);
    natsSubscription_Destroy(w->sub);
}

static void retire_done(uv_work_t *req, int status) {
    (void)status;
    free(req->data);
}

static void retire(struct nats_log *lg, natsSubscription *sub) {
    if (sub == NULL)
        return;
    retire_work *w = dlg_calloc(1, sizeof(*w));
    if (w) {
        w->req.data = w;
        w->sub = sub;
        if (uv_queue_work(lg->nb->base.srv->loop, &w->req, retire_run, retire_done) == 0)
            return;
        free(w);
    }
    natsSubscription_Destroy(sub); /* out of memory: here, then */
}

static void resync(struct nats_log *lg, log_room *lr, uint64_t from);

static void on_resync_timer(uv_timer_t *t) {
    struct nats_log *lg = t->data;
    for (size_t i = 0; i < lg->n; i++)
        if (lg->rooms[i].resync_from && !lg->rooms[i].resyncing)
            resync(lg, &lg->rooms[i], lg->rooms[i].resync_from);
}

static void resync_done(uv_work_t *req, int status) {
    resync_work *w = req->data;
    struct nats_log *lg = w->lg;
    log_room *lr = w->lr;
    nats_bus *nb = lg->nb;
    lg->works--;
    lr->resyncing = 0;
    lr->old_sub = NULL;
    inbox_item *parked = lr->parked;
    lr->parked = NULL;
    lr->n_parked = 0;
    retire(lg, w->old);
    int ok = status == 0 && w->rc == 0 && !nb->base.stopped && lg->timer_open;
    if (ok) {
        lr->sub = w->sub;
        lr->fresh = 1;
        lr->resync_from = 0;
        dlg_log_info(&nb->base.srv->log, "cluster: log: room %s follows stream %s again from %"
                     PRIu64, lr->id, lr->stream, w->from);
    }
    /* In arrival order; another subscription's (an older failed one's)
     * are dropped by dlg__nats_log_msg. */
    while (parked) {
        inbox_item *it = parked;
        parked = it->next;
        it->next = NULL;
        if (!ok || dlg__nats_log_msg(nb, it, lr->id) == 0)
            dlg__nats_item_free(it);
    }
    if (!ok) {
        if (w->sub) {
            natsSubscription_Unsubscribe(w->sub);
            natsSubscription_Destroy(w->sub);
        }
        if (!nb->base.stopped && lg->timer_open) {
            /* Every RESYNC_RETRY_MS while the API has no leader (or the
             * stream is gone): one line per LOG_EVERY_MS. */
            dlg__nats_warn(nb, LOG_RESYNC, "cluster: log: %s; trying again every %u ms",
                           w->err[0] ? w->err : "resubscription cancelled", RESYNC_RETRY_MS);
            lr->resync_from = w->from;
            uv_timer_start(&lg->resync_timer, on_resync_timer, RESYNC_RETRY_MS, 0);
        }
        free(w);
        return;
    }
    free(w);
}

static void resync(struct nats_log *lg, log_room *lr, uint64_t from) {
    resync_work *w = dlg_calloc(1, sizeof(*w));
    nats_bus *nb = lg->nb;
    if (w == NULL) {
        lr->resync_from = from;
        uv_timer_start(&lg->resync_timer, on_resync_timer, RESYNC_RETRY_MS, 0);
        return;
    }
    w->req.data = w;
    w->lg = lg;
    w->lr = lr;
    w->from = from;
    w->old = lr->sub;
    lr->old_sub = lr->sub;
    lr->sub = NULL; /* nothing counts until the new one is there */
    lr->resyncing = 1;
    lr->parked = NULL;
    lr->parked_tail = &lr->parked;
    lr->n_parked = 0;
    lr->resync_from = 0;
    if (uv_queue_work(nb->base.srv->loop, &w->req, resync_run, resync_done) != 0) {
        lr->sub = w->old;
        lr->old_sub = NULL;
        lr->resyncing = 0;
        lr->resync_from = from;
        uv_timer_start(&lg->resync_timer, on_resync_timer, RESYNC_RETRY_MS, 0);
        free(w);
        return;
    }
    lg->works++;
}

/* libnats reports missed heartbeats (every two heartbeat intervals while
 * the subscription hears nothing) and begins to remake the ordered
 * consumer itself; that does not always succeed after a NATS server died
 * (seen: rooms silent until a subscription of our own was made), so the
 * room gets a new subscription at once, unless its subscription delivered
 * an event within those two intervals (then the report is stale). */
void dlg__nats_log_stalled(nats_bus *nb, const void *sub) {
    struct nats_log *lg = nb->log;
    uint64_t now = mono_ms();
    for (size_t i = 0; i < lg->n && lg->timer_open; i++) {
        log_room *lr = &lg->rooms[i];
        if (lr->sub != sub || lr->resyncing || now - lr->last_msg_ms < 2 * HEARTBEAT_MS)
            continue;
        const dlg_room *r = dlg_rooms_find(nb->base.srv->rooms, lr->id);
        uint64_t from = r ? r->seq + 1 : lr->start;
        dlg_log_warn(&nb->base.srv->log, "cluster: log: the subscription of room %s stalled; "
                     "following stream %s again from %" PRIu64, lr->id, lr->stream, from);
        resync(lg, lr, from);
    }
}

/* ---- the loop side ----------------------------------------------------- */

int dlg__nats_log_msg(nats_bus *nb, inbox_item *it, const char *room) {
    dlg_bus *b = &nb->base;
    struct nats_log *lg = nb->log;
    natsMsg *msg = it->msg;
    log_room *lr = find(lg, room);
    if (lr && lr->resyncing && it->sub != lr->old_sub && lr->n_parked < INBOX_MAX_MSGS) {
        /* Probably the new subscription's, before it is known here. The
         * caller has read it->next already: the parked list must not lead
         * into the rest of its batch (freed while this one waits). */
        it->next = NULL;
        *lr->parked_tail = it;
        lr->parked_tail = &it->next;
        lr->n_parked++;
        return 1;
    }
    if (lr && (it->sub != lr->sub || lr->sub == NULL))
        return 0; /* a replaced subscription's: the new one sends it again */
    jsMsgMetaData *md = NULL;
    if (lr == NULL || natsMsg_GetMetaData(&md, msg) != NATS_OK) {
        b->stats.received++;
        b->stats.dropped++;
        dlg__nats_warn(nb, LOG_RELAY, "cluster: log message on %s dropped: %s",
                       natsMsg_GetSubject(msg),
                       lr ? "no JetStream metadata" : "not a room this node follows");
        return 0;
    }
    uint64_t seq = md->Sequence.Stream;
    jsMsgMetaData_Destroy(md);
    lr->last_msg_ms = mono_ms(); /* the subscription delivers */
    if (lg->drop_seq && seq == lg->drop_seq) {
        lg->drop_seq = 0;
        return 0;
    }
    const dlg_room *r = dlg_rooms_find(b->srv->rooms, room);
    if (lr->fresh) {
        lr->fresh = 0; /* asked from r->seq + 1: a later first one means the
                          stream no longer holds those (limits, age) */
    } else if (r && seq > r->seq + 1 && lg->timer_open) {
        dlg__nats_warn(nb, LOG_RELAY, "cluster: log: room %s got event %" PRIu64 " after %"
                       PRIu64 "; following stream %s again from %" PRIu64, room, seq, r->seq,
                       lr->stream, r->seq + 1);
        resync(lg, lr, r->seq + 1);
        return 0;
    }
    char err[512];
    uint32_t n;
    int rc = dlg__bus_relay_at(b->srv, b, room, (const uint8_t *)natsMsg_GetData(msg),
                               (size_t)natsMsg_GetDataLength(msg), seq, lr->epoch, &n, err,
                               sizeof(err));
    if (rc != 0)
        dlg__nats_warn(nb, LOG_RELAY, "cluster: log event %" PRIu64 " of room %s dropped: %s",
                       seq, room, err);
    return 0;
}

int dlg__nats_log_room(const dlg_bus *b, const char *room) {
    const nats_bus *nb = (const nats_bus *)b;
    return nb->log && nb->log->js && find(nb->log, room) != NULL;
}

static natsStatus log_send(struct nats_log *lg, log_room *lr, natsMsg **m, const char *id) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;              /* JetStream drops a resent copy */
    po.ExpectStream = lr->stream;
    po.MaxWait = PUBLISH_TRY_WAIT_MS;
    return js_PublishMsgAsync(lg->js, m, &po);
}

static void on_retry(uv_timer_t *t) {
    struct nats_log *lg = t->data;
    nats_bus *nb = lg->nb;
    inbox_item *list = lg->retry;
    lg->retry = NULL;
    while (list) {
        inbox_item *it = list;
        list = it->next;
        it->next = NULL;
        char room[256];
        const char *id = NULL;
        log_room *lr = NULL;
        if (dlg_bus_subject_room(natsMsg_GetSubject(it->msg), room, sizeof(room)) >= 0)
            lr = find(lg, room);
        /* The tries were counted by on_ack, in the header. */
        natsStatus s = lr ? natsMsgHeader_Get(it->msg, HDR_MSG_ID, &id) : NATS_NOT_FOUND;
        char idcopy[96];
        if (s == NATS_OK)
            snprintf(idcopy, sizeof(idcopy), "%s", id);
        if (s == NATS_OK)
            s = log_send(lg, lr, &it->msg, idcopy);
        if (s != NATS_OK)
            dlg__bus_ack_done(&nb->base, it->ticket, 0, natsStatus_GetText(s));
        dlg__nats_item_free(it); /* it->msg is NULL when libnats took it */
    }
}

void dlg__nats_log_retry(nats_bus *nb, inbox_item *it) {
    struct nats_log *lg = nb->log;
    if (!lg->timer_open) {
        dlg__bus_ack_done(&nb->base, it->ticket, 0, "no responders (the node is stopping)");
        dlg__nats_item_free(it);
        return;
    }
    it->next = lg->retry;
    lg->retry = it;
    if (!uv_is_active((uv_handle_t *)&lg->retry_timer))
        uv_timer_start(&lg->retry_timer, on_retry, RETRY_MS, 0);
}

void dlg__nats_log_stop(nats_bus *nb) {
    struct nats_log *lg = nb->log;
    while (lg->retry) {
        inbox_item *it = lg->retry;
        lg->retry = it->next;
        dlg__nats_item_free(it);
    }
    if (lg->timer_open) {
        uv_close((uv_handle_t *)&lg->retry_timer, NULL);
        uv_close((uv_handle_t *)&lg->resync_timer, NULL);
    }
    lg->timer_open = 0;
}

int dlg__nats_log_publish(dlg_bus *b, const dlg_room *r, const char *event, dlg_buf *frame,
                          uint64_t ticket, char *err, size_t errlen) {
    nats_bus *nb = (nats_bus *)b;
    log_room *lr = find(nb->log, r->id);
    if (lr == NULL || frame->len > INT32_MAX) {
        snprintf(err, errlen, "room %s has no cluster log", r->id);
        return DLG_EIO;
    }
    natsMsg *m = NULL;
    char id[96];
    snprintf(id, sizeof(id), "%s:%016" PRIx64 ":%" PRIu64, nb->node_id, nb->log->nonce, ticket);
    natsStatus s = natsMsg_Create(&m, lr->subject, NULL, (const char *)frame->data,
                                  (int)frame->len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, HDR_NODE, nb->node_id);
    if (s == NATS_OK)
        s = log_send(nb->log, lr, &m, id);
    if (s == NATS_OK)
        return 0; /* m belongs to libnats now */
    natsMsg_Destroy(m);
    snprintf(err, errlen, "event %s of room %s not sent to the cluster log (stream %s): %s",
             event, r->id, lr->stream, natsStatus_GetText(s));
    dlg__nats_warn(nb, LOG_PUBLISH, "cluster: %s", err);
    return DLG_EIO;
}
