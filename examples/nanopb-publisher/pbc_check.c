/* pbc_check.c: the protobuf-c side of the nanopb example's wire test
 * (tests/integration/test_examples.py). `--dump` prints the protobuf-c
 * encoding of fixed.h's values in nanopb-publisher's format; `--decode`
 * reads such lines on stdin and prints every field as protobuf-c decodes it:
 *   metrics:update<TAB>cpu=12.5<TAB>memory=...   (absent fields: name=-) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/dashboard.pb-c.h"
#include "fixed.h"

typedef Dialogue__Dashboard__MetricsUpdate Metrics;
typedef Dialogue__Dashboard__AlertTriggered Alert;

static void print_hex(const char *event, const uint8_t *b, size_t n) {
    printf("%s ", event);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

static int dump(void) {
    Metrics m = DIALOGUE__DASHBOARD__METRICS_UPDATE__INIT;
    m.has_cpu = m.has_memory = m.has_requests = m.has_errors = m.has_latency = 1;
    m.cpu = NBP_FIX_CPU;
    m.memory = NBP_FIX_MEMORY;
    m.requests = NBP_FIX_REQUESTS;
    m.errors = NBP_FIX_ERRORS;
    m.latency = NBP_FIX_LATENCY;
    Alert a = DIALOGUE__DASHBOARD__ALERT_TRIGGERED__INIT;
    a.alert_id = (char *)NBP_FIX_ALERT_ID;
    a.has_severity = a.has_timestamp = 1;
    a.severity = (Dialogue__Dashboard__Severity)NBP_FIX_SEVERITY;
    a.message = (char *)NBP_FIX_MESSAGE;
    a.timestamp = NBP_FIX_TIMESTAMP;

    uint8_t buf[2048];
    size_t len = dialogue__dashboard__metrics_update__get_packed_size(&m);
    if (len > sizeof(buf) || dialogue__dashboard__metrics_update__pack(&m, buf) != len) {
        fprintf(stderr, "pbc-check: MetricsUpdate packs to %zu bytes, buffer %zu\n", len,
                sizeof(buf));
        return 1;
    }
    print_hex("metrics:update", buf, len);
    len = dialogue__dashboard__alert_triggered__get_packed_size(&a);
    if (len > sizeof(buf) || dialogue__dashboard__alert_triggered__pack(&a, buf) != len) {
        fprintf(stderr, "pbc-check: AlertTriggered packs to %zu bytes, buffer %zu\n", len,
                sizeof(buf));
        return 1;
    }
    print_hex("alert:triggered", buf, len);
    return 0;
}

static void print_double(const char *name, int has, double v) {
    if (has)
        printf("\t%s=%.17g", name, v);
    else
        printf("\t%s=-", name);
}

/* Decodes one "EVENT HEX" line; 0, or -1 with the reason on stderr. */
static int decode_line(int lineno, char *line) {
    static const char hexdigits[] = "0123456789abcdef";
    uint8_t buf[4096];
    size_t n = 0;
    char *hex = strchr(line, ' ');
    if (hex == NULL) {
        fprintf(stderr, "pbc-check: line %d: no space between event and hex\n", lineno);
        return -1;
    }
    *hex++ = '\0';
    hex[strcspn(hex, "\r\n")] = '\0';
    for (; hex[0] != '\0' && hex[1] != '\0' && n < sizeof(buf); hex += 2) {
        const char *hi = strchr(hexdigits, hex[0]), *lo = strchr(hexdigits, hex[1]);
        if (hi == NULL || lo == NULL)
            break;
        buf[n++] = (uint8_t)((hi - hexdigits) << 4 | (lo - hexdigits));
    }
    if (hex[0] != '\0') {
        fprintf(stderr, "pbc-check: line %d (%s): bad or too long hex at '%.8s'\n", lineno,
                line, hex);
        return -1;
    }
    if (strcmp(line, "metrics:update") == 0) {
        Metrics *m = dialogue__dashboard__metrics_update__unpack(NULL, n, buf);
        if (m == NULL)
            goto undecodable;
        printf("%s", line);
        print_double("cpu", m->has_cpu, m->cpu);
        print_double("memory", m->has_memory, m->memory);
        print_double("requests", m->has_requests, m->requests);
        print_double("errors", m->has_errors, m->errors);
        print_double("latency", m->has_latency, m->latency);
        printf("\n");
        dialogue__dashboard__metrics_update__free_unpacked(m, NULL);
        return 0;
    }
    if (strcmp(line, "alert:triggered") == 0) {
        Alert *a = dialogue__dashboard__alert_triggered__unpack(NULL, n, buf);
        if (a == NULL)
            goto undecodable;
        printf("%s\talert_id=%s", line, a->alert_id != NULL ? a->alert_id : "-");
        if (a->has_severity)
            printf("\tseverity=%d", (int)a->severity);
        else
            printf("\tseverity=-");
        printf("\tmessage=%s", a->message != NULL ? a->message : "-");
        if (a->has_timestamp)
            printf("\ttimestamp=%" PRIu64 "\n", a->timestamp);
        else
            printf("\ttimestamp=-\n");
        dialogue__dashboard__alert_triggered__free_unpacked(a, NULL);
        return 0;
    }
    fprintf(stderr, "pbc-check: line %d: unknown event '%s'\n", lineno, line);
    return -1;

undecodable:
    fprintf(stderr, "pbc-check: line %d: %zu bytes do not decode as %s\n", lineno, n, line);
    return -1;
}

static int decode(void) {
    char line[8192];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), stdin) != NULL)
        if (decode_line(++lineno, line) != 0)
            rc = 1;
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--dump") == 0)
        return dump();
    if (argc == 2 && strcmp(argv[1], "--decode") == 0)
        return decode();
    fprintf(stderr, "usage: %s --dump | --decode < lines\n", argv[0]);
    return 2;
}
