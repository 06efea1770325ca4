/* cmd_trigger.c: `dialoguectl trigger ROOM EVENT JSON|-`: publishes into
 * ROOM. One JSON payload given inline (refused before connecting when it is
 * bad JSON), a stream of JSON objects read from stdin with - (each one
 * triggered as it arrives, a summary of the Acks at EOF), or bytes as they
 * are (--raw) or from base64 (--base64). JSON is encoded as the event's
 * protobuf message with the server's schema (or --schema FILE). The room is
 * joined first unless the server joined us to it at connect. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_common.h"
#include "pbjson.h"

#define TRIGGER_MAX_INPUT (16u << 20)
/* Triggers of a stream waiting for their Ack; reading pauses above it. */
#define STREAM_WINDOW 64u

typedef struct trig {
    const char *room, *event;
    json_t *json;          /* the inline payload */
    uint8_t *data;         /* encoded (or raw) payload, once known */
    size_t len;
    const char *schema_file;
    dlg_schema *schema;    /* stream: encodes every message */

    /* stream: JSON objects from stdin */
    int stream;
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    uv_fs_t fsreq;
    int in_kind;           /* 0 none, 1 pipe, 2 tty, 3 file (uv_fs_read) */
    int in_open, reading, fs_busy, eof;
    char *buf;             /* input not parsed yet */
    size_t blen, bcap;
    char chunk[65536];     /* file reads land here */
    int skip_line;         /* after bad input: drop up to the next newline */
    unsigned long line;    /* line number of buf[0] */
    unsigned inflight;
    int read_failed;
    /* Every object or bad piece of input counts in n_msgs, and ends acked,
     * refused, bad, or unanswered (the connection was lost). */
    unsigned long n_msgs, n_bad, n_acked, n_refused;
    uint64_t first_seq, last_seq;
} trig;

/* Encodes json for t->event with schema into *data; 0, or CTL_USAGE with
 * err set. */
static int encode(const trig *t, const dlg_schema *schema, const char *whose, const json_t *json,
                  uint8_t **data, size_t *len, char *err, size_t errlen) {
    char why[512];
    const dlg_schema_event *ev = dlg_schema_event_find(schema, t->event);
    if (ev == NULL) {
        snprintf(err, errlen, "event \"%s\" is not in %s", t->event, whose);
        return CTL_USAGE;
    }
    if (dlg_pbjson_encode(ev->msg, json, data, len, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: %s", t->event, why);
        return CTL_USAGE;
    }
    return 0;
}

/* ---- one message --------------------------------------------------------------- */

static void on_ack(dlg_client *c, void *ud, int status, const char *message,
                   const void *reply) {
    ctl *s = ud;
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "trigger", status, message);
        return;
    }
    const dlg_ack *a = reply;
    printf("ok seq=%llu recipients=%u\n", (unsigned long long)a->seq, a->recipients);
    ctl_finish(s, CTL_OK);
}

static void send_one(ctl *s) {
    trig *t = s->cmd;
    int rc = dlg_client_trigger(s->c, t->room, t->event, t->data, t->len, on_ack, s);
    if (rc != 0)
        ctl_fail_request(s, "trigger", rc, "");
}

/* ---- a stream from stdin ------------------------------------------------------- */

typedef struct pending {
    ctl *s;
    unsigned long line;
} pending;

static void pump(ctl *s);

static void stream_done(ctl *s) {
    trig *t = s->cmd;
    int all_acked = t->n_acked == t->n_msgs;
    ctl_finish(s, t->n_bad ? CTL_USAGE : t->read_failed || !all_acked ? CTL_FAIL : CTL_OK);
}

static void on_stream_ack(dlg_client *c, void *ud, int status, const char *message,
                          const void *reply) {
    pending *p = ud;
    ctl *s = p->s;
    trig *t = s->cmd;
    (void)c;
    t->inflight--;
    if (status == 0) {
        const dlg_ack *a = reply;
        if (t->n_acked++ == 0)
            t->first_seq = a->seq;
        t->last_seq = a->seq;
        printf("ok seq=%llu recipients=%u\n", (unsigned long long)a->seq, a->recipients);
        fflush(stdout);
    } else {
        t->n_refused++;
        if (status > 0)
            fprintf(stderr, "dialoguectl: stdin line %lu: %s: %s\n", p->line,
                    dlg_client_status_name(status), message);
        else
            ctl_err("stdin line %lu: trigger: %s", p->line,
                    message[0] ? message : dlg_client_strerror(status));
    }
    free(p);
    if (!s->finishing)
        pump(s);
}

/* Input that is not a message of EVENT: counted and reported, not sent. */
static void stream_bad(trig *t, unsigned long line, const char *what) {
    ctl_err("stdin line %lu: %s; skipped", line, what);
    t->n_msgs++;
    t->n_bad++;
}

/* One parsed object from line: encode and trigger it. */
static void stream_message(ctl *s, json_t *j, unsigned long line) {
    trig *t = s->cmd;
    char err[600];
    uint8_t *data = NULL;
    size_t len = 0;
    if (!json_is_object(j)) {
        stream_bad(t, line, "expected a JSON object");
        return;
    }
    if (encode(t, t->schema, t->schema_file ? t->schema_file : "the server's schema", j, &data,
               &len, err, sizeof(err)) != 0) {
        stream_bad(t, line, err);
        return;
    }
    pending *p = malloc(sizeof(*p));
    int rc = p ? dlg_client_trigger(s->c, t->room, t->event, data, len, on_stream_ack, p)
               : DLG_ENOMEM;
    free(data);
    t->n_msgs++;
    if (rc != 0) {
        free(p);
        t->n_refused++;
        ctl_err("stdin line %lu: trigger: %s", line, dlg_client_strerror(rc));
        return;
    }
    p->s = s;
    p->line = line;
    t->inflight++;
}

/* Parses what the buffer holds: every complete object is triggered; bad
 * input is reported and skipped to the end of its line. */
static void parse_buffer(ctl *s) {
    trig *t = s->cmd;
    size_t off = 0;
    while (!s->finishing && t->inflight < STREAM_WINDOW) {
        if (t->skip_line) {
            while (off < t->blen && t->buf[off] != '\n')
                off++;
            if (off == t->blen)
                break;
            t->skip_line = 0;
        }
        while (off < t->blen && strchr(" \t\r\n", t->buf[off]) != NULL)
            t->line += t->buf[off++] == '\n';
        if (off == t->blen)
            break;
        json_error_t e;
        json_t *j = json_loadb(t->buf + off, t->blen - off,
                               JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &e);
        int cut = j == NULL && json_error_code(&e) == json_error_premature_end_of_input;
        if (cut && !t->eof)
            break; /* the rest of this object is still to come */
        unsigned long line = t->line;
        if (cut) {
            stream_bad(t, line, "stdin ends inside this JSON object");
            off = t->blen;
            break;
        }
        if (j == NULL) {
            char what[300];
            snprintf(what, sizeof(what), "not JSON (column %d: %s)", e.column, e.text);
            stream_bad(t, line + (unsigned long)(e.line > 0 ? e.line - 1 : 0), what);
            t->skip_line = 1;
            continue;
        }
        size_t used = (size_t)e.position;
        for (size_t i = off; i < off + used && i < t->blen; i++)
            t->line += t->buf[i] == '\n';
        off += used;
        stream_message(s, j, line);
        json_decref(j);
    }
    if (off > 0) {
        memmove(t->buf, t->buf + off, t->blen - off);
        t->blen -= off;
    }
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
    ctl *s = h->data;
    trig *t = s->cmd;
    (void)size;
    b->base = t->chunk;
    b->len = sizeof(t->chunk);
}

/* Appends n bytes of input. 0, or -1 after finishing the session (input
 * too large, out of memory). */
static int take(ctl *s, const char *data, size_t n) {
    trig *t = s->cmd;
    if (t->blen + n > TRIGGER_MAX_INPUT) {
        char what[80];
        snprintf(what, sizeof(what), "a JSON object larger than %u bytes", TRIGGER_MAX_INPUT);
        stream_bad(t, t->line, what);
        stream_done(s);
        return -1;
    }
    if (t->blen + n > t->bcap) {
        size_t cap = t->bcap ? t->bcap : 65536;
        while (cap < t->blen + n)
            cap *= 2;
        char *nb = realloc(t->buf, cap);
        if (nb == NULL) {
            ctl_err("out of memory");
            ctl_finish(s, CTL_FAIL);
            return -1;
        }
        t->buf = nb;
        t->bcap = cap;
    }
    memcpy(t->buf + t->blen, data, n);
    t->blen += n;
    return 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    ctl *s = st->data;
    trig *t = s->cmd;
    if (n == UV_EOF) {
        t->eof = 1;
    } else if (n < 0) {
        ctl_err("cannot read stdin: %s", uv_strerror((int)n));
        t->eof = 1;
        t->read_failed = 1;
    } else if (n > 0 && take(s, b->base, (size_t)n) != 0) {
        return;
    }
    pump(s);
}

static void on_fs_read(uv_fs_t *req) {
    ctl *s = req->data;
    trig *t = s->cmd;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    t->fs_busy = 0;
    if (n == 0) {
        t->eof = 1;
    } else if (n < 0) {
        ctl_err("cannot read stdin: %s", uv_strerror((int)n));
        t->eof = 1;
        t->read_failed = 1;
    } else if (take(s, t->chunk, (size_t)n) != 0) {
        return;
    }
    if (!s->finishing)
        pump(s);
}

/* Parses what is buffered, then reads more while the window has room,
 * and ends the session once stdin is done and every Ack is in. */
static void pump(ctl *s) {
    trig *t = s->cmd;
    if (s->finishing)
        return;
    parse_buffer(s);
    if (s->finishing)
        return;
    if (t->eof && t->blen == 0 && t->inflight == 0) {
        stream_done(s);
        return;
    }
    if (t->eof && t->inflight == 0 && t->skip_line) {
        t->blen = 0; /* a bad last line without its newline */
        stream_done(s);
        return;
    }
    int want = !t->eof && t->inflight < STREAM_WINDOW;
    if (t->in_kind == 3) {
        if (want && !t->fs_busy) {
            uv_buf_t b = uv_buf_init(t->chunk, sizeof(t->chunk));
            t->fsreq.data = s;
            int rc = uv_fs_read(&s->loop, &t->fsreq, STDIN_FILENO, &b, 1, -1, on_fs_read);
            if (rc == 0) {
                t->fs_busy = 1;
                return;
            }
            ctl_err("cannot read stdin: %s", uv_strerror(rc));
            t->read_failed = 1;
            t->eof = 1;
            if (t->inflight == 0)
                stream_done(s);
        }
    } else if (want && !t->reading) {
        int rc = uv_read_start((uv_stream_t *)&t->in, on_alloc, on_read);
        if (rc != 0) {
            ctl_err("cannot read stdin: %s", uv_strerror(rc));
            t->read_failed = 1;
            t->eof = 1;
            if (t->inflight == 0)
                stream_done(s);
            return;
        }
        t->reading = 1;
    } else if (!want && t->reading) {
        uv_read_stop((uv_stream_t *)&t->in);
        t->reading = 0;
    }
}

static void stream_finish(ctl *s) {
    trig *t = s->cmd;
    if (t->in_open)
        uv_close((uv_handle_t *)&t->in, NULL);
    t->in_open = 0;
}

static void start_stream(ctl *s) {
    trig *t = s->cmd;
    int rc = 0;
    uv_handle_type kind = uv_guess_handle(STDIN_FILENO);
    s->on_finish = stream_finish;
    if (kind == UV_TTY) {
        rc = uv_tty_init(&s->loop, &t->in.tty, STDIN_FILENO, 1);
        t->in_kind = 2;
    } else if (kind == UV_NAMED_PIPE) {
        rc = uv_pipe_init(&s->loop, &t->in.pipe, 0);
        if (rc == 0) {
            t->in_open = 1;
            rc = uv_pipe_open(&t->in.pipe, STDIN_FILENO);
        }
        t->in_kind = 1;
    } else {
        t->in_kind = 3; /* a file, /dev/null, ...: read on the thread pool */
    }
    if (t->in_kind != 3 && rc == 0)
        t->in_open = 1;
    if (rc != 0) {
        ctl_err("cannot read stdin: %s", uv_strerror(rc));
        ctl_finish(s, CTL_FAIL);
        return;
    }
    if (t->in_kind == 2)
        t->in.tty.data = s;
    else if (t->in_kind == 1)
        t->in.pipe.data = s;
    t->line = 1;
    pump(s);
}

/* ---- the session ---------------------------------------------------------------- */

static void member(ctl *s) {
    trig *t = s->cmd;
    if (t->stream)
        start_stream(s);
    else
        send_one(s);
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

static void join_and_trigger(ctl *s) {
    trig *t = s->cmd;
    /* Only members trigger; the server may have joined us at connect. */
    if (dlg_client_auto_joined(s->c, t->room) == 1) {
        member(s);
        return;
    }
    int rc = dlg_client_join(s->c, t->room, on_joined, s);
    if (rc != 0)
        ctl_fail_request(s, "join", rc, "");
}

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    trig *t = s->cmd;
    char err[600];
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "schema", status, message);
        return;
    }
    t->schema = ctl_schema_from(reply);
    if (t->schema == NULL) {
        ctl_finish(s, CTL_FAIL);
        return;
    }
    if (!t->stream) {
        if (encode(t, t->schema, "the server's schema", t->json, &t->data, &t->len, err,
                   sizeof(err)) != 0) {
            ctl_err("%s", err);
            ctl_finish(s, CTL_USAGE);
            return;
        }
    } else if (dlg_schema_event_find(t->schema, t->event) == NULL) {
        ctl_err("event \"%s\" is not in the server's schema", t->event);
        ctl_finish(s, CTL_USAGE);
        return;
    }
    join_and_trigger(s);
}

static void start_trigger(ctl *s) {
    trig *t = s->cmd;
    if (t->data != NULL || t->schema != NULL) {
        join_and_trigger(s);
        return;
    }
    int rc = dlg_client_get_schema(s->c, on_schema, s);
    if (rc != 0)
        ctl_fail_request(s, "schema", rc, "");
}

/* Reads all of stdin (up to TRIGGER_MAX_INPUT) into a NUL-terminated
 * buffer; *n gets the length (the bytes may hold NULs). */
static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 == cap) {
            if (cap >= TRIGGER_MAX_INPUT) {
                ctl_err("trigger: stdin is larger than %u bytes", TRIGGER_MAX_INPUT);
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin)) {
                ctl_err("trigger: cannot read stdin");
                free(buf);
                return NULL;
            }
            buf[n] = 0;
            *len = n;
            return buf;
        }
    }
    free(buf);
    ctl_err("out of memory");
    return NULL;
}

/* --base64 text (blanks and line breaks ignored, as `base64` wraps) ->
 * bytes. 0 or CTL_USAGE after saying why. */
static int from_base64(const char *in, size_t n, trig *t) {
    char *clean = malloc(n + 1);
    size_t k = 0;
    if (clean == NULL)
        return CTL_FAIL;
    for (size_t i = 0; i < n; i++)
        if (strchr(" \t\r\n", in[i]) == NULL || in[i] == 0)
            clean[k++] = in[i];
    int rc = dlg_pbjson_base64_decode(clean, k, &t->data, &t->len);
    free(clean);
    if (rc == DLG_ENOMEM)
        return CTL_FAIL;
    if (rc != 0) {
        ctl_err("--base64: the payload is not base64");
        return CTL_USAGE;
    }
    return 0;
}

static void print_summary(const trig *t) {
    char seqs[64] = "";
    if (t->n_acked == 1)
        snprintf(seqs, sizeof(seqs), " (seq %" PRIu64 ")", t->first_seq);
    else if (t->n_acked > 1)
        snprintf(seqs, sizeof(seqs), " (seq %" PRIu64 "..%" PRIu64 ")", t->first_seq,
                 t->last_seq);
    unsigned long lost = t->n_msgs - t->n_acked - t->n_refused - t->n_bad;
    if (t->n_msgs == 0)
        ctl_err("trigger: no JSON object on stdin; nothing sent");
    else
        ctl_err("trigger: %lu message%s from stdin: %lu acked%s, %lu refused, %lu bad%s",
                t->n_msgs, t->n_msgs == 1 ? "" : "s", t->n_acked, seqs, t->n_refused,
                t->n_bad, lost ? ", some unanswered (connection lost)" : "");
}

int cmd_trigger(dlg_client_opts *o, int verbose, const char *server, int argc,
                char **argv) {
    static const char text[] =
        "usage: dialoguectl trigger ROOM EVENT JSON|- [--schema FILE]\n"
        "       dialoguectl trigger ROOM EVENT --raw DATA|-\n"
        "       dialoguectl trigger ROOM EVENT --base64 B64|-\n"
        "Publishes EVENT into ROOM (joining it first, unless the server joined\n"
        "you to it at connect).\n"
        "  JSON            one payload: a JSON object (proto3 JSON mapping of the\n"
        "                  event's message), encoded with the server's schema or\n"
        "                  with --schema FILE (a descriptor set). Prints\n"
        "                  \"ok seq=N recipients=M\" and exits 0 on the Ack; on a\n"
        "                  refusal prints the server's \"STATUS: message\" and exits\n"
        "                  1; bad JSON or a payload that does not fit the schema\n"
        "                  exits 2 before the event is sent.\n"
        "  -               JSON objects from stdin, one per line (or spread over\n"
        "                  lines), each published as it is read, until EOF: an\n"
        "                  \"ok seq=N recipients=M\" line per Ack on stdout, each bad\n"
        "                  or refused one on stderr with its line number, then a\n"
        "                  summary on stderr. Exit 0 when every one was acked, 1\n"
        "                  when one was refused, 2 when one was bad input.\n"
        "  --raw DATA|-    the payload is DATA's bytes as they are (or all of stdin,\n"
        "                  one message), not encoded: for rooms that accept any\n"
        "                  event (events: [\"*\"]), or bytes already encoded.\n"
        "  --base64 B64|-  the payload is B64 decoded (or stdin's; blanks and line\n"
        "                  breaks ignored), e.g. --base64 \"$(base64 -w0 event.bin)\".\n"
        "  --schema FILE   encode JSON with this descriptor set, not the server's\n"
        "e.g.  printf '%s\\n' '{\"cpu\":1}' '{\"cpu\":2}' | dialoguectl trigger r metrics:update -\n";
    static const struct option longopts[] = {
        {"schema", required_argument, 0, 's'},
        {"raw", no_argument, 0, 'r'},
        {"base64", no_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    trig t;
    int opt, rc = CTL_USAGE, raw = 0, b64 = 0;
    memset(&t, 0, sizeof(t));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(text, stdout); return CTL_OK;
        case 's': t.schema_file = optarg; break;
        case 'r': raw = 1; break;
        case 'b': b64 = 1; break;
        case ':':
            ctl_err("trigger: %s needs a value", argv[optind - 1]);
            return CTL_USAGE;
        default:
            ctl_err("trigger: unknown option \"%s\"", argv[optind - 1]);
            fputs(text, stderr);
            return CTL_USAGE;
        }
    }
    if (argc - optind != 3) {
        ctl_err("trigger: expected ROOM EVENT %s, got %d argument%s",
                raw ? "DATA|-" : b64 ? "B64|-" : "JSON|-", argc - optind,
                argc - optind == 1 ? "" : "s");
        fputs(text, stderr);
        return CTL_USAGE;
    }
    if (raw + b64 > 1 || ((raw || b64) && t.schema_file != NULL)) {
        ctl_err("trigger: --raw, --base64 and --schema exclude each other");
        return CTL_USAGE;
    }
    t.room = argv[optind];
    t.event = argv[optind + 1];
    const char *src = argv[optind + 2];
    int from_stdin = strcmp(src, "-") == 0;
    if (raw || b64) {
        size_t n = strlen(src);
        char *input = from_stdin ? read_stdin(&n) : strdup(src);
        if (input == NULL)
            return CTL_FAIL;
        if (raw) {
            t.data = (uint8_t *)input;
            t.len = n;
            input = NULL;
            rc = 0;
        } else {
            rc = from_base64(input, n, &t);
        }
        free(input);
        if (rc == 0)
            rc = ctl_run(o, 0, verbose, server, start_trigger, &t);
        free(t.data);
        return rc;
    }
    if (t.schema_file != NULL) {
        char err[512];
        if (dlg_schema_new(&t.schema) != 0)
            return CTL_FAIL;
        if (dlg_schema_load_file(t.schema, t.schema_file, err, sizeof(err)) != 0) {
            ctl_err("%s", err);
            goto done;
        }
    }
    if (from_stdin) {
        if (t.schema != NULL && dlg_schema_event_find(t.schema, t.event) == NULL) {
            ctl_err("event \"%s\" is not in %s", t.event, t.schema_file);
            goto done;
        }
        t.stream = 1;
        rc = ctl_run(o, 0, verbose, server, start_trigger, &t);
        if (t.in_kind != 0)
            print_summary(&t);
        goto done;
    }
    json_error_t jerr;
    /* Big uint64 values must be strings (see pbjson.h); NUL is allowed in
     * strings so "\u0000" survives. */
    t.json = json_loads(src, JSON_ALLOW_NUL, &jerr);
    if (t.json == NULL) {
        ctl_err("JSON payload, line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        goto done;
    }
    if (!json_is_object(t.json)) {
        ctl_err("JSON payload: expected an object");
        goto done;
    }
    if (t.schema != NULL) {
        char err[600];
        if (encode(&t, t.schema, t.schema_file, t.json, &t.data, &t.len, err, sizeof(err)) !=
            0) {
            ctl_err("%s", err);
            goto done;
        }
    }
    rc = ctl_run(o, 0, verbose, server, start_trigger, &t);
done:
    json_decref(t.json);
    free(t.data);
    free(t.buf);
    dlg_schema_free(t.schema);
    return rc;
}
