/* jwt_keys.c: the verifier's set-up from the server's configuration: its
 * keys (HS256 secrets, RSA, P-256 and Ed25519 public keys checked to fit
 * their algorithm) and the claim settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dlg_alloc.h"
#include "dlg_err.h"
#include "jwt.h"
#include "jwt_int.h"

/* A PEM public key or certificate is a few KiB; anything far larger is not
 * what the operator meant to point at. */
#define MAX_PEM_FILE (64 * 1024)
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384 /* bounds the cost an attacker can make us pay */
#define MAX_LEEWAY 3600

/* ---- verifier set-up ------------------------------------------------------ */

int dlg_jwt_verifier_new(dlg_jwt_verifier **out) {
    if (!out)
        return DLG_EINVAL;
    dlg_jwt_verifier *v = dlg_calloc(1, sizeof *v);
    if (!v)
        return DLG_ENOMEM;
    v->roles_claim = dlg_strdup("role");
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

const jwt_key *dlg__jwt_find_kid(const dlg_jwt_verifier *v, const char *kid) {
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
        if (dlg__jwt_find_kid(v, kid)) {
            char q[64];
            dlg__jwt_quote_safe(q, sizeof q, kid);
            dlg_errf(err, errlen, "key id \"%s\" is configured twice", q);
            return DLG_EEXIST;
        }
        *kid_copy = dlg_strdup(kid);
        if (!*kid_copy)
            return DLG_ENOMEM;
    }
    jwt_key *keys = dlg_realloc(v->keys, (v->n_keys + 1) * sizeof *keys);
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
    uint8_t *copy = dlg_malloc(len);
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
    int rc = dlg__jwt_read_file(path, MAX_PEM_FILE, &pem, &n, err, errlen);
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
        copy = dlg_strdup(src);
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

