/* test_client_opts.c: option defaults and validation (each error names the
 * field or file), creation and release in both modes without a server,
 * argument checks, and the helper tables. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dialogue/client.h"

/* A CA file for the tests: certificates from tools/devcerts.sh in a
 * mkdtemp folder made by the group setup. */
typedef struct fixture {
    char dir[64];
    char ca[128], cert[128], key[128], other_key[128];
} fixture;

static int setup(void **state) {
    static fixture f;
    char cmd[256];
    snprintf(f.dir, sizeof(f.dir), "/tmp/dlg-client-opts-XXXXXX");
    if (mkdtemp(f.dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "tools/devcerts.sh %s >/dev/null", f.dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(f.ca, sizeof(f.ca), "%s/ca.crt", f.dir);
    snprintf(f.cert, sizeof(f.cert), "%s/client-admin.crt", f.dir);
    snprintf(f.key, sizeof(f.key), "%s/client-admin.key", f.dir);
    snprintf(f.other_key, sizeof(f.other_key), "%s/client-viewer.key", f.dir);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void good(const fixture *f, dlg_client_opts *o) {
    dlg_client_opts_init(o);
    o->host = "127.0.0.1";
    o->port = 3000;
    o->ca_file = f->ca;
}

static void defaults(void **state) {
    (void)state;
    dlg_client_opts o;
    memset(&o, 0xAB, sizeof(o));
    dlg_client_opts_init(&o);
    assert_null(o.host);
    assert_int_equal(o.port, 0);
    assert_int_equal(o.reconnect, 1);
    assert_int_equal(o.backoff_min_ms, 100);
    assert_int_equal(o.backoff_max_ms, 30000);
    assert_true(o.backoff_jitter > 0.19 && o.backoff_jitter < 0.21);
    assert_int_equal(o.connect_timeout_ms, 10000);
    assert_int_equal(o.request_timeout_ms, 10000);
    assert_int_equal(o.max_frame, 1u << 20);
    assert_int_equal(o.offline_queue, 0);
    assert_int_equal(o.max_pending, 4096);
    assert_int_equal(o.log_level, -1);
}

static void expect_err(const dlg_client_opts *o, int rc, const char *needle) {
    char err[256] = "";
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), rc);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not name \"%s\"", err, needle);
}

static void validation_names_the_field(void **state) {
    fixture *f = *state;
    dlg_client_opts o;
    good(f, &o);
    assert_int_equal(dlg_client_opts_check(&o, NULL, 0), 0);
    o.host = NULL;
    expect_err(&o, DLG_EINVAL, "host");
    good(f, &o);
    o.host = "bad host";
    expect_err(&o, DLG_EINVAL, "bad host");
    good(f, &o);
    o.port = 70000;
    expect_err(&o, DLG_EINVAL, "70000");
    good(f, &o);
    o.cert_file = f->cert;
    expect_err(&o, DLG_EINVAL, "key_file");
    good(f, &o);
    o.backoff_jitter = 1.5;
    expect_err(&o, DLG_EINVAL, "backoff_jitter");
    good(f, &o);
    o.backoff_min_ms = 5000;
    o.backoff_max_ms = 10;
    expect_err(&o, DLG_EINVAL, "backoff_min_ms");
    good(f, &o);
    o.request_timeout_ms = 0;
    expect_err(&o, DLG_EINVAL, "request_timeout_ms");
    good(f, &o);
    o.max_frame = 10;
    expect_err(&o, DLG_EINVAL, "max_frame");
    good(f, &o);
    o.max_pending = 0;
    expect_err(&o, DLG_EINVAL, "max_pending");
    good(f, &o);
    o.ca_file = "/nonexistent/ca.pem";
    expect_err(&o, DLG_ETLS, "/nonexistent/ca.pem: No such file");
    good(f, &o);
    o.ca_file = "/etc/hostname"; /* exists, not PEM */
    expect_err(&o, DLG_ETLS, "ca_file /etc/hostname");
    good(f, &o);
    o.cert_file = f->cert;
    o.key_file = f->other_key;
    expect_err(&o, DLG_ETLS, "does not match");
    o.key_file = f->key;
    assert_int_equal(dlg_client_opts_check(&o, NULL, 0), 0);
    assert_int_equal(dlg_client_opts_check(NULL, NULL, 0), DLG_EINVAL);
}

static void create_free_loop_mode(void **state) {
    fixture *f = *state;
    dlg_client_opts o;
    uv_loop_t loop;
    dlg_client *c = NULL;
    good(f, &o);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(dlg_client_new(NULL, &o, &c), DLG_EINVAL);
    o.port = 0;
    assert_int_equal(dlg_client_new(&loop, &o, &c), DLG_EINVAL);
    assert_null(c);
    good(f, &o);
    /* Options are copied: scribbling over them afterwards is harmless. */
    char host[32] = "127.0.0.1";
    o.host = host;
    assert_int_equal(dlg_client_new(&loop, &o, &c), 0);
    memset(host, 'x', sizeof(host) - 1);
    assert_int_equal(dlg_client_state(c), DLG_STATE_IDLE);
    /* Not connected, offline queue 0: requests fail fast. */
    assert_int_equal(dlg_client_join(c, "lobby", NULL, NULL), DLG_ECLOSED);
    assert_int_equal(dlg_client_ping(c, NULL, NULL), DLG_ECLOSED);
    assert_int_equal(dlg_client_on_event(c, NULL, NULL, NULL, NULL), DLG_EINVAL);
    dlg_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct on_lib_thread {
    atomic_int done;
    int pipe_blocked;
} on_lib_thread;

/* Runs on the library thread: its signal mask must block SIGPIPE. */
static void check_mask(dlg_client *c, void *ud) {
    on_lib_thread *t = ud;
    sigset_t cur;
    (void)c;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    t->pipe_blocked = sigismember(&cur, SIGPIPE);
    atomic_store(&t->done, 1);
}

static void create_free_thread_mode(void **state) {
    fixture *f = *state;
    dlg_client_opts o;
    dlg_client *c = NULL;
    good(f, &o);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(dlg_client_new_threaded(&o, &c), 0);
        assert_int_equal(dlg_client_state(c), DLG_STATE_IDLE);
        dlg_client_free(c);
    }
    dlg_client_free(NULL);
    /* Close then free: the close callback runs first, on the library
     * thread, which blocks SIGPIPE. */
    on_lib_thread t = {0};
    assert_int_equal(dlg_client_new_threaded(&o, &c), 0);
    assert_int_equal(dlg_client_close(c, check_mask, &t), 0);
    for (int i = 0; i < 2000 && !atomic_load(&t.done); i++)
        usleep(1000);
    assert_int_equal(atomic_load(&t.done), 1);
    assert_int_equal(t.pipe_blocked, 1);
    assert_int_equal(dlg_client_state(c), DLG_STATE_CLOSED);
    assert_int_equal(dlg_client_join(c, "x", NULL, NULL), DLG_ESTATE);
    assert_int_equal(dlg_client_connect(c), DLG_ESTATE);
    dlg_client_free(c);
}

static void sync_needs_thread_mode(void **state) {
    fixture *f = *state;
    dlg_client_opts o;
    uv_loop_t loop;
    dlg_client *c = NULL;
    char err[128];
    good(f, &o);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(dlg_client_new(&loop, &o, &c), 0);
    assert_int_equal(dlg_sync_ping(c, 100, NULL, err, sizeof(err)), DLG_ESTATE);
    assert_non_null(strstr(err, "thread-mode"));
    assert_int_equal(dlg_sync_ping(NULL, 100, NULL, err, sizeof(err)), DLG_EINVAL);
    dlg_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    o.port = 0;
    assert_int_equal(dlg_sync_connect(&o, 100, &c, err, sizeof(err)), DLG_EINVAL);
    assert_non_null(strstr(err, "port"));
}

static void helper_tables(void **state) {
    (void)state;
    assert_string_equal(dlg_client_status_name(7), "PERMISSION_DENIED");
    assert_string_equal(dlg_client_status_name(99), "UNKNOWN");
    assert_int_equal(dlg_client_status_err(0), 0);
    assert_int_equal(dlg_client_status_err(5), DLG_ENOTFOUND);
    assert_int_equal(dlg_client_status_err(7), DLG_EPERM);
    assert_int_equal(dlg_client_status_err(16), DLG_EAUTH);
    assert_int_equal(dlg_client_status_err(DLG_ETIMEDOUT), DLG_ETIMEDOUT);
    assert_string_equal(dlg_client_strerror(DLG_ECLOSED), "connection closed");
    assert_string_equal(dlg_client_state_name(DLG_STATE_CONNECTED), "connected");
    assert_non_null(dlg_client_version());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(validation_names_the_field),
        cmocka_unit_test(create_free_loop_mode),
        cmocka_unit_test(create_free_thread_mode),
        cmocka_unit_test(sync_needs_thread_mode),
        cmocka_unit_test(helper_tables),
    };
    return cmocka_run_group_tests_name("client_opts", tests, setup, teardown);
}
