/* main.c: dialoguectl's front door: global flags and their environment
 * fallbacks, command dispatch, and the connection session every network
 * command runs in (all protocol work goes through libdialogue-client). */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cmd_common.h"
#include "dashboard.h"
#include "token.h"

#define DEFAULT_SERVER "127.0.0.1:3000"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dialoguectl [global options] COMMAND [ARGS]\n"
        "\n"
        "global options:\n"
        "  --server HOST:PORT[,HOST:PORT...]\n"
        "                       server address [$DIALOGUE_SERVER or " DEFAULT_SERVER "]\n"
        "                       (IPv6: [::1]:3000); HOST is also the name the\n"
        "                       server certificate must carry. A comma-separated\n"
        "                       list (at most 16) names several nodes of one\n"
        "                       cluster: they are tried in turn until one answers,\n"
        "                       and sub moves to the next one when its node is lost\n"
        "  --ca FILE            CA certificate(s) of the server [$DIALOGUE_CA, else\n"
        "                       the system trust store]\n"
        "  --token TOKEN        JWT sent in Hello [$DIALOGUE_TOKEN; none = anonymous]\n"
        "  --cert FILE --key FILE  client certificate and key (mutual TLS)\n"
        "  --connect-timeout SEC   give up connecting after SEC seconds [10]\n"
        "  -v, --verbose        library diagnostics on stderr\n"
        "  --version, --help\n"
        "\n"
        "commands (each takes --help):\n"
        "  ping                      round-trip time to the server\n"
        "  rooms [--json] [--members]  the rooms and their events\n"
        "  schema [--json] [--describe EVENT]  event types the server knows; one\n"
        "                            event's fields and their validation\n"
        "  sub ROOM [EVENT...]       join and print events as JSON lines\n"
        "                            [--count N] [--raw | --format TEMPLATE]\n"
        "  history ROOM [EVENT]      the events ROOM keeps, oldest first [--limit N]\n"
        "                            [--since SEQ] [--json]\n"
        "  trigger ROOM EVENT JSON|-  publish an event; with -, one JSON object per\n"
        "                            line of stdin until EOF; --raw/--base64 bytes\n"
        "  dashboard [ROOM]          live terminal view of the dashboard room\n"
        "  token ...                 mint a development token (HS256)\n"
        "  bench ...                 run dialogue-bench (same global flags; bench --help)\n"
        "\n"
        "examples:\n"
        "  dialoguectl --server [::1]:3000 ping\n"
        "  dialoguectl sub dashboard --format '{{.seq}} {{.event}} {{.data.cpu}}'\n"
        "  dialoguectl trigger dashboard metrics:update - < events.ndjson\n"
        "bash completion: source cli/dialoguectl.bash (ninja install puts it in\n"
        "share/bash-completion/completions)\n"
        "\n"
        "exit status: 0 done, 1 failure (connection, refusal), 2 usage or bad\n"
        "input, 3 sub --timeout expired\n");
}

void ctl_err(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "dialoguectl: %s\n", line);
}

/* ---- the session --------------------------------------------------------- */

static void on_closed(dlg_client *c, void *ud) {
    (void)c;
    (void)ud;
}

void ctl_finish(ctl *s, int code) {
    if (s->finishing)
        return;
    s->finishing = 1;
    s->exit_code = code;
    if (s->on_finish != NULL)
        s->on_finish(s);
    dlg_client_close(s->c, on_closed, s);
}

const char *ctl_server_now(ctl *s) {
    /* The entry of the current or last attempt; a buffer of the library's
     * maximum always holds it. */
    if (s->c == NULL || dlg_client_server(s->c, s->server_now, sizeof(s->server_now)) != 0)
        return s->server;
    return s->server_now;
}

void ctl_fail_request(ctl *s, const char *what, int status, const char *message) {
    if (status > 0)
        fprintf(stderr, "%s: %s\n", dlg_client_status_name(status), message);
    else
        ctl_err("%s: %s", what, message[0] ? message : dlg_client_strerror(status));
    ctl_finish(s, CTL_FAIL);
}

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    ctl *s = ud;
    (void)c;
    if (s->finishing)
        return;
    if (st == DLG_STATE_CONNECTED) {
        if (s->ever_connected) {
            if (s->verbose)
                ctl_err("reconnected to %s", ctl_server_now(s));
            return;
        }
        s->ever_connected = 1;
        s->start(s);
    } else if (st == DLG_STATE_DISCONNECTED) {
        if (!s->ever_connected) {
            /* The reason names the address and the step that failed. With
             * a list the library moves on to the next server: give up once
             * each has failed. */
            if (++s->failures < s->n_servers) {
                if (s->verbose)
                    ctl_err("cannot connect: %s; trying the next server", reason);
                return;
            }
            if (s->n_servers > 1)
                ctl_err("cannot connect to any of the %d servers; last: %s", s->n_servers,
                        reason);
            else
                ctl_err("cannot connect: %s", reason);
            ctl_finish(s, CTL_FAIL);
        } else if (s->keep_reconnecting) {
            ctl_err("connection lost (%s); reconnecting", reason);
        } else {
            ctl_err("connection to %s lost: %s", ctl_server_now(s), reason);
            ctl_finish(s, CTL_FAIL);
        }
    }
}

int ctl_run(dlg_client_opts *opts, int keep_reconnecting, int verbose,
            const char *server, ctl_start_fn start, void *cmd) {
    char err[512] = "";
    ctl s;
    memset(&s, 0, sizeof(s));
    s.start = start;
    s.cmd = cmd;
    s.keep_reconnecting = keep_reconnecting;
    s.verbose = verbose;
    snprintf(s.server, sizeof(s.server), "%s", server);
    s.n_servers = 1;
    for (const char *p = server; *p; p++)
        s.n_servers += *p == ',';
    int rc = dlg_client_opts_set_reconnect(opts, keep_reconnecting);
    if (rc == 0)
        rc = dlg_client_opts_check(opts, err, sizeof(err));
    if (rc != 0) {
        ctl_err("%s", err[0] ? err : dlg_client_strerror(rc));
        return CTL_USAGE;
    }
    if (uv_loop_init(&s.loop) != 0) {
        ctl_err("cannot create an event loop");
        return CTL_FAIL;
    }
    rc = dlg_client_new(&s.loop, opts, &s.c);
    if (rc != 0) {
        ctl_err("cannot create the client: %s", dlg_client_strerror(rc));
        uv_loop_close(&s.loop);
        return CTL_FAIL;
    }
    dlg_client_on_state(s.c, on_state, &s);
    dlg_client_connect(s.c);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    dlg_client_free(s.c);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s.loop) != 0 && verbose)
        ctl_err("event loop closed with handles open");
    return s.exit_code;
}

/* ---- helpers ----------------------------------------------------------------- */

dlg_schema *ctl_schema_from(const dlg_schema_info *info) {
    dlg_schema *sc = NULL;
    char err[512];
    if (dlg_schema_new(&sc) != 0) {
        ctl_err("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < info->n_sets; i++) {
        if (dlg_schema_add_set(sc, info->sets[i].data, info->sets[i].len, err,
                               sizeof(err)) != 0) {
            ctl_err("server schema set %zu: %s", i, err);
            dlg_schema_free(sc);
            return NULL;
        }
    }
    return sc;
}

char *ctl_base64(const uint8_t *data, size_t len) {
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}

/* ---- global flags -------------------------------------------------------------- */

/* Splits "HOST:PORT" or "[V6]:PORT" into host (written to host) and port.
 * The library checks the same; parsing here gives --server's own message
 * and keeps one address as host/port. */
static int parse_server(const char *s, char *host, size_t hostlen, unsigned *port) {
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        hl = (size_t)(close - s - 1);
        s++;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || strchr(s, ':') != colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    memcpy(host, s, hl);
    host[hl] = 0;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] == 0 || *end || p == 0 || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

/* A comma-separated list: checks each entry (blanks around it allowed, as
 * the library takes them) so a bad one is a usage error naming it. 0 or -1
 * (reported). */
static int check_server_list(const char *list) {
    char entry[300], host[256];
    unsigned port;
    const char *p = list;
    for (int i = 1;; i++) {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        int n = (int)(end - p), bad = n >= (int)sizeof(entry);
        if (!bad) {
            memcpy(entry, p, (size_t)n);
            entry[n] = 0;
            bad = parse_server(entry, host, sizeof(host), &port) != 0;
        }
        if (bad) {
            ctl_err("--server: entry %d \"%.*s\" is not HOST:PORT", i, n > 300 ? 300 : n, p);
            return -1;
        }
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static const char *env_or(const char *flag, const char *env) {
    if (flag != NULL)
        return flag;
    const char *v = getenv(env);
    return v != NULL && v[0] ? v : NULL;
}

/* `dialoguectl bench ...`: runs dialogue-bench from the same folder as this
 * program (else from PATH), handing the global connection flags over
 * through the DIALOGUE_* environment it reads. Returns only on failure. */
static int run_bench(const char *server, const char *ca, const char *token, int argc,
                     char **argv) {
    (void)argc; /* argv is NULL-terminated, as main's */
    if ((server && setenv("DIALOGUE_SERVER", server, 1) != 0) ||
        (ca && setenv("DIALOGUE_CA", ca, 1) != 0) ||
        (token && setenv("DIALOGUE_TOKEN", token, 1) != 0)) {
        ctl_err("bench: cannot set the environment");
        return CTL_FAIL;
    }
    char self[4096], path[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    argv[0] = "dialogue-bench";
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof(path), "%s/dialogue-bench", self);
            execv(path, argv);
        }
    }
    execvp("dialogue-bench", argv);
    ctl_err("bench: cannot run dialogue-bench: %s", strerror(errno));
    return CTL_FAIL;
}

int main(int argc, char **argv) {
    enum { O_SERVER = 256, O_CA, O_TOKEN, O_CERT, O_KEY, O_CTO, O_VERSION, O_HELP };
    static const struct option longopts[] = {
        {"server", required_argument, 0, O_SERVER},
        {"ca", required_argument, 0, O_CA},
        {"token", required_argument, 0, O_TOKEN},
        {"cert", required_argument, 0, O_CERT},
        {"key", required_argument, 0, O_KEY},
        {"connect-timeout", required_argument, 0, O_CTO},
        {"verbose", no_argument, 0, 'v'},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    /* A server that hangs up mid-write, or `dialoguectl sub | head`, must
     * end in an error message or a clean exit, not a silent SIGPIPE death. */
    signal(SIGPIPE, SIG_IGN);
    /* Started with stdin, stdout or stderr closed (`<&-`): the socket must
     * not become fd 0 and be read as `trigger -` input, nor get our output. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", O_RDWR) != fd) {
            ctl_err("cannot open /dev/null for the closed fd %d", fd);
            return CTL_FAIL;
        }
    }
    const char *server = NULL, *ca = NULL, *token = NULL, *cert = NULL, *key = NULL;
    unsigned long cto = 10;
    int verbose = 0, o;
    opterr = 0;
    /* "+": stop at the command; its own flags follow it. */
    while ((o = getopt_long(argc, argv, "+:v", longopts, NULL)) != -1) {
        switch (o) {
        case O_SERVER: server = optarg; break;
        case O_CA: ca = optarg; break;
        case O_TOKEN: token = optarg; break;
        case O_CERT: cert = optarg; break;
        case O_KEY: key = optarg; break;
        case O_CTO: {
            char *end;
            cto = strtoul(optarg, &end, 10);
            if (*optarg == 0 || *end || cto == 0 || cto > 3600) {
                ctl_err("--connect-timeout: \"%s\" is not 1..3600 seconds", optarg);
                return CTL_USAGE;
            }
            break;
        }
        case 'v': verbose = 1; break;
        case O_VERSION:
            printf("dialoguectl %s (libdialogue-client %s)\n", DLG_VERSION, dlg_client_version());
            return CTL_OK;
        case O_HELP: usage(stdout); return CTL_OK;
        case ':':
            ctl_err("%s needs a value", argv[optind - 1]);
            return CTL_USAGE;
        default:
            ctl_err("unknown option \"%s\" (see --help)", argv[optind - 1]);
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (strcmp(cmd, "token") == 0)
        return dlg_cli_token_main(sub_argc, sub_argv);
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return CTL_OK;
    }
    if (strcmp(cmd, "bench") == 0)
        return run_bench(server, ca, token, sub_argc, sub_argv);

    server = env_or(server, "DIALOGUE_SERVER");
    if (server == NULL)
        server = DEFAULT_SERVER;
    char host[256];
    unsigned port = 0;
    int is_list = strchr(server, ',') != NULL;
    if (is_list) {
        if (check_server_list(server) != 0)
            return CTL_USAGE;
    } else if (parse_server(server, host, sizeof(host), &port) != 0) {
        ctl_err("--server: \"%s\" is not HOST:PORT", server);
        return CTL_USAGE;
    }
    dlg_client_opts *opts = NULL;
    /* The library walks a list itself (failover, round robin). */
    int rc = dlg_client_opts_new(&opts);
    if (rc == 0 && is_list)
        rc = dlg_client_opts_set_servers(opts, server);
    if (rc == 0 && !is_list && (rc = dlg_client_opts_set_host(opts, host)) == 0)
        rc = dlg_client_opts_set_port(opts, port);
    if (rc == 0)
        rc = dlg_client_opts_set_ca_file(opts, env_or(ca, "DIALOGUE_CA"));
    if (rc == 0)
        rc = dlg_client_opts_set_token(opts, env_or(token, "DIALOGUE_TOKEN"));
    if (rc == 0)
        rc = dlg_client_opts_set_cert_file(opts, cert);
    if (rc == 0)
        rc = dlg_client_opts_set_key_file(opts, key);
    if (rc == 0)
        rc = dlg_client_opts_set_client_name(opts, "dialoguectl");
    if (rc == 0)
        rc = dlg_client_opts_set_connect_timeout_ms(opts, (uint32_t)(cto * 1000));
    if (rc == 0)
        rc = dlg_client_opts_set_log_level(opts, verbose ? 2 : -1);
    if (rc != 0) {
        ctl_err("cannot set up the connection options: %s", dlg_client_strerror(rc));
        dlg_client_opts_free(opts);
        return CTL_FAIL;
    }

    /* A fresh getopt scan for the command's own flags. */
    optind = 0;
    if (strcmp(cmd, "ping") == 0)
        rc = cmd_ping(opts, verbose, server, sub_argc, sub_argv);
    else if (strcmp(cmd, "rooms") == 0)
        rc = cmd_rooms(opts, verbose, server, sub_argc, sub_argv);
    else if (strcmp(cmd, "schema") == 0)
        rc = cmd_schema(opts, verbose, server, sub_argc, sub_argv);
    else if (strcmp(cmd, "sub") == 0)
        rc = cmd_sub(opts, verbose, server, sub_argc, sub_argv);
    else if (strcmp(cmd, "trigger") == 0)
        rc = cmd_trigger(opts, verbose, server, sub_argc, sub_argv);
    else if (strcmp(cmd, "history") == 0)
        rc = cmd_history(opts, verbose, server, sub_argc, sub_argv);
    else if (strcmp(cmd, "dashboard") == 0)
        rc = dlg_cli_dashboard_main(opts, sub_argc, sub_argv);
    else {
        ctl_err("unknown command \"%s\" (see --help)", cmd);
        rc = CTL_USAGE;
    }
    dlg_client_opts_free(opts);
    return rc;
}
