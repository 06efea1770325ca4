/* config.c: the config module's entry points (see config.h): the defaults,
 * the walk of the file's root that hands each section to its loader
 * (load_*.c, on the reader of yamlread.c), and freeing. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg_config_free(dlg_config *c) {
    if (!c)
        return;
    free(c->path);
    free(c->log_file);
    dlg__cfg_listeners_free(c->listen, c->n_listen);
    dlg__cfg_strv_free(&c->schemas);
    dlg__cfg_auth_free(&c->auth);
    dlg__cfg_rooms_free(c);
    dlg__cfg_metrics_free(&c->metrics);
    free(c->http.web_root);
    dlg__cfg_strv_free(&c->http.allowed_origins);
    free(c->store_path);
    dlg__cfg_cluster_free(&c->cluster);
    dlg__cfg_admin_free(&c->admin);
    for (size_t i = 0; i < c->n_pos; i++)
        free(c->pos[i].path);
    free(c->pos);
    free(c);
}

const dlg_config_room *dlg_config_find_room(const dlg_config *c, const char *id) {
    if (!c || !id)
        return NULL;
    for (size_t i = 0; i < c->n_rooms; i++)
        if (c->rooms[i].id && strcmp(c->rooms[i].id, id) == 0)
            return &c->rooms[i];
    return NULL;
}

/* ---- defaults ----------------------------------------------------------- */

/* Fills a zeroed c with every default; on ENOMEM c stays freeable. */
static int fill_defaults(dlg_config *c) {
    c->log_level = DLG_CFG_LOG_INFO;
    c->listen = dlg_calloc(1, sizeof(*c->listen));
    if (!c->listen)
        return DLG_ENOMEM;
    c->n_listen = 1;
    if (dlg__cfg_listener_default(&c->listen[0]) < 0)
        return DLG_ENOMEM;
    dlg__cfg_limits_default(&c->limits);
    c->auth.jwt.leeway_seconds = 30;
    c->auth.jwt.cache_size = 4096;
    c->auth.jwt.roles_claim = dlg_strdup("role");
    if (!c->auth.jwt.roles_claim)
        return DLG_ENOMEM;
    c->auth.client_cert.user_from = DLG_CFG_USER_FROM_CN;
    c->metrics.interval_ms = 1000;
    c->store = DLG_CFG_STORE_MEMORY;
    c->tls_own_records = true;
    c->io_uring = true;
    return 0;
}

int dlg_config_new_default(dlg_config **out) {
    if (!out)
        return DLG_EINVAL;
    dlg_config *c = dlg_calloc(1, sizeof(*c));
    if (!c)
        return DLG_ENOMEM;
    if (fill_defaults(c) < 0) {
        dlg_config_free(c);
        return DLG_ENOMEM;
    }
    *out = c;
    return 0;
}

/* ---- the root ----------------------------------------------------------- */

/* http: the page's folder and the origins that may open a WebSocket. */
static int load_http(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"web_root", "allowed_origins", NULL};
    dlg_config_http *h = &dlg__cfg(y)->http;
    dlg_ynode *v;
    size_t mark = y->n_errors;
    int rc = dlg__yaml_want_map(y, m, "http", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "web_root")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "http.web_root", &h->web_root));
    if ((v = dlg__yaml_get(y, m, "allowed_origins")))
        DLG_CFG_TRY(dlg__cfg_strv(y, v, "http.allowed_origins", DLG_CFG_K_ORIGIN,
                                  &h->allowed_origins));
    return dlg__yaml_since(y, mark);
}

/* The root mapping: the top-level scalars here, each section to its file,
 * in an order where what is referred to is loaded before what refers.
 * Every section is read whatever happened to the ones before it. */
static int load_root(dlg_yaml *y, const dlg_ynode *root) {
    static const char *const keys[] = {"log_level", "listen",  "schemas",    "allow_unknown_fields",
                                       "limits",    "auth",    "room_admin", "rooms",
                                       "auto_join", "metrics", "store",      "store_path",
                                       "store_sync", "cluster", "io_uring", "send_threads",
                                       "tls_own_records", "log_format", "log_file", "http", "admin",
                                       NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    static const char *const formats[] = {"text", "json", NULL};
    dlg_config *c = dlg__cfg(y);
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, root, "", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "log_level")))
        DLG_CFG_TRY(dlg__yaml_enum(y, v, "log_level", levels, &c->log_level));
    if ((v = dlg__yaml_get(y, root, "log_format")))
        DLG_CFG_TRY(dlg__yaml_enum(y, v, "log_format", formats, &c->log_format));
    if ((v = dlg__yaml_get(y, root, "log_file")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "log_file", &c->log_file));
    if ((v = dlg__yaml_get(y, root, "listen")))
        DLG_CFG_TRY(dlg__cfg_load_listen(y, v));
    if ((v = dlg__yaml_get(y, root, "schemas")))
        DLG_CFG_TRY(dlg__cfg_strv(y, v, "schemas", DLG_CFG_K_PATH, &c->schemas));
    if ((v = dlg__yaml_get(y, root, "allow_unknown_fields")))
        DLG_CFG_TRY(dlg__yaml_bool(y, v, "allow_unknown_fields", &c->allow_unknown_fields));
    if ((v = dlg__yaml_get(y, root, "limits")))
        DLG_CFG_TRY(dlg__cfg_load_limits(y, v));
    if ((v = dlg__yaml_get(y, root, "auth")))
        DLG_CFG_TRY(dlg__cfg_load_auth(y, v));
    if ((v = dlg__yaml_get(y, root, "room_admin")))
        DLG_CFG_TRY(dlg__cfg_load_room_admin(y, v));
    /* rooms first whatever the key order: auto_join and metrics refer to them. */
    if ((v = dlg__yaml_get(y, root, "rooms")))
        DLG_CFG_TRY(dlg__cfg_load_rooms(y, v));
    if ((v = dlg__yaml_get(y, root, "auto_join")))
        DLG_CFG_TRY(dlg__cfg_load_auto_join(y, v));
    if ((v = dlg__yaml_get(y, root, "metrics")))
        DLG_CFG_TRY(dlg__cfg_load_metrics(y, v));
    DLG_CFG_TRY(dlg__cfg_load_store(y, root));
    if ((v = dlg__yaml_get(y, root, "cluster")))
        DLG_CFG_TRY(dlg__cfg_load_cluster(y, v));
    if ((v = dlg__yaml_get(y, root, "io_uring")))
        DLG_CFG_TRY(dlg__yaml_bool(y, v, "io_uring", &c->io_uring));
    if ((v = dlg__yaml_get(y, root, "tls_own_records")))
        DLG_CFG_TRY(dlg__yaml_bool(y, v, "tls_own_records", &c->tls_own_records));
    if ((v = dlg__yaml_get(y, root, "send_threads")))
        DLG_CFG_TRY(dlg__yaml_u32(y, v, "send_threads", 0, DLG_CFG_SEND_THREADS_MAX,
                                  &c->send_threads));
    if ((v = dlg__yaml_get(y, root, "http")))
        DLG_CFG_TRY(load_http(y, v));
    if ((v = dlg__yaml_get(y, root, "admin")))
        DLG_CFG_TRY(dlg__cfg_load_admin(y, v));
    return dlg__cfg_check_store(y, root);
}

/* The walk shared by dlg_config_load and dlg_config_check: *cp gets the
 * configuration as far as it was read (NULL only when out of memory), y
 * the errors. */
static int load(dlg_yaml *y, const char *path, char *err, size_t errlen, dlg_config **cp) {
    dlg_ynode *root = NULL;
    dlg_config *c = dlg_calloc(1, sizeof(*c));
    *cp = c;
    if (!c || fill_defaults(c) < 0 || !(c->path = dlg_strdup(path)))
        return DLG_ENOMEM;
    y->ud = c;
    int rc = dlg__yaml_open(y, path, err, errlen, &root);
    if (rc < 0)
        return rc;
    if (root && (rc = load_root(y, root)) == DLG_ENOMEM)
        return rc;
    return y->n_errors ? DLG_ECONFIG : 0;
}

int dlg_config_load(const char *path, dlg_config **out, char *err, size_t errlen) {
    dlg_yaml y = {0};
    dlg_config *c = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!path || !out) {
        if (err && errlen)
            snprintf(err, errlen, "dlg_config_load: %s is NULL", path ? "out" : "path");
        return DLG_EINVAL;
    }
    int rc = load(&y, path, err, errlen, &c);
    dlg__yaml_close(&y);
    if (rc < 0) {
        dlg_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- every error --------------------------------------------------------- */

int dlg_config_check(const char *path, dlg_config **out, dlg_config_errors *errs) {
    dlg_yaml y = {.keep_pos = true};
    dlg_config *c = NULL;
    if (!path || !out || !errs)
        return DLG_EINVAL;
    memset(errs, 0, sizeof(*errs));
    *out = NULL;
    int rc = load(&y, path, NULL, 0, &c);
    bool parsed = y.doc != NULL;
    if (rc != DLG_ENOMEM && y.n_errv &&
        !(errs->v = dlg_calloc(y.n_errv, sizeof(*errs->v))))
        rc = DLG_ENOMEM;
    if (rc == DLG_ENOMEM) {
        dlg__yaml_close(&y);
        dlg_config_free(c);
        return rc;
    }
    /* The reader's lists move to their owners. */
    for (size_t i = 0; i < y.n_errv; i++)
        errs->v[i] = (dlg_config_error){.path = y.errv[i].path, .text = y.errv[i].text};
    errs->n = y.n_errv;
    errs->total = y.n_errors;
    free(y.errv);
    y.errv = NULL;
    y.n_errv = y.cap_errv = 0;
    c->pos = y.posv;
    c->n_pos = y.n_posv;
    y.posv = NULL;
    y.n_posv = y.cap_posv = 0;
    dlg__yaml_close(&y);
    if (!parsed) {
        /* Not opened, or not YAML: nothing to look further into. */
        dlg_config_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

void dlg_config_errors_free(dlg_config_errors *e) {
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].path);
        free(e->v[i].text);
    }
    free(e->v);
    memset(e, 0, sizeof(*e));
}

int dlg_config_where(const dlg_config *c, const char *path, unsigned *line, unsigned *col) {
    if (!c || !path)
        return DLG_EINVAL;
    for (size_t i = 0; i < c->n_pos; i++)
        if (strcmp(c->pos[i].path, path) == 0) {
            if (line)
                *line = c->pos[i].line;
            if (col)
                *col = c->pos[i].col;
            return 0;
        }
    return DLG_ENOTFOUND;
}

bool dlg_config_errors_under(const dlg_config_errors *e, const char *prefix) {
    size_t n = strlen(prefix);
    for (size_t i = 0; i < e->n; i++) {
        const char *p = e->v[i].path;
        if (strncmp(p, prefix, n) == 0 && (p[n] == '\0' || p[n] == '.' || p[n] == '['))
            return true;
    }
    return false;
}
