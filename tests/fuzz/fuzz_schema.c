/* fuzz_schema.c: libFuzzer harness for the wire-format validator
 * (dlg_schema_validate): the input is validated as each event of
 * dashboard.proto and of the nested/recursive fixtures of tests/schema/. A
 * dashboard payload the validator accepts must also parse with protobuf-c's
 * generated code and hold values inside the rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_schema.h"
#include "events/dashboard.pb-c.h"
#include "fuzz_sets.h"
#include "fuzz_util.h"

/* The events checked, in the order of ev[] below. */
static const char *const event_names[] = {
    "metrics:update", "alert:triggered", "test:everything", "test:legacy", "test:presence",
};
#define N_EVENTS (sizeof(event_names) / sizeof(event_names[0]))

typedef struct harness {
    dlg_schema *schema;
    const dlg_schema_event *ev[N_EVENTS];
} harness;

/* libFuzzer's entry points carry no context pointer, so the registry built
 * once in LLVMFuzzerInitialize lives here; inputs only read it. */
static harness *g_h;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    harness *h = calloc(1, sizeof(*h));
    FUZZ_CHECK(h != NULL, "out of memory");
    h->schema = fuzz_schema_load(FUZZ_SET_DASHBOARD | FUZZ_SET_FIXTURES);
    for (size_t i = 0; i < N_EVENTS; i++) {
        h->ev[i] = dlg_schema_event_find(h->schema, event_names[i]);
        FUZZ_CHECK(h->ev[i] != NULL, "event %s is not in the embedded sets", event_names[i]);
    }
    g_h = h;
    return 0;
}

static void check_metrics(const uint8_t *data, size_t size) {
    Dialogue__Dashboard__MetricsUpdate *m =
        dialogue__dashboard__metrics_update__unpack(NULL, size, data);
    FUZZ_CHECK(m != NULL, "metrics:update accepted by the validator, refused by protobuf-c");
    FUZZ_CHECK(m->has_cpu && m->has_memory && m->has_requests && m->has_errors &&
                   m->has_latency,
               "metrics:update accepted without every required field");
    FUZZ_CHECK(m->cpu >= 0 && m->cpu <= 100, "cpu %g accepted (rule 0..100)", m->cpu);
    FUZZ_CHECK(m->memory >= 0 && m->memory <= 100, "memory %g accepted (rule 0..100)",
               m->memory);
    FUZZ_CHECK(m->requests >= 0 && m->errors >= 0 && m->latency >= 0,
               "negative or NaN rate accepted: %g %g %g", m->requests, m->errors, m->latency);
    dialogue__dashboard__metrics_update__free_unpacked(m, NULL);
}

static void check_alert(const uint8_t *data, size_t size) {
    Dialogue__Dashboard__AlertTriggered *a =
        dialogue__dashboard__alert_triggered__unpack(NULL, size, data);
    FUZZ_CHECK(a != NULL, "alert:triggered accepted by the validator, refused by protobuf-c");
    FUZZ_CHECK(a->alert_id && a->message && a->has_severity && a->has_timestamp,
               "alert:triggered accepted without every required field");
    FUZZ_CHECK(a->severity >= 0 && a->severity <= 3, "severity %d accepted", (int)a->severity);
    /* strlen, not the wire length: protobuf-c stops C strings at a NUL,
     * which is valid UTF-8, so only the upper bound carries over. */
    FUZZ_CHECK(strlen(a->alert_id) <= 128 && strlen(a->message) <= 1024,
               "alert_id of %zu or message of %zu bytes accepted", strlen(a->alert_id),
               strlen(a->message));
    dialogue__dashboard__alert_triggered__free_unpacked(a, NULL);
}

static int validate(const dlg_schema_event *ev, const uint8_t *data, size_t size,
                    unsigned flags, size_t small) {
    char err[512];
    err[0] = 0;
    int rc = dlg_schema_validate(ev, data, size, flags, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == DLG_ESCHEMA, "%s: unexpected return %d", ev->name, rc);
    if (rc != 0) {
        size_t n = strlen(ev->name);
        FUZZ_CHECK(strncmp(err, ev->name, n) == 0 && (err[n] == '.' || err[n] == ':'),
                   "message does not start with the event: \"%s\"", err);
    }
    /* The same call into an exactly sized heap buffer: ASan sees any write
     * past errlen, and the verdict must not depend on the buffer. */
    char *tiny = malloc(small);
    FUZZ_CHECK(tiny != NULL, "out of memory");
    int rc2 = dlg_schema_validate(ev, data, size, flags, tiny, small);
    FUZZ_CHECK(rc2 == rc, "%s: %d with errlen %zu, %d with 512", ev->name, rc2, small, rc);
    FUZZ_CHECK(rc == 0 || memchr(tiny, 0, small) != NULL, "message not terminated in %zu bytes",
               small);
    free(tiny);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t small = 1 + (size ? data[size - 1] % 24 : 0);
    for (size_t i = 0; i < N_EVENTS; i++) {
        const dlg_schema_event *ev = g_h->ev[i];
        int strict = validate(ev, data, size, 0, small);
        int loose = validate(ev, data, size, DLG_SCHEMA_ALLOW_UNKNOWN, small);
        FUZZ_CHECK(strict != 0 || loose == 0,
                   "%s: accepted strictly but refused with unknown fields allowed", ev->name);
        /* Unknown fields aside, what passes must parse: check the loose verdict. */
        if (loose == 0 && i == 0)
            check_metrics(data, size);
        if (loose == 0 && i == 1)
            check_alert(data, size);
    }
    return 0;
}
