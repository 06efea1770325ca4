/* bench.h: dialogue-bench's run options and results, shared by the
 * fan-out workload (fanout.c), the connection-scale run (scale.c) and the
 * command line (main.c). */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>

#include "hist.h"
#include "peer.h"

/* At most this many entries in the subscribers' list (--server) and in the
 * publishers' list (--pub-server), and at most this many --daemon-pid. */
#define BENCH_MAX_SERVERS 16
/* Distinct servers of both lists together. */
#define BENCH_MAX_ENDPOINTS (2 * BENCH_MAX_SERVERS)

/* One daemon address the run connects to; main.c fills name, host and
 * conn.port, bench_opts_bind_servers the rest of conn. */
typedef struct bench_server {
    char name[280];               /* HOST:PORT as given: reports and errors */
    char host[256];               /* without the brackets of [V6] */
    /* The run's bench_opts.conn with this host and port: what the peers on
     * this server are created with. conn.host points into host, so a
     * bench_server (and the bench_opts holding it) is never copied once
     * bench_opts_bind_servers has run. */
    bench_conn_opts conn;
} bench_server;

/* Everything a run needs; filled by main.c, read-only during the run. */
typedef struct bench_opts {
    bench_conn_opts conn;         /* shared by every server; host and port unused */
    /* Distinct servers of both lists, in order of first mention. */
    bench_server servers[BENCH_MAX_ENDPOINTS];
    uint32_t n_servers;
    /* Subscriber i connects to servers[sub_srv[i % n_sub_srv]]; publisher j
     * to servers[pub_srv[j % n_pub_srv]]; connection k of a scale run like
     * subscriber k. Entries may repeat. */
    uint32_t sub_srv[BENCH_MAX_SERVERS], n_sub_srv;
    uint32_t pub_srv[BENCH_MAX_SERVERS], n_pub_srv;
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
    int daemon_pids[BENCH_MAX_SERVERS]; /* one per node; distinct */
    uint32_t n_pids;              /* 0 = no daemon CPU or RSS */
    uint32_t connections;         /* > 0: connection-scale mode */
    uint32_t hold_ms;             /* keep the scale connections open this long */
    uint32_t conn_threads;        /* loop threads for the scale connections */
    /* Per-event statistics (--per-event): every measured event carries its
     * id in payload bytes 8..15 (bytes >= 16), and each subscriber's
     * delivery time of each event is kept (messages x subs samples). */
    int per_event;
    /* The reconnect storm (--storm, storm.c): subs clients and one
     * publisher at `rate`; the caller restarts the daemon once the ready
     * file exists and writes the new daemon's pid into the pid file. */
    int storm;
    const char *storm_pid_file;   /* holds the current daemon's pid */
    const char *storm_ready_file; /* made when the restart may come */
    uint32_t storm_warm_ms;       /* publishing before the ready file */
    uint32_t storm_tail_ms;       /* publishing after every client is back */
} bench_opts;

/* At most this many samples (messages x subscribers) in a --per-event run:
 * 8 bytes each are kept until the end. */
#define BENCH_PER_EVENT_MAX_SAMPLES (32ull << 20)

/* What the peers on one server did (fan-out runs). */
typedef struct bench_fanout_server {
    uint32_t subs, pubs;          /* peers assigned to it */
    uint32_t lost;                /* of those, connections lost after setup */
    uint64_t delivered;           /* measured events its subscribers received */
    uint64_t warm_delivered;
    uint64_t published, acked, trigger_errors; /* its publishers' triggers */
    bench_hist hist;              /* its subscribers' latency, ns */
} bench_fanout_server;

/* One measured event of a --per-event run. Times run from the publisher's
 * stamp (taken just before its trigger call) to a subscriber's event
 * callback. */
typedef struct bench_event_stat {
    uint32_t delivered;           /* subscribers that got it */
    uint64_t last_ns;             /* to the last of them; 0 when none */
    uint64_t median_ns;           /* to the median one (nearest rank); 0 when none */
} bench_event_stat;

/* p50, p99 and max (nearest rank) over the events of one statistic. */
typedef struct bench_over_events {
    uint64_t p50, p99, max;       /* ns */
} bench_over_events;

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
    double daemon_cpu_s;          /* sum over the pids; < 0 when any is unknown */
    double pid_cpu_s[BENCH_MAX_SERVERS]; /* per o->daemon_pids[i]; < 0 unknown */
    double bench_cpu_s;
    double other_cpu_s;           /* host CPU used by other processes; < 0 unknown */
    bench_fanout_server server[BENCH_MAX_ENDPOINTS]; /* per o->servers[i] */
    int timed_out;                /* the time limit ended the run */
    int drained;                  /* nothing arrived for drain_ms: gave up waiting */
    char error[512];              /* first failure, "" if none */
    /* --per-event only (else NULL and 0): events[i] for event id i, and
     * the spread of their statistics over the events that reached at
     * least one subscriber. events is malloc'ed: bench_fanout_result_free. */
    bench_event_stat *events;
    uint64_t n_events;            /* = o->messages */
    uint64_t events_complete;     /* events every subscriber got */
    uint64_t events_reached;      /* events at least one subscriber got */
    uint64_t bad_event_ids;       /* measured events whose id was out of range */
    bench_over_events last, median;
} bench_fanout_result;

/* One server's share of a connection-scale run. */
typedef struct bench_scale_server {
    uint32_t wanted, connected, failed, lost;
} bench_scale_server;

typedef struct bench_scale_result {
    uint32_t wanted, connected, failed, lost;
    bench_scale_server server[BENCH_MAX_ENDPOINTS]; /* per o->servers[i] */
    double connect_s;             /* first attempt to the last Welcome */
    uint64_t rss_before_kib, rss_after_kib; /* sums over the pids */
    int have_rss;                 /* every pid's RSS was read, before and after */
    uint64_t pid_rss_before_kib[BENCH_MAX_SERVERS], pid_rss_after_kib[BENCH_MAX_SERVERS];
    int pid_have_rss[BENCH_MAX_SERVERS];
    double daemon_cpu_s;          /* during the connects, summed; < 0 when any unknown */
    double pid_cpu_s[BENCH_MAX_SERVERS]; /* per o->daemon_pids[i]; < 0 unknown */
    double bench_cpu_s;
    double other_cpu_s;           /* host CPU used by other processes; < 0 unknown */
    uint64_t nofile;              /* the open-file limit the bench ran with */
    int timed_out;
    char error[512];
} bench_scale_result;

/* What a reconnect storm (bench_storm_run) measured. Times in seconds. */
typedef struct bench_storm_result {
    uint32_t clients;
    double setup_s;               /* making the clients (their TLS contexts) */
    double connect_s;             /* connecting and joining them, before the storm */
    int old_pid, new_pid;         /* the daemon before and after the restart */
    uint64_t new_start_ns;        /* when the new one started (bench_now_ns clock) */
    uint32_t went_down, back;     /* clients that lost their connection; that came back */
    int all_back;
    double back_s;                /* new daemon start -> the last client back */
    double first_welcome_s;       /* new daemon start -> the first Welcome */
    double storm_s;               /* ready file -> every client back */
    double daemon_cpu_s;          /* the new daemon's CPU until then; < 0 unknown */
    double daemon_start_cpu_s;    /* of that, what it used before the pid file named it
                                     (written once it listens: its start) */
    uint64_t published, acked, refused, skipped;
    uint64_t expected_events;     /* acked, or received by any client */
    uint64_t unacked_delivered;   /* of those, never acked (Ack lost in the restart) */
    uint64_t delivered;           /* distinct events received, all clients */
    uint64_t missing, clients_missing, duplicates, clients_dup;
    uint64_t out_of_order, gaps, left, bad_ids;
    uint64_t failed_attempts;     /* connection attempts that failed, all clients */
    uint32_t max_reconnects;
    uint64_t nofile;
    int timed_out;
    char error[512];
} bench_storm_result;

/* Runs the reconnect storm (storm.c). Returns like bench_fanout_run. */
int bench_storm_run(const bench_opts *o, bench_storm_result *r);
void bench_report_storm(const bench_opts *o, const bench_storm_result *r, int json);

/* Points every o->servers[i].conn at o->conn's settings with that
 * server's host and port. Call once the options are final and o is at its
 * last address; the peers then borrow o->servers[i].conn. */
void bench_opts_bind_servers(bench_opts *o);

/* Reads the CPU seconds of every o->daemon_pids[i] into cpu[i] (< 0 for a
 * pid that cannot be read). Returns their sum, or -1 when any is unknown
 * or there is none. */
double bench_daemons_cpu(const bench_opts *o, double cpu[BENCH_MAX_SERVERS]);

/* Prints the report of a run on stdout, as text or as one JSON object. */
void bench_report_fanout(const bench_opts *o, const bench_fanout_result *r, int json);
void bench_report_scale(const bench_opts *o, const bench_scale_result *r, int json);

/* Runs the fan-out workload: connects o->subs subscribers and o->pubs
 * publishers (spread over the servers as bench_opts says), publishes warm-up then measured messages, and fills r.
 * Returns 0 when the run took place (r says how well it went), or a
 * DLG_E* code when it could not start (r->error says why). Bounded by
 * o->time_limit. */
int bench_fanout_run(const bench_opts *o, bench_fanout_result *r);

/* Releases what bench_fanout_run allocated in r (not r itself). */
void bench_fanout_result_free(bench_fanout_result *r);

/* Opens o->connections idle connections (spread over o->sub_srv) and measures how fast they come up
 * and what they cost the daemon. Returns like bench_fanout_run. */
int bench_scale_run(const bench_opts *o, bench_scale_result *r);

#endif
