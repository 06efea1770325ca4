/* sync.c: the blocking convenience API: a thread-mode client, requests
 * submitted through the normal path, and a waiter the callback signals.
 * The waiter is shared by the waiting thread and the callback, so it is
 * reference counted: whichever lets go last frees it. */
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "dlg_err.h"

typedef struct waiter {
    uv_mutex_t mu;
    uv_cond_t cv;
    int refs;
    int done;
    int status;
    int kind;            /* DLG__REQ_* of the request */
    uint64_t value;      /* trigger: seq; ping: rtt ns */
    dlg_history_reply *hist;   /* history: the owned copy, until taken */
    char msg[320];
} waiter;

static waiter *waiter_new(void) {
    waiter *w = dlg__calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    if (uv_mutex_init(&w->mu) != 0) {
        dlg__free(w);
        return NULL;
    }
    if (uv_cond_init(&w->cv) != 0) {
        uv_mutex_destroy(&w->mu);
        dlg__free(w);
        return NULL;
    }
    w->refs = 2;  /* the waiting thread and the callback */
    return w;
}

static void waiter_put(waiter *w) {
    uv_mutex_lock(&w->mu);
    int last = --w->refs == 0;
    uv_mutex_unlock(&w->mu);
    if (last) {
        dlg_history_reply_free(w->hist);
        uv_cond_destroy(&w->cv);
        uv_mutex_destroy(&w->mu);
        dlg__free(w);
    }
}

/* One allocation holding h, its events, strings and payloads, so the
 * caller frees it with one call. NULL when out of memory. */
static dlg_history_reply *history_copy(const dlg_history_reply *h) {
    size_t room_len = strlen(h->room) + 1;
    size_t total = sizeof(dlg_history_reply) + h->n_events * sizeof(dlg_event) + room_len;
    for (size_t i = 0; i < h->n_events; i++) {
        const dlg_event *e = &h->events[i];
        total += strlen(e->event) + 1 + strlen(e->from) + 1 + e->len;
    }
    dlg_history_reply *out = dlg__malloc(total);
    if (out == NULL)
        return NULL;
    dlg_event *evs = (dlg_event *)(out + 1);
    char *p = (char *)(evs + h->n_events);
    *out = *h;
    out->events = h->n_events ? evs : NULL;
    memcpy(p, h->room, room_len);
    out->room = p;
    p += room_len;
    for (size_t i = 0; i < h->n_events; i++) {
        const dlg_event *e = &h->events[i];
        size_t le = strlen(e->event) + 1, lf = strlen(e->from) + 1;
        evs[i] = *e;
        evs[i].room = out->room;
        memcpy(p, e->event, le);
        evs[i].event = p;
        p += le;
        memcpy(p, e->from, lf);
        evs[i].from = p;
        p += lf;
        if (e->len > 0)
            memcpy(p, e->data, e->len);
        evs[i].data = (const uint8_t *)p;
        p += e->len;
    }
    return out;
}

void dlg_history_reply_free(dlg_history_reply *h) {
    dlg__free(h);
}

static void on_reply(dlg_client *c, void *ud, int status, const char *message,
                     const void *reply) {
    waiter *w = ud;
    (void)c;
    dlg_history_reply *hist = NULL;
    /* Reply views die with this call, so a history reply is deep-copied
     * (outside the lock: the waiting thread may be checking it). */
    if (status == 0 && reply != NULL && w->kind == DLG__REQ_HISTORY &&
        (hist = history_copy(reply)) == NULL) {
        status = DLG_ENOMEM;
        message = "out of memory copying the history reply";
    }
    uv_mutex_lock(&w->mu);
    w->status = status;
    snprintf(w->msg, sizeof(w->msg), "%s", message ? message : "");
    if (status == 0 && reply != NULL) {
        if (w->kind == DLG__REQ_TRIGGER)
            w->value = ((const dlg_ack *)reply)->seq;
        else if (w->kind == DLG__REQ_PING)
            w->value = *(const uint64_t *)reply;
        w->hist = hist;
    }
    w->done = 1;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
    waiter_put(w);
}

static void seterr(char *err, size_t errlen, const char *msg) {
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

static int usable(dlg_client *c, char *err, size_t errlen) {
    if (c == NULL) {
        seterr(err, errlen, "client is NULL");
        return DLG_EINVAL;
    }
    if (!c->threaded) {
        seterr(err, errlen, "blocking calls need a thread-mode client");
        return DLG_ESTATE;
    }
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &c->thread)) {
        seterr(err, errlen, "blocking call on the client's own thread (from a callback)");
        return DLG_ESTATE;
    }
    return 0;
}

/* Submits r (built by the caller) and waits for its completion. */
static int run(dlg_client *c, dlg__req *r, uint32_t timeout_ms, uint64_t *value,
               dlg_history_reply **hist, char *err, size_t errlen) {
    waiter *w = waiter_new();
    if (w == NULL) {
        dlg__req_free(r);
        seterr(err, errlen, "out of memory");
        return DLG_ENOMEM;
    }
    if (timeout_ms == 0)
        timeout_ms = c->o.v.request_timeout_ms;
    w->kind = r->kind;
    r->timeout_ms = timeout_ms;
    r->cb = on_reply;
    r->ud = w;
    int rc = dlg__submit(c, r);
    if (rc != 0) {
        /* Refused up front: the callback will never run. */
        waiter_put(w);
        waiter_put(w);
        seterr(err, errlen, dlg_strerror(rc));
        return rc;
    }
    /* The request times itself out; the grace only covers a library thread
     * that stopped running. */
    uint64_t end = uv_hrtime() + ((uint64_t)timeout_ms + 2000) * 1000000ull;
    uv_mutex_lock(&w->mu);
    while (!w->done) {
        uint64_t now = uv_hrtime();
        if (now >= end || uv_cond_timedwait(&w->cv, &w->mu, end - now) == UV_ETIMEDOUT)
            break;
    }
    int done = w->done, status = w->status;
    uint64_t v = w->value;
    dlg_history_reply *h = w->hist;
    w->hist = NULL;
    char msg[sizeof(w->msg)];
    memcpy(msg, w->msg, sizeof(msg));
    uv_mutex_unlock(&w->mu);
    waiter_put(w);
    if (!done) {
        seterr(err, errlen, "no completion from the library thread");
        return DLG_ETIMEDOUT;
    }
    if (status == 0) {
        if (value != NULL)
            *value = v;
        if (hist != NULL)
            *hist = h;
        else
            dlg_history_reply_free(h);
        return 0;
    }
    dlg_history_reply_free(h);
    if (status > 0) {
        char text[400];
        snprintf(text, sizeof(text), "%s: %s", dlg_status_name(status), msg);
        seterr(err, errlen, text);
        return dlg_client_status_err(status);
    }
    seterr(err, errlen, msg[0] ? msg : dlg_strerror(status));
    return status;
}

int dlg_sync_connect(const dlg_client_opts *opts, uint32_t timeout_ms,
                     dlg_client **out, char *err, size_t errlen) {
    dlg_client *c = NULL;
    if (out == NULL) {
        seterr(err, errlen, "out is NULL");
        return DLG_EINVAL;
    }
    int rc = dlg_client_opts_check(opts, err, errlen);
    if (rc != 0)
        return rc;
    if ((rc = dlg_client_new_threaded(opts, &c)) != 0) {
        seterr(err, errlen, dlg_strerror(rc));
        return rc;
    }
    if (timeout_ms == 0)
        timeout_ms = c->o.v.connect_timeout_ms;
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000ull;
    if ((rc = dlg_client_connect(c)) != 0) {
        seterr(err, errlen, dlg_strerror(rc));
        dlg_client_free(c);
        return rc;
    }
    uv_mutex_lock(&c->mu);
    for (;;) {
        int st = atomic_load(&c->pub_state);
        if (st == DLG_STATE_CONNECTED) {
            rc = 0;
            break;
        }
        if (st == DLG_STATE_DISCONNECTED && c->final_failure) {
            seterr(err, errlen, c->reason);
            rc = c->final_failure == 2 ? DLG_EAUTH : DLG_ECLOSED;
            break;
        }
        uint64_t now = uv_hrtime();
        if (now >= end || uv_cond_timedwait(&c->cv, &c->mu, end - now) == UV_ETIMEDOUT) {
            if (atomic_load(&c->pub_state) == DLG_STATE_CONNECTED) {
                rc = 0;
                break;
            }
            char msg[700], where[DLG_CLIENT_SERVER_MAX + 64];
            dlg__servers_desc(c, where, sizeof(where));
            snprintf(msg, sizeof(msg), "not connected to %s within %u ms%s%s", where,
                     timeout_ms, c->reason[0] ? ": " : "", c->reason);
            seterr(err, errlen, msg);
            rc = DLG_ETIMEDOUT;
            break;
        }
    }
    uv_mutex_unlock(&c->mu);
    if (rc != 0) {
        dlg_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Runs a request built by the caller; build_rc is the builder's result
 * (computed before the call: argument evaluation order is unspecified). */
static int build_run(dlg_client *c, int build_rc, dlg__req *r, uint32_t timeout_ms,
                     uint64_t *value, char *err, size_t errlen) {
    if (build_rc != 0) {
        seterr(err, errlen, dlg_strerror(build_rc));
        return build_rc;
    }
    return run(c, r, timeout_ms, value, NULL, err, errlen);
}

int dlg_sync_join(dlg_client *c, const char *room, uint32_t timeout_ms, char *err,
                  size_t errlen) {
    dlg__req *r = NULL;
    int rc = usable(c, err, errlen);
    if (rc != 0)
        return rc;
    if (room == NULL || room[0] == 0)
        return build_run(c, DLG_EINVAL, NULL, 0, NULL, err, errlen);
    rc = dlg__build_join(c, room, &r);
    return build_run(c, rc, r, timeout_ms, NULL, err, errlen);
}

int dlg_sync_leave(dlg_client *c, const char *room, uint32_t timeout_ms, char *err,
                   size_t errlen) {
    dlg__req *r = NULL;
    int rc = usable(c, err, errlen);
    if (rc != 0)
        return rc;
    if (room == NULL || room[0] == 0)
        return build_run(c, DLG_EINVAL, NULL, 0, NULL, err, errlen);
    Dialogue__V1__Leave m = DIALOGUE__V1__LEAVE__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)room;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_LEAVE;
    f.leave = &m;
    rc = dlg__req_new(c, DLG__REQ_LEAVE, &f, room, &r);
    return build_run(c, rc, r, timeout_ms, NULL, err, errlen);
}

static int sync_subscription(dlg_client *c, int unsub, const char *room,
                             const char *const *events, size_t n, int all,
                             uint32_t timeout_ms, char *err, size_t errlen) {
    dlg__req *r = NULL;
    int rc = usable(c, err, errlen);
    if (rc != 0)
        return rc;
    if (room == NULL || room[0] == 0 || (n > 0 && events == NULL))
        return build_run(c, DLG_EINVAL, NULL, 0, NULL, err, errlen);
    rc = dlg__build_subscription(c, unsub, room, events, n, all, &r);
    return build_run(c, rc, r, timeout_ms, NULL, err, errlen);
}

int dlg_sync_subscribe(dlg_client *c, const char *room, const char *const *events,
                       size_t n, int all, uint32_t timeout_ms, char *err,
                       size_t errlen) {
    return sync_subscription(c, 0, room, events, n, all, timeout_ms, err, errlen);
}

int dlg_sync_unsubscribe(dlg_client *c, const char *room, const char *const *events,
                         size_t n, int all, uint32_t timeout_ms, char *err,
                         size_t errlen) {
    return sync_subscription(c, 1, room, events, n, all, timeout_ms, err, errlen);
}

int dlg_sync_trigger(dlg_client *c, const char *room, const char *event,
                     const void *data, size_t len, uint32_t timeout_ms, uint64_t *seq,
                     char *err, size_t errlen) {
    dlg__req *r = NULL;
    int rc = usable(c, err, errlen);
    if (rc != 0)
        return rc;
    rc = dlg__build_trigger(c, room, event, data, len, &r);
    return build_run(c, rc, r, timeout_ms, seq, err, errlen);
}

int dlg_sync_ping(dlg_client *c, uint32_t timeout_ms, uint64_t *rtt_ns, char *err,
                  size_t errlen) {
    dlg__req *r = NULL;
    int rc = usable(c, err, errlen);
    if (rc != 0)
        return rc;
    rc = dlg__build_ping(c, &r);
    return build_run(c, rc, r, timeout_ms, rtt_ns, err, errlen);
}

int dlg_sync_history(dlg_client *c, const char *room, const char *event, uint32_t start,
                     uint32_t limit, int by_seq, uint64_t since_seq, uint32_t timeout_ms,
                     dlg_history_reply **out, char *err, size_t errlen) {
    dlg__req *r = NULL;
    int rc = usable(c, err, errlen);
    if (rc != 0)
        return rc;
    if (out == NULL) {
        seterr(err, errlen, "out is NULL");
        return DLG_EINVAL;
    }
    rc = dlg__build_history(c, room, event, start, limit, by_seq, since_seq, &r);
    if (rc != 0) {
        seterr(err, errlen, rc == DLG_EINVAL ? "room is NULL or empty" : dlg_strerror(rc));
        return rc;
    }
    return run(c, r, timeout_ms, NULL, out, err, errlen);
}
