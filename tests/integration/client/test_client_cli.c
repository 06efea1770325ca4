/* test_client_cli.c: dialoguectl against a real dialogued: ping's line,
 * rooms as table and JSON, schema, sub printing JSON lines for triggers,
 * trigger's exit statuses (Ack, server refusal with "STATUS: message", bad
 * JSON refused before connecting), history (table, JSON lines as sub's with
 * the room's epoch, --limit, --since, the note on evicted events, refusals),
 * sub --timeout, --help everywhere, the environment fallbacks, --server
 * with a list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common.h"

#ifndef DLGT_BUILD
#define DLGT_BUILD "build"
#endif

/* The shared config plus a room that keeps a short history. */
#define CLI_CONFIG                                                        \
    DLGT_CONFIG                                                           \
    "  - id: archive\n"                                                   \
    "    events: [metrics:update, alert:triggered]\n"                     \
    "    default_subscriptions: [metrics:update, alert:triggered]\n"      \
    "    join: [\"*\"]\n"                                                 \
    "    trigger: [\"*\"]\n"                                              \
    "    history:\n"                                                      \
    "      - {event: metrics:update, limit: 3}\n"                         \
    "      - {event: alert:triggered, limit: 100}\n"

typedef struct fixture {
    dlgt_daemon d;
    char ctl[256];
    char env[1024];      /* DIALOGUE_SERVER=... DIALOGUE_CA=... */
    char out[400], err[400];
} fixture;

static int group_setup(void **state) {
    static fixture f;
    snprintf(f.ctl, sizeof(f.ctl), "%s/bin/dialoguectl", DLGT_BUILD);
    if (dlgt_daemon_path() == NULL || access(f.ctl, X_OK) != 0) {
        fprintf(stderr, "no dialogued or dialoguectl binary: skipping\n");
        *state = NULL;
        return 0;
    }
    dlgt_timeout(60, "group setup");
    if (dlgt_setup(&f.d, CLI_CONFIG) != 0 || dlgt_start(&f.d, 0) != 0)
        return -1;
    snprintf(f.env, sizeof(f.env), "DIALOGUE_SERVER=127.0.0.1:%u DIALOGUE_CA='%s/ca.crt'",
             f.d.port, f.d.certs);
    snprintf(f.out, sizeof(f.out), "%s/out", f.d.dir);
    snprintf(f.err, sizeof(f.err), "%s/err", f.d.dir);
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

static char *slurp(const char *path) {
    static char buf[65536];
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    buf[0] = 0;
    if (fp != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
    }
    buf[n] = 0;
    return buf;
}

/* Runs dialoguectl with args (shell words) and the env; stdout and stderr
 * go to f->out / f->err. Each run is bounded by timeout(1). */
static int run(fixture *f, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s timeout 30 %s %s >'%s' 2>'%s' </dev/null", f->env, f->ctl,
             args, f->out, f->err);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void ping_line(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    assert_int_equal(run(f, "ping"), 0);
    char want[64];
    snprintf(want, sizeof(want), "pong from 127.0.0.1:%u in ", f->d.port);
    const char *o = slurp(f->out);
    assert_non_null(strstr(o, want));
    assert_non_null(strstr(o, " ms\n"));
    /* --server beats the environment. */
    assert_int_equal(run(f, "--server 127.0.0.1:1 ping"), 1);
    assert_non_null(strstr(slurp(f->err), "connection refused"));
}

static void rooms_and_schema(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    assert_int_equal(run(f, "rooms"), 0);
    const char *o = slurp(f->out);
    assert_non_null(strstr(o, "ID "));
    assert_non_null(strstr(o, "lobby"));
    assert_non_null(strstr(o, "metrics:update,alert:triggered"));
    assert_int_equal(run(f, "rooms --json"), 0);
    json_error_t je;
    json_t *j = json_loads(slurp(f->out), 0, &je);
    assert_non_null(j);
    assert_true(json_is_array(j));
    int found = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *r = json_array_get(j, i);
        if (strcmp(json_string_value(json_object_get(r, "id")), "lobby") == 0) {
            found = 1;
            assert_string_equal(json_string_value(json_object_get(r, "name")), "Lobby");
            assert_int_equal(json_array_size(json_object_get(r, "events")), 2);
        }
    }
    json_decref(j);
    assert_true(found);
    assert_int_equal(run(f, "schema"), 0);
    assert_non_null(strstr(slurp(f->out), "metrics:update   dialogue.dashboard.MetricsUpdate"));
}

static void sub_and_trigger(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    char subout[450], cmd[2048];
    snprintf(subout, sizeof(subout), "%s/sub.out", f->d.dir);
    /* sub in the background; it exits after 2 events (or 20 s). */
    snprintf(cmd, sizeof(cmd), "%s timeout 30 %s sub lobby alert:triggered --count 2 --timeout 20 "
             ">'%s' 2>&1 </dev/null", f->env, f->ctl, subout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* Triggers until the subscriber has seen two (it may not have joined
     * when the first ones go out), bounded. */
    int status = -1, sent = 0;
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        char args[256];
        snprintf(args, sizeof(args),
                 "trigger lobby alert:triggered '{\"alertId\":\"a%d\",\"severity\":\"high\","
                 "\"message\":\"disk\",\"timestamp\":\"1700000000000\"}'", i);
        int rc = run(f, args);
        if (rc != 0)
            fail_msg("trigger exited %d: %s", rc, slurp(f->err));
        assert_non_null(strstr(slurp(f->out), "ok seq="));
        sent++;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        status = -1;
    }
    if (status == -1)
        waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    const char *o = slurp(subout);
    if (WEXITSTATUS(status) != 0)
        fail_msg("sub exited %d: %s", WEXITSTATUS(status), o);
    /* Two JSON lines with the documented keys, payload decoded. */
    char copy[65536];
    snprintf(copy, sizeof(copy), "%s", o);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        if (j == NULL)
            fail_msg("not a JSON line: %s", line);
        assert_string_equal(json_string_value(json_object_get(j, "room")), "lobby");
        assert_string_equal(json_string_value(json_object_get(j, "event")), "alert:triggered");
        assert_true(json_is_string(json_object_get(j, "from")));
        assert_true(json_is_integer(json_object_get(j, "ts")));
        assert_true(json_is_integer(json_object_get(j, "seq")));
        json_t *data = json_object_get(j, "data");
        assert_true(json_is_object(data));
        assert_string_equal(json_string_value(json_object_get(data, "severity")), "high");
        assert_string_equal(json_string_value(json_object_get(data, "message")), "disk");
        json_decref(j);
        lines++;
    }
    assert_int_equal(lines, 2);
    assert_true(sent >= 2);
}

static void trigger_failures(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    /* Refused by the server's validation: its status and message. */
    assert_int_equal(run(f, "trigger lobby metrics:update "
                            "'{\"cpu\":150,\"memory\":1,\"requests\":1,\"errors\":0,\"latency\":1}'"),
                     1);
    assert_non_null(strstr(slurp(f->err), "INVALID_ARGUMENT: metrics:update.cpu"));
    assert_int_equal(run(f, "trigger closed metrics:update '{\"cpu\":1}'"), 1);
    assert_non_null(strstr(slurp(f->err), "PERMISSION_DENIED: "));
    /* Bad JSON: refused before any connection (the server is unreachable). */
    assert_int_equal(run(f, "--server 127.0.0.1:1 trigger lobby metrics:update '{\"cpu\":'"), 2);
    assert_non_null(strstr(slurp(f->err), "JSON payload, line 1"));
    assert_null(strstr(slurp(f->err), "refused"));
    assert_int_equal(run(f, "--server 127.0.0.1:1 trigger lobby metrics:update '[1]'"), 2);
    /* A payload the schema rejects: named field, exit 2. */
    assert_int_equal(run(f, "trigger lobby metrics:update '{\"cpu\":\"x\"}'"), 2);
    assert_non_null(strstr(slurp(f->err), "cpu"));
    /* Payload from stdin. */
    char args[512];
    snprintf(args, sizeof(args),
             "sh -c 'echo {\\\"cpu\\\":3,\\\"memory\\\":1,\\\"requests\\\":1,\\\"errors\\\":0,"
             "\\\"latency\\\":1} | %s trigger lobby metrics:update -'", f->ctl);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s timeout 30 %s >'%s' 2>'%s'", f->env, args, f->out, f->err);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("stdin trigger: %s", slurp(f->err));
    assert_non_null(strstr(slurp(f->out), "ok seq="));
}

/* Checks one history --json line: sub's keys in sub's order, for seq. */
static void check_line(const char *line, const char *event, long long seq) {
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "{\"room\":\"archive\",\"event\":\"%s\",\"from\":", event);
    if (strncmp(line, prefix, strlen(prefix)) != 0)
        fail_msg("line \"%s\" does not start with %s", line, prefix);
    json_error_t je;
    json_t *j = json_loads(line, 0, &je);
    if (j == NULL)
        fail_msg("not a JSON line: %s", line);
    const char *keys[] = {"room", "event", "from", "from_kind", "ts", "seq", "epoch", "data"};
    void *it = json_object_iter(j);
    for (size_t i = 0; i < 8; i++, it = json_object_iter_next(j, it)) {
        assert_non_null(it);
        assert_string_equal(json_object_iter_key(it), keys[i]);
    }
    assert_null(it);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), seq);
    assert_true(json_integer_value(json_object_get(j, "epoch")) > 0);
    assert_true(json_is_object(json_object_get(j, "data")));
    if (strcmp(event, "metrics:update") == 0)
        assert_true(json_real_value(json_object_get(json_object_get(j, "data"), "cpu")) ==
                    (double)seq);
    json_decref(j);
}

/* The lines of f->out, split in place into v (at most max). */
static size_t lines_of(fixture *f, char **v, size_t max) {
    static char copy[65536];
    size_t n = 0;
    snprintf(copy, sizeof(copy), "%s", slurp(f->out));
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line != NULL && n < max;
         line = strtok_r(NULL, "\n", &save))
        v[n++] = line;
    return n;
}

static void history_command(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    char args[512], *l[16];
    /* seq 1..5: metrics with cpu = seq (the room keeps 3); seq 6: an alert. */
    for (int i = 1; i <= 5; i++) {
        snprintf(args, sizeof(args),
                 "trigger archive metrics:update '{\"cpu\":%d,\"memory\":1,\"requests\":1,"
                 "\"errors\":0,\"latency\":1}'", i);
        if (run(f, args) != 0)
            fail_msg("trigger: %s", slurp(f->err));
    }
    if (run(f, "trigger archive alert:triggered '{\"alertId\":\"h1\",\"severity\":\"low\","
               "\"message\":\"m\",\"timestamp\":\"1\"}'") != 0)
        fail_msg("trigger: %s", slurp(f->err));

    /* Everything kept, oldest first; seq 1 and 2 are gone and it says so. */
    if (run(f, "history archive --json") != 0)
        fail_msg("history: %s", slurp(f->err));
    assert_int_equal(lines_of(f, l, 16), 4);
    check_line(l[0], "metrics:update", 3);
    check_line(l[1], "metrics:update", 4);
    check_line(l[2], "metrics:update", 5);
    check_line(l[3], "alert:triggered", 6);
    assert_non_null(strstr(slurp(f->err), "history of room archive is incomplete"));

    /* One type, after a seq: nothing evicted past 3, so no note. */
    assert_int_equal(run(f, "history archive metrics:update --since 3 --json"), 0);
    assert_int_equal(lines_of(f, l, 16), 2);
    check_line(l[0], "metrics:update", 4);
    check_line(l[1], "metrics:update", 5);
    assert_string_equal(slurp(f->err), "");

    /* The table: the newest 2, oldest first. */
    assert_int_equal(run(f, "history archive --limit 2"), 0);
    assert_int_equal(lines_of(f, l, 16), 3);
    assert_non_null(strstr(l[0], "SEQ"));
    assert_non_null(strstr(l[0], "EVENT"));
    assert_non_null(strstr(l[1], "5  "));
    assert_non_null(strstr(l[1], "metrics:update"));
    assert_non_null(strstr(l[1], "\"cpu\":5.0"));
    assert_non_null(strstr(l[2], "6  "));
    assert_non_null(strstr(l[2], "alert:triggered"));
    assert_non_null(strstr(l[2], "\"severity\":\"low\""));
    /* The first after --since. */
    assert_int_equal(run(f, "history archive --since 3 --limit 1 --json"), 0);
    assert_int_equal(lines_of(f, l, 16), 1);
    check_line(l[0], "metrics:update", 4);

    /* A room without history: just the header. Refusals: STATUS: message. */
    assert_int_equal(run(f, "history lobby"), 0);
    assert_int_equal(lines_of(f, l, 16), 1);
    assert_int_equal(run(f, "history closed"), 1);
    assert_non_null(strstr(slurp(f->err), "PERMISSION_DENIED: "));
    assert_int_equal(run(f, "history nosuchroom"), 1);
    assert_non_null(strstr(slurp(f->err), "NOT_FOUND: "));
    assert_int_equal(run(f, "history"), 2);
    assert_int_equal(run(f, "history archive --limit x"), 2);
    assert_non_null(strstr(slurp(f->err), "--limit: \"x\""));
    assert_int_equal(run(f, "history archive a b"), 2);
}

/* --server with a list: tried in turn; a bad entry is named. Port 1 (and
 * 2) of 127.0.0.1 refuse connections. */
static void server_list(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    char args[256], want[64];
    snprintf(args, sizeof(args), "--server '127.0.0.1:1, 127.0.0.1:%u' ping", f->d.port);
    if (run(f, args) != 0)
        fail_msg("%s: %s", args, slurp(f->err));
    snprintf(want, sizeof(want), "pong from 127.0.0.1:%u in ", f->d.port);
    assert_non_null(strstr(slurp(f->out), want));
    /* Through the environment too (the later assignment wins). */
    size_t env_len = strlen(f->env);
    snprintf(f->env + env_len, sizeof(f->env) - env_len,
             " DIALOGUE_SERVER=127.0.0.1:1,127.0.0.1:%u", f->d.port);
    int rc = run(f, "rooms");
    f->env[env_len] = 0;
    if (rc != 0)
        fail_msg("rooms with DIALOGUE_SERVER as a list: %s", slurp(f->err));
    assert_non_null(strstr(slurp(f->out), "lobby"));
    /* Every entry down: one failure naming the last. */
    assert_int_equal(run(f, "--server 127.0.0.1:1,127.0.0.1:2 ping"), 1);
    assert_non_null(strstr(slurp(f->err), "cannot connect to any of the 2 servers; last: "
                                          "connect to 127.0.0.1:2: connection refused"));
    assert_int_equal(run(f, "--server 127.0.0.1:1,foo ping"), 2);
    assert_non_null(strstr(slurp(f->err), "--server: entry 2 \"foo\" is not HOST:PORT"));
    assert_int_equal(run(f, "--server 127.0.0.1:1,,127.0.0.1:2 ping"), 2);
    assert_non_null(strstr(slurp(f->err), "entry 2 \"\""));
}

static void sub_timeout_and_help(void **state) {
    fixture *f = *state;
    if (f == NULL)
        skip();
    dlgt_timeout(60, __func__);
    assert_int_equal(run(f, "sub lobby alert:triggered --timeout 1"), 3);
    assert_non_null(strstr(slurp(f->err), "no event within 1 s"));
    const char *cmds[] = {"--help", "ping --help", "rooms --help", "schema --help",
                          "sub --help", "trigger --help", "token --help", "history --help"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (run(f, cmds[i]) != 0)
            fail_msg("%s failed: %s", cmds[i], slurp(f->err));
        assert_non_null(strstr(slurp(f->out), "usage: dialoguectl"));
    }
    assert_int_equal(run(f, "bogus"), 2);
    assert_int_equal(run(f, "--server nonsense ping"), 2);
    assert_int_equal(run(f, "sub"), 2);
    assert_int_equal(run(f, "trigger lobby"), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ping_line),
        cmocka_unit_test(rooms_and_schema),
        cmocka_unit_test(sub_and_trigger),
        cmocka_unit_test(trigger_failures),
        cmocka_unit_test(history_command),
        cmocka_unit_test(sub_timeout_and_help),
        cmocka_unit_test(server_list),
    };
    return cmocka_run_group_tests_name("client_cli", tests, group_setup, group_teardown);
}
