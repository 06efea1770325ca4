/* test_client_threads.c: one thread-mode client shared by several threads
 * triggering at once (blocking and callback styles), and a second client
 * receiving every event exactly once, in sequence order, through its event
 * callback and its batch callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "events/dashboard.pb-c.h"

#define THREADS 4
#define PER_THREAD 100

typedef struct recv_state {
    atomic_int n;
    atomic_int out_of_order;
    uint64_t last_seq;          /* library thread only */
} recv_state;

typedef struct shared {
    dlg_client *c;
    atomic_int acked, failed;
    uint64_t seqs[THREADS * PER_THREAD * 2];
    atomic_int n_seqs;
    uint8_t payload[128];
    size_t len;
} shared;

typedef struct worker {
    shared *s;
    int idx;
    int sync_fail;
    char err[256];
} worker;

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    recv_state *r = ud;
    (void)c;
    if (ev->seq <= r->last_seq)
        atomic_fetch_add(&r->out_of_order, 1);
    r->last_seq = ev->seq;
    atomic_fetch_add(&r->n, 1);
}

/* The batch callback: every event once, in sequence order, the views
 * complete; calls counted (fewer than events when reads carried several). */
typedef struct batch_state {
    recv_state r;
    atomic_int calls, bad;
} batch_state;

static void on_events(dlg_client *c, void *ud, const dlg_event *evs, size_t n) {
    batch_state *b = ud;
    (void)c;
    atomic_fetch_add(&b->calls, 1);
    if (n == 0 || n > DLG_EVENTS_BATCH_MAX)
        atomic_fetch_add(&b->bad, 1);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(evs[i].room, "lobby") != 0 || strcmp(evs[i].event, "metrics:update") != 0 ||
            evs[i].len == 0 || evs[i].data == NULL)
            atomic_fetch_add(&b->bad, 1);
        on_event(c, &b->r, &evs[i]);
    }
}

static void record_seq(shared *s, uint64_t seq) {
    int i = atomic_fetch_add(&s->n_seqs, 1);
    if (i < (int)(sizeof(s->seqs) / sizeof(s->seqs[0])))
        s->seqs[i] = seq;
}

static void on_ack(dlg_client *c, void *ud, int status, const char *message,
                   const void *reply) {
    shared *s = ud;
    (void)c;
    (void)message;
    if (status == 0) {
        record_seq(s, ((const dlg_ack *)reply)->seq);
        atomic_fetch_add(&s->acked, 1);
    } else {
        atomic_fetch_add(&s->failed, 1);
    }
}

static void sync_worker(void *arg) {
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t seq = 0;
        int rc = dlg_sync_trigger(w->s->c, "lobby", "metrics:update", w->s->payload,
                                  w->s->len, 10000, &seq, w->err, sizeof(w->err));
        if (rc != 0) {
            w->sync_fail++;
            continue;
        }
        record_seq(w->s, seq);
    }
}

static void async_worker(void *arg) {
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (dlg_client_trigger(w->s->c, "lobby", "metrics:update", w->s->payload, w->s->len,
                               on_ack, w->s) != 0)
            atomic_fetch_add(&w->s->failed, 1);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Each test gets its own folder and daemon; teardown removes both even
 * when an assertion ended the test early. */
static int fx_setup(void **state) {
    static dlgt_daemon d;
    if (dlgt_daemon_path() == NULL) {
        *state = NULL;
        return 0;
    }
    if (dlgt_setup(&d, DLGT_CONFIG) != 0)
        return -1;
    *state = &d;
    return 0;
}

static int fx_teardown(void **state) {
    if (*state != NULL)
        dlgt_teardown(*state);
    return 0;
}

static void many_threads_trigger(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(90, __func__);
    dlgt_daemon *dp = *state;
    assert_int_equal(dlgt_start(dp, 0), 0);
    dlg_client_opts *o = NULL;
    char ca[400], err[512];
    assert_int_equal(dlg_client_opts_new(&o), 0);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dp->certs);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, dp->port);
    dlg_client_opts_set_ca_file(o, ca);
    dlg_client_opts_set_reconnect(o, 0);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);

    static shared s;
    static recv_state r;
    static batch_state b;
    memset(&s, 0, sizeof(s));
    memset(&r, 0, sizeof(r));
    memset(&b, 0, sizeof(b));
    Dialogue__Dashboard__MetricsUpdate m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
    m.cpu = 12;
    s.len = dialogue__dashboard__metrics_update__pack(&m, s.payload);

    dlg_client *rx = NULL;
    assert_int_equal(dlg_client_new_threaded(o, &rx), 0);
    dlg_client_on_event(rx, "lobby", "metrics:update", on_event, &r);
    assert_int_equal(dlg_client_on_events(rx, on_events, &b), 0);
    assert_int_equal(dlg_client_connect(rx), 0);
    /* Join waits for CONNECTING to finish: requests made during an attempt
     * are queued for it. */
    assert_int_equal(dlg_sync_join(rx, "lobby", 10000, err, sizeof err), 0);

    assert_int_equal(dlg_sync_connect(o, 10000, &s.c, err, sizeof err), 0);
    assert_int_equal(dlg_sync_join(s.c, "lobby", 10000, err, sizeof err), 0);

    uv_thread_t th[THREADS * 2];
    worker w[THREADS * 2];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS * 2; i++) {
        w[i].s = &s;
        w[i].idx = i;
        assert_int_equal(uv_thread_create(&th[i], i < THREADS ? sync_worker : async_worker,
                                          &w[i]), 0);
    }
    for (int i = 0; i < THREADS * 2; i++)
        uv_thread_join(&th[i]);
    for (int i = 0; i < THREADS; i++)
        if (w[i].sync_fail)
            fail_msg("thread %d: %d sync triggers failed: %s", i, w[i].sync_fail, w[i].err);
    assert_int_equal(dlgt_wait_count(&s.acked, THREADS * PER_THREAD, 20000), 0);
    assert_int_equal(atomic_load(&s.failed), 0);

    int total = THREADS * PER_THREAD * 2;
    assert_int_equal(atomic_load(&s.n_seqs), total);
    qsort(s.seqs, (size_t)total, sizeof(s.seqs[0]), cmp_u64);
    for (int i = 1; i < total; i++)
        if (s.seqs[i] == s.seqs[i - 1])
            fail_msg("sequence number %llu acked twice", (unsigned long long)s.seqs[i]);

    assert_int_equal(dlgt_wait_count(&r.n, total, 20000), 0);
    assert_int_equal(atomic_load(&r.out_of_order), 0);
    assert_int_equal(dlgt_wait_count(&b.r.n, total, 20000), 0);
    assert_int_equal(atomic_load(&b.r.out_of_order), 0);
    assert_int_equal(atomic_load(&b.bad), 0);
    assert_in_range(atomic_load(&b.calls), 1, total);
    print_message("batch callback: %d calls for %d events\n", atomic_load(&b.calls), total);
    dlg_client_free(s.c);
    dlg_client_free(rx);
    assert_int_equal(atomic_load(&r.n), total);
    assert_int_equal(atomic_load(&b.r.n), total);
    dlg_client_opts_free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(many_threads_trigger, fx_setup, fx_teardown),
    };
    int rc = cmocka_run_group_tests_name("client_threads", tests, NULL, NULL);
    dlgt_timeout(0, NULL);
    return rc;
}
