/* main.c: dialogue-bench's command line: options and environment to
 * bench_opts (server lists, daemon pids), the run, and its exit status;
 * report.c prints the results. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "dialogue/client.h"
#include "dlg_err.h"
#include "target.h"

enum { EXIT_COMPLETE = 0, EXIT_INCOMPLETE = 1, EXIT_USAGE = 2, EXIT_SETUP = 3 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: dialogue-bench [options]\n"
        "Fan-out benchmark for dialogued: S subscribers and P publishers in one room;\n"
        "publishers stamp each payload with CLOCK_MONOTONIC, subscribers record the\n"
        "latency. With --connections N: open N idle connections instead.\n"
        "\n"
        "  --server HOST:PORT[,HOST:PORT...]\n"
        "                       daemon(s) [$DIALOGUE_SERVER, else 127.0.0.1:3000]; repeatable,\n"
        "                       up to 16: subscriber i (and scale connection i) uses server\n"
        "                       i mod n, publisher j server j mod n\n"
        "  --pub-server HOST:PORT[,HOST:PORT...]\n"
        "                       the publishers' servers instead (repeatable, up to 16):\n"
        "                       --server B --pub-server A measures fan-out from node A to\n"
        "                       subscribers on node B\n"
        "  --ca FILE            CA of the server certificate [$DIALOGUE_CA, else system store]\n"
        "  --token TOKEN        JWT for Hello [$DIALOGUE_TOKEN, else anonymous]\n"
        "  --plaintext          the daemon listens without TLS (INSECURE; loopback benchmarks)\n"
        "  --transport T        native (dialogue/1), ws (WebSocket, GET /v1/ws) or grpc\n"
        "                       (subscribers on gRPC Subscribe streams, publishers on\n"
        "                       dialogue/1); ws and grpc need --plaintext [native]\n"
        "  --grpc               the same as --transport grpc\n"
        "  --target T           the kind of server: dialogue, or nats (nats-server), redis\n"
        "                       (redis-server, plaintext only) or mqtt (mosquitto), driven\n"
        "                       the same way through their Debian client libraries: events\n"
        "                       on subjects ROOM.EVENT, ROOM:EVENT, ROOM/EVENT [dialogue]\n"
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
        "  --per-event          also time each measured event to its last and its median\n"
        "                       subscriber, and report p50/p99/max of both over the events\n"
        "                       (needs -B 16 or more: the event id follows the send time)\n"
        "  --storm              reconnect storm: S clients (library defaults: reconnect,\n"
        "                       recovery) and one publisher at -R events/s in --room (which\n"
        "                       must keep history); once events flow the bench makes\n"
        "                       --ready-file, the caller restarts the daemon and writes the\n"
        "                       new pid into --daemon-pid-file; reports the time until every\n"
        "                       client is back and recovered, and every missing or\n"
        "                       duplicate event per client\n"
        "  --daemon-pid-file F  (--storm) file holding the current daemon's pid\n"
        "  --ready-file F       (--storm) made when the restart may come\n"
        "  --storm-warm-ms N    (--storm) publishing before the ready file [2000]\n"
        "  --storm-tail-ms N    (--storm) publishing after every client is back [2000]\n"
        "  --daemon-pid PID     also report the daemon's CPU time (and RSS with --connections);\n"
        "                       repeatable, one per node (up to 16): per pid and summed\n"
        "  --json               print one JSON object instead of text\n"
        "  --version, --help\n"
        "Latency is valid across nodes: publishers stamp and subscribers read\n"
        "CLOCK_MONOTONIC in this one process, whichever servers they talk to.\n"
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

/* HOST:PORT or [V6]:PORT into host (without the brackets) and port.
 * 0, or -1 with nothing printed. */
static int parse_hostport(const char *v, size_t len, char *host, size_t hostlen,
                          unsigned *port) {
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (v[i] == ':')
            colon = v + i;
    if (colon == NULL || colon == v)
        return -1;
    size_t hl = (size_t)(colon - v);
    const char *h = v;
    if (v[0] == '[') {
        if (hl < 3 || v[hl - 1] != ']')
            return -1;
        h = v + 1;
        hl -= 2;
    }
    /* The port: 1..65535, digits only, up to the end of the entry. */
    const char *p = colon + 1;
    size_t pl = len - (size_t)(p - v);
    unsigned long x = 0;
    if (pl == 0 || pl > 5)
        return -1;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        x = x * 10 + (unsigned long)(p[i] - '0');
    }
    if (x < 1 || x > 65535 || hl >= hostlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = (unsigned)x;
    return 0;
}

/* Appends the servers of one list value (HOST:PORT[,HOST:PORT...]) to a
 * rotation (list, *n: indices into o->servers), adding servers not seen
 * before to o->servers. what names the source in messages (--server,
 * DIALOGUE_SERVER). 0, or -1 after printing which entry is wrong. */
static int add_servers(bench_opts *o, const char *what, const char *v, uint32_t *list,
                       uint32_t *n) {
    const char *e = v;
    for (;;) {
        const char *comma = strchr(e, ',');
        size_t len = comma ? (size_t)(comma - e) : strlen(e);
        char host[sizeof(o->servers[0].host)];
        unsigned port;
        if (len == 0) {
            fprintf(stderr, "dialogue-bench: %s: empty entry in \"%s\"\n", what, v);
            return -1;
        }
        if (parse_hostport(e, len, host, sizeof(host), &port) != 0) {
            fprintf(stderr, "dialogue-bench: %s: \"%.*s\" is not HOST:PORT (port 1..65535)\n",
                    what, (int)len, e);
            return -1;
        }
        if (*n >= BENCH_MAX_SERVERS) {
            fprintf(stderr, "dialogue-bench: %s: \"%.*s\" is one server too many (at most %d)\n",
                    what, (int)len, e, BENCH_MAX_SERVERS);
            return -1;
        }
        /* The same address twice is one server: its peers are reported
         * together. */
        uint32_t k = 0;
        while (k < o->n_servers &&
               !(o->servers[k].conn.port == port && strcmp(o->servers[k].host, host) == 0))
            k++;
        if (k == o->n_servers) {
            bench_server *sv = &o->servers[o->n_servers++];
            snprintf(sv->name, sizeof(sv->name), "%.*s", (int)len, e);
            memcpy(sv->host, host, strlen(host) + 1);
            sv->conn.port = port;
        }
        list[(*n)++] = k;
        if (comma == NULL)
            return 0;
        e = comma + 1;
    }
}

/* Appends the pids of one --daemon-pid value (PID[,PID...]). 0 or -1
 * after printing which entry is wrong. */
static int add_pids(bench_opts *o, const char *v) {
    const char *e = v;
    for (;;) {
        const char *comma = strchr(e, ',');
        size_t len = comma ? (size_t)(comma - e) : strlen(e);
        char buf[32];
        uint64_t pid;
        snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), e);
        if (len >= sizeof(buf) || parse_u64("--daemon-pid", buf, 1, 0x7fffffff, &pid) != 0) {
            if (len >= sizeof(buf))
                fprintf(stderr, "dialogue-bench: --daemon-pid: \"%.*s\" is not a pid\n",
                        (int)len, e);
            return -1;
        }
        for (uint32_t i = 0; i < o->n_pids; i++) {
            if (o->daemon_pids[i] == (int)pid) {
                /* Counting one daemon twice would double its CPU. */
                fprintf(stderr, "dialogue-bench: --daemon-pid: pid %s is given twice\n", buf);
                return -1;
            }
        }
        if (o->n_pids >= BENCH_MAX_SERVERS) {
            fprintf(stderr, "dialogue-bench: --daemon-pid: %s is one pid too many (at most %d)\n",
                    buf, BENCH_MAX_SERVERS);
            return -1;
        }
        o->daemon_pids[o->n_pids++] = (int)pid;
        if (comma == NULL)
            return 0;
        e = comma + 1;
    }
}

int main(int argc, char **argv) {
    enum { O_SERVER = 256, O_PUB_SERVER, O_CA, O_TOKEN, O_PLAIN, O_TRANSPORT, O_GRPC, O_ROOM,
           O_EVENT, O_WARMUP, O_WINDOW, O_SUBT, O_PUBT, O_CONNS, O_CONNT, O_CONC, O_HOLD, O_TLIMIT,
           O_DRAIN, O_PID, O_PER_EVENT, O_JSON, O_HELP, O_VERSION, O_STORM, O_PIDFILE,
           O_READY, O_SWARM, O_STAIL, O_TARGET };
    static const struct option longopts[] = {
        {"server", required_argument, 0, O_SERVER},
        {"pub-server", required_argument, 0, O_PUB_SERVER},
        {"ca", required_argument, 0, O_CA},
        {"token", required_argument, 0, O_TOKEN},
        {"plaintext", no_argument, 0, O_PLAIN},
        {"transport", required_argument, 0, O_TRANSPORT},
        {"grpc", no_argument, 0, O_GRPC},
        {"target", required_argument, 0, O_TARGET},
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
        {"per-event", no_argument, 0, O_PER_EVENT},
        {"storm", no_argument, 0, O_STORM},
        {"daemon-pid-file", required_argument, 0, O_PIDFILE},
        {"ready-file", required_argument, 0, O_READY},
        {"storm-warm-ms", required_argument, 0, O_SWARM},
        {"storm-tail-ms", required_argument, 0, O_STAIL},
        {"json", no_argument, 0, O_JSON},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    bench_opts o; /* never copied: bench_opts_bind_servers points into it */
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
    o.storm_warm_ms = 2000;
    o.storm_tail_ms = 2000;
    const char *server = getenv("DIALOGUE_SERVER");
    o.conn.ca = getenv("DIALOGUE_CA");
    o.conn.token = getenv("DIALOGUE_TOKEN");
    int json = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "S:P:R:M:B:", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case O_SERVER:
            bad = add_servers(&o, "--server", optarg, o.sub_srv, &o.n_sub_srv);
            break;
        case O_PUB_SERVER:
            bad = add_servers(&o, "--pub-server", optarg, o.pub_srv, &o.n_pub_srv);
            break;
        case O_CA: o.conn.ca = optarg; break;
        case O_TOKEN: o.conn.token = optarg; break;
        case O_PLAIN: o.conn.plaintext = 1; break;
        case O_TRANSPORT:
            if (strcmp(optarg, "ws") == 0) {
                o.conn.websocket = 1;
            } else if (strcmp(optarg, "grpc") == 0) {
                o.conn.grpc = 1;
            } else if (strcmp(optarg, "native") != 0) {
                fprintf(stderr, "dialogue-bench: --transport: \"%s\" is none of native, ws, "
                                "grpc\n", optarg);
                bad = 1;
            }
            break;
        case O_GRPC: o.conn.grpc = 1; break;
        case O_TARGET:
            if ((o.conn.target = bench_target_parse(optarg)) < 0) {
                fprintf(stderr, "dialogue-bench: --target: \"%s\" is none of dialogue, nats, "
                                "redis, mqtt\n", optarg);
                bad = 1;
            }
            break;
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
        case O_PID: bad = add_pids(&o, optarg); break;
        case O_PER_EVENT: o.per_event = 1; break;
        case O_STORM: o.storm = 1; break;
        case O_PIDFILE: o.storm_pid_file = optarg; break;
        case O_READY: o.storm_ready_file = optarg; break;
        case O_SWARM: bad = parse_u32("--storm-warm-ms", optarg, 0, 3600000, &o.storm_warm_ms); break;
        case O_STAIL: bad = parse_u32("--storm-tail-ms", optarg, 0, 3600000, &o.storm_tail_ms); break;
        case O_JSON: json = 1; break;
        case O_VERSION: printf("dialogue-bench %s\n", DLG_VERSION); return EXIT_COMPLETE;
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
    if (o.n_sub_srv == 0) {
        int from_env = server && *server;
        if (add_servers(&o, from_env ? "DIALOGUE_SERVER" : "default server",
                        from_env ? server : "127.0.0.1:3000", o.sub_srv, &o.n_sub_srv) != 0)
            return EXIT_USAGE;
    }
    if (o.n_pub_srv > 0 && o.connections > 0) {
        fprintf(stderr, "dialogue-bench: --pub-server has no use with --connections "
                        "(the connections use the --server list)\n");
        return EXIT_USAGE;
    }
    if (o.n_pub_srv == 0) {
        memcpy(o.pub_srv, o.sub_srv, sizeof(o.sub_srv));
        o.n_pub_srv = o.n_sub_srv;
    }
    if (o.conn.websocket && !o.conn.plaintext) {
        fprintf(stderr, "dialogue-bench: --transport ws needs --plaintext (the bench's WebSocket "
                        "client has no TLS; TLS costs the daemon the same on both transports)\n");
        return EXIT_USAGE;
    }
    if (o.conn.grpc && o.conn.websocket) {
        fprintf(stderr, "dialogue-bench: --transport: one of ws and grpc\n");
        return EXIT_USAGE;
    }
    if (o.conn.grpc && (!o.conn.plaintext || o.connections > 0)) {
        fprintf(stderr, "dialogue-bench: --grpc needs --plaintext (its subscribers speak HTTP/2 "
                        "with prior knowledge) and has no use with --connections\n");
        return EXIT_USAGE;
    }
    if (o.conn.target != BENCH_TARGET_DIALOGUE) {
        const char *why = bench_target_no_tls(o.conn.target);
        if (o.conn.grpc || o.conn.websocket) {
            fprintf(stderr, "dialogue-bench: --target %s: --transport is dialogued's only\n",
                    bench_target_name(o.conn.target));
            return EXIT_USAGE;
        }
        if (why && !o.conn.plaintext) {
            fprintf(stderr, "dialogue-bench: --target %s needs --plaintext: %s\n",
                    bench_target_name(o.conn.target), why);
            return EXIT_USAGE;
        }
    }
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
    if (o.per_event && o.connections == 0) {
        if (o.bytes < 16) {
            fprintf(stderr, "dialogue-bench: --per-event needs --bytes 16 or more (the send "
                            "time and the event id), not %u\n", o.bytes);
            return EXIT_USAGE;
        }
        if (o.messages > BENCH_PER_EVENT_MAX_SAMPLES / o.subs) {
            fprintf(stderr, "dialogue-bench: --per-event keeps every delivery: %llu messages "
                            "x %u subscribers is over %llu\n", (unsigned long long)o.messages,
                    o.subs, (unsigned long long)BENCH_PER_EVENT_MAX_SAMPLES);
            return EXIT_USAGE;
        }
    }
    /* Rate mode sends without waiting for Acks; the window is only a cap
     * against a daemon that stops answering. */
    o.conn.max_pending = o.rate > 0 ? 1u << 20 : o.window;
    bench_opts_bind_servers(&o);
    /* A subscriber that went away must not kill the bench through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    if (o.storm) {
        if (o.conn.plaintext || o.connections > 0 || o.rate <= 0 || o.bytes < 16) {
            fprintf(stderr, "dialogue-bench: --storm needs TLS (libdialogue-client), -R above "
                            "0, -B 16 or more, and no --connections\n");
            return EXIT_USAGE;
        }
        bench_storm_result *sr = malloc(sizeof(*sr));
        if (sr == NULL) {
            fprintf(stderr, "dialogue-bench: out of memory\n");
            return EXIT_SETUP;
        }
        int rc = bench_storm_run(&o, sr);
        if (rc != 0) {
            fprintf(stderr, "dialogue-bench: %s\n", sr->error);
            free(sr);
            return EXIT_SETUP;
        }
        bench_report_storm(&o, sr, json);
        int complete = sr->all_back && !sr->timed_out && sr->missing == 0 &&
                       sr->duplicates == 0 && sr->out_of_order == 0 && sr->gaps == 0 &&
                       sr->left == 0 && sr->bad_ids == 0;
        free(sr);
        return complete ? EXIT_COMPLETE : EXIT_INCOMPLETE;
    }
    if (o.connections > 0) {
        bench_scale_result r;
        int rc = bench_scale_run(&o, &r);
        if (rc != 0) {
            fprintf(stderr, "dialogue-bench: %s\n", r.error);
            return EXIT_SETUP;
        }
        bench_report_scale(&o, &r, json);
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
        bench_fanout_result_free(r);
        free(r);
        return EXIT_SETUP;
    }
    bench_report_fanout(&o, r, json);
    int complete = r->delivered == r->expected && r->trigger_errors == 0 && r->lost_peers == 0 &&
                   !r->timed_out && r->bad_event_ids == 0;
    bench_fanout_result_free(r);
    free(r);
    return complete ? EXIT_COMPLETE : EXIT_INCOMPLETE;
}
