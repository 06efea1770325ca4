/* test_boot.c: config -> server state (boot.c), the app layer's boot alone
 * with the layers under it: configs loaded with dlg_config_load from YAML
 * text written to a temp file, applied to a zeroed dlg_server (no loop, no
 * listener, nothing started). Rooms with their rules, delivery policies,
 * rate limits and history settings; room_admin; every listener and limits
 * key copied into the options; a room event without a schema refused with
 * file:line; a reload of a room's rules replacing the old ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "boot.h"
#include "dispatch.h"
#include "dlg_err.h"
#include "history.h"
#include "jwt.h"
#include "ratelimit.h"
#include "rings.h"
#include "room.h"

#ifndef DLG_TEST_SHARE
#error "DLG_TEST_SHARE must name the folder of the built descriptor sets"
#endif
#define DASHBOARD_PB DLG_TEST_SHARE "/dashboard.pb"

typedef struct world {
    char path[64];
    dlg_config *cfg;
    dlg_server srv;
} world;

static int setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->srv.log.level = DLG_LOG_ERROR;
    *state = w;
    return 0;
}

/* What dlg_server_free would free of what boot made (server.c is not
 * linked: nothing was started). */
static int teardown(void **state) {
    world *w = *state;
    dlg_server *s = &w->srv;
    dlg_rooms_free(s->rooms);
    dlg_ratelimit_free(s->rates);
    dlg_history_free(s->history);
    dlg_schema_free(s->schema);
    dlg_jwt_verifier_free(s->jwt);
    dlg_strv_free(s->create_roles, s->n_create_roles);
    dlg_strv_free(s->delete_roles, s->n_delete_roles);
    dlg_config_free(w->cfg);
    if (w->path[0])
        unlink(w->path);
    free(w);
    return 0;
}

/* The descriptor set, as an absolute path (a relative one in a config is
 * taken from the config file's folder). */
static const char *dashboard_pb(void) {
    static char path[4096];
    if (realpath(DASHBOARD_PB, path) == NULL)
        fail_msg("%s: not built", DASHBOARD_PB);
    return path;
}

/* Writes text (with %s standing for the dashboard descriptor set) to a temp
 * file and loads it into w->cfg (which must outlive the server: boot
 * borrows its strings). */
static void load(world *w, const char *text) {
    snprintf(w->path, sizeof(w->path), "/tmp/dlg-boot-XXXXXX");
    int fd = mkstemp(w->path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f, text, dashboard_pb());
    assert_int_equal(fclose(f), 0);
    char err[512] = "";
    if (dlg_config_load(w->path, &w->cfg, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
}

static void apply_ok(world *w) {
    char err[512] = "";
    if (dlg_boot_apply(&w->srv, w->cfg, err, sizeof(err)) != 0)
        fail_msg("boot: %s", err);
}

static void assert_strv(char *const *v, size_t n, size_t want_n, ...) {
    assert_int_equal(n, want_n);
    va_list ap;
    va_start(ap, want_n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v[i], va_arg(ap, const char *));
    va_end(ap);
}

static const char rooms_yaml[] =
    "log_level: warn\n"
    "schemas: [%s]\n"
    "auth:\n"
    "  anonymous: true\n"
    "room_admin:\n"
    "  create: [admin, maker]\n"
    "  delete: [admin]\n"
    "rooms:\n"
    "  - id: dashboard\n"
    "    name: Dashboard\n"
    "    description: Real-time metrics\n"
    "    events: [metrics:update, alert:triggered]\n"
    "    default_subscriptions: [metrics:update]\n"
    "    max_size: 50\n"
    "    join: [\"*\"]\n"
    "    trigger: [admin]\n"
    "    trigger_events:\n"
    "      - {event: metrics:update, roles: [publisher, bot]}\n"
    "    delivery:\n"
    "      - {event: metrics:update, policy: latest}\n"
    "      - {event: \"*\", policy: stream}\n"
    "    rate_limit: {per_second: 20, burst: 40}\n"
    "    history:\n"
    "      - {event: \"*\", limit: 100, max_age_seconds: 3600}\n"
    "      - {event: alert:triggered, limit: 10}\n"
    "    sync_history_on_join: 5\n"
    "  - id: chat\n"
    "    events: [\"*\"]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [member]\n"
    "    delivery:\n"
    "      - {event: \"*\", policy: latest}\n"
    "      - {event: typing, policy: stream}\n"
    "    rate_limit: {per_second: 5}\n"
    "    sync_history_on_join: true\n"
    "  - id: quiet\n"
    "    events: [alert:triggered]\n";

/* ---- rooms -------------------------------------------------------------------- */

static void test_apply_rooms_with_rules(void **state) {
    world *w = *state;
    load(w, rooms_yaml);
    apply_ok(w);
    dlg_server *s = &w->srv;
    assert_ptr_equal(s->cfg, w->cfg);
    assert_int_equal(s->log.level, DLG_LOG_WARN);
    assert_true(s->opts.allow_anonymous);
    assert_ptr_equal(s->up.frame, dlg_dispatch_frame);
    assert_ptr_equal(s->up.closing, dlg_dispatch_closing);
    assert_non_null(s->schema);
    assert_non_null(s->rates);
    assert_null(s->jwt); /* no keys: token auth off */
    assert_strv(s->create_roles, s->n_create_roles, 2, "admin", "maker");
    assert_strv(s->delete_roles, s->n_delete_roles, 1, "admin");
    assert_int_equal(s->rooms->n, 3);

    dlg_room *d = dlg_rooms_find(s->rooms, "dashboard");
    assert_non_null(d);
    assert_false(d->dynamic);
    assert_string_equal(d->name, "Dashboard");
    assert_string_equal(d->description, "Real-time metrics");
    assert_false(d->any_event);
    assert_strv(d->events, d->n_events, 2, "metrics:update", "alert:triggered");
    assert_strv(d->default_subs, d->n_default_subs, 1, "metrics:update");
    assert_int_equal(d->max_size, 50);
    assert_strv(d->join_roles, d->n_join_roles, 1, "*");
    assert_strv(d->trigger_roles, d->n_trigger_roles, 1, "admin");
    assert_int_equal(d->n_trigger_events, 1);
    assert_string_equal(d->trigger_events[0].event, "metrics:update");
    assert_strv(d->trigger_events[0].roles, d->trigger_events[0].n_roles, 2, "publisher",
                "bot");
    assert_int_equal(d->rate_per_sec, 20);
    assert_int_equal(d->rate_burst, 40);
    assert_int_equal(d->default_delivery, DLG_DELIVERY_STREAM);
    dlg_evslot *mu = dlg_room_slot(d, "metrics:update");
    assert_non_null(mu);
    assert_int_equal(mu->delivery, DLG_DELIVERY_LATEST);
    /* history: the rules and sync_history_on_join went to the room's rings */
    assert_non_null(d->hist);
    assert_int_equal(dlg_hroom_sync(d->hist), 5);
    /* two types: alert:triggered's own 10, and "*"'s 100 for the other */
    assert_int_equal(dlg_hroom_capacity(d->hist, 2), 110);

    dlg_room *c = dlg_rooms_find(s->rooms, "chat");
    assert_non_null(c);
    assert_true(c->any_event);
    assert_true(c->default_all);
    assert_strv(c->join_roles, c->n_join_roles, 1, "member");
    assert_int_equal(c->n_trigger_roles, 0); /* none = nobody */
    assert_int_equal(c->rate_per_sec, 5);
    assert_int_equal(c->rate_burst, 5); /* burst defaults to per_second */
    assert_int_equal(c->default_delivery, DLG_DELIVERY_LATEST);
    /* an exact rule wins over "*", and its slot exists before any subscriber */
    dlg_evslot *ty = dlg_room_slot(c, "typing");
    assert_non_null(ty);
    assert_int_equal(ty->delivery, DLG_DELIVERY_STREAM);
    assert_non_null(c->hist);
    assert_int_equal(dlg_hroom_sync(c->hist), -1); /* true = all kept */

    dlg_room *q = dlg_rooms_find(s->rooms, "quiet");
    assert_non_null(q);
    assert_int_equal(q->n_join_roles, 0); /* deny by default */
    assert_int_equal(q->n_trigger_roles, 0);
    assert_null(q->hist); /* no history rules */
    assert_int_equal(q->rate_per_sec, 0);
    assert_int_equal(q->max_size, 0);
}

/* A reload applies a room's new rules in place of the old ones (ASan sees
 * the old lists freed), delivery policies included. */
static void test_room_rules_replaced(void **state) {
    world *w = *state;
    load(w, rooms_yaml);
    apply_ok(w);
    dlg_room *d = dlg_rooms_find(w->srv.rooms, "dashboard");
    dlg_config_room cr = w->cfg->rooms[2]; /* quiet: no rules at all */
    cr.id = "dashboard";
    char err[256] = "";
    assert_int_equal(dlg_boot_room_rules(d, &cr, err, sizeof(err)), 0);
    assert_int_equal(d->n_join_roles, 0);
    assert_int_equal(d->n_trigger_roles, 0);
    assert_int_equal(d->n_trigger_events, 0);
    assert_null(d->trigger_events);
    assert_int_equal(d->rate_per_sec, 0);
    assert_int_equal(d->max_size, 0);
    assert_int_equal(dlg_room_slot(d, "metrics:update")->delivery, DLG_DELIVERY_STREAM);
    /* and back */
    assert_int_equal(dlg_boot_room_rules(d, &w->cfg->rooms[0], err, sizeof(err)), 0);
    assert_int_equal(d->n_trigger_events, 1);
    assert_int_equal(d->rate_per_sec, 20);
    assert_int_equal(dlg_room_slot(d, "metrics:update")->delivery, DLG_DELIVERY_LATEST);
}

/* ---- events need schemas ------------------------------------------------------- */

static void test_event_without_schema_refused(void **state) {
    world *w = *state;
    load(w, "auth:\n"
            "  anonymous: true\n"
            "rooms:\n"
            "  - id: open\n"
            "    events: [\"*\"]\n"
            "  - id: chat\n"
            "    events: [chat:message]\n");
    char err[512] = "";
    assert_int_equal(dlg_boot_apply(&w->srv, w->cfg, err, sizeof(err)), DLG_ECONFIG);
    char want[160];
    snprintf(want, sizeof(want), "%s:6: rooms: room chat lists event chat:message", w->path);
    if (strstr(err, want) == NULL)
        fail_msg("\"%s\" does not say \"%s\"", err, want);
    /* the "*" room before it was made; the refused one was not */
    assert_non_null(dlg_rooms_find(w->srv.rooms, "open"));
    assert_null(dlg_rooms_find(w->srv.rooms, "chat"));
}

/* dlg_boot_check_events alone: "*" needs nothing, a listed event needs a
 * schema that defines it, no registry at all refuses every listed event. */
static void test_check_events(void **state) {
    world *w = *state;
    load(w, "schemas: [%s]\n"
            "rooms:\n"
            "  - id: ok\n"
            "    events: [metrics:update]\n"
            "  - id: bad\n"
            "    events: [alert:triggered, alert:cleared]\n");
    dlg_schema *sc = NULL;
    char err[512] = "";
    if (dlg_boot_schema(w->cfg, NULL, 0, NULL, &sc, err, sizeof(err)) != DLG_ECONFIG)
        fail_msg("dlg_boot_schema accepted a room event no schema defines (%s)", err);
    assert_null(sc);
    assert_non_null(strstr(err, "alert:cleared"));
    assert_int_equal(dlg_schema_new(&sc), 0);
    assert_int_equal(dlg_schema_load_file(sc, DASHBOARD_PB, err, sizeof(err)), 0);
    assert_int_equal(dlg_boot_check_events(sc, &w->cfg->rooms[0], "x.yaml", err, sizeof(err)),
                     0);
    err[0] = '\0';
    assert_int_equal(dlg_boot_check_events(sc, &w->cfg->rooms[1], "x.yaml", err, sizeof(err)),
                     DLG_ECONFIG);
    assert_non_null(strstr(err, "x.yaml:5: rooms: room bad lists event alert:cleared"));
    err[0] = '\0';
    assert_int_equal(dlg_boot_check_events(NULL, &w->cfg->rooms[0], "x.yaml", err,
                                           sizeof(err)), DLG_ECONFIG);
    assert_non_null(strstr(err, "x.yaml:3: rooms: room ok lists event metrics:update"));
    dlg_schema_free(sc);
    /* "*" needs no schema, even with none loaded */
    const char *star[] = {"*"};
    dlg_config_room any = {.id = "any", .events = {.v = (char **)star, .n = 1}, .line = 9};
    assert_int_equal(dlg_boot_check_events(NULL, &any, "x.yaml", err, sizeof(err)), 0);
}

/* ---- listeners and limits --------------------------------------------------------- */

static void test_listeners_every_key(void **state) {
    world *w = *state;
    load(w, "listen:\n"
            "  - address: 127.0.0.1:3443\n"
            "    tls: true\n"
            "    cert: /etc/d/server.crt\n"
            "    key: /etc/d/server.key\n"
            "    client_ca: /etc/d/ca.crt\n"
            "    client_crl: /etc/d/crl.pem\n"
            "    require_client_cert: true\n"
            "  - address: \"[::1]:0\"\n"
            "    tls: false\n");
    dlg_server_opts o;
    memset(&o, 0xa5, sizeof(o)); /* every field written must be written on purpose */
    dlg_boot_listeners(&o, w->cfg);
    assert_int_equal(o.n_listen, 2);
    const dlg_listener_conf *a = &o.listen[0], *b = &o.listen[1];
    assert_string_equal(a->address, "127.0.0.1:3443");
    assert_false(a->plaintext);
    assert_string_equal(a->cert_file, "/etc/d/server.crt");
    assert_string_equal(a->key_file, "/etc/d/server.key");
    assert_string_equal(a->client_ca_file, "/etc/d/ca.crt");
    assert_string_equal(a->client_crl_file, "/etc/d/crl.pem");
    assert_true(a->require_client_cert);
    assert_string_equal(b->address, "[::1]:0");
    assert_true(b->plaintext);
    assert_null(b->cert_file);
    assert_null(b->key_file);
    assert_null(b->client_ca_file);
    assert_null(b->client_crl_file);
    assert_false(b->require_client_cert);
    /* strings are borrowed from the config */
    assert_ptr_equal(a->address, w->cfg->listen[0].address);
}

static void test_limits_every_key(void **state) {
    world *w = *state;
    load(w, "auth:\n"
            "  anonymous: true\n"
            "http:\n"
            "  web_root: /srv/www\n"
            "  allowed_origins: [\"https://a.example:8443\", \"https://b.example\"]\n"
            "limits:\n"
            "  max_frame: 65536\n"
            "  max_connections: 500\n"
            "  handshake_timeout_ms: 1500\n"
            "  pre_auth_max_bytes: 8192\n"
            "  pre_auth_max_connections: 77\n"
            "  max_pending_bytes: 4194304\n"
            "  soft_pending_bytes: 524288\n"
            "  soft_pending_seconds: 3\n"
            "  write_timeout_ms: 7000\n"
            "  heartbeat_ms: 15000\n"
            "  max_rooms_per_connection: 16\n"
            "  room_ops_per_second: 9\n"
            "  room_ops_burst: 33\n"
            "  max_subscriptions: 44\n"
            "  max_room_events: 555\n"
            "  max_streams_per_connection: 12\n");
    dlg_server_opts o;
    memset(&o, 0xa5, sizeof(o));
    dlg_boot_limits(&o, w->cfg);
    assert_int_equal(o.max_frame, 65536);
    assert_int_equal(o.max_connections, 500);
    assert_int_equal(o.handshake_timeout_ms, 1500);
    assert_int_equal(o.pre_auth_max_bytes, 8192);
    assert_int_equal(o.pre_auth_max_connections, 77);
    assert_int_equal(o.max_pending_bytes, 4194304);
    assert_int_equal(o.soft_pending_bytes, 524288);
    assert_int_equal(o.soft_pending_ms, 3000);
    assert_int_equal(o.write_timeout_ms, 7000);
    assert_int_equal(o.heartbeat_ms, 15000);
    assert_int_equal(o.max_rooms_per_conn, 16);
    assert_int_equal(o.room_ops_per_sec, 9);
    assert_int_equal(o.room_ops_burst, 33);
    assert_int_equal(o.max_subscriptions, 44);
    assert_int_equal(o.max_room_events, 555);
    assert_int_equal(o.max_streams, 12);
    assert_int_equal(o.allow_anonymous, 1);
    assert_string_equal(o.web_root, "/srv/www");
    assert_int_equal(o.n_allowed_origins, 2);
    assert_string_equal(o.allowed_origins[0], "https://a.example:8443");
    assert_string_equal(o.allowed_origins[1], "https://b.example");
}

/* The other options boot copies (dlg_boot_apply), and the defaults of a
 * file that sets nothing: anonymous off, the documented limits. */
static void test_apply_options_and_defaults(void **state) {
    world *w = *state;
    load(w, "log_level: error\n"
            "allow_unknown_fields: true\n"
            "io_uring: false\n"
            "send_threads: 3\n"
            "tls_own_records: false\n");
    apply_ok(w);
    const dlg_server_opts *o = &w->srv.opts;
    assert_int_equal(o->allow_unknown_fields, 1);
    assert_int_equal(o->io_uring, 0);
    assert_int_equal(o->send_threads, 3);
    assert_int_equal(o->tls_own_records, 0);
    assert_int_equal(o->allow_anonymous, 0);
    assert_int_equal(o->max_frame, 1048576);
    assert_int_equal(o->max_connections, 10000);
    assert_int_equal(o->soft_pending_ms, 30000);
    assert_int_equal(o->n_listen, 1); /* the default listener */
    assert_string_equal(o->listen[0].address, "127.0.0.1:3000");
    assert_false(o->listen[0].plaintext);
    assert_null(w->srv.schema);
    assert_int_equal(w->srv.rooms->n, 0);
    assert_int_equal(w->srv.n_create_roles, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_rooms_with_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_rules_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_without_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listeners_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_options_and_defaults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
