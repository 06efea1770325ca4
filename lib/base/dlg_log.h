/* dlg_log.h: leveled logging to a stream (stderr by default). A logger is a
 * plain value owned by whoever runs the loop; there is no global logger.
 * Never pass tokens or keys to it. */
#ifndef DLG_LOG_H
#define DLG_LOG_H

#include <stdio.h>

enum { DLG_LOG_ERROR, DLG_LOG_WARN, DLG_LOG_INFO, DLG_LOG_DEBUG };

typedef struct dlg_log {
    int level;   /* messages above this level are dropped */
    FILE *out;   /* NULL = stderr */
    const char *prog;
    /* NULL = the text line below. Else called for each line instead, with
     * the level, the time ("2026-01-02T03:04:05.678Z") and the message
     * already escaped (dlg_log_escape), from whatever thread logs: it
     * writes the line its own way (e.g. as JSON, daemon/app/logout.c). */
    void (*emit)(const struct dlg_log *l, int level, const char *ts, const char *msg);
} dlg_log;

/* "error", "warn", "info" or "debug" for a DLG_LOG_* level. */
const char *dlg_log_level_name(int level);

/* Parses "error", "warn", "info" or "debug"; -1 for anything else. */
int dlg_log_level_parse(const char *s);

/* Copies in to out (cap bytes, NUL included) with what could forge or
 * hide log text escaped as \xNN: control characters (C0, DEL, C1), U+2028
 * and U+2029, bidirectional overrides and isolates, and bytes that are not
 * valid UTF-8; a backslash becomes \\. Output that does not fit is cut at
 * a character boundary. Returns the length written. */
size_t dlg_log_escape(const char *in, char *out, size_t cap);

/* Writes one line: "<iso time> <prog> <LEVEL> <message>", the message
 * passed through dlg_log_escape (so client strings cannot add lines). */
void dlg_log_write(const dlg_log *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define dlg_log_error(l, ...) dlg_log_write((l), DLG_LOG_ERROR, __VA_ARGS__)
#define dlg_log_warn(l, ...) dlg_log_write((l), DLG_LOG_WARN, __VA_ARGS__)
#define dlg_log_info(l, ...) dlg_log_write((l), DLG_LOG_INFO, __VA_ARGS__)
#define dlg_log_debug(l, ...)                                                \
    do {                                                                     \
        if ((l)->level >= DLG_LOG_DEBUG)                                     \
            dlg_log_write((l), DLG_LOG_DEBUG, __VA_ARGS__);                  \
    } while (0)

#endif
