/* fuzz_config.c: libFuzzer harness for the YAML config loader
 * (daemon/config/). The loader takes a path, so each input is written over
 * one temp file made at start-up, then loaded; a config that loads must
 * satisfy the invariants config.h promises, a refusal must say where. The
 * same input goes through dlg_config_check, which walks on past errors
 * (half-read entries): it must agree with the load on the verdict and the
 * first message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dlg_err.h"
#include "fuzz_util.h"

typedef struct harness {
    int fd;
    char path[256];
} harness;

/* libFuzzer's entry points carry no context pointer, so the temp file made
 * once in LLVMFuzzerInitialize is found through here. */
static harness *g_h;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    harness *h = calloc(1, sizeof(*h));
    FUZZ_CHECK(h != NULL, "out of memory");
    h->fd = fuzz_tmpfile("config", h->path, sizeof(h->path));
    g_h = h;
    return 0;
}

/* config.h: ids and event names are 1..255 bytes of [A-Za-z0-9_.:-]. */
static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") == n;
}

static void check_strv(const dlg_config_strv *v, const char *what) {
    FUZZ_CHECK((v->n == 0) == (v->v == NULL), "%s: v %p with n %zu", what, (void *)v->v, v->n);
    for (size_t i = 0; i < v->n; i++)
        FUZZ_CHECK(v->v[i] != NULL, "%s[%zu] is NULL", what, i);
}

#define CHECK_ARRAY(p, n, what)                                                   \
    FUZZ_CHECK(((n) == 0) == ((p) == NULL), "%s: v %p with n %zu", what, (void *)(p), \
               (size_t)(n))

static void check_loaded(const dlg_config *c) {
    FUZZ_CHECK(c->path && strcmp(c->path, g_h->path) == 0, "path %s", c->path ? c->path : "NULL");
    FUZZ_CHECK(c->log_level >= DLG_CFG_LOG_ERROR && c->log_level <= DLG_CFG_LOG_DEBUG,
               "log_level %d", c->log_level);
    CHECK_ARRAY(c->listen, c->n_listen, "listen");
    for (size_t i = 0; i < c->n_listen; i++)
        FUZZ_CHECK(c->listen[i].address && c->listen[i].host, "listen[%zu] without address", i);
    check_strv(&c->schemas, "schemas");
    CHECK_ARRAY(c->rooms, c->n_rooms, "rooms");
    for (size_t i = 0; i < c->n_rooms; i++) {
        const dlg_config_room *r = &c->rooms[i];
        FUZZ_CHECK(r->id && name_ok(r->id), "rooms[%zu].id is not a valid name", i);
        FUZZ_CHECK(dlg_config_find_room(c, r->id) == r, "rooms[%zu] (%s) not found by id", i,
                   r->id);
        check_strv(&r->events, "rooms[].events");
        for (size_t k = 0; k < r->events.n; k++)
            FUZZ_CHECK(strcmp(r->events.v[k], "*") == 0 || name_ok(r->events.v[k]),
                       "rooms[%zu].events[%zu] is not a valid name", i, k);
        FUZZ_CHECK(!r->any_event || (r->events.n == 1 && strcmp(r->events.v[0], "*") == 0),
                   "rooms[%zu]: any_event with %zu events", i, r->events.n);
        check_strv(&r->default_subscriptions, "rooms[].default_subscriptions");
        check_strv(&r->join, "rooms[].join");
        check_strv(&r->trigger, "rooms[].trigger");
        CHECK_ARRAY(r->trigger_events, r->n_trigger_events, "rooms[].trigger_events");
        CHECK_ARRAY(r->delivery, r->n_delivery, "rooms[].delivery");
        CHECK_ARRAY(r->history, r->n_history, "rooms[].history");
        FUZZ_CHECK(r->rate_per_second == 0 || r->rate_burst != 0,
                   "rooms[%zu]: rate %u with burst 0", i, r->rate_per_second);
    }
    CHECK_ARRAY(c->auto_join, c->n_auto_join, "auto_join");
    CHECK_ARRAY(c->auth.jwt.keys, c->auth.jwt.n_keys, "auth.jwt.keys");
    for (size_t i = 0; i < c->auth.jwt.n_keys; i++) {
        const dlg_config_jwt_key *k = &c->auth.jwt.keys[i];
        FUZZ_CHECK(k->alg == DLG_CFG_ALG_HS256 ? k->secret_file != NULL
                                               : k->public_key_file != NULL,
                   "auth.jwt.keys[%zu] without its key file", i);
    }
    if (c->metrics.enabled)
        FUZZ_CHECK(c->metrics.room && dlg_config_find_room(c, c->metrics.room),
                   "metrics.room %s is not a room", c->metrics.room ? c->metrics.room : "NULL");
    FUZZ_CHECK(c->store != DLG_CFG_STORE_SQLITE || c->store_path, "sqlite store without a path");
}

/* Every error dlg_config_check reports names the file; the first is the
 * one dlg_config_load gave (err, rc). */
static void check_all(int rc, const char *err) {
    dlg_config *c = NULL;
    dlg_config_errors e;
    int crc = dlg_config_check(g_h->path, &c, &e);
    FUZZ_CHECK(crc == rc, "check returned %d, load %d", crc, rc);
    FUZZ_CHECK((rc == 0) == (e.total == 0), "rc %d with %zu error(s)", rc, e.total);
    FUZZ_CHECK(e.n <= e.total && (e.total == 0 || e.n >= 1), "%zu of %zu kept", e.n, e.total);
    if (e.n) {
        /* load's err is cut at 512 bytes; the kept text is whole. */
        FUZZ_CHECK(strncmp(e.v[0].text, err, strlen(err)) == 0,
                   "first error \"%s\" is not load's \"%s\"", e.v[0].text, err);
    }
    size_t n = strlen(g_h->path);
    for (size_t i = 0; i < e.n; i++)
        FUZZ_CHECK(strncmp(e.v[i].text, g_h->path, n) == 0 && e.v[i].text[n] == ':' &&
                       !strchr(e.v[i].text, '\n'),
                   "error %zu: \"%s\"", i, e.v[i].text);
    if (rc == 0)
        check_loaded(c);
    dlg_config_free(c);
    dlg_config_errors_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_tmpfile_put(g_h->fd, data, size);
    dlg_config *c = NULL;
    char err[512] = "";
    int rc = dlg_config_load(g_h->path, &c, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == DLG_ECONFIG || rc == DLG_EIO, "load returned %d (%s)", rc, err);
    check_all(rc, err);
    if (rc != 0) {
        FUZZ_CHECK(c == NULL, "failed load set *out");
        /* One line naming the file: "<path>:<line>:..." */
        size_t n = strlen(g_h->path);
        FUZZ_CHECK(strncmp(err, g_h->path, n) == 0 && err[n] == ':',
                   "message does not start with the file: \"%s\"", err);
        FUZZ_CHECK(strchr(err, '\n') == NULL, "message spans lines: \"%s\"", err);
        return 0;
    }
    check_loaded(c);
    dlg_config_free(c);
    return 0;
}
