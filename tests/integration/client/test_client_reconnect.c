/* test_client_reconnect.c: a thread-mode client survives its daemon being
 * killed and restarted on the same port: it reconnects with backoff, rejoins
 * its rooms, restores its exact subscriptions, and sends what waited in the
 * offline queue. Also: retrying until a daemon appears at all. */
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

typedef struct watch {
    atomic_int connected, disconnected, connecting;
    atomic_int metrics, alerts;
    atomic_int acked, failed;
    char reason[512];   /* written on the library thread; read after waits */
} watch;

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    watch *w = ud;
    (void)c;
    if (st == DLG_STATE_CONNECTED)
        atomic_fetch_add(&w->connected, 1);
    if (st == DLG_STATE_CONNECTING)
        atomic_fetch_add(&w->connecting, 1);
    if (st == DLG_STATE_DISCONNECTED) {
        snprintf(w->reason, sizeof(w->reason), "%s", reason);
        atomic_fetch_add(&w->disconnected, 1);
    }
}

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    watch *w = ud;
    (void)c;
    if (strcmp(ev->event, "alert:triggered") == 0)
        atomic_fetch_add(&w->alerts, 1);
    else
        atomic_fetch_add(&w->metrics, 1);
}

static void on_ack(dlg_client *c, void *ud, int status, const char *message,
                   const void *reply) {
    watch *w = ud;
    (void)c;
    (void)message;
    (void)reply;
    atomic_fetch_add(status == 0 ? &w->acked : &w->failed, 1);
}

static size_t pack_metrics(uint8_t *buf) {
    Dialogue__Dashboard__MetricsUpdate m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
    return dialogue__dashboard__metrics_update__pack(&m, buf);
}

static size_t pack_alert(uint8_t *buf, const char *id) {
    Dialogue__Dashboard__AlertTriggered a = DIALOGUE__DASHBOARD__ALERT_TRIGGERED__INIT;
    a.alert_id = (char *)id;
    a.has_severity = 1;
    a.message = (char *)"m";
    a.has_timestamp = 1;
    a.timestamp = 1;
    return dialogue__dashboard__alert_triggered__pack(&a, buf);
}

static void opts_for(const dlgt_daemon *d, dlg_client_opts **op, char *ca, size_t calen) {
    dlg_client_opts_free(*op); /* the previous one, if any */
    assert_int_equal(dlg_client_opts_new(op), 0);
    dlg_client_opts *o = *op;
    snprintf(ca, calen, "%s/ca.crt", d->certs);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, d->port);
    dlg_client_opts_set_ca_file(o, ca);
    dlg_client_opts_set_backoff_min_ms(o, 20);
    dlg_client_opts_set_backoff_max_ms(o, 200);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);
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

static void restore_after_kill(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(60, __func__);
    dlgt_daemon *dp = *state;
    assert_int_equal(dlgt_start(dp, 0), 0);
    dlg_client_opts *o = NULL;
    char ca[400], err[512];
    watch w;
    memset(&w, 0, sizeof(w));
    opts_for(dp, &o, ca, sizeof(ca));
    dlg_client_opts_set_offline_queue(o, 4);
    dlg_client *a = NULL, *b = NULL;
    /* Handlers first, then connect: a threaded client of our own. */
    assert_int_equal(dlg_client_new_threaded(o, &a), 0);
    dlg_client_on_state(a, on_state, &w);
    dlg_client_on_event(a, "lobby", NULL, on_event, &w);
    assert_int_equal(dlg_client_connect(a), 0);
    assert_int_equal(dlgt_wait_count(&w.connected, 1, 10000), 0);
    assert_int_equal(dlg_sync_join(a, "lobby", 5000, err, sizeof err), 0);
    /* Wanted: alerts only (the room's default is metrics). */
    const char *metrics[] = {"metrics:update"}, *alerts[] = {"alert:triggered"};
    assert_int_equal(dlg_sync_unsubscribe(a, "lobby", metrics, 1, 0, 5000, err, sizeof err), 0);
    assert_int_equal(dlg_sync_subscribe(a, "lobby", alerts, 1, 0, 5000, err, sizeof err), 0);

    unsigned port = dp->port;
    dlgt_kill(dp);
    assert_int_equal(dlgt_wait_count(&w.disconnected, 1, 10000), 0);
    /* Waits in the offline queue until the next Welcome. */
    uint8_t buf[256];
    size_t n = pack_alert(buf, "queued");
    assert_int_equal(dlg_client_trigger(a, "lobby", "alert:triggered", buf, n, on_ack, &w), 0);
    /* Let a few attempts fail against the dead port first. */
    assert_int_equal(dlgt_wait_count(&w.disconnected, 3, 10000), 0);
    assert_int_equal(atomic_load(&w.acked) + atomic_load(&w.failed), 0);

    assert_int_equal(dlgt_start(dp, port), 0);
    assert_int_equal(dp->port, port);
    assert_int_equal(dlgt_wait_count(&w.connected, 2, 15000), 0);
    assert_int_equal(dlgt_wait_count(&w.acked, 1, 10000), 0);
    assert_int_equal(atomic_load(&w.failed), 0);
    /* Two round trips: the resubscription is sent on the rejoin's reply,
     * so a ping sent after the first pong comes after it. */
    assert_int_equal(dlg_sync_ping(a, 5000, NULL, err, sizeof err), 0);
    assert_int_equal(dlg_sync_ping(a, 5000, NULL, err, sizeof err), 0);

    /* Another client publishes metrics then an alert: a must see only the
     * alert (same room: delivered in seq order). */
    dlg_client_opts_set_offline_queue(o, 0);
    dlg_client_opts_set_reconnect(o, 0);
    assert_int_equal(dlg_sync_connect(o, 5000, &b, err, sizeof err), 0);
    assert_int_equal(dlg_sync_join(b, "lobby", 5000, err, sizeof err), 0);
    int alerts0 = atomic_load(&w.alerts), metrics0 = atomic_load(&w.metrics);
    n = pack_metrics(buf);
    assert_int_equal(dlg_sync_trigger(b, "lobby", "metrics:update", buf, n, 5000, NULL, err,
                                      sizeof err), 0);
    n = pack_alert(buf, "after");
    assert_int_equal(dlg_sync_trigger(b, "lobby", "alert:triggered", buf, n, 5000, NULL, err,
                                      sizeof err), 0);
    assert_int_equal(dlgt_wait_count(&w.alerts, alerts0 + 1, 10000), 0);
    assert_int_equal(atomic_load(&w.metrics), metrics0);
    dlg_client_free(b);
    dlg_client_free(a);
    dlg_client_opts_free(o);
}

static void retries_until_daemon_appears(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(60, __func__);
    dlgt_daemon *dp = *state;
    /* Learn a free port from a first run, then stop it. */
    assert_int_equal(dlgt_start(dp, 0), 0);
    unsigned port = dp->port;
    assert_int_equal(dlgt_stop(dp), 0);
    dlg_client_opts *o = NULL;
    char ca[400], err[512];
    watch w;
    memset(&w, 0, sizeof(w));
    dp->port = port;
    opts_for(dp, &o, ca, sizeof(ca));
    dlg_client *a = NULL;
    assert_int_equal(dlg_client_new_threaded(o, &a), 0);
    dlg_client_on_state(a, on_state, &w);
    assert_int_equal(dlg_client_connect(a), 0);
    assert_int_equal(dlgt_wait_count(&w.disconnected, 2, 10000), 0);
    assert_non_null(strstr(w.reason, "refused"));
    assert_int_equal(dlg_client_state(a) == DLG_STATE_CONNECTED, 0);
    assert_int_equal(dlgt_start(dp, port), 0);
    assert_int_equal(dlgt_wait_count(&w.connected, 1, 15000), 0);
    assert_int_equal(dlg_sync_ping(a, 5000, NULL, err, sizeof err), 0);
    /* Each attempt announced itself. */
    assert_true(atomic_load(&w.connecting) >= 3);
    dlg_client_free(a);
    dlg_client_opts_free(o);
}

static void no_reconnect_when_off(void **state) {
    if (*state == NULL)
        skip();
    dlgt_timeout(60, __func__);
    dlgt_daemon *dp = *state;
    assert_int_equal(dlgt_start(dp, 0), 0);
    dlg_client_opts *o = NULL;
    char ca[400], err[512];
    watch w;
    memset(&w, 0, sizeof(w));
    opts_for(dp, &o, ca, sizeof(ca));
    dlg_client_opts_set_reconnect(o, 0);
    dlg_client *a = NULL;
    assert_int_equal(dlg_client_new_threaded(o, &a), 0);
    dlg_client_on_state(a, on_state, &w);
    assert_int_equal(dlg_client_connect(a), 0);
    assert_int_equal(dlgt_wait_count(&w.connected, 1, 10000), 0);
    assert_int_equal(dlg_sync_join(a, "lobby", 5000, err, sizeof err), 0);
    /* Graceful stop: the server's last words end up in the reason. */
    assert_int_equal(dlgt_stop(dp), 0);
    assert_int_equal(dlgt_wait_count(&w.disconnected, 1, 10000), 0);
    assert_int_equal(dlg_client_state(a), DLG_STATE_DISCONNECTED);
    fprintf(stderr, "disconnect reason: %s\n", w.reason);
    assert_int_equal(dlg_sync_ping(a, 1000, NULL, err, sizeof err), DLG_ECLOSED);
    assert_int_equal(atomic_load(&w.connecting), 1);
    /* A manual connect is allowed again. */
    assert_int_equal(dlgt_start(dp, dlg_client_opts_get_port(o)), 0);
    assert_int_equal(dlg_client_connect(a), 0);
    assert_int_equal(dlgt_wait_count(&w.connected, 2, 10000), 0);
    assert_int_equal(dlg_sync_ping(a, 5000, NULL, err, sizeof err), 0);
    dlg_client_free(a);
    dlg_client_opts_free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(restore_after_kill, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(retries_until_daemon_appears, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(no_reconnect_when_off, fx_setup, fx_teardown),
    };
    int rc = cmocka_run_group_tests_name("client_reconnect", tests, NULL, NULL);
    dlgt_timeout(0, NULL);
    return rc;
}
