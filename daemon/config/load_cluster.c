/* load_cluster.c: the `cluster` section: this node's name, the NATS
 * servers and how to reach them (credentials, TLS), and the JetStream log. */
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg__cfg_cluster_free(dlg_config_cluster *cl) {
    free(cl->node_id);
    dlg__cfg_strv_free(&cl->nats);
    free(cl->creds);
    free(cl->tls_ca);
    free(cl->tls_cert);
    free(cl->tls_key);
}

/* A NATS server URL: the scheme says whether the link is TLS, and a typo
 * caught here is better than a connect error naming no config line. */
static int check_nats_url(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s) {
    char got[80];
    dlg__yaml_show(n, got, sizeof(got));
    const char *rest = !strncmp(s, "nats://", 7) ? s + 7 : !strncmp(s, "tls://", 6) ? s + 6 : NULL;
    if (!rest || !*rest)
        return dlg__yaml_fail(
            y, n, path, "expected a URL like nats://127.0.0.1:4222 (or tls://...), got %s", got);
    for (const unsigned char *p = (const unsigned char *)rest; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == ',')
            return dlg__yaml_fail(y, n, path,
                                  "a NATS URL must not contain blanks, commas or control "
                                  "characters: %s",
                                  got);
    return 0;
}

static int load_cluster_tls(dlg_yaml *y, const dlg_ynode *m, dlg_config_cluster *cl) {
    static const char *const keys[] = {"ca", "cert", "key", NULL};
    size_t mark = y->n_errors;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "cluster.tls", keys);
    if (rc < 0)
        return rc;
    cl->tls = true;
    if ((v = dlg__yaml_get(y, m, "ca")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "cluster.tls.ca", &cl->tls_ca));
    if ((v = dlg__yaml_get(y, m, "cert")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "cluster.tls.cert", &cl->tls_cert));
    if ((v = dlg__yaml_get(y, m, "key")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "cluster.tls.key", &cl->tls_key));
    if (y->n_errors == mark && !cl->tls_cert != !cl->tls_key)
        dlg__yaml_fail(y, m, "cluster.tls",
                       "cert and key go together (a client certificate needs both)");
    return dlg__yaml_since(y, mark);
}

static int load_cluster_log(dlg_yaml *y, const dlg_ynode *m, dlg_config_cluster *cl) {
    static const char *const keys[] = {"replicas", "max_events", "max_age", "storage", NULL};
    static const char *const storages[] = {"file", "memory", NULL};
    size_t mark = y->n_errors;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "cluster.log", keys);
    if (rc < 0)
        return rc;
    cl->log = true;
    cl->log_max_events = 100000;
    /* JetStream's own bound on replicas is 5. */
    if ((v = dlg__yaml_get(y, m, "replicas")))
        DLG_CFG_TRY(dlg__yaml_u32(y, v, "cluster.log.replicas", 1, 5, &cl->log_replicas));
    if ((v = dlg__yaml_get(y, m, "max_events")))
        DLG_CFG_TRY(
            dlg__yaml_uint(y, v, "cluster.log.max_events", 1, 1ull << 40, &cl->log_max_events));
    if ((v = dlg__yaml_get(y, m, "max_age")))
        DLG_CFG_TRY(dlg__yaml_u32(y, v, "cluster.log.max_age", 0, 10u * 365 * 86400,
                                  &cl->log_max_age_s));
    if ((v = dlg__yaml_get(y, m, "storage")))
        DLG_CFG_TRY(dlg__yaml_enum(y, v, "cluster.log.storage", storages, &cl->log_memory));
    return dlg__yaml_since(y, mark);
}

/* cluster.nats: at least one URL, each once. */
static int load_nats_urls(dlg_yaml *y, const dlg_ynode *v, dlg_config_cluster *cl) {
    size_t mark = y->n_errors;
    int rc = dlg__yaml_want(y, v, "cluster.nats", YAML_SEQUENCE_NODE);
    if (rc < 0)
        return rc;
    size_t cnt = dlg__yaml_seq_len(v);
    if (!cnt)
        return dlg__yaml_fail(y, v, "cluster.nats", "expected at least one NATS server URL");
    if (!(cl->nats.v = dlg_calloc(cnt, sizeof(*cl->nats.v))))
        return DLG_ENOMEM;
    cl->nats.n = cnt;
    for (size_t i = 0; i < cnt; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg_ynode *it = dlg__yaml_seq_at(y, v, i);
        dlg__yaml_idxpath(p, "cluster.nats", i);
        DLG_CFG_TRY(rc = dlg__yaml_text(y, it, p, 1024, &cl->nats.v[i]));
        if (rc < 0 || check_nats_url(y, it, p, cl->nats.v[i]) < 0)
            continue;
        for (size_t j = 0; j < i; j++)
            if (cl->nats.v[j] && !strcmp(cl->nats.v[j], cl->nats.v[i])) {
                dlg__yaml_fail(y, it, p, "duplicate entry \"%s\"", cl->nats.v[i]);
                break;
            }
    }
    return dlg__yaml_since(y, mark);
}

int dlg__cfg_load_cluster(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"node_id", "nats", "creds", "tls", "log", NULL};
    size_t mark = y->n_errors;
    dlg_config_cluster *cl = &dlg__cfg(y)->cluster;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "cluster", keys);
    if (rc < 0)
        return rc;
    cl->enabled = true;
    cl->line = (unsigned)m->start_mark.line + 1;
    if (!(v = dlg__yaml_get(y, m, "node_id"))) {
        dlg__yaml_missing(y, m, "cluster", "node_id");
    } else {
        /* It travels in a NATS header and in log lines: a short plain name. */
        DLG_CFG_TRY(rc = dlg__yaml_text(y, v, "cluster.node_id", 64, &cl->node_id));
        if (rc == 0)
            dlg__cfg_check_name(y, v, "cluster.node_id", cl->node_id);
    }
    if (!(v = dlg__yaml_get(y, m, "nats")))
        dlg__yaml_missing(y, m, "cluster", "nats");
    else
        DLG_CFG_TRY(load_nats_urls(y, v, cl));
    if ((v = dlg__yaml_get(y, m, "creds")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "cluster.creds", &cl->creds));
    if ((v = dlg__yaml_get(y, m, "tls")))
        DLG_CFG_TRY(load_cluster_tls(y, v, cl));
    if ((v = dlg__yaml_get(y, m, "log")))
        DLG_CFG_TRY(load_cluster_log(y, v, cl));
    return dlg__yaml_since(y, mark);
}
