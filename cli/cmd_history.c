/* cmd_history.c: `dialoguectl history ROOM [EVENT]`: joins ROOM (history is
 * for members), pages through its History with the library, and prints the
 * events oldest first, as a table or as the JSON lines `sub` prints. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_common.h"
#include "dlg_vec.h"
#include "pbjson.h"

/* The server's cap on one History reply. */
#define PAGE_MAX 1000u
/* Pages a run may take: bounded even against a server that never ends. */
#define MAX_PAGES 100000u

typedef struct hev {
    uint64_t seq, ts_ms, epoch;
    int from_kind;
    char *event, *from;
    uint8_t *data;
    size_t len;
} hev;

typedef struct hist {
    const char *room;
    const char *event;        /* NULL = every kept type */
    unsigned long limit;      /* 0 = all */
    int by_seq;               /* --since given, or no --limit */
    uint64_t since;           /* by_seq: the next page starts after it */
    uint32_t start;           /* by index: events skipped so far */
    int json;
    const char *schema_file;
    dlg_schema *schema;
    uint32_t asked;           /* limit of the page in flight */
    unsigned pages;
    int lost;                 /* the server no longer keeps part of the range */
    hev *v;
    size_t n, cap;
} hist;

static void hist_free(hist *h) {
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].event);
        free(h->v[i].from);
        free(h->v[i].data);
    }
    free(h->v);
}

static int keep(hist *h, const dlg_event *e) {
    if (DLG_GROW(h->v, h->cap, h->n + 1) != 0)
        return -1;
    hev *d = &h->v[h->n];
    d->seq = e->seq;
    d->ts_ms = e->ts_ms;
    d->epoch = e->epoch;
    d->len = e->len;
    d->event = strdup(e->event);
    d->from = strdup(e->from);
    d->from_kind = e->from_kind;
    d->data = malloc(e->len ? e->len : 1);
    if (d->event == NULL || d->from == NULL || d->data == NULL) {
        free(d->event);
        free(d->from);
        free(d->data);
        return -1;
    }
    if (e->len > 0)
        memcpy(d->data, e->data, e->len);
    h->n++;
    return 0;
}

static int by_seq_cmp(const void *a, const void *b) {
    uint64_t x = ((const hev *)a)->seq, y = ((const hev *)b)->seq;
    return x < y ? -1 : x > y;
}

static void print_table(const hist *h, const hev *v, size_t n) {
    int wseq = 3, wev = 5, wfrom = 4;
    char num[24];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(num, sizeof(num), "%" PRIu64, v[i].seq);
        wseq = l > wseq ? l : wseq;
        l = (int)strlen(v[i].event);
        wev = l > wev ? l : wev;
        l = (int)strlen(v[i].from);
        wfrom = l > wfrom ? l : wfrom;
    }
    printf("%*s  %-24s  %-*s  %-*s  %s\n", wseq, "SEQ", "TIME (UTC)", wev, "EVENT", wfrom,
           "FROM", "DATA");
    for (size_t i = 0; i < n; i++) {
        dlg_event ev = {h->room, v[i].event, v[i].data, v[i].len, v[i].from, v[i].ts_ms,
                        v[i].seq, v[i].epoch, v[i].from_kind};
        json_t *line = ctl_event_json(&ev, h->schema);
        json_t *data = line ? json_object_get(line, "data") : NULL;
        char *text = data ? dlg_pbjson_dumps(data) : NULL;
        const char *b64 = line ? json_string_value(json_object_get(line, "data_b64")) : NULL;
        time_t t = (time_t)(v[i].ts_ms / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        printf("%*" PRIu64 "  %s.%03uZ  %-*s  %-*s  %s%s\n", wseq, v[i].seq, when,
               (unsigned)(v[i].ts_ms % 1000), wev, v[i].event, wfrom, v[i].from,
               text ? "" : "base64:", text ? text : b64 ? b64 : "");
        free(text);
        json_decref(line);
    }
}

static void print_all(ctl *s) {
    hist *h = s->cmd;
    if (h->n > 1)
        qsort(h->v, h->n, sizeof(*h->v), by_seq_cmp);
    /* Pages by index overlap when events arrive meanwhile. */
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (n > 0 && h->v[n - 1].seq == h->v[i].seq) {
            free(h->v[i].event);
            free(h->v[i].from);
            free(h->v[i].data);
            continue;
        }
        h->v[n++] = h->v[i];
    }
    h->n = n;
    /* --limit keeps the first N after --since, else the newest N. */
    const hev *v = h->v;
    if (h->limit && n > h->limit) {
        if (!h->by_seq)
            v += n - h->limit;
        n = h->limit;
    }
    if (h->json) {
        for (size_t i = 0; i < n; i++) {
            dlg_event ev = {h->room, v[i].event, v[i].data, v[i].len, v[i].from, v[i].ts_ms,
                            v[i].seq, v[i].epoch, v[i].from_kind};
            if (ctl_print_event_line(&ev, h->schema) != 0) {
                ctl_err("out of memory");
                ctl_finish(s, CTL_FAIL);
                return;
            }
        }
    } else {
        print_table(h, v, n);
        fflush(stdout);
    }
    if (h->lost)
        ctl_err("history of room %s is incomplete: the server no longer keeps some events "
                "in the range (history limit or age)", h->room);
    ctl_finish(s, CTL_OK);
}

static void ask(ctl *s);

static void on_page(dlg_client *c, void *ud, int status, const char *message,
                    const void *reply) {
    ctl *s = ud;
    hist *h = s->cmd;
    const dlg_history_reply *r = reply;
    (void)c;
    if (s->finishing)
        return;
    if (status != 0) {
        ctl_fail_request(s, "history", status, message);
        return;
    }
    for (size_t i = 0; i < r->n_events; i++) {
        if (keep(h, &r->events[i]) != 0) {
            ctl_err("out of memory after %zu events", h->n);
            ctl_finish(s, CTL_FAIL);
            return;
        }
    }
    h->pages++;
    int done;
    if (h->by_seq) {
        /* The first page asks for one event: too small to be cut at
         * max_frame, so its complete flag speaks of loss alone. */
        if (h->pages == 1)
            h->lost = !r->complete;
        uint64_t last = r->n_events ? r->events[r->n_events - 1].seq : h->since;
        done = r->n_events == 0 || last <= h->since ||
               (r->complete && r->n_events < h->asked) || (h->limit && h->n >= h->limit);
        h->since = last;
    } else {
        /* By index, loss shows only once the kept events run out; a page
         * cut at max_frame (fewer than asked, incomplete) goes on. */
        int exhausted = r->n_events == 0 || (r->complete && r->n_events < h->asked);
        if (exhausted)
            h->lost = !r->complete;
        h->start += (uint32_t)r->n_events;
        done = exhausted || h->n >= h->limit;
    }
    if (!done && h->pages >= MAX_PAGES) {
        ctl_err("history of room %s: stopping after %u pages", h->room, h->pages);
        done = 1;
    }
    if (done)
        print_all(s);
    else
        ask(s);
}

static void ask(ctl *s) {
    hist *h = s->cmd;
    unsigned long want = h->limit ? h->limit - (h->n < h->limit ? h->n : h->limit) : PAGE_MAX;
    h->asked = want > PAGE_MAX || want == 0 ? PAGE_MAX : (uint32_t)want;
    if (h->by_seq && h->pages == 0)
        h->asked = 1;
    int rc = dlg_client_history(s->c, h->room, h->event, h->by_seq ? 0 : h->start, h->asked,
                                h->by_seq, h->since, on_page, s);
    if (rc != 0)
        ctl_fail_request(s, "history", rc, "");
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
    ask(s);
}

static void join_room(ctl *s) {
    hist *h = s->cmd;
    /* A member already when the server joined us at connect (auto_join). */
    if (dlg_client_auto_joined(s->c, h->room) == 1) {
        ask(s);
        return;
    }
    int rc = dlg_client_join(s->c, h->room, on_joined, s);
    if (rc != 0)
        ctl_fail_request(s, "join", rc, "");
}

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    hist *h = s->cmd;
    (void)c;
    if (status != 0)
        ctl_err("cannot get the schema (%s); payloads are shown as base64", message);
    else
        h->schema = ctl_schema_from(reply);
    join_room(s);
}

static void start_history(ctl *s) {
    hist *h = s->cmd;
    if (h->schema != NULL) {
        join_room(s);
        return;
    }
    int rc = dlg_client_get_schema(s->c, on_schema, s);
    if (rc != 0)
        ctl_fail_request(s, "schema", rc, "");
}

static int parse_u64(const char *flag, const char *v, int allow_zero, uint64_t max,
                     uint64_t *out) {
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == 0 || *v == '-' || *v == '+' || *end || x > max || (!allow_zero && x == 0)) {
        ctl_err("%s: \"%s\" is not a%s number up to %" PRIu64, flag, v,
                allow_zero ? "" : " positive", max);
        return -1;
    }
    *out = x;
    return 0;
}

int cmd_history(dlg_client_opts *o, int verbose, const char *server, int argc,
                char **argv) {
    static const char text[] =
        "usage: dialoguectl history ROOM [EVENT] [--limit N] [--since SEQ] [--json]\n"
        "                           [--schema FILE]\n"
        "Joins ROOM (history is for members) and prints the events it keeps,\n"
        "oldest first: SEQ, TIME (UTC), EVENT, FROM and the decoded payload.\n"
        "  EVENT          only this event type [every kept type]\n"
        "  --limit N      the newest N events; with --since, the first N after SEQ\n"
        "  --since SEQ    only events with a sequence number above SEQ\n"
        "  --json         one JSON line per event, exactly as `sub` prints them\n"
        "                 (with \"epoch\", the room's history epoch)\n"
        "  --schema FILE  decode with this descriptor set instead of the server's\n"
        "Without --limit every kept event is printed (fetched in pages of 1000).\n"
        "A note on stderr says when the server no longer keeps part of the range.\n";
    static const struct option longopts[] = {
        {"limit", required_argument, 0, 'l'},
        {"since", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},
        {"schema", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    hist h;
    char err[512];
    int opt, since_set = 0;
    uint64_t v;
    memset(&h, 0, sizeof(h));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(text, stdout); return CTL_OK;
        case 'l':
            if (parse_u64("--limit", optarg, 0, 1000000000u, &v) != 0)
                return CTL_USAGE;
            h.limit = (unsigned long)v;
            break;
        case 's':
            if (parse_u64("--since", optarg, 1, UINT64_MAX, &h.since) != 0)
                return CTL_USAGE;
            since_set = 1;
            break;
        case 'j': h.json = 1; break;
        case 'S': h.schema_file = optarg; break;
        case ':':
            ctl_err("history: %s needs a value", argv[optind - 1]);
            return CTL_USAGE;
        default:
            ctl_err("history: unknown option \"%s\"", argv[optind - 1]);
            fputs(text, stderr);
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        ctl_err("history: ROOM is missing");
        fputs(text, stderr);
        return CTL_USAGE;
    }
    if (argc - optind > 2) {
        ctl_err("history: one EVENT at most (\"%s\" is extra)", argv[optind + 2]);
        return CTL_USAGE;
    }
    h.room = argv[optind];
    h.event = argc - optind == 2 ? argv[optind + 1] : NULL;
    /* Everything, or everything after SEQ, reads best by seq; the newest N
     * needs the newest-first index. */
    h.by_seq = since_set || h.limit == 0;
    if (h.schema_file != NULL) {
        if (dlg_schema_new(&h.schema) != 0)
            return CTL_FAIL;
        if (dlg_schema_load_file(h.schema, h.schema_file, err, sizeof(err)) != 0) {
            ctl_err("%s", err);
            dlg_schema_free(h.schema);
            return CTL_USAGE;
        }
    }
    int rc = ctl_run(o, 0, verbose, server, start_history, &h);
    dlg_schema_free(h.schema);
    hist_free(&h);
    return rc;
}
