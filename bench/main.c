/* main.c: dialogue-bench's command line: options and environment to
 * bench_opts, the run, and the report (text or --json). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench.h"
#include "dlg_err.h"

enum { EXIT_COMPLETE = 0, EXIT_INCOMPLETE = 1, EXIT_USAGE = 2, EXIT_SETUP = 3 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: dialogue-bench [options]\n"
        "Fan-out benchmark for dialogued: S subscribers and P publishers in one room;\n"
        "publishers stamp each payload with CLOCK_MONOTONIC, subscribers record the\n"
        "latency. With --connections N: open N idle connections instead.\n"
        "\n"
        "  --server HOST:PORT   daemon [$DIALOGUE_SERVER, else 127.0.0.1:3000]\n"
        "  --ca FILE            CA of the server certificate [$DIALOGUE_CA, else system store]\n"
        "  --token TOKEN        JWT for Hello [$DIALOGUE_TOKEN, else anonymous]\n"
        "  --plaintext          the daemon listens without TLS (INSECURE; loopback benchmarks)\n"
        "  --room ROOM          room to use; it must accept the events [bench]\n"
        "  --event NAME         measured event name [bench:tick]; warm-up uses bench:warmup\n"
        "  -S, --subscribers N  subscriber connections [10]\n"
        "  -P, --publishers N   publisher connections [1]\n"
        "  -R, --rate N         messages/s over all publishers; 0 = as fast as the window\n"
        "                       allows [1000]\n"
        "  -M, --messages N     measured messages over all publishers [1000]\n"
        "  -B, --bytes N        payload bytes, at least 8 (the send time) [128]\n"
        "  --warmup N           messages sent first and not measured [0]\n"
        "  --window N           triggers awaiting their Ack per publisher at rate 0 [512]\n"
        "  --sub-threads N      loop threads for subscribers [1]\n"
        "  --pub-threads N      loop threads for publishers [1]\n"
        "  --connections N      connection-scale mode: open N idle connections\n"
        "  --conn-threads N     loop threads opening them [2]\n"
        "  --concurrency N      connection attempts in flight per thread [64]\n"
        "  --hold-ms N          keep the scale connections open this long [0]\n"
        "  --time-limit SEC     end the run after this long, whatever happened [60]\n"
        "  --drain-ms N         once every trigger is answered, stop when nothing has\n"
        "                       arrived for this long [2000]\n"
        "  --daemon-pid PID     also report the daemon's CPU time (and RSS with --connections)\n"
        "  --json               print one JSON object instead of text\n"
        "  --help\n"
        "exit status: 0 complete (everything delivered / connected), 1 ran but incomplete,\n"
        "2 usage error, 3 could not set up the run\n");
}

static int parse_u64(const char *flag, const char *v, uint64_t min, uint64_t max,
                     uint64_t *out) {
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == 0 || *v == '-' || *end || x < min || x > max) {
        fprintf(stderr, "dialogue-bench: %s: \"%s\" is not a number in %llu..%llu\n", flag, v,
                (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_u32(const char *flag, const char *v, uint32_t min, uint32_t max,
                     uint32_t *out) {
    uint64_t x;
    if (parse_u64(flag, v, min, max, &x) != 0)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double min, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end || !(x >= min) || x > 1e9) {
        fprintf(stderr, "dialogue-bench: %s: \"%s\" is not a number >= %g\n", flag, v, min);
        return -1;
    }
    *out = x;
    return 0;
}

/* HOST:PORT or [V6]:PORT into host (owned by the caller's buffer) and port. */
static int parse_server(const char *v, char *host, size_t hostlen, unsigned *port) {
    const char *colon = strrchr(v, ':');
    const char *h = v;
    size_t hl;
    uint32_t p;
    if (colon == NULL || colon == v)
        goto bad;
    hl = (size_t)(colon - v);
    if (v[0] == '[') {
        if (hl < 3 || v[hl - 1] != ']')
            goto bad;
        h = v + 1;
        hl -= 2;
    }
    if (hl >= hostlen || parse_u32("--server port", colon + 1, 1, 65535, &p) != 0)
        goto bad;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = p;
    return 0;
bad:
    fprintf(stderr, "dialogue-bench: --server: \"%s\" is not HOST:PORT\n", v);
    return -1;
}

static double us(uint64_t ns) {
    return (double)ns / 1000.0;
}

static double per_delivery_us(double cpu_s, uint64_t n) {
    return cpu_s >= 0 && n > 0 ? cpu_s * 1e6 / (double)n : -1;
}

static json_t *num_or_null(double v) {
    return v >= 0 ? json_real(v) : json_null();
}

static int print_json(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (s == NULL) {
        fprintf(stderr, "dialogue-bench: out of memory for the JSON report\n");
        return -1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static void report_fanout(const bench_opts *o, const bench_fanout_result *r, int json) {
    const bench_hist *h = &r->hist;
    uint64_t all = r->delivered + r->warm_delivered;
    double rate = r->span_s > 0 ? (double)r->delivered / r->span_s : 0;
    double dcpu = per_delivery_us(r->daemon_cpu_s, all);
    double bcpu = per_delivery_us(r->bench_cpu_s, all);
    if (json) {
        json_t *j = json_object();
        json_object_set_new(j, "mode", json_string("fanout"));
        json_object_set_new(j, "tls", json_boolean(!o->conn.plaintext));
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
        json_t *lat = json_object();
        json_object_set_new(lat, "p50", json_real(us(bench_hist_quantile(h, 0.50))));
        json_object_set_new(lat, "p90", json_real(us(bench_hist_quantile(h, 0.90))));
        json_object_set_new(lat, "p99", json_real(us(bench_hist_quantile(h, 0.99))));
        json_object_set_new(lat, "p99_9", json_real(us(bench_hist_quantile(h, 0.999))));
        json_object_set_new(lat, "max", json_real(us(h->max)));
        json_object_set_new(lat, "mean",
                            json_real(h->count ? us(h->sum / h->count) : 0));
        json_object_set_new(j, "latency_us", lat);
        json_object_set_new(j, "deliveries_per_s", json_real(rate));
        json_object_set_new(j, "elapsed_s", json_real(r->elapsed_s));
        json_object_set_new(j, "span_s", json_real(r->span_s));
        json_object_set_new(j, "daemon_cpu_s", num_or_null(r->daemon_cpu_s));
        json_object_set_new(j, "bench_cpu_s", json_real(r->bench_cpu_s));
        json_object_set_new(j, "daemon_cpu_us_per_delivery", num_or_null(dcpu));
        json_object_set_new(j, "bench_cpu_us_per_delivery", num_or_null(bcpu));
        json_object_set_new(j, "other_cpu_s", num_or_null(r->other_cpu_s));
        json_object_set_new(j, "timed_out", json_boolean(r->timed_out));
        json_object_set_new(j, "drained", json_boolean(r->drained));
        json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
        print_json(j);
        return;
    }
    printf("dialogue-bench: S=%u P=%u R=%g M=%llu B=%u warmup=%llu %s\n", o->subs, o->pubs,
           o->rate, (unsigned long long)o->messages, o->bytes, (unsigned long long)o->warmup,
           o->conn.plaintext ? "plaintext" : "TLS");
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
    printf("throughput     %.0f deliveries/s over %.3f s\n", rate, r->span_s);
    if (dcpu >= 0)
        printf("daemon CPU     %.3f s, %.2f us per delivery\n", r->daemon_cpu_s, dcpu);
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

static void report_scale(const bench_opts *o, const bench_scale_result *r, int json) {
    double rate = r->connect_s > 0 ? (double)r->connected / r->connect_s : 0;
    double per = -1;
    if (r->have_rss && r->connected > 0)
        per = ((double)r->rss_after_kib - (double)r->rss_before_kib) * 1024.0 / r->connected;
    if (json) {
        json_t *j = json_object();
        json_object_set_new(j, "mode", json_string("connections"));
        json_object_set_new(j, "tls", json_boolean(!o->conn.plaintext));
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
        print_json(j);
        return;
    }
    printf("dialogue-bench: %u idle %s connections, %u threads, %u attempts at a time each\n",
           r->wanted, o->conn.plaintext ? "plaintext" : "TLS", o->conn_threads, o->concurrency);
    printf("connected      %u (failed %u, lost %u) in %.3f s: %.0f connections/s\n",
           r->connected, r->failed, r->lost, r->connect_s, rate);
    if (r->have_rss)
        printf("daemon RSS     %llu KiB -> %llu KiB: %.0f bytes per connection\n",
               (unsigned long long)r->rss_before_kib, (unsigned long long)r->rss_after_kib, per);
    if (r->daemon_cpu_s >= 0)
        printf("daemon CPU     %.3f s while connecting\n", r->daemon_cpu_s);
    printf("bench CPU      %.3f s while connecting\n", r->bench_cpu_s);
    if (r->other_cpu_s >= 0)
        printf("other CPU      %.3f s used by other processes meanwhile (noise)\n",
               r->other_cpu_s);
    if (r->timed_out)
        printf("stopped by the time limit (%.0f s)\n", o->time_limit);
    if (r->error[0])
        printf("first problem: %s\n", r->error);
}

int main(int argc, char **argv) {
    enum { O_SERVER = 256, O_CA, O_TOKEN, O_PLAIN, O_ROOM, O_EVENT, O_WARMUP, O_WINDOW,
           O_SUBT, O_PUBT, O_CONNS, O_CONNT, O_CONC, O_HOLD, O_TLIMIT, O_DRAIN, O_PID, O_JSON, O_HELP };
    static const struct option longopts[] = {
        {"server", required_argument, 0, O_SERVER},
        {"ca", required_argument, 0, O_CA},
        {"token", required_argument, 0, O_TOKEN},
        {"plaintext", no_argument, 0, O_PLAIN},
        {"room", required_argument, 0, O_ROOM},
        {"event", required_argument, 0, O_EVENT},
        {"subscribers", required_argument, 0, 'S'},
        {"publishers", required_argument, 0, 'P'},
        {"rate", required_argument, 0, 'R'},
        {"messages", required_argument, 0, 'M'},
        {"bytes", required_argument, 0, 'B'},
        {"warmup", required_argument, 0, O_WARMUP},
        {"window", required_argument, 0, O_WINDOW},
        {"sub-threads", required_argument, 0, O_SUBT},
        {"pub-threads", required_argument, 0, O_PUBT},
        {"connections", required_argument, 0, O_CONNS},
        {"conn-threads", required_argument, 0, O_CONNT},
        {"concurrency", required_argument, 0, O_CONC},
        {"hold-ms", required_argument, 0, O_HOLD},
        {"time-limit", required_argument, 0, O_TLIMIT},
        {"drain-ms", required_argument, 0, O_DRAIN},
        {"daemon-pid", required_argument, 0, O_PID},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    bench_opts o;
    memset(&o, 0, sizeof(o));
    o.event = "bench:tick";
    o.warm_event = "bench:warmup";
    o.conn.room = "bench";
    o.conn.connect_timeout_ms = 10000;
    o.subs = 10;
    o.pubs = 1;
    o.rate = 1000;
    o.messages = 1000;
    o.bytes = 128;
    o.window = 512;
    o.sub_threads = 1;
    o.pub_threads = 1;
    o.concurrency = 64;
    o.conn_threads = 2;
    o.time_limit = 60;
    o.drain_ms = 2000;
    const char *server = getenv("DIALOGUE_SERVER");
    o.conn.ca = getenv("DIALOGUE_CA");
    o.conn.token = getenv("DIALOGUE_TOKEN");
    int json = 0;
    uint64_t u64;
    int opt;
    while ((opt = getopt_long(argc, argv, "S:P:R:M:B:", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case O_SERVER: server = optarg; break;
        case O_CA: o.conn.ca = optarg; break;
        case O_TOKEN: o.conn.token = optarg; break;
        case O_PLAIN: o.conn.plaintext = 1; break;
        case O_ROOM: o.conn.room = optarg; break;
        case O_EVENT: o.event = optarg; break;
        case 'S': bad = parse_u32("--subscribers", optarg, 0, 1000000, &o.subs); break;
        case 'P': bad = parse_u32("--publishers", optarg, 1, 100000, &o.pubs); break;
        case 'R': bad = parse_double("--rate", optarg, 0, &o.rate); break;
        case 'M': bad = parse_u64("--messages", optarg, 1, 1ull << 40, &o.messages); break;
        case 'B': bad = parse_u32("--bytes", optarg, 8, 64u << 20, &o.bytes); break;
        case O_WARMUP: bad = parse_u64("--warmup", optarg, 0, 1ull << 40, &o.warmup); break;
        case O_WINDOW: bad = parse_u32("--window", optarg, 1, 1u << 20, &o.window); break;
        case O_SUBT: bad = parse_u32("--sub-threads", optarg, 1, 256, &o.sub_threads); break;
        case O_PUBT: bad = parse_u32("--pub-threads", optarg, 1, 256, &o.pub_threads); break;
        case O_CONNS: bad = parse_u32("--connections", optarg, 1, 1000000, &o.connections); break;
        case O_CONNT: bad = parse_u32("--conn-threads", optarg, 1, 256, &o.conn_threads); break;
        case O_CONC: bad = parse_u32("--concurrency", optarg, 1, 100000, &o.concurrency); break;
        case O_HOLD: bad = parse_u32("--hold-ms", optarg, 0, 3600000, &o.hold_ms); break;
        case O_TLIMIT: bad = parse_double("--time-limit", optarg, 0.1, &o.time_limit); break;
        case O_DRAIN: bad = parse_u32("--drain-ms", optarg, 1, 3600000, &o.drain_ms); break;
        case O_PID:
            bad = parse_u64("--daemon-pid", optarg, 1, 0x7fffffff, &u64);
            o.daemon_pid = (int)u64;
            break;
        case O_JSON: json = 1; break;
        case O_HELP: usage(stdout); return EXIT_COMPLETE;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "dialogue-bench: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    char host[256];
    if (parse_server(server && *server ? server : "127.0.0.1:3000", host, sizeof(host),
                     &o.conn.port) != 0)
        return EXIT_USAGE;
    o.conn.host = host;
    if (o.conn.ca && *o.conn.ca == 0)
        o.conn.ca = NULL;
    if (strcmp(o.event, o.warm_event) == 0) {
        fprintf(stderr, "dialogue-bench: --event cannot be %s (the warm-up event)\n", o.event);
        return EXIT_USAGE;
    }
    if (o.connections == 0 && o.subs == 0) {
        fprintf(stderr, "dialogue-bench: --subscribers must be at least 1\n");
        return EXIT_USAGE;
    }
    /* Rate mode sends without waiting for Acks; the window is only a cap
     * against a daemon that stops answering. */
    o.conn.max_pending = o.rate > 0 ? 1u << 20 : o.window;
    /* A subscriber that went away must not kill the bench through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    if (o.connections > 0) {
        bench_scale_result r;
        int rc = bench_scale_run(&o, &r);
        if (rc != 0) {
            fprintf(stderr, "dialogue-bench: %s\n", r.error);
            return EXIT_SETUP;
        }
        report_scale(&o, &r, json);
        return r.connected == r.wanted && r.lost == 0 && !r.timed_out ? EXIT_COMPLETE
                                                                       : EXIT_INCOMPLETE;
    }
    bench_fanout_result *r = malloc(sizeof(*r));
    if (r == NULL) {
        fprintf(stderr, "dialogue-bench: out of memory\n");
        return EXIT_SETUP;
    }
    int rc = bench_fanout_run(&o, r);
    if (rc != 0) {
        fprintf(stderr, "dialogue-bench: %s\n", r->error);
        free(r);
        return EXIT_SETUP;
    }
    report_fanout(&o, r, json);
    int complete = r->delivered == r->expected && r->trigger_errors == 0 && r->lost_peers == 0 &&
                   !r->timed_out;
    free(r);
    return complete ? EXIT_COMPLETE : EXIT_INCOMPLETE;
}
