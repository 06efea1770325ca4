/* fuzz_sets.c: builds schema registries from the embedded descriptor sets
 * (see fuzz_sets.h). */
#include "fuzz_sets.h"

#include "fuzz_util.h"

static void add_set(dlg_schema *s, const char *name, const unsigned char *data,
                    unsigned long len) {
    char err[512];
    int rc = dlg_schema_add_set(s, data, len, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "embedded descriptor set %s does not load: %s", name, err);
}

dlg_schema *fuzz_schema_load(unsigned sets) {
    dlg_schema *s = NULL;
    FUZZ_CHECK(dlg_schema_new(&s) == 0, "cannot create a schema registry");
    if (sets & FUZZ_SET_DASHBOARD)
        add_set(s, "dashboard.pb", fuzz_dashboard_pb, fuzz_dashboard_pb_len);
    if (sets & FUZZ_SET_FIXTURES)
        add_set(s, "test_fixtures.pb", fuzz_fixtures_pb, fuzz_fixtures_pb_len);
    if (sets & FUZZ_SET_ALLTYPES)
        add_set(s, "alltypes.pb", fuzz_alltypes_pb, fuzz_alltypes_pb_len);
    return s;
}
