/* dlg_log.c: leveled logging (see dlg_log.h). */
#include "dlg_log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int dlg_log_level_parse(const char *s) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void dlg_log_write(const dlg_log *l, int level, const char *fmt, ...) {
    static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > l->level)
        return;
    FILE *f = l->out ? l->out : stderr;
    struct timeval tv;
    struct tm tm;
    char ts[32];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf so concurrent writers do not interleave within a line. */
    fprintf(f, "%s.%03ldZ %s %s %s\n", ts, (long)(tv.tv_usec / 1000),
            l->prog ? l->prog : "dialogue", tags[level], line);
    fflush(f);
}
