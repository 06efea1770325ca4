/* dashboard.c: the live terminal dashboard (see dashboard.h). Runs the
 * client library in loop mode on a private loop, with the terminal in raw
 * mode through uv_tty so keys, resizes and signals are all loop events.
 * The history batch the server sends on join arrives as ordinary events,
 * so the sparklines and alerts start filled. Events wait for the server's
 * schema (the batch of an auto-joined room comes before any reply), so the
 * JSON lines printed when stdout is not a terminal are always decoded, the
 * same lines `sub` prints. */
#include "dashboard.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd_common.h"
#include "dlg_schema.h"
#include "events/dashboard.pb-c.h"

#define HIST 240          /* samples kept per metric (4 min at 1/s) */
#define MAX_ALERTS 8

typedef struct alert_row {
    char id[64];
    int severity;
    char message[160];
    uint64_t ts_ms;
} alert_row;

typedef struct dash {
    uv_loop_t loop;
    dlg_client *client;
    const char *room;
    int tty;                  /* stdout is a terminal: draw; else JSON lines */
    uv_tty_t in, out;
    int in_open, out_open;
    uv_signal_t sig_int, sig_term, sig_winch;
    uv_check_t redraw;        /* one draw per loop turn, however many events */
    int redraw_open;
    dlg_schema *schema;
    int schema_asked;         /* GetSchema sent (once per run) */
    int schema_wait;          /* its reply is due: events are held */
    ctl_evq held;
    int joined;               /* a member (by our Join or auto_join); the
                               * library restores it after a reconnect */
    char state[320];
    double hist[5][HIST];
    size_t n_hist, hist_head;
    int have_metrics;
    alert_row alerts[MAX_ALERTS];
    size_t n_alerts;
    uint64_t events;
    long count;               /* exit after this many events (0 = never) */
    int exit_code;
    int quitting;
} dash;

static const char *const metric_names[5] = {"cpu", "memory", "requests", "errors", "latency"};
static const char *const metric_units[5] = {"%", "%", "/s", "/s", "ms"};
static const char *const sev_names[4] = {"low", "medium", "high", "critical"};
/* low: cyan, medium: yellow, high: red, critical: white on red */
static const char *const sev_colours[4] = {"\033[36m", "\033[33m", "\033[1;31m",
                                           "\033[1;37;41m"};

static void quit(dash *d, int code);

/* ---- drawing ------------------------------------------------------------ */

static void sparkline(const dash *d, int metric, int width, char *out, size_t cap) {
    static const char *const blocks[8] = {"\xe2\x96\x81", "\xe2\x96\x82", "\xe2\x96\x83",
                                          "\xe2\x96\x84", "\xe2\x96\x85", "\xe2\x96\x86",
                                          "\xe2\x96\x87", "\xe2\x96\x88"};
    size_t n = d->n_hist < (size_t)width ? d->n_hist : (size_t)width;
    double lo = 0, hi = metric < 2 ? 100 : 0;
    for (size_t i = 0; i < n; i++) {
        double v = d->hist[metric][(d->hist_head + HIST - n + i) % HIST];
        if (v > hi)
            hi = v;
    }
    if (hi <= lo)
        hi = lo + 1;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        double v = d->hist[metric][(d->hist_head + HIST - n + i) % HIST];
        int k = (int)floor((v - lo) / (hi - lo) * 7.999);
        k = k < 0 ? 0 : k > 7 ? 7 : k;
        memcpy(out + o, blocks[k], 3);
        o += 3;
    }
    out[o] = 0;
}

static void draw(dash *d) {
    if (!d->tty || d->quitting)
        return;
    int cols = 80, rows = 24;
    if (d->out_open)
        uv_tty_get_winsize(&d->out, &cols, &rows);
    if (cols < 40)
        cols = 40;
    char buf[32768];
    size_t o = 0;
#define P(...) o += (size_t)snprintf(buf + o, o < sizeof(buf) ? sizeof(buf) - o : 0, __VA_ARGS__)
    /* The node of the moment: with a --server list it changes on failover. */
    char server[DLG_CLIENT_SERVER_MAX];
    if (dlg_client_server(d->client, server, sizeof(server)) != 0)
        server[0] = 0;
    P("\033[H\033[2J\033[1mdialogue dashboard\033[0m  room %s  %s  ", d->room, server);
    P("%s\033[0m\r\n\r\n", d->state);
    if (!d->have_metrics) {
        P("  waiting for metrics:update ...\r\n");
    } else {
        int spark_w = cols - 32;
        if (spark_w > HIST)
            spark_w = HIST;
        for (int m = 0; m < 5; m++) {
            char sp[HIST * 3 + 1];
            sparkline(d, m, spark_w, sp, sizeof(sp));
            double v = d->hist[m][(d->hist_head + HIST - 1) % HIST];
            P("  \033[1m%-9s\033[0m %10.2f %-3s %s\r\n", metric_names[m], v, metric_units[m], sp);
        }
    }
    P("\r\n\033[1m  recent alerts\033[0m (%zu)\r\n", d->n_alerts);
    int room_for = rows - 12;
    for (size_t i = 0; i < d->n_alerts && (int)i < room_for; i++) {
        const alert_row *a = &d->alerts[i];
        time_t t = (time_t)(a->ts_ms / 1000);
        struct tm tm;
        char when[16];
        localtime_r(&t, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        int s = a->severity >= 0 && a->severity < 4 ? a->severity : 2;
        P("  %s %s%-8s\033[0m %.*s\r\n", when, sev_colours[s], sev_names[s],
          cols > 30 ? cols - 24 : 10, a->message);
    }
    P("\r\n  %" PRIu64 " events   q quit\r\n", d->events);
#undef P
    if (o > sizeof(buf))
        o = sizeof(buf);
    fwrite(buf, 1, o, stdout);
    fflush(stdout);
}

/* ---- events ------------------------------------------------------------- */

static void on_redraw(uv_check_t *h) {
    dash *d = h->data;
    uv_check_stop(h);
    draw(d);
}

/* A history batch delivers hundreds of events in one read: drawing each
 * would write megabytes to the terminal, so draws wait for the end of the
 * loop turn. */
static void draw_soon(dash *d) {
    if (d->redraw_open && !d->quitting)
        uv_check_start(&d->redraw, on_redraw);
    else
        draw(d);
}

/* One event into the view (or out as a JSON line). */
static void process(dash *d, const dlg_event *ev) {
    if (d->quitting)
        return;
    d->events++;
    if (strcmp(ev->event, "metrics:update") == 0) {
        Dialogue__Dashboard__MetricsUpdate *m =
            dialogue__dashboard__metrics_update__unpack(NULL, ev->len, ev->data);
        if (m) {
            double v[5] = {m->cpu, m->memory, m->requests, m->errors, m->latency};
            for (int i = 0; i < 5; i++)
                d->hist[i][d->hist_head] = v[i];
            d->hist_head = (d->hist_head + 1) % HIST;
            if (d->n_hist < HIST)
                d->n_hist++;
            d->have_metrics = 1;
            dialogue__dashboard__metrics_update__free_unpacked(m, NULL);
        }
    } else if (strcmp(ev->event, "alert:triggered") == 0) {
        Dialogue__Dashboard__AlertTriggered *a =
            dialogue__dashboard__alert_triggered__unpack(NULL, ev->len, ev->data);
        if (a) {
            memmove(&d->alerts[1], &d->alerts[0], sizeof(alert_row) * (MAX_ALERTS - 1));
            alert_row *r = &d->alerts[0];
            snprintf(r->id, sizeof(r->id), "%s", a->alert_id ? a->alert_id : "");
            snprintf(r->message, sizeof(r->message), "%s", a->message ? a->message : "");
            r->severity = a->has_severity ? (int)a->severity : 2;
            r->ts_ms = a->timestamp;
            if (d->n_alerts < MAX_ALERTS)
                d->n_alerts++;
            dialogue__dashboard__alert_triggered__free_unpacked(a, NULL);
        }
    }
    if (d->tty) {
        draw_soon(d);
    } else if (ctl_print_event_line(ev, d->schema) != 0) {
        fprintf(stderr, "dialoguectl dashboard: out of memory\n");
        quit(d, 1);
        return;
    }
    if (d->count > 0 && (long)d->events >= d->count)
        quit(d, 0);
}

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    (void)c;
    dash *d = ud;
    if (d->quitting)
        return;
    if (!d->schema_wait) {
        process(d, ev);
        return;
    }
    if (ctl_evq_push(&d->held, ev) != 0) {
        fprintf(stderr, "dialoguectl dashboard: out of memory\n");
        quit(d, 1);
    }
}

/* The room's history restarted (new epoch): what follows is the server's
 * whole kept history, possibly events already shown, so start over. */
static void on_gap(dlg_client *c, void *ud, const dlg_gap *g) {
    dash *d = ud;
    (void)c;
    if (!d->tty)
        fprintf(stderr, "dialoguectl dashboard: %s\n", g->reason);
    if (!g->epoch_changed)
        return;
    d->n_hist = d->hist_head = 0;
    d->have_metrics = 0;
    d->n_alerts = 0;
    draw_soon(d);
}

static void set_state(dash *d, const char *colour, const char *text) {
    snprintf(d->state, sizeof(d->state), "%s%.300s", colour, text);
    draw(d);
}

static void on_joined(dlg_client *c, void *ud, int status, const char *msg, const void *r) {
    (void)c;
    (void)r;
    dash *d = ud;
    if (d->quitting)
        return;
    if (status == 0) {
        d->joined = 1;
        set_state(d, "\033[32m", "connected");
        return;
    }
    char line[256];
    snprintf(line, sizeof(line), "cannot join %s: %s: %s", d->room, dlg_client_status_name(status),
             msg);
    if (!d->tty)
        fprintf(stderr, "dialoguectl dashboard: %s\n", line);
    set_state(d, "\033[31m", line);
    if (!d->tty || status == 7)
        quit(d, 1);
}

/* The schema is in (or will not come): decode and show what was held. */
static void on_schema(dlg_client *c, void *ud, int status, const char *msg, const void *r) {
    dash *d = ud;
    (void)c;
    d->schema_wait = 0;
    if (d->quitting) {
        ctl_evq_clear(&d->held);
        return;
    }
    if (status == 0 && d->schema == NULL) {
        d->schema = ctl_schema_from(r);
    } else if (status != 0) {
        /* The view decodes its own two types; JSON lines fall back to
         * data_b64, as sub's do. */
        fprintf(stderr, "dialoguectl dashboard: cannot get the schema: %s\n", msg);
    }
    for (size_t i = 0; i < d->held.n && !d->quitting; i++)
        process(d, &d->held.v[i]);
    ctl_evq_clear(&d->held);
}

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    dash *d = ud;
    if (st == DLG_STATE_CONNECTED) {
        if (!d->schema_asked && dlg_client_get_schema(c, on_schema, d) == 0) {
            d->schema_asked = 1;
            d->schema_wait = 1;
        }
        /* After a reconnect the library restores the membership (rejoin,
         * or the server's auto_join again): nothing to send. */
        if (!d->joined && dlg_client_auto_joined(c, d->room) == 1)
            d->joined = 1;
        if (d->joined) {
            set_state(d, "\033[32m", "connected");
            return;
        }
        set_state(d, "\033[33m", "joining");
        if (dlg_client_join(c, d->room, on_joined, d) != 0)
            set_state(d, "\033[31m", "cannot send the Join");
    } else if (st == DLG_STATE_DISCONNECTED) {
        char line[160];
        snprintf(line, sizeof(line), "disconnected: %s (retrying)", reason ? reason : "");
        if (!d->tty)
            fprintf(stderr, "dialoguectl dashboard: %s\n", line);
        set_state(d, "\033[31m", line);
    } else if (st == DLG_STATE_CONNECTING) {
        set_state(d, "\033[33m", "connecting");
    }
}

/* ---- terminal and lifecycle --------------------------------------------- */

static void on_key_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    (void)h;
    static char keybuf[64];
    (void)sz;
    b->base = keybuf;
    b->len = sizeof(keybuf);
}

static void on_key(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    dash *d = s->data;
    if (n < 0) {
        quit(d, 0);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (b->base[i] == 'q' || b->base[i] == 'Q' || b->base[i] == 3)
            quit(d, 0);
}

static void on_signal(uv_signal_t *h, int sig) {
    dash *d = h->data;
    if (sig == SIGWINCH) {
        draw(d);
        return;
    }
    quit(d, 0);
}

static void quit(dash *d, int code) {
    if (d->quitting)
        return;
    d->quitting = 1;
    d->exit_code = code;
    if (d->tty) {
        uv_tty_reset_mode();
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
    }
    if (d->in_open)
        uv_close((uv_handle_t *)&d->in, NULL);
    if (d->out_open)
        uv_close((uv_handle_t *)&d->out, NULL);
    if (d->redraw_open)
        uv_close((uv_handle_t *)&d->redraw, NULL);
    d->redraw_open = 0;
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_winch, NULL);
    dlg_client_close(d->client, NULL, NULL);
}

static void usage(FILE *f) {
    fprintf(f, "usage: dialoguectl [global flags] dashboard [ROOM] [--count N]\n"
               "  Live view of a dashboard room [dashboard]: current metrics, sparklines,\n"
               "  recent alerts and the connection state. Keys: q or Ctrl-C quits.\n"
               "  The events the server keeps for the room (its sync on join) fill the\n"
               "  view at start. When stdout (or stdin) is not a terminal, prints one\n"
               "  JSON line per event instead, the same events decoded the same way as\n"
               "  `dialoguectl sub` (e.g. dashboard --count 50 > file).\n"
               "  --count N   exit after N events (those from history included)\n");
}

int dlg_cli_dashboard_main(const dlg_client_opts *opts, int argc, char **argv) {
    dash *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return 1;
    d->room = "dashboard";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            free(d);
            return 0;
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            char *end;
            d->count = strtol(argv[++i], &end, 10);
            if (*end || d->count <= 0) {
                fprintf(stderr, "dialoguectl dashboard: --count: \"%s\" is not a positive number\n",
                        argv[i]);
                free(d);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "dialoguectl dashboard: unknown flag %s\n", argv[i]);
            usage(stderr);
            free(d);
            return 2;
        } else {
            d->room = argv[i];
        }
    }
    snprintf(d->state, sizeof(d->state), "\033[33mconnecting");
    d->tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
    uv_loop_init(&d->loop);
    int rc = dlg_client_new(&d->loop, opts, &d->client);
    if (rc != 0) {
        char err[256] = "";
        dlg_client_opts_check(opts, err, sizeof(err));
        fprintf(stderr, "dialoguectl dashboard: %s\n", err[0] ? err : dlg_client_strerror(rc));
        uv_loop_close(&d->loop);
        free(d);
        return 1;
    }
    dlg_client_on_state(d->client, on_state, d);
    dlg_client_on_event(d->client, d->room, NULL, on_event, d);
    dlg_client_on_gap(d->client, on_gap, d);
    uv_check_init(&d->loop, &d->redraw);
    d->redraw.data = d;
    d->redraw_open = 1;
    uv_signal_init(&d->loop, &d->sig_int);
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_winch);
    d->sig_int.data = d->sig_term.data = d->sig_winch.data = d;
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_winch, on_signal, SIGWINCH);
    if (d->tty) {
        if (uv_tty_init(&d->loop, &d->in, STDIN_FILENO, 1) == 0) {
            d->in_open = 1;
            d->in.data = d;
            uv_tty_set_mode(&d->in, UV_TTY_MODE_RAW);
            uv_read_start((uv_stream_t *)&d->in, on_key_alloc, on_key);
        }
        if (uv_tty_init(&d->loop, &d->out, STDOUT_FILENO, 0) == 0)
            d->out_open = 1;
        fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, hide cursor */
        draw(d);
    }
    dlg_client_connect(d->client);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    dlg_client_free(d->client);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
    dlg_schema_free(d->schema);
    ctl_evq_clear(&d->held);
    int code = d->exit_code;
    free(d);
    return code;
}
