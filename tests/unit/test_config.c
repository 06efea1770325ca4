/* test_config.c: the YAML config loader: every key of a full file, the
 * defaults, and one broken fixture (tests/config/bad_*.yaml) per kind of
 * mistake, each checked for file, line, column, key path and wording. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "dlg_err.h"

typedef struct fixtures {
    char dir[PATH_MAX]; /* the tests/config folder */
} fixtures;

static void fixture(const fixtures *fx, const char *name, char *out, size_t len) {
    int n = snprintf(out, len, "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

/* A failed strstr says nothing about what the message was: print it. */
static void assert_has(const char *msg, const char *needle) {
    if (!strstr(msg, needle)) {
        print_error("message: %s\nmissing: %s\n", msg, needle);
        fail();
    }
}

static void assert_resolved(const fixtures *fx, const char *got, const char *rel) {
    char want[PATH_MAX + 64];
    fixture(fx, rel, want, sizeof(want));
    assert_non_null(got);
    assert_string_equal(got, want);
}

static dlg_config *load_ok(const fixtures *fx, const char *name) {
    char path[PATH_MAX + 64], err[1024] = "";
    dlg_config *c = NULL;
    fixture(fx, name, path, sizeof(path));
    int rc = dlg_config_load(path, &c, err, sizeof(err));
    if (rc != 0)
        print_error("%s: rc %d: %s\n", name, rc, err);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    assert_string_equal(c->path, path);
    return c;
}

static void assert_strv(const dlg_config_strv *v, size_t n, const char *const *want) {
    assert_int_equal(v->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v->v[i], want[i]);
}
#define STRV(v, ...)                                                                               \
    do {                                                                                           \
        static const char *const w_[] = {__VA_ARGS__};                                             \
        assert_strv((v), sizeof(w_) / sizeof(w_[0]), w_);                                          \
    } while (0)

/* Everything but rooms, auto_join and metrics, as documented in config.h. */
static void assert_defaults(const dlg_config *c) {
    assert_int_equal(c->log_level, DLG_CFG_LOG_INFO);
    assert_int_equal(c->log_format, DLG_CFG_LOG_TEXT);
    assert_null(c->log_file);
    assert_int_equal(c->n_listen, 1);
    const dlg_config_listener *l = &c->listen[0];
    assert_string_equal(l->address, "127.0.0.1:3000");
    assert_string_equal(l->host, "127.0.0.1");
    assert_int_equal(l->port, 3000);
    assert_true(l->tls);
    assert_null(l->cert);
    assert_null(l->key);
    assert_null(l->client_ca);
    assert_false(l->require_client_cert);
    assert_int_equal(l->line, 0);
    assert_int_equal(c->schemas.n, 0);
    assert_false(c->allow_unknown_fields);
    assert_int_equal(c->limits.max_frame, 1048576);
    assert_int_equal(c->limits.max_connections, 10000);
    assert_int_equal(c->limits.handshake_timeout_ms, 2000);
    assert_int_equal(c->limits.pre_auth_max_bytes, 16384);
    assert_int_equal(c->limits.pre_auth_max_connections, 1000);
    assert_int_equal(c->limits.max_pending_bytes, 67108864);
    assert_int_equal(c->limits.soft_pending_bytes, 8388608);
    assert_int_equal(c->limits.soft_pending_seconds, 30);
    assert_int_equal(c->limits.write_timeout_ms, 10000);
    assert_int_equal(c->limits.heartbeat_ms, 30000);
    assert_int_equal(c->limits.max_rooms_per_connection, 128);
    assert_false(c->auth.anonymous);
    assert_null(c->auth.jwt.issuer);
    assert_null(c->auth.jwt.audience);
    assert_int_equal(c->auth.jwt.leeway_seconds, 30);
    assert_string_equal(c->auth.jwt.roles_claim, "role");
    assert_int_equal(c->auth.jwt.n_keys, 0);
    assert_int_equal(c->auth.client_cert.user_from, DLG_CFG_USER_FROM_CN);
    assert_int_equal(c->auth.client_cert.n_roles, 0);
    assert_int_equal(c->room_admin.create_roles.n, 0);
    assert_int_equal(c->room_admin.delete_roles.n, 0);
    assert_int_equal(c->store, DLG_CFG_STORE_MEMORY);
    assert_null(c->store_path);
    assert_int_equal(c->store_sync, 0); /* ack */
    assert_false(c->cluster.enabled);
    assert_null(c->cluster.node_id);
    assert_int_equal(c->cluster.nats.n, 0);
    assert_null(c->cluster.creds);
    assert_false(c->cluster.tls);
    assert_false(c->cluster.log);
    assert_true(c->io_uring);
    assert_int_equal(c->send_threads, 0); /* one per core */
    assert_true(c->tls_own_records);
}

static void assert_no_metrics(const dlg_config *c) {
    assert_false(c->metrics.enabled);
    assert_null(c->metrics.room);
    assert_int_equal(c->metrics.interval_ms, 1000);
    assert_int_equal(c->metrics.n_alerts, 0);
}

static void full_file(void **state) {
    const fixtures *fx = *state;
    dlg_config *c = load_ok(fx, "full.yaml");
    assert_int_equal(c->log_level, DLG_CFG_LOG_DEBUG);
    assert_int_equal(c->log_format, DLG_CFG_LOG_JSON);
    assert_resolved(fx, c->log_file, "logs/dialogued.log");

    assert_int_equal(c->n_listen, 2);
    const dlg_config_listener *l = &c->listen[0];
    assert_string_equal(l->address, "127.0.0.1:3443");
    assert_string_equal(l->host, "127.0.0.1");
    assert_int_equal(l->port, 3443);
    assert_true(l->tls);
    assert_resolved(fx, l->cert, "certs/server.crt");
    assert_resolved(fx, l->key, "certs/server.key");
    assert_string_equal(l->client_ca, "/etc/dialogue/ca.crt"); /* absolute: kept */
    assert_true(l->require_client_cert);
    assert_int_equal(l->line, 4);
    l = &c->listen[1];
    assert_string_equal(l->address, "[::1]:0");
    assert_string_equal(l->host, "::1");
    assert_int_equal(l->port, 0);
    assert_false(l->tls);
    assert_null(l->cert);
    assert_int_equal(l->line, 10);

    assert_int_equal(c->schemas.n, 2);
    assert_resolved(fx, c->schemas.v[0], "dashboard.pb");
    assert_string_equal(c->schemas.v[1], "/usr/share/dialogue/chat.pb");
    assert_true(c->allow_unknown_fields);

    assert_int_equal(c->limits.max_frame, 65536);
    assert_int_equal(c->limits.max_connections, 500);
    assert_int_equal(c->limits.handshake_timeout_ms, 1500);
    assert_int_equal(c->limits.pre_auth_max_bytes, 8192);
    assert_int_equal(c->limits.max_pending_bytes, 4194304);
    assert_int_equal(c->limits.soft_pending_bytes, 524288);
    assert_int_equal(c->limits.soft_pending_seconds, 3);
    assert_int_equal(c->limits.write_timeout_ms, 7000);
    assert_int_equal(c->limits.heartbeat_ms, 15000);
    assert_int_equal(c->limits.max_rooms_per_connection, 16);

    assert_true(c->auth.anonymous);
    const dlg_config_jwt *j = &c->auth.jwt;
    assert_string_equal(j->issuer, "https://auth.example.com");
    assert_string_equal(j->audience, "dialogue");
    assert_int_equal(j->leeway_seconds, 10);
    assert_string_equal(j->roles_claim, "roles");
    assert_int_equal(j->n_keys, 2);
    assert_string_equal(j->keys[0].kid, "k1");
    assert_int_equal(j->keys[0].alg, DLG_CFG_ALG_HS256);
    assert_resolved(fx, j->keys[0].secret_file, "secret.key");
    assert_null(j->keys[0].public_key_file);
    assert_null(j->keys[1].kid);
    assert_int_equal(j->keys[1].alg, DLG_CFG_ALG_ES256);
    assert_null(j->keys[1].secret_file);
    assert_resolved(fx, j->keys[1].public_key_file, "keys/es.pem");
    const dlg_config_client_cert *cc = &c->auth.client_cert;
    assert_int_equal(cc->user_from, DLG_CFG_USER_FROM_DNS);
    assert_int_equal(cc->n_roles, 2);
    assert_string_equal(cc->roles[0].match, "svc-publisher");
    STRV(&cc->roles[0].roles, "publisher");
    assert_string_equal(cc->roles[1].match, "ops");
    STRV(&cc->roles[1].roles, "admin", "publisher");
    STRV(&c->room_admin.create_roles, "admin");
    STRV(&c->room_admin.delete_roles, "admin", "*");

    assert_int_equal(c->n_rooms, 2);
    const dlg_config_room *r = &c->rooms[0];
    assert_ptr_equal(dlg_config_find_room(c, "dashboard"), r);
    assert_string_equal(r->id, "dashboard");
    assert_string_equal(r->name, "Dashboard");
    assert_string_equal(r->description, "Real-time metrics dashboard");
    STRV(&r->events, "metrics:update", "alert:triggered");
    assert_false(r->any_event);
    STRV(&r->default_subscriptions, "metrics:update");
    assert_false(r->default_all);
    assert_int_equal(r->max_size, 50);
    STRV(&r->join, "*");
    STRV(&r->trigger, "admin");
    assert_int_equal(r->n_trigger_events, 1);
    assert_string_equal(r->trigger_events[0].event, "metrics:update");
    STRV(&r->trigger_events[0].roles, "publisher");
    assert_int_equal(r->n_delivery, 2);
    assert_string_equal(r->delivery[0].event, "metrics:update");
    assert_int_equal(r->delivery[0].policy, DLG_CFG_DELIVERY_LATEST);
    assert_string_equal(r->delivery[1].event, "*");
    assert_int_equal(r->delivery[1].policy, DLG_CFG_DELIVERY_STREAM);
    assert_int_equal(r->rate_per_second, 20);
    assert_int_equal(r->rate_burst, 40);
    assert_int_equal(r->n_history, 2);
    assert_string_equal(r->history[0].event, "*");
    assert_int_equal(r->history[0].limit, 100);
    assert_int_equal(r->history[0].max_age_seconds, 3600);
    assert_string_equal(r->history[1].event, "alert:triggered");
    assert_int_equal(r->history[1].limit, 10);
    assert_int_equal(r->history[1].max_age_seconds, 0);
    assert_int_equal(r->sync_history_on_join, 5);
    assert_int_equal(r->line, 47);
    r = &c->rooms[1];
    assert_ptr_equal(dlg_config_find_room(c, "chat"), r);
    assert_null(r->name);
    assert_null(r->description);
    assert_true(r->any_event);
    assert_true(r->default_all);
    assert_int_equal(r->max_size, 0);
    assert_int_equal(r->join.n, 0);
    assert_int_equal(r->rate_per_second, 5);
    assert_int_equal(r->rate_burst, 5);            /* filled from per_second */
    assert_int_equal(r->sync_history_on_join, -1); /* "true" */
    assert_null(dlg_config_find_room(c, "nope"));

    assert_int_equal(c->n_auto_join, 2);
    assert_string_equal(c->auto_join[0].role, "admin");
    STRV(&c->auto_join[0].rooms, "dashboard", "chat");
    assert_string_equal(c->auto_join[1].role, "*");
    STRV(&c->auto_join[1].rooms, "chat");

    const dlg_config_metrics *m = &c->metrics;
    assert_true(m->enabled);
    assert_string_equal(m->room, "dashboard");
    assert_int_equal(m->interval_ms, 500);
    assert_int_equal(m->n_alerts, 2);
    assert_int_equal(m->alerts[0].metric, DLG_CFG_METRIC_CPU);
    assert_int_equal(m->alerts[0].op, DLG_CFG_OP_GT);
    assert_true(m->alerts[0].threshold == 90.0);
    assert_int_equal(m->alerts[0].severity, DLG_CFG_SEV_HIGH);
    assert_string_equal(m->alerts[0].message, "CPU usage critical: {value}%");
    assert_int_equal(m->alerts[0].cooldown_seconds, 60);
    assert_int_equal(m->alerts[1].metric, DLG_CFG_METRIC_LATENCY);
    assert_int_equal(m->alerts[1].op, DLG_CFG_OP_GE);
    assert_true(m->alerts[1].threshold == 12.5);
    assert_int_equal(m->alerts[1].severity, DLG_CFG_SEV_CRITICAL);
    assert_string_equal(m->alerts[1].message, "{metric} is {value} ms");
    assert_int_equal(m->alerts[1].cooldown_seconds, 60);

    assert_int_equal(c->store, DLG_CFG_STORE_SQLITE);
    assert_int_equal(c->store_sync, 1); /* batch */
    assert_resolved(fx, c->store_path, "data/events.db");
    dlg_config_free(c);
}

static void minimal_file(void **state) {
    dlg_config *c = load_ok(*state, "minimal.yaml");
    assert_defaults(c);
    assert_no_metrics(c);
    assert_int_equal(c->n_rooms, 1);
    const dlg_config_room *r = &c->rooms[0];
    assert_string_equal(r->id, "lobby");
    assert_int_equal(r->line, 3);
    assert_null(r->name);
    assert_null(r->description);
    assert_int_equal(r->events.n, 0);
    assert_false(r->any_event);
    assert_int_equal(r->default_subscriptions.n, 0);
    assert_false(r->default_all);
    assert_int_equal(r->max_size, 0);
    assert_int_equal(r->join.n, 0);
    assert_int_equal(r->trigger.n, 0);
    assert_int_equal(r->n_trigger_events, 0);
    assert_int_equal(r->n_delivery, 0);
    assert_int_equal(r->rate_per_second, 0);
    assert_int_equal(r->rate_burst, 0);
    assert_int_equal(r->n_history, 0);
    assert_int_equal(r->sync_history_on_join, 0);
    assert_int_equal(c->n_auto_join, 0);
    dlg_config_free(c);
}

static void empty_file(void **state) {
    dlg_config *c = load_ok(*state, "empty.yaml");
    assert_defaults(c);
    assert_no_metrics(c);
    assert_int_equal(c->n_rooms, 0);
    dlg_config_free(c);
}

static void defaults_without_file(void **state) {
    (void)state;
    dlg_config *c = NULL;
    assert_int_equal(dlg_config_new_default(NULL), DLG_EINVAL);
    assert_int_equal(dlg_config_new_default(&c), 0);
    assert_non_null(c);
    assert_null(c->path);
    assert_defaults(c);
    assert_no_metrics(c);
    assert_int_equal(c->n_rooms, 0);
    assert_int_equal(c->n_auto_join, 0);
    dlg_config_free(c);
    dlg_config_free(NULL);
}

static void seed_alert_by_default(void **state) {
    dlg_config *c = load_ok(*state, "metrics_default.yaml");
    const dlg_config_metrics *m = &c->metrics;
    assert_true(m->enabled);
    assert_string_equal(m->room, "dashboard");
    assert_int_equal(m->interval_ms, 1000);
    assert_int_equal(m->n_alerts, 1);
    assert_int_equal(m->alerts[0].metric, DLG_CFG_METRIC_CPU);
    assert_int_equal(m->alerts[0].op, DLG_CFG_OP_GT);
    assert_true(m->alerts[0].threshold == 90.0);
    assert_int_equal(m->alerts[0].severity, DLG_CFG_SEV_HIGH);
    assert_string_equal(m->alerts[0].message, "CPU usage critical: {value}%");
    assert_int_equal(m->alerts[0].cooldown_seconds, 60);
    assert_int_equal(m->alerts[0].line, 0);
    dlg_config_free(c);
}

/* auto_join and metrics written before rooms still find them. */
static void key_order_free(void **state) {
    dlg_config *c = load_ok(*state, "order.yaml");
    assert_int_equal(c->n_auto_join, 1);
    assert_true(c->metrics.enabled);
    assert_int_equal(c->metrics.n_alerts, 0);              /* alerts: [] turns them off */
    assert_int_equal(c->rooms[0].sync_history_on_join, 0); /* "false" */
    assert_null(c->store_path);                            /* "" = unset */
    dlg_config_free(c);
}

/* cluster: every key, relative paths resolved, URLs kept as written. */
static void cluster_file(void **state) {
    const fixtures *fx = *state;
    dlg_config *c = load_ok(fx, "cluster.yaml");
    const dlg_config_cluster *cl = &c->cluster;
    assert_true(cl->enabled);
    assert_int_equal(cl->line, 3);
    assert_string_equal(cl->node_id, "node-a.eu:1");
    STRV(&cl->nats, "nats://127.0.0.1:4222", "tls://nats-2.example.com:4222",
         "nats://[::1]:4224");
    assert_resolved(fx, cl->creds, "nats/dialogue.creds");
    assert_true(cl->tls);
    assert_string_equal(cl->tls_ca, "/etc/nats/ca.crt");
    assert_resolved(fx, cl->tls_cert, "nats/client.crt");
    assert_resolved(fx, cl->tls_key, "nats/client.key");
    assert_true(cl->log);
    assert_int_equal(cl->log_replicas, 3);
    assert_int_equal(cl->log_max_events, 5000);
    assert_int_equal(cl->log_max_age_s, 86400);
    assert_int_equal(cl->log_memory, 1);
    dlg_config_free(c);
}

/* io_uring: a bool, on by default (assert_defaults); written to a temp
 * file because it needs no fixture of its own. */
static void io_uring_key(void **state) {
    (void)state;
    char path[] = "/tmp/dlg-test-config-XXXXXX", err[512] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("log_level: warn\nio_uring: false\n", f);
    assert_int_equal(fclose(f), 0);
    dlg_config *c = NULL;
    int rc = dlg_config_load(path, &c, err, sizeof(err));
    if (rc != 0)
        print_error("rc %d: %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_false(c->io_uring);
    dlg_config_free(c);
    c = NULL;
    assert_non_null(f = fopen(path, "w"));
    fputs("io_uring: sometimes\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(dlg_config_load(path, &c, err, sizeof(err)), DLG_ECONFIG);
    assert_null(c);
    unlink(path);
    assert_has(err, ":1:11: io_uring: expected true or false, got \"sometimes\"");
}

/* Loads text from a temp file: 0 and *out, or the error in err. */
static int load_text(const char *text, dlg_config **out, char *err, size_t errlen) {
    char path[] = "/tmp/dlg-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    int rc = dlg_config_load(path, out, err, errlen);
    unlink(path);
    return rc;
}

/* send_threads: 0..64, 0 (one per core) by default (assert_defaults). */
static void send_threads_key(void **state) {
    (void)state;
    char err[512] = "";
    dlg_config *c = NULL;
    assert_int_equal(load_text("send_threads: 3\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c->send_threads, 3);
    dlg_config_free(c);
    c = NULL;
    assert_int_equal(load_text("send_threads: 64\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c->send_threads, 64);
    dlg_config_free(c);
    c = NULL;
    assert_int_equal(load_text("send_threads: 65\n", &c, err, sizeof(err)), DLG_ECONFIG);
    assert_null(c);
    assert_has(err, ":1:15: send_threads: 65 is out of range (expected 0 to 64)");
    assert_int_equal(load_text("send_threads: -1\n", &c, err, sizeof(err)), DLG_ECONFIG);
    assert_has(err, "send_threads: expected an unsigned integer, got \"-1\"");
    assert_int_equal(load_text("send_threads: [2]\n", &c, err, sizeof(err)), DLG_ECONFIG);
    assert_has(err, "send_threads: expected an unsigned integer");
    assert_null(c);
}

/* auth.jwt: public keys need issuer and audience unless the operator opts
 * out; HS256 keys do not (a shared secret names one service already). */
static void jwt_scope_keys(void **state) {
    (void)state;
    char err[512] = "";
    dlg_config *c = NULL;
    static const char *const scoped =
        "auth:\n  jwt:\n    issuer: idp\n    audience: dialogue\n    keys:\n"
        "      - {alg: EdDSA, public_key_file: k.pem}\n";
    assert_int_equal(load_text(scoped, &c, err, sizeof(err)), 0);
    assert_false(c->auth.jwt.issuer_audience_optional);
    dlg_config_free(c);
    c = NULL;
    static const char *const optout =
        "auth:\n  jwt:\n    issuer_audience_optional: true\n    keys:\n"
        "      - {alg: RS256, public_key_file: k.pem}\n";
    assert_int_equal(load_text(optout, &c, err, sizeof(err)), 0);
    assert_true(c->auth.jwt.issuer_audience_optional);
    dlg_config_free(c);
    c = NULL;
    assert_int_equal(load_text("auth:\n  jwt:\n    audience: dialogue\n    keys:\n"
                               "      - {alg: RS256, public_key_file: k.pem}\n",
                               &c, err, sizeof(err)),
                     DLG_ECONFIG);
    assert_has(err, ":5:9: auth.jwt.keys[0]: an RS256 key needs auth.jwt.issuer");
    assert_int_equal(load_text("auth:\n  jwt:\n    keys:\n"
                               "      - {alg: HS256, secret_file: s}\n",
                               &c, err, sizeof(err)),
                     0);
    dlg_config_free(c);
}

/* tls_own_records: a bool, on by default (assert_defaults). */
static void tls_own_records_key(void **state) {
    (void)state;
    char err[512] = "";
    dlg_config *c = NULL;
    assert_int_equal(load_text("tls_own_records: false\n", &c, err, sizeof(err)), 0);
    assert_false(c->tls_own_records);
    dlg_config_free(c);
    c = NULL;
    assert_int_equal(load_text("tls_own_records: true\n", &c, err, sizeof(err)), 0);
    assert_true(c->tls_own_records);
    dlg_config_free(c);
    c = NULL;
    assert_int_equal(load_text("tls_own_records: openssl\n", &c, err, sizeof(err)),
                     DLG_ECONFIG);
    assert_null(c);
    assert_has(err, ":1:18: tls_own_records: expected true or false, got \"openssl\"");
}

/* limits.pre_auth_max_connections: 1000 by default (assert_defaults), at
 * least 1. */
static void pre_auth_max_connections_key(void **state) {
    (void)state;
    char err[512] = "";
    dlg_config *c = NULL;
    assert_int_equal(load_text("limits:\n  pre_auth_max_connections: 64\n", &c, err,
                               sizeof(err)),
                     0);
    assert_int_equal(c->limits.pre_auth_max_connections, 64);
    dlg_config_free(c);
    c = NULL;
    assert_int_equal(load_text("limits:\n  pre_auth_max_connections: 0\n", &c, err,
                               sizeof(err)),
                     DLG_ECONFIG);
    assert_null(c);
    assert_has(err, "limits.pre_auth_max_connections");
}

/* A file named without a folder resolves paths against the working dir. */
static void paths_without_folder(void **state) {
    const fixtures *fx = *state;
    char cwd[PATH_MAX], err[512];
    dlg_config *c = NULL;
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(fx->dir), 0);
    int rc = dlg_config_load("full.yaml", &c, err, sizeof(err));
    int rc2 = dlg_config_load("bad_type.yaml", &c, err, sizeof(err));
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(c->listen[0].cert, "certs/server.crt");
    assert_string_equal(c->schemas.v[0], "dashboard.pb");
    assert_int_equal(rc2, DLG_ECONFIG);
    assert_has(err, "bad_type.yaml:5:15: rooms[1].max_size: ");
    dlg_config_free(c);
}

static void error_buffer_edges(void **state) {
    const fixtures *fx = *state;
    char path[PATH_MAX + 64], full[1024], small[12];
    dlg_config *c = NULL;
    fixture(fx, "bad_type.yaml", path, sizeof(path));
    assert_int_equal(dlg_config_load(path, &c, NULL, 0), DLG_ECONFIG);
    assert_int_equal(dlg_config_load(path, &c, full, sizeof(full)), DLG_ECONFIG);
    memset(small, 'x', sizeof(small));
    assert_int_equal(dlg_config_load(path, &c, small, sizeof(small)), DLG_ECONFIG);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, full, sizeof(small) - 1);
    assert_null(c);
    assert_int_equal(dlg_config_load(NULL, &c, full, sizeof(full)), DLG_EINVAL);
    assert_int_equal(dlg_config_load(path, NULL, full, sizeof(full)), DLG_EINVAL);
    assert_has(full, "out");
}

/* ---- every error (dlg_config_check) -------------------------------------- */

/* bad_many.yaml: one run finds each of its mistakes, in walk order, each
 * at its position with its key path; dlg_config_load stops at the first
 * and says the same about it. */
static void check_every_error(void **state) {
    const fixtures *fx = *state;
    static const struct {
        const char *path;
        unsigned line, col;
        const char *what;
    } want[] = {
        {"log_level", 2, 12, "got \"loud\""},
        {"listen[0].tls", 5, 10, "expected true or false, got \"maybe\""},
        {"listen[1].address", 7, 14, "an IPv6 address needs brackets"},
        {"limits.max_frame", 11, 14, "expected an unsigned integer, got \"ten\""},
        {"limits.heartbeat_ms", 12, 17, "0 is out of range"},
        {"rooms[0]", 17, 5, "unknown key \"colour\""},
        {"rooms[0].events[1]", 15, 23, "invalid character ' ' in \"bad event\""},
        {"rooms[0].max_size", 16, 15, "got \"-1\""},
        {"rooms[1]", 18, 5, "missing required key \"id\""},
        {"rooms[2].id", 19, 9, "duplicate room id \"chat\" (first defined at line 14)"},
        {"auto_join[0].rooms[1]", 21, 34, "unknown room \"lobby\""},
        {"cluster", 23, 3, "missing required key \"node_id\""},
        {"cluster.nats[0]", 23, 10, "expected a URL like nats://"},
    };
    enum { N = sizeof(want) / sizeof(want[0]) };
    char path[PATH_MAX + 64], err[1024] = "", at[PATH_MAX + 400];
    fixture(fx, "bad_many.yaml", path, sizeof(path));
    dlg_config *c = NULL;
    dlg_config_errors e;
    assert_int_equal(dlg_config_check(path, &c, &e), DLG_ECONFIG);
    assert_non_null(c); /* what could be read, for the checks of what it names */
    for (size_t i = 0; e.total != N && i < e.n; i++)
        print_message("%s\n", e.v[i].text);
    assert_int_equal(e.total, N);
    assert_int_equal(e.n, N);
    for (size_t i = 0; i < N; i++) {
        assert_string_equal(e.v[i].path, want[i].path);
        snprintf(at, sizeof(at), "%s:%u:%u: %s: ", path, want[i].line, want[i].col,
                 want[i].path);
        assert_has(e.v[i].text, at);
        assert_has(e.v[i].text, want[i].what);
    }
    /* A mapping that had an error is not checked across its keys: listen[0]
     * lacks its key, but its tls did not read, so that is not said. */
    for (size_t i = 0; i < e.n; i++)
        assert_null(strstr(e.v[i].text, "missing \"key\""));
    assert_true(dlg_config_errors_under(&e, "rooms[0]"));
    assert_true(dlg_config_errors_under(&e, "rooms"));
    assert_false(dlg_config_errors_under(&e, "room"));
    assert_false(dlg_config_errors_under(&e, "auth"));
    /* The room that read well is still there, with its position. */
    assert_int_equal(c->n_rooms, 3);
    assert_string_equal(c->rooms[0].id, "chat");
    unsigned line = 0, col = 0;
    assert_int_equal(dlg_config_where(c, "listen[0].cert", &line, &col), 0);
    assert_int_equal(line, 6);
    assert_int_equal(col, 11);
    assert_int_equal(dlg_config_where(c, "rooms[1]", &line, &col), 0);
    assert_int_equal(line, 18);
    assert_int_equal(col, 5);
    assert_int_equal(dlg_config_where(c, "auth", &line, &col), DLG_ENOTFOUND);
    dlg_config_free(c);
    dlg_config_errors_free(&e);
    dlg_config_errors_free(&e); /* twice is harmless */

    c = NULL;
    assert_int_equal(dlg_config_load(path, &c, err, sizeof(err)), DLG_ECONFIG);
    assert_null(c);
    snprintf(at, sizeof(at), "%s:2:12: log_level: ", path);
    assert_has(err, at);
}

/* A valid file: no error, and the position of what it holds. */
static void check_valid_file(void **state) {
    const fixtures *fx = *state;
    char path[PATH_MAX + 64];
    fixture(fx, "full.yaml", path, sizeof(path));
    dlg_config *c = NULL;
    dlg_config_errors e;
    assert_int_equal(dlg_config_check(path, &c, &e), 0);
    assert_int_equal(e.total, 0);
    assert_int_equal(e.n, 0);
    assert_non_null(c);
    unsigned line = 0, col = 0;
    assert_int_equal(dlg_config_where(c, "listen[0].cert", &line, &col), 0);
    assert_int_equal(line, 6);
    assert_int_equal(col, 11);
    assert_int_equal(dlg_config_where(c, "listen[1]", &line, NULL), 0);
    assert_int_equal(line, 10);
    assert_int_equal(dlg_config_where(c, "schemas[1]", &line, &col), 0);
    assert_int_equal(line, 12);
    assert_int_equal(col, 25);
    dlg_config_free(c);
    dlg_config_errors_free(&e);
    /* dlg_config_load records no positions. */
    assert_int_equal(dlg_config_load(path, &c, NULL, 0), 0);
    assert_int_equal(dlg_config_where(c, "listen[0].cert", &line, &col), DLG_ENOTFOUND);
    dlg_config_free(c);
}

/* ---- broken fixtures ---------------------------------------------------- */

typedef struct bad_case {
    const char *file; /* under tests/config */
    int rc;
    unsigned line, col; /* line 0: no position; col 0: line only */
    const char *key;    /* key path named before the text, or "" */
    const char *what;   /* words the message must contain */
    const fixtures *fx;
} bad_case;

static void broken(void **state) {
    const bad_case *bc = *state;
    char path[PATH_MAX + 64], err[1024] = "", want[PATH_MAX + 400];
    dlg_config *keep = (dlg_config *)err, *c = keep;
    fixture(bc->fx, bc->file, path, sizeof(path));
    int rc = dlg_config_load(path, &c, err, sizeof(err));
    if (rc != bc->rc)
        print_error("%s: rc %d (%s): %s\n", bc->file, rc, dlg_err_name(rc), err);
    assert_int_equal(rc, bc->rc);
    assert_ptr_equal(c, keep); /* on error *out is left alone */
    if (bc->line && bc->col)
        snprintf(want, sizeof(want), "%s:%u:%u: %s%s", path, bc->line, bc->col, bc->key,
                 *bc->key ? ": " : "");
    else if (bc->line)
        snprintf(want, sizeof(want), "%s:%u: %s", path, bc->line, bc->key);
    else
        snprintf(want, sizeof(want), "%s: %s", path, bc->key);
    assert_has(err, want);
    assert_has(err, bc->what);
    assert_null(strchr(err, '\n'));

    /* dlg_config_check's first error is this one; a file that could not
     * be opened or parsed gives no configuration to look further into. */
    dlg_config_errors e;
    c = NULL;
    rc = dlg_config_check(path, &c, &e);
    assert_int_equal(rc, bc->rc);
    assert_true(e.n >= 1);
    assert_int_equal(e.n, e.total);
    assert_string_equal(e.v[0].text, err);
    if (bc->rc == DLG_EIO || strstr(err, "YAML") || strstr(err, "second YAML document"))
        assert_null(c);
    else
        assert_non_null(c);
    dlg_config_free(c);
    dlg_config_errors_free(&e);
}

static const bad_case bad_cases[] = {
    {"bad_unknown_key.yaml", DLG_ECONFIG, 3, 1, "",
     "unknown key \"lisen\" (expected one of: log_level, listen, schemas", NULL},
    {"bad_unknown_key_nested.yaml", DLG_ECONFIG, 3, 5, "rooms[0]",
     "unknown key \"max_sise\" (expected one of: id, name,", NULL},
    {"bad_type.yaml", DLG_ECONFIG, 5, 15, "rooms[1].max_size",
     "expected an unsigned integer, got \"ten\"", NULL},
    {"bad_enum.yaml", DLG_ECONFIG, 2, 12, "log_level",
     "expected one of: error, warn, info, debug; got \"verbose\"", NULL},
    {"bad_dup_room.yaml", DLG_ECONFIG, 4, 9, "rooms[2].id",
     "duplicate room id \"chat\" (first defined at line 2)", NULL},
    {"bad_auto_join.yaml", DLG_ECONFIG, 5, 19, "auto_join[0].rooms[1]", "unknown room \"lobby\"",
     NULL},
    {"bad_event_chars.yaml", DLG_ECONFIG, 3, 23, "rooms[0].events[1]",
     "invalid character ' ' in \"new message\"", NULL},
    {"bad_long_name.yaml", DLG_ECONFIG, 3, 9, "rooms[0].id", "is 256 bytes long (at most 255)",
     NULL},
    {"bad_long_event.yaml", DLG_ECONFIG, 3, 18, "rooms[0].events[1]",
     "is 300 bytes long (at most 255)", NULL},
    {"bad_syntax.yaml", DLG_ECONFIG, 4, 7, "",
     "YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence "
     "that starts at line 3)",
     NULL},
    {"does_not_exist.yaml", DLG_EIO, 0, 0, "", "cannot open: No such file or directory", NULL},
    {".", DLG_EIO, 0, 0, "", "cannot open: Is a directory", NULL},
    {"bad_utf8.yaml", DLG_ECONFIG, 3, 0, "", "cannot read YAML: invalid leading UTF-8 octet", NULL},
    {"bad_default_subs.yaml", DLG_ECONFIG, 4, 45, "rooms[0].default_subscriptions[1]",
     "event \"alert:triggered\" is not among the events of room \"dashboard\"", NULL},
    {"bad_tls_nocert.yaml", DLG_ECONFIG, 2, 5, "listen[0]",
     "missing \"cert\" (required when tls is true)", NULL},
    {"bad_range.yaml", DLG_ECONFIG, 2, 14, "limits.max_frame",
     "10 is out of range (expected 64 to 268435456)", NULL},
    {"bad_pending.yaml", DLG_ECONFIG, 3, 23, "limits.soft_pending_bytes",
     "4096 is above max_pending_bytes (2048)", NULL},
    {"bad_metrics_room.yaml", DLG_ECONFIG, 5, 9, "metrics.room", "unknown room \"dashbord\"", NULL},
    {"bad_metrics_events.yaml", DLG_ECONFIG, 5, 9, "metrics.room", "must list \"alert:triggered\"",
     NULL},
    {"bad_dup_key.yaml", DLG_ECONFIG, 3, 1, "", "duplicate key \"log_level\" (first at line 1)",
     NULL},
    {"bad_star_mixed.yaml", DLG_ECONFIG, 3, 23, "rooms[0].events[1]",
     "\"*\" must be the only entry", NULL},
    {"bad_sqlite.yaml", DLG_ECONFIG, 2, 8, "store", "sqlite needs store_path", NULL},
    {"bad_address.yaml", DLG_ECONFIG, 2, 14, "listen[0].address", "an IPv6 address needs brackets",
     NULL},
    {"bad_jwt_alg.yaml", DLG_ECONFIG, 4, 9, "auth.jwt.keys[0]", "alg RS256 needs public_key_file",
     NULL},
    {"bad_two_docs.yaml", DLG_ECONFIG, 3, 1, "", "a second YAML document", NULL},
    {"bad_bool.yaml", DLG_ECONFIG, 1, 23, "allow_unknown_fields",
     "expected true or false, got \"maybe\"", NULL},
    {"bad_root.yaml", DLG_ECONFIG, 1, 1, "", "expected a mapping, got a list", NULL},
    {"bad_nul.yaml", DLG_ECONFIG, 2, 9, "rooms[0].id", "contains a NUL byte", NULL},
    {"bad_missing_id.yaml", DLG_ECONFIG, 2, 5, "rooms[0]", "missing required key \"id\"", NULL},
    {"bad_empty_id.yaml", DLG_ECONFIG, 2, 9, "rooms[0].id", "must not be empty", NULL},
    {"bad_not_list.yaml", DLG_ECONFIG, 3, 11, "rooms[0].join", "expected a list, got \"admin\"",
     NULL},
    {"bad_delivery.yaml", DLG_ECONFIG, 5, 34, "rooms[0].delivery[0].policy",
     "expected one of: stream, latest; got \"newest\"", NULL},
    {"bad_grant_star.yaml", DLG_ECONFIG, 4, 37, "auth.client_cert.roles[0].roles[1]",
     "\"*\" cannot be granted as a role", NULL},
    {"bad_dup_schema.yaml", DLG_ECONFIG, 1, 23, "schemas[2]", "duplicate entry", NULL},
    {"bad_sync.yaml", DLG_ECONFIG, 3, 27, "rooms[0].sync_history_on_join", "got \"-2\"", NULL},
    {"bad_threshold.yaml", DLG_ECONFIG, 7, 41, "metrics.alerts[0].threshold",
     "expected a number, got \"nan\"", NULL},
    {"bad_cluster_url.yaml", DLG_ECONFIG, 3, 33, "cluster.nats[1]",
     "expected a URL like nats://127.0.0.1:4222 (or tls://...), got \"127.0.0.1:4223\"", NULL},
    {"bad_cluster_node.yaml", DLG_ECONFIG, 3, 3, "cluster", "missing required key \"node_id\"",
     NULL},
    {"bad_cluster_tls.yaml", DLG_ECONFIG, 4, 8, "cluster.tls", "cert and key go together", NULL},
    {"bad_cluster_log_sqlite.yaml", DLG_ECONFIG, 2, 8, "store",
     "sqlite cannot be combined with cluster.log", NULL},
    {"bad_cluster_log_replicas.yaml", DLG_ECONFIG, 5, 15, "cluster.log.replicas",
     "7 is out of range (expected 1 to 5)", NULL},
    {"bad_user_from_san.yaml", DLG_ECONFIG, 3, 16, "auth.client_cert.user_from",
     "\"san\" is ambiguous (a DNS and an email name could be one user): pick dns, email or uri",
     NULL},
    {"bad_jwt_unscoped.yaml", DLG_ECONFIG, 5, 9, "auth.jwt.keys[0]",
     "an ES256 key needs auth.jwt.issuer and auth.jwt.audience", NULL},
};
#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

/* The fixtures sit in tests/config of the source tree: found from the
 * working directory, else upwards from the binary (build/[asan/]tests). */
static int find_fixtures(fixtures *fx) {
    if (access("tests/config/full.yaml", R_OK) == 0 && getcwd(fx->dir, sizeof(fx->dir) - 16)) {
        strcat(fx->dir, "/tests/config");
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0)
        return -1;
    exe[n] = '\0';
    for (int up = 0; up < 5; up++) {
        char *s = strrchr(exe, '/');
        if (!s)
            break;
        *s = '\0';
        if (snprintf(fx->dir, sizeof(fx->dir), "%s/tests/config/full.yaml", exe) <
                (int)sizeof(fx->dir) &&
            access(fx->dir, R_OK) == 0) {
            *strrchr(fx->dir, '/') = '\0'; /* drop "/full.yaml" */
            return 0;
        }
    }
    return -1;
}

int main(void) {
    fixtures fx;
    if (find_fixtures(&fx) < 0) {
        fprintf(stderr, "test_config: cannot find tests/config/full.yaml (run from the repo)\n");
        return 1;
    }
    bad_case cases[N_BAD];
    /* The named tests first; N_FIXED counts them (the compiler refuses
     * more initialisers than the array holds). */
    enum { N_FIXED = 16 };
    struct CMUnitTest tests[N_BAD + N_FIXED] = {
        cmocka_unit_test_prestate(full_file, &fx),
        cmocka_unit_test_prestate(minimal_file, &fx),
        cmocka_unit_test_prestate(empty_file, &fx),
        cmocka_unit_test_prestate(defaults_without_file, &fx),
        cmocka_unit_test_prestate(seed_alert_by_default, &fx),
        cmocka_unit_test_prestate(key_order_free, &fx),
        cmocka_unit_test_prestate(paths_without_folder, &fx),
        cmocka_unit_test_prestate(error_buffer_edges, &fx),
        cmocka_unit_test_prestate(cluster_file, &fx),
        cmocka_unit_test_prestate(io_uring_key, &fx),
        cmocka_unit_test_prestate(send_threads_key, &fx),
        cmocka_unit_test_prestate(tls_own_records_key, &fx),
        cmocka_unit_test_prestate(jwt_scope_keys, &fx),
        cmocka_unit_test_prestate(pre_auth_max_connections_key, &fx),
        cmocka_unit_test_prestate(check_every_error, &fx),
        cmocka_unit_test_prestate(check_valid_file, &fx),
    };
    size_t nt = N_FIXED;
    if (tests[N_FIXED - 1].test_func == NULL || tests[N_FIXED].test_func != NULL) {
        fprintf(stderr, "test_config: N_FIXED does not match the named tests\n");
        return 1;
    }
    for (size_t i = 0; i < N_BAD; i++) {
        cases[i] = bad_cases[i];
        cases[i].fx = &fx;
        tests[nt++] = (struct CMUnitTest){
            .name = cases[i].file, .test_func = broken, .initial_state = &cases[i]};
    }
    return _cmocka_run_group_tests("config", tests, nt, NULL, NULL);
}
