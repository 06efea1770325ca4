/* cmd_trigger.c: `dialoguectl trigger ROOM EVENT JSON|-`: reads the JSON
 * payload (refusing bad JSON before connecting), encodes it as the event's
 * protobuf message with the server's schema (or --schema FILE, then before
 * connecting too), joins ROOM and triggers; exit 0 on the Ack. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"
#include "pbjson.h"

#define TRIGGER_MAX_INPUT (16u << 20)

typedef struct trig {
    const char *room, *event;
    json_t *json;
    uint8_t *data;        /* encoded payload, once known */
    size_t len;
} trig;

/* Encodes t->json for t->event with schema; 0, or CTL_USAGE after
 * printing why. */
static int encode(trig *t, const dlg_schema *schema, const char *whose) {
    char err[512];
    const dlg_schema_event *ev = dlg_schema_event_find(schema, t->event);
    if (ev == NULL) {
        ctl_err("event \"%s\" is not in %s", t->event, whose);
        return CTL_USAGE;
    }
    if (dlg_pbjson_encode(ev->msg, t->json, &t->data, &t->len, err, sizeof(err)) != 0) {
        ctl_err("%s: %s", t->event, err);
        return CTL_USAGE;
    }
    return 0;
}

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

static void on_joined(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    trig *t = s->cmd;
    (void)reply;
    /* ALREADY_EXISTS: a member already (auto_join). */
    if (status != 0 && status != 6) {
        ctl_fail_request(s, "join", status, message);
        return;
    }
    int rc = dlg_client_trigger(c, t->room, t->event, t->data, t->len, on_ack, s);
    if (rc != 0)
        ctl_fail_request(s, "trigger", rc, "");
}

static void join_and_trigger(ctl *s) {
    trig *t = s->cmd;
    int rc = dlg_client_join(s->c, t->room, on_joined, s);
    if (rc != 0)
        ctl_fail_request(s, "join", rc, "");
}

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    trig *t = s->cmd;
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "schema", status, message);
        return;
    }
    dlg_schema *schema = ctl_schema_from(reply);
    if (schema == NULL) {
        ctl_finish(s, CTL_FAIL);
        return;
    }
    int rc = encode(t, schema, "the server's schema");
    dlg_schema_free(schema);
    if (rc != 0) {
        ctl_finish(s, rc);
        return;
    }
    join_and_trigger(s);
}

static void start_trigger(ctl *s) {
    trig *t = s->cmd;
    if (t->data != NULL) {
        join_and_trigger(s);
        return;
    }
    int rc = dlg_client_get_schema(s->c, on_schema, s);
    if (rc != 0)
        ctl_fail_request(s, "schema", rc, "");
}

/* Reads all of stdin (up to TRIGGER_MAX_INPUT) into a NUL-terminated buffer. */
static char *read_stdin(void) {
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
            return buf;
        }
    }
    free(buf);
    ctl_err("out of memory");
    return NULL;
}

int cmd_trigger(const dlg_client_opts *o, int verbose, const char *server, int argc,
                char **argv) {
    static const char text[] =
        "usage: dialoguectl trigger ROOM EVENT JSON|- [--schema FILE]\n"
        "Publishes one EVENT into ROOM. The payload is a JSON object (proto3 JSON\n"
        "mapping of the event's message), given inline or on stdin with -. It is\n"
        "encoded with the server's schema, or with FILE (a descriptor set).\n"
        "Prints \"ok seq=N recipients=M\" and exits 0 on the Ack; on a refusal\n"
        "prints the server's \"STATUS: message\" and exits 1; bad JSON or a payload\n"
        "that does not fit the schema exits 2 before the event is sent.\n";
    static const struct option longopts[] = {
        {"schema", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *schema_file = NULL;
    trig t;
    int opt, rc = CTL_USAGE;
    memset(&t, 0, sizeof(t));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(text, stdout); return CTL_OK;
        case 's': schema_file = optarg; break;
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
        ctl_err("trigger: expected ROOM EVENT JSON|-, got %d argument%s", argc - optind,
                argc - optind == 1 ? "" : "s");
        fputs(text, stderr);
        return CTL_USAGE;
    }
    t.room = argv[optind];
    t.event = argv[optind + 1];
    const char *src = argv[optind + 2];
    char *input = strcmp(src, "-") == 0 ? read_stdin() : strdup(src);
    if (input == NULL)
        return CTL_FAIL;
    json_error_t jerr;
    /* Big uint64 values must be strings (see pbjson.h); NUL is allowed in
     * strings so "\u0000" survives. */
    t.json = json_loads(input, JSON_ALLOW_NUL, &jerr);
    free(input);
    if (t.json == NULL) {
        ctl_err("JSON payload, line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return CTL_USAGE;
    }
    if (!json_is_object(t.json)) {
        ctl_err("JSON payload: expected an object");
        goto done;
    }
    if (schema_file != NULL) {
        char err[512];
        dlg_schema *schema = NULL;
        if (dlg_schema_new(&schema) != 0) {
            rc = CTL_FAIL;
            goto done;
        }
        if (dlg_schema_load_file(schema, schema_file, err, sizeof(err)) != 0) {
            ctl_err("%s", err);
            dlg_schema_free(schema);
            goto done;
        }
        rc = encode(&t, schema, schema_file);
        dlg_schema_free(schema);
        if (rc != 0)
            goto done;
    }
    rc = ctl_run(o, 0, verbose, server, start_trigger, &t);
done:
    json_decref(t.json);
    free(t.data);
    return rc;
}
