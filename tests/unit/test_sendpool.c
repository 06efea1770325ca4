/* test_sendpool.c: the send threads' fork-join (daemon/sendpool.c): every
 * item runs exactly once per run, on a thread whose scratch nobody else
 * uses meanwhile; helpers really take items; what they wrote is visible
 * when the run returns; bad arguments are refused. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dlg_err.h"
#include "sendpool.h"

#define SCRATCH 256

typedef struct item {
    int runs;             /* plain int: the run's join must publish it */
    uint8_t *scratch;     /* the scratch the item ran with */
    pthread_t thread;
    uint32_t sleep_us;
} item;

static void pause_us(uint32_t us) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* Stamps the scratch with the item's address, waits, and checks that no
 * other thread wrote its own stamp there meanwhile. */
static void work(void *arg, uint8_t *scratch, void *ud) {
    item *it = arg;
    int *clobbered = ud;
    memcpy(scratch, &it, sizeof(it));
    memset(scratch + sizeof(it), 0x5A, SCRATCH - sizeof(it));
    if (it->sleep_us)
        pause_us(it->sleep_us);
    item *back;
    memcpy(&back, scratch, sizeof(back));
    if (back != it || scratch[SCRATCH - 1] != 0x5A)
        __atomic_fetch_add(clobbered, 1, __ATOMIC_RELAXED);
    it->runs++;
    it->scratch = scratch;
    it->thread = pthread_self();
}

static void run_n(dlg_sendpool *p, size_t n, uint32_t sleep_us, item *items, int *clobbered,
                  uint8_t *mine) {
    void **v = malloc((n ? n : 1) * sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        memset(&items[i], 0, sizeof(items[i]));
        items[i].sleep_us = sleep_us;
        v[i] = &items[i];
    }
    dlg_sendpool_run(p, v, n, work, clobbered, mine);
    free(v);
}

static void every_item_once(void **state) {
    (void)state;
    dlg_sendpool *p = NULL;
    assert_int_equal(dlg_sendpool_new(3, SCRATCH, &p), 0);
    static const size_t sizes[] = {0, 1, 2, 7, 8, 9, 100, 1000, 5000};
    uint8_t mine[SCRATCH];
    int clobbered = 0;
    for (int round = 0; round < 20; round++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t n = sizes[s];
            item *items = calloc(n ? n : 1, sizeof(*items));
            assert_non_null(items);
            run_n(p, n, 0, items, &clobbered, mine);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(items[i].runs, 1);
            free(items);
        }
    }
    assert_int_equal(clobbered, 0);
    dlg_sendpool_free(p);
}

static void helpers_take_items_with_own_scratch(void **state) {
    (void)state;
    dlg_sendpool *p = NULL;
    assert_int_equal(dlg_sendpool_new(2, SCRATCH, &p), 0);
    assert_int_equal(dlg_sendpool_helpers(p), 2);
    uint8_t mine[SCRATCH];
    int clobbered = 0;
    enum { N = 64 };
    item items[N];
    /* 64 items of 1 ms: the helpers wake long before the caller could
     * finish alone. Bounded: at most 5 runs. */
    for (int attempt = 0; attempt < 5 && dlg_sendpool_helped(p) == 0; attempt++)
        run_n(p, N, 1000, items, &clobbered, mine);
    assert_true(dlg_sendpool_helped(p) > 0);
    assert_int_equal(clobbered, 0);
    /* The caller ran its items with its own scratch; a helper never with
     * the caller's, and no more than 3 scratches were used in all. */
    uint8_t *seen[N];
    size_t n_seen = 0, by_caller = 0, by_helpers = 0;
    pthread_t me = pthread_self();
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(items[i].runs, 1);
        if (pthread_equal(items[i].thread, me)) {
            assert_ptr_equal(items[i].scratch, mine);
            by_caller++;
        } else {
            assert_ptr_not_equal(items[i].scratch, mine);
            by_helpers++;
        }
        size_t k;
        for (k = 0; k < n_seen && seen[k] != items[i].scratch; k++)
            ;
        if (k == n_seen)
            seen[n_seen++] = items[i].scratch;
    }
    assert_true(n_seen <= 3);
    assert_int_equal(by_caller + by_helpers, N);
    dlg_sendpool_free(p);
}

static void bad_arguments(void **state) {
    (void)state;
    dlg_sendpool *p = NULL;
    assert_int_equal(dlg_sendpool_new(0, SCRATCH, &p), DLG_EINVAL);
    assert_int_equal(dlg_sendpool_new(64, SCRATCH, &p), DLG_EINVAL);
    assert_int_equal(dlg_sendpool_new(1, 0, &p), DLG_EINVAL);
    assert_int_equal(dlg_sendpool_new(1, SCRATCH, NULL), DLG_EINVAL);
    assert_null(p);
    dlg_sendpool_free(NULL);
    /* Started and stopped without a run. */
    assert_int_equal(dlg_sendpool_new(63, SCRATCH, &p), 0);
    assert_int_equal(dlg_sendpool_helped(p), 0);
    dlg_sendpool_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_item_once),
        cmocka_unit_test(helpers_take_items_with_own_scratch),
        cmocka_unit_test(bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
