/* test_oom.c: every out-of-memory path of a scenario, one at a time. The
 * allocation hook of lib/base/dlg_alloc.c fails the 1st, 2nd, ... Nth
 * allocation of the scenario, until a run completes without reaching the
 * chosen one. Each run must end in success or in DLG_ENOMEM (never a
 * crash, never a wrong answer), and free all it took: under ASan the
 * leak checker reads every path. Scenarios: loading a config file (every
 * section), loading a schema and
 * validating an event, setting up a JWT verifier and verifying a token,
 * and the core's rooms (add, join, subscribe, fan out, leave). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "config.h"
#include "conn.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_schema.h"
#include "fanout.h"
#include "jwt.h"
#include "room.h"

/* A scenario runs from nothing to nothing: what it made, it frees. It
 * returns 0, or the first error it met. */
typedef int (*scenario)(void *ud);

/* Runs s with the 1st, 2nd, ... allocation failing until a run reaches no
 * failure; each failed run must return DLG_ENOMEM (or, where the scenario
 * says so, *alt), and the clean run 0. Returns the number of allocations
 * walked. */
static unsigned walk(scenario s, void *ud, int alt) {
    unsigned n;
    for (n = 1; n < 100000; n++) {
        uint64_t before = dlg_alloc_failures();
        dlg_alloc_fail_nth(n);
        int rc = s(ud);
        dlg_alloc_fail_nth(0);
        if (dlg_alloc_failures() == before) {
            if (rc != 0)
                print_error("the run without a failure returned %d (%s)\n", rc, dlg_err_name(rc));
            assert_int_equal(rc, 0);
            return n - 1;
        }
        if (rc != DLG_ENOMEM && !(alt && rc == alt))
            print_error("allocation %u failed: the scenario returned %d (%s)\n", n, rc,
                        dlg_err_name(rc));
        assert_true(rc == DLG_ENOMEM || (alt && rc == alt));
    }
    fail_msg("more than 100000 allocations: the scenario does not end");
    return n;
}

static void hook_fails_only_the_nth(void **state) {
    (void)state;
    uint64_t before = dlg_alloc_failures();
    dlg_alloc_fail_nth(2);
    void *a = dlg_malloc(8), *b = dlg_malloc(8), *c = dlg_strdup("x");
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    assert_int_equal(dlg_alloc_failures(), before + 1);
    /* realloc that fails keeps the block. */
    dlg_alloc_fail_nth(1);
    void *d = dlg_realloc(a, 4096);
    assert_null(d);
    memset(a, 1, 8);
    free(a);
    free(c);
    dlg_alloc_fail_nth(0);
}

/* ---- config ------------------------------------------------------------- */

static char config_path[4096];

static const char config_text[] =
    "log_level: warn\n"
    "listen:\n"
    "  - {address: 127.0.0.1:0, tls: false}\n"
    "  - {address: \"[::1]:0\", tls: false}\n"
    "limits: {max_frame: 65536, max_subscriptions: 64}\n"
    "auth:\n"
    "  anonymous: true\n"
    "  jwt:\n"
    "    issuer: oom\n"
    "    audience: dialogue\n"
    "    keys: [{kid: k1, alg: HS256, secret_file: /nonexistent/secret}]\n"
    "room_admin: {create: [admin], delete: [admin]}\n"
    "rooms:\n"
    "  - id: dashboard\n"
    "    description: the live dashboard\n"
    "    events: [\"metrics:update\", \"alert:triggered\"]\n"
    "    join: [admin]\n"
    "    trigger: [publisher]\n"
    "    delivery: [{event: \"metrics:update\", policy: latest}]\n"
    "    history: [{event: \"alert:triggered\", limit: 100}]\n"
    "    rate_limit: {per_second: 5, burst: 10}\n"
    "  - {id: chat, events: [\"*\"], join: [\"*\"], trigger: [\"*\"]}\n"
    "auto_join: [{role: admin, rooms: [dashboard]}]\n"
    "metrics:\n"
    "  room: dashboard\n"
    "  alerts: [{metric: cpu, op: \">\", threshold: 90, severity: critical, message: hot}]\n"
    "http: {allowed_origins: [\"https://dash.example.com\"]}\n";

static int config_run(void *ud) {
    (void)ud;
    dlg_config *c = NULL;
    char err[512];
    int rc = dlg_config_load(config_path, &c, err, sizeof(err));
    if (rc == 0 && (c->n_rooms != 2 || c->n_listen != 2 ||
                    dlg_config_find_room(c, "dashboard") == NULL))
        rc = DLG_EINVAL; /* read wrong, not refused: a defect */
    dlg_config_free(c);
    return rc;
}

static void config_every_allocation(void **state) {
    (void)state;
    FILE *f = fopen(config_path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(config_text, 1, sizeof(config_text) - 1, f), sizeof(config_text) - 1);
    assert_int_equal(fclose(f), 0);
    dlg_config *c = NULL;
    char err[512] = "";
    int rc = dlg_config_load(config_path, &c, err, sizeof(err));
    if (rc != 0)
        print_error("the test's config does not load: %s\n", err);
    assert_int_equal(rc, 0);
    dlg_config_free(c);
    unsigned n = walk(config_run, NULL, 0);
    printf("config: %u allocations walked\n", n);
    assert_true(n > 50);
    unlink(config_path);
}

/* ---- schema ------------------------------------------------------------- */

static char schema_path[4096];

static int schema_run(void *ud) {
    (void)ud;
    dlg_schema *s = NULL;
    char err[256];
    int rc = dlg_schema_new(&s);
    if (rc != 0)
        return rc;
    rc = dlg_schema_load_file(s, schema_path, err, sizeof(err));
    if (rc == 0) {
        const dlg_schema_event *ev = dlg_schema_event_find(s, "metrics:update");
        if (ev == NULL) {
            dlg_schema_free(s);
            return DLG_ENOTFOUND;
        }
        /* cpu 42.5, memory, requests, errors, latency 1.0 (doubles 1..5) */
        static const uint8_t msg[] = {
            0x09, 0, 0, 0, 0, 0, 0x40, 0x45, 0x40, 0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
            0x19, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,    0x21, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
            0x29, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
        rc = dlg_schema_validate(ev, msg, sizeof(msg), 0, err, sizeof(err));
    }
    dlg_schema_free(s);
    return rc;
}

static void schema_every_allocation(void **state) {
    (void)state;
    unsigned n = walk(schema_run, NULL, 0);
    printf("schema: %u allocations walked\n", n);
    assert_true(n > 10);
}

/* ---- JWT ---------------------------------------------------------------- */

/* HS256, kid k1, secret SECRET: sub alice, roles admin and viewer, iss
 * oom-test, aud dialogue, exp 2027-01-15 (checked at NOW). */
#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW 1750000000
static const char token[] =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
    "eyJzdWIiOiJhbGljZSIsInJvbGUiOlsiYWRtaW4iLCJ2aWV3ZXIiXSwiaXNzIjoib29tLXRlc3QiLCJhdWQiOiJk"
    "aWFsb2d1ZSIsImV4cCI6MTgwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwfQ."
    "m0wUO6zMK7DR8wlgBDqhSsMtM1hgn9YFhGyOYGMINJk";

static int jwt_run(void *ud) {
    (void)ud;
    dlg_jwt_verifier *v = NULL;
    dlg_jwt_claims cl;
    char err[256];
    int rc = dlg_jwt_verifier_new(&v);
    if (rc == 0)
        rc = dlg_jwt_add_hmac_key(v, "k1", (const uint8_t *)SECRET, strlen(SECRET));
    if (rc == 0)
        rc = dlg_jwt_set_issuer(v, "oom-test");
    if (rc == 0)
        rc = dlg_jwt_set_audience(v, "dialogue");
    if (rc == 0)
        rc = dlg_jwt_set_roles_claim(v, "role");
    if (rc == 0)
        rc = dlg_jwt_verify(v, token, strlen(token), NOW, &cl, err, sizeof(err));
    if (rc == 0) {
        /* Whatever failed before, a token that passes is read whole. */
        if (strcmp(cl.sub, "alice") != 0 || cl.n_roles != 2 || strcmp(cl.roles[0], "admin") ||
            strcmp(cl.roles[1], "viewer"))
            rc = DLG_EINVAL;
        dlg_jwt_claims_free(&cl);
    }
    dlg_jwt_verifier_free(v);
    return rc;
}

static void jwt_every_allocation(void **state) {
    (void)state;
    /* A verify that cannot allocate refuses the token (DLG_EAUTH): deny,
     * never admit. */
    unsigned n = walk(jwt_run, NULL, DLG_EAUTH);
    printf("jwt: %u allocations walked\n", n);
    assert_true(n > 5);
}

/* ---- rooms and fan-out -------------------------------------------------- */

#define N_CONNS 4

static void drop_conn(dlg_conn *c) {
    while (c->n_members)
        dlg_room_leave(c->members[0]->room, c);
    for (size_t k = 0; k < c->q_len; k++)
        dlg_buf_unref(c->q[(c->q_head + k) % c->q_cap].buf);
    free(c->q);
    free(c->latest);
    free(c->members);
    free(c);
}

static int rooms_run(void *ud) {
    uv_loop_t *loop = ud;
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.loop = loop;
    srv.log.level = DLG_LOG_ERROR + 100; /* quiet: every path logs */
    srv.opts.max_pending_bytes = 1 << 20;
    uv_idle_init(loop, &srv.kick); /* a queued frame wakes the flush */
    dlg_conn *c[N_CONNS] = {0};
    char err[256];
    int rc = 0;
    if ((srv.rooms = dlg_rooms_new()) == NULL) {
        rc = DLG_ENOMEM;
        goto out;
    }
    static const char *const events[] = {"*"};
    dlg_room_spec spec = {.id = "r", .events = events, .n_events = 1};
    dlg_room *room = NULL;
    if ((rc = dlg_rooms_add(srv.rooms, &spec, 0, &room, err, sizeof(err))) != 0)
        goto out;
    for (int i = 0; i < N_CONNS; i++) {
        if ((c[i] = dlg_calloc(1, sizeof(dlg_conn))) == NULL) {
            rc = DLG_ENOMEM;
            goto out;
        }
        c[i]->srv = &srv;
        c[i]->state = DLG_CONN_READY;
        c[i]->id = (uint64_t)i + 1;
        snprintf(c[i]->client_id, sizeof(c[i]->client_id), "c%d", i);
        dlg_member *m = NULL;
        if ((rc = dlg_room_join(room, c[i], &m)) != 0)
            goto out;
        static char *const subs[] = {"a", "b"};
        const char *bad = NULL;
        int full = 0;
        if ((rc = dlg_room_subscribe(m, i % 2 ? subs : NULL, i % 2 ? 2 : 0, i % 2 == 0, 0, 0,
                                     &bad, &full)) != 0)
            goto out;
    }
    for (int k = 0; k < 3 && rc == 0; k++) {
        Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
        e.room = room->id;
        e.event = k == 2 ? "zz" : "a";
        e.data.data = (uint8_t *)"payload";
        e.data.len = 7;
        e.from = "tester";
        dlg_publish_result res;
        rc = dlg_fanout_emit(&srv, room, &e, 0, 0, &res, err, sizeof(err));
    }
    /* A queue that could not grow dooms its connection ("out of memory
     * queueing output"), as a slow consumer is cut: the event is accepted
     * and the others have it. That is this scenario's DLG_ENOMEM. */
    if (rc == 0 && srv.doomed != NULL)
        rc = DLG_ENOMEM;
out:
    for (int i = 0; i < N_CONNS; i++)
        if (c[i])
            drop_conn(c[i]);
    dlg_rooms_free(srv.rooms);
    uv_close((uv_handle_t *)&srv.kick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return rc;
}

static void rooms_every_allocation(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    unsigned n = walk(rooms_run, &loop, 0);
    printf("rooms: %u allocations walked\n", n);
    assert_true(n > 10);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(int argc, char **argv) {
    (void)argc;
    /* The schema the build made, beside this binary: BUILD/tests/test_oom
     * -> BUILD/share/dialogue/dashboard.pb. */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        fprintf(stderr, "%s: cannot read /proc/self/exe\n", argv[0]);
        return 1;
    }
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    if (strlen(self) + 40 > sizeof(schema_path)) {
        fprintf(stderr, "%s: path too long: %s\n", argv[0], self);
        return 1;
    }
    strcpy(schema_path, self);
    strcat(schema_path, "/../share/dialogue/dashboard.pb");
    snprintf(config_path, sizeof(config_path), "/tmp/dlg-oom-%d.yaml", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hook_fails_only_the_nth),
        cmocka_unit_test(config_every_allocation),
        cmocka_unit_test(schema_every_allocation),
        cmocka_unit_test(jwt_every_allocation),
        cmocka_unit_test(rooms_every_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
