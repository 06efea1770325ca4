/* test_metrics.c: /proc parsing, alert rules and their cooldown, templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static void parse_stat(void **state) {
    (void)state;
    uint64_t busy, total;
    const char *t = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4\n";
    assert_int_equal(dlg_metrics_parse_stat(t, &busy, &total), 0);
    assert_int_equal(total, 1000);
    assert_int_equal(busy, 160); /* idle 800 and iowait 40 are not busy */
    assert_int_not_equal(dlg_metrics_parse_stat("intr 5\n", &busy, &total), 0);
    assert_int_not_equal(dlg_metrics_parse_stat("cpu  x y\n", &busy, &total), 0);
}

static void parse_meminfo(void **state) {
    (void)state;
    double used = -1;
    const char *t = "MemTotal:       1000 kB\nMemFree:   100 kB\nMemAvailable:    250 kB\n";
    assert_int_equal(dlg_metrics_parse_meminfo(t, &used), 0);
    assert_true(used > 74.99 && used < 75.01);
    assert_int_not_equal(dlg_metrics_parse_meminfo("MemTotal: 10 kB\n", &used), 0);
    assert_int_not_equal(dlg_metrics_parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n", &used), 0);
}

static void alert_cooldown(void **state) {
    (void)state;
    dlg_alert_rule r = {.metric = DLG_METRIC_CPU, .op = DLG_OP_GT, .threshold = 90,
                        .cooldown_s = 60};
    assert_false(dlg_alert_check(&r, 90.0, 1000));     /* not above */
    assert_true(dlg_alert_check(&r, 90.5, 2000));      /* fires */
    assert_false(dlg_alert_check(&r, 95.0, 3000));     /* sustained: held back */
    assert_false(dlg_alert_check(&r, 99.0, 61999));    /* still inside 60 s */
    assert_true(dlg_alert_check(&r, 99.0, 62000));     /* cooldown over */
    dlg_alert_rule z = {.op = DLG_OP_LE, .threshold = 10, .cooldown_s = 0};
    assert_true(dlg_alert_check(&z, 10, 5));
    assert_true(dlg_alert_check(&z, 3, 6));            /* no cooldown: every time */
}

static void format_template(void **state) {
    (void)state;
    char out[128];
    dlg_alert_format("CPU usage critical: {value}%", DLG_METRIC_CPU, 93.5, out, sizeof(out));
    assert_string_equal(out, "CPU usage critical: 93.5%");
    dlg_alert_format("{metric}={value}", DLG_METRIC_MEMORY, 91.0, out, sizeof(out));
    assert_string_equal(out, "memory=91");
    dlg_alert_format("{value}{value}{value}", DLG_METRIC_CPU, 12.345, out, 8);
    assert_string_equal(out, "12.3512"); /* truncated to 7 + NUL */
}

static void names(void **state) {
    (void)state;
    assert_int_equal(dlg_metric_parse("latency"), DLG_METRIC_LATENCY);
    assert_int_equal(dlg_metric_parse("cpu "), -1);
    assert_int_equal(dlg_op_parse(">="), DLG_OP_GE);
    assert_int_equal(dlg_op_parse("=>"), -1);
    assert_int_equal(dlg_severity_parse("critical"), 3);
    assert_int_equal(dlg_severity_parse("High"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_stat),     cmocka_unit_test(parse_meminfo),
        cmocka_unit_test(alert_cooldown), cmocka_unit_test(format_template),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
