/* main.c: dialogued's command line: flags (and later the config file) to
 * server options, run the loop, exit 0 on a clean shutdown. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
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
        "  --log-level LEVEL      error|warn|info|debug [info]\n"
        "  --version, --help\n");
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
           O_MAXFRAME, O_HSTO, O_HB, O_LOGLEVEL, O_VERSION, O_HELP };
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
        {"log-level", required_argument, 0, O_LOGLEVEL},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    dlg_server_opts_default(&srv.opts);
    srv.log.level = DLG_LOG_INFO;
    srv.log.prog = "dialogued";
    const char *schemas[64];
    size_t n_schemas = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case O_CONFIG:
            fprintf(stderr, "dialogued: --config is not supported yet\n");
            return 2;
        case O_LISTEN: srv.opts.listen = optarg; break;
        case O_CERT: srv.opts.cert_file = optarg; break;
        case O_KEY: srv.opts.key_file = optarg; break;
        case O_PLAIN: srv.opts.plaintext = 1; break;
        case O_PORTFILE: srv.opts.port_file = optarg; break;
        case O_SCHEMA:
            if (n_schemas == 64) {
                fprintf(stderr, "dialogued: at most 64 --schema files\n");
                return 2;
            }
            schemas[n_schemas++] = optarg;
            break;
        case O_ANON: srv.opts.allow_anonymous = 1; break;
        case O_MAXFRAME:
            if (parse_u32("--max-frame", optarg, 64, &srv.opts.max_frame) != 0)
                return 2;
            break;
        case O_HSTO:
            if (parse_u32("--handshake-timeout-ms", optarg, 1, &srv.opts.handshake_timeout_ms) != 0)
                return 2;
            break;
        case O_HB:
            if (parse_u32("--heartbeat-ms", optarg, 0, &srv.opts.heartbeat_ms) != 0)
                return 2;
            break;
        case O_LOGLEVEL:
            if ((srv.log.level = dlg_log_level_parse(optarg)) < 0) {
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
    if (n_schemas > 0) {
        char err[512];
        if (dlg_schema_new(&srv.schema) != 0)
            return 1;
        for (size_t i = 0; i < n_schemas; i++) {
            if (dlg_schema_load_file(srv.schema, schemas[i], err, sizeof(err)) != 0) {
                fprintf(stderr, "dialogued: %s\n", err);
                dlg_schema_free(srv.schema);
                return 1;
            }
        }
    }
    /* A peer that vanishes must not kill the daemon through SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (dlg_server_start(&srv, &loop) != 0) {
        dlg_server_free(&srv);
        uv_loop_close(&loop);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    dlg_server_free(&srv);
    int rc = uv_loop_close(&loop);
    if (rc != 0)
        dlg_log_warn(&srv.log, "loop closed with handles open: %s", uv_strerror(rc));
    dlg_log_info(&srv.log, "stopped");
    return 0;
}
