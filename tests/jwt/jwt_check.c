/* jwt_check.c: a command-line face on lib/jwt for the interop test
 * (tests/jwt/test_jwt_interop.py), which feeds it tokens made by PyJWT.
 *   jwt_check verify ALG KEYFILE TOKEN [--kid K] [--aud A] [--iss I]
 *                    [--now T] [--roles-claim C]
 *     prints "ok sub=S roles=R1,R2 exp=E" (exit 0) or "rejected: MSG" (1)
 *   jwt_check token ARGS...   runs `dialoguectl token ARGS...` */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlg_err.h"
#include "jwt.h"
#include "token.h"

static int usage(void) {
    fprintf(stderr, "usage: jwt_check verify ALG KEYFILE TOKEN [--kid K] [--aud A] "
                    "[--iss I] [--now T] [--roles-claim C]\n"
                    "       jwt_check token ARGS...\n");
    return 2;
}

static int verify(int argc, char **argv) {
    if (argc < 5 || argc % 2 == 0)
        return usage();
    int alg = dlg_jwt_alg_parse(argv[2]);
    if (alg < 0) {
        fprintf(stderr, "jwt_check: unknown alg \"%s\"\n", argv[2]);
        return 2;
    }
    const char *kid = NULL, *aud = NULL, *iss = NULL, *roles_claim = NULL;
    int64_t now = (int64_t)time(NULL);
    for (int i = 5; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--kid") == 0)
            kid = argv[i + 1];
        else if (strcmp(argv[i], "--aud") == 0)
            aud = argv[i + 1];
        else if (strcmp(argv[i], "--iss") == 0)
            iss = argv[i + 1];
        else if (strcmp(argv[i], "--roles-claim") == 0)
            roles_claim = argv[i + 1];
        else if (strcmp(argv[i], "--now") == 0)
            now = strtoll(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    int rc = dlg_jwt_verifier_new(&v);
    if (rc == 0)
        rc = alg == DLG_JWT_HS256 ? dlg_jwt_add_secret_file(v, kid, argv[3], err, sizeof err)
                                  : dlg_jwt_add_public_key_file(v, kid, alg, argv[3], err,
                                                                sizeof err);
    if (rc == 0)
        rc = dlg_jwt_set_audience(v, aud);
    if (rc == 0)
        rc = dlg_jwt_set_issuer(v, iss);
    if (rc == 0)
        rc = dlg_jwt_set_roles_claim(v, roles_claim);
    if (rc) {
        fprintf(stderr, "jwt_check: %s\n", err[0] ? err : dlg_strerror(rc));
        dlg_jwt_verifier_free(v);
        return 2;
    }
    dlg_jwt_claims c;
    rc = dlg_jwt_verify(v, argv[4], strlen(argv[4]), now, &c, err, sizeof err);
    dlg_jwt_verifier_free(v);
    if (rc) {
        printf("rejected: %s\n", err);
        return 1;
    }
    printf("ok sub=%s roles=", c.sub);
    for (size_t i = 0; i < c.n_roles; i++)
        printf("%s%s", i ? "," : "", c.roles[i]);
    printf(" exp=%lld\n", (long long)c.exp);
    dlg_jwt_claims_free(&c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return verify(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "token") == 0)
        return dlg_cli_token_main(argc - 1, argv + 1);
    return usage();
}
