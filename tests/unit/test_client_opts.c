/* test_client_opts.c: the options object (defaults, setters that copy,
 * getters), validation (each error names the
 * field or file), the servers list (each error names the entry) and
 * dlg_client_server, creation and release in both modes without a server,
 * argument checks, the helper tables, and which layer protects the TLS
 * records (OpenSSL's unless DIALOGUE_TLS_OWN_RECORDS=1). */
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

#include "client_int.h"
#include "dialogue/client.h"
#include "dlg_tlsio.h"

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

/* Fresh options that pass the check: 127.0.0.1:3000 with the test CA. The
 * object *o held before (may be NULL) is freed. */
static dlg_client_opts *good(const fixture *f, dlg_client_opts **o) {
    dlg_client_opts_free(*o);
    *o = NULL;
    assert_int_equal(dlg_client_opts_new(o), 0);
    assert_int_equal(dlg_client_opts_set_host(*o, "127.0.0.1"), 0);
    assert_int_equal(dlg_client_opts_set_port(*o, 3000), 0);
    assert_int_equal(dlg_client_opts_set_ca_file(*o, f->ca), 0);
    return *o;
}

static void defaults(void **state) {
    (void)state;
    dlg_client_opts *o = NULL;
    assert_int_equal(dlg_client_opts_new(&o), 0);
    assert_null(dlg_client_opts_get_host(o));
    assert_int_equal(dlg_client_opts_get_port(o), 0);
    assert_null(dlg_client_opts_get_servers(o));
    assert_null(dlg_client_opts_get_ca_file(o));
    assert_null(dlg_client_opts_get_cert_file(o));
    assert_null(dlg_client_opts_get_key_file(o));
    assert_null(dlg_client_opts_get_token(o));
    assert_null(dlg_client_opts_get_client_name(o));
    assert_int_equal(dlg_client_opts_get_reconnect(o), 1);
    assert_int_equal(dlg_client_opts_get_backoff_min_ms(o), 100);
    assert_int_equal(dlg_client_opts_get_backoff_max_ms(o), 30000);
    assert_true(dlg_client_opts_get_backoff_jitter(o) > 0.19 &&
                dlg_client_opts_get_backoff_jitter(o) < 0.21);
    assert_int_equal(dlg_client_opts_get_connect_timeout_ms(o), 10000);
    assert_int_equal(dlg_client_opts_get_request_timeout_ms(o), 10000);
    assert_int_equal(dlg_client_opts_get_max_frame(o), 1u << 20);
    assert_int_equal(dlg_client_opts_get_offline_queue(o), 0);
    assert_int_equal(dlg_client_opts_get_max_pending(o), 4096);
    assert_int_equal(dlg_client_opts_get_log_level(o), -1);
    dlg_client_opts_free(o);
    dlg_client_opts_free(NULL);
    assert_int_equal(dlg_client_opts_new(NULL), DLG_EINVAL);
}

/* Every setter stores what its getter reads back; strings are copies ("" is
 * no value); a NULL object is refused, not dereferenced. */
static void setters_copy(void **state) {
    (void)state;
    dlg_client_opts *o = NULL;
    char buf[32];
    assert_int_equal(dlg_client_opts_new(&o), 0);
#define STR(name)                                                              \
    do {                                                                       \
        snprintf(buf, sizeof(buf), "v-%s", #name);                            \
        assert_int_equal(dlg_client_opts_set_##name(o, buf), 0);              \
        memset(buf, 'x', sizeof(buf) - 1);                                     \
        assert_string_equal(dlg_client_opts_get_##name(o), "v-" #name);       \
        assert_int_equal(dlg_client_opts_set_##name(o, "again"), 0);          \
        assert_string_equal(dlg_client_opts_get_##name(o), "again");          \
        assert_int_equal(dlg_client_opts_set_##name(o, ""), 0);               \
        assert_null(dlg_client_opts_get_##name(o));                            \
        assert_int_equal(dlg_client_opts_set_##name(o, "kept"), 0);           \
        assert_int_equal(dlg_client_opts_set_##name(o, NULL), 0);             \
        assert_null(dlg_client_opts_get_##name(o));                            \
        assert_int_equal(dlg_client_opts_set_##name(NULL, "x"), DLG_EINVAL);  \
    } while (0)
    STR(host);
    STR(servers);
    STR(ca_file);
    STR(cert_file);
    STR(key_file);
    STR(token);
    STR(client_name);
#undef STR
#define VAL(name, v)                                                           \
    do {                                                                       \
        assert_int_equal(dlg_client_opts_set_##name(o, v), 0);                \
        assert_true(dlg_client_opts_get_##name(o) == v);                       \
        assert_int_equal(dlg_client_opts_set_##name(NULL, v), DLG_EINVAL);    \
    } while (0)
    VAL(port, 4242u);
    VAL(reconnect, 0);
    VAL(backoff_min_ms, 7u);
    VAL(backoff_max_ms, 70u);
    VAL(backoff_jitter, 0.5);
    VAL(connect_timeout_ms, 123u);
    VAL(request_timeout_ms, 456u);
    VAL(max_frame, 4096u);
    VAL(offline_queue, 9u);
    VAL(max_pending, 11u);
    VAL(log_level, 3);
#undef VAL
    /* A string left set is released with the object (ASan's leak check). */
    assert_int_equal(dlg_client_opts_set_token(o, "secret"), 0);
    dlg_client_opts_free(o);
}

static void expect_err(const dlg_client_opts *o, int rc, const char *needle) {
    char err[256] = "";
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), rc);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not name \"%s\"", err, needle);
}

static void validation_names_the_field(void **state) {
    fixture *f = *state;
    dlg_client_opts *o = NULL;
    good(f, &o);
    assert_int_equal(dlg_client_opts_check(o, NULL, 0), 0);
    dlg_client_opts_set_host(o, NULL);
    expect_err(o, DLG_EINVAL, "host");
    dlg_client_opts_set_host(good(f, &o), "bad host");
    expect_err(o, DLG_EINVAL, "bad host");
    dlg_client_opts_set_port(good(f, &o), 70000);
    expect_err(o, DLG_EINVAL, "70000");
    dlg_client_opts_set_cert_file(good(f, &o), f->cert);
    expect_err(o, DLG_EINVAL, "key_file");
    dlg_client_opts_set_backoff_jitter(good(f, &o), 1.5);
    expect_err(o, DLG_EINVAL, "backoff_jitter");
    dlg_client_opts_set_backoff_min_ms(good(f, &o), 5000);
    dlg_client_opts_set_backoff_max_ms(o, 10);
    expect_err(o, DLG_EINVAL, "backoff_min_ms");
    dlg_client_opts_set_request_timeout_ms(good(f, &o), 0);
    expect_err(o, DLG_EINVAL, "request_timeout_ms");
    dlg_client_opts_set_max_frame(good(f, &o), 10);
    expect_err(o, DLG_EINVAL, "max_frame");
    dlg_client_opts_set_max_pending(good(f, &o), 0);
    expect_err(o, DLG_EINVAL, "max_pending");
    dlg_client_opts_set_ca_file(good(f, &o), "/nonexistent/ca.pem");
    expect_err(o, DLG_ETLS, "/nonexistent/ca.pem: No such file");
    dlg_client_opts_set_ca_file(good(f, &o), "/etc/hostname"); /* exists, not PEM */
    expect_err(o, DLG_ETLS, "ca_file /etc/hostname");
    dlg_client_opts_set_cert_file(good(f, &o), f->cert);
    dlg_client_opts_set_key_file(o, f->other_key);
    expect_err(o, DLG_ETLS, "does not match");
    dlg_client_opts_set_key_file(o, f->key);
    assert_int_equal(dlg_client_opts_check(o, NULL, 0), 0);
    assert_int_equal(dlg_client_opts_check(NULL, NULL, 0), DLG_EINVAL);
    dlg_client_opts_free(o);
}

/* A list of servers in place of host/port. */
static void list(const fixture *f, dlg_client_opts **o, const char *servers) {
    good(f, o);
    dlg_client_opts_set_host(*o, NULL);
    dlg_client_opts_set_port(*o, 0);
    assert_int_equal(dlg_client_opts_set_servers(*o, servers), 0);
}

static void servers_list_checked(void **state) {
    fixture *f = *state;
    dlg_client_opts *o = NULL;
    char err[256];
    /* Good lists: names, IPv4, IPv6 (with a zone too), blanks around
     * entries, a list of one, the most entries allowed. */
    list(f, &o, "127.0.0.1:3000,localhost:3001");
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), 0);
    list(f, &o, " 127.0.0.1:3000 ,\t[::1]:3000 , node-2.example.com:65535");
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), 0);
    list(f, &o, "[::1]:3000,[fe80::1%lo]:3000,[::ffff:127.0.0.1]:1");
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), 0);
    list(f, &o, "127.0.0.1:3000");
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), 0);
    char many[512] = "";
    for (int i = 0; i < 16; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.0.%d:3000",
                 i ? "," : "", i + 1);
    list(f, &o, many);
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), 0);
    /* 17 entries. */
    strcat(many, ",10.0.0.17:3000");
    list(f, &o, many);
    expect_err(o, DLG_EINVAL, "servers: 17 entries, at most 16");

    /* Empty entries, wherever they are. */
    list(f, &o, "127.0.0.1:3000,,127.0.0.1:3001");
    expect_err(o, DLG_EINVAL, "servers: entry 2 is empty");
    list(f, &o, "127.0.0.1:3000,");
    expect_err(o, DLG_EINVAL, "servers: entry 2 is empty");
    list(f, &o, " ,127.0.0.1:3000");
    expect_err(o, DLG_EINVAL, "servers: entry 1 is empty");
    /* Missing port. */
    list(f, &o, "127.0.0.1:3000,foo");
    expect_err(o, DLG_EINVAL, "servers: entry 2 \"foo\" is not HOST:PORT");
    list(f, &o, "foo:,127.0.0.1:3000");
    expect_err(o, DLG_EINVAL, "servers: entry 1 \"foo:\" is not HOST:PORT");
    list(f, &o, "127.0.0.1:3000,:3000");
    expect_err(o, DLG_EINVAL, "entry 2 \":3000\" is not HOST:PORT");
    /* Port 0, too big, not a number. */
    list(f, &o, "127.0.0.1:3000,127.0.0.1:3001,127.0.0.1:0");
    expect_err(o, DLG_EINVAL, "servers: entry 3 \"127.0.0.1:0\": port \"0\" is not in 1..65535");
    list(f, &o, "127.0.0.1:65536");
    expect_err(o, DLG_EINVAL, "entry 1 \"127.0.0.1:65536\": port \"65536\"");
    list(f, &o, "127.0.0.1:99999999999999999999");
    expect_err(o, DLG_EINVAL, "is not in 1..65535");
    list(f, &o, "127.0.0.1:30x0");
    expect_err(o, DLG_EINVAL, "port \"30x0\"");
    /* IPv6: brackets required, and what is inside must be an address. */
    list(f, &o, "::1:3000");
    expect_err(o, DLG_EINVAL, "entry 1 \"::1:3000\" is not HOST:PORT (write an IPv6 address as [ADDR]:PORT)");
    list(f, &o, "[::1]3000");
    expect_err(o, DLG_EINVAL, "entry 1 \"[::1]3000\" is not HOST:PORT");
    list(f, &o, "[::1]");
    expect_err(o, DLG_EINVAL, "entry 1 \"[::1]\" is not HOST:PORT");
    list(f, &o, "[127.0.0.1]:3000");
    expect_err(o, DLG_EINVAL, "\"127.0.0.1\" is not an IPv6 address");
    list(f, &o, "[::1]:");
    expect_err(o, DLG_EINVAL, "entry 1 \"[::1]:\" is not HOST:PORT");
    /* A host that cannot be one. */
    list(f, &o, "127.0.0.1:3000,a b:3000");
    expect_err(o, DLG_EINVAL, "entry 2 \"a b:3000\": \"a b\" is not a host name or address");

    /* host/port and servers together: refused, both fields named. */
    list(f, &o, "127.0.0.1:3000,127.0.0.1:3001");
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, 3000);
    expect_err(o, DLG_EINVAL, "servers and host are both set");
    dlg_client_opts_set_port(o, 0);
    expect_err(o, DLG_EINVAL, "servers and host are both set");
    dlg_client_opts_set_host(o, NULL);
    dlg_client_opts_set_port(o, 3000);
    expect_err(o, DLG_EINVAL, "servers and port are both set");
    /* "" is no list: host/port count again. */
    dlg_client_opts_set_servers(good(f, &o), "");
    assert_int_equal(dlg_client_opts_check(o, err, sizeof(err)), 0);
    dlg_client_opts_set_host(o, NULL);
    expect_err(o, DLG_EINVAL, "host: missing (set host and port, or servers)");
    /* dlg_client_new refuses what check refuses. */
    uv_loop_t loop;
    dlg_client *c = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    list(f, &o, "127.0.0.1:3000,foo");
    assert_int_equal(dlg_client_new(&loop, o, &c), DLG_EINVAL);
    assert_null(c);
    assert_int_equal(uv_loop_close(&loop), 0);
    dlg_client_opts_free(o);
}

/* dlg_client_server before any attempt: the first entry, as written
 * without its blanks; a copy of the options, whatever the caller does to
 * its string and its options afterwards. */
static void server_name(void **state) {
    fixture *f = *state;
    dlg_client_opts *o = NULL;
    uv_loop_t loop;
    dlg_client *c = NULL;
    char buf[DLG_CLIENT_SERVER_MAX], small[8];
    assert_int_equal(uv_loop_init(&loop), 0);

    char servers[64] = " [::1]:3001 ,127.0.0.1:3000";
    list(f, &o, servers);
    assert_int_equal(dlg_client_new(&loop, o, &c), 0);
    memset(servers, 'x', sizeof(servers) - 1);
    dlg_client_opts_free(o);
    o = NULL;
    assert_int_equal(dlg_client_server(c, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "[::1]:3001");
    /* Too small: as much as fits, NUL-terminated. */
    memset(small, '#', sizeof(small));
    assert_int_equal(dlg_client_server(c, small, sizeof(small)), DLG_ETOOBIG);
    assert_string_equal(small, "[::1]:3");
    assert_int_equal(dlg_client_server(c, buf, 0), DLG_EINVAL);
    assert_int_equal(dlg_client_server(c, NULL, 10), DLG_EINVAL);
    assert_int_equal(dlg_client_server(NULL, buf, sizeof(buf)), DLG_EINVAL);
    /* Not connected: the refusal names where it would go. */
    assert_int_equal(dlg_client_ping(c, NULL, NULL), DLG_ECLOSED);
    dlg_client_free(c);

    /* host/port: the same form. */
    assert_int_equal(dlg_client_new(&loop, good(f, &o), &c), 0);
    assert_int_equal(dlg_client_server(c, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "127.0.0.1:3000");
    dlg_client_free(c);
    dlg_client_opts_set_host(good(f, &o), "::1");
    assert_int_equal(dlg_client_new(&loop, o, &c), 0);
    assert_int_equal(dlg_client_server(c, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "[::1]:3000");
    dlg_client_free(c);

    /* Thread mode: any thread may ask. */
    list(f, &o, "localhost:3000,127.0.0.1:3001");
    assert_int_equal(dlg_client_new_threaded(o, &c), 0);
    assert_int_equal(dlg_client_server(c, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "localhost:3000");
    dlg_client_free(c);

    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    dlg_client_opts_free(o);
}

static void create_free_loop_mode(void **state) {
    fixture *f = *state;
    dlg_client_opts *o = NULL;
    uv_loop_t loop;
    dlg_client *c = NULL;
    good(f, &o);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(dlg_client_new(NULL, o, &c), DLG_EINVAL);
    assert_int_equal(dlg_client_new(&loop, NULL, &c), DLG_EINVAL);
    dlg_client_opts_set_port(o, 0);
    assert_int_equal(dlg_client_new(&loop, o, &c), DLG_EINVAL);
    assert_null(c);
    /* Options are copied: changing or freeing them afterwards is harmless. */
    assert_int_equal(dlg_client_new(&loop, good(f, &o), &c), 0);
    dlg_client_opts_set_host(o, "203.0.113.1");
    dlg_client_opts_set_port(o, 1);
    dlg_client_opts_free(o);
    char buf[DLG_CLIENT_SERVER_MAX];
    assert_int_equal(dlg_client_server(c, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "127.0.0.1:3000");
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
    dlg_client_opts *o = NULL;
    dlg_client *c = NULL;
    good(f, &o);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(dlg_client_new_threaded(o, &c), 0);
        assert_int_equal(dlg_client_state(c), DLG_STATE_IDLE);
        dlg_client_free(c);
    }
    dlg_client_free(NULL);
    /* Close then free: the close callback runs first, on the library
     * thread, which blocks SIGPIPE. */
    on_lib_thread t = {0};
    assert_int_equal(dlg_client_new_threaded(o, &c), 0);
    dlg_client_opts_free(o);
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
    dlg_client_opts *o = NULL;
    uv_loop_t loop;
    dlg_client *c = NULL;
    char err[128];
    good(f, &o);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(dlg_client_new(&loop, o, &c), 0);
    assert_int_equal(dlg_sync_ping(c, 100, NULL, err, sizeof(err)), DLG_ESTATE);
    assert_non_null(strstr(err, "thread-mode"));
    assert_int_equal(dlg_sync_ping(NULL, 100, NULL, err, sizeof(err)), DLG_EINVAL);
    dlg_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    dlg_client_opts_set_port(o, 0);
    assert_int_equal(dlg_sync_connect(o, 100, &c, err, sizeof(err)), DLG_EINVAL);
    assert_non_null(strstr(err, "port"));
    assert_int_equal(dlg_sync_connect(NULL, 100, &c, err, sizeof(err)), DLG_EINVAL);
    dlg_client_opts_free(o);
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

/* The client's TLS 1.3 sessions stay on OpenSSL's record layer unless the
 * environment opts in with DIALOGUE_TLS_OWN_RECORDS=1 (issue 16, item 11):
 * a real handshake with the client's context against a server on memory
 * buffers, then the handover the client makes after its checks. */
static int client_hands_over(const fixture *f) {
    dlg_client_opts *in = NULL;
    dlg__opts o;
    char err[256] = "";
    SSL_CTX *cctx = NULL, *sctx = SSL_CTX_new(TLS_server_method());
    good(f, &in);
    assert_non_null(sctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION), 1);
    char crt[160], key[160];
    snprintf(crt, sizeof(crt), "%s/server.crt", f->dir);
    snprintf(key, sizeof(key), "%s/server.key", f->dir);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(sctx, crt), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(dlg__opts_copy(in, &o, err, sizeof(err)), 0);
    dlg_client_opts_free(in);
    assert_int_equal(dlg__ssl_ctx_new(&o, &cctx, err, sizeof(err)), 0);
    static dlg_tlsio s, c; /* must not move */
    assert_int_equal(dlg_tlsio_init(&s, sctx, 1, NULL, 0), 0);
    assert_int_equal(dlg_tlsio_init(&c, cctx, 0, "localhost", 1), 0);
    int sd = 0, cd = 0;
    uint8_t buf[4096];
    for (int i = 0; i < 20 && !(sd && cd); i++) {
        size_t n;
        if (!cd)
            cd = dlg_tlsio_handshake(&c, err, sizeof(err)) == 1;
        while ((n = dlg_tlsio_out_take(&c, buf, sizeof(buf))) > 0)
            assert_int_equal(dlg_tlsio_feed(&s, buf, n), 0);
        if (!sd)
            sd = dlg_tlsio_handshake(&s, err, sizeof(err)) == 1;
        while ((n = dlg_tlsio_out_take(&s, buf, sizeof(buf))) > 0)
            assert_int_equal(dlg_tlsio_feed(&c, buf, n), 0);
    }
    assert_true(sd && cd);
    assert_int_equal(SSL_version(c.ssl), TLS1_3_VERSION);
    int own = dlg_tlsio_handover(&c);
    dlg_tlsio_free(&c);
    dlg_tlsio_free(&s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    dlg__opts_free(&o);
    return own;
}

static void tls_records_default(void **state) {
    fixture *f = *state;
    const char *was = getenv("DIALOGUE_TLS_OWN_RECORDS");
    char *saved = was ? strdup(was) : NULL;
    unsetenv("DIALOGUE_TLS_OWN_RECORDS");
    assert_int_equal(client_hands_over(f), 0);
    setenv("DIALOGUE_TLS_OWN_RECORDS", "0", 1);
    assert_int_equal(client_hands_over(f), 0);
    setenv("DIALOGUE_TLS_OWN_RECORDS", "yes", 1);
    assert_int_equal(client_hands_over(f), 0);
    setenv("DIALOGUE_TLS_OWN_RECORDS", "1", 1);
    assert_int_equal(client_hands_over(f), 1);
    if (saved != NULL)
        setenv("DIALOGUE_TLS_OWN_RECORDS", saved, 1);
    else
        unsetenv("DIALOGUE_TLS_OWN_RECORDS");
    free(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(setters_copy),
        cmocka_unit_test(validation_names_the_field),
        cmocka_unit_test(servers_list_checked),
        cmocka_unit_test(server_name),
        cmocka_unit_test(create_free_loop_mode),
        cmocka_unit_test(create_free_thread_mode),
        cmocka_unit_test(sync_needs_thread_mode),
        cmocka_unit_test(helper_tables),
        cmocka_unit_test(tls_records_default),
    };
    return cmocka_run_group_tests_name("client_opts", tests, setup, teardown);
}
