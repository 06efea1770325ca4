/* jwt_int.h: what the parts of the jwt module share: the verifier's
 * layout (jwt_keys.c builds it, jwt_verify.c reads it) and the helpers of
 * jwt_common.c. Not for use outside lib/jwt. */
#ifndef DLG_JWT_INT_H
#define DLG_JWT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "jwt.h"

/* NumericDate values past 9999-12-31T23:59:59Z are refused, which keeps the
 * arithmetic free of overflow and the dates printable. */
#define MAX_NUMERIC_DATE INT64_C(253402300799)

typedef struct jwt_key {
    char *kid;           /* NULL = default key */
    int alg;             /* DLG_JWT_* */
    uint8_t *secret;     /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey;      /* RS256, ES256, EdDSA */
} jwt_key;

struct dlg_jwt_verifier {
    jwt_key *keys;
    size_t n_keys;
    char *issuer;        /* NULL = not checked */
    char *audience;      /* NULL = not checked */
    char *roles_claim;   /* never NULL */
    int64_t leeway;
    bool require_exp;
};

/* The key of v whose kid is exactly kid, or NULL (default keys, which have
 * no kid, are never returned). */
const jwt_key *dlg__jwt_find_kid(const dlg_jwt_verifier *v, const char *kid);

/* Copies attacker-controlled text (kid, alg) into dst (dstlen bytes) for a
 * message: printable ASCII only and cut short, so a header cannot forge log
 * lines or flood them. */
void dlg__jwt_quote_safe(char *dst, size_t dstlen, const char *src);

/* A user id, kid or role: 1..DLG_JWT_MAX_NAME bytes of UTF-8 without control
 * characters (it ends up in logs, in access checks and on the wire); a role
 * is also not "*". */
bool dlg__jwt_name_ok(const char *s);
bool dlg__jwt_role_ok(const char *s);

/* Strict base64url decode (RFC 4648 section 5, dlg_base64.h): only the URL alphabet, no
 * '=', and the bits a short final group leaves unused must be zero, so each
 * value has exactly one encoding (otherwise several tokens would carry the
 * same signature bytes). *out is malloc'ed (at least 1 byte, so an empty
 * segment is not NULL). 0, DLG_EPROTO or DLG_ENOMEM. */
int dlg__jwt_b64url_decode(const char *in, size_t n, uint8_t **out, size_t *outlen);


/* Reads at most max bytes of path into a malloc'ed buffer (*out, *len); a
 * longer file is DLG_EINVAL (too large), not silently cut. 0, DLG_EIO,
 * DLG_EINVAL or DLG_ENOMEM with err naming the file. */
int dlg__jwt_read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err,
                       size_t errlen);

#endif
