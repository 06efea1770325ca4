/* test_client_failover.c: a client with a list of servers (two real
 * dialogued sharing one CA, plain single nodes): when the node it is on is
 * killed it moves to the other one, says so (state callback,
 * dlg_client_server, the disconnect reason), rejoins with recovery (the
 * other node's epoch differs: a gap is reported) and receives events
 * there. Also: a failed attempt moves on to the next entry, and with
 * reconnect off a connect makes one pass over the list. Which delay the
 * library chose is read from its log ("reconnecting to X in N ms"), never
 * measured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

#define FAILOVER_CONFIG                                                   \
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
    "      - {event: tick, limit: 100}\n"                                 \
    "  - id: other\n"                                                     \
    "    events: [\"*\"]\n"                                               \
    "    default_subscriptions: [\"*\"]\n"                                \
    "    join: [\"*\"]\n"                                                 \
    "    trigger: [\"*\"]\n"

#define MAX_SEEN 8

/* Written on the library thread before the counter that announces it is
 * bumped; read by the test thread after waiting for that counter. */
typedef struct watch {
    atomic_int connecting, connected, disconnected;
    atomic_int feed, other, gaps;
    char at_connecting[MAX_SEEN][DLG_CLIENT_SERVER_MAX];
    char at_connected[MAX_SEEN][DLG_CLIENT_SERVER_MAX];
    char reasons[MAX_SEEN][512];
    uint64_t feed_epoch, feed_seq;   /* of the newest feed event */
    int gap_epoch_changed;
    uint64_t gap_old_epoch, gap_epoch;
} watch;

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    watch *w = ud;
    char name[DLG_CLIENT_SERVER_MAX];
    /* Inside the callback the server named matches the state reported. */
    if (dlg_client_server(c, name, sizeof(name)) != 0)
        snprintf(name, sizeof(name), "?");
    if (st == DLG_STATE_CONNECTING) {
        int i = atomic_load(&w->connecting);
        if (i < MAX_SEEN)
            snprintf(w->at_connecting[i], sizeof(w->at_connecting[i]), "%s", name);
        atomic_fetch_add(&w->connecting, 1);
    } else if (st == DLG_STATE_CONNECTED) {
        int i = atomic_load(&w->connected);
        if (i < MAX_SEEN)
            snprintf(w->at_connected[i], sizeof(w->at_connected[i]), "%s", name);
        atomic_fetch_add(&w->connected, 1);
    } else if (st == DLG_STATE_DISCONNECTED) {
        int i = atomic_load(&w->disconnected);
        if (i < MAX_SEEN)
            snprintf(w->reasons[i], sizeof(w->reasons[i]), "%s", reason ? reason : "");
        atomic_fetch_add(&w->disconnected, 1);
    }
}

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    watch *w = ud;
    (void)c;
    if (strcmp(ev->room, "feed") == 0) {
        w->feed_epoch = ev->epoch;
        w->feed_seq = ev->seq;
        atomic_fetch_add(&w->feed, 1);
    } else {
        atomic_fetch_add(&w->other, 1);
    }
}

static void on_gap(dlg_client *c, void *ud, const dlg_gap *g) {
    watch *w = ud;
    (void)c;
    w->gap_epoch_changed = g->epoch_changed;
    w->gap_old_epoch = g->old_epoch;
    w->gap_epoch = g->epoch;
    atomic_fetch_add(&w->gaps, 1);
}

/* Two daemons, B presenting A's certificates: one CA file for both. */
typedef struct pair {
    dlgt_daemon a, b;
    char ca[400];
    char list[128];          /* "127.0.0.1:A,127.0.0.1:B" once started */
    char name_a[64], name_b[64];
    int saved_stderr;        /* > 0 while the library's log is captured */
    char log_path[400];
} pair;

/* The library logs to stderr: sent to a file while a test runs, so the
 * test can read which delays it chose. */
static void capture_start(pair *p) {
    snprintf(p->log_path, sizeof(p->log_path), "%s/client.log", p->a.dir);
    int fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    fflush(stderr);
    p->saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr and returns what was captured there (static buffer,
 * valid until the next call), echoed when echo is set or DLGT_LOG is. */
static const char *capture_end(pair *p, int echo) {
    static char buf[1 << 16];
    size_t n = 0;
    buf[0] = 0;
    if (p->saved_stderr <= 0)
        return buf;
    fflush(stderr);
    dup2(p->saved_stderr, 2);
    close(p->saved_stderr);
    p->saved_stderr = 0;
    FILE *f = fopen(p->log_path, "r");
    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    buf[n] = 0;
    if (echo || getenv("DLGT_LOG") != NULL)
        fputs(buf, stderr);
    return buf;
}

static int fx_setup(void **state) {
    static pair p;
    if (dlgt_daemon_path() == NULL) {
        *state = NULL;
        return 0;
    }
    memset(&p, 0, sizeof(p));
    if (dlgt_setup(&p.a, FAILOVER_CONFIG) != 0 || dlgt_setup(&p.b, FAILOVER_CONFIG) != 0 ||
        dlgt_share_certs(&p.b, &p.a) != 0)
        return -1;
    snprintf(p.ca, sizeof(p.ca), "%s/ca.crt", p.a.certs);
    *state = &p;
    return 0;
}

static int fx_teardown(void **state) {
    pair *p = *state;
    if (p != NULL) {
        /* A failed assertion skips the test's own capture_end: show what
         * it hid (cmocka's message among it). */
        capture_end(p, 1);
        dlgt_teardown(&p->a);
        dlgt_teardown(&p->b);
    }
    return 0;
}

static void start_both(pair *p) {
    assert_int_equal(dlgt_start(&p->a, 0), 0);
    assert_int_equal(dlgt_start(&p->b, 0), 0);
    snprintf(p->name_a, sizeof(p->name_a), "127.0.0.1:%u", p->a.port);
    snprintf(p->name_b, sizeof(p->name_b), "127.0.0.1:%u", p->b.port);
    snprintf(p->list, sizeof(p->list), "%s,%s", p->name_a, p->name_b);
}

static void opts_list(const pair *p, dlg_client_opts **op, const char *servers) {
    dlg_client_opts_free(*op); /* the previous one, if any */
    assert_int_equal(dlg_client_opts_new(op), 0);
    dlg_client_opts *o = *op;
    dlg_client_opts_set_servers(o, servers);
    dlg_client_opts_set_ca_file(o, p->ca);
    dlg_client_opts_set_backoff_min_ms(o, 20);
    dlg_client_opts_set_backoff_max_ms(o, 200);
    dlg_client_opts_set_connect_timeout_ms(o, 5000);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);
}

/* Info lines at least: "reconnecting to X in N ms" is what tests read. */
static void opts_logged(dlg_client_opts *o) {
    if (dlg_client_opts_get_log_level(o) < 2) /* info */
        dlg_client_opts_set_log_level(o, 2);
}

/* A publisher on one daemon only (host/port). */
static dlg_client *publisher(const pair *p, const dlgt_daemon *d, const char *room) {
    dlg_client_opts *o = NULL;
    dlg_client *c = NULL;
    char err[512];
    assert_int_equal(dlg_client_opts_new(&o), 0);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, d->port);
    dlg_client_opts_set_ca_file(o, p->ca);
    dlg_client_opts_set_reconnect(o, 0);
    int rc = dlg_sync_connect(o, 5000, &c, err, sizeof(err));
    dlg_client_opts_free(o);
    if (rc != 0) {
        fprintf(stderr, "publisher on %u: %s\n", d->port, err);
        return NULL;
    }
    if (dlg_sync_join(c, room, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "publisher join %s: %s\n", room, err);
        dlg_client_free(c);
        return NULL;
    }
    return c;
}

static int tick(dlg_client *pub, const char *room) {
    char err[512];
    static const uint8_t data[4] = {0, 0, 0, 1};
    int rc = dlg_sync_trigger(pub, room, "tick", data, sizeof(data), 5000, NULL, err,
                              sizeof(err));
    if (rc != 0)
        fprintf(stderr, "trigger in %s: %s\n", room, err);
    return rc;
}

static void moves_to_next_node_when_killed(void **state) {
    pair *p = *state;
    if (p == NULL)
        skip();
    dlgt_timeout(60, __func__);
    start_both(p);
    dlg_client_opts *o = NULL;
    char err[512], now[DLG_CLIENT_SERVER_MAX];
    static watch w;
    memset(&w, 0, sizeof(w));
    opts_list(p, &o, p->list);
    opts_logged(o);
    dlg_client *c = NULL;
    capture_start(p);
    assert_int_equal(dlg_client_new_threaded(o, &c), 0);
    dlg_client_on_state(c, on_state, &w);
    dlg_client_on_event(c, NULL, NULL, on_event, &w);
    dlg_client_on_gap(c, on_gap, &w);
    assert_int_equal(dlg_client_connect(c), 0);

    /* The first attempt takes the first entry. */
    assert_int_equal(dlgt_wait_count(&w.connected, 1, 10000), 0);
    assert_string_equal(w.at_connecting[0], p->name_a);
    assert_string_equal(w.at_connected[0], p->name_a);
    assert_int_equal(dlg_client_server(c, now, sizeof(now)), 0);
    assert_string_equal(now, p->name_a);
    assert_int_equal(dlg_sync_join(c, "feed", 5000, err, sizeof(err)), 0);

    /* One event on A: the client now has a position in A's lineage. */
    dlg_client *pa = publisher(p, &p->a, "feed");
    assert_non_null(pa);
    assert_int_equal(tick(pa, "feed"), 0);
    assert_int_equal(dlgt_wait_count(&w.feed, 1, 10000), 0);
    uint64_t epoch_a = w.feed_epoch;
    dlg_client_free(pa);
    /* A connection must have been up for backoff_min_ms (20) to move
     * without delay; this makes sure of it, it measures nothing. */
    usleep(100 * 1000);

    /* A dies without a word. */
    dlgt_kill(&p->a);
    assert_int_equal(dlgt_wait_count(&w.disconnected, 1, 10000), 0);
    fprintf(stderr, "disconnect reason: %s\n", w.reasons[0]);
    assert_non_null(strstr(w.reasons[0], p->name_a));

    /* The next attempt goes to B, and the client says so. */
    assert_int_equal(dlgt_wait_count(&w.connected, 2, 15000), 0);
    assert_string_equal(w.at_connecting[1], p->name_b);
    assert_string_equal(w.at_connected[1], p->name_b);
    assert_int_equal(dlg_client_server(c, now, sizeof(now)), 0);
    assert_string_equal(now, p->name_b);
    assert_int_equal(dlg_client_state(c), DLG_STATE_CONNECTED);

    /* The rejoin asked B to recover from A's position: B has another
     * epoch, so the batch is incomplete and a gap is reported. */
    assert_int_equal(dlgt_wait_count(&w.gaps, 1, 10000), 0);
    assert_int_equal(w.gap_epoch_changed, 1);
    assert_true(w.gap_old_epoch == epoch_a);
    assert_true(w.gap_epoch != epoch_a);
    /* The rejoin's reply came before this pong (one connection, in order). */
    assert_int_equal(dlg_sync_ping(c, 5000, NULL, err, sizeof(err)), 0);

    /* Events published on B reach the client: in the room it was moved
     * with, and in one it joins there. */
    assert_int_equal(dlg_sync_join(c, "other", 5000, err, sizeof(err)), 0);
    dlg_client *pb = publisher(p, &p->b, "feed");
    assert_non_null(pb);
    assert_int_equal(tick(pb, "feed"), 0);
    assert_int_equal(dlgt_wait_count(&w.feed, 2, 10000), 0);
    assert_true(w.feed_epoch == w.gap_epoch);
    assert_true(w.feed_seq == 1);
    char err2[512];
    assert_int_equal(dlg_sync_join(pb, "other", 5000, err2, sizeof(err2)), 0);
    assert_int_equal(tick(pb, "other"), 0);
    assert_int_equal(dlgt_wait_count(&w.other, 1, 10000), 0);
    dlg_client_free(pb);

    /* Exactly one move: no attempt went anywhere else. */
    assert_int_equal(atomic_load(&w.connecting), 2);
    assert_int_equal(atomic_load(&w.disconnected), 1);
    dlg_client_free(c);
    /* The node had served for a while: the move to B had no delay. */
    char want[128];
    snprintf(want, sizeof(want), "reconnecting to %s in 0 ms", p->name_b);
    const char *log = capture_end(p, 0);
    if (strstr(log, want) == NULL)
        fail_msg("no \"%s\" in the client's log:\n%s", want, log);
    dlg_client_opts_free(o);
}

/* Two free ports, learned by running each daemon once. */
static void dead_ports(pair *p, char *d1, char *d2, size_t len) {
    start_both(p);
    snprintf(d1, len, "%s", p->name_a);
    snprintf(d2, len, "%s", p->name_b);
    assert_int_equal(dlgt_stop(&p->a), 0);
    assert_int_equal(dlgt_stop(&p->b), 0);
}

static void failed_attempt_moves_on(void **state) {
    pair *p = *state;
    if (p == NULL)
        skip();
    dlgt_timeout(60, __func__);
    char dead[64], unused[64], list[256], err[512], now[DLG_CLIENT_SERVER_MAX];
    dead_ports(p, dead, unused, sizeof(dead));
    assert_int_equal(dlgt_start(&p->b, 0), 0);
    snprintf(p->name_b, sizeof(p->name_b), "127.0.0.1:%u", p->b.port);
    snprintf(list, sizeof(list), "%s, %s", dead, p->name_b);

    /* Loop of state changes: dead first entry, then B. */
    dlg_client_opts *o = NULL;
    static watch w;
    memset(&w, 0, sizeof(w));
    opts_list(p, &o, list);
    dlg_client *c = NULL;
    assert_int_equal(dlg_client_new_threaded(o, &c), 0);
    dlg_client_on_state(c, on_state, &w);
    assert_int_equal(dlg_client_server(c, now, sizeof(now)), 0);
    assert_string_equal(now, dead);
    assert_int_equal(dlg_client_connect(c), 0);
    assert_int_equal(dlgt_wait_count(&w.connected, 1, 10000), 0);
    assert_string_equal(w.at_connecting[0], dead);
    assert_non_null(strstr(w.reasons[0], dead));
    assert_non_null(strstr(w.reasons[0], "refused"));
    assert_string_equal(w.at_connecting[1], p->name_b);
    assert_string_equal(w.at_connected[0], p->name_b);
    assert_int_equal(dlg_sync_ping(c, 5000, NULL, err, sizeof(err)), 0);
    dlg_client_free(c);

    /* Reconnect off: one pass over the list still reaches B. */
    opts_list(p, &o, list);
    dlg_client_opts_set_reconnect(o, 0);
    assert_int_equal(dlg_sync_connect(o, 10000, &c, err, sizeof(err)), 0);
    assert_int_equal(dlg_client_server(c, now, sizeof(now)), 0);
    assert_string_equal(now, p->name_b);
    dlg_client_free(c);
    dlg_client_opts_free(o);
}

static void dead_list_one_pass_then_backoff(void **state) {
    pair *p = *state;
    if (p == NULL)
        skip();
    dlgt_timeout(60, __func__);
    char d1[64], d2[64], list[256], err[1024];
    dead_ports(p, d1, d2, sizeof(d1));
    snprintf(list, sizeof(list), "%s,%s,%s", d1, d2, d1);

    /* Reconnect off: each entry once, in order, then nothing more. */
    dlg_client_opts *o = NULL;
    static watch w;
    memset(&w, 0, sizeof(w));
    opts_list(p, &o, list);
    opts_logged(o);
    dlg_client_opts_set_reconnect(o, 0);
    dlg_client *c = NULL;
    capture_start(p);
    assert_int_equal(dlg_client_new_threaded(o, &c), 0);
    dlg_client_on_state(c, on_state, &w);
    assert_int_equal(dlg_client_connect(c), 0);
    assert_int_equal(dlgt_wait_count(&w.disconnected, 3, 10000), 0);
    assert_non_null(strstr(w.reasons[0], d1));
    assert_non_null(strstr(w.reasons[1], d2));
    assert_non_null(strstr(w.reasons[2], d1));
    /* No retry is scheduled after the pass (no timing asserted: had one
     * been scheduled, its 20..200 ms delay would have passed). */
    usleep(500 * 1000);
    assert_int_equal(atomic_load(&w.connecting), 3);
    assert_int_equal(dlg_client_state(c), DLG_STATE_DISCONNECTED);
    dlg_client_free(c);

    /* The blocking connect reports the pass's end with the last reason. */
    assert_int_equal(dlg_sync_connect(o, 10000, &c, err, sizeof(err)), DLG_ECLOSED);
    fprintf(stderr, "sync connect: %s\n", err);
    assert_non_null(strstr(err, d1));

    /* Reconnect on: the client keeps walking the list (with backoff) and
     * the timeout message names the list. */
    memset(&w, 0, sizeof(w));
    snprintf(list, sizeof(list), "%s,%s", d1, d2);
    opts_list(p, &o, list);
    opts_logged(o);
    assert_int_equal(dlg_client_new_threaded(o, &c), 0);
    dlg_client_on_state(c, on_state, &w);
    assert_int_equal(dlg_client_connect(c), 0);
    assert_int_equal(dlgt_wait_count(&w.disconnected, 4, 10000), 0);
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(w.reasons[i], i % 2 ? d2 : d1));
    dlg_client_free(c);
    assert_int_equal(dlg_sync_connect(o, 300, &c, err, sizeof(err)), DLG_ETIMEDOUT);
    const char *log = capture_end(p, 0);
    fprintf(stderr, "sync connect: %s\n", err);
    assert_non_null(strstr(err, "not connected to any of the 2 servers (last tried"));
    /* Failed attempts always wait (backoff), even when moving on. */
    assert_non_null(strstr(log, "reconnecting to "));
    if (strstr(log, " in 0 ms") != NULL)
        fail_msg("a failed attempt was retried without delay:\n%s", log);
    dlg_client_opts_free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(moves_to_next_node_when_killed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(failed_attempt_moves_on, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(dead_list_one_pass_then_backoff, fx_setup,
                                        fx_teardown),
    };
    int rc = cmocka_run_group_tests_name("client_failover", tests, NULL, NULL);
    dlgt_timeout(0, NULL);
    return rc;
}
