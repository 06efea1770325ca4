/* test_client_basic.c: the client library against a real dialogued, loop
 * mode: connect and ping, request error paths, ListRooms, GetSchema, TLS
 * verification failures, fail-fast while disconnected, clean close. */
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

/* One loop-mode client and its recorders. */
typedef struct lc {
    uv_loop_t loop;
    dlg_client *c;
    dlgt_states st;
    int closed;
} lc;

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

/* New options for the fixture's daemon (the caller frees them). */
static dlg_client_opts *base_opts(const fixture *f, char *ca, size_t calen) {
    dlg_client_opts *o = NULL;
    assert_int_equal(dlg_client_opts_new(&o), 0);
    snprintf(ca, calen, "%s/ca.crt", f->d.certs);
    assert_int_equal(dlg_client_opts_set_host(o, "127.0.0.1"), 0);
    assert_int_equal(dlg_client_opts_set_port(o, f->d.port), 0);
    assert_int_equal(dlg_client_opts_set_ca_file(o, ca), 0);
    assert_int_equal(dlg_client_opts_set_reconnect(o, 0), 0);
    assert_int_equal(dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1), 0);
    return o;
}

static void on_closed(dlg_client *c, void *ud) {
    (void)c;
    ((lc *)ud)->closed = 1;
}

static void lc_open(lc *l, const dlg_client_opts *o) {
    memset(l, 0, sizeof(*l));
    assert_int_equal(uv_loop_init(&l->loop), 0);
    assert_int_equal(dlg_client_new(&l->loop, o, &l->c), 0);
    assert_int_equal(dlg_client_on_state(l->c, dlgt_on_state, &l->st), 0);
}

static void lc_connect(lc *l) {
    assert_int_equal(dlg_client_connect(l->c), 0);
    if (dlgt_run_until(&l->loop, &l->st.connected, 10000) != 0)
        fail_msg("not connected: states %s, reason %s", l->st.seq, l->st.reason);
}

/* Close, free, and check the loop is left with no handle of ours. */
static void lc_close(lc *l) {
    assert_int_equal(dlg_client_close(l->c, on_closed, l), 0);
    assert_int_equal(dlgt_run_until(&l->loop, &l->closed, 10000), 0);
    assert_int_equal(l->st.closed, 1);
    dlg_client_free(l->c);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l->loop), 0);
}

static void wait_reply(lc *l, dlgt_call *k) {
    if (dlgt_run_until(&l->loop, &k->r.done, 10000) != 0)
        fail_msg("no completion within 10 s");
}

static void connect_ping_close(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    lc_open(&l, o);
    assert_int_equal(dlg_client_state(l.c), DLG_STATE_IDLE);
    lc_connect(&l);
    assert_int_equal(dlg_client_state(l.c), DLG_STATE_CONNECTED);
    dlgt_call k = {.kind = DLGT_R_PING};
    assert_int_equal(dlg_client_ping(l.c, dlgt_on_reply, &k), 0);
    /* Never from inside the call. */
    assert_int_equal(k.r.done, 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 0);
    assert_true(k.r.u64 > 0);
    /* A second connect while connected is refused. */
    assert_int_equal(dlg_client_connect(l.c), DLG_ESTATE);
    lc_close(&l);
    assert_string_equal(l.st.seq, "cCX");
    dlg_client_opts_free(o);
}

static void request_errors(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    lc_open(&l, o);
    lc_connect(&l);

    dlgt_call k = {.kind = DLGT_R_JOINED};
    assert_int_equal(dlg_client_join(l.c, "nope", dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 5); /* NOT_FOUND */
    assert_non_null(strstr(k.r.msg, "nope"));

    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_JOINED;
    assert_int_equal(dlg_client_join(l.c, "closed", dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 7); /* PERMISSION_DENIED */

    /* Trigger before joining: not a member. */
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_ACK;
    Dialogue__Dashboard__MetricsUpdate m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
    m.cpu = 150; /* above max 100 */
    assert_int_equal(dlg_client_trigger_msg(l.c, "lobby", "metrics:update", &m.base,
                                            dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 9); /* FAILED_PRECONDITION */

    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_JOINED;
    assert_int_equal(dlg_client_join(l.c, "lobby", dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 0);
    assert_string_equal(k.r.subs, "metrics:update");

    /* Joined twice. */
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_JOINED;
    assert_int_equal(dlg_client_join(l.c, "lobby", dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 6); /* ALREADY_EXISTS */

    /* The payload fails validation, naming the field. */
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_ACK;
    assert_int_equal(dlg_client_trigger_msg(l.c, "lobby", "metrics:update", &m.base,
                                            dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 3); /* INVALID_ARGUMENT */
    assert_non_null(strstr(k.r.msg, "cpu"));

    /* A valid one is acked with a sequence number. */
    m.cpu = 42;
    memset(&k, 0, sizeof(k));
    k.kind = DLGT_R_ACK;
    assert_int_equal(dlg_client_trigger_msg(l.c, "lobby", "metrics:update", &m.base,
                                            dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 0);
    assert_true(k.r.u64 >= 1);

    /* Arguments refused before anything is sent. */
    assert_int_equal(dlg_client_join(l.c, "", NULL, NULL), DLG_EINVAL);
    assert_int_equal(dlg_client_trigger(l.c, "lobby", NULL, "x", 1, NULL, NULL), DLG_EINVAL);
    assert_int_equal(dlg_client_subscribe(l.c, "lobby", NULL, 0, 0, NULL, NULL), DLG_EINVAL);
    lc_close(&l);
    dlg_client_opts_free(o);
}

static void list_rooms_and_schema(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    lc_open(&l, o);
    lc_connect(&l);
    dlgt_call k = {.kind = DLGT_R_ROOMS};
    assert_int_equal(dlg_client_list_rooms(l.c, 0, dlgt_on_reply, &k), 0);
    wait_reply(&l, &k);
    assert_int_equal(k.r.status, 0);
    assert_non_null(strstr(k.r.rooms, "lobby(Lobby;2)"));

    dlgt_call s = {.kind = DLGT_R_SCHEMA};
    assert_int_equal(dlg_client_get_schema(l.c, dlgt_on_reply, &s), 0);
    wait_reply(&l, &s);
    assert_int_equal(s.r.status, 0);
    assert_true(s.r.n_sets >= 1);
    assert_non_null(strstr(s.r.events, "metrics:update=dialogue.dashboard.MetricsUpdate"));
    assert_non_null(strstr(s.r.events, "alert:triggered=dialogue.dashboard.AlertTriggered"));
    lc_close(&l);
    dlg_client_opts_free(o);
}

static void tls_wrong_ca_refused(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400], other[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    /* A self-signed certificate that did not sign the server's. */
    snprintf(other, sizeof(other), "%s/client-admin.crt", f->d.certs);
    dlg_client_opts_set_ca_file(o, other);
    lc_open(&l, o);
    assert_int_equal(dlg_client_connect(l.c), 0);
    assert_int_equal(dlgt_run_until(&l.loop, &l.st.disconnected, 10000), 0);
    assert_non_null(strstr(l.st.reason, "certificate verify failed"));
    assert_int_equal(l.st.connected, 0);
    lc_close(&l);
    assert_string_equal(l.st.seq, "cdX");
    dlg_client_opts_free(o);
}

static void tls_wrong_name_refused(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    /* "127.1" resolves to 127.0.0.1 (inet_aton shorthand), but it is not
     * the IP SAN's literal form nor a DNS SAN of the certificate, so the
     * name check must fail after a TCP connect succeeded. */
    dlg_client_opts_set_host(o, "127.1");
    lc_open(&l, o);
    assert_int_equal(dlg_client_connect(l.c), 0);
    assert_int_equal(dlgt_run_until(&l.loop, &l.st.disconnected, 10000), 0);
    assert_int_equal(l.st.connected, 0);
    if (strstr(l.st.reason, "TLS handshake") == NULL ||
        strstr(l.st.reason, "certificate verify failed") == NULL)
        fail_msg("unexpected reason: %s", l.st.reason);
    lc_close(&l);
    dlg_client_opts_free(o);
}

static void localhost_name_verified(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    dlg_client_opts_set_host(o, "localhost"); /* DNS SAN; may resolve to ::1 first */
    lc_open(&l, o);
    lc_connect(&l);
    lc_close(&l);
    dlg_client_opts_free(o);
}

static void refused_port_and_fail_fast(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    /* Not connected yet, offline queue 0: triggers fail at once. */
    lc_open(&l, o);
    assert_int_equal(dlg_client_trigger(l.c, "lobby", "metrics:update", "", 0, NULL, NULL),
                     DLG_ECLOSED);
    lc_close(&l);

    /* Port 1 on loopback: nothing listens there. */
    dlg_client_opts_set_port(o, 1);
    lc_open(&l, o);
    assert_int_equal(dlg_client_connect(l.c), 0);
    assert_int_equal(dlgt_run_until(&l.loop, &l.st.disconnected, 10000), 0);
    assert_non_null(strstr(l.st.reason, "127.0.0.1:1"));
    assert_non_null(strstr(l.st.reason, "refused"));
    assert_int_equal(dlg_client_ping(l.c, NULL, NULL), DLG_ECLOSED);
    lc_close(&l);
    dlg_client_opts_free(o);
}

static void pending_fail_on_close(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    lc_open(&l, o);
    lc_connect(&l);
    dlgt_call k = {.kind = DLGT_R_PING};
    assert_int_equal(dlg_client_ping(l.c, dlgt_on_reply, &k), 0);
    /* Closed before the loop ran: the ping completes with ECLOSED, later. */
    assert_int_equal(dlg_client_close(l.c, on_closed, &l), 0);
    assert_int_equal(k.r.done, 0);
    assert_int_equal(dlg_client_ping(l.c, NULL, NULL), DLG_ESTATE);
    assert_int_equal(dlg_client_close(l.c, NULL, NULL), DLG_ESTATE);
    assert_int_equal(dlgt_run_until(&l.loop, &l.closed, 10000), 0);
    assert_int_equal(k.r.done, 1);
    assert_int_equal(k.r.status, DLG_ECLOSED);
    dlg_client_free(l.c);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l.loop), 0);
    dlg_client_opts_free(o);
}

static void free_without_close(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400];
    lc l;
    o = base_opts(f, ca, sizeof(ca));
    lc_open(&l, o);
    lc_connect(&l);
    dlgt_call k = {.kind = DLGT_R_PING};
    assert_int_equal(dlg_client_ping(l.c, dlgt_on_reply, &k), 0);
    int seen = l.st.n;
    dlg_client_free(l.c);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l.loop), 0);
    /* No callback of any kind after free. */
    assert_int_equal(k.r.done, 0);
    assert_int_equal(l.st.n, seen);
    dlg_client_opts_free(o);
}

static void sync_api(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(30, __func__);
    dlg_client_opts *o = NULL;
    char ca[400], err[256];
    o = base_opts(f, ca, sizeof(ca));
    /* The header's example, nearly verbatim. */
    Dialogue__Dashboard__MetricsUpdate m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
    uint8_t buf[128];
    size_t len = dialogue__dashboard__metrics_update__pack(&m, buf);
    dlg_client *c = NULL;
    uint64_t seq = 0;
    int rc = dlg_sync_connect(o, 5000, &c, err, sizeof err);
    if (rc == 0) rc = dlg_sync_join(c, "lobby", 5000, err, sizeof err);
    if (rc == 0) rc = dlg_sync_trigger(c, "lobby", "metrics:update", buf, len, 5000, &seq,
                                       err, sizeof err);
    if (rc != 0)
        fail_msg("sync chain failed: %s (%s)", dlg_client_strerror(rc), err);
    assert_true(seq >= 1);
    assert_int_equal(dlg_sync_join(c, "nope", 5000, err, sizeof err), DLG_ENOTFOUND);
    assert_non_null(strstr(err, "NOT_FOUND: "));
    uint64_t rtt = 0;
    assert_int_equal(dlg_sync_ping(c, 5000, &rtt, err, sizeof err), 0);
    assert_true(rtt > 0);
    dlg_client_free(c);

    /* A refused connection with reconnect off fails without waiting out
     * the timeout, and leaves nothing behind. */
    dlg_client_opts_set_port(o, 1);
    c = NULL;
    assert_int_equal(dlg_sync_connect(o, 20000, &c, err, sizeof err), DLG_ECLOSED);
    assert_null(c);
    assert_non_null(strstr(err, "refused"));
    dlg_client_opts_free(o);
}

int main(void) {
    /* Loop-mode clients run on this thread: a write to a socket the daemon
     * just closed must be an EPIPE, not a SIGPIPE that kills the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_ping_close),
        cmocka_unit_test(request_errors),
        cmocka_unit_test(list_rooms_and_schema),
        cmocka_unit_test(tls_wrong_ca_refused),
        cmocka_unit_test(tls_wrong_name_refused),
        cmocka_unit_test(localhost_name_verified),
        cmocka_unit_test(refused_port_and_fail_fast),
        cmocka_unit_test(pending_fail_on_close),
        cmocka_unit_test(free_without_close),
        cmocka_unit_test(sync_api),
    };
    return cmocka_run_group_tests_name("client_basic", tests, group_setup, group_teardown);
}
