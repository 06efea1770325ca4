/* load_history.c: what the config says about kept history: each room's
 * `history` rules and `sync_history_on_join`, and the store that keeps
 * them (`store`, `store_path`, `store_sync`). */
#include <stdint.h>
#include <string.h>

#include "config_int.h"
#include "dlg_err.h"

int dlg__cfg_history_entry(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r,
                           size_t i) {
    static const char *const keys[] = {"event", "limit", "max_age_seconds", NULL};
    size_t mark = y->n_errors;
    dlg_config_history *h = &r->history[i];
    char p[DLG_YAML_KEYPATH];
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    DLG_CFG_TRY(dlg__cfg_entry_event(y, m, path, r, true, &h->event));
    h->line = (unsigned)m->start_mark.line + 1;
    dlg_ynode *v = dlg__yaml_get(y, m, "limit");
    if (!v) {
        dlg__yaml_missing(y, m, path, "limit");
    } else {
        dlg__yaml_keypath(p, path, "limit");
        DLG_CFG_TRY(dlg__yaml_u32(y, v, p, 1, 10000000, &h->limit));
    }
    if ((v = dlg__yaml_get(y, m, "max_age_seconds"))) {
        dlg__yaml_keypath(p, path, "max_age_seconds");
        DLG_CFG_TRY(dlg__yaml_u32(y, v, p, 0, UINT32_MAX, &h->max_age_seconds));
    }
    if (y->n_errors > mark)
        return DLG_ECONFIG;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dlg__cfg_dup_event(y, m, path, h->event, r->history[k].event, r->history[k].line);
    return rc;
}

int dlg__cfg_load_sync(dlg_yaml *y, const dlg_ynode *v, const char *path, dlg_config_room *r) {
    char got[80];
    dlg__yaml_show(v, got, sizeof(got));
    if (v->type != YAML_SCALAR_NODE)
        return dlg__yaml_fail(y, v, path, "expected -1, 0, a count or true/false, got %s", got);
    const char *s = dlg__yaml_sval(v);
    int b = dlg__yaml_bool_word(s);
    uint64_t u;
    if (b >= 0)
        r->sync_history_on_join = b ? -1 : 0;
    else if (!strcmp(s, "-1"))
        r->sync_history_on_join = -1;
    else if (dlg__yaml_parse_u64(s, &u) && u <= 10000000)
        r->sync_history_on_join = (int32_t)u;
    else
        return dlg__yaml_fail(y, v, path,
                              "expected -1 (all kept), 0 (off), a count up to 10000000 "
                              "or true/false, got %s",
                              got);
    return 0;
}

int dlg__cfg_load_store(dlg_yaml *y, const dlg_ynode *root) {
    static const char *const stores[] = {"memory", "sqlite", NULL};
    static const char *const syncs[] = {"ack", "batch", NULL};
    size_t mark = y->n_errors;
    dlg_config *c = dlg__cfg(y);
    dlg_ynode *v;
    dlg_ynode *store = dlg__yaml_get(y, root, "store");
    if (store)
        DLG_CFG_TRY(dlg__yaml_enum(y, store, "store", stores, &c->store));
    /* store_path: "" is how the reference writes "unset". */
    if ((v = dlg__yaml_get(y, root, "store_path")) &&
        !(v->type == YAML_SCALAR_NODE && !*dlg__yaml_sval(v)))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "store_path", &c->store_path));
    if (y->n_errors == mark && c->store == DLG_CFG_STORE_SQLITE && !c->store_path)
        dlg__yaml_fail(y, store, "store", "sqlite needs store_path");
    if ((v = dlg__yaml_get(y, root, "store_sync")))
        DLG_CFG_TRY(dlg__yaml_enum(y, v, "store_sync", syncs, &c->store_sync));
    return dlg__yaml_since(y, mark);
}

int dlg__cfg_check_store(dlg_yaml *y, const dlg_ynode *root) {
    const dlg_config *c = dlg__cfg(y);
    /* Two durable logs of one room would disagree after a failure; the
     * cluster log is the durable one, the rings are its cache. */
    if (c->cluster.log && c->store == DLG_CFG_STORE_SQLITE)
        return dlg__yaml_fail(y, dlg__yaml_get(y, root, "store"), "store",
                              "sqlite cannot be combined with cluster.log: the JetStream stream "
                              "is then each room's durable history (use store: memory)");
    return 0;
}
