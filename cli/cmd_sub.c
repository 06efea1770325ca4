/* cmd_sub.c: `dialoguectl sub ROOM [EVENT...]`: joins (unless auto-joined),
 * subscribes (exactly the given events, or the room's defaults), and prints
 * each event as one JSON line (or --format, --raw), decoding its payload
 * with the server's schema. Rides out server restarts once connected (the
 * library rejoins and resubscribes). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"

typedef struct sub {
    const char *room;
    char **events;
    size_t n_events;
    unsigned long count;      /* 0 = until interrupted */
    unsigned long timeout_s;  /* 0 = none */
    unsigned long seen;
    const char *schema_file;
    dlg_schema *schema;
    int raw;                  /* --raw: payload bytes only */
    ctl_fmt *fmt;             /* --format, or NULL for JSON lines */
    int schema_wait;          /* GetSchema in flight: events are held */
    ctl_evq held;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    int handles;              /* 1 once timer and signals are initialised */
} sub;

static void show(ctl *s, const dlg_event *ev) {
    sub *b = s->cmd;
    int rc = b->raw ? ctl_print_raw(ev)
             : b->fmt ? ctl_fmt_print(b->fmt, ev, b->schema)
                      : ctl_print_event_line(ev, b->schema);
    if (rc != 0) {
        ctl_err("cannot print an event (out of memory, or stdout was closed)");
        ctl_finish(s, CTL_FAIL);
        return;
    }
    b->seen++;
    if (b->count && b->seen >= b->count) {
        ctl_finish(s, CTL_OK);
        return;
    }
    if (b->timeout_s)
        uv_timer_again(&b->timer);
}

static void print_event(dlg_client *c, void *ud, const dlg_event *ev) {
    ctl *s = ud;
    sub *b = s->cmd;
    (void)c;
    if (s->finishing)
        return;
    if (!b->schema_wait) {
        show(s, ev);
        return;
    }
    if (ctl_evq_push(&b->held, ev) != 0) {
        ctl_err("out of memory");
        ctl_finish(s, CTL_FAIL);
    }
}

static void on_timeout(uv_timer_t *t) {
    ctl *s = t->data;
    sub *b = s->cmd;
    ctl_err("no %sevent within %lu s", b->seen ? "further " : "", b->timeout_s);
    ctl_finish(s, CTL_TIMEOUT);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    ctl_finish(h->data, CTL_OK);
}

static void sub_finish(ctl *s) {
    sub *b = s->cmd;
    if (!b->handles)
        return;
    uv_close((uv_handle_t *)&b->timer, NULL);
    uv_close((uv_handle_t *)&b->sigint, NULL);
    uv_close((uv_handle_t *)&b->sigterm, NULL);
}

static void ready(ctl *s) {
    sub *b = s->cmd;
    if (s->verbose)
        ctl_err("subscribed to %s", b->room);
    if (b->timeout_s)
        uv_timer_start(&b->timer, on_timeout, b->timeout_s * 1000, b->timeout_s * 1000);
}

static void on_subscribed(dlg_client *c, void *ud, int status, const char *message,
                          const void *reply) {
    ctl *s = ud;
    (void)c;
    (void)reply;
    if (status != 0) {
        ctl_fail_request(s, "subscribe", status, message);
        return;
    }
    ready(s);
}

static void on_unsubscribed(dlg_client *c, void *ud, int status, const char *message,
                            const void *reply) {
    ctl *s = ud;
    sub *b = s->cmd;
    (void)reply;
    if (status != 0) {
        ctl_fail_request(s, "unsubscribe", status, message);
        return;
    }
    int rc = dlg_client_subscribe(c, b->room, (const char *const *)b->events, b->n_events, 0,
                                  on_subscribed, s);
    if (rc != 0)
        ctl_fail_request(s, "subscribe", rc, "");
}

/* A member of the room: keep its defaults, or set exactly the events asked. */
static void member(ctl *s) {
    sub *b = s->cmd;
    if (b->n_events == 0) {
        ready(s);
        return;
    }
    /* Exactly the events asked for: drop the room's defaults first. */
    int rc = dlg_client_unsubscribe(s->c, b->room, NULL, 0, 1, on_unsubscribed, s);
    if (rc != 0)
        ctl_fail_request(s, "unsubscribe", rc, "");
}

static void on_joined(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    (void)c;
    (void)reply;
    if (status != 0) {
        ctl_fail_request(s, "join", status, message);
        return;
    }
    member(s);
}

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    sub *b = s->cmd;
    (void)c;
    b->schema_wait = 0;
    if (s->finishing)
        return;
    if (status != 0) {
        /* Events still print, undecoded. */
        ctl_err("cannot get the schema (%s); payloads are shown as base64", message);
    } else {
        b->schema = ctl_schema_from(reply);
    }
    for (size_t i = 0; i < b->held.n && !s->finishing; i++)
        show(s, &b->held.v[i]);
    ctl_evq_clear(&b->held);
}

static void start_sub(ctl *s) {
    sub *b = s->cmd;
    uv_timer_init(&s->loop, &b->timer);
    uv_signal_init(&s->loop, &b->sigint);
    uv_signal_init(&s->loop, &b->sigterm);
    b->timer.data = b->sigint.data = b->sigterm.data = s;
    uv_signal_start(&b->sigint, on_signal, SIGINT);
    uv_signal_start(&b->sigterm, on_signal, SIGTERM);
    b->handles = 1;
    s->on_finish = sub_finish;
    /* Handlers first, from inside the CONNECTED callback: the sync batch of
     * a room the server joined us to at Welcome is the very next frame. */
    int rc = 0;
    if (b->n_events == 0)
        rc = dlg_client_on_event(s->c, b->room, NULL, print_event, s);
    for (size_t i = 0; rc == 0 && i < b->n_events; i++)
        rc = dlg_client_on_event(s->c, b->room, b->events[i], print_event, s);
    if (rc != 0) {
        ctl_fail_request(s, "join", rc, "");
        return;
    }
    if (b->schema == NULL && !b->raw && (b->fmt == NULL || ctl_fmt_needs_schema(b->fmt))) {
        rc = dlg_client_get_schema(s->c, on_schema, s);
        if (rc != 0) {
            ctl_fail_request(s, "schema", rc, "");
            return;
        }
        b->schema_wait = 1;
    }
    if (dlg_client_auto_joined(s->c, b->room) == 1) {
        member(s);
        return;
    }
    rc = dlg_client_join(s->c, b->room, on_joined, s);
    if (rc != 0)
        ctl_fail_request(s, "join", rc, "");
}

static int parse_ulong(const char *flag, const char *v, unsigned long *out) {
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    if (*v == 0 || *v == '-' || *end || x == 0 || x > 1000000000ul) {
        ctl_err("%s: \"%s\" is not a positive number", flag, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cmd_sub(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv) {
    static const char text[] =
        "usage: dialoguectl sub ROOM [EVENT...] [--count N] [--timeout SEC] [--schema FILE]\n"
        "                       [--raw | --format TEMPLATE]\n"
        "Joins ROOM (unless the server joined you to it at connect, auto_join) and\n"
        "prints every event as one JSON line:\n"
        "  {\"room\":..,\"event\":..,\"from\":..,\"from_kind\":..,\"ts\":..,\"seq\":..,\n"
        "   \"epoch\":..,\"data\":{...}}\n"
        "ts is the server's time (ms since 1970), seq and epoch the room's position.\n"
        "Events the room keeps and sends on join come first. With EVENTs,\n"
        "subscribes to exactly those; without, keeps the room's default\n"
        "subscriptions. A payload the schema cannot decode is printed as data_b64\n"
        "with decode_error. Numbers print in their shortest exact form (a float\n"
        "field 2.32 as 2.32).\n"
        "  --count N       exit 0 after N events\n"
        "  --timeout SEC   exit 3 when no event arrives for SEC seconds\n"
        "  --schema FILE   decode with this descriptor set instead of the server's\n"
        "  --raw           write each payload's bytes as they are, nothing added\n"
        "                  (binary safe: sub ROOM --count 1 --raw > event.bin)\n"
        "  --format TEMPLATE  one line per event from TEMPLATE: {{.KEY}} is a key\n"
        "                  of the JSON line (.room .event .from .from_kind .ts .seq\n"
        "                  .epoch .data .data_b64 .decode_error), a field of the\n"
        "                  payload (.data.cpu, nested .data.a.b, list items\n"
        "                  .data.tags.0), {{.}} the whole line, {{.payload}} the\n"
        "                  bytes; strings print without quotes, the rest as JSON,\n"
        "                  a missing key as nothing; \\n and \\t are newline and tab.\n"
        "                  e.g. --format '{{.seq}} {{.event}} {{.data.cpu}}'\n"
        "Stops on Ctrl-C (exit 0). Reconnects by itself once connected.\n";
    static const struct option longopts[] = {
        {"count", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"schema", required_argument, 0, 's'},
        {"raw", no_argument, 0, 'r'},
        {"format", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    sub b;
    char err[512];
    const char *format = NULL;
    int opt, rc;
    memset(&b, 0, sizeof(b));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(text, stdout); return CTL_OK;
        case 'c':
            if (parse_ulong("--count", optarg, &b.count) != 0)
                return CTL_USAGE;
            break;
        case 't':
            if (parse_ulong("--timeout", optarg, &b.timeout_s) != 0)
                return CTL_USAGE;
            break;
        case 's': b.schema_file = optarg; break;
        case 'r': b.raw = 1; break;
        case 'f': format = optarg; break;
        case ':':
            ctl_err("sub: %s needs a value", argv[optind - 1]);
            return CTL_USAGE;
        default:
            ctl_err("sub: unknown option \"%s\"", argv[optind - 1]);
            fputs(text, stderr);
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        ctl_err("sub: ROOM is missing");
        fputs(text, stderr);
        return CTL_USAGE;
    }
    b.room = argv[optind];
    b.events = argv + optind + 1;
    b.n_events = (size_t)(argc - optind - 1);
    if (b.raw && format != NULL) {
        ctl_err("sub: --raw and --format exclude each other");
        return CTL_USAGE;
    }
    if (format != NULL && ctl_fmt_parse(format, &b.fmt, err, sizeof(err)) != 0) {
        ctl_err("sub: --format: %s", err);
        return CTL_USAGE;
    }
    rc = CTL_USAGE;
    if (b.schema_file != NULL) {
        if (dlg_schema_new(&b.schema) != 0) {
            rc = CTL_FAIL;
            goto done;
        }
        if (dlg_schema_load_file(b.schema, b.schema_file, err, sizeof(err)) != 0) {
            ctl_err("%s", err);
            goto done;
        }
    }
    rc = ctl_run(o, 1, verbose, server, start_sub, &b);
done:
    dlg_schema_free(b.schema);
    ctl_fmt_free(b.fmt);
    ctl_evq_clear(&b.held);
    return rc;
}
