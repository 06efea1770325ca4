/* token.c: `dialoguectl token`, minting development HS256 tokens (see
 * token.h); argument parsing and the secret file, the signing is jwt.c's. */
#include "token.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "dlg_err.h"
#include "jwt.h"

#define PROG "dialoguectl token"

static const char usage[] =
    "usage: dialoguectl token --secret-file FILE --sub NAME [--role ROLE]...\n"
    "                         [--ttl DURATION] [--aud AUDIENCE] [--iss ISSUER]\n"
    "                         [--kid KEY_ID]\n"
    "\n"
    "Mints an HS256 JSON Web Token and prints it on stdout.\n"
    "FOR DEVELOPMENT AND TESTS ONLY: anyone holding the secret file can mint\n"
    "any identity with any role. In production, tokens come from your identity\n"
    "provider, preferably signed with RS256, ES256 or EdDSA so the server holds\n"
    "only a public key.\n"
    "\n"
    "  --secret-file FILE  the HS256 secret the server is configured with\n"
    "                      (auth.jwt.keys[].secret_file); at least 32 bytes; one\n"
    "                      final newline is ignored\n"
    "  --sub NAME          the user id (sub claim), 1..255 bytes\n"
    "  --role ROLE         a role (role claim); repeat for several\n"
    "  --ttl DURATION      lifetime: 45s, 30m, 1h, 2d or plain seconds; at most\n"
    "                      365d [1h]\n"
    "  --aud AUDIENCE      aud claim (must match auth.jwt.audience if set)\n"
    "  --iss ISSUER        iss claim (must match auth.jwt.issuer if set)\n"
    "  --kid KEY_ID        kid header (when the server's key has a kid)\n"
    "  --help              show this text\n"
    "\n"
    "Example:\n"
    "  head -c 32 /dev/urandom | base64 > dev-secret\n"
    "  dialoguectl token --secret-file dev-secret --sub alice --role admin --ttl 30m\n";

typedef struct token_args {
    const char *secret_file;
    const char *sub;
    const char *aud;
    const char *iss;
    const char *kid;
    const char *roles[DLG_JWT_MAX_ROLES];
    size_t n_roles;
    int64_t ttl;
} token_args;

/* "45s", "30m", "1h", "2d" or "3600" -> seconds in 1..365 days; -1 if not. */
static int64_t parse_ttl(const char *s) {
    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || n == 0 || n > 365ULL * 24 * 3600)
        return -1;
    unsigned long long mult = 1;
    if (*end) {
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return -1;
        }
        if (end[1])
            return -1;
    }
    if (n > 365ULL * 24 * 3600 / mult)
        return -1;
    return (int64_t)(n * mult);
}

/* Matches argv[*i] against --name, taking the value from "--name=V" or the
 * next argument. 1 = matched (*val set), 0 = another option, -1 = matched
 * but the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

/* 0 = parsed, 1 = --help shown, 2 = usage error (reported on err). */
static int parse_args(int argc, char **argv, token_args *a, FILE *out, FILE *err) {
    static const char *const names[] = {"--secret-file", "--sub", "--role", "--ttl",
                                        "--aud", "--iss", "--kid"};
    const char *ttl = "1h";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, out);
            return 1;
        }
        int matched = 0;
        for (size_t k = 0; k < sizeof names / sizeof names[0] && !matched; k++) {
            const char *val = NULL;
            int m = opt_value(argc, argv, &i, names[k], &val);
            if (m < 0) {
                fprintf(err, PROG ": %s needs a value\n", names[k]);
                return 2;
            }
            if (m == 0)
                continue;
            matched = 1;
            switch (k) {
            case 0: a->secret_file = val; break;
            case 1: a->sub = val; break;
            case 2:
                if (a->n_roles == DLG_JWT_MAX_ROLES) {
                    fprintf(err, PROG ": --role: at most %d roles\n", DLG_JWT_MAX_ROLES);
                    return 2;
                }
                a->roles[a->n_roles++] = val;
                break;
            case 3: ttl = val; break;
            case 4: a->aud = val; break;
            case 5: a->iss = val; break;
            case 6: a->kid = val; break;
            }
        }
        if (!matched) {
            fprintf(err, PROG ": unknown argument \"%s\" (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (!a->secret_file || !a->secret_file[0]) {
        fprintf(err, PROG ": --secret-file is required (try --help)\n");
        return 2;
    }
    if (!a->sub || !a->sub[0]) {
        fprintf(err, PROG ": --sub is required (try --help)\n");
        return 2;
    }
    if (!dlg_jwt_name_valid(a->sub, false)) {
        fprintf(err, PROG ": --sub \"%s\": expected 1..%d bytes of UTF-8 without "
                "control characters\n", a->sub, DLG_JWT_MAX_NAME);
        return 2;
    }
    if (a->kid && a->kid[0] && !dlg_jwt_name_valid(a->kid, false)) {
        fprintf(err, PROG ": --kid \"%s\": expected 1..%d bytes of UTF-8 without "
                "control characters\n", a->kid, DLG_JWT_MAX_NAME);
        return 2;
    }
    for (size_t r = 0; r < a->n_roles; r++) {
        if (!dlg_jwt_name_valid(a->roles[r], true)) {
            fprintf(err, PROG ": --role \"%s\": expected 1..%d bytes of UTF-8 without "
                    "control characters, and not \"*\"\n", a->roles[r], DLG_JWT_MAX_NAME);
            return 2;
        }
    }
    if ((a->ttl = parse_ttl(ttl)) < 0) {
        fprintf(err, PROG ": --ttl \"%s\": expected 45s, 30m, 1h, 2d or seconds, "
                "1s..365d\n", ttl);
        return 2;
    }
    return 0;
}

int dlg_cli_token_run(int argc, char **argv, FILE *out, FILE *err) {
    token_args a = {0};
    int rc = parse_args(argc, argv, &a, out, err);
    if (rc)
        return rc == 1 ? 0 : rc;

    char why[256] = "";
    uint8_t *secret = NULL;
    size_t len = 0;
    char *tok = NULL;
    rc = dlg_jwt_read_secret_file(a.secret_file, &secret, &len, why, sizeof why);
    if (rc) {
        fprintf(err, PROG ": --secret-file %s\n", why[0] ? why : dlg_strerror(rc));
        return 1;
    }
    rc = dlg_jwt_sign_hs256(secret, len, a.kid, a.sub, a.roles, a.n_roles,
                            (int64_t)time(NULL), a.ttl, a.aud, a.iss, &tok);
    OPENSSL_cleanse(secret, len);
    free(secret);
    if (rc == DLG_EINVAL) {
        /* Secret, names and ttl were checked above: only aud/iss are left. */
        fprintf(err, PROG ": --aud and --iss must be valid UTF-8\n");
        return 2;
    }
    if (rc) {
        fprintf(err, PROG ": cannot mint token: %s\n", dlg_strerror(rc));
        return 1;
    }
    fprintf(out, "%s\n", tok);
    free(tok);
    if (fflush(out) != 0) {
        fprintf(err, PROG ": cannot write the token: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int dlg_cli_token_main(int argc, char **argv) {
    return dlg_cli_token_run(argc, argv, stdout, stderr);
}
