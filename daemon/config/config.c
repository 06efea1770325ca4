/* config.c: the config module's entry points (see config.h): the defaults,
 * the walk of the file's root that hands each section to its loader
 * (load_*.c, on the reader of yamlread.c), and freeing. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_err.h"

void dlg_config_free(dlg_config *c) {
    if (!c)
        return;
    free(c->path);
    dlg__cfg_listeners_free(c->listen, c->n_listen);
    dlg__cfg_strv_free(&c->schemas);
    dlg__cfg_auth_free(&c->auth);
    dlg__cfg_rooms_free(c);
    dlg__cfg_metrics_free(&c->metrics);
    free(c->store_path);
    dlg__cfg_cluster_free(&c->cluster);
    free(c);
}

const dlg_config_room *dlg_config_find_room(const dlg_config *c, const char *id) {
    if (!c || !id)
        return NULL;
    for (size_t i = 0; i < c->n_rooms; i++)
        if (strcmp(c->rooms[i].id, id) == 0)
            return &c->rooms[i];
    return NULL;
}

/* ---- defaults ----------------------------------------------------------- */

/* Fills a zeroed c with every default; on ENOMEM c stays freeable. */
static int fill_defaults(dlg_config *c) {
    c->log_level = DLG_CFG_LOG_INFO;
    c->listen = calloc(1, sizeof(*c->listen));
    if (!c->listen)
        return DLG_ENOMEM;
    c->n_listen = 1;
    if (dlg__cfg_listener_default(&c->listen[0]) < 0)
        return DLG_ENOMEM;
    dlg__cfg_limits_default(&c->limits);
    c->auth.jwt.leeway_seconds = 30;
    c->auth.jwt.roles_claim = strdup("role");
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
    dlg_config *c = calloc(1, sizeof(*c));
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

/* The root mapping: the top-level scalars here, each section to its file,
 * in an order where what is referred to is loaded before what refers. */
static int load_root(dlg_yaml *y, const dlg_ynode *root) {
    static const char *const keys[] = {"log_level", "listen",  "schemas",    "allow_unknown_fields",
                                       "limits",    "auth",    "room_admin", "rooms",
                                       "auto_join", "metrics", "store",      "store_path",
                                       "store_sync", "cluster", "io_uring", "send_threads",
                                       "tls_own_records", NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    dlg_config *c = dlg__cfg(y);
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, root, "", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "log_level")) &&
        (rc = dlg__yaml_enum(y, v, "log_level", levels, &c->log_level)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "listen")) && (rc = dlg__cfg_load_listen(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "schemas")) &&
        (rc = dlg__cfg_strv(y, v, "schemas", DLG_CFG_K_PATH, &c->schemas)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "allow_unknown_fields")) &&
        (rc = dlg__yaml_bool(y, v, "allow_unknown_fields", &c->allow_unknown_fields)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "limits")) && (rc = dlg__cfg_load_limits(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "auth")) && (rc = dlg__cfg_load_auth(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "room_admin")) && (rc = dlg__cfg_load_room_admin(y, v)) < 0)
        return rc;
    /* rooms first whatever the key order: auto_join and metrics refer to them. */
    if ((v = dlg__yaml_get(y, root, "rooms")) && (rc = dlg__cfg_load_rooms(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "auto_join")) && (rc = dlg__cfg_load_auto_join(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "metrics")) && (rc = dlg__cfg_load_metrics(y, v)) < 0)
        return rc;
    if ((rc = dlg__cfg_load_store(y, root)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "cluster")) && (rc = dlg__cfg_load_cluster(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "io_uring")) &&
        (rc = dlg__yaml_bool(y, v, "io_uring", &c->io_uring)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "tls_own_records")) &&
        (rc = dlg__yaml_bool(y, v, "tls_own_records", &c->tls_own_records)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, root, "send_threads")) &&
        (rc = dlg__yaml_u32(y, v, "send_threads", 0, DLG_CFG_SEND_THREADS_MAX,
                            &c->send_threads)) < 0)
        return rc;
    return dlg__cfg_check_store(y, root);
}

int dlg_config_load(const char *path, dlg_config **out, char *err, size_t errlen) {
    dlg_yaml y = {0};
    dlg_ynode *root = NULL;
    dlg_config *c = NULL;
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (!path || !out) {
        if (err && errlen)
            snprintf(err, errlen, "dlg_config_load: %s is NULL", path ? "out" : "path");
        return DLG_EINVAL;
    }
    c = calloc(1, sizeof(*c));
    if (!c || (rc = fill_defaults(c)) < 0 || !(c->path = strdup(path))) {
        rc = DLG_ENOMEM;
        goto fail;
    }
    y.ud = c;
    if ((rc = dlg__yaml_open(&y, path, err, errlen, &root)) < 0)
        goto fail;
    if (root && (rc = load_root(&y, root)) < 0)
        goto fail;
    dlg__yaml_close(&y);
    *out = c;
    return 0;
fail:
    dlg__yaml_close(&y);
    dlg_config_free(c);
    return rc;
}
