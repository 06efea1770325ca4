/* fuzz_util.c: the helpers of fuzz_util.h (oracle failure, temp files)
 * shared by the harnesses. */
#include "fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: check failed: %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* At most a few temp files per process; kept so atexit can remove them. */
#define MAX_TMPFILES 4
typedef struct tmpfiles {
    char paths[MAX_TMPFILES][256];
    int n;
} tmpfiles;

/* libFuzzer gives no teardown hook, so the paths to remove at exit need a
 * process-wide home; nothing else reads it. */
static tmpfiles g_tmp;

static void remove_tmpfiles(void) {
    for (int i = 0; i < g_tmp.n; i++)
        unlink(g_tmp.paths[i]);
}

int fuzz_tmpfile(const char *tag, char *path, size_t pathlen) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (dir == NULL || dir[0] == 0)
        dir = "/tmp";
    int n = snprintf(path, pathlen, "%s/dlg-fuzz-%s-XXXXXX", dir, tag);
    FUZZ_CHECK(n > 0 && (size_t)n < pathlen, "temp path for %s too long", tag);
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0, "cannot create temp file %s", path);
    FUZZ_CHECK(g_tmp.n < MAX_TMPFILES, "more than %d temp files", MAX_TMPFILES);
    if (g_tmp.n == 0)
        atexit(remove_tmpfiles);
    snprintf(g_tmp.paths[g_tmp.n++], sizeof(g_tmp.paths[0]), "%s", path);
    return fd;
}

void fuzz_tmpfile_put(int fd, const uint8_t *data, size_t len) {
    FUZZ_CHECK(ftruncate(fd, 0) == 0, "cannot truncate temp file (fd %d)", fd);
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(fd, data + off, len - off, (off_t)off);
        FUZZ_CHECK(w > 0, "cannot write temp file (fd %d)", fd);
        off += (size_t)w;
    }
}
