/* jwt_verify.c: token verification against a verifier (jwt_keys.c):
 * segments, header, key selection by kid, signatures through OpenSSL 3,
 * claim checks; and the claims it hands out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_utf8.h"
#include "jwt.h"
#include "jwt_int.h"

static void format_time(char *dst, size_t dstlen, int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(dst, dstlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(dst, dstlen, "%lld", (long long)t);
}

/* ---- signatures ------------------------------------------------------------ */

/* 1 = valid, 0 = invalid, DLG_E* = could not check. Leaves no error on the
 * thread's OpenSSL queue: the TLS code in the same thread reads that queue
 * and a stale entry would be blamed on the wrong connection. */
static int digest_verify(EVP_PKEY *pkey, const EVP_MD *md, const uint8_t *sig, size_t siglen,
                         const uint8_t *msg, size_t n) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return DLG_ENOMEM;
    int ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* JOSE carries ES256 signatures as r||s, 32 bytes each; OpenSSL wants the
 * DER ECDSA-Sig-Value. */
static int es256_verify(EVP_PKEY *pkey, const uint8_t *sig, const uint8_t *msg, size_t n) {
    int rc = DLG_ENOMEM;
    uint8_t *der = NULL;
    BIGNUM *r = BN_bin2bn(sig, 32, NULL);
    BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
    ECDSA_SIG *es = ECDSA_SIG_new();
    if (!r || !s || !es)
        goto done;
    if (!ECDSA_SIG_set0(es, r, s))
        goto done;
    r = s = NULL; /* owned by es now */
    int derlen = i2d_ECDSA_SIG(es, &der);
    if (derlen <= 0)
        goto done;
    rc = digest_verify(pkey, EVP_sha256(), der, (size_t)derlen, msg, n);
done:
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    ERR_clear_error();
    return rc;
}

static int hs256_verify(const jwt_key *k, const uint8_t *sig, size_t siglen,
                        const uint8_t *msg, size_t n) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, msg, n, mac, &maclen)) {
        ERR_clear_error();
        return DLG_EINTERNAL;
    }
    int ok = siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* Signature lengths are fixed by alg and key; checking them first gives a
 * clear message and keeps odd lengths away from the DER conversion. */
static int sig_verify(const jwt_key *k, const uint8_t *sig, size_t siglen, const uint8_t *msg,
                      size_t n, char *err, size_t errlen) {
    switch (k->alg) {
    case DLG_JWT_HS256:
        return hs256_verify(k, sig, siglen, msg, n);
    case DLG_JWT_RS256:
        if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
            dlg_errf(err, errlen, "malformed token: RS256 signature is %zu bytes, expected %d",
                   siglen, EVP_PKEY_get_size(k->pkey));
            return DLG_EPROTO;
        }
        return digest_verify(k->pkey, EVP_sha256(), sig, siglen, msg, n);
    case DLG_JWT_ES256:
        if (siglen != 64) {
            dlg_errf(err, errlen, "malformed token: ES256 signature is %zu bytes, expected 64",
                   siglen);
            return DLG_EPROTO;
        }
        return es256_verify(k->pkey, sig, msg, n);
    case DLG_JWT_EDDSA:
        if (siglen != 64) {
            dlg_errf(err, errlen, "malformed token: EdDSA signature is %zu bytes, expected 64",
                   siglen);
            return DLG_EPROTO;
        }
        return digest_verify(k->pkey, NULL, sig, siglen, msg, n);
    }
    return DLG_EINTERNAL;
}

/* ---- verification ------------------------------------------------------------ */

void dlg_jwt_claims_free(dlg_jwt_claims *c) {
    if (!c)
        return;
    free(c->sub);
    for (size_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    free(c->roles);
    memset(c, 0, sizeof *c);
}

int dlg_jwt_claims_copy(dlg_jwt_claims *dst, const dlg_jwt_claims *src) {
    if (!dst)
        return DLG_EINVAL;
    memset(dst, 0, sizeof *dst);
    if (!src)
        return DLG_EINVAL;
    dlg_jwt_claims c = {.exp = src->exp};
    if (src->sub && !(c.sub = dlg_strdup(src->sub)))
        goto fail;
    if (src->n_roles) {
        c.roles = dlg_calloc(src->n_roles, sizeof *c.roles);
        if (!c.roles)
            goto fail;
        for (; c.n_roles < src->n_roles; c.n_roles++)
            if (!(c.roles[c.n_roles] = dlg_strdup(src->roles[c.n_roles])))
                goto fail;
    }
    *dst = c;
    return 0;
fail:
    dlg_jwt_claims_free(&c);
    return DLG_ENOMEM;
}

int64_t dlg_jwt_session_deadline(const dlg_jwt_verifier *v, const dlg_jwt_claims *c) {
    if (!c || c->exp == 0)
        return 0;
    return c->exp + (v ? v->leeway : 0);
}

/* Parses one JSON segment; only objects are claims sets or headers. */
static json_t *parse_object(const uint8_t *buf, size_t n) {
    json_error_t jerr;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* NumericDate: integer or fractional seconds in [0, year 9999]. A fraction is
 * rounded towards rejection: down for exp, up for nbf and iat. 1 = present,
 * 0 = absent, DLG_EPROTO = present but not a usable date. */
static int numeric_date(json_t *claims, const char *name, bool round_up, int64_t *out) {
    json_t *j = json_object_get(claims, name);
    if (!j)
        return 0;
    if (json_is_integer(j)) {
        json_int_t t = json_integer_value(j);
        if (t < 0 || t > MAX_NUMERIC_DATE)
            return DLG_EPROTO;
        *out = (int64_t)t;
        return 1;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!(d >= 0 && d <= (double)MAX_NUMERIC_DATE))
            return DLG_EPROTO;
        int64_t t = (int64_t)d; /* truncation = floor for d >= 0 */
        if (round_up && (double)t < d)
            t++;
        *out = t;
        return 1;
    }
    return DLG_EPROTO;
}

static int check_times(const dlg_jwt_verifier *v, json_t *claims, int64_t now, int64_t *exp,
                       char *err, size_t errlen) {
    char when[40];
    int64_t t = 0;
    int rc = numeric_date(claims, "exp", false, &t);
    if (rc < 0) {
        dlg_errf(err, errlen, "malformed token: exp is not a NumericDate");
        return DLG_EAUTH;
    }
    if (rc == 0 && v->require_exp) {
        dlg_errf(err, errlen, "token has no exp claim");
        return DLG_EAUTH;
    }
    /* exp and leeway are bounded, so exp + leeway cannot overflow; now is
     * the caller's and is never put into a sum. */
    if (rc == 1 && t + v->leeway <= now) {
        format_time(when, sizeof when, t);
        dlg_errf(err, errlen, "token expired at %s", when);
        return DLG_EAUTH;
    }
    /* exp 0 would read as "none" in the claims; 1970 is long past anyway. */
    *exp = rc == 1 ? (t > 0 ? t : 1) : 0;

    rc = numeric_date(claims, "nbf", true, &t);
    if (rc < 0) {
        dlg_errf(err, errlen, "malformed token: nbf is not a NumericDate");
        return DLG_EAUTH;
    }
    if (rc == 1 && t - v->leeway > now) {
        format_time(when, sizeof when, t);
        dlg_errf(err, errlen, "token not valid before %s", when);
        return DLG_EAUTH;
    }
    rc = numeric_date(claims, "iat", true, &t);
    if (rc < 0) {
        dlg_errf(err, errlen, "malformed token: iat is not a NumericDate");
        return DLG_EAUTH;
    }
    if (rc == 1 && t - v->leeway > now) {
        format_time(when, sizeof when, t);
        dlg_errf(err, errlen, "token issued in the future (iat %s)", when);
        return DLG_EAUTH;
    }
    return 0;
}

static int check_iss_aud(const dlg_jwt_verifier *v, json_t *claims, char *err, size_t errlen) {
    if (v->issuer) {
        json_t *iss = json_object_get(claims, "iss");
        if (!iss) {
            dlg_errf(err, errlen, "token has no iss claim");
            return DLG_EAUTH;
        }
        if (!json_is_string(iss) || strcmp(json_string_value(iss), v->issuer) != 0) {
            dlg_errf(err, errlen, "token issuer does not match");
            return DLG_EAUTH;
        }
    }
    json_t *aud = json_object_get(claims, "aud");
    if (!v->audience && aud) {
        /* RFC 7519 4.1.3: a token meant for a named audience must be
         * refused by a recipient that does not identify itself with it,
         * and a server without an audience identifies with none. */
        dlg_errf(err, errlen, "token names an audience (aud) but this server has none "
                              "configured (auth.jwt.audience)");
        return DLG_EAUTH;
    }
    if (v->audience) {
        bool match = false;
        if (!aud) {
            dlg_errf(err, errlen, "token has no aud claim");
            return DLG_EAUTH;
        }
        if (json_is_string(aud)) {
            match = strcmp(json_string_value(aud), v->audience) == 0;
        } else if (json_is_array(aud)) {
            size_t i;
            json_t *a;
            json_array_foreach(aud, i, a) {
                if (json_is_string(a) && strcmp(json_string_value(a), v->audience) == 0)
                    match = true;
            }
        }
        if (!match) {
            dlg_errf(err, errlen, "token audience does not match");
            return DLG_EAUTH;
        }
    }
    return 0;
}

static int take_role(dlg_jwt_claims *c, json_t *j, const char *claim, char *err,
                     size_t errlen) {
    if (!json_is_string(j) || !dlg__jwt_role_ok(json_string_value(j))) {
        dlg_errf(err, errlen,
               "malformed token: %s claim entries must be role names of 1..%d bytes", claim,
               DLG_JWT_MAX_NAME);
        return DLG_EAUTH;
    }
    char *r = dlg_strdup(json_string_value(j));
    if (!r)
        return DLG_ENOMEM;
    c->roles[c->n_roles++] = r;
    return 0;
}

static int take_claims(const dlg_jwt_verifier *v, json_t *claims, dlg_jwt_claims *c,
                       char *err, size_t errlen) {
    json_t *sub = json_object_get(claims, "sub");
    if (!sub) {
        dlg_errf(err, errlen, "token has no sub claim");
        return DLG_EAUTH;
    }
    if (!json_is_string(sub) || !dlg__jwt_name_ok(json_string_value(sub))) {
        dlg_errf(err, errlen, "malformed token: sub must be a string of 1..%d bytes",
               DLG_JWT_MAX_NAME);
        return DLG_EAUTH;
    }
    if (!(c->sub = dlg_strdup(json_string_value(sub))))
        return DLG_ENOMEM;

    char rname[64];
    dlg__jwt_quote_safe(rname, sizeof rname, v->roles_claim);
    json_t *roles = json_object_get(claims, v->roles_claim);
    if (!roles)
        return 0;
    size_t n = json_is_array(roles) ? json_array_size(roles) : 1;
    if (!json_is_array(roles) && !json_is_string(roles)) {
        dlg_errf(err, errlen, "malformed token: %s claim must be a string or an array", rname);
        return DLG_EAUTH;
    }
    if (n > DLG_JWT_MAX_ROLES) {
        dlg_errf(err, errlen, "token has more than %d roles", DLG_JWT_MAX_ROLES);
        return DLG_EAUTH;
    }
    if (n == 0)
        return 0;
    if (!(c->roles = dlg_calloc(n, sizeof *c->roles)))
        return DLG_ENOMEM;
    if (json_is_string(roles))
        return take_role(c, roles, rname, err, errlen);
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r) {
        int rc = take_role(c, r, rname, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Splits token into its three segments. */
static int split(const char *token, size_t len, const char *seg[3], size_t seglen[3],
                 char *err, size_t errlen) {
    size_t dots = 0;
    for (size_t i = 0; i < len; i++)
        dots += token[i] == '.';
    if (dots != 2) {
        dlg_errf(err, errlen, "malformed token: %zu segments, expected 3", dots + 1);
        return DLG_EAUTH;
    }
    const char *p = token, *end = token + len;
    for (int s = 0; s < 3; s++) {
        const char *dot = s < 2 ? memchr(p, '.', (size_t)(end - p)) : end;
        seg[s] = p;
        seglen[s] = (size_t)(dot - p);
        p = dot + 1;
    }
    return 0;
}

/* Picks the keys the token may be checked against (see jwt.h): the key
 * named by kid, else every default key. */
static int select_keys(const dlg_jwt_verifier *v, json_t *header, const jwt_key **named,
                       char *err, size_t errlen) {
    *named = NULL;
    json_t *kid = json_object_get(header, "kid");
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) == 0 ||
            json_string_length(kid) > DLG_JWT_MAX_NAME) {
            dlg_errf(err, errlen, "malformed token: kid must be a string of 1..%d bytes",
                   DLG_JWT_MAX_NAME);
            return DLG_EAUTH;
        }
        *named = dlg__jwt_find_kid(v, json_string_value(kid));
    }
    if (*named)
        return 0;
    for (size_t i = 0; i < v->n_keys; i++)
        if (!v->keys[i].kid)
            return 0;
    if (v->n_keys == 0) {
        dlg_errf(err, errlen, "no token keys are configured");
    } else if (kid) {
        char q[64];
        dlg__jwt_quote_safe(q, sizeof q, json_string_value(kid));
        dlg_errf(err, errlen, "unknown key id \"%s\"", q);
    } else {
        dlg_errf(err, errlen, "token has no key id (kid) and every configured key has one");
    }
    return DLG_EAUTH;
}

static int check_header(json_t *header, int *alg, char *err, size_t errlen) {
    json_t *a = json_object_get(header, "alg");
    if (!json_is_string(a)) {
        dlg_errf(err, errlen, "malformed token: header has no alg string");
        return DLG_EAUTH;
    }
    const char *as = json_string_value(a);
    *alg = dlg_jwt_alg_parse(as);
    if (*alg < 0) {
        char q[64];
        dlg__jwt_quote_safe(q, sizeof q, as);
        if (strcasecmp(as, "none") == 0)
            dlg_errf(err, errlen, "token alg none is not accepted");
        else
            dlg_errf(err, errlen, "token alg \"%s\" is not supported", q);
        return DLG_EAUTH;
    }
    json_t *typ = json_object_get(header, "typ");
    if (typ && !(json_is_string(typ) && (strcasecmp(json_string_value(typ), "JWT") == 0 ||
                                         strcasecmp(json_string_value(typ),
                                                    "application/jwt") == 0))) {
        dlg_errf(err, errlen, "malformed token: header typ is not JWT");
        return DLG_EAUTH;
    }
    /* RFC 7515 4.1.11: extensions listed in crit must be understood; we
     * understand none. */
    if (json_object_get(header, "crit")) {
        dlg_errf(err, errlen, "token header has crit extensions, which are not supported");
        return DLG_EAUTH;
    }
    return 0;
}

/* Tries the selected keys; 0 when one of them verifies the signature. */
static int check_signature(const dlg_jwt_verifier *v, const jwt_key *named, int alg,
                           const char *token, size_t signed_len, const uint8_t *sig,
                           size_t siglen, char *err, size_t errlen) {
    const jwt_key *first = NULL;
    size_t checked = 0, wrong_shape = 0;
    for (size_t i = 0; i < v->n_keys; i++) {
        const jwt_key *k = &v->keys[i];
        if (named ? k != named : k->kid != NULL)
            continue;
        if (!first)
            first = k;
        /* The server's configuration fixes the algorithm of a key; the
         * header may only agree with it. This is what stops an HS256 token
         * "signed" with an RSA public key from being checked as HMAC. */
        if (k->alg != alg)
            continue;
        int ok = sig_verify(k, sig, siglen, (const uint8_t *)token, signed_len, err, errlen);
        if (ok == 1)
            return 0;
        if (ok == DLG_EPROTO) {
            /* wrong length for this key; another default key (an RSA key of
             * another size during a rotation) may still fit */
            wrong_shape++;
            continue;
        }
        if (ok < 0) {
            dlg_errf(err, errlen, "token signature could not be checked: %s",
                   dlg_strerror(ok));
            return ok;
        }
        checked++;
    }
    if (checked) {
        dlg_errf(err, errlen, "token signature invalid");
        return DLG_EAUTH;
    }
    if (wrong_shape) /* sig_verify wrote the message */
        return DLG_EAUTH;
    /* select_keys made sure there is at least one candidate */
    dlg_errf(err, errlen, "token alg %s does not match key alg %s", dlg_jwt_alg_name(alg),
           first ? dlg_jwt_alg_name(first->alg) : "?");
    return DLG_EAUTH;
}

int dlg_jwt_verify(const dlg_jwt_verifier *v, const char *token, size_t len, int64_t now,
                   dlg_jwt_claims *out, char *err, size_t errlen) {
    if (out)
        memset(out, 0, sizeof *out);
    if (!v || !token || !out) {
        dlg_errf(err, errlen, "invalid argument");
        return DLG_EINVAL;
    }
    dlg_jwt_claims c = {0};
    uint8_t *raw[3] = {NULL, NULL, NULL};
    size_t rawlen[3];
    json_t *header = NULL, *claims = NULL;
    const char *seg[3];
    size_t seglen[3];
    int rc = DLG_EAUTH;

    if (len > DLG_JWT_MAX_TOKEN) {
        dlg_errf(err, errlen, "malformed token: %zu bytes, limit %d", len, DLG_JWT_MAX_TOKEN);
        goto fail;
    }
    if ((rc = split(token, len, seg, seglen, err, errlen)))
        goto fail;
    static const char *const seg_name[] = {"header", "payload", "signature"};
    for (int s = 0; s < 3; s++) {
        rc = dlg__jwt_b64url_decode(seg[s], seglen[s], &raw[s], &rawlen[s]);
        if (rc == DLG_EPROTO) {
            dlg_errf(err, errlen, "malformed token: %s is not base64url", seg_name[s]);
            rc = DLG_EAUTH;
        }
        if (rc)
            goto fail;
    }
    rc = DLG_EAUTH;
    if (!(header = parse_object(raw[0], rawlen[0]))) {
        dlg_errf(err, errlen, "malformed token: header is not a JSON object");
        goto fail;
    }
    int alg;
    const jwt_key *named;
    if ((rc = check_header(header, &alg, err, errlen)))
        goto fail;
    if ((rc = select_keys(v, header, &named, err, errlen)))
        goto fail;
    rc = check_signature(v, named, alg, token, seglen[0] + 1 + seglen[1], raw[2], rawlen[2],
                         err, errlen);
    if (rc)
        goto fail;

    /* Only signed bytes are interpreted past this point. */
    rc = DLG_EAUTH;
    if (!(claims = parse_object(raw[1], rawlen[1]))) {
        dlg_errf(err, errlen, "malformed token: payload is not a JSON object");
        goto fail;
    }
    if ((rc = check_times(v, claims, now, &c.exp, err, errlen)))
        goto fail;
    if ((rc = check_iss_aud(v, claims, err, errlen)))
        goto fail;
    if ((rc = take_claims(v, claims, &c, err, errlen)))
        goto fail;
    *out = c;
    rc = 0;
    goto done;
fail:
    if (rc == DLG_ENOMEM)
        dlg_errf(err, errlen, "out of memory while checking token");
    dlg_jwt_claims_free(&c);
done:
    json_decref(header);
    json_decref(claims);
    for (int s = 0; s < 3; s++)
        free(raw[s]);
    return rc;
}

