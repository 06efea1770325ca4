/* fuzz_jwt.c: libFuzzer harness for dlg_jwt_verify (the token parser is the
 * first thing an unauthenticated client reaches). Build and run by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Icommon \
 *     -Idaemon tests/jwt/fuzz_jwt.c daemon/jwt.c common/dlg_err.c \
 *     -lssl -lcrypto -ljansson -o /tmp/fuzz_jwt
 *   /tmp/fuzz_jwt -max_total_time=60 tests/jwt/corpus
 * The verifier holds an HS256 default key plus a kid'd one, so inputs reach
 * the claim checks whenever the fuzzer finds the HMAC of a seed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "jwt.h"

static const char secret[] = "0123456789abcdef0123456789abcdef-one";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static dlg_jwt_verifier *v; /* built once: harness state, not product code */
    if (!v) {
        if (dlg_jwt_verifier_new(&v) != 0)
            abort();
        dlg_jwt_add_hmac_key(v, NULL, (const uint8_t *)secret, sizeof secret - 1);
        dlg_jwt_add_hmac_key(v, "k1", (const uint8_t *)secret, sizeof secret - 1);
        dlg_jwt_set_audience(v, "dialogue");
    }
    dlg_jwt_claims c;
    char err[128];
    if (dlg_jwt_verify(v, (const char *)data, size, 1800000000, &c, err, sizeof err) == 0)
        dlg_jwt_claims_free(&c);
    return 0;
}
