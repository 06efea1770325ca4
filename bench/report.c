/* report.c: dialogue-bench's report of a run, as text or one JSON object:
 * the totals, then per server and per daemon pid when there are several. */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "bench.h"
#include "target.h"

static double us(uint64_t ns) {
    return (double)ns / 1000.0;
}

static double per_delivery_us(double cpu_s, uint64_t n) {
    return cpu_s >= 0 && n > 0 ? cpu_s * 1e6 / (double)n : -1;
}

static json_t *num_or_null(double v) {
    return v >= 0 ? json_real(v) : json_null();
}

static void print_json(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (s == NULL) {
        fprintf(stderr, "dialogue-bench: out of memory for the JSON report\n");
        return;
    }
    printf("%s\n", s);
    free(s);
}

static json_t *latency_json(const bench_hist *h) {
    json_t *lat = json_object();
    json_object_set_new(lat, "p50", json_real(us(bench_hist_quantile(h, 0.50))));
    json_object_set_new(lat, "p90", json_real(us(bench_hist_quantile(h, 0.90))));
    json_object_set_new(lat, "p99", json_real(us(bench_hist_quantile(h, 0.99))));
    json_object_set_new(lat, "p99_9", json_real(us(bench_hist_quantile(h, 0.999))));
    json_object_set_new(lat, "max", json_real(us(h->max)));
    json_object_set_new(lat, "mean", json_real(h->count ? us(h->sum / h->count) : 0));
    return lat;
}

static json_t *over_events_json(const bench_over_events *s) {
    json_t *j = json_object();
    json_object_set_new(j, "p50", json_real(us(s->p50)));
    json_object_set_new(j, "p99", json_real(us(s->p99)));
    json_object_set_new(j, "max", json_real(us(s->max)));
    return j;
}

/* --per-event: the summary, then every event (the list is as long as
 * --messages, which the sample cap keeps bounded). */
static json_t *per_event_json(const bench_opts *o, const bench_fanout_result *r) {
    json_t *j = json_object();
    json_object_set_new(j, "events", json_integer((json_int_t)r->n_events));
    json_object_set_new(j, "complete", json_integer((json_int_t)r->events_complete));
    json_object_set_new(j, "reached", json_integer((json_int_t)r->events_reached));
    json_object_set_new(j, "lost_deliveries",
                        json_integer((json_int_t)(r->expected - r->delivered)));
    json_object_set_new(j, "bad_event_ids", json_integer((json_int_t)r->bad_event_ids));
    json_object_set_new(j, "last_us", over_events_json(&r->last));
    json_object_set_new(j, "median_us", over_events_json(&r->median));
    json_t *list = json_array();
    for (uint64_t i = 0; i < r->n_events; i++) {
        const bench_event_stat *e = &r->events[i];
        json_t *ej = json_object();
        json_object_set_new(ej, "delivered", json_integer(e->delivered));
        json_object_set_new(ej, "lost", json_integer((json_int_t)o->subs - e->delivered));
        json_object_set_new(ej, "last_us", e->delivered ? json_real(us(e->last_ns)) : json_null());
        json_object_set_new(ej, "median_us",
                            e->delivered ? json_real(us(e->median_ns)) : json_null());
        json_array_append_new(list, ej);
    }
    json_object_set_new(j, "list", list);
    return j;
}

/* The names of a server list, in rotation order. */
static json_t *list_json(const bench_opts *o, const uint32_t *idx, uint32_t n) {
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(o->servers[idx[i]].name));
    return a;
}

static void print_list(const bench_opts *o, const uint32_t *idx, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", o->servers[idx[i]].name);
    if (n > 1)
        printf(" (round robin)");
}

/* "pid 12 0.120 s, pid 34 ?" for the text report. */
static void print_pids_cpu(const bench_opts *o, const double *cpu) {
    for (uint32_t i = 0; i < o->n_pids; i++) {
        if (cpu[i] >= 0)
            printf("%spid %d %.3f s", i ? ", " : "", o->daemon_pids[i], cpu[i]);
        else
            printf("%spid %d unreadable", i ? ", " : "", o->daemon_pids[i]);
    }
}

static void fanout_json(const bench_opts *o, const bench_fanout_result *r) {
    uint64_t all = r->delivered + r->warm_delivered;
    double rate = r->span_s > 0 ? (double)r->delivered / r->span_s : 0;
    json_t *j = json_object();
    json_object_set_new(j, "mode", json_string("fanout"));
    json_object_set_new(j, "tls", json_boolean(!o->conn.plaintext));
    json_object_set_new(j, "transport", json_string(o->conn.grpc        ? "grpc"
                                                   : o->conn.websocket ? "ws"
                                                                       : "native"));
    json_object_set_new(j, "grpc", json_boolean(o->conn.grpc));
    /* Added for --target: which kind of server was measured. */
    json_object_set_new(j, "target", json_string(bench_target_name(o->conn.target)));
    json_object_set_new(j, "subscribers", json_integer(o->subs));
    json_object_set_new(j, "publishers", json_integer(o->pubs));
    json_object_set_new(j, "rate", json_real(o->rate));
    json_object_set_new(j, "messages", json_integer((json_int_t)o->messages));
    json_object_set_new(j, "bytes", json_integer(o->bytes));
    json_object_set_new(j, "warmup", json_integer((json_int_t)o->warmup));
    json_object_set_new(j, "sub_threads", json_integer(o->sub_threads));
    json_object_set_new(j, "pub_threads", json_integer(o->pub_threads));
    json_object_set_new(j, "expected", json_integer((json_int_t)r->expected));
    json_object_set_new(j, "delivered", json_integer((json_int_t)r->delivered));
    json_object_set_new(j, "warmup_delivered", json_integer((json_int_t)r->warm_delivered));
    json_object_set_new(j, "out_of_order", json_integer((json_int_t)r->out_of_order));
    json_object_set_new(j, "published", json_integer((json_int_t)r->published));
    json_object_set_new(j, "acked", json_integer((json_int_t)r->acked));
    json_object_set_new(j, "trigger_errors", json_integer((json_int_t)r->trigger_errors));
    json_object_set_new(j, "window_full", json_integer((json_int_t)r->window_full));
    json_object_set_new(j, "lost_connections", json_integer(r->lost_peers));
    json_object_set_new(j, "latency_us", latency_json(&r->hist));
    json_object_set_new(j, "per_event", r->events ? per_event_json(o, r) : json_null());
    json_object_set_new(j, "deliveries_per_s", json_real(rate));
    json_object_set_new(j, "elapsed_s", json_real(r->elapsed_s));
    json_object_set_new(j, "span_s", json_real(r->span_s));
    json_object_set_new(j, "daemon_cpu_s", num_or_null(r->daemon_cpu_s));
    json_object_set_new(j, "bench_cpu_s", json_real(r->bench_cpu_s));
    json_object_set_new(j, "daemon_cpu_us_per_delivery",
                        num_or_null(per_delivery_us(r->daemon_cpu_s, all)));
    json_object_set_new(j, "bench_cpu_us_per_delivery",
                        num_or_null(per_delivery_us(r->bench_cpu_s, all)));
    json_object_set_new(j, "other_cpu_s", num_or_null(r->other_cpu_s));
    json_object_set_new(j, "timed_out", json_boolean(r->timed_out));
    json_object_set_new(j, "drained", json_boolean(r->drained));
    json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
    /* Added for several nodes; the keys above keep their single-node
     * meaning (daemon_cpu_s is the sum over the pids). */
    json_object_set_new(j, "sub_servers", list_json(o, o->sub_srv, o->n_sub_srv));
    json_object_set_new(j, "pub_servers", list_json(o, o->pub_srv, o->n_pub_srv));
    json_t *servers = json_array();
    for (uint32_t i = 0; i < o->n_servers; i++) {
        const bench_fanout_server *fs = &r->server[i];
        json_t *s = json_object();
        json_object_set_new(s, "server", json_string(o->servers[i].name));
        json_object_set_new(s, "subscribers", json_integer(fs->subs));
        json_object_set_new(s, "publishers", json_integer(fs->pubs));
        json_object_set_new(s, "delivered", json_integer((json_int_t)fs->delivered));
        json_object_set_new(s, "warmup_delivered", json_integer((json_int_t)fs->warm_delivered));
        json_object_set_new(s, "published", json_integer((json_int_t)fs->published));
        json_object_set_new(s, "acked", json_integer((json_int_t)fs->acked));
        json_object_set_new(s, "trigger_errors", json_integer((json_int_t)fs->trigger_errors));
        json_object_set_new(s, "lost_connections", json_integer(fs->lost));
        json_object_set_new(s, "latency_us", fs->subs ? latency_json(&fs->hist) : json_null());
        json_array_append_new(servers, s);
    }
    json_object_set_new(j, "servers", servers);
    json_t *daemons = json_array();
    for (uint32_t i = 0; i < o->n_pids; i++) {
        json_t *d = json_object();
        json_object_set_new(d, "pid", json_integer(o->daemon_pids[i]));
        json_object_set_new(d, "cpu_s", num_or_null(r->pid_cpu_s[i]));
        json_array_append_new(daemons, d);
    }
    json_object_set_new(j, "daemons", daemons);
    print_json(j);
}

void bench_report_fanout(const bench_opts *o, const bench_fanout_result *r, int json) {
    const bench_hist *h = &r->hist;
    uint64_t all = r->delivered + r->warm_delivered;
    double rate = r->span_s > 0 ? (double)r->delivered / r->span_s : 0;
    double dcpu = per_delivery_us(r->daemon_cpu_s, all);
    double bcpu = per_delivery_us(r->bench_cpu_s, all);
    if (json) {
        fanout_json(o, r);
        return;
    }
    printf("dialogue-bench: S=%u P=%u R=%g M=%llu B=%u warmup=%llu %s%s%s\n", o->subs, o->pubs,
           o->rate, (unsigned long long)o->messages, o->bytes, (unsigned long long)o->warmup,
           o->conn.grpc ? "plaintext, subscribers over gRPC"
                        : o->conn.plaintext ? "plaintext" : "TLS",
           o->conn.target ? ", server " : "", o->conn.target ? bench_target_name(o->conn.target) : "");
    printf("servers        subscribers on ");
    print_list(o, o->sub_srv, o->n_sub_srv);
    printf("; publishers on ");
    print_list(o, o->pub_srv, o->n_pub_srv);
    printf("\n");
    printf("delivered      %llu / %llu (%.2f%%), out of order %llu, lost connections %u\n",
           (unsigned long long)r->delivered, (unsigned long long)r->expected,
           r->expected ? 100.0 * (double)r->delivered / (double)r->expected : 0.0,
           (unsigned long long)r->out_of_order, r->lost_peers);
    printf("triggers       %llu sent, %llu acked, %llu failed\n",
           (unsigned long long)r->published, (unsigned long long)r->acked,
           (unsigned long long)r->trigger_errors);
    printf("latency (us)   p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
           us(bench_hist_quantile(h, 0.50)), us(bench_hist_quantile(h, 0.90)),
           us(bench_hist_quantile(h, 0.99)), us(bench_hist_quantile(h, 0.999)), us(h->max));
    if (r->events) {
        printf("per event      %llu events: %llu reached every subscriber, %llu at least one; "
               "lost deliveries %llu\n", (unsigned long long)r->n_events,
               (unsigned long long)r->events_complete, (unsigned long long)r->events_reached,
               (unsigned long long)(r->expected - r->delivered));
        printf("  to the last subscriber (ms)    p50 %.2f  p99 %.2f  max %.2f\n",
               us(r->last.p50) / 1000, us(r->last.p99) / 1000, us(r->last.max) / 1000);
        printf("  to the median subscriber (ms)  p50 %.2f  p99 %.2f  max %.2f\n",
               us(r->median.p50) / 1000, us(r->median.p99) / 1000, us(r->median.max) / 1000);
        if (r->bad_event_ids > 0)
            printf("  %llu measured events carried no valid event id\n",
                   (unsigned long long)r->bad_event_ids);
    }
    printf("throughput     %.0f deliveries/s over %.3f s\n", rate, r->span_s);
    /* One line per server only when there is more than one: with one, the
     * lines above say it all. */
    for (uint32_t i = 0; o->n_servers > 1 && i < o->n_servers; i++) {
        const bench_fanout_server *fs = &r->server[i];
        printf("  %s: subscribers %u, publishers %u", o->servers[i].name, fs->subs, fs->pubs);
        if (fs->subs > 0)
            printf("; delivered %llu / %llu", (unsigned long long)fs->delivered,
                   (unsigned long long)(fs->subs * o->messages));
        if (fs->hist.count > 0)
            printf(", latency (us) p50 %.0f  p99 %.0f  max %.0f",
                   us(bench_hist_quantile(&fs->hist, 0.50)),
                   us(bench_hist_quantile(&fs->hist, 0.99)), us(fs->hist.max));
        if (fs->pubs > 0)
            printf("; triggers %llu sent, %llu acked, %llu failed",
                   (unsigned long long)fs->published, (unsigned long long)fs->acked,
                   (unsigned long long)fs->trigger_errors);
        if (fs->lost > 0)
            printf("; %u connections lost", fs->lost);
        printf("\n");
    }
    if (o->n_pids > 0) {
        if (dcpu >= 0)
            printf("daemon CPU     %.3f s, %.2f us per delivery", r->daemon_cpu_s, dcpu);
        else
            printf("daemon CPU     unknown");
        if (o->n_pids > 1 || dcpu < 0) {
            printf(" (");
            print_pids_cpu(o, r->pid_cpu_s);
            printf(")");
        }
        printf("\n");
    }
    printf("bench CPU      %.3f s, %.2f us per delivery\n", r->bench_cpu_s, bcpu);
    if (r->other_cpu_s >= 0)
        printf("other CPU      %.3f s used by other processes during the run (noise)\n",
               r->other_cpu_s);
    if (r->timed_out)
        printf("stopped by the time limit (%.0f s)\n", o->time_limit);
    else if (r->drained)
        printf("stopped: nothing was delivered or answered for %u ms (see --drain-ms)\n",
               o->drain_ms);
    if (r->error[0])
        printf("first problem: %s\n", r->error);
}

static void scale_json(const bench_opts *o, const bench_scale_result *r, double rate,
                       double per) {
    json_t *j = json_object();
    json_object_set_new(j, "mode", json_string("connections"));
    json_object_set_new(j, "tls", json_boolean(!o->conn.plaintext));
    json_object_set_new(j, "transport", json_string(o->conn.websocket ? "ws" : "native"));
    json_object_set_new(j, "target", json_string(bench_target_name(o->conn.target)));
    json_object_set_new(j, "connections", json_integer(r->wanted));
    json_object_set_new(j, "connected", json_integer(r->connected));
    json_object_set_new(j, "failed", json_integer(r->failed));
    json_object_set_new(j, "lost", json_integer(r->lost));
    json_object_set_new(j, "threads", json_integer(o->conn_threads));
    json_object_set_new(j, "concurrency", json_integer(o->concurrency));
    json_object_set_new(j, "connect_s", json_real(r->connect_s));
    json_object_set_new(j, "connects_per_s", json_real(rate));
    json_object_set_new(j, "daemon_rss_before_kib",
                        r->have_rss ? json_integer((json_int_t)r->rss_before_kib) : json_null());
    json_object_set_new(j, "daemon_rss_after_kib",
                        r->have_rss ? json_integer((json_int_t)r->rss_after_kib) : json_null());
    json_object_set_new(j, "daemon_rss_per_connection_bytes",
                        r->have_rss && r->connected ? json_real(per) : json_null());
    json_object_set_new(j, "daemon_cpu_s", num_or_null(r->daemon_cpu_s));
    json_object_set_new(j, "bench_cpu_s", json_real(r->bench_cpu_s));
    json_object_set_new(j, "other_cpu_s", num_or_null(r->other_cpu_s));
    json_object_set_new(j, "nofile", json_integer((json_int_t)r->nofile));
    json_object_set_new(j, "timed_out", json_boolean(r->timed_out));
    json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
    json_object_set_new(j, "sub_servers", list_json(o, o->sub_srv, o->n_sub_srv));
    json_t *servers = json_array();
    for (uint32_t i = 0; i < o->n_servers; i++) {
        const bench_scale_server *ss = &r->server[i];
        json_t *s = json_object();
        json_object_set_new(s, "server", json_string(o->servers[i].name));
        json_object_set_new(s, "connections", json_integer(ss->wanted));
        json_object_set_new(s, "connected", json_integer(ss->connected));
        json_object_set_new(s, "failed", json_integer(ss->failed));
        json_object_set_new(s, "lost", json_integer(ss->lost));
        json_array_append_new(servers, s);
    }
    json_object_set_new(j, "servers", servers);
    json_t *daemons = json_array();
    for (uint32_t i = 0; i < o->n_pids; i++) {
        json_t *d = json_object();
        int rss = r->pid_have_rss[i];
        json_object_set_new(d, "pid", json_integer(o->daemon_pids[i]));
        json_object_set_new(d, "cpu_s", num_or_null(r->pid_cpu_s[i]));
        json_object_set_new(d, "rss_before_kib",
                            rss ? json_integer((json_int_t)r->pid_rss_before_kib[i]) : json_null());
        json_object_set_new(d, "rss_after_kib",
                            rss ? json_integer((json_int_t)r->pid_rss_after_kib[i]) : json_null());
        json_array_append_new(daemons, d);
    }
    json_object_set_new(j, "daemons", daemons);
    print_json(j);
}

void bench_report_scale(const bench_opts *o, const bench_scale_result *r, int json) {
    double rate = r->connect_s > 0 ? (double)r->connected / r->connect_s : 0;
    double per = -1;
    if (r->have_rss && r->connected > 0)
        per = ((double)r->rss_after_kib - (double)r->rss_before_kib) * 1024.0 / r->connected;
    if (json) {
        scale_json(o, r, rate, per);
        return;
    }
    printf("dialogue-bench: %u idle %s connections, %u threads, %u attempts at a time each\n",
           r->wanted, o->conn.plaintext ? "plaintext" : "TLS", o->conn_threads, o->concurrency);
    printf("servers        ");
    print_list(o, o->sub_srv, o->n_sub_srv);
    printf("\n");
    printf("connected      %u (failed %u, lost %u) in %.3f s: %.0f connections/s\n",
           r->connected, r->failed, r->lost, r->connect_s, rate);
    for (uint32_t i = 0; o->n_servers > 1 && i < o->n_servers; i++)
        printf("  %s: %u of %u connected (failed %u, lost %u)\n", o->servers[i].name,
               r->server[i].connected, r->server[i].wanted, r->server[i].failed,
               r->server[i].lost);
    if (r->have_rss)
        printf("daemon RSS     %llu KiB -> %llu KiB: %.0f bytes per connection%s\n",
               (unsigned long long)r->rss_before_kib, (unsigned long long)r->rss_after_kib, per,
               o->n_pids > 1 ? " (sum of the pids)" : "");
    for (uint32_t i = 0; i < o->n_pids && (o->n_pids > 1 || !r->have_rss); i++) {
        if (r->pid_have_rss[i])
            printf("  pid %d RSS %llu KiB -> %llu KiB\n", o->daemon_pids[i],
                   (unsigned long long)r->pid_rss_before_kib[i],
                   (unsigned long long)r->pid_rss_after_kib[i]);
        else
            printf("  pid %d RSS unreadable\n", o->daemon_pids[i]);
    }
    if (o->n_pids > 0) {
        if (r->daemon_cpu_s >= 0)
            printf("daemon CPU     %.3f s while connecting", r->daemon_cpu_s);
        else
            printf("daemon CPU     unknown");
        if (o->n_pids > 1 || r->daemon_cpu_s < 0) {
            printf(" (");
            print_pids_cpu(o, r->pid_cpu_s);
            printf(")");
        }
        printf("\n");
    }
    printf("bench CPU      %.3f s while connecting\n", r->bench_cpu_s);
    if (r->other_cpu_s >= 0)
        printf("other CPU      %.3f s used by other processes meanwhile (noise)\n",
               r->other_cpu_s);
    if (r->timed_out)
        printf("stopped by the time limit (%.0f s)\n", o->time_limit);
    if (r->error[0])
        printf("first problem: %s\n", r->error);
}
