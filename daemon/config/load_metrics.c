/* load_metrics.c: the `metrics` section: the built-in metrics source (the
 * room it publishes into, its interval) and its alert rules. */
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg__cfg_metrics_free(dlg_config_metrics *m) {
    free(m->room);
    for (size_t i = 0; i < m->n_alerts; i++)
        free(m->alerts[i].message);
    free(m->alerts);
}

/* The seed's one alert, used when `metrics` has no `alerts` key. */
static int alert_default(dlg_config_alert *a) {
    memset(a, 0, sizeof(*a));
    a->metric = DLG_CFG_METRIC_CPU;
    a->op = DLG_CFG_OP_GT;
    a->threshold = 90;
    a->severity = DLG_CFG_SEV_HIGH;
    a->cooldown_seconds = 60;
    a->message = dlg_strdup("CPU usage critical: {value}%");
    return a->message ? 0 : DLG_ENOMEM;
}

static int load_alert(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_alert *a) {
    static const char *const keys[] = {"metric",           "op", "threshold", "severity", "message",
                                       "cooldown_seconds", NULL};
    static const char *const metrics[] = {"cpu", "memory", "requests", "errors", "latency", NULL};
    static const char *const ops[] = {">", ">=", "<", "<=", NULL};
    static const char *const sevs[] = {"low", "medium", "high", "critical", NULL};
    size_t mark = y->n_errors;
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    a->line = (unsigned)m->start_mark.line + 1;
    a->cooldown_seconds = 60;
    static const char *const req[] = {"metric", "op", "threshold", "severity", "message"};
    for (size_t i = 0; i < 5; i++) {
        if (!(v = dlg__yaml_get(y, m, req[i]))) {
            dlg__yaml_missing(y, m, path, req[i]);
            continue;
        }
        dlg__yaml_keypath(p, path, req[i]);
        switch (i) {
        case 0: rc = dlg__yaml_enum(y, v, p, metrics, &a->metric); break;
        case 1: rc = dlg__yaml_enum(y, v, p, ops, &a->op); break;
        case 2: rc = dlg__yaml_double(y, v, p, &a->threshold); break;
        case 3: rc = dlg__yaml_enum(y, v, p, sevs, &a->severity); break;
        default:
            /* AlertTriggered.message allows 1024 bytes once {value} is
             * filled in; leave room for the number. */
            rc = dlg__yaml_text(y, v, p, 1000, &a->message);
            if (rc == 0 && !*a->message)
                rc = dlg__yaml_fail(y, v, p, "must not be empty");
        }
        DLG_CFG_TRY(rc);
    }
    if ((v = dlg__yaml_get(y, m, "cooldown_seconds"))) {
        dlg__yaml_keypath(p, path, "cooldown_seconds");
        DLG_CFG_TRY(dlg__yaml_u32(y, v, p, 0, 2592000, &a->cooldown_seconds));
    }
    return dlg__yaml_since(y, mark);
}

/* metrics.room: a room from `rooms` (NULL when it is not one). */
static const dlg_config_room *load_metrics_room(dlg_yaml *y, const dlg_ynode *v, int *rc) {
    dlg_config_metrics *mt = &dlg__cfg(y)->metrics;
    if ((*rc = dlg__yaml_text(y, v, "metrics.room", DLG_CFG_NAME_MAX, &mt->room)) < 0 ||
        (*rc = dlg__cfg_check_name(y, v, "metrics.room", mt->room)) < 0)
        return NULL;
    const dlg_config_room *r = dlg_config_find_room(dlg__cfg(y), mt->room);
    if (!r)
        *rc = dlg__yaml_fail(y, v, "metrics.room", "unknown room \"%s\" (not defined in rooms)",
                             mt->room);
    return r;
}

int dlg__cfg_load_metrics(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"room", "interval_ms", "alerts", NULL};
    size_t mark = y->n_errors;
    dlg_config_metrics *mt = &dlg__cfg(y)->metrics;
    const dlg_config_room *r = NULL;
    dlg_ynode *v, *room_node;
    int rc = dlg__yaml_want_map(y, m, "metrics", keys);
    if (rc < 0)
        return rc;
    mt->enabled = true;
    mt->line = (unsigned)m->start_mark.line + 1;
    if (!(room_node = dlg__yaml_get(y, m, "room")))
        dlg__yaml_missing(y, m, "metrics", "room");
    else if (!(r = load_metrics_room(y, room_node, &rc)))
        DLG_CFG_TRY(rc);
    if ((v = dlg__yaml_get(y, m, "interval_ms")))
        DLG_CFG_TRY(dlg__yaml_u32(y, v, "metrics.interval_ms", 10, 3600000, &mt->interval_ms));
    if (!(v = dlg__yaml_get(y, m, "alerts"))) {
        mt->alerts = dlg_calloc(1, sizeof(*mt->alerts));
        if (!mt->alerts)
            return DLG_ENOMEM;
        mt->n_alerts = 1;
        if ((rc = alert_default(&mt->alerts[0])) < 0)
            return rc;
    } else {
        DLG_CFG_TRY(rc = dlg__yaml_seq_alloc(y, v, "metrics.alerts", sizeof(*mt->alerts),
                                             (void **)&mt->alerts, &mt->n_alerts));
        for (size_t i = 0; rc == 0 && i < mt->n_alerts; i++) {
            char p[DLG_YAML_KEYPATH];
            dlg__yaml_idxpath(p, "metrics.alerts", i);
            DLG_CFG_TRY(load_alert(y, dlg__yaml_seq_at(y, v, i), p, &mt->alerts[i]));
        }
    }
    if (!r)
        return dlg__yaml_since(y, mark);
    /* The source publishes these events into the room; a room that does not
     * declare them would refuse every subscription to its own metrics. */
    if (!r->any_event && !dlg__cfg_strv_has(&r->events, "metrics:update"))
        dlg__yaml_fail(y, room_node, "metrics.room",
                       "room \"%s\" must list \"metrics:update\" in its events (or \"*\")", r->id);
    else if (mt->n_alerts && !r->any_event && !dlg__cfg_strv_has(&r->events, "alert:triggered"))
        dlg__yaml_fail(y, room_node, "metrics.room",
                       "room \"%s\" must list \"alert:triggered\" in its events (or \"*\") "
                       "for the alerts",
                       r->id);
    return dlg__yaml_since(y, mark);
}
