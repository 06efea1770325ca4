/* logout.h: where and how the daemon's log lines go: stderr or a file
 * (log_file, reopened on SIGUSR1 so that logrotate can move it), as text
 * or as one JSON object per line (log_format). */
#ifndef DLG_LOGOUT_H
#define DLG_LOGOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dlg_log.h"

/* Zero it before use. */
typedef struct dlg_logout {
    char *path;                 /* the log file (owned); NULL = stderr */
    FILE *f;                    /* open on path; its descriptor is swapped on reopen */
} dlg_logout;

/* Sends log's lines to the file at path (created 0640 if missing,
 * appended to; NULL = stderr, as before), as JSON lines when json (fields
 * ts, level, msg, and conn and peer for a line about a connection: one
 * that starts "conn ID (PEER): "), else as text. log keeps pointing into
 * o: both must live until dlg_logout_close. Returns 0, or DLG_EIO with err
 * naming the file, DLG_ENOMEM; on error log and o are unchanged. */
int dlg_logout_open(dlg_logout *o, dlg_log *log, const char *path, bool json, char *err,
                    size_t errlen);

/* Opens o's path again and moves the log onto it, for a log file that was
 * renamed (logrotate, then SIGUSR1): every line goes whole either to the
 * old file or to the new one, from any thread, and none is lost. 0, or
 * DLG_EIO with err naming the file (the log then stays on the old one),
 * DLG_ENOTFOUND when the log goes to stderr. */
int dlg_logout_reopen(dlg_logout *o, char *err, size_t errlen);

/* Puts log back on stderr (text) and closes the file. */
void dlg_logout_close(dlg_logout *o, dlg_log *log);

/* The JSON line of one message into buf (cap bytes, newline included):
 * what the JSON emitter writes, for tests. Returns its length, or 0 when
 * it does not fit or memory is short. */
size_t dlg_logout_json(const char *prog, int level, const char *ts, const char *msg, char *buf,
                       size_t cap);

#endif
