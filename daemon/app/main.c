/* main.c: dialogued's command line: flags (and later the config file) to
 * server options, run the loop, exit 0 on a clean shutdown. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "auth.h"
#include "boot.h"
#include "check.h"
#include "config.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "jwtcache.h"
#include "metrics.h"
#include "notify.h"
#include "room.h"
#include "jwt.h"
#include "logout.h"
#include "server.h"
#include "web.h"
#include "tlsctx.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dialogued [options]\n"
        "  --config FILE          YAML configuration (see docs/config.md)\n"
        "  -t, --check-config     load and check the configuration and everything it\n"
        "                         names (certificates, keys, CRLs, schemas, rules),\n"
        "                         print every error as file:line:col and exit: 0 when\n"
        "                         it is valid, 1 when not; nothing listens\n"
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
        "  --web-root DIR         serve the web page from DIR (config http.web_root)\n"
        "  --admin HOST:PORT      admin listener: /metrics, /healthz, /readyz (config\n"
        "                         admin.listen); port 0 = any free port\n"
        "  --alert-threshold X    override every metrics alert threshold (demos, tests)\n"
        "  --log-level LEVEL      error|warn|info|debug [info]\n"
        "  --log-format FORMAT    text|json: json writes one object a line (ts, level,\n"
        "                         msg; conn and peer on connection lines) [text]\n"
        "  --log-file FILE        append the log to FILE instead of stderr; SIGUSR1\n"
        "                         opens it again (logrotate)\n"
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

/* What the command line sets: it wins over the file, at start and after
 * every reload. */
typedef struct flags {
    const char *listen, *cert, *key, *web_root, *log_file, *admin;
    int log_format; /* -1 = the file's */
    int plain, anon, level, hb_set, uring, sendth_set, osslrec;
    uint32_t sendth, max_frame, hsto, hb, maxconn;
} flags;

/* The flags that a reload could otherwise undo (limits, anonymous, log
 * level, TLS files). */
static void apply_flags(dlg_server *srv, const flags *f) {
    /* --listen, --plaintext, --cert and --key are about the first listener. */
    if (f->listen)
        srv->opts.listen[0].address = f->listen;
    if (f->plain)
        srv->opts.listen[0].plaintext = 1;
    if (f->cert)
        srv->opts.listen[0].cert_file = f->cert;
    if (f->key)
        srv->opts.listen[0].key_file = f->key;
    if (f->anon)
        srv->opts.allow_anonymous = 1;
    if (f->level >= 0)
        srv->log.level = f->level;
    if (f->max_frame)
        srv->opts.max_frame = f->max_frame;
    if (f->hsto)
        srv->opts.handshake_timeout_ms = f->hsto;
    if (f->maxconn)
        srv->opts.max_connections = f->maxconn;
    if (f->hb_set)
        srv->opts.heartbeat_ms = f->hb;
    if (f->web_root)
        srv->opts.web_root = f->web_root;
}

/* The start config lives until exit (the metrics source, history store and
 * cluster borrow from it); a reloaded one lives until the next reload
 * replaces it. */
typedef struct reload_ctx {
    const char *path;
    dlg_config *current;        /* the last reloaded config; NULL = the start one */
    const flags *fl;
    const char *const *schemas; /* --schema files */
    size_t n_schemas;
} reload_ctx;

/* SIGHUP: load the file again and apply it, any number of times. Everything
 * that can fail is built first (TLS context, token verifier, schemas); if
 * one fails nothing changes and the log says why. Applied: log level,
 * limits, room rules (join, trigger, rate, delivery, max_size), new rooms,
 * auto_join, client certificate roles, the listener's certificate, key,
 * client CA and CRLs, token keys and their checks, schemas. Memberships the
 * new rules refuse end. Not applied until restart: listener addresses,
 * metrics, history, cluster, a room's event list; rooms removed from the
 * file stay. Established connections keep their session. */
static void on_reload(dlg_server *srv, void *ud) {
    reload_ctx *rc = ud;
    char err[1024];
    if (rc->path == NULL) {
        dlg_log_warn(&srv->log, "SIGHUP: no --config file to reload");
        return;
    }
    dlg_config *cfg = NULL;
    dlg_schema *schema = NULL;
    struct dlg_jwt_verifier *jwt = NULL;
    SSL_CTX *ssl[DLG_MAX_LISTENERS] = {0};
    dlg_web *web = NULL;
    if (dlg_config_load(rc->path, &cfg, err, sizeof(err)) != 0)
        goto refused;
    /* The page's files are read again: a new build of the page is served
     * after a reload. */
    const char *web_root = rc->fl->web_root ? rc->fl->web_root : cfg->http.web_root;
    if (web_root != NULL && dlg_web_load(web_root, &web, err, sizeof(err)) != 0)
        goto refused;
    if (dlg_boot_schema(cfg, rc->schemas, rc->n_schemas, srv->rooms, &schema, err,
                        sizeof(err)) != 0 ||
        dlg_auth_verifier(cfg, &srv->log, &jwt, err, sizeof(err)) != 0)
        goto refused;
    /* The listeners of the new file, the command line's winning: the same
     * addresses (they change only with a restart), new TLS contexts. */
    dlg_server_opts lis = srv->opts;
    dlg_boot_listeners(&lis, cfg);
    lis.listen[0].address = srv->opts.listen[0].address;
    lis.listen[0].plaintext = srv->opts.listen[0].plaintext;
    if (rc->fl->cert)
        lis.listen[0].cert_file = rc->fl->cert;
    if (rc->fl->key)
        lis.listen[0].key_file = rc->fl->key;
    if (lis.n_listen != srv->n_listeners) {
        snprintf(err, sizeof(err), "%s: listen: %zu listener(s) where %zu run (listeners change "
                                   "only with a restart)", rc->path, lis.n_listen,
                 srv->n_listeners);
        goto refused;
    }
    for (size_t i = 0; i < lis.n_listen; i++) {
        const dlg_listener_conf *l = &lis.listen[i];
        if (i > 0 && (strcmp(l->address, srv->listeners[i].conf.address) != 0 ||
                      l->plaintext != srv->listeners[i].conf.plaintext)) {
            snprintf(err, sizeof(err), "%s: listen[%zu]: %s (%s) where %s (%s) runs (listeners "
                                       "change only with a restart)", rc->path, i, l->address,
                     l->plaintext ? "plaintext" : "TLS", srv->listeners[i].conf.address,
                     srv->listeners[i].conf.plaintext ? "plaintext" : "TLS");
            goto refused;
        }
        int n = snprintf(err, sizeof(err), "TLS: listener %s: ", l->address);
        if (!l->plaintext && dlg_tlsctx_new(l, srv->opts.tls_own_records, &ssl[i], err + n,
                                            sizeof(err) - (size_t)n) != 0)
            goto refused;
    }

    /* Nothing can fail from here on. */
    for (size_t i = 0; i < srv->n_listeners; i++) {
        dlg_listener *l = &srv->listeners[i];
        if (ssl[i]) {
            if (l->ssl_ctx != NULL)
                srv->counters.tls_resumed += (uint64_t)SSL_CTX_sess_hits(l->ssl_ctx);
            SSL_CTX_free(l->ssl_ctx); /* each connection holds its own reference */
            l->ssl_ctx = ssl[i];
        }
        l->conf = lis.listen[i];
    }
    dlg_jwt_verifier_free(srv->jwt);
    srv->jwt = jwt;
    /* Tokens verified with the old keys and claims are checked afresh. */
    dlg_jwt_cache_clear(srv->jwt_cache);
    dlg_schema_free(srv->schema);
    srv->schema = schema;
    dlg_web_free(srv->web); /* responses being sent hold their own references */
    srv->web = web;
    srv->cfg = cfg;
    srv->log.level = cfg->log_level;
    dlg_boot_limits(&srv->opts, cfg);
    memcpy(srv->opts.listen, lis.listen, sizeof(lis.listen));
    apply_flags(srv, rc->fl);
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
    /* Nothing points into the config this one replaces any more. */
    dlg_config_free(rc->current);
    rc->current = cfg;
    dlg_log_info(&srv->log, "SIGHUP: reloaded %s (%zu rooms; %zu membership(s) ended)", rc->path,
                 cfg->n_rooms, cut);
    return;
refused:
    dlg_log_error(&srv->log, "SIGHUP: %s; keeping the running configuration", err);
    for (size_t i = 0; i < DLG_MAX_LISTENERS; i++)
        SSL_CTX_free(ssl[i]);
    dlg_schema_free(schema);
    dlg_jwt_verifier_free(jwt);
    dlg_web_free(web);
    dlg_config_free(cfg);
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

/* --check-config: every error on stderr, the verdict as the exit code. */
static int check_config(const char *path, const flags *fl, const char *const *schemas,
                        size_t n_schemas) {
    int own = -1;
    const char *v = getenv("DIALOGUE_TLS_OWN_RECORDS");
    if (fl->osslrec)
        own = 0;
    else if (v && (strcmp(v, "1") == 0 || strcmp(v, "0") == 0))
        own = v[0] == '1';
    dlg_check_opts o = {.config = path, .schemas = schemas, .n_schemas = n_schemas,
                        .cert = fl->cert, .key = fl->key, .plaintext = fl->plain,
                        .tls_own_records = own, .log_file = fl->log_file,
                        .web_root = fl->web_root, .admin = fl->admin};
    int n = dlg_check_config(&o, stderr);
    const char *what = path ? path : "(command line)";
    if (n < 0) {
        fprintf(stderr, "dialogued: checking %s: %s\n", what, dlg_strerror(n));
        return 1;
    }
    if (n > 0) {
        fprintf(stderr, "dialogued: configuration %s has %d error(s)\n", what, n);
        return 1;
    }
    printf("dialogued: configuration %s is valid\n", what);
    return 0;
}

int main(int argc, char **argv) {
    enum { O_CONFIG = 256, O_LISTEN, O_CERT, O_KEY, O_PLAIN, O_PORTFILE, O_SCHEMA, O_ANON,
           O_MAXFRAME, O_HSTO, O_HB, O_ALERT, O_MAXCONN, O_LOGLEVEL, O_URING, O_NOURING,
           O_SENDTH, O_OSSLREC, O_WEBROOT, O_VERSION, O_HELP, O_LOGFORMAT, O_LOGFILE, O_ADMIN,
           O_CHECK = 't' };
    static const struct option longopts[] = {
        {"config", required_argument, 0, O_CONFIG},
        {"check-config", no_argument, 0, O_CHECK},
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
        {"log-format", required_argument, 0, O_LOGFORMAT},
        {"log-file", required_argument, 0, O_LOGFILE},
        {"io-uring", no_argument, 0, O_URING},
        {"no-io-uring", no_argument, 0, O_NOURING},
        {"send-threads", required_argument, 0, O_SENDTH},
        {"tls-openssl-records", no_argument, 0, O_OSSLREC},
        {"web-root", required_argument, 0, O_WEBROOT},
        {"admin", required_argument, 0, O_ADMIN},
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
    flags fl = {.level = -1, .log_format = -1};
    double f_alert = 0;
    int f_alert_set = 0, check = 0;
    int o;
    while ((o = getopt_long(argc, argv, "t", longopts, NULL)) != -1) {
        switch (o) {
        case O_CONFIG: config_path = optarg; break;
        case O_CHECK: check = 1; break;
        case O_LISTEN: fl.listen = optarg; break;
        case O_CERT: fl.cert = optarg; break;
        case O_KEY: fl.key = optarg; break;
        case O_PLAIN: fl.plain = 1; break;
        case O_PORTFILE: srv.opts.port_file = optarg; break;
        case O_SCHEMA:
            if (n_schemas == 64) {
                fprintf(stderr, "dialogued: at most 64 --schema files\n");
                return 2;
            }
            schemas[n_schemas++] = optarg;
            break;
        case O_ANON: fl.anon = 1; break;
        case O_URING: fl.uring = 1; break;
        case O_NOURING: fl.uring = -1; break;
        case O_OSSLREC: fl.osslrec = 1; break;
        case O_WEBROOT: fl.web_root = optarg; break;
        case O_ADMIN: fl.admin = optarg; break;
        case O_SENDTH:
            if (parse_u32("--send-threads", optarg, 0, &fl.sendth) != 0)
                return 2;
            if (fl.sendth > DLG_SEND_THREADS_MAX) {
                fprintf(stderr, "dialogued: --send-threads: %u is more than %u\n", fl.sendth,
                        DLG_SEND_THREADS_MAX);
                return 2;
            }
            fl.sendth_set = 1;
            break;
        case O_MAXFRAME:
            if (parse_u32("--max-frame", optarg, 64, &fl.max_frame) != 0)
                return 2;
            break;
        case O_HSTO:
            if (parse_u32("--handshake-timeout-ms", optarg, 1, &fl.hsto) != 0)
                return 2;
            break;
        case O_HB:
            if (parse_u32("--heartbeat-ms", optarg, 0, &fl.hb) != 0)
                return 2;
            fl.hb_set = 1;
            break;
        case O_MAXCONN:
            if (parse_u32("--max-connections", optarg, 1, &fl.maxconn) != 0)
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
            if ((fl.level = dlg_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "dialogued: --log-level: \"%s\" is not error|warn|info|debug\n", optarg);
                return 2;
            }
            break;
        case O_LOGFORMAT:
            if (strcmp(optarg, "text") == 0 || strcmp(optarg, "json") == 0) {
                fl.log_format = optarg[0] == 'j' ? DLG_CFG_LOG_JSON : DLG_CFG_LOG_TEXT;
                break;
            }
            fprintf(stderr, "dialogued: --log-format: \"%s\" is not text|json\n", optarg);
            return 2;
        case O_LOGFILE: fl.log_file = optarg; break;
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
    if (check)
        return check_config(config_path, &fl, schemas, n_schemas);
    char err[1024];
    dlg_config *cfg = NULL;
    int rc = config_path ? dlg_config_load(config_path, &cfg, err, sizeof(err))
                         : dlg_config_new_default(&cfg);
    if (rc != 0) {
        /* Invalid config: a clear error and no half-started daemon. */
        fprintf(stderr, "dialogued: %s\n", config_path ? err : dlg_strerror(rc));
        return 1;
    }
    /* The log's place and form first: everything after this is logged. */
    dlg_logout logout = {0};
    const char *log_file = fl.log_file ? fl.log_file : cfg->log_file;
    int log_format = fl.log_format >= 0 ? fl.log_format : cfg->log_format;
    if (dlg_logout_open(&logout, &srv.log, log_file, log_format == DLG_CFG_LOG_JSON, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "dialogued: %s\n", *err ? err : "out of memory opening the log");
        dlg_config_free(cfg);
        return 1;
    }
    srv.logout = log_file ? &logout : NULL;
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
    apply_flags(&srv, &fl);
    if (dlg_boot_admin(&srv, cfg, fl.admin, err, sizeof(err)) != 0) {
        fprintf(stderr, "dialogued: %s\n", err);
        goto fail_cfg;
    }
    /* Lets a test runner take every existing test through either send path
     * or record layer without editing their configs; flags still win. */
    env_switch(&srv.log, "DIALOGUE_IO_URING", &srv.opts.io_uring);
    if (fl.uring)
        srv.opts.io_uring = fl.uring > 0;
    if (fl.sendth_set)
        srv.opts.send_threads = fl.sendth;
    env_switch(&srv.log, "DIALOGUE_TLS_OWN_RECORDS", &srv.opts.tls_own_records);
    if (fl.osslrec)
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
        dlg_alert_rule *rules = dlg_calloc(cfg->metrics.n_alerts + 1, sizeof(*rules));
        for (size_t i = 0; rules && i < cfg->metrics.n_alerts; i++) {
            const dlg_config_alert *a = &cfg->metrics.alerts[i];
            rules[i].metric = a->metric;
            rules[i].op = a->op;
            rules[i].threshold = f_alert_set ? f_alert : a->threshold;
            rules[i].severity = a->severity;
            rules[i].cooldown_s = a->cooldown_seconds;
            rules[i].message = dlg_strdup(a->message);
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
    reload_ctx reload = {.path = config_path, .fl = &fl, .schemas = schemas,
                         .n_schemas = n_schemas};
    srv.reload_cb = on_reload;
    srv.reload_ud = &reload;
    /* Listening, the store open and the cluster caught up (dlg_server_start
     * waits for all of them): clients can come. */
    char status[256];
    snprintf(status, sizeof(status), "READY=1\nSTATUS=serving on %s port %d",
             srv.listeners[0].conf.address, srv.listeners[0].port);
    dlg_notify(status);
    uv_run(&loop, UV_RUN_DEFAULT);
    dlg_server_free(&srv);
    dlg_config_free(cfg);
    dlg_config_free(reload.current);
    rc = uv_loop_close(&loop);
    if (rc != 0)
        dlg_log_warn(&srv.log, "loop closed with handles open: %s", uv_strerror(rc));
    dlg_log_info(&srv.log, "stopped");
    dlg_logout_close(&logout, &srv.log);
    return 0;

fail_cfg:
    dlg_server_free(&srv);
    dlg_config_free(cfg);
    dlg_logout_close(&logout, &srv.log);
    return 1;
}
