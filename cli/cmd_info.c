/* cmd_info.c: dialoguectl's read-only commands: ping (round-trip time),
 * rooms (table or JSON) and schema (event types, table or JSON). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"

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

int cmd_ping(const dlg_client_opts *o, int verbose, const char *server, int argc, char **argv) {
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

static void print_rooms_json(const dlg_room_list *l) {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < l->n_rooms; i++) {
        const dlg_room_info *r = &l->rooms[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:b}", "id", r->id, "name",
                              r->name, "description", r->description, "events",
                              strv_json(r->events, r->n_events), "members",
                              (json_int_t)r->members, "max_size", (json_int_t)r->max_size,
                              "dynamic", r->dynamic);
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
        char events[1024], max[16], ids[1024];
        join_strs(events, sizeof(events), r->events, r->n_events);
        join_strs(ids, sizeof(ids), r->member_ids, r->n_member_ids);
        if (r->max_size)
            snprintf(max, sizeof(max), "%u", r->max_size);
        else
            snprintf(max, sizeof(max), "-");
        printf("%-*s  %-*s  %7u  %5s  %s%s%s\n", wid, r->id, wname, r->name, r->members, max,
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
        print_rooms_json(reply);
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

int cmd_rooms(const dlg_client_opts *o, int verbose, const char *server, int argc, char **argv) {
    static const char text[] =
        "usage: dialoguectl rooms [--json] [--members]\n"
        "Lists the rooms: id, name, member count, size limit, event types.\n"
        "  --json      one JSON array instead of the table\n"
        "  --members   include member ids (for rooms you may join)\n";
    flagset fs = {0, 0};
    int i = parse_flags(argc, argv, text, 1, 1, &fs);
    if (i < 0)
        return i == -1 ? CTL_OK : CTL_USAGE;
    return ctl_run(o, 0, verbose, server, start_rooms, &fs);
}

/* ---- schema -------------------------------------------------------------------- */

static void on_schema(dlg_client *c, void *ud, int status, const char *message,
                      const void *reply) {
    ctl *s = ud;
    flagset *fs = s->cmd;
    const dlg_schema_info *info = reply;
    (void)c;
    if (status != 0) {
        ctl_fail_request(s, "schema", status, message);
        return;
    }
    if (fs->json) {
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

int cmd_schema(const dlg_client_opts *o, int verbose, const char *server, int argc,
               char **argv) {
    static const char text[] =
        "usage: dialoguectl schema [--json]\n"
        "Lists the event types the server accepts and their protobuf messages.\n"
        "  --json   one JSON array instead of the table\n";
    flagset fs = {0, 0};
    int i = parse_flags(argc, argv, text, 1, 0, &fs);
    if (i < 0)
        return i == -1 ? CTL_OK : CTL_USAGE;
    return ctl_run(o, 0, verbose, server, start_schema, &fs);
}
