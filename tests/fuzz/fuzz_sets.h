/* fuzz_sets.h: the descriptor sets and test key that fuzz.ninja embeds into
 * the harnesses (rule embed), and a registry built from them. */
#ifndef DLG_FUZZ_SETS_H
#define DLG_FUZZ_SETS_H

#include "dlg_schema.h"

/* Build-time copies (fuzz.ninja, rule embed) of the descriptor sets and the
 * PEM public key the harnesses need; read-only. */
extern const unsigned char fuzz_dashboard_pb[];  /* proto/events/dashboard.proto */
extern const unsigned long fuzz_dashboard_pb_len;
extern const unsigned char fuzz_fixtures_pb[];   /* tests/schema/fixtures{,2}.proto */
extern const unsigned long fuzz_fixtures_pb_len;
extern const unsigned char fuzz_alltypes_pb[];   /* tests/pbjson/alltypes.proto */
extern const unsigned long fuzz_alltypes_pb_len;
extern const unsigned char fuzz_es256_pub[];     /* tests/fuzz/es256_pub.pem */
extern const unsigned long fuzz_es256_pub_len;

/* Which embedded sets fuzz_schema_load adds. */
enum { FUZZ_SET_DASHBOARD = 1, FUZZ_SET_FIXTURES = 2, FUZZ_SET_ALLTYPES = 4 };

/* A new registry holding the sets named in `sets` (FUZZ_SET_* bits). The
 * caller owns it. Aborts when a set does not load: the harness would
 * otherwise fuzz nothing. */
dlg_schema *fuzz_schema_load(unsigned sets);

#endif
