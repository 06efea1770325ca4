/* bench.h: dialogue-bench's run options and results, shared by the
 * fan-out workload (fanout.c), the connection-scale run (scale.c) and the
 * command line (main.c). */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>

#include "hist.h"
#include "peer.h"

/* Everything a run needs; filled by main.c, read-only during the run. */
typedef struct bench_opts {
    bench_conn_opts conn;
    const char *event;            /* measured event name */
    const char *warm_event;       /* warm-up event name (not measured) */
    uint32_t subs, pubs;
    double rate;                  /* msg/s over all publishers; 0 = windowed */
    uint64_t messages;            /* measured messages over all publishers */
    uint64_t warmup;              /* messages sent first, not measured */
    uint32_t bytes;               /* payload size, >= 8 */
    uint32_t window;              /* triggers in flight per publisher (rate 0) */
    uint32_t sub_threads, pub_threads;
    uint32_t concurrency;         /* connection attempts in flight per thread */
    double time_limit;            /* seconds, whole run */
    uint32_t drain_ms;            /* idle time after publishing that ends a run */
    int daemon_pid;               /* 0 = unknown */
    uint32_t connections;         /* > 0: connection-scale mode */
    uint32_t hold_ms;             /* keep the scale connections open this long */
    uint32_t conn_threads;        /* loop threads for the scale connections */
} bench_opts;

typedef struct bench_fanout_result {
    uint64_t expected;            /* subscribers x measured messages */
    uint64_t delivered;           /* measured events received */
    uint64_t warm_delivered;      /* warm-up events received */
    uint64_t out_of_order;        /* events whose room seq was not above the last */
    uint64_t published;           /* triggers sent, warm-up included */
    uint64_t acked;               /* triggers answered with an Ack */
    uint64_t trigger_errors;      /* triggers refused or lost */
    uint64_t window_full;         /* sends deferred because max_pending was reached */
    uint32_t lost_peers;          /* connections lost after setup */
    bench_hist hist;              /* latency, ns */
    double elapsed_s;             /* publish start to the end of the run */
    double span_s;                /* first measured send to last measured receive */
    double daemon_cpu_s;          /* < 0 when unknown */
    double bench_cpu_s;
    double other_cpu_s;           /* host CPU used by other processes; < 0 unknown */
    int timed_out;                /* the time limit ended the run */
    int drained;                  /* nothing arrived for drain_ms: gave up waiting */
    char error[512];              /* first failure, "" if none */
} bench_fanout_result;

typedef struct bench_scale_result {
    uint32_t wanted, connected, failed, lost;
    double connect_s;             /* first attempt to the last Welcome */
    uint64_t rss_before_kib, rss_after_kib;
    int have_rss;
    double daemon_cpu_s;          /* during the connects; < 0 when unknown */
    double bench_cpu_s;
    double other_cpu_s;           /* host CPU used by other processes; < 0 unknown */
    uint64_t nofile;              /* the open-file limit the bench ran with */
    int timed_out;
    char error[512];
} bench_scale_result;

/* Runs the fan-out workload: connects o->subs subscribers and o->pubs
 * publishers, publishes warm-up then measured messages, and fills r.
 * Returns 0 when the run took place (r says how well it went), or a
 * DLG_E* code when it could not start (r->error says why). Bounded by
 * o->time_limit. */
int bench_fanout_run(const bench_opts *o, bench_fanout_result *r);

/* Opens o->connections idle connections and measures how fast they come up
 * and what they cost the daemon. Returns like bench_fanout_run. */
int bench_scale_run(const bench_opts *o, bench_scale_result *r);

#endif
