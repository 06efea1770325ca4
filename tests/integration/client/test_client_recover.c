/* test_client_recover.c: recovery after a lost connection against a real
 * dialogued. A subscriber reaches the daemon through a TCP proxy
 * (tcpproxy.c) that the test cuts for two seconds while a publisher keeps
 * triggering 50 events a second: after the library reconnects by itself,
 * every event has arrived exactly once and in order. Also: a cut longer
 * than the room's history (gap reported, the kept events follow), and a
 * daemon restart (new epoch: gap reported, the new lineage's seq 1 is not
 * taken for a duplicate). Everything runs on one loop in this thread. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "tcpproxy.h"

#define RECOVER_CONFIG                                                    \
    "listen:\n"                                                           \
    "  - address: 127.0.0.1:0\n"                                          \
    "    cert: {certs}/server.crt\n"                                      \
    "    key: {certs}/server.key\n"                                       \
    "auth:\n"                                                             \
    "  anonymous: true\n"                                                 \
    "rooms:\n"                                                            \
    "  - id: feed\n"                                                      \
    "    events: [\"*\"]\n"                                               \
    "    default_subscriptions: [\"*\"]\n"                                \
    "    join: [\"*\"]\n"                                                 \
    "    trigger: [\"*\"]\n"                                              \
    "    history:\n"                                                      \
    "      - {event: tick, limit: 10000}\n"                               \
    "  - id: short\n"                                                     \
    "    events: [\"*\"]\n"                                               \
    "    default_subscriptions: [\"*\"]\n"                                \
    "    join: [\"*\"]\n"                                                 \
    "    trigger: [\"*\"]\n"                                              \
    "    history:\n"                                                      \
    "      - {event: tick, limit: 5}\n"

/* ---- the world --------------------------------------------------------- */

typedef struct world {
    uv_loop_t loop;
    dlgt_daemon *d;
    tproxy *px;
    char ca[400];
    dlg_client *pub, *sub;
    const char *room;
    /* publisher */
    uv_timer_t tick;
    int ticking;
    uint32_t next;            /* payload of the next trigger, from 1 */
    int sent, acked, failed, ack_mismatch;
    /* subscriber */
    int sub_connected, sub_disconnected, pub_connected;
    int cut;                  /* the proxy is cut right now */
    int received, dups, disorder, bad_payload, during_cut;
    uint64_t last_seq, last_epoch, first_epoch;
    uint32_t last_payload;
    int gaps;
    dlg_gap gap;
    char gap_reason[512];
    char log[2048];           /* "1 2 3 G 19 ..." for the short tests */
    int closed;
} world;

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void logf_(world *w, const char *fmt, unsigned long long v) {
    size_t n = strlen(w->log);
    if (n + 24 < sizeof(w->log))
        snprintf(w->log + n, sizeof(w->log) - n, fmt, v);
}

static void on_sub_event(dlg_client *c, void *ud, const dlg_event *ev) {
    world *w = ud;
    (void)c;
    if (w->cut)
        w->during_cut++;
    if (w->received == 0)
        w->first_epoch = ev->epoch;
    if (ev->epoch == w->last_epoch && ev->seq <= w->last_seq)
        w->dups++;
    else if (ev->epoch == w->last_epoch && ev->seq != w->last_seq + 1)
        w->disorder++;
    uint32_t v = ev->len == 4 ? get_be32(ev->data) : 0;
    if (v != w->last_payload + 1)
        w->bad_payload++;
    w->last_payload = v;
    w->last_seq = ev->seq;
    w->last_epoch = ev->epoch;
    w->received++;
    logf_(w, "%llu ", (unsigned long long)ev->seq);
}

static void on_gap(dlg_client *c, void *ud, const dlg_gap *g) {
    world *w = ud;
    (void)c;
    w->gaps++;
    w->gap = *g;
    snprintf(w->gap_reason, sizeof(w->gap_reason), "%s", g->reason);
    w->gap.reason = w->gap_reason;
    w->gap.room = NULL;
    logf_(w, "G ", 0);
}

static void on_sub_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    world *w = ud;
    (void)c;
    (void)reason;
    if (st == DLG_STATE_CONNECTED)
        w->sub_connected++;
    if (st == DLG_STATE_DISCONNECTED)
        w->sub_disconnected++;
}

static void on_pub_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    world *w = ud;
    (void)c;
    (void)reason;
    if (st == DLG_STATE_CONNECTED)
        w->pub_connected++;
}

typedef struct k_ack {
    world *w;
    uint32_t payload;
} k_ack;

static void on_ack(dlg_client *c, void *ud, int status, const char *message,
                   const void *reply) {
    k_ack *k = ud;
    world *w = k->w;
    (void)c;
    if (status == 0) {
        w->acked++;
        /* One publisher, one event type: the room's seq is the payload. */
        if (((const dlg_ack *)reply)->seq != k->payload)
            w->ack_mismatch++;
    } else {
        w->failed++;
        fprintf(stderr, "trigger %u failed: %d %s\n", k->payload, status, message);
    }
    free(k);
}

static void trigger_one(world *w) {
    uint8_t buf[4];
    uint32_t v = ++w->next;
    buf[0] = (uint8_t)(v >> 24);
    buf[1] = (uint8_t)(v >> 16);
    buf[2] = (uint8_t)(v >> 8);
    buf[3] = (uint8_t)v;
    k_ack *k = malloc(sizeof(*k));
    assert_non_null(k);
    k->w = w;
    k->payload = v;
    if (dlg_client_trigger(w->pub, w->room, "tick", buf, sizeof(buf), on_ack, k) != 0) {
        free(k);
        w->failed++;
        return;
    }
    w->sent++;
}

static void on_tick(uv_timer_t *t) {
    trigger_one(t->data);
}

static void opts_for(world *w, dlg_client_opts **op, unsigned port) {
    dlg_client_opts_free(*op); /* the previous one, if any */
    assert_int_equal(dlg_client_opts_new(op), 0);
    dlg_client_opts *o = *op;
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, port);
    dlg_client_opts_set_ca_file(o, w->ca);
    dlg_client_opts_set_backoff_min_ms(o, 20);
    dlg_client_opts_set_backoff_max_ms(o, 200);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);
}

typedef struct done_flag {
    int done, status;
} done_flag;

static void on_done(dlg_client *c, void *ud, int status, const char *message,
                    const void *reply) {
    done_flag *d = ud;
    (void)c;
    (void)reply;
    if (status != 0)
        fprintf(stderr, "request failed: %d %s\n", status, message);
    d->status = status;
    d->done = 1;
}

static void join_ok(world *w, dlg_client *c, const char *room) {
    done_flag f = {0, 0};
    assert_int_equal(dlg_client_join(c, room, on_done, &f), 0);
    assert_int_equal(dlgt_run_until(&w->loop, &f.done, 5000), 0);
    assert_int_equal(f.status, 0);
}

static void run_for(world *w, unsigned ms) {
    int never = 0;
    (void)dlgt_run_until(&w->loop, &never, ms);
}

/* Runs until *a >= want (10 ms steps), at most timeout_ms. 0 or -1. */
static int run_until_ge(world *w, const int *a, int want, unsigned timeout_ms) {
    for (unsigned t = 0; *a < want && t < timeout_ms; t += 10)
        run_for(w, 10);
    return *a >= want ? 0 : -1;
}

/* Starts the daemon, the proxy in front of it (via_proxy), and both
 * clients connected; the subscriber joins room. */
static void world_open(world *w, dlgt_daemon *d, const char *room, int via_proxy) {
    dlg_client_opts *o = NULL;
    memset(w, 0, sizeof(*w));
    w->d = d;
    w->room = room;
    assert_int_equal(dlgt_start(d, 0), 0);
    snprintf(w->ca, sizeof(w->ca), "%s/ca.crt", d->certs);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    unsigned sub_port = d->port;
    if (via_proxy) {
        assert_int_equal(tproxy_start(&w->loop, d->port, &w->px), 0);
        sub_port = tproxy_port(w->px);
    }
    opts_for(w, &o, sub_port);
    dlg_client_opts_set_client_name(o, "subscriber");
    assert_int_equal(dlg_client_new(&w->loop, o, &w->sub), 0);
    dlg_client_on_state(w->sub, on_sub_state, w);
    dlg_client_on_event(w->sub, room, "tick", on_sub_event, w);
    dlg_client_on_gap(w->sub, on_gap, w);
    opts_for(w, &o, d->port);
    dlg_client_opts_set_client_name(o, "publisher");
    assert_int_equal(dlg_client_new(&w->loop, o, &w->pub), 0);
    dlg_client_on_state(w->pub, on_pub_state, w);
    assert_int_equal(dlg_client_connect(w->sub), 0);
    assert_int_equal(dlg_client_connect(w->pub), 0);
    assert_int_equal(run_until_ge(w, &w->sub_connected, 1, 10000), 0);
    assert_int_equal(run_until_ge(w, &w->pub_connected, 1, 10000), 0);
    join_ok(w, w->sub, room);
    join_ok(w, w->pub, room);
    dlg_client_opts_free(o);
}

static void on_closed(dlg_client *c, void *ud) {
    (void)c;
    ((world *)ud)->closed++;
}

static void world_close(world *w) {
    uv_timer_stop(&w->tick);
    uv_close((uv_handle_t *)&w->tick, NULL);
    w->closed = 0;
    dlg_client_close(w->sub, on_closed, w);
    dlg_client_close(w->pub, on_closed, w);
    assert_int_equal(run_until_ge(w, &w->closed, 2, 5000), 0);
    dlg_client_free(w->sub);
    dlg_client_free(w->pub);
    if (w->px != NULL)
        tproxy_stop(w->px);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* Fires n triggers and waits for their acks. */
static void trigger_n(world *w, int n) {
    int want = w->acked + n;
    for (int i = 0; i < n; i++)
        trigger_one(w);
    assert_int_equal(run_until_ge(w, &w->acked, want, 10000), 0);
    assert_int_equal(w->failed, 0);
}

/* ---- fixtures ------------------------------------------------------------- */

static int fx_setup(void **state) {
    static dlgt_daemon d;
    if (dlgt_daemon_path() == NULL) {
        fprintf(stderr, "no dialogued binary: skipping\n");
        *state = NULL;
        return 0;
    }
    if (dlgt_setup(&d, RECOVER_CONFIG) != 0)
        return -1;
    *state = &d;
    return 0;
}

static int fx_teardown(void **state) {
    if (*state != NULL)
        dlgt_teardown(*state);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void cut_two_seconds_exactly_once_in_order(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(60, __func__);
    world w;
    world_open(&w, *state, "feed", 1);
    /* 50 events a second from here to the end. */
    uv_timer_start(&w.tick, on_tick, 20, 20);
    assert_int_equal(run_until_ge(&w, &w.received, 25, 5000), 0);

    tproxy_cut(w.px);
    w.cut = 1;
    int sent_at_cut = w.sent;
    run_for(&w, 2000);
    int sent_while_cut = w.sent - sent_at_cut;
    w.cut = 0;
    assert_int_equal(tproxy_resume(w.px), 0);
    int sent_at_resume = w.sent;

    /* Catch-up first (the recovery batch), then live again for a while. */
    assert_int_equal(run_until_ge(&w, &w.sub_connected, 2, 10000), 0);
    assert_int_equal(run_until_ge(&w, &w.received, sent_at_resume, 10000), 0);
    run_for(&w, 500);
    uv_timer_stop(&w.tick);
    assert_int_equal(run_until_ge(&w, &w.acked, w.sent - w.failed, 10000), 0);
    assert_int_equal(run_until_ge(&w, &w.received, w.acked, 10000), 0);
    run_for(&w, 100);

    fprintf(stderr, "sent %d (%d while cut), received %d, disconnects seen %d\n", w.sent,
            sent_while_cut, w.received, w.sub_disconnected);
    assert_true(sent_while_cut >= 50);
    assert_int_equal(w.failed, 0);
    assert_int_equal(w.ack_mismatch, 0);
    assert_int_equal(w.during_cut, 0);
    assert_int_equal(w.dups, 0);
    assert_int_equal(w.disorder, 0);
    assert_int_equal(w.bad_payload, 0);
    assert_int_equal(w.received, w.acked);
    assert_int_equal(w.last_payload, (uint32_t)w.acked);
    assert_int_equal(w.last_seq, (uint64_t)w.acked);
    assert_int_equal(w.last_epoch, w.first_epoch);
    assert_int_equal(w.gaps, 0);
    assert_true(w.sub_disconnected >= 1);
    assert_int_equal(w.sub_connected, 2);
    assert_int_equal(tproxy_accepted(w.px), 2);
    world_close(&w);
}

static void cut_longer_than_history_reports_gap(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(60, __func__);
    world w;
    world_open(&w, *state, "short", 1);
    trigger_n(&w, 3);
    assert_int_equal(run_until_ge(&w, &w.received, 3, 5000), 0);
    uint64_t epoch = w.last_epoch;
    tproxy_cut(w.px);
    w.cut = 1;
    assert_int_equal(run_until_ge(&w, &w.sub_disconnected, 1, 5000), 0);
    trigger_n(&w, 20); /* the room keeps the last 5 */
    w.cut = 0;
    assert_int_equal(tproxy_resume(w.px), 0);
    assert_int_equal(run_until_ge(&w, &w.received, 8, 10000), 0);
    trigger_n(&w, 1);
    assert_int_equal(run_until_ge(&w, &w.received, 9, 5000), 0);
    run_for(&w, 100);
    /* The gap first, then the five still kept, then live. */
    assert_string_equal(w.log, "1 2 3 G 19 20 21 22 23 24 ");
    assert_int_equal(w.gaps, 1);
    assert_int_equal(w.gap.epoch_changed, 0);
    assert_int_equal(w.gap.old_epoch, epoch);
    assert_int_equal(w.gap.since_seq, 3);
    assert_int_equal(w.gap.epoch, epoch);
    assert_non_null(strstr(w.gap_reason, "room short: some events after seq 3 are no longer kept"));
    assert_int_equal(w.during_cut, 0);
    world_close(&w);
}

static void daemon_restart_new_epoch_reports_gap(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(60, __func__);
    dlgt_daemon *d = *state;
    world w;
    world_open(&w, d, "feed", 0);
    trigger_n(&w, 3);
    assert_int_equal(run_until_ge(&w, &w.received, 3, 5000), 0);
    uint64_t epoch = w.last_epoch;
    unsigned port = d->port;
    /* In-memory history dies with the daemon; the next one has a new epoch. */
    dlgt_kill(d);
    assert_int_equal(run_until_ge(&w, &w.sub_disconnected, 1, 5000), 0);
    assert_int_equal(dlgt_start(d, port), 0);
    assert_int_equal(run_until_ge(&w, &w.sub_connected, 2, 15000), 0);
    assert_int_equal(run_until_ge(&w, &w.pub_connected, 2, 15000), 0);
    assert_int_equal(run_until_ge(&w, &w.gaps, 1, 5000), 0);
    /* seq starts again at 1: new for the new epoch, not a duplicate. */
    w.last_payload = 0;
    w.next = 0;
    trigger_n(&w, 2);
    assert_int_equal(run_until_ge(&w, &w.received, 5, 5000), 0);
    run_for(&w, 100);
    assert_string_equal(w.log, "1 2 3 G 1 2 ");
    assert_int_equal(w.gaps, 1);
    assert_int_equal(w.gap.epoch_changed, 1);
    assert_int_equal(w.gap.old_epoch, epoch);
    assert_int_equal(w.gap.since_seq, 3);
    assert_true(w.gap.epoch != epoch);
    assert_int_equal(w.last_epoch, w.gap.epoch);
    assert_non_null(strstr(w.gap_reason, "room feed: epoch changed from"));
    assert_int_equal(w.dups + w.bad_payload, 0);
    world_close(&w);
}

int main(void) {
    /* Loop-mode clients and the proxy run on this thread: a write to a
     * socket the peer just closed must be an EPIPE, not a SIGPIPE that
     * kills the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cut_two_seconds_exactly_once_in_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(cut_longer_than_history_reports_gap, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(daemon_restart_new_epoch_reports_gap, fx_setup,
                                        fx_teardown),
    };
    int rc = cmocka_run_group_tests_name("client_recover", tests, NULL, NULL);
    dlgt_timeout(0, NULL);
    return rc;
}
