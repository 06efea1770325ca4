/* test_client_rooms.c: join, subscribe, trigger and receive between two
 * loop-mode clients on one loop against a real dialogued; event handler
 * routing and removal; a room deleted under a member; offline queue off. */
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
#include "events/dashboard.pb-c.h"

typedef struct fixture {
    dlgt_daemon d;
} fixture;

typedef struct got {
    int n;
    char room[64], event[64], from[64];
    uint64_t seq, ts;
    double cpu;
    char alert_id[64];
    char order[256];    /* first letters of event names in arrival order */
} got;

typedef struct pair {
    uv_loop_t loop;
    dlg_client *a, *b;
    dlgt_states sa, sb;
    int closed;
} pair;

static int group_setup(void **state) {
    static fixture f;
    if (dlgt_daemon_path() == NULL) {
        fprintf(stderr, "no dialogued binary: skipping\n");
        *state = NULL;
        return 0;
    }
    dlgt_timeout(60, "group setup");
    if (dlgt_setup(&f.d, DLGT_CONFIG) != 0 || dlgt_start(&f.d, 0) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    dlgt_timeout(0, NULL);
    if (f != NULL)
        dlgt_teardown(&f->d);
    return 0;
}

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    got *g = ud;
    (void)c;
    g->n++;
    snprintf(g->room, sizeof(g->room), "%s", ev->room);
    snprintf(g->event, sizeof(g->event), "%s", ev->event);
    snprintf(g->from, sizeof(g->from), "%s", ev->from);
    g->seq = ev->seq;
    g->ts = ev->ts_ms;
    size_t n = strlen(g->order);
    if (n + 1 < sizeof(g->order)) {
        g->order[n] = ev->event[0];
        g->order[n + 1] = 0;
    }
    if (strcmp(ev->event, "metrics:update") == 0) {
        Dialogue__Dashboard__MetricsUpdate *m =
            dialogue__dashboard__metrics_update__unpack(NULL, ev->len, ev->data);
        if (m != NULL) {
            g->cpu = m->cpu;
            dialogue__dashboard__metrics_update__free_unpacked(m, NULL);
        }
    } else if (strcmp(ev->event, "alert:triggered") == 0) {
        Dialogue__Dashboard__AlertTriggered *a =
            dialogue__dashboard__alert_triggered__unpack(NULL, ev->len, ev->data);
        if (a != NULL) {
            snprintf(g->alert_id, sizeof(g->alert_id), "%s", a->alert_id);
            dialogue__dashboard__alert_triggered__free_unpacked(a, NULL);
        }
    }
}

static void on_closed(dlg_client *c, void *ud) {
    (void)c;
    ((pair *)ud)->closed++;
}

static void pair_open(pair *p, const fixture *f, char *ca, size_t calen) {
    dlg_client_opts *o = NULL;
    assert_int_equal(dlg_client_opts_new(&o), 0);
    snprintf(ca, calen, "%s/ca.crt", f->d.certs);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, f->d.port);
    dlg_client_opts_set_ca_file(o, ca);
    dlg_client_opts_set_reconnect(o, 0);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);
    memset(p, 0, sizeof(*p));
    assert_int_equal(uv_loop_init(&p->loop), 0);
    dlg_client_opts_set_client_name(o, "a");
    assert_int_equal(dlg_client_new(&p->loop, o, &p->a), 0);
    dlg_client_opts_set_client_name(o, "b");
    assert_int_equal(dlg_client_new(&p->loop, o, &p->b), 0);
    dlg_client_on_state(p->a, dlgt_on_state, &p->sa);
    dlg_client_on_state(p->b, dlgt_on_state, &p->sb);
    assert_int_equal(dlg_client_connect(p->a), 0);
    assert_int_equal(dlg_client_connect(p->b), 0);
    assert_int_equal(dlgt_run_until(&p->loop, &p->sa.connected, 10000), 0);
    assert_int_equal(dlgt_run_until(&p->loop, &p->sb.connected, 10000), 0);
    dlg_client_opts_free(o);
}

static void pair_close(pair *p) {
    assert_int_equal(dlg_client_close(p->a, on_closed, p), 0);
    assert_int_equal(dlg_client_close(p->b, on_closed, p), 0);
    for (int i = 0; i < 1000 && p->closed < 2; i++) {
        int one = 0;
        (void)dlgt_run_until(&p->loop, &one, 10);
    }
    assert_int_equal(p->closed, 2);
    dlg_client_free(p->a);
    dlg_client_free(p->b);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
}

static void call(pair *p, dlgt_call *k) {
    if (dlgt_run_until(&p->loop, &k->r.done, 10000) != 0)
        fail_msg("no completion within 10 s");
}

static void join(pair *p, dlg_client *c, const char *room, const char *want_subs) {
    dlgt_call k = {.kind = DLGT_R_JOINED};
    assert_int_equal(dlg_client_join(c, room, dlgt_on_reply, &k), 0);
    call(p, &k);
    if (k.r.status != 0)
        fail_msg("join %s: %d %s", room, k.r.status, k.r.msg);
    if (want_subs != NULL)
        assert_string_equal(k.r.subs, want_subs);
}

static uint64_t trigger_metrics(pair *p, dlg_client *c, const char *room, double cpu) {
    Dialogue__Dashboard__MetricsUpdate m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
    m.cpu = cpu;
    dlgt_call k = {.kind = DLGT_R_ACK};
    assert_int_equal(dlg_client_trigger_msg(c, room, "metrics:update", &m.base,
                                            dlgt_on_reply, &k), 0);
    call(p, &k);
    if (k.r.status != 0)
        fail_msg("trigger: %d %s", k.r.status, k.r.msg);
    return k.r.u64;
}

static uint64_t trigger_alert(pair *p, dlg_client *c, const char *room, const char *id) {
    Dialogue__Dashboard__AlertTriggered a = DIALOGUE__DASHBOARD__ALERT_TRIGGERED__INIT;
    a.alert_id = (char *)id;
    a.has_severity = 1;
    a.severity = DIALOGUE__DASHBOARD__SEVERITY__high;
    a.message = (char *)"disk full";
    a.has_timestamp = 1;
    a.timestamp = 1700000000000ull;
    dlgt_call k = {.kind = DLGT_R_ACK};
    assert_int_equal(dlg_client_trigger_msg(c, room, "alert:triggered", &a.base,
                                            dlgt_on_reply, &k), 0);
    call(p, &k);
    if (k.r.status != 0)
        fail_msg("trigger: %d %s", k.r.status, k.r.msg);
    return k.r.u64;
}

static void trigger_and_receive(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    pair p;
    char ca[400];
    got ga = {0}, gb = {0};
    pair_open(&p, f, ca, sizeof(ca));
    assert_int_equal(dlg_client_on_event(p.a, NULL, NULL, on_event, &ga), 0);
    assert_int_equal(dlg_client_on_event(p.b, NULL, NULL, on_event, &gb), 0);
    join(&p, p.a, "lobby", "metrics:update");
    join(&p, p.b, "lobby", "metrics:update");

    uint64_t seq = trigger_metrics(&p, p.b, "lobby", 42.5);
    assert_int_equal(dlgt_run_until(&p.loop, &ga.n, 10000), 0);
    assert_string_equal(ga.room, "lobby");
    assert_string_equal(ga.event, "metrics:update");
    assert_int_equal(ga.seq, seq);
    assert_true(ga.cpu == 42.5);
    assert_true(ga.from[0] != 0);
    assert_true(ga.ts > 0);

    /* a moves from metrics to alerts; events of one room arrive in seq
     * order, so seeing the alert without the metrics proves the filter. */
    dlgt_call k = {.kind = DLGT_R_JOINED};
    const char *alerts[] = {"alert:triggered"};
    const char *metrics[] = {"metrics:update"};
    assert_int_equal(dlg_client_unsubscribe(p.a, "lobby", metrics, 1, 0, dlgt_on_reply, &k), 0);
    call(&p, &k);
    assert_int_equal(k.r.status, 0);
    assert_string_equal(k.r.subs, "");
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_JOINED;
    assert_int_equal(dlg_client_subscribe(p.a, "lobby", alerts, 1, 0, dlgt_on_reply, &k), 0);
    call(&p, &k);
    assert_int_equal(k.r.status, 0);
    assert_string_equal(k.r.subs, "alert:triggered");

    memset(ga.order, 0, sizeof(ga.order));
    ga.n = 0;
    trigger_metrics(&p, p.b, "lobby", 1);
    trigger_alert(&p, p.b, "lobby", "a-1");
    assert_int_equal(dlgt_run_until(&p.loop, &ga.n, 10000), 0);
    assert_string_equal(ga.order, "a");
    assert_string_equal(ga.alert_id, "a-1");

    /* Subscribe to everything. */
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_JOINED;
    assert_int_equal(dlg_client_subscribe(p.a, "lobby", NULL, 0, 1, dlgt_on_reply, &k), 0);
    call(&p, &k);
    assert_int_equal(k.r.status, 0);
    assert_non_null(strstr(k.r.subs, "*"));

    /* Leave: no more events; the leave is answered. */
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_PLAIN;
    assert_int_equal(dlg_client_leave(p.a, "lobby", dlgt_on_reply, &k), 0);
    call(&p, &k);
    assert_int_equal(k.r.status, 0);
    pair_close(&p);
}

/* Handlers: by room and event, removal from inside a callback. */
typedef struct counting {
    dlg_client *c;
    int n;
    int remove_self;
} counting;

static void on_count(dlg_client *c, void *ud, const dlg_event *ev) {
    counting *k = ud;
    (void)ev;
    k->n++;
    if (k->remove_self)
        dlg_client_off_event(c, on_count, ud);
}

static void handler_routing(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    pair p;
    char ca[400];
    counting all = {0}, lobby_alerts = {0}, other_room = {0}, once = {.remove_self = 1};
    got last = {0};
    pair_open(&p, f, ca, sizeof(ca));
    dlg_client_on_event(p.a, NULL, NULL, on_count, &all);
    dlg_client_on_event(p.a, "lobby", "alert:triggered", on_count, &lobby_alerts);
    dlg_client_on_event(p.a, "elsewhere", NULL, on_count, &other_room);
    dlg_client_on_event(p.a, NULL, NULL, on_count, &once);
    dlg_client_on_event(p.a, NULL, NULL, on_event, &last);
    join(&p, p.a, "lobby", NULL);
    join(&p, p.b, "lobby", NULL);
    dlgt_call k = {.kind = DLGT_R_JOINED};
    assert_int_equal(dlg_client_subscribe(p.a, "lobby", NULL, 0, 1, dlgt_on_reply, &k), 0);
    call(&p, &k);
    assert_int_equal(k.r.status, 0);
    trigger_metrics(&p, p.b, "lobby", 3);
    trigger_alert(&p, p.b, "lobby", "x");
    trigger_alert(&p, p.b, "lobby", "y");
    while (last.n < 3 && dlgt_run_until(&p.loop, &last.n, 10000) == 0) {
        int one = 0;
        if (last.n < 3)
            (void)dlgt_run_until(&p.loop, &one, 5);
    }
    assert_int_equal(last.n, 3);
    assert_int_equal(all.n, 3);
    assert_int_equal(lobby_alerts.n, 2);
    assert_int_equal(other_room.n, 0);
    assert_int_equal(once.n, 1);
    /* off_event removes every registration of this cb/ud. */
    dlg_client_off_event(p.a, on_count, &all);
    trigger_alert(&p, p.b, "lobby", "z");
    while (last.n < 4 && dlgt_run_until(&p.loop, &last.n, 10000) == 0) {
        int one = 0;
        if (last.n < 4)
            (void)dlgt_run_until(&p.loop, &one, 5);
    }
    assert_int_equal(last.n, 4);
    assert_int_equal(all.n, 3);
    assert_int_equal(lobby_alerts.n, 3);
    pair_close(&p);
}

typedef struct left_rec {
    int n;
    char room[64], reason[256];
} left_rec;

static void on_left(dlg_client *c, void *ud, const char *room, const char *reason) {
    left_rec *l = ud;
    (void)c;
    l->n++;
    snprintf(l->room, sizeof(l->room), "%s", room);
    snprintf(l->reason, sizeof(l->reason), "%s", reason);
}

static void dynamic_room_deleted(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    pair p;
    char ca[400];
    left_rec lr = {0};
    pair_open(&p, f, ca, sizeof(ca));
    dlg_client_on_left(p.a, on_left, &lr);
    const char *evs[] = {"metrics:update"};
    dlg_room_spec spec = {.room = "dyn", .name = "Dynamic", .events = evs, .n_events = 1,
                          .default_subscriptions = evs, .n_default_subscriptions = 1};
    /* a creates (only the creator of a dynamic room may join it here),
     * b deletes (the config lets anyone delete). */
    dlgt_call k = {.kind = DLGT_R_PLAIN};
    assert_int_equal(dlg_client_create_room(p.a, &spec, dlgt_on_reply, &k), 0);
    call(&p, &k);
    if (k.r.status != 0)
        fail_msg("create_room: %d %s", k.r.status, k.r.msg);
    memset(&k, 0, sizeof(k));
    assert_int_equal(dlg_client_create_room(p.a, &spec, dlgt_on_reply, &k), 0);
    call(&p, &k);
    assert_int_equal(k.r.status, 6); /* ALREADY_EXISTS */
    join(&p, p.a, "dyn", "metrics:update");

    dlgt_call r = {.kind = DLGT_R_ROOMS};
    assert_int_equal(dlg_client_list_rooms(p.a, 1, dlgt_on_reply, &r), 0);
    call(&p, &r);
    assert_non_null(strstr(r.r.rooms, "dyn(Dynamic;1)"));

    memset(&k, 0, sizeof(k));
    assert_int_equal(dlg_client_delete_room(p.b, "dyn", dlgt_on_reply, &k), 0);
    call(&p, &k);
    if (k.r.status != 0)
        fail_msg("delete_room: %d %s", k.r.status, k.r.msg);
    assert_int_equal(dlgt_run_until(&p.loop, &lr.n, 10000), 0);
    assert_string_equal(lr.room, "dyn");
    assert_non_null(strstr(lr.reason, "deleted"));
    pair_close(&p);
}

int main(void) {
    /* Loop-mode clients run on this thread: a write to a socket the daemon
     * just closed must be an EPIPE, not a SIGPIPE that kills the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trigger_and_receive),
        cmocka_unit_test(handler_routing),
        cmocka_unit_test(dynamic_room_deleted),
    };
    return cmocka_run_group_tests_name("client_rooms", tests, group_setup, group_teardown);
}
