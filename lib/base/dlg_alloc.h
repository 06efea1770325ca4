/* dlg_alloc.h: the one place the tree's own code allocates heap memory
 * (lib/ and daemon/ call these, never malloc and friends directly), so
 * that a test can make the Nth allocation fail and walk every
 * out-of-memory path (tests/unit/test_oom.c). Memory from here is freed
 * with free() (dlg_free is free). Libraries we link (OpenSSL, libuv,
 * protobuf-c, libyaml, SQLite) allocate on their own and are not counted. */
#ifndef DLG_ALLOC_H
#define DLG_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* malloc, calloc, realloc, strdup and strndup, with their contracts
 * (realloc that fails leaves the old block alone), except that the
 * allocation chosen by dlg_alloc_fail_nth returns NULL. */
void *dlg_malloc(size_t n);
void *dlg_calloc(size_t n, size_t size);
void *dlg_realloc(void *p, size_t n);
char *dlg_strdup(const char *s);
char *dlg_strndup(const char *s, size_t n);

static inline void dlg_free(void *p) {
    free(p);
}

/* Test hook: the nth allocation through this file from now on (1 = the
 * next one) returns NULL; later ones succeed again. 0 cancels. Process-wide
 * and thread-safe (the send threads and the store's writer allocate too);
 * the daemon never calls it, and when unarmed an allocation pays one
 * relaxed atomic load. */
void dlg_alloc_fail_nth(uint64_t n);

/* How many allocations the hook has failed since the process started. */
uint64_t dlg_alloc_failures(void);

#endif
