/* dlg_alloc.c: the allocation choke point and its failure hook (see
 * dlg_alloc.h). */
#include "dlg_alloc.h"

#include <stdatomic.h>
#include <string.h>

/* Allocations left before the one that fails; 0 = none armed. */
static _Atomic uint64_t fail_countdown;
static _Atomic uint64_t failures;

/* Whether this allocation is the one chosen to fail. */
static int chosen(void) {
    uint64_t left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (left != 0) {
        if (atomic_compare_exchange_weak_explicit(&fail_countdown, &left, left - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            if (left != 1)
                return 0;
            atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
            return 1;
        }
    }
    return 0;
}

void dlg_alloc_fail_nth(uint64_t n) {
    atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

uint64_t dlg_alloc_failures(void) {
    return atomic_load_explicit(&failures, memory_order_relaxed);
}

void *dlg_malloc(size_t n) {
    return chosen() ? NULL : malloc(n);
}

void *dlg_calloc(size_t n, size_t size) {
    return chosen() ? NULL : calloc(n, size);
}

void *dlg_realloc(void *p, size_t n) {
    return chosen() ? NULL : realloc(p, n);
}

char *dlg_strdup(const char *s) {
    return chosen() ? NULL : strdup(s);
}

char *dlg_strndup(const char *s, size_t n) {
    return chosen() ? NULL : strndup(s, n);
}
