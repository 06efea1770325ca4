/* fuzz_util.h: helpers shared by the libFuzzer harnesses of tests/fuzz/: the
 * oracle check and temp files. */
#ifndef DLG_FUZZ_UTIL_H
#define DLG_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Fails the run (abort, which libFuzzer reports with the input) when an
 * invariant of the code under test does not hold. Unlike assert() it is
 * never compiled out. */
#define FUZZ_CHECK(cond, ...)                                                 \
    do {                                                                      \
        if (!(cond))                                                          \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                \
    } while (0)

/* Prints "file:line: check failed: expr: <message>" to stderr and aborts. */
void fuzz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* Creates an empty temp file (in /dev/shm when it exists, so rewriting it
 * for every input costs no disk I/O; else $TMPDIR or /tmp) and returns its
 * descriptor, with its path in path[pathlen]. Aborts on failure. The file is
 * removed at exit. */
int fuzz_tmpfile(const char *tag, char *path, size_t pathlen);

/* Replaces the whole content of the file open as fd with data[0..len).
 * Aborts on an I/O error. */
void fuzz_tmpfile_put(int fd, const uint8_t *data, size_t len);

#endif
