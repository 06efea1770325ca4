/* test_client_backoff.c: reconnect delays (doubling, cap, jitter bounds)
 * and the per-client random generator behind the jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client_int.h"

static void doubles_then_caps(void **state) {
    (void)state;
    uint64_t rng = 1;
    assert_int_equal(dlg__backoff_ms(100, 30000, 0, 0, &rng), 100);
    assert_int_equal(dlg__backoff_ms(100, 30000, 0, 1, &rng), 200);
    assert_int_equal(dlg__backoff_ms(100, 30000, 0, 4, &rng), 1600);
    assert_int_equal(dlg__backoff_ms(100, 30000, 0, 9, &rng), 30000);
    /* A huge attempt count neither overflows nor loops for long. */
    assert_int_equal(dlg__backoff_ms(100, 30000, 0, 4000000000u, &rng), 30000);
    assert_int_equal(dlg__backoff_ms(100, 100, 0, 3, &rng), 100);
    /* max below min is read as min; 0 is read as 1 */
    assert_int_equal(dlg__backoff_ms(500, 10, 0, 3, &rng), 500);
    assert_int_equal(dlg__backoff_ms(0, 0, 0, 0, &rng), 1);
}

static void jitter_stays_in_bounds(void **state) {
    (void)state;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = dlg__backoff_ms(1000, 1000, 0.25, 0, &rng);
        assert_true(d >= 750 && d <= 1000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* It does vary, over most of the range. */
    assert_true(lo < 780);
    assert_true(hi > 970);
    /* jitter above 1 is read as 1: never below 1 ms */
    for (int i = 0; i < 1000; i++)
        assert_true(dlg__backoff_ms(10, 10, 5.0, 0, &rng) >= 1);
}

static void rng_is_per_state(void **state) {
    (void)state;
    uint64_t a = 42, b = 42, c = 43;
    uint64_t x = dlg__rand(&a);
    assert_int_equal(x, dlg__rand(&b));
    assert_int_not_equal(x, dlg__rand(&c));
    for (int i = 0; i < 1000; i++)
        assert_int_not_equal(dlg__rand(&a), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles_then_caps),
        cmocka_unit_test(jitter_stays_in_bounds),
        cmocka_unit_test(rng_is_per_state),
    };
    return cmocka_run_group_tests_name("client_backoff", tests, NULL, NULL);
}
