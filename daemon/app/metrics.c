/* metrics.c: the dashboard's metrics source and alert rules (metrics.h). */
#include "metrics.h"
#include "dlg_clock.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "events/dashboard.pb-c.h"
#include "trigger.h"

/* A rule's severity is the config's metrics.alerts[].severity as it is:
 * those values are the Severity enum of dashboard.proto, checked here
 * rather than trusted (config.h cannot see the generated code). */
_Static_assert((int)DLG_CFG_SEV_LOW == (int)DIALOGUE__DASHBOARD__SEVERITY__low &&
                   (int)DLG_CFG_SEV_MEDIUM == (int)DIALOGUE__DASHBOARD__SEVERITY__medium &&
                   (int)DLG_CFG_SEV_HIGH == (int)DIALOGUE__DASHBOARD__SEVERITY__high &&
                   (int)DLG_CFG_SEV_CRITICAL == (int)DIALOGUE__DASHBOARD__SEVERITY__critical,
               "config severities must be dialogue.dashboard.Severity values");
#include "dlg_alloc.h"
#include "room.h"

static const char *const metric_names[DLG_METRIC_COUNT] = {
    "cpu", "memory", "requests", "errors", "latency"};

int dlg_metric_parse(const char *name) {
    for (int i = 0; i < DLG_METRIC_COUNT; i++)
        if (strcmp(name, metric_names[i]) == 0)
            return i;
    return -1;
}

const char *dlg_metric_name(int metric) {
    return metric >= 0 && metric < DLG_METRIC_COUNT ? metric_names[metric] : "?";
}

int dlg_op_parse(const char *op) {
    if (strcmp(op, ">") == 0) return DLG_OP_GT;
    if (strcmp(op, ">=") == 0) return DLG_OP_GE;
    if (strcmp(op, "<") == 0) return DLG_OP_LT;
    if (strcmp(op, "<=") == 0) return DLG_OP_LE;
    return -1;
}

int dlg_severity_parse(const char *name) {
    static const char *const sev[] = {"low", "medium", "high", "critical"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, sev[i]) == 0)
            return i;
    return -1;
}

int dlg_metrics_parse_stat(const char *text, uint64_t *busy, uint64_t *total) {
    const char *p = strstr(text, "cpu ");
    if (p == NULL || (p != text && p[-1] != '\n'))
        return DLG_EINVAL;
    /* user nice system idle iowait irq softirq steal: idle + iowait is not busy. */
    unsigned long long v[8] = {0};
    int n = sscanf(p + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    if (n < 4)
        return DLG_EINVAL;
    uint64_t t = 0;
    for (int i = 0; i < n; i++)
        t += v[i];
    *total = t;
    *busy = t - v[3] - (n > 4 ? v[4] : 0);
    return 0;
}

static int meminfo_field(const char *text, const char *key, unsigned long long *out) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':')
            return sscanf(p + kl + 1, "%llu", out) == 1 ? 0 : DLG_EINVAL;
    }
    return DLG_EINVAL;
}

int dlg_metrics_parse_meminfo(const char *text, double *used_pct) {
    unsigned long long total, avail;
    if (meminfo_field(text, "MemTotal", &total) != 0 ||
        meminfo_field(text, "MemAvailable", &avail) != 0 || total == 0 || avail > total)
        return DLG_EINVAL;
    *used_pct = (double)(total - avail) * 100.0 / (double)total;
    return 0;
}

int dlg_alert_check(dlg_alert_rule *r, double v, uint64_t now_ms) {
    int hold = 0;
    switch (r->op) {
    case DLG_OP_GT: hold = v > r->threshold; break;
    case DLG_OP_GE: hold = v >= r->threshold; break;
    case DLG_OP_LT: hold = v < r->threshold; break;
    case DLG_OP_LE: hold = v <= r->threshold; break;
    }
    if (!hold)
        return 0;
    if (r->last_fired_ms != 0 && now_ms - r->last_fired_ms < (uint64_t)r->cooldown_s * 1000u)
        return 0;
    r->last_fired_ms = now_ms;
    return 1;
}

void dlg_alert_format(const char *tmpl, int metric, double value, char *out, size_t len) {
    char num[64];
    snprintf(num, sizeof(num), "%.2f", value);
    char *dot = strchr(num, '.');
    if (dot) {
        char *e = num + strlen(num) - 1;
        while (e > dot && *e == '0')
            *e-- = 0;
        if (e == dot)
            *e = 0;
    }
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 1 < len;) {
        const char *sub = NULL;
        size_t skip = 0;
        if (strncmp(p, "{value}", 7) == 0) {
            sub = num;
            skip = 7;
        } else if (strncmp(p, "{metric}", 8) == 0) {
            sub = dlg_metric_name(metric);
            skip = 8;
        }
        if (sub) {
            for (; *sub && o + 1 < len; sub++)
                out[o++] = *sub;
            p += skip;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
}

static int read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return DLG_EIO;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return 0;
}

static void publish(dlg_metrics *m, const ProtobufCMessage *msg, const char *event) {
    dlg_server *s = m->srv;
    dlg_room *r = dlg_rooms_find(s->rooms, m->room);
    if (r == NULL) {
        dlg_log_warn(&s->log, "metrics: room %s does not exist", m->room);
        return;
    }
    uint8_t buf[1024];
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > sizeof(buf))
        return;
    protobuf_c_message_pack(msg, buf);
    char err[256];
    dlg_publish_result res;
    if (dlg_trigger(s, r, NULL, event, buf, n, dlg_now_ns(), &res, err,
                           sizeof(err)) != 0)
        dlg_log_warn(&s->log, "metrics: %s refused: %s", event, err);
}

static void on_tick(uv_timer_t *t) {
    dlg_metrics *m = t->data;
    dlg_server *s = m->srv;
    char text[8192];
    uint64_t busy = 0, total = 0;
    double cpu = 0, mem = 0;
    if (read_file("/proc/stat", text, sizeof(text)) == 0 &&
        dlg_metrics_parse_stat(text, &busy, &total) == 0 && m->have_prev &&
        total > m->prev_total)
        cpu = (double)(busy - m->prev_busy) * 100.0 / (double)(total - m->prev_total);
    if (read_file("/proc/meminfo", text, sizeof(text)) == 0)
        dlg_metrics_parse_meminfo(text, &mem);
    uint64_t now_ns = dlg_now_ns();
    double secs = m->have_prev ? (double)(now_ns - m->prev_ns) / 1e9 : 0;
    dlg_counters c = s->counters;
    double req = 0, errs = 0, lat = 0;
    if (secs > 0) {
        req = (double)(c.frames_in - m->prev.frames_in) / secs;
        errs = (double)(c.frames_rejected - m->prev.frames_rejected) / secs;
    }
    uint64_t nev = c.events_in - m->prev.events_in;
    if (m->have_prev && nev > 0)
        lat = (double)(c.fanout_ns - m->prev.fanout_ns) / (double)nev / 1e6;
    int primed = m->have_prev;
    m->prev = c;
    m->prev_ns = now_ns;
    m->prev_busy = busy;
    m->prev_total = total;
    m->have_prev = 1;
    if (!primed)
        return; /* the first sample only sets the baseline for deltas */
    cpu = fmin(fmax(cpu, 0), 100);
    mem = fmin(fmax(mem, 0), 100);

    Dialogue__Dashboard__MetricsUpdate mu = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    mu.has_cpu = mu.has_memory = mu.has_requests = mu.has_errors = mu.has_latency = 1;
    mu.cpu = round(cpu * 100) / 100;
    mu.memory = round(mem * 100) / 100;
    mu.requests = round(req * 100) / 100;
    mu.errors = round(errs * 100) / 100;
    mu.latency = round(lat * 1000) / 1000;
    publish(m, &mu.base, "metrics:update");

    double vals[DLG_METRIC_COUNT] = {mu.cpu, mu.memory, mu.requests, mu.errors, mu.latency};
    uint64_t now_ms = dlg_wall_ms();
    for (size_t i = 0; i < m->n_rules; i++) {
        dlg_alert_rule *r = &m->rules[i];
        if (!dlg_alert_check(r, vals[r->metric], now_ms))
            continue;
        /* Unique even for two alerts in one millisecond. */
        uint64_t id_ms = now_ms > m->last_alert_ms ? now_ms : m->last_alert_ms + 1;
        m->last_alert_ms = id_ms;
        char id[64], msg[512];
        snprintf(id, sizeof(id), "%s-%" PRIu64, dlg_metric_name(r->metric), id_ms);
        dlg_alert_format(r->message, r->metric, vals[r->metric], msg, sizeof(msg));
        Dialogue__Dashboard__AlertTriggered at = DIALOGUE__DASHBOARD__ALERT_TRIGGERED__INIT;
        at.alert_id = id;
        at.has_severity = 1;
        at.severity = (Dialogue__Dashboard__Severity)r->severity;
        at.message = msg;
        at.has_timestamp = 1;
        at.timestamp = now_ms;
        dlg_log_info(&s->log, "alert %s: %s", id, msg);
        m->alerts_sent++;
        publish(m, &at.base, "alert:triggered");
    }
}

static void free_rules(dlg_alert_rule *rules, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(rules[i].message);
    free(rules);
}

int dlg_metrics_start(dlg_metrics *m, dlg_server *srv, const char *room,
                      uint32_t interval_ms, dlg_alert_rule *rules, size_t n_rules) {
    memset(m, 0, sizeof(*m));
    m->srv = srv;
    m->rules = rules;
    m->n_rules = n_rules;
    m->interval_ms = interval_ms ? interval_ms : 1000;
    if ((m->room = dlg_strdup(room)) == NULL) {
        free_rules(rules, n_rules);
        m->rules = NULL;
        return DLG_ENOMEM;
    }
    uv_timer_init(srv->loop, &m->timer);
    m->timer.data = m;
    /* A first sample right away sets the baseline; events follow every interval. */
    on_tick(&m->timer);
    uv_timer_start(&m->timer, on_tick, m->interval_ms, m->interval_ms);
    return 0;
}

void dlg_metrics_stop(dlg_metrics *m) {
    if (m->room == NULL)
        return;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, NULL);
    free(m->room);
    m->room = NULL;
    free_rules(m->rules, m->n_rules);
    m->rules = NULL;
    m->n_rules = 0;
}
