/* metrics.h: the built-in metrics source of the Live Dashboard. Every
 * interval it samples host CPU (/proc/stat deltas) and memory
 * (/proc/meminfo MemAvailable) plus the daemon's own counters, triggers
 * metrics:update into a room as "system", and raises alert:triggered when an
 * alert rule holds, at most once per rule per cooldown. */
#ifndef DLG_METRICS_H
#define DLG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "server.h"

/* An alert's metric and comparison: the config's metrics.alerts[] values,
 * named here for the metrics source (a rule takes the config's ints as
 * they are). */
enum {
    DLG_METRIC_CPU = DLG_CFG_METRIC_CPU,
    DLG_METRIC_MEMORY = DLG_CFG_METRIC_MEMORY,
    DLG_METRIC_REQUESTS = DLG_CFG_METRIC_REQUESTS,
    DLG_METRIC_ERRORS = DLG_CFG_METRIC_ERRORS,
    DLG_METRIC_LATENCY = DLG_CFG_METRIC_LATENCY,
    DLG_METRIC_COUNT = DLG_CFG_METRIC_LATENCY + 1,
};
enum {
    DLG_OP_GT = DLG_CFG_OP_GT,
    DLG_OP_GE = DLG_CFG_OP_GE,
    DLG_OP_LT = DLG_CFG_OP_LT,
    DLG_OP_LE = DLG_CFG_OP_LE,
};

typedef struct dlg_alert_rule {
    int metric;                 /* DLG_METRIC_* */
    int op;                     /* DLG_OP_* */
    double threshold;
    int severity;               /* dialogue.dashboard.Severity value */
    char *message;              /* template; "{value}" is replaced (owned) */
    uint32_t cooldown_s;
    uint64_t last_fired_ms;     /* 0 = never */
} dlg_alert_rule;

typedef struct dlg_metrics {
    dlg_server *srv;
    char *room;                 /* owned */
    uint32_t interval_ms;
    uv_timer_t timer;
    dlg_alert_rule *rules;      /* owned */
    size_t n_rules;
    int have_prev;
    uint64_t prev_busy, prev_total;
    dlg_counters prev;
    uint64_t prev_ns;
    uint64_t last_alert_ms;
    uint64_t alerts_sent;
} dlg_metrics;

/* Name <-> enum helpers for config and docs. -1 when unknown. */
int dlg_metric_parse(const char *name);
const char *dlg_metric_name(int metric);
int dlg_op_parse(const char *op);
int dlg_severity_parse(const char *name);

/* Parses the first "cpu " line of /proc/stat text: busy and total jiffies.
 * Returns 0 or DLG_EINVAL. */
int dlg_metrics_parse_stat(const char *text, uint64_t *busy, uint64_t *total);

/* Parses /proc/meminfo text into percent used: (MemTotal - MemAvailable) /
 * MemTotal * 100. Returns 0 or DLG_EINVAL. */
int dlg_metrics_parse_meminfo(const char *text, double *used_pct);

/* 1 if rule fires for value at now_ms (condition holds and the cooldown
 * since its last alert has passed); records the firing time when it does. */
int dlg_alert_check(dlg_alert_rule *rule, double value, uint64_t now_ms);

/* Writes tmpl with every "{value}" replaced by value (up to 2 decimals,
 * trailing zeros trimmed) and "{metric}" by the metric name. */
void dlg_alert_format(const char *tmpl, int metric, double value, char *out, size_t len);

/* Starts the source on srv's loop. rules are taken over (ownership passes,
 * also on error); room is copied. Returns 0 or DLG_ENOMEM. */
int dlg_metrics_start(dlg_metrics *m, dlg_server *srv, const char *room,
                      uint32_t interval_ms, dlg_alert_rule *rules, size_t n_rules);

/* Stops the timer and frees what start took. The timer handle is closed;
 * m must stay valid until the loop has run its close callback. */
void dlg_metrics_stop(dlg_metrics *m);

#endif
