/* dlg_log.c: leveled logging (see dlg_log.h). */
#include "dlg_log.h"

#include <stdint.h>

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "dlg_utf8.h"

int dlg_log_level_parse(const char *s) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *dlg_log_level_name(int level) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    return level >= 0 && level <= DLG_LOG_DEBUG ? names[level] : "?";
}

/* Code points that must not reach a log as they are: C0 and C1 controls
 * (a newline forges a line, an escape sequence rewrites a terminal), the
 * Unicode line and paragraph separators, and the bidirectional overrides
 * and isolates (they reorder what a reader sees). */
static int unsafe_cp(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t dlg_log_escape(const char *in, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t n = strlen(in), o = 0;
    if (cap == 0)
        return 0;
    /* Each step writes a whole character or escape, or stops: output
     * never ends in half of one. */
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len = dlg_utf8_seq(s + i, n - i, &cp);
        if (s[i] == '\\') {
            if (o + 2 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = '\\';
            i++;
        } else if (len == 0 || unsafe_cp(cp)) {
            size_t k = len ? len : 1; /* an invalid byte is escaped alone */
            if (o + 4 * k >= cap)
                break;
            for (size_t j = 0; j < k; j++, i++) {
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[s[i] >> 4];
                out[o++] = hex[s[i] & 15];
            }
        } else {
            if (o + len >= cap)
                break;
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
    return o;
}

void dlg_log_write(const dlg_log *l, int level, const char *fmt, ...) {
    static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > l->level)
        return;
    FILE *f = l->out ? l->out : stderr;
    struct timeval tv;
    struct tm tm;
    char ts[32], tsz[64];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tsz, sizeof(tsz), "%s.%03dZ", ts, (int)(tv.tv_usec / 1000) % 1000);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Messages carry what clients sent (names, ids, reasons): escaped here,
     * once, so no caller can forget it and a line stays one line. */
    char safe[4 * sizeof(line)];
    dlg_log_escape(line, safe, sizeof(safe));
    if (l->emit) {
        l->emit(l, level, tsz, safe);
        return;
    }
    /* One fprintf so concurrent writers do not interleave within a line. */
    fprintf(f, "%s %s %s %s\n", tsz, l->prog ? l->prog : "dialogue", tags[level], safe);
    fflush(f);
}
