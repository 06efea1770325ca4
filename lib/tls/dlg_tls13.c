/* dlg_tls13.c: TLS 1.3 record protection (see dlg_tls13.h). */
#include "dlg_tls13.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

#define SECRET_MAX 48 /* SHA-384 */
#define IV_LEN 12

/* One direction: its traffic secret (kept for the key update), the AEAD
 * context keyed from it, the static IV and the sequence number. */
struct dir {
    EVP_CIPHER_CTX *ctx;
    uint64_t seq;
    uint8_t iv[IV_LEN];
    uint8_t secret[SECRET_MAX];
};

struct dlg_tls13 {
    struct dir rd, wr;
    uint16_t suite;
    uint8_t key_len, hash_len;
};

static const char *suite_cipher(uint16_t suite) {
    switch (suite) {
    case 0x1301: return "AES-128-GCM";
    case 0x1302: return "AES-256-GCM";
    case 0x1303: return "ChaCha20-Poly1305";
    default: return NULL;
    }
}

/* HKDF-Expand-Label(secret, label, "", len) with the suite's hash (RFC 8446
 * 7.1), through kctx, a context of OpenSSL's TLS13-KDF. */
static int expand_label(const dlg_tls13 *r, EVP_KDF_CTX *kctx, const uint8_t *secret,
                        const char *label, uint8_t *out, size_t len) {
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    static const char prefix[] = "tls13 ";
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         r->hash_len == 48 ? "SHA384" : "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, r->hash_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)prefix,
                                          sizeof(prefix) - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_KDF_derive(kctx, out, len, p) == 1 ? 0 : DLG_ETLS;
}

/* A TLS13-KDF context (one fetch serves every label of one keying), or
 * NULL. */
static EVP_KDF_CTX *kdf_new(void) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf); /* the context keeps its own reference */
    return kctx;
}

/* Keys direction d from d->secret: a fresh AEAD key and IV, sequence 0. */
static int key_dir(dlg_tls13 *r, EVP_KDF_CTX *kctx, struct dir *d, int enc) {
    uint8_t key[32];
    int rc = DLG_ETLS;
    if (expand_label(r, kctx, d->secret, "key", key, r->key_len) != 0 ||
        expand_label(r, kctx, d->secret, "iv", d->iv, IV_LEN) != 0)
        goto out;
    if (d->ctx == NULL) {
        EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, suite_cipher(r->suite), NULL);
        d->ctx = EVP_CIPHER_CTX_new();
        /* The context keeps its own reference to the cipher. */
        int ok = c != NULL && d->ctx != NULL &&
                 EVP_CipherInit_ex(d->ctx, c, NULL, NULL, NULL, enc) == 1;
        EVP_CIPHER_free(c);
        if (!ok)
            goto out;
    }
    /* The IV is set per record (the nonce); 12 bytes is every suite's
     * default. */
    if (EVP_CipherInit_ex(d->ctx, NULL, NULL, key, NULL, enc) != 1)
        goto out;
    d->seq = 0;
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int dlg_tls13_new(uint16_t suite, const uint8_t *read_secret, const uint8_t *write_secret,
                  size_t secret_len, dlg_tls13 **out) {
    size_t want = suite == 0x1302 ? 48 : 32;
    if (suite_cipher(suite) == NULL || secret_len != want)
        return DLG_EINVAL;
    dlg_tls13 *r = dlg_calloc(1, sizeof(*r));
    if (r == NULL)
        return DLG_ENOMEM;
    r->suite = suite;
    r->hash_len = (uint8_t)secret_len;
    r->key_len = suite == 0x1301 ? 16 : 32;
    memcpy(r->rd.secret, read_secret, secret_len);
    memcpy(r->wr.secret, write_secret, secret_len);
    EVP_KDF_CTX *kctx = kdf_new();
    int ok = kctx != NULL && key_dir(r, kctx, &r->rd, 0) == 0 && key_dir(r, kctx, &r->wr, 1) == 0;
    EVP_KDF_CTX_free(kctx);
    if (!ok) {
        dlg_tls13_free(r);
        return DLG_ETLS;
    }
    *out = r;
    return 0;
}

void dlg_tls13_free(dlg_tls13 *r) {
    if (r == NULL)
        return;
    EVP_CIPHER_CTX_free(r->rd.ctx);
    EVP_CIPHER_CTX_free(r->wr.ctx);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

/* RFC 8446 5.3: the nonce is the IV XOR the 64-bit sequence number,
 * right-aligned. */
static void nonce(const struct dir *d, uint8_t out[IV_LEN]) {
    memcpy(out, d->iv, IV_LEN);
    for (int i = 0; i < 8; i++)
        out[IV_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

static void header(uint8_t *h, size_t body) {
    h[0] = DLG_TLS13_APPDATA; /* the outer type of every protected record */
    h[1] = 3;
    h[2] = 3;
    h[3] = (uint8_t)(body >> 8);
    h[4] = (uint8_t)body;
}

int dlg_tls13_seal(dlg_tls13 *r, uint8_t type, const uint8_t *data, size_t len, uint8_t *out) {
    struct dir *d = &r->wr;
    uint8_t n[IV_LEN];
    int l;
    if (len > DLG_TLS13_MAX_PLAIN || d->seq == UINT64_MAX)
        return DLG_ETLS;
    size_t body = len + 1 + DLG_TLS13_TAG;
    header(out, body);
    uint8_t *ct = out + DLG_TLS13_HDR;
    /* The inner plaintext (data, then the type) is laid out in out and
     * encrypted in place: one cipher call instead of two. */
    memcpy(ct, data, len);
    ct[len] = type;
    nonce(d, n);
    if (EVP_EncryptInit_ex(d->ctx, NULL, NULL, NULL, n) != 1 ||
        EVP_EncryptUpdate(d->ctx, NULL, &l, out, DLG_TLS13_HDR) != 1 ||
        EVP_EncryptUpdate(d->ctx, ct, &l, ct, (int)len + 1) != 1 ||
        EVP_EncryptFinal_ex(d->ctx, ct + len + 1, &l) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, DLG_TLS13_TAG, ct + len + 1) != 1)
        return DLG_ETLS;
    d->seq++;
    return 0;
}

int dlg_tls13_skip_write(dlg_tls13 *r, uint64_t n) {
    if (n > DLG_TLS13_KEY_RECORDS - r->wr.seq)
        return DLG_ETLS;
    r->wr.seq += n;
    return 0;
}

int dlg_tls13_write_worn(const dlg_tls13 *r) {
    return r->wr.seq >= DLG_TLS13_KEY_RECORDS;
}

int dlg_tls13_open(dlg_tls13 *r, uint8_t *rec, size_t len, size_t *off, size_t *plain_len,
                   uint8_t *type, uint8_t *alert) {
    struct dir *d = &r->rd;
    uint8_t n[IV_LEN];
    int l;
    if (len < DLG_TLS13_HDR) {
        *alert = 50;
        return DLG_EPROTO;
    }
    size_t body = (size_t)rec[3] << 8 | rec[4];
    if (body != len - DLG_TLS13_HDR) {
        *alert = 50;
        return DLG_EPROTO;
    }
    /* After the handshake every record is protected: change_cipher_spec
     * and plaintext alerts are no longer allowed (RFC 8446 5). */
    if (rec[0] != DLG_TLS13_APPDATA) {
        *alert = 10;
        return DLG_EPROTO;
    }
    if (body > DLG_TLS13_MAX_CIPHER) {
        *alert = 22;
        return DLG_EPROTO;
    }
    if (body < 1 + DLG_TLS13_TAG) {
        *alert = 50;
        return DLG_EPROTO;
    }
    if (d->seq == UINT64_MAX) {
        *alert = 20;
        return DLG_ETLS;
    }
    size_t ct_len = body - DLG_TLS13_TAG;
    uint8_t *ct = rec + DLG_TLS13_HDR;
    nonce(d, n);
    if (EVP_DecryptInit_ex(d->ctx, NULL, NULL, NULL, n) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, DLG_TLS13_TAG, ct + ct_len) != 1 ||
        EVP_DecryptUpdate(d->ctx, NULL, &l, rec, DLG_TLS13_HDR) != 1 ||
        EVP_DecryptUpdate(d->ctx, ct, &l, ct, (int)ct_len) != 1 ||
        EVP_DecryptFinal_ex(d->ctx, ct + ct_len, &l) != 1) {
        *alert = 20;
        return DLG_ETLS;
    }
    d->seq++;
    /* RFC 8446 5.4: the whole TLSInnerPlaintext (content, type and
     * padding) is at most 2^14 + 1 bytes; padding does not buy a longer
     * record. Checked once it authenticates, so that a forged record is a
     * bad_record_mac whatever its length (as OpenSSL answers). */
    if (ct_len > DLG_TLS13_MAX_PLAIN + 1) {
        *alert = 22;
        return DLG_EPROTO;
    }
    /* The inner type is the last non-zero byte; zeros after it are
     * padding. */
    size_t i = ct_len;
    while (i > 0 && ct[i - 1] == 0)
        i--;
    if (i == 0) {
        *alert = 10;
        return DLG_EPROTO;
    }
    *type = ct[i - 1];
    *off = DLG_TLS13_HDR;
    *plain_len = i - 1;
    return 0;
}

static int update(dlg_tls13 *r, struct dir *d, int enc) {
    uint8_t next[SECRET_MAX];
    EVP_KDF_CTX *kctx = kdf_new();
    int rc = DLG_ETLS;
    if (kctx == NULL || expand_label(r, kctx, d->secret, "traffic upd", next, r->hash_len) != 0)
        goto out;
    memcpy(d->secret, next, r->hash_len);
    rc = key_dir(r, kctx, d, enc);
out:
    OPENSSL_cleanse(next, sizeof(next));
    EVP_KDF_CTX_free(kctx);
    return rc;
}

int dlg_tls13_update_read(dlg_tls13 *r) {
    return update(r, &r->rd, 0);
}

int dlg_tls13_update_write(dlg_tls13 *r) {
    return update(r, &r->wr, 1);
}
