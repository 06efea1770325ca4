/* jwt.c: the JWT verifier and HS256 minting of jwt.h: strict base64url,
 * key selection by kid, signature checks through OpenSSL 3, claim checks. */
#include "jwt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dlg_err.h"
#include "dlg_utf8.h"

/* A PEM public key or certificate is a few KiB; anything far larger is not
 * what the operator meant to point at. */
#define MAX_PEM_FILE (64 * 1024)
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384 /* bounds the cost an attacker can make us pay */
/* NumericDate values past 9999-12-31T23:59:59Z are refused, which keeps the
 * arithmetic below free of overflow and the dates printable. */
#define MAX_NUMERIC_DATE INT64_C(253402300799)
#define MAX_LEEWAY 3600
#define MAX_TTL (365 * 24 * 3600)

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

static const char *const alg_names[] = {NULL, "HS256", "RS256", "ES256", "EdDSA"};

int dlg_jwt_alg_parse(const char *s) {
    if (!s)
        return -1;
    for (int i = DLG_JWT_HS256; i <= DLG_JWT_EDDSA; i++)
        if (strcmp(s, alg_names[i]) == 0)
            return i;
    return -1;
}

const char *dlg_jwt_alg_name(int alg) {
    if (alg < DLG_JWT_HS256 || alg > DLG_JWT_EDDSA)
        return "?";
    return alg_names[alg];
}

/* Copies attacker-controlled text (kid, alg) into a message: printable ASCII
 * only and cut short, so a header cannot forge log lines or flood them. */
static void quote_safe(char *dst, size_t dstlen, const char *src) {
    size_t o = 0;
    for (size_t i = 0; src[i] && o + 4 < dstlen; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (i >= 48) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '?';
    }
    dst[o] = '\0';
}

static void format_time(char *dst, size_t dstlen, int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(dst, dstlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(dst, dstlen, "%lld", (long long)t);
}

/* ---- base64url (RFC 4648 section 5, no padding) --------------------------- */

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict decode: only the URL alphabet, no '=', and the bits a short final
 * group leaves unused must be zero, so each value has exactly one encoding
 * (otherwise several tokens would carry the same signature bytes). *out is
 * malloc'ed (at least 1 byte, so an empty segment is not NULL). */
static int b64url_decode(const char *in, size_t n, uint8_t **out, size_t *outlen) {
    if (n % 4 == 1)
        return DLG_EPROTO;
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return DLG_ENOMEM;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            goto fail;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero leftover bits: a non-canonical encoding */
        goto fail;
    *out = buf;
    *outlen = o;
    return 0;
fail:
    free(buf);
    return DLG_EPROTO;
}

static char *b64url_encode(const uint8_t *in, size_t n) {
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = tab[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return out;
}

/* ---- names (sub, roles, kid) --------------------------------------------- */

/* A user id or role: 1..255 bytes of UTF-8 without control characters,
 * because it ends up in logs, in access checks and on the wire. */
static bool name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > DLG_JWT_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return dlg_utf8_valid(s, n);
}

static bool role_ok(const char *s) {
    return name_ok(s) && strcmp(s, "*") != 0;
}

bool dlg_jwt_name_valid(const char *s, bool as_role) {
    return s && (as_role ? role_ok(s) : name_ok(s));
}

/* ---- verifier set-up ------------------------------------------------------ */

int dlg_jwt_verifier_new(dlg_jwt_verifier **out) {
    if (!out)
        return DLG_EINVAL;
    dlg_jwt_verifier *v = calloc(1, sizeof *v);
    if (!v)
        return DLG_ENOMEM;
    v->roles_claim = strdup("role");
    if (!v->roles_claim) {
        free(v);
        return DLG_ENOMEM;
    }
    v->leeway = DLG_JWT_DEFAULT_LEEWAY;
    v->require_exp = true;
    *out = v;
    return 0;
}

static void key_clear(jwt_key *k) {
    free(k->kid);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

void dlg_jwt_verifier_free(dlg_jwt_verifier *v) {
    if (!v)
        return;
    for (size_t i = 0; i < v->n_keys; i++)
        key_clear(&v->keys[i]);
    free(v->keys);
    free(v->issuer);
    free(v->audience);
    free(v->roles_claim);
    free(v);
}

static const jwt_key *find_kid(const dlg_jwt_verifier *v, const char *kid) {
    for (size_t i = 0; i < v->n_keys; i++)
        if (v->keys[i].kid && strcmp(v->keys[i].kid, kid) == 0)
            return &v->keys[i];
    return NULL;
}

/* Checks kid and makes room for one more key; on success the new slot is
 * v->keys[v->n_keys] (zeroed) and *kid_copy is owned by the caller until the
 * key is committed. */
static int key_slot(dlg_jwt_verifier *v, const char *kid, char **kid_copy, char *err,
                    size_t errlen) {
    *kid_copy = NULL;
    if (kid && kid[0]) {
        if (strlen(kid) > DLG_JWT_MAX_NAME) {
            dlg_errf(err, errlen, "key id is longer than %d bytes", DLG_JWT_MAX_NAME);
            return DLG_EINVAL;
        }
        if (find_kid(v, kid)) {
            char q[64];
            quote_safe(q, sizeof q, kid);
            dlg_errf(err, errlen, "key id \"%s\" is configured twice", q);
            return DLG_EEXIST;
        }
        *kid_copy = strdup(kid);
        if (!*kid_copy)
            return DLG_ENOMEM;
    }
    jwt_key *keys = realloc(v->keys, (v->n_keys + 1) * sizeof *keys);
    if (!keys) {
        free(*kid_copy);
        *kid_copy = NULL;
        return DLG_ENOMEM;
    }
    v->keys = keys;
    memset(&keys[v->n_keys], 0, sizeof *keys);
    return 0;
}

static int add_hmac(dlg_jwt_verifier *v, const char *kid, const uint8_t *secret, size_t len,
                    char *err, size_t errlen) {
    if (!v || !secret)
        return DLG_EINVAL;
    if (len < DLG_JWT_MIN_SECRET || len > DLG_JWT_MAX_SECRET) {
        dlg_errf(err, errlen, "HS256 secret is %zu bytes, expected %d..%d", len,
               DLG_JWT_MIN_SECRET, DLG_JWT_MAX_SECRET);
        return DLG_EINVAL;
    }
    char *kid_copy;
    int rc = key_slot(v, kid, &kid_copy, err, errlen);
    if (rc)
        return rc;
    uint8_t *copy = malloc(len);
    if (!copy) {
        free(kid_copy);
        return DLG_ENOMEM;
    }
    memcpy(copy, secret, len);
    jwt_key *k = &v->keys[v->n_keys++];
    k->kid = kid_copy;
    k->alg = DLG_JWT_HS256;
    k->secret = copy;
    k->secret_len = len;
    return 0;
}

int dlg_jwt_add_hmac_key(dlg_jwt_verifier *v, const char *kid, const uint8_t *secret,
                         size_t len) {
    return add_hmac(v, kid, secret, len, NULL, 0);
}

/* Reads at most max bytes of path into a malloc'ed buffer; a longer file is
 * DLG_EINVAL (too large), not silently cut. */
static int read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err,
                     size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dlg_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return DLG_EIO;
    }
    int rc;
    uint8_t *buf = malloc(max + 1);
    if (!buf) {
        rc = DLG_ENOMEM;
        goto fail;
    }
    size_t n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        dlg_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = DLG_EIO;
        goto fail;
    }
    if (n > max) {
        dlg_errf(err, errlen, "%s: larger than %zu bytes", path, max);
        rc = DLG_EINVAL;
        goto fail;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, max + 1);
        free(buf);
    }
    fclose(f);
    return rc;
}

int dlg_jwt_read_secret_file(const char *path, uint8_t **out, size_t *len, char *err,
                             size_t errlen) {
    if (!path || !out || !len)
        return DLG_EINVAL;
    uint8_t *buf;
    size_t n;
    int rc = read_file(path, DLG_JWT_MAX_SECRET + 2, &buf, &n, err, errlen);
    if (rc)
        return rc;
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n < DLG_JWT_MIN_SECRET || n > DLG_JWT_MAX_SECRET) {
        dlg_errf(err, errlen, "%s: secret is %zu bytes, expected %d..%d", path, n,
               DLG_JWT_MIN_SECRET, DLG_JWT_MAX_SECRET);
        OPENSSL_cleanse(buf, DLG_JWT_MAX_SECRET + 3);
        free(buf);
        return DLG_EINVAL;
    }
    *out = buf;
    *len = n;
    return 0;
}

int dlg_jwt_add_secret_file(dlg_jwt_verifier *v, const char *kid, const char *path,
                            char *err, size_t errlen) {
    if (!v || !path)
        return DLG_EINVAL;
    uint8_t *secret;
    size_t len;
    int rc = dlg_jwt_read_secret_file(path, &secret, &len, err, errlen);
    if (rc)
        return rc;
    char why[128] = "";
    rc = add_hmac(v, kid, secret, len, why, sizeof why);
    if (rc)
        dlg_errf(err, errlen, "%s: %s", path, why[0] ? why : dlg_strerror(rc));
    OPENSSL_cleanse(secret, len);
    free(secret);
    return rc;
}

/* Never prompt: a public key or certificate has no passphrase. */
static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int load_pubkey(const char *path, EVP_PKEY **out, char *err, size_t errlen) {
    uint8_t *pem;
    size_t n;
    int rc = read_file(path, MAX_PEM_FILE, &pem, &n, err, errlen);
    if (rc)
        return rc == DLG_EINVAL ? DLG_EIO : rc;
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    if (!bio) {
        rc = DLG_ENOMEM;
        goto done;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
    if (!pkey) {
        /* A certificate is the other common way keys are handed out. */
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)n);
        if (!bio) {
            rc = DLG_ENOMEM;
            goto done;
        }
        cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
        if (cert)
            pkey = X509_get_pubkey(cert);
    }
    if (!pkey) {
        dlg_errf(err, errlen, "%s: no PEM \"PUBLIC KEY\" or \"CERTIFICATE\" block found", path);
        rc = DLG_EIO;
        goto done;
    }
    *out = pkey;
    rc = 0;
done:
    ERR_clear_error();
    X509_free(cert);
    BIO_free(bio);
    free(pem);
    return rc;
}

static int check_key_fits(EVP_PKEY *pkey, int alg, const char *path, char *err, size_t errlen) {
    switch (alg) {
    case DLG_JWT_RS256: {
        /* "RSA" only: an RSA-PSS key would make OpenSSL use PSS, not the
         * PKCS#1 v1.5 padding RS256 means. */
        if (!EVP_PKEY_is_a(pkey, "RSA")) {
            dlg_errf(err, errlen, "%s: RS256 needs an RSA key, got %s", path,
                   EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?");
            return DLG_ECONFIG;
        }
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            dlg_errf(err, errlen, "%s: RSA key has %d bits, expected %d..%d", path, bits,
                   RSA_MIN_BITS, RSA_MAX_BITS);
            return DLG_ECONFIG;
        }
        return 0;
    }
    case DLG_JWT_ES256: {
        char group[64] = "";
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            !EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) ||
            OBJ_txt2nid(group) != NID_X9_62_prime256v1) {
            dlg_errf(err, errlen, "%s: ES256 needs a P-256 EC key, got %s %s", path,
                   EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?",
                   group);
            ERR_clear_error();
            return DLG_ECONFIG;
        }
        return 0;
    }
    case DLG_JWT_EDDSA:
        if (!EVP_PKEY_is_a(pkey, "ED25519")) {
            dlg_errf(err, errlen, "%s: EdDSA needs an Ed25519 key, got %s", path,
                   EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?");
            return DLG_ECONFIG;
        }
        return 0;
    }
    return DLG_EINVAL;
}

int dlg_jwt_add_public_key_file(dlg_jwt_verifier *v, const char *kid, int alg,
                                const char *pem_path, char *err, size_t errlen) {
    if (!v || !pem_path)
        return DLG_EINVAL;
    if (alg != DLG_JWT_RS256 && alg != DLG_JWT_ES256 && alg != DLG_JWT_EDDSA) {
        dlg_errf(err, errlen, "%s: alg %s cannot use a public key file", pem_path,
               dlg_jwt_alg_name(alg));
        return DLG_EINVAL;
    }
    EVP_PKEY *pkey = NULL;
    char *kid_copy = NULL;
    int rc = load_pubkey(pem_path, &pkey, err, errlen);
    if (rc)
        return rc;
    rc = check_key_fits(pkey, alg, pem_path, err, errlen);
    if (rc)
        goto fail;
    char why[128] = "";
    rc = key_slot(v, kid, &kid_copy, why, sizeof why);
    if (rc) {
        dlg_errf(err, errlen, "%s: %s", pem_path, why[0] ? why : dlg_strerror(rc));
        goto fail;
    }
    jwt_key *k = &v->keys[v->n_keys++];
    k->kid = kid_copy;
    k->alg = alg;
    k->pkey = pkey;
    return 0;
fail:
    EVP_PKEY_free(pkey);
    return rc;
}

static int set_str(char **slot, const char *s, const char *dflt) {
    const char *src = (s && s[0]) ? s : dflt;
    char *copy = NULL;
    if (src) {
        copy = strdup(src);
        if (!copy)
            return DLG_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

int dlg_jwt_set_issuer(dlg_jwt_verifier *v, const char *iss) {
    return v ? set_str(&v->issuer, iss, NULL) : DLG_EINVAL;
}

int dlg_jwt_set_audience(dlg_jwt_verifier *v, const char *aud) {
    return v ? set_str(&v->audience, aud, NULL) : DLG_EINVAL;
}

int dlg_jwt_set_roles_claim(dlg_jwt_verifier *v, const char *claim) {
    return v ? set_str(&v->roles_claim, claim, "role") : DLG_EINVAL;
}

void dlg_jwt_set_leeway(dlg_jwt_verifier *v, int64_t seconds) {
    if (!v)
        return;
    v->leeway = seconds < 0 ? 0 : seconds > MAX_LEEWAY ? MAX_LEEWAY : seconds;
}

void dlg_jwt_set_require_exp(dlg_jwt_verifier *v, bool required) {
    if (v)
        v->require_exp = required;
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
    if (src->sub && !(c.sub = strdup(src->sub)))
        goto fail;
    if (src->n_roles) {
        c.roles = calloc(src->n_roles, sizeof *c.roles);
        if (!c.roles)
            goto fail;
        for (; c.n_roles < src->n_roles; c.n_roles++)
            if (!(c.roles[c.n_roles] = strdup(src->roles[c.n_roles])))
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
    if (!json_is_string(j) || !role_ok(json_string_value(j))) {
        dlg_errf(err, errlen,
               "malformed token: %s claim entries must be role names of 1..%d bytes", claim,
               DLG_JWT_MAX_NAME);
        return DLG_EAUTH;
    }
    char *r = strdup(json_string_value(j));
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
    if (!json_is_string(sub) || !name_ok(json_string_value(sub))) {
        dlg_errf(err, errlen, "malformed token: sub must be a string of 1..%d bytes",
               DLG_JWT_MAX_NAME);
        return DLG_EAUTH;
    }
    if (!(c->sub = strdup(json_string_value(sub))))
        return DLG_ENOMEM;

    char rname[64];
    quote_safe(rname, sizeof rname, v->roles_claim);
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
    if (!(c->roles = calloc(n, sizeof *c->roles)))
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
        *named = find_kid(v, json_string_value(kid));
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
        quote_safe(q, sizeof q, json_string_value(kid));
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
        quote_safe(q, sizeof q, as);
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
        rc = b64url_decode(seg[s], seglen[s], &raw[s], &rawlen[s]);
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

/* ---- minting ------------------------------------------------------------------ */

static int set_new(json_t *obj, const char *key, json_t *val) {
    return val && json_object_set_new(obj, key, val) == 0 ? 0 : DLG_ENOMEM;
}

int dlg_jwt_sign_hs256(const uint8_t *secret, size_t len, const char *kid, const char *sub,
                       const char *const *roles, size_t n_roles, int64_t iat,
                       int64_t ttl_seconds, const char *aud, const char *iss, char **out) {
    if ((kid && kid[0] && !name_ok(kid)) || !secret || len < DLG_JWT_MIN_SECRET || len > DLG_JWT_MAX_SECRET || !sub ||
        !name_ok(sub) || (n_roles && !roles) || n_roles > DLG_JWT_MAX_ROLES || !out ||
        ttl_seconds < 1 || ttl_seconds > MAX_TTL || iat < 0 ||
        iat > MAX_NUMERIC_DATE - ttl_seconds)
        return DLG_EINVAL;
    for (size_t i = 0; i < n_roles; i++)
        if (!roles[i] || !role_ok(roles[i]))
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
    h64 = b64url_encode((const uint8_t *)head, strlen(head));
    p64 = b64url_encode((const uint8_t *)payload, strlen(payload));
    if (!h64 || !p64)
        goto fail;
    size_t hl = strlen(h64), pl = strlen(p64);
    /* header.payload.signature: the signature (43 chars) fits in 64 */
    if (!(tok = malloc(hl + 1 + pl + 1 + 64)))
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
    s64 = b64url_encode(mac, maclen);
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
