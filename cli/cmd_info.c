/* cmd_info.c: dialoguectl's read-only commands: ping (round-trip time),
 * rooms (table or JSON) and schema (event types, or one event's fields and
 * their validation; table or JSON). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"
#include "pbjson.h"

/* Parses a command's flags: only --help and the ones in extra. Returns the
 * index of the first operand, -1 for --help (done), -2 for a usage error. */
typedef struct flagset {
    int json, members;
} flagset;

static int parse_flags(int argc, char **argv, const char *usage_text, int allow_json,
                       int allow_members, flagset *fs) {
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},
        {"members", no_argument, 0, 'm'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(usage_text, stdout); return -1;
        case 'j':
            if (!allow_json)
                goto bad;
            fs->json = 1;
            break;
        case 'm':
            if (!allow_members)
                goto bad;
            fs->members = 1;
            break;
        default:
            goto bad;
        }
    }
    if (optind < argc) {
        ctl_err("%s: unexpected argument \"%s\"", argv[0], argv[optind]);
        fputs(usage_text, stderr);
        return -2;
    }
    return optind;
bad:
    ctl_err("%s: unknown option \"%s\"", argv[0], argv[optind - 1]);
    fputs(usage_text, stderr);
    return -2;
}

/* ---- ping ------------------------------------------------------------------ */

static void on_pong(dlg_client *c, void *ud, int status, const char *message,
                    const void *reply) {
    ctl *s = ud;
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "ping", status, message);
        return;
    }
    uint64_t ns = *(const uint64_t *)reply;
    printf("pong from %s in %.3f ms\n", ctl_server_now(s), (double)ns / 1e6);
    ctl_finish(s, CTL_OK);
}

static void start_ping(ctl *s) {
    int rc = dlg_client_ping(s->c, on_pong, s);
    if (rc != 0)
        ctl_fail_request(s, "ping", rc, "");
}

int cmd_ping(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv) {
    static const char text[] =
        "usage: dialoguectl ping\n"
        "Connects, sends one Ping and prints the round-trip time.\n";
    flagset fs = {0, 0};
    int i = parse_flags(argc, argv, text, 0, 0, &fs);
    if (i < 0)
        return i == -1 ? CTL_OK : CTL_USAGE;
    return ctl_run(o, 0, verbose, server, start_ping, NULL);
}

/* ---- rooms -------------------------------------------------------------------- */

static json_t *strv_json(const char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* The server counts members only when asked (--members): without it the
 * count is left out, not shown as 0. */
static void print_rooms_json(const dlg_room_list *l, int members) {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < l->n_rooms; i++) {
        const dlg_room_info *r = &l->rooms[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I, s:b}", "id", r->id, "name", r->name,
                              "description", r->description, "events",
                              strv_json(r->events, r->n_events), "max_size",
                              (json_int_t)r->max_size, "dynamic", r->dynamic);
        if (o != NULL && members)
            json_object_set_new(o, "members", json_integer((json_int_t)r->members));
        if (o != NULL && r->n_member_ids > 0)
            json_object_set_new(o, "member_ids", strv_json(r->member_ids, r->n_member_ids));
        if (o != NULL)
            json_array_append_new(arr, o);
    }
    char *text = arr ? json_dumps(arr, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(arr);
}

static void join_strs(char *out, size_t cap, const char *const *v, size_t n) {
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "," : "", v[i]);
    }
}

static void print_rooms_table(const dlg_room_list *l, int members) {
    int wid = 2, wname = 4;
    for (size_t i = 0; i < l->n_rooms; i++) {
        int a = (int)strlen(l->rooms[i].id), b = (int)strlen(l->rooms[i].name);
        wid = a > wid ? a : wid;
        wname = b > wname ? b : wname;
    }
    printf("%-*s  %-*s  %7s  %5s  %s%s\n", wid, "ID", wname, "NAME", "MEMBERS", "MAX",
           "EVENTS", members ? "  MEMBER IDS" : "");
    for (size_t i = 0; i < l->n_rooms; i++) {
        const dlg_room_info *r = &l->rooms[i];
        char events[1024], max[16], ids[1024], count[16] = "-";
        join_strs(events, sizeof(events), r->events, r->n_events);
        join_strs(ids, sizeof(ids), r->member_ids, r->n_member_ids);
        if (r->max_size)
            snprintf(max, sizeof(max), "%u", r->max_size);
        else
            snprintf(max, sizeof(max), "-");
        if (members)
            snprintf(count, sizeof(count), "%u", r->members);
        printf("%-*s  %-*s  %7s  %5s  %s%s%s\n", wid, r->id, wname, r->name, count, max,
               events[0] ? events : "-", members ? "  " : "", members ? ids : "");
    }
}

static void on_rooms(dlg_client *c, void *ud, int status, const char *message,
                     const void *reply) {
    ctl *s = ud;
    flagset *fs = s->cmd;
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "rooms", status, message);
        return;
    }
    if (fs->json)
        print_rooms_json(reply, fs->members);
    else
        print_rooms_table(reply, fs->members);
    ctl_finish(s, CTL_OK);
}

static void start_rooms(ctl *s) {
    flagset *fs = s->cmd;
    int rc = dlg_client_list_rooms(s->c, fs->members, on_rooms, s);
    if (rc != 0)
        ctl_fail_request(s, "rooms", rc, "");
}

int cmd_rooms(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv) {
    static const char text[] =
        "usage: dialoguectl rooms [--json] [--members]\n"
        "Lists the rooms you may join or are in: id, name, member count (with\n"
        "--members), size limit, event types.\n"
        "  --json      one JSON array instead of the table\n"
        "  --members   include member counts and ids (counted only when asked)\n";
    flagset fs = {0, 0};
    int i = parse_flags(argc, argv, text, 1, 1, &fs);
    if (i < 0)
        return i == -1 ? CTL_OK : CTL_USAGE;
    return ctl_run(o, 0, verbose, server, start_rooms, &fs);
}

/* ---- schema -------------------------------------------------------------------- */

typedef struct schema_args {
    int json;
    const char *describe;     /* EVENT, or NULL for the list */
} schema_args;

static const char *type_name(int t) {
    static const char *const names[] = {
        [DLG_FT_DOUBLE] = "double",   [DLG_FT_FLOAT] = "float",       [DLG_FT_INT64] = "int64",
        [DLG_FT_UINT64] = "uint64",   [DLG_FT_INT32] = "int32",       [DLG_FT_FIXED64] = "fixed64",
        [DLG_FT_FIXED32] = "fixed32", [DLG_FT_BOOL] = "bool",         [DLG_FT_STRING] = "string",
        [DLG_FT_GROUP] = "group",     [DLG_FT_MESSAGE] = "message",   [DLG_FT_BYTES] = "bytes",
        [DLG_FT_UINT32] = "uint32",   [DLG_FT_ENUM] = "enum",         [DLG_FT_SFIXED32] = "sfixed32",
        [DLG_FT_SFIXED64] = "sfixed64", [DLG_FT_SINT32] = "sint32",   [DLG_FT_SINT64] = "sint64",
    };
    return t > 0 && t <= DLG_FT_SINT64 && names[t] ? names[t] : "unknown";
}

static int is_map(const dlg_schema_field *f) {
    return f->label == DLG_FL_REPEATED && f->type == DLG_FT_MESSAGE && f->msg != NULL &&
           f->msg->map_entry;
}

/* "double", "enum dialogue.dashboard.Severity", "map<string, int32>". */
static void field_type(const dlg_schema_field *f, char *out, size_t cap) {
    if (is_map(f)) {
        const dlg_schema_field *k = dlg_schema_field_by_number(f->msg, 1);
        const dlg_schema_field *v = dlg_schema_field_by_number(f->msg, 2);
        char vt[200];
        if (v != NULL)
            field_type(v, vt, sizeof(vt));
        snprintf(out, cap, "map<%s, %s>", k ? type_name(k->type) : "?", v ? vt : "?");
    } else if (f->type == DLG_FT_MESSAGE && f->msg != NULL) {
        snprintf(out, cap, "%s", f->msg->full_name);
    } else if (f->type == DLG_FT_ENUM && f->en != NULL) {
        snprintf(out, cap, "enum %s", f->en->full_name);
    } else {
        snprintf(out, cap, "%s", type_name(f->type));
    }
}

static const char *label_name(const dlg_schema_field *f) {
    if (is_map(f))
        return "map";
    return f->label == DLG_FL_REPEATED ? "repeated"
           : f->label == DLG_FL_REQUIRED ? "required"
           : f->has_presence ? "optional"
                             : "singular";
}

/* A bound as written in a .proto: 0, 100, 0.5. */
static void bound_text(double v, char *out, size_t cap) {
    if (dlg_pbjson_real_text(v, out, cap) != 0) {
        snprintf(out, cap, "%g", v);
        return;
    }
    size_t n = strlen(out);
    if (n > 2 && strcmp(out + n - 2, ".0") == 0)
        out[n - 2] = 0;
}

/* The validation the server applies to f: its (dialogue.v1.rule) and what
 * always holds ("none" when nothing). */
static void rules_text(const dlg_schema_field *f, char *out, size_t cap) {
    char b[48];
    size_t o = 0;
    out[0] = 0;
#define ADD(...) o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, __VA_ARGS__)
    if (f->required)
        ADD("%srequired", o ? ", " : "");
    if (f->has_min) {
        bound_text(f->min, b, sizeof(b));
        ADD("%smin %s", o ? ", " : "", b);
    }
    if (f->has_max) {
        bound_text(f->max, b, sizeof(b));
        ADD("%smax %s", o ? ", " : "", b);
    }
    if (f->has_min_len)
        ADD("%smin_len %u", o ? ", " : "", f->min_len);
    if (f->has_max_len)
        ADD("%smax_len %u", o ? ", " : "", f->max_len);
    if (f->type == DLG_FT_ENUM)
        ADD("%sa defined value", o ? ", " : "");
    if (f->type == DLG_FT_STRING)
        ADD("%svalid UTF-8", o ? ", " : "");
    if (o == 0)
        ADD("none");
#undef ADD
}

/* Message types reachable from m (m first), each once: at most cap. */
static size_t reachable(const dlg_schema_msg *m, const dlg_schema_msg **v, size_t n, size_t cap) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == m)
            return n;
    if (n == cap)
        return n;
    v[n++] = m;
    for (size_t i = 0; i < m->n_fields; i++) {
        const dlg_schema_field *f = &m->fields[i];
        if (f->type == DLG_FT_MESSAGE && f->msg != NULL)
            n = reachable(f->msg, v, n, cap);
    }
    return n;
}

static void collect_enums(const dlg_schema_msg *const *msgs, size_t n_msgs,
                          const dlg_schema_enum **v, size_t *n, size_t cap) {
    for (size_t m = 0; m < n_msgs; m++) {
        for (size_t i = 0; i < msgs[m]->n_fields; i++) {
            const dlg_schema_enum *e = msgs[m]->fields[i].en;
            size_t k = 0;
            if (msgs[m]->fields[i].type != DLG_FT_ENUM || e == NULL)
                continue;
            while (k < *n && v[k] != e)
                k++;
            if (k == *n && *n < cap)
                v[(*n)++] = e;
        }
    }
}

#define DESCRIBE_MAX 256

static json_t *field_json(const dlg_schema_field *f) {
    char type[256];
    field_type(f, type, sizeof(type));
    json_t *rules = json_object();
    if (f->required)
        json_object_set_new(rules, "required", json_true());
    if (f->has_min)
        json_object_set_new(rules, "min", json_real(f->min));
    if (f->has_max)
        json_object_set_new(rules, "max", json_real(f->max));
    if (f->has_min_len)
        json_object_set_new(rules, "min_len", json_integer(f->min_len));
    if (f->has_max_len)
        json_object_set_new(rules, "max_len", json_integer(f->max_len));
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "name", f->name, "json_name",
                     f->json_name ? f->json_name : f->name, "number", (json_int_t)f->number,
                     "type", type, "label", label_name(f), "rules", rules);
}

/* Prints what EVENT carries: its message, the messages and enums it uses,
 * each field with its validation. 0, or CTL_USAGE when the server does not
 * know EVENT. */
static int describe(const dlg_schema *sc, const char *event, int json) {
    const dlg_schema_event *ev = dlg_schema_event_find(sc, event);
    if (ev == NULL) {
        ctl_err("schema: the server has no event \"%s\" (dialoguectl schema lists them)", event);
        return CTL_USAGE;
    }
    const dlg_schema_msg *msgs[DESCRIBE_MAX];
    const dlg_schema_enum *enums[DESCRIBE_MAX];
    size_t n_msgs = reachable(ev->msg, msgs, 0, DESCRIBE_MAX), n_enums = 0;
    collect_enums(msgs, n_msgs, enums, &n_enums, DESCRIBE_MAX);
    if (json) {
        json_t *o = json_pack("{s:s, s:s}", "event", ev->name, "message_type",
                              ev->msg->full_name);
        json_t *jm = json_object(), *je = json_object();
        for (size_t m = 0; m < n_msgs; m++) {
            if (msgs[m]->map_entry)
                continue;
            json_t *fields = json_array();
            for (size_t i = 0; i < msgs[m]->n_fields; i++)
                json_array_append_new(fields, field_json(&msgs[m]->fields[i]));
            json_object_set_new(jm, msgs[m]->full_name, fields);
        }
        for (size_t e = 0; e < n_enums; e++) {
            json_t *vals = json_object();
            for (size_t i = 0; i < enums[e]->n_values; i++)
                json_object_set_new(vals, enums[e]->names[i], json_integer(enums[e]->numbers[i]));
            json_object_set_new(je, enums[e]->full_name, vals);
        }
        json_object_set_new(o, "messages", jm);
        json_object_set_new(o, "enums", je);
        char *text = dlg_pbjson_dumps(o);
        json_decref(o);
        if (text == NULL)
            return CTL_FAIL;
        printf("%s\n", text);
        free(text);
        return CTL_OK;
    }
    printf("event %s: message %s\n", ev->name, ev->msg->full_name);
    for (size_t m = 0; m < n_msgs; m++) {
        const dlg_schema_msg *msg = msgs[m];
        if (msg->map_entry)
            continue;
        if (m > 0)
            printf("\nmessage %s\n", msg->full_name);
        int wn = 5, wj = 4, wt = 4, wl = 5;
        char type[256], rules[512];
        for (size_t i = 0; i < msg->n_fields; i++) {
            const dlg_schema_field *f = &msg->fields[i];
            field_type(f, type, sizeof(type));
            int a = (int)strlen(f->name), b = (int)strlen(f->json_name ? f->json_name : f->name),
                c = (int)strlen(type), d = (int)strlen(label_name(f));
            wn = a > wn ? a : wn;
            wj = b > wj ? b : wj;
            wt = c > wt ? c : wt;
            wl = d > wl ? d : wl;
        }
        printf("  %-*s  %-*s  %6s  %-*s  %-*s  %s\n", wn, "FIELD", wj, "JSON", "NUMBER", wt,
               "TYPE", wl, "LABEL", "VALIDATION");
        for (size_t i = 0; i < msg->n_fields; i++) {
            const dlg_schema_field *f = &msg->fields[i];
            field_type(f, type, sizeof(type));
            rules_text(f, rules, sizeof(rules));
            printf("  %-*s  %-*s  %6u  %-*s  %-*s  %s\n", wn, f->name, wj,
                   f->json_name ? f->json_name : f->name, f->number, wt, type, wl,
                   label_name(f), rules);
        }
        if (msg->n_fields == 0)
            printf("  (no fields)\n");
    }
    for (size_t e = 0; e < n_enums; e++) {
        printf("\nenum %s:", enums[e]->full_name);
        for (size_t i = 0; i < enums[e]->n_values; i++)
            printf(" %s=%d", enums[e]->names[i], (int)enums[e]->numbers[i]);
        printf("\n");
    }
    return CTL_OK;
}

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    schema_args *a = s->cmd;
    const dlg_schema_info *info = reply;
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "schema", status, message);
        return;
    }
    if (a->describe != NULL) {
        dlg_schema *sc = ctl_schema_from(info);
        if (sc == NULL) {
            ctl_finish(s, CTL_FAIL);
            return;
        }
        int rc = describe(sc, a->describe, a->json);
        dlg_schema_free(sc);
        ctl_finish(s, rc);
        return;
    }
    if (a->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < info->n_events; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "name", info->events[i].name,
                                                 "message_type",
                                                 info->events[i].message_type));
        char *text = arr ? json_dumps(arr, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(arr);
    } else {
        int w = 5;
        for (size_t i = 0; i < info->n_events; i++) {
            int l = (int)strlen(info->events[i].name);
            w = l > w ? l : w;
        }
        printf("%-*s  %s\n", w, "EVENT", "MESSAGE TYPE");
        for (size_t i = 0; i < info->n_events; i++)
            printf("%-*s  %s\n", w, info->events[i].name, info->events[i].message_type);
    }
    ctl_finish(s, CTL_OK);
}

static void start_schema(ctl *s) {
    int rc = dlg_client_get_schema(s->c, on_schema, s);
    if (rc != 0)
        ctl_fail_request(s, "schema", rc, "");
}

int cmd_schema(dlg_client_opts *o, int verbose, const char *server, int argc,
               char **argv) {
    static const char text[] =
        "usage: dialoguectl schema [--json] [--describe EVENT]\n"
        "Lists the event types the server accepts and their protobuf messages.\n"
        "  --json            JSON instead of the table\n"
        "  --describe EVENT  the fields of EVENT's message (and of the messages and\n"
        "                    enums it uses): name, JSON name, number, type, label and\n"
        "                    the validation the server applies (required, min, max,\n"
        "                    min_len, max_len from (dialogue.v1.rule); enums must hold\n"
        "                    a defined value, strings valid UTF-8)\n";
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},
        {"describe", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    schema_args a = {0, NULL};
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(text, stdout); return CTL_OK;
        case 'j': a.json = 1; break;
        case 'd': a.describe = optarg; break;
        case ':':
            ctl_err("schema: %s needs a value", argv[optind - 1]);
            return CTL_USAGE;
        default:
            ctl_err("schema: unknown option \"%s\"", argv[optind - 1]);
            fputs(text, stderr);
            return CTL_USAGE;
        }
    }
    if (optind < argc) {
        ctl_err("schema: unexpected argument \"%s\"", argv[optind]);
        fputs(text, stderr);
        return CTL_USAGE;
    }
    return ctl_run(o, 0, verbose, server, start_schema, &a);
}
