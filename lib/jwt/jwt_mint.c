/* jwt_mint.c: HS256 minting for development and tests (`dialoguectl
 * token`): what a verifier of jwt_verify.c accepts, nothing it does not. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dlg_alloc.h"
#include "dlg_base64.h"
#include "dlg_err.h"
#include "dlg_utf8.h"
#include "jwt.h"
#include "jwt_int.h"

#define MAX_TTL (365 * 24 * 3600)

/* ---- minting ------------------------------------------------------------------ */

static int set_new(json_t *obj, const char *key, json_t *val) {
    return val && json_object_set_new(obj, key, val) == 0 ? 0 : DLG_ENOMEM;
}

int dlg_jwt_sign_hs256(const uint8_t *secret, size_t len, const char *kid, const char *sub,
                       const char *const *roles, size_t n_roles, int64_t iat,
                       int64_t ttl_seconds, const char *aud, const char *iss, char **out) {
    if ((kid && kid[0] && !dlg__jwt_name_ok(kid)) || !secret || len < DLG_JWT_MIN_SECRET || len > DLG_JWT_MAX_SECRET || !sub ||
        !dlg__jwt_name_ok(sub) || (n_roles && !roles) || n_roles > DLG_JWT_MAX_ROLES || !out ||
        ttl_seconds < 1 || ttl_seconds > MAX_TTL || iat < 0 ||
        iat > MAX_NUMERIC_DATE - ttl_seconds)
        return DLG_EINVAL;
    for (size_t i = 0; i < n_roles; i++)
        if (!roles[i] || !dlg__jwt_role_ok(roles[i]))
            return DLG_EINVAL;
    if ((aud && aud[0] && !dlg_utf8_valid(aud, strlen(aud))) ||
        (iss && iss[0] && !dlg_utf8_valid(iss, strlen(iss))))
        return DLG_EINVAL;

    int rc = DLG_ENOMEM;
    char *head = NULL, *payload = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *tok = NULL;
    json_t *header = json_object();
    json_t *claims = json_object();
    if (!header || !claims)
        goto fail;
    if ((rc = set_new(header, "alg", json_string("HS256"))) ||
        (rc = set_new(header, "typ", json_string("JWT"))))
        goto fail;
    if (kid && kid[0] && (rc = set_new(header, "kid", json_string(kid))))
        goto fail;
    if (iss && iss[0] && (rc = set_new(claims, "iss", json_string(iss))))
        goto fail;
    if ((rc = set_new(claims, "sub", json_string(sub))))
        goto fail;
    if (aud && aud[0] && (rc = set_new(claims, "aud", json_string(aud))))
        goto fail;
    if (n_roles == 1) {
        if ((rc = set_new(claims, "role", json_string(roles[0]))))
            goto fail;
    } else if (n_roles > 1) {
        json_t *arr = json_array();
        if ((rc = set_new(claims, "role", arr)))
            goto fail;
        rc = DLG_ENOMEM;
        for (size_t i = 0; i < n_roles; i++)
            if (json_array_append_new(arr, json_string(roles[i])) != 0)
                goto fail;
    }
    if ((rc = set_new(claims, "iat", json_integer(iat))) ||
        (rc = set_new(claims, "exp", json_integer(iat + ttl_seconds))))
        goto fail;
    rc = DLG_ENOMEM;
    if (!(head = json_dumps(header, JSON_COMPACT)) ||
        !(payload = json_dumps(claims, JSON_COMPACT)))
        goto fail;
    h64 = dlg_base64_encode((const uint8_t *)head, strlen(head), DLG_B64_URL, NULL);
    p64 = dlg_base64_encode((const uint8_t *)payload, strlen(payload), DLG_B64_URL, NULL);
    if (!h64 || !p64)
        goto fail;
    size_t hl = strlen(h64), pl = strlen(p64);
    /* header.payload.signature: the signature (43 chars) fits in 64 */
    if (!(tok = dlg_malloc(hl + 1 + pl + 1 + 64)))
        goto fail;
    memcpy(tok, h64, hl);
    tok[hl] = '.';
    memcpy(tok + hl + 1, p64, pl + 1);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)len, (const uint8_t *)tok, hl + 1 + pl, mac,
              &maclen)) {
        ERR_clear_error();
        rc = DLG_EINTERNAL;
        goto fail;
    }
    s64 = dlg_base64_encode(mac, maclen, DLG_B64_URL, NULL);
    OPENSSL_cleanse(mac, sizeof mac);
    if (!s64)
        goto fail;
    tok[hl + 1 + pl] = '.';
    memcpy(tok + hl + 1 + pl + 1, s64, strlen(s64) + 1);
    *out = tok;
    tok = NULL;
    rc = 0;
fail:
    free(tok);
    free(s64);
    free(p64);
    free(h64);
    free(payload);
    free(head);
    json_decref(claims);
    json_decref(header);
    return rc;
}
