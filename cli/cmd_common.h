/* cmd_common.h: what dialoguectl's command files share: the session (one
 * loop-mode client, connected once, then a command callback), exit codes
 * and small output helpers. Defined in main.c. */
#ifndef DLG_CLI_CMD_COMMON_H
#define DLG_CLI_CMD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dialogue/client.h"
#include "dlg_schema.h"

/* Exit statuses of dialoguectl. */
enum {
    CTL_OK = 0,
    CTL_FAIL = 1,      /* cannot connect, server refusal, I/O */
    CTL_USAGE = 2,     /* bad command line or input (JSON) */
    CTL_TIMEOUT = 3,   /* sub --timeout: nothing more arrived */
};

typedef struct ctl ctl;

/* Runs once the client is connected (the first time). */
typedef void (*ctl_start_fn)(ctl *s);

struct ctl {
    uv_loop_t loop;
    dlg_client *c;
    char server[300];         /* "HOST:PORT" (or the list) as given */
    char server_now[DLG_CLIENT_SERVER_MAX];  /* ctl_server_now's buffer */
    int n_servers;            /* entries in server */
    int failures;             /* failed attempts before the first connect */
    ctl_start_fn start;
    ctl_start_fn on_finish;   /* optional: close the command's own handles */
    void *cmd;                /* the command's own state */
    int ever_connected;
    int keep_reconnecting;    /* sub: ride out restarts after the first connect */
    int exit_code;
    int finishing;
    int verbose;
};

/* Connects with opts (copied; its reconnect option is set to
 * keep_reconnecting) and runs the loop until ctl_finish; start is
 * called on the first CONNECTED. Returns the exit status. */
int ctl_run(dlg_client_opts *opts, int keep_reconnecting, int verbose,
            const char *server, ctl_start_fn start, void *cmd);

/* Ends the session with code: closes the client; the loop then drains.
 * Only the first call counts. */
void ctl_finish(ctl *s, int code);

/* The "HOST:PORT" of the server the session is connected to (or last
 * tried): one entry of --server's list. Valid until the next call. */
const char *ctl_server_now(ctl *s);

/* Prints "dialoguectl: " + message to stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a failed request ("STATUS: message" for server refusals) for
 * what, and finishes with CTL_FAIL. */
void ctl_fail_request(ctl *s, const char *what, int status, const char *message);

/* A registry from the server's GetSchema reply (NULL when it had none
 * usable; the reason goes to stderr). Free with dlg_schema_free. */
dlg_schema *ctl_schema_from(const dlg_schema_info *info);

/* Standard base64 of len bytes (malloc'd, NUL-terminated; NULL on OOM). */
char *ctl_base64(const uint8_t *data, size_t len);

/* ---- printing events (output.c) ---------------------------------------- */

/* One event as sub prints it: {"room","event","from","from_kind","ts","seq",
 * "epoch","data"}, with "data_b64" and "decode_error" instead of "data" when
 * schema (may be NULL) cannot decode the payload. New reference, NULL on
 * OOM. */
json_t *ctl_event_json(const dlg_event *ev, const dlg_schema *schema);

/* Prints ctl_event_json(ev) as one compact line on stdout (numbers in their
 * shortest form, see dlg_pbjson_dumps) and flushes. 0 or -1 (out of
 * memory). */
int ctl_print_event_line(const dlg_event *ev, const dlg_schema *schema);

/* Writes the payload bytes of ev to stdout as they are, nothing added, and
 * flushes. 0 or -1 (write error). */
int ctl_print_raw(const dlg_event *ev);

/* A parsed --format template. */
typedef struct ctl_fmt ctl_fmt;

/* Parses text: literal text with \n, \t and \\ escapes, and {{.PATH}}
 * fields, PATH a dotted path into the JSON line (.seq, .data.cpu,
 * .data.tags.0; {{.}} the whole line) or .payload (the bytes as they are).
 * 0 and *out (free with ctl_fmt_free), or DLG_EINVAL/DLG_ENOMEM with err
 * naming the fault. */
int ctl_fmt_parse(const char *text, ctl_fmt **out, char *err, size_t errlen);
void ctl_fmt_free(ctl_fmt *f);

/* Whether f shows the decoded payload (so the schema is worth fetching). */
int ctl_fmt_needs_schema(const ctl_fmt *f);

/* Prints ev through f, then a newline, and flushes. A path that leads
 * nowhere prints nothing; a string prints without quotes, anything else as
 * JSON text. 0 or -1 (out of memory, write error). */
int ctl_fmt_print(const ctl_fmt *f, const dlg_event *ev, const dlg_schema *schema);

/* Events held (copied) while the schema that decodes them is on its way:
 * the sync batch of an auto-joined room arrives right after Welcome, before
 * any reply. */
typedef struct ctl_evq {
    dlg_event *v;
    size_t n, cap;
} ctl_evq;

/* Appends a copy of ev (strings and payload). 0 or -1 (out of memory). */
int ctl_evq_push(ctl_evq *q, const dlg_event *ev);

/* Frees every held event; q is then empty and reusable. */
void ctl_evq_clear(ctl_evq *q);

/* The commands: argv[0] is the command name. */
int cmd_ping(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv);
int cmd_rooms(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv);
int cmd_schema(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv);
int cmd_sub(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv);
int cmd_trigger(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv);
int cmd_history(dlg_client_opts *o, int verbose, const char *server, int argc, char **argv);

#endif
