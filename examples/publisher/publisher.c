/* publisher.c: an external service that publishes its own process metrics to
 * the dashboard room once a second (the seed's setInterval publisher), using
 * libdialogue-client's blocking API on a thread-mode client. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dialogue/client.h>

#include "events/dashboard.pb-c.h"

#define ROOM "dashboard"
#define EVENT "metrics:update"

static double now_s(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The resident set as a percent of physical memory: the schema wants 0..100. */
static double rss_percent(void) {
    long size = 0, resident = 0, total = sysconf(_SC_PHYS_PAGES);
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL && fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    if (f != NULL)
        fclose(f);
    return total > 0 ? 100.0 * (double)resident / (double)total : 0;
}

int main(int argc, char **argv) {
    long count = argc == 3 && strcmp(argv[1], "--count") == 0 ? strtol(argv[2], NULL, 10) : 0;
    const char *server = getenv("DIALOGUE_SERVER");
    const char *colon = server != NULL ? strrchr(server, ':') : NULL;
    if ((argc != 1 && count <= 0) || colon == NULL || colon == server) {
        fprintf(stderr, "usage: %s [--count N]; env DIALOGUE_SERVER=HOST:PORT (now '%s'), "
                "DIALOGUE_CA, DIALOGUE_TOKEN\n", argv[0], server != NULL ? server : "");
        return 2;
    }
    char host[256], err[512];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - server), server);
    /* The options are an object the library owns; the client keeps its
     * own copy, so they go as soon as the client exists. */
    dlg_client_opts *o = NULL;
    dlg_client *c = NULL;
    int rc = dlg_client_opts_new(&o);
    if (rc == 0)
        rc = dlg_client_opts_set_host(o, host);
    if (rc == 0)
        rc = dlg_client_opts_set_port(o, (unsigned)strtoul(colon + 1, NULL, 10));
    if (rc == 0)
        rc = dlg_client_opts_set_ca_file(o, getenv("DIALOGUE_CA"));
    if (rc == 0)
        rc = dlg_client_opts_set_token(o, getenv("DIALOGUE_TOKEN"));
    if (rc == 0)
        rc = dlg_client_opts_set_client_name(o, "examples/publisher");
    if (rc != 0)
        snprintf(err, sizeof(err), "options: %s", dlg_client_strerror(rc));
    else
        rc = dlg_sync_connect(o, 10000, &c, err, sizeof(err));
    dlg_client_opts_free(o);
    if (rc != 0 || dlg_sync_join(c, ROOM, 5000, err, sizeof(err)) != 0 ||
        /* It only sends: the room's default subscriptions would echo it back. */
        dlg_sync_unsubscribe(c, ROOM, NULL, 0, 1, 5000, err, sizeof(err)) != 0) {
        fprintf(stderr, "publisher: %s: %s\n", server, err);
        dlg_client_free(c);
        return 1;
    }
    double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN), latency_ms = 0;
    double cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID), wall0 = now_s(CLOCK_MONOTONIC);
    int failed = 0, failed_now = 0;
    for (long n = 0; count == 0 || n < count; n++) {
        sleep(1);
        double cpu1 = now_s(CLOCK_PROCESS_CPUTIME_ID), wall1 = now_s(CLOCK_MONOTONIC);
        double cpu = 100.0 * (cpu1 - cpu0) / ((wall1 - wall0) * (ncpu > 0 ? ncpu : 1));
        Dialogue__Dashboard__MetricsUpdate m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
        m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
        m.cpu = cpu > 100 ? 100 : cpu;
        m.memory = rss_percent();
        m.requests = 1.0 / (wall1 - wall0); /* this service's triggers per second */
        m.errors = failed_now / (wall1 - wall0);
        m.latency = latency_ms; /* the previous trigger's round trip */
        cpu0 = cpu1, wall0 = wall1;
        uint8_t buf[64]; /* five doubles: 45 bytes at most */
        size_t len = dialogue__dashboard__metrics_update__get_packed_size(&m);
        if (len > sizeof(buf) || dialogue__dashboard__metrics_update__pack(&m, buf) != len) {
            fprintf(stderr, "publisher: MetricsUpdate packs to %zu bytes, over 64\n", len);
            break;
        }
        uint64_t seq = 0;
        double t0 = now_s(CLOCK_MONOTONIC);
        /* A failure is not fatal: with reconnect on, the library rejoins the
         * room and restores the unsubscribe by itself. */
        failed_now = dlg_sync_trigger(c, ROOM, EVENT, buf, len, 5000, &seq, err, sizeof(err)) != 0;
        latency_ms = (now_s(CLOCK_MONOTONIC) - t0) * 1000.0;
        if (failed_now)
            fprintf(stderr, "publisher: trigger %s in %s: %s\n", EVENT, ROOM, err);
        else
            printf("%s seq=%" PRIu64 " cpu=%.2f memory=%.2f\n", EVENT, seq, m.cpu, m.memory);
        fflush(stdout);
        failed += failed_now;
    }
    dlg_client_free(c);
    return failed ? 1 : 0;
}
