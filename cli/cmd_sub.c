/* cmd_sub.c: `dialoguectl sub ROOM [EVENT...]`: joins, subscribes (exactly
 * the given events, or the room's defaults), and prints each event as one
 * JSON line, decoding its payload with the server's schema. Rides out
 * server restarts once connected (the library rejoins and resubscribes). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"
#include "pbjson.h"

typedef struct sub {
    const char *room;
    char **events;
    size_t n_events;
    unsigned long count;      /* 0 = until interrupted */
    unsigned long timeout_s;  /* 0 = none */
    unsigned long seen;
    const char *schema_file;
    dlg_schema *schema;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    int handles;              /* 1 once timer and signals are initialised */
} sub;

json_t *ctl_event_json(const dlg_event *ev, const dlg_schema *schema) {
    json_t *line = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "room", ev->room, "event",
                             ev->event, "from", ev->from, "from_kind",
                             dlg_from_kind_name(ev->from_kind), "ts", (json_int_t)ev->ts_ms, "seq",
                             (json_int_t)ev->seq);
    if (line == NULL)
        return NULL;
    const dlg_schema_event *se = schema ? dlg_schema_event_find(schema, ev->event) : NULL;
    json_t *data = NULL;
    char err[256] = "no schema for this event";
    if (se == NULL || dlg_pbjson_decode(se->msg, ev->data, ev->len, &data, err, sizeof(err)) != 0) {
        /* Still show the event: the raw payload, and why it is raw. */
        char *b64 = ctl_base64(ev->data, ev->len);
        json_object_set_new(line, "data_b64", json_string(b64 ? b64 : ""));
        json_object_set_new(line, "decode_error", json_string(err));
        free(b64);
    } else {
        json_object_set_new(line, "data", data);
    }
    return line;
}

int ctl_print_event_line(const dlg_event *ev, const dlg_schema *schema) {
    json_t *line = ctl_event_json(ev, schema);
    char *text = line ? json_dumps(line, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(line);
    if (text == NULL)
        return -1;
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    return 0;
}

static void print_event(dlg_client *c, void *ud, const dlg_event *ev) {
    ctl *s = ud;
    sub *b = s->cmd;
    (void)c;
    if (s->finishing)
        return;
    if (ctl_print_event_line(ev, b->schema) != 0) {
        ctl_err("out of memory");
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

static void on_joined(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    sub *b = s->cmd;
    (void)reply;
    /* ALREADY_EXISTS: the server joined us at Hello (auto_join). */
    if (status != 0 && status != 6) {
        ctl_fail_request(s, "join", status, message);
        return;
    }
    if (b->n_events == 0) {
        ready(s);
        return;
    }
    /* Exactly the events asked for: drop the room's defaults first. */
    int rc = dlg_client_unsubscribe(c, b->room, NULL, 0, 1, on_unsubscribed, s);
    if (rc != 0)
        ctl_fail_request(s, "unsubscribe", rc, "");
}

static void join_room(ctl *s) {
    sub *b = s->cmd;
    int rc = 0;
    if (b->n_events == 0)
        rc = dlg_client_on_event(s->c, b->room, NULL, print_event, s);
    for (size_t i = 0; rc == 0 && i < b->n_events; i++)
        rc = dlg_client_on_event(s->c, b->room, b->events[i], print_event, s);
    if (rc == 0)
        rc = dlg_client_join(s->c, b->room, on_joined, s);
    if (rc != 0)
        ctl_fail_request(s, "join", rc, "");
}

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    sub *b = s->cmd;
    (void)c;
    if (status != 0) {
        /* Events still print, undecoded. */
        ctl_err("cannot get the schema (%s); payloads are shown as base64", message);
    } else {
        b->schema = ctl_schema_from(reply);
    }
    join_room(s);
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
    if (b->schema != NULL) {
        join_room(s);
        return;
    }
    int rc = dlg_client_get_schema(s->c, on_schema, s);
    if (rc != 0)
        ctl_fail_request(s, "schema", rc, "");
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

int cmd_sub(const dlg_client_opts *o, int verbose, const char *server, int argc, char **argv) {
    static const char text[] =
        "usage: dialoguectl sub ROOM [EVENT...] [--count N] [--timeout SEC] [--schema FILE]\n"
        "Joins ROOM and prints every event as one JSON line:\n"
        "  {\"room\":..,\"event\":..,\"from\":..,\"ts\":..,\"seq\":..,\"data\":{...}}\n"
        "With EVENTs, subscribes to exactly those; without, keeps the room's\n"
        "default subscriptions. A payload without a schema is printed as data_b64.\n"
        "  --count N       exit 0 after N events\n"
        "  --timeout SEC   exit 3 when no event arrives for SEC seconds\n"
        "  --schema FILE   decode with this descriptor set instead of the server's\n"
        "Stops on Ctrl-C (exit 0). Reconnects by itself once connected.\n";
    static const struct option longopts[] = {
        {"count", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"schema", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    sub b;
    char err[512];
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
    if (b.schema_file != NULL) {
        if (dlg_schema_new(&b.schema) != 0)
            return CTL_FAIL;
        if (dlg_schema_load_file(b.schema, b.schema_file, err, sizeof(err)) != 0) {
            ctl_err("%s", err);
            dlg_schema_free(b.schema);
            return CTL_USAGE;
        }
    }
    rc = ctl_run(o, 1, verbose, server, start_sub, &b);
    dlg_schema_free(b.schema);
    return rc;
}
