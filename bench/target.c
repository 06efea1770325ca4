/* target.c: the table of servers dialogue-bench can measure (see target.h)
 * and what their peers share: deferred reports, the connect timeout, and
 * the mapping between events and the subjects they travel on. */
#include "target.h"

#include <stdio.h>
#include <string.h>

#include "dlg_err.h"

static const char *const names[BENCH_TARGET_COUNT] = {"dialogue", "nats", "redis", "mqtt"};

const bench_target_ops *bench_target_ops_of(int target) {
    switch (target) {
    case BENCH_TARGET_NATS: return &bench_nats_ops;
    case BENCH_TARGET_REDIS: return &bench_redis_ops;
    case BENCH_TARGET_MQTT: return &bench_mqtt_ops;
    default: return NULL;
    }
}

int bench_target_parse(const char *name) {
    for (int i = 0; i < BENCH_TARGET_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *bench_target_name(int target) {
    return target >= 0 && target < BENCH_TARGET_COUNT ? names[target] : "?";
}

const char *bench_target_no_tls(int target) {
    const bench_target_ops *ops = bench_target_ops_of(target);
    return ops ? ops->no_tls : NULL;
}

/* ---- deferred reports -------------------------------------------------------- */

/* Runs on the loop turn after the call that owed the report, so no callback
 * ever runs inside the bench_peer_* call that caused it. */
static void on_defer(uv_timer_t *t) {
    bench_xbase *b = t->data;
    if (b->freeing)
        return;
    if (b->report_failed) {
        b->report_failed = 0;
        b->report_ready = 0;
        b->acks_owed = 0;
        b->cbs->failed(b->ud, b->why);
        return;
    }
    if (b->report_ready) {
        b->report_ready = 0;
        b->cbs->ready(b->ud);
    }
    /* acked may publish again (a windowed publisher refills): those acks
     * are owed to the next turn, not this one, so take the count first. */
    uint64_t n = b->acks_owed;
    b->acks_owed = 0;
    for (uint64_t i = 0; i < n && !b->freeing && b->state == XS_READY; i++)
        b->cbs->acked(b->ud, 0, "");
}

static void owe(bench_xbase *b) {
    if (!b->freeing)
        uv_timer_start(&b->defer, on_defer, 0, 0);
}

static void on_timeout(uv_timer_t *t) {
    bench_xbase *b = t->data;
    char why[200];
    snprintf(why, sizeof(why), "setup not done within %u ms", b->o->connect_timeout_ms);
    bench_xbase_fail(b, why);
}

int bench_xbase_init(bench_xbase *b, uv_loop_t *loop, const bench_conn_opts *o, int role,
                     const bench_peer_cbs *cbs, void *ud, const char *kind, const char *sep,
                     void (*release)(bench_xbase *b), char *err, size_t errlen) {
    int n = snprintf(b->prefix, sizeof(b->prefix), "%s%s", o->room, sep);
    if (n < 0 || (size_t)n >= sizeof(b->prefix)) {
        snprintf(err, errlen, "room name \"%s\" is too long for a %s subject", o->room, kind);
        return DLG_EINVAL;
    }
    b->prefix_len = (size_t)n;
    for (int i = 0; i < 2; i++) {
        const char *ev = o->sub_events[i] ? o->sub_events[i] : "";
        n = snprintf(b->sub_subject[i], sizeof(b->sub_subject[i]), "%s%s", b->prefix, ev);
        if (n < 0 || (size_t)n >= sizeof(b->sub_subject[i])) {
            snprintf(err, errlen, "event name \"%s\" is too long for a %s subject", ev, kind);
            return DLG_EINVAL;
        }
    }
    b->loop = loop;
    b->o = o;
    b->cbs = cbs;
    b->ud = ud;
    b->role = role;
    b->release = release;
    snprintf(b->peer, sizeof(b->peer), "%s %s:%u", kind, o->host, o->port);
    uv_timer_init(loop, &b->timeout);
    uv_timer_init(loop, &b->defer);
    b->timeout.data = b->defer.data = b;
    b->handles = 2;
    return 0;
}

void bench_xbase_connecting(bench_xbase *b) {
    b->state = XS_CONNECTING;
    uv_timer_start(&b->timeout, on_timeout, b->o->connect_timeout_ms, 0);
}

void bench_xbase_ready(bench_xbase *b) {
    if (b->state == XS_DEAD || b->state == XS_READY)
        return;
    b->state = XS_READY;
    uv_timer_stop(&b->timeout);
    b->report_ready = 1;
    owe(b);
}

void bench_xbase_fail(bench_xbase *b, const char *why) {
    if (b->state == XS_DEAD)
        return;
    b->state = XS_DEAD;
    uv_timer_stop(&b->timeout);
    snprintf(b->why, sizeof(b->why), "%s: %s", b->peer, why);
    b->report_failed = 1;
    owe(b);
}

void bench_xbase_ack_later(bench_xbase *b) {
    if (b->acks_owed++ == 0)
        owe(b);
}

const char *bench_xbase_pub_subject(bench_xbase *b, const char *event) {
    for (int i = 0; i < 2; i++)
        if (b->pub_event[i][0] && strcmp(b->pub_event[i], event) == 0)
            return b->pub_subject[i];
    int k = b->pub_next;
    size_t el = strlen(event);
    int n = snprintf(b->pub_subject[k], sizeof(b->pub_subject[k]), "%s%s", b->prefix, event);
    if (el >= sizeof(b->pub_event[k]) || n < 0 || (size_t)n >= sizeof(b->pub_subject[k]))
        return NULL;
    memcpy(b->pub_event[k], event, el + 1);
    b->pub_next = !k;
    return b->pub_subject[k];
}

void bench_xbase_deliver(bench_xbase *b, const char *subject, const void *data, size_t len) {
    if (b->state != XS_READY || b->freeing)
        return;
    const char *event = subject;
    if (strncmp(subject, b->prefix, b->prefix_len) == 0)
        event += b->prefix_len;
    b->cbs->event(b->ud, event, data, len, ++b->seq);
}

void bench_xbase_closed(uv_handle_t *h) {
    bench_xbase *b = h->data;
    if (--b->handles > 0 || !b->freeing)
        return;
    b->release(b);
}

void bench_xbase_free(bench_xbase *b) {
    b->freeing = 1;
    b->state = XS_DEAD;
    uv_close((uv_handle_t *)&b->timeout, bench_xbase_closed);
    uv_close((uv_handle_t *)&b->defer, bench_xbase_closed);
}
