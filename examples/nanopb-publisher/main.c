/* main.c: the nanopb publisher. `--dump` prints the nanopb encoding of the
 * fixed values in fixed.h (hex, one event per line) for the wire test;
 * `--count N` publishes N metrics:update, one a second, through adapter.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"
#include "device.h"
#include "fixed.h"

#define ROOM "dashboard"

/* What a device owns: one buffer per message, sized by the generator, and
 * the messages themselves (an AlertTriggered is over 1 KB: not for a small
 * stack). Static storage, so the encode path never allocates. */
static uint8_t metrics_buf[dialogue_dashboard_MetricsUpdate_size];
static uint8_t alert_buf[dialogue_dashboard_AlertTriggered_size];
static dialogue_dashboard_AlertTriggered alert_msg;

static void print_hex(const char *event, const uint8_t *b, size_t n) {
    printf("%s ", event);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

static int dump(void) {
    char err[256];
    size_t len = 0;
    dialogue_dashboard_MetricsUpdate m = {
        .has_cpu = true, .cpu = NBP_FIX_CPU, .has_memory = true, .memory = NBP_FIX_MEMORY,
        .has_requests = true, .requests = NBP_FIX_REQUESTS, .has_errors = true,
        .errors = NBP_FIX_ERRORS, .has_latency = true, .latency = NBP_FIX_LATENCY,
    };
    if (nbp_encode_metrics(&m, metrics_buf, sizeof(metrics_buf), &len, err, sizeof(err)) != 0)
        goto fail;
    print_hex("metrics:update", metrics_buf, len);

    memset(&alert_msg, 0, sizeof(alert_msg));
    alert_msg.has_alert_id = alert_msg.has_severity = alert_msg.has_message = true;
    alert_msg.has_timestamp = true;
    snprintf(alert_msg.alert_id, sizeof(alert_msg.alert_id), "%s", NBP_FIX_ALERT_ID);
    alert_msg.severity = (dialogue_dashboard_Severity)NBP_FIX_SEVERITY;
    snprintf(alert_msg.message, sizeof(alert_msg.message), "%s", NBP_FIX_MESSAGE);
    alert_msg.timestamp = NBP_FIX_TIMESTAMP;
    if (nbp_encode_alert(&alert_msg, alert_buf, sizeof(alert_buf), &len, err, sizeof(err)) != 0)
        goto fail;
    print_hex("alert:triggered", alert_buf, len);
    return 0;

fail:
    fprintf(stderr, "nanopb-publisher: %s\n", err);
    return 1;
}

static double now_s(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int publish(long count) {
    char err[512];
    dlg_client *c = NULL;
    if (nbp_adapter_connect(ROOM, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "nanopb-publisher: %s: %s\n", getenv("DIALOGUE_SERVER"), err);
        return 1;
    }
    int failed = 0;
    double cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID), wall0 = now_s(CLOCK_MONOTONIC);
    for (long n = 0; n < count; n++) {
        sleep(1);
        double cpu1 = now_s(CLOCK_PROCESS_CPUTIME_ID), wall1 = now_s(CLOCK_MONOTONIC);
        double cpu = 100.0 * (cpu1 - cpu0) / (wall1 - wall0);
        dialogue_dashboard_MetricsUpdate m = dialogue_dashboard_MetricsUpdate_init_zero;
        m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = true;
        /* A device would read its sensors here; this one reports its own
         * CPU share and no memory figure of its own (0 is in range). */
        m.cpu = cpu > 100 ? 100 : cpu;
        m.requests = 1.0 / (wall1 - wall0);
        cpu0 = cpu1, wall0 = wall1;
        size_t len = 0;
        uint64_t seq = 0;
        if (nbp_encode_metrics(&m, metrics_buf, sizeof(metrics_buf), &len, err, sizeof(err)) != 0 ||
            dlg_sync_trigger(c, ROOM, "metrics:update", metrics_buf, len, 5000, &seq, err,
                             sizeof(err)) != 0) {
            fprintf(stderr, "nanopb-publisher: metrics:update in %s: %s\n", ROOM, err);
            failed++;
            continue;
        }
        printf("metrics:update seq=%" PRIu64 " bytes=%zu\n", seq, len);
        fflush(stdout);
    }
    dlg_client_free(c);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--dump") == 0)
        return dump();
    long count = argc == 3 && strcmp(argv[1], "--count") == 0 ? strtol(argv[2], NULL, 10) : 0;
    if (count <= 0) {
        fprintf(stderr, "usage: %s --dump | --count N  (env: DIALOGUE_SERVER=HOST:PORT, "
                        "DIALOGUE_CA, DIALOGUE_TOKEN)\n", argv[0]);
        return 2;
    }
    return publish(count);
}
