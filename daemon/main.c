/* main.c: dialogued's command line: flags (and later the config file) to
 * server options, run the loop, exit 0 on a clean shutdown. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "boot.h"
#include "config.h"
#include "dlg_err.h"
#include "metrics.h"
#include "room.h"
#include "server.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dialogued [options]\n"
        "  --config FILE          YAML configuration (see docs/config.md)\n"
        "  --listen HOST:PORT     listen address [127.0.0.1:3000]; port 0 = any free port\n"
        "  --cert FILE            TLS certificate chain (PEM)\n"
        "  --key FILE             TLS private key (PEM); never logged\n"
        "  --plaintext            no TLS (INSECURE: loopback benchmarks only)\n"
        "  --port-file FILE       write the bound port here once listening\n"
        "  --schema FILE          load an event descriptor set (repeatable)\n"
        "  --allow-anonymous      accept clients without credentials (no roles)\n"
        "  --max-frame BYTES      largest frame accepted [1048576]\n"
        "  --handshake-timeout-ms N  TLS handshake + Hello deadline [2000]\n"
        "  --heartbeat-ms N       ping idle clients this often; 0 = off [30000]\n"
        "  --max-connections N    connections served at once [10000]\n"
        "  --io-uring             send to clients through io_uring (config io_uring,\n"
        "                         on by default); falls back to write() if the kernel\n"
        "                         refuses it\n"
        "  --no-io-uring          send with write() and send threads instead\n"
        "  --send-threads N       threads sharing each loop turn's sends, the loop\n"
        "                         thread included; 0 = one per core [config or 0]\n"
        "  --tls-openssl-records  keep TLS 1.3 sessions on OpenSSL's record layer\n"
        "                         (config tls_own_records: false)\n"
        "  --alert-threshold X    override every metrics alert threshold (demos, tests)\n"
        "  --log-level LEVEL      error|warn|info|debug [info]\n"
        "  --version, --help\n"
        "environment: DIALOGUE_IO_URING=1|0 forces io_uring on or off over the config\n"
        "  (for running test suites both ways); --io-uring / --no-io-uring still win;\n"
        "  DIALOGUE_TLS_OWN_RECORDS=1|0 likewise for tls_own_records\n");
}

/* Sets *on from the environment variable name when it is "1" or "0"; any
 * other non-empty value is ignored with a warning naming it. */
static void env_switch(dlg_log *log, const char *name, int *on) {
    const char *v = getenv(name);
    if (v && (strcmp(v, "1") == 0 || strcmp(v, "0") == 0))
        *on = v[0] == '1';
    else if (v && *v)
        dlg_log_warn(log, "%s=\"%s\" ignored (1 or 0)", name, v);
}

/* Every config loaded, kept until exit: the server borrows strings from them. */
typedef struct reload_ctx {
    const char *path;
    dlg_config *cfgs[64];
    size_t n;
} reload_ctx;

/* SIGHUP: load the file again; if it is invalid keep running on the old one.
 * Applied: log level, limits, room rules (join, trigger, rate, delivery,
 * max_size), new rooms, auto_join, the listener's certificate, key, client
 * CA and CRLs (for new connections). Not applied until restart: listener
 * addresses, schemas, token keys, metrics, a room's event list; rooms
 * removed from the file stay. */
static void on_reload(dlg_server *srv, void *ud) {
    reload_ctx *rc = ud;
    char err[1024];
    if (rc->path == NULL) {
        dlg_log_warn(&srv->log, "SIGHUP: no --config file to reload");
        return;
    }
    if (rc->n == sizeof(rc->cfgs) / sizeof(rc->cfgs[0])) {
        dlg_log_error(&srv->log, "SIGHUP: too many reloads; restart the daemon");
        return;
    }
    dlg_config *cfg = NULL;
    if (dlg_config_load(rc->path, &cfg, err, sizeof(err)) != 0) {
        dlg_log_error(&srv->log, "SIGHUP: %s; keeping the running configuration", err);
        return;
    }
    for (size_t i = 0; i < cfg->n_rooms; i++) {
        if (dlg_boot_check_events(srv, &cfg->rooms[i], rc->path, err, sizeof(err)) != 0) {
            dlg_log_error(&srv->log, "SIGHUP: %s; keeping the running configuration", err);
            dlg_config_free(cfg);
            return;
        }
    }
    /* Certificate, key, client CA and CRLs: a new TLS context, built (and
     * so checked) before anything else changes. */
    dlg_server_opts tls = srv->opts;
    dlg_boot_tls_files(&tls, cfg);
    if (dlg_server_reload_tls(srv, &tls, err, sizeof(err)) != 0) {
        dlg_log_error(&srv->log, "SIGHUP: TLS: %s; keeping the running configuration", err);
        dlg_config_free(cfg);
        return;
    }
    dlg_boot_tls_files(&srv->opts, cfg);
    rc->cfgs[rc->n++] = cfg;
    srv->cfg = cfg;
    srv->log.level = cfg->log_level;
    dlg_boot_limits(&srv->opts, cfg);
    for (size_t i = 0; i < cfg->n_rooms; i++) {
        const dlg_config_room *cr = &cfg->rooms[i];
        dlg_room *r = dlg_rooms_find(srv->rooms, cr->id);
        int e = r ? dlg_boot_room_rules(r, cr, err, sizeof(err))
                  : dlg_boot_add_room(srv, cr, rc->path, err, sizeof(err));
        if (e != 0)
            dlg_log_error(&srv->log, "SIGHUP: room %s: %s", cr->id, err);
    }
    /* A role a room's join rule no longer names ends the memberships it
     * gave: no more events, history or member lists for them. */
    size_t cut = dlg_access_recheck(srv, "access revoked by a configuration reload");
    dlg_log_info(&srv->log, "SIGHUP: reloaded %s (%zu rooms; %zu membership(s) ended)", rc->path,
                 cfg->n_rooms, cut);
}

static int parse_u32(const char *flag, const char *v, uint32_t min, uint32_t *out) {
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == 0 || *end || x < min || x > 0xFFFFFFFFull) {
        fprintf(stderr, "dialogued: %s: \"%s\" is not a number >= %u\n", flag, v, min);
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

int main(int argc, char **argv) {
    enum { O_CONFIG = 256, O_LISTEN, O_CERT, O_KEY, O_PLAIN, O_PORTFILE, O_SCHEMA, O_ANON,
           O_MAXFRAME, O_HSTO, O_HB, O_ALERT, O_MAXCONN, O_LOGLEVEL, O_URING, O_NOURING,
           O_SENDTH, O_OSSLREC, O_VERSION, O_HELP };
    static const struct option longopts[] = {
        {"config", required_argument, 0, O_CONFIG},
        {"listen", required_argument, 0, O_LISTEN},
        {"cert", required_argument, 0, O_CERT},
        {"key", required_argument, 0, O_KEY},
        {"plaintext", no_argument, 0, O_PLAIN},
        {"port-file", required_argument, 0, O_PORTFILE},
        {"schema", required_argument, 0, O_SCHEMA},
        {"allow-anonymous", no_argument, 0, O_ANON},
        {"max-frame", required_argument, 0, O_MAXFRAME},
        {"handshake-timeout-ms", required_argument, 0, O_HSTO},
        {"heartbeat-ms", required_argument, 0, O_HB},
        {"alert-threshold", required_argument, 0, O_ALERT},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"log-level", required_argument, 0, O_LOGLEVEL},
        {"io-uring", no_argument, 0, O_URING},
        {"no-io-uring", no_argument, 0, O_NOURING},
        {"send-threads", required_argument, 0, O_SENDTH},
        {"tls-openssl-records", no_argument, 0, O_OSSLREC},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    dlg_server_opts_default(&srv.opts);
    srv.log.level = DLG_LOG_INFO;
    srv.log.prog = "dialogued";
    const char *config_path = NULL;
    const char *schemas[64];
    size_t n_schemas = 0;
    const char *f_listen = NULL, *f_cert = NULL, *f_key = NULL;
    int f_plain = 0, f_anon = 0, f_level = -1, f_hb_set = 0, f_uring = 0, f_sendth_set = 0;
    int f_osslrec = 0;
    uint32_t f_sendth = 0;
    uint32_t f_max_frame = 0, f_hsto = 0, f_hb = 0, f_maxconn = 0;
    double f_alert = 0;
    int f_alert_set = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case O_CONFIG: config_path = optarg; break;
        case O_LISTEN: f_listen = optarg; break;
        case O_CERT: f_cert = optarg; break;
        case O_KEY: f_key = optarg; break;
        case O_PLAIN: f_plain = 1; break;
        case O_PORTFILE: srv.opts.port_file = optarg; break;
        case O_SCHEMA:
            if (n_schemas == 64) {
                fprintf(stderr, "dialogued: at most 64 --schema files\n");
                return 2;
            }
            schemas[n_schemas++] = optarg;
            break;
        case O_ANON: f_anon = 1; break;
        case O_URING: f_uring = 1; break;
        case O_NOURING: f_uring = -1; break;
        case O_OSSLREC: f_osslrec = 1; break;
        case O_SENDTH:
            if (parse_u32("--send-threads", optarg, 0, &f_sendth) != 0)
                return 2;
            if (f_sendth > DLG_SEND_THREADS_MAX) {
                fprintf(stderr, "dialogued: --send-threads: %u is more than %u\n", f_sendth,
                        DLG_SEND_THREADS_MAX);
                return 2;
            }
            f_sendth_set = 1;
            break;
        case O_MAXFRAME:
            if (parse_u32("--max-frame", optarg, 64, &f_max_frame) != 0)
                return 2;
            break;
        case O_HSTO:
            if (parse_u32("--handshake-timeout-ms", optarg, 1, &f_hsto) != 0)
                return 2;
            break;
        case O_HB:
            if (parse_u32("--heartbeat-ms", optarg, 0, &f_hb) != 0)
                return 2;
            f_hb_set = 1;
            break;
        case O_MAXCONN:
            if (parse_u32("--max-connections", optarg, 1, &f_maxconn) != 0)
                return 2;
            break;
        case O_ALERT: {
            char *end;
            f_alert = strtod(optarg, &end);
            if (*optarg == 0 || *end) {
                fprintf(stderr, "dialogued: --alert-threshold: \"%s\" is not a number\n", optarg);
                return 2;
            }
            f_alert_set = 1;
            break;
        }
        case O_LOGLEVEL:
            if ((f_level = dlg_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "dialogued: --log-level: \"%s\" is not error|warn|info|debug\n", optarg);
                return 2;
            }
            break;
        case O_VERSION: printf("dialogued %s\n", DLG_VERSION); return 0;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dialogued: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    char err[1024];
    dlg_config *cfg = NULL;
    int rc = config_path ? dlg_config_load(config_path, &cfg, err, sizeof(err))
                         : dlg_config_new_default(&cfg);
    if (rc != 0) {
        /* Invalid config: a clear error and no half-started daemon. */
        fprintf(stderr, "dialogued: %s\n", config_path ? err : dlg_strerror(rc));
        return 1;
    }
    if (n_schemas > 0) {
        if (dlg_schema_new(&srv.schema) != 0)
            goto fail_cfg;
        for (size_t i = 0; i < n_schemas; i++) {
            if (dlg_schema_load_file(srv.schema, schemas[i], err, sizeof(err)) != 0) {
                fprintf(stderr, "dialogued: %s\n", err);
                goto fail_cfg;
            }
        }
    }
    if (dlg_boot_apply(&srv, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "dialogued: %s\n", err);
        goto fail_cfg;
    }
    /* Flags win over the file. */
    if (f_listen)
        srv.opts.listen = f_listen;
    if (f_cert)
        srv.opts.cert_file = f_cert;
    if (f_key)
        srv.opts.key_file = f_key;
    if (f_plain)
        srv.opts.plaintext = 1;
    if (f_anon)
        srv.opts.allow_anonymous = 1;
    if (f_level >= 0)
        srv.log.level = f_level;
    if (f_max_frame)
        srv.opts.max_frame = f_max_frame;
    if (f_hsto)
        srv.opts.handshake_timeout_ms = f_hsto;
    if (f_maxconn)
        srv.opts.max_connections = f_maxconn;
    if (f_hb_set)
        srv.opts.heartbeat_ms = f_hb;
    /* Lets a test runner take every existing test through either send path
     * or record layer without editing their configs; flags still win. */
    env_switch(&srv.log, "DIALOGUE_IO_URING", &srv.opts.io_uring);
    if (f_uring)
        srv.opts.io_uring = f_uring > 0;
    if (f_sendth_set)
        srv.opts.send_threads = f_sendth;
    env_switch(&srv.log, "DIALOGUE_TLS_OWN_RECORDS", &srv.opts.tls_own_records);
    if (f_osslrec)
        srv.opts.tls_own_records = 0;
    /* A peer that vanishes must not kill the daemon through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Sends that a full socket did not take are copied into buffers of up
     * to 64 KiB that live until the socket drains. With glibc's default
     * (give back the top of the heap once 128 KiB of it is free) a busy
     * daemon shrinks and regrows its heap every turn and pays a page fault
     * per 4 KiB each time: 18% of W2's daemon time (docs/benchmarks.md).
     * The sweep still gives memory back after connections come and go
     * (malloc_trim in server.c). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (dlg_server_start(&srv, &loop) != 0) {
        uv_loop_close(&loop);
        goto fail_cfg;
    }
    dlg_metrics metrics;
    if (cfg->metrics.enabled) {
        dlg_alert_rule *rules = calloc(cfg->metrics.n_alerts + 1, sizeof(*rules));
        for (size_t i = 0; rules && i < cfg->metrics.n_alerts; i++) {
            const dlg_config_alert *a = &cfg->metrics.alerts[i];
            rules[i].metric = a->metric;
            rules[i].op = a->op;
            rules[i].threshold = f_alert_set ? f_alert : a->threshold;
            rules[i].severity = a->severity;
            rules[i].cooldown_s = a->cooldown_seconds;
            rules[i].message = strdup(a->message);
        }
        if (rules == NULL ||
            dlg_metrics_start(&metrics, &srv, cfg->metrics.room, cfg->metrics.interval_ms,
                              rules, cfg->metrics.n_alerts) != 0) {
            dlg_log_error(&srv.log, "metrics: cannot start (out of memory)");
            dlg_server_stop(&srv);
        } else {
            srv.metrics = &metrics;
            dlg_log_info(&srv.log, "metrics: every %u ms into room %s, %zu alert rule(s)",
                         metrics.interval_ms, metrics.room, metrics.n_rules);
        }
    }
    reload_ctx reload = {.path = config_path};
    srv.reload_cb = on_reload;
    srv.reload_ud = &reload;
    uv_run(&loop, UV_RUN_DEFAULT);
    dlg_server_free(&srv);
    dlg_config_free(cfg);
    for (size_t i = 0; i < reload.n; i++)
        dlg_config_free(reload.cfgs[i]);
    rc = uv_loop_close(&loop);
    if (rc != 0)
        dlg_log_warn(&srv.log, "loop closed with handles open: %s", uv_strerror(rc));
    dlg_log_info(&srv.log, "stopped");
    return 0;

fail_cfg:
    dlg_server_free(&srv);
    dlg_config_free(cfg);
    return 1;
}
