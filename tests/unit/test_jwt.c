/* test_jwt.c: the JWT verifier (every algorithm, key selection, claim rules,
 * malformed input), HS256 minting and `dialoguectl token`. Keys are made at
 * test time with OpenSSL and written as PEM into a mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dlg_err.h"
#include "jwt.h"
#include "token.h"

/* 2027-01-15T08:00:00Z: a fixed clock, so messages can be compared. */
#define NOW INT64_C(1800000000)

static const char secret1[] = "0123456789abcdef0123456789abcdef-one";
static const char secret2[] = "0123456789abcdef0123456789abcdef-two";

typedef struct fixture {
    char dir[64];
    EVP_PKEY *rsa, *rsa_small, *ec, *ed;
    char rsa_pem[128], rsa_small_pem[128], ec_pem[128], ed_pem[128];
    char ec_cert[128], rsa_priv[128], secret_file[128], short_secret[128];
} fixture;

/* ---- fixture: keys and files ------------------------------------------------ */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_pubkey(const char *path, EVP_PKEY *k) {
    BIO *b = BIO_new_file(path, "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    BIO_free(b);
}

/* A self-signed certificate, to check keys can be given as certificates. */
static void write_cert(const char *path, EVP_PKEY *k) {
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"jwt-test",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *b = BIO_new_file(path, "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    BIO_free(b);
    X509_free(x);
}

static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/dlg-jwt-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    f->rsa_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    f->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    f->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!f->rsa || !f->rsa_small || !f->ec || !f->ed)
        return -1;
    snprintf(f->rsa_pem, sizeof f->rsa_pem, "%s/rsa.pub.pem", f->dir);
    snprintf(f->rsa_small_pem, sizeof f->rsa_small_pem, "%s/rsa1024.pub.pem", f->dir);
    snprintf(f->ec_pem, sizeof f->ec_pem, "%s/ec.pub.pem", f->dir);
    snprintf(f->ed_pem, sizeof f->ed_pem, "%s/ed.pub.pem", f->dir);
    snprintf(f->ec_cert, sizeof f->ec_cert, "%s/ec.cert.pem", f->dir);
    snprintf(f->rsa_priv, sizeof f->rsa_priv, "%s/rsa.key.pem", f->dir);
    snprintf(f->secret_file, sizeof f->secret_file, "%s/secret", f->dir);
    snprintf(f->short_secret, sizeof f->short_secret, "%s/short", f->dir);
    write_pubkey(f->rsa_pem, f->rsa);
    write_pubkey(f->rsa_small_pem, f->rsa_small);
    write_pubkey(f->ec_pem, f->ec);
    write_pubkey(f->ed_pem, f->ed);
    write_cert(f->ec_cert, f->ec);
    BIO *b = BIO_new_file(f->rsa_priv, "w");
    if (!b || PEM_write_bio_PrivateKey(b, f->rsa, NULL, NULL, 0, NULL, NULL) != 1)
        return -1;
    BIO_free(b);
    /* with a final newline, as `echo` writes it: it must not be part of it */
    char line[64];
    snprintf(line, sizeof line, "%s\n", secret1);
    write_file(f->secret_file, line, strlen(line));
    write_file(f->short_secret, "tooshort\n", 9);
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    const char *files[] = {f->rsa_pem, f->rsa_small_pem, f->ec_pem, f->ed_pem,
                           f->ec_cert, f->rsa_priv, f->secret_file, f->short_secret};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(f->dir);
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->rsa_small);
    EVP_PKEY_free(f->ec);
    EVP_PKEY_free(f->ed);
    free(f);
    return 0;
}

/* ---- a signer independent of jwt.c ------------------------------------------ */

/* base64url through OpenSSL's standard base64, then the alphabet swap, so a
 * bug in jwt.c's own codec cannot hide in both directions. */
static char *b64url(const void *data, size_t n) {
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    assert_non_null(out);
    int len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* Signature bytes in JOSE form for alg over msg. key is an EVP_PKEY for the
 * asymmetric algorithms, the secret (NUL-terminated unless klen) for HS256. */
static size_t jose_sign(int alg, const void *key, size_t klen, const char *msg,
                        uint8_t *sig) {
    size_t n = 0;
    if (alg == DLG_JWT_HS256) {
        unsigned len = 0;
        assert_non_null(HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)msg, strlen(msg),
                             sig, &len));
        return len;
    }
    EVP_PKEY *pk = (EVP_PKEY *)key;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, alg == DLG_JWT_EDDSA ? NULL : EVP_sha256(),
                                        NULL, pk), 1);
    uint8_t der[1024];
    n = sizeof der;
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (const uint8_t *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    if (alg != DLG_JWT_ES256) {
        memcpy(sig, der, n);
        return n;
    }
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* header.payload.signature from JSON texts (used as given, so tests can
 * send anything). Caller frees. */
static char *make_token_k(int alg, const void *key, size_t klen, const char *header,
                          const char *payload) {
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    size_t mlen = strlen(h) + 1 + strlen(p);
    char *msg = malloc(mlen + 1);
    assert_non_null(msg);
    snprintf(msg, mlen + 1, "%s.%s", h, p);
    uint8_t sig[1024];
    size_t n = jose_sign(alg, key, klen, msg, sig);
    char *s = b64url(sig, n);
    char *tok = malloc(mlen + 1 + strlen(s) + 1);
    assert_non_null(tok);
    sprintf(tok, "%s.%s", msg, s);
    free(h);
    free(p);
    free(msg);
    free(s);
    return tok;
}

static char *make_token(int alg, const void *key, const char *header, const char *payload) {
    return make_token_k(alg, key, alg == DLG_JWT_HS256 ? strlen(key) : 0, header, payload);
}

static const char hs_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
/* sub alice, exp NOW + 600, two roles */
static const char base_claims[] =
    "{\"sub\":\"alice\",\"exp\":1800000600,\"iat\":1800000000,\"role\":[\"admin\",\"ops\"]}";

static dlg_jwt_verifier *hs_verifier(void) {
    dlg_jwt_verifier *v = NULL;
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_hmac_key(v, NULL, (const uint8_t *)secret1,
                                          strlen(secret1)), 0);
    return v;
}

/* Verifies tok with v at NOW; expects rc and, when want is not NULL, that
 * the message contains want. */
static void expect(const dlg_jwt_verifier *v, const char *tok, int rc, const char *want) {
    dlg_jwt_claims c;
    char err[256] = "";
    int got = dlg_jwt_verify(v, tok, strlen(tok), NOW, &c, err, sizeof err);
    if (got != rc || (want && !strstr(err, want)))
        fail_msg("verify: rc %d (want %d), message \"%s\" (want \"%s\")", got, rc, err,
                 want ? want : "");
    /* a failed check must not leave errors on the thread's OpenSSL queue */
    assert_int_equal(ERR_peek_error(), 0);
    if (rc == 0)
        dlg_jwt_claims_free(&c);
    else
        assert_null(c.sub);
}

static void expect_hs(const char *payload, int rc, const char *want) {
    dlg_jwt_verifier *v = hs_verifier();
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, payload);
    expect(v, tok, rc, want);
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- valid tokens --------------------------------------------------------------- */

static void alg_names(void **state) {
    (void)state;
    assert_int_equal(dlg_jwt_alg_parse("HS256"), DLG_JWT_HS256);
    assert_int_equal(dlg_jwt_alg_parse("RS256"), DLG_JWT_RS256);
    assert_int_equal(dlg_jwt_alg_parse("ES256"), DLG_JWT_ES256);
    assert_int_equal(dlg_jwt_alg_parse("EdDSA"), DLG_JWT_EDDSA);
    assert_int_equal(dlg_jwt_alg_parse("none"), -1);
    assert_int_equal(dlg_jwt_alg_parse("hs256"), -1);
    assert_int_equal(dlg_jwt_alg_parse(NULL), -1);
    assert_string_equal(dlg_jwt_alg_name(DLG_JWT_EDDSA), "EdDSA");
    assert_string_equal(dlg_jwt_alg_name(0), "?");
}

static void hs256_minted_roundtrip(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    assert_int_equal(dlg_jwt_set_audience(v, "dialogue"), 0);
    assert_int_equal(dlg_jwt_set_issuer(v, "https://id.example"), 0);
    const char *roles[] = {"admin", "viewer"};
    char *tok = NULL;
    assert_int_equal(dlg_jwt_sign_hs256((const uint8_t *)secret1, strlen(secret1), NULL,
                                        "alice", roles, 2, NOW - 5, 3600, "dialogue",
                                        "https://id.example", &tok), 0);
    dlg_jwt_claims c;
    char err[128] = "";
    assert_int_equal(dlg_jwt_verify(v, tok, strlen(tok), NOW, &c, err, sizeof err), 0);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.n_roles, 2);
    assert_string_equal(c.roles[0], "admin");
    assert_string_equal(c.roles[1], "viewer");
    assert_int_equal(c.exp, NOW - 5 + 3600);
    dlg_jwt_claims_free(&c);
    assert_null(c.sub);
    free(tok);
    dlg_jwt_verifier_free(v);
}

static void hs256_secret_file(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_secret_file(v, "dev", f->secret_file, err, sizeof err), 0);
    /* the file ends in "\n"; the secret is the line without it */
    char *tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"kid\":\"dev\"}",
                           base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    assert_int_equal(dlg_jwt_add_secret_file(v, NULL, f->short_secret, err, sizeof err),
                     DLG_EINVAL);
    assert_non_null(strstr(err, f->short_secret));
    assert_null(strstr(err, "tooshort"));
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope", f->dir);
    assert_int_equal(dlg_jwt_add_secret_file(v, NULL, missing, err, sizeof err), DLG_EIO);
    assert_non_null(strstr(err, missing));
    assert_int_equal(dlg_jwt_add_secret_file(v, "dev", f->secret_file, err, sizeof err),
                     DLG_EEXIST);
    assert_non_null(strstr(err, "\"dev\""));
    dlg_jwt_verifier_free(v);
}

static void asym_valid(void **state, int alg, EVP_PKEY *key, const char *pem) {
    (void)state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, alg, pem, err, sizeof err), 0);
    char header[64];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", dlg_jwt_alg_name(alg));
    char *tok = make_token(alg, key, header, base_claims);
    dlg_jwt_claims c;
    assert_int_equal(dlg_jwt_verify(v, tok, strlen(tok), NOW, &c, err, sizeof err), 0);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.n_roles, 2);
    assert_int_equal(c.exp, NOW + 600);
    dlg_jwt_claims_free(&c);

    /* forged: one byte of the signature changed */
    size_t n = strlen(tok);
    char *last_dot = strrchr(tok, '.');
    size_t at = (size_t)(last_dot - tok) + 3;
    tok[at] = tok[at] == 'A' ? 'B' : 'A';
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    assert_int_equal(strlen(tok), n);
    free(tok);

    /* forged: the claims changed under the original signature */
    tok = make_token(alg, key, header, base_claims);
    char *other = make_token(alg, key, header,
                             "{\"sub\":\"mallory\",\"exp\":1800000600,\"role\":\"admin\"}");
    char *sig = strrchr(tok, '.');
    char *osig = strrchr(other, '.');
    char forged[2048];
    snprintf(forged, sizeof forged, "%.*s%s", (int)(osig - other), other, sig);
    expect(v, forged, DLG_EAUTH, "token signature invalid");
    free(tok);
    free(other);
    dlg_jwt_verifier_free(v);
}

static void rs256_valid(void **state) {
    fixture *f = *state;
    asym_valid(state, DLG_JWT_RS256, f->rsa, f->rsa_pem);
}

static void es256_valid(void **state) {
    fixture *f = *state;
    asym_valid(state, DLG_JWT_ES256, f->ec, f->ec_pem);
}

static void eddsa_valid(void **state) {
    fixture *f = *state;
    asym_valid(state, DLG_JWT_EDDSA, f->ed, f->ed_pem);
}

static void hs256_forged(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    char *tok = make_token(DLG_JWT_HS256, secret2, hs_header, base_claims);
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    char *p = strrchr(tok, '.') + 2;
    *p = *p == 'x' ? 'y' : 'x';
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    /* a truncated signature is not a shorter MAC to compare */
    tok[strlen(tok) - 3] = '\0'; /* 40 chars: canonical base64url, 30 bytes */
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    free(tok);
    dlg_jwt_verifier_free(v);
}

static void certificate_as_key(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_ES256, f->ec_cert, err,
                                                 sizeof err), 0);
    char *tok = make_token(DLG_JWT_ES256, f->ec, "{\"alg\":\"ES256\"}", base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- algorithm confusion ---------------------------------------------------------- */

static void alg_none(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    const char *none = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char *h = b64url(none, strlen(none));
    char *p = b64url(base_claims, strlen(base_claims));
    char tok[1024];
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    expect(v, tok, DLG_EAUTH, "token alg none is not accepted");
    free(h);
    h = b64url("{\"alg\":\"NoNe\"}", 14);
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    expect(v, tok, DLG_EAUTH, "token alg none is not accepted");
    free(h);
    h = b64url("{\"typ\":\"JWT\"}", 13);
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    expect(v, tok, DLG_EAUTH, "header has no alg");
    free(h);
    h = b64url("{\"alg\":\"HS512\"}", 15);
    snprintf(tok, sizeof tok, "%s.%s.AAAA", h, p);
    expect(v, tok, DLG_EAUTH, "token alg \"HS512\" is not supported");
    free(h);
    free(p);
    dlg_jwt_verifier_free(v);
}

static void alg_mismatch(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->rsa_pem, err,
                                                 sizeof err), 0);
    char *tok = make_token(DLG_JWT_ES256, f->ec, "{\"alg\":\"ES256\"}", base_claims);
    expect(v, tok, DLG_EAUTH, "token alg ES256 does not match key alg RS256");
    free(tok);
    /* an RS256 signature relabelled as another RSA-ish alg is still refused */
    tok = make_token(DLG_JWT_RS256, f->rsa, "{\"alg\":\"EdDSA\"}", base_claims);
    expect(v, tok, DLG_EAUTH, "token alg EdDSA does not match key alg RS256");
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* The classic confusion attack: the RSA public key is public, so an attacker
 * HMACs a token with its PEM bytes as the secret and says alg HS256. */
static void hmac_with_rsa_public_key(void **state) {
    fixture *f = *state;
    FILE *fp = fopen(f->rsa_pem, "rb");
    assert_non_null(fp);
    char pem[4096];
    size_t n = fread(pem, 1, sizeof pem, fp);
    fclose(fp);
    assert_true(n > 0);
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->rsa_pem, err,
                                                 sizeof err), 0);
    char *tok = make_token_k(DLG_JWT_HS256, pem, n, hs_header, base_claims);
    expect(v, tok, DLG_EAUTH, "token alg HS256 does not match key alg RS256");
    free(tok);
    /* same with the PEM minus its final newline */
    tok = make_token_k(DLG_JWT_HS256, pem, n - 1, hs_header, base_claims);
    expect(v, tok, DLG_EAUTH, "token alg HS256 does not match key alg RS256");
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- key ids ------------------------------------------------------------------------ */

static void kid_selection(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_hmac_key(v, "k1", (const uint8_t *)secret1,
                                          strlen(secret1)), 0);
    assert_int_equal(dlg_jwt_add_hmac_key(v, "k2", (const uint8_t *)secret2,
                                          strlen(secret2)), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, "ec", DLG_JWT_ES256, f->ec_pem, err,
                                                 sizeof err), 0);
    assert_int_equal(dlg_jwt_add_hmac_key(v, "k1", (const uint8_t *)secret2,
                                          strlen(secret2)), DLG_EEXIST);

    char *tok = make_token(DLG_JWT_HS256, secret2, "{\"alg\":\"HS256\",\"kid\":\"k2\"}",
                           base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret2, "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
                     base_claims);
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    free(tok);
    tok = make_token(DLG_JWT_ES256, f->ec, "{\"alg\":\"ES256\",\"kid\":\"ec\"}", base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"kid\":\"ec\"}",
                     base_claims);
    expect(v, tok, DLG_EAUTH, "token alg HS256 does not match key alg ES256");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"kid\":\"k9\"}",
                     base_claims);
    expect(v, tok, DLG_EAUTH, "unknown key id \"k9\"");
    free(tok);
    /* attacker-chosen kid text is neutralised in the message */
    tok = make_token(DLG_JWT_HS256, secret1,
                     "{\"alg\":\"HS256\",\"kid\":\"a\\nb\\\"c\"}", base_claims);
    expect(v, tok, DLG_EAUTH, "unknown key id \"a?b?c\"");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"kid\":7}", base_claims);
    expect(v, tok, DLG_EAUTH, "kid must be a string");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    expect(v, tok, DLG_EAUTH, "every configured key has one");
    free(tok);
    dlg_jwt_verifier_free(v);
}

static void default_keys(void **state) {
    (void)state;
    dlg_jwt_verifier *v = NULL;
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    expect(v, tok, DLG_EAUTH, "no token keys are configured");
    /* two default keys (rotation): either secret is accepted */
    assert_int_equal(dlg_jwt_add_hmac_key(v, "", (const uint8_t *)secret2,
                                          strlen(secret2)), 0);
    assert_int_equal(dlg_jwt_add_hmac_key(v, NULL, (const uint8_t *)secret1,
                                          strlen(secret1)), 0);
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret2, hs_header, base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    /* a kid no key has falls back to the default keys */
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"kid\":\"whatever\"}",
                     base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_HS256, "0123456789abcdef0123456789abcdef-three", hs_header,
                     base_claims);
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    free(tok);
    assert_int_equal(dlg_jwt_add_hmac_key(v, NULL, (const uint8_t *)"short", 5), DLG_EINVAL);
    dlg_jwt_verifier_free(v);
}

/* Rotation between RSA keys of different sizes: the signature length fits
 * only one of them, which must not stop the search at the other. */
static void rsa_rotation(void **state) {
    fixture *f = *state;
    EVP_PKEY *big = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    assert_non_null(big);
    char path[160];
    snprintf(path, sizeof path, "%s/rsa3072.pub.pem", f->dir);
    write_pubkey(path, big);
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->rsa_pem, err,
                                                 sizeof err), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, path, err,
                                                 sizeof err), 0);
    unlink(path);
    char *tok = make_token(DLG_JWT_RS256, big, "{\"alg\":\"RS256\"}", base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_RS256, f->rsa, "{\"alg\":\"RS256\"}", base_claims);
    expect(v, tok, 0, NULL);
    /* a 256-byte signature that is wrong: checked by the 2048-bit key */
    char *p = strrchr(tok, '.') + 4;
    *p = *p == 'A' ? 'B' : 'A';
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    free(tok);
    /* a signature no configured key has the length for */
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"RS256\"}", base_claims);
    expect(v, tok, DLG_EAUTH, "RS256 signature is 32 bytes");
    free(tok);
    EVP_PKEY_free(big);
    dlg_jwt_verifier_free(v);
}

static void key_loading_errors(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->rsa_small_pem,
                                                 err, sizeof err), DLG_ECONFIG);
    assert_non_null(strstr(err, "1024 bits"));
    assert_non_null(strstr(err, f->rsa_small_pem));
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->ec_pem, err,
                                                 sizeof err), DLG_ECONFIG);
    assert_non_null(strstr(err, "RS256 needs an RSA key"));
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_ES256, f->ed_pem, err,
                                                 sizeof err), DLG_ECONFIG);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_EDDSA, f->rsa_pem, err,
                                                 sizeof err), DLG_ECONFIG);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_HS256, f->rsa_pem, err,
                                                 sizeof err), DLG_EINVAL);
    /* a private key file is not taken as a public key */
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->rsa_priv, err,
                                                 sizeof err), DLG_EIO);
    assert_non_null(strstr(err, "PUBLIC KEY"));
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, f->secret_file, err,
                                                 sizeof err), DLG_EIO);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_RS256, "/nonexistent/k.pem",
                                                 err, sizeof err), DLG_EIO);
    assert_non_null(strstr(err, "/nonexistent/k.pem"));
    assert_int_equal(ERR_peek_error(), 0);
    /* nothing was added by the failures */
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    expect(v, tok, DLG_EAUTH, "no token keys are configured");
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- time claims ------------------------------------------------------------------------ */

static void expired(void **state) {
    (void)state;
    /* exp 2027-01-15T07:58:20Z, 100 s ago; leeway 30 */
    expect_hs("{\"sub\":\"a\",\"exp\":1799999900}", DLG_EAUTH,
              "token expired at 2027-01-15T07:58:20Z");
    /* exactly at exp + leeway it is over */
    expect_hs("{\"sub\":\"a\",\"exp\":1799999970}", DLG_EAUTH, "token expired at");
    expect_hs("{\"sub\":\"a\",\"exp\":1799999971}", 0, NULL);
    expect_hs("{\"sub\":\"a\"}", DLG_EAUTH, "token has no exp claim");
    expect_hs("{\"sub\":\"a\",\"exp\":\"1800000600\"}", DLG_EAUTH, "exp is not a NumericDate");
    expect_hs("{\"sub\":\"a\",\"exp\":-5}", DLG_EAUTH, "exp is not a NumericDate");
    expect_hs("{\"sub\":\"a\",\"exp\":1e300}", DLG_EAUTH, "exp is not a NumericDate");
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600.5}", 0, NULL);
}

static void not_before_and_iat(void **state) {
    (void)state;
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600,\"nbf\":1800000100}", DLG_EAUTH,
              "token not valid before 2027-01-15T08:01:40Z");
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600,\"nbf\":1800000030}", 0, NULL);
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600,\"nbf\":1800000030.5}", DLG_EAUTH,
              "not valid before");
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600,\"iat\":1800000100}", DLG_EAUTH,
              "token issued in the future");
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600,\"iat\":1800000020}", 0, NULL);
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600,\"nbf\":true}", DLG_EAUTH,
              "nbf is not a NumericDate");
}

static void leeway(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    /* expired 10 s ago: inside the default 30 s, outside 5 s */
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header,
                           "{\"sub\":\"a\",\"exp\":1799999990,\"nbf\":1800000010}");
    expect(v, tok, 0, NULL);
    dlg_jwt_set_leeway(v, 5);
    expect(v, tok, DLG_EAUTH, "token expired at 2027-01-15T07:59:50Z");
    dlg_jwt_set_leeway(v, 0);
    expect(v, tok, DLG_EAUTH, "token expired");
    dlg_jwt_set_leeway(v, 100000); /* clamped to an hour */
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, hs_header,
                     "{\"sub\":\"a\",\"exp\":1799996000}");
    expect(v, tok, DLG_EAUTH, "token expired");
    free(tok);
    dlg_jwt_verifier_free(v);
}

static void exp_optional(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    dlg_jwt_set_require_exp(v, false);
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, "{\"sub\":\"a\"}");
    dlg_jwt_claims c;
    char err[128];
    assert_int_equal(dlg_jwt_verify(v, tok, strlen(tok), NOW, &c, err, sizeof err), 0);
    assert_int_equal(c.exp, 0);
    assert_int_equal(dlg_jwt_session_deadline(v, &c), 0);
    dlg_jwt_claims_free(&c);
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- iss / aud / sub / roles ------------------------------------------------------------------ */

static void audience_and_issuer(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    assert_int_equal(dlg_jwt_set_audience(v, "dialogue"), 0);
    assert_int_equal(dlg_jwt_set_issuer(v, "idp"), 0);
    static const struct {
        const char *claims;
        int rc;
        const char *msg;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":\"dialogue\"}", 0, NULL},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":[\"x\",\"dialogue\"]}", 0,
         NULL},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":\"other\"}", DLG_EAUTH,
         "token audience does not match"},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":[\"x\",7]}", DLG_EAUTH,
         "token audience does not match"},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":\"Dialogue\"}", DLG_EAUTH,
         "token audience does not match"},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"idp\"}", DLG_EAUTH,
         "token has no aud claim"},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":\"evil\",\"aud\":\"dialogue\"}", DLG_EAUTH,
         "token issuer does not match"},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"iss\":[\"idp\"],\"aud\":\"dialogue\"}", DLG_EAUTH,
         "token issuer does not match"},
        {"{\"sub\":\"a\",\"exp\":1800000600,\"aud\":\"dialogue\"}", DLG_EAUTH,
         "token has no iss claim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, cases[i].claims);
        expect(v, tok, cases[i].rc, cases[i].msg);
        free(tok);
    }
    /* "" turns the checks off again */
    assert_int_equal(dlg_jwt_set_audience(v, ""), 0);
    assert_int_equal(dlg_jwt_set_issuer(v, NULL), 0);
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, "{\"sub\":\"a\",\"exp\":1800000600}");
    expect(v, tok, 0, NULL);
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* RFC 7519 4.1.3: with no audience configured, a token minted for some
 * other service (it names an aud) is refused, in every shape of aud. */
static void audience_unconfigured(void **state) {
    (void)state;
    static const char *const claims[] = {
        "{\"sub\":\"a\",\"exp\":1800000600,\"aud\":\"billing-api\"}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"aud\":[\"billing-api\"]}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"aud\":[]}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"aud\":null}",
    };
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++)
        expect_hs(claims[i], DLG_EAUTH, "token names an audience (aud) but this server has none");
    expect_hs("{\"sub\":\"a\",\"exp\":1800000600}", 0, NULL);
}

static void subject(void **state) {
    (void)state;
    expect_hs("{\"exp\":1800000600}", DLG_EAUTH, "token has no sub claim");
    expect_hs("{\"sub\":\"\",\"exp\":1800000600}", DLG_EAUTH, "sub must be a string");
    expect_hs("{\"sub\":42,\"exp\":1800000600}", DLG_EAUTH, "sub must be a string");
    expect_hs("{\"sub\":\"a\\u0007b\",\"exp\":1800000600}", DLG_EAUTH, "sub must be a string");
    expect_hs("{\"sub\":\"a\\u0000b\",\"exp\":1800000600}", DLG_EAUTH, "payload is not");
    expect_hs("{\"sub\":\"J\\u00fcrgen\",\"exp\":1800000600}", 0, NULL);
    char claims[600];
    char sub[300];
    memset(sub, 'x', 255);
    sub[255] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":1800000600}", sub);
    expect_hs(claims, 0, NULL);
    strcat(sub, "x");
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":1800000600}", sub);
    expect_hs(claims, DLG_EAUTH, "sub must be a string of 1..255 bytes");
    /* duplicate names could make two parsers disagree on who this is */
    expect_hs("{\"sub\":\"alice\",\"exp\":1800000600,\"sub\":\"root\"}", DLG_EAUTH,
              "payload is not a JSON object");
}

static void check_roles(dlg_jwt_verifier *v, const char *claims, size_t n, const char *r0,
                        const char *r1) {
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, claims);
    dlg_jwt_claims c;
    char err[128] = "";
    if (dlg_jwt_verify(v, tok, strlen(tok), NOW, &c, err, sizeof err) != 0)
        fail_msg("%s: %s", claims, err);
    assert_int_equal(c.n_roles, n);
    if (n > 0)
        assert_string_equal(c.roles[0], r0);
    if (n > 1)
        assert_string_equal(c.roles[1], r1);
    dlg_jwt_claims_free(&c);
    free(tok);
}

static void roles(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600,\"role\":\"admin\"}", 1, "admin", NULL);
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600,\"role\":[\"a\",\"b\"]}", 2, "a", "b");
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600,\"role\":[]}", 0, NULL, NULL);
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600}", 0, NULL, NULL);
    /* renamed claim: "role" is then an ordinary claim */
    assert_int_equal(dlg_jwt_set_roles_claim(v, "https://dialogue/roles"), 0);
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600,\"role\":\"admin\","
                   "\"https://dialogue/roles\":[\"ops\",\"dev\"]}", 2, "ops", "dev");
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600,\"role\":\"admin\"}", 0, NULL, NULL);
    assert_int_equal(dlg_jwt_set_roles_claim(v, NULL), 0);
    check_roles(v, "{\"sub\":\"a\",\"exp\":1800000600,\"role\":\"admin\"}", 1, "admin", NULL);

    static const char *const bad[] = {
        "{\"sub\":\"a\",\"exp\":1800000600,\"role\":[\"a\",7]}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"role\":[\"a\",\"\"]}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"role\":[[\"a\"]]}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"role\":\"*\"}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"role\":{\"a\":1}}",
        "{\"sub\":\"a\",\"exp\":1800000600,\"role\":true}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, bad[i]);
        expect(v, tok, DLG_EAUTH, "malformed token: role claim");
        free(tok);
    }
    /* more than DLG_JWT_MAX_ROLES */
    char claims[2048] = "{\"sub\":\"a\",\"exp\":1800000600,\"role\":[\"r\"";
    for (int i = 1; i <= DLG_JWT_MAX_ROLES; i++)
        strcat(claims, ",\"r\"");
    strcat(claims, "]}");
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, claims);
    expect(v, tok, DLG_EAUTH, "more than 64 roles");
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- malformed tokens ----------------------------------------------------------------------- */

static void oversize(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    /* grow a padding claim until the signed token is exactly the limit */
    char *claims = malloc(8192);
    assert_non_null(claims);
    char *tok = NULL;
    size_t pad = 5000, len = 0;
    for (int round = 0; round < 20; round++) {
        snprintf(claims, 8192, "{\"sub\":\"a\",\"exp\":1800000600,\"pad\":\"%*s\"}", (int)pad,
                 "");
        free(tok);
        tok = make_token(DLG_JWT_HS256, secret1, hs_header, claims);
        len = strlen(tok);
        if (len == DLG_JWT_MAX_TOKEN || len == DLG_JWT_MAX_TOKEN + 1)
            break;
        pad = pad + (DLG_JWT_MAX_TOKEN - len) * 3 / 4 + (len < DLG_JWT_MAX_TOKEN ? 1 : -1);
    }
    if (len == DLG_JWT_MAX_TOKEN) {
        expect(v, tok, 0, NULL);
        snprintf(claims, 8192, "{\"sub\":\"a\",\"exp\":1800000600,\"pad\":\"%*s\"}",
                 (int)pad + 3, "");
        free(tok);
        tok = make_token(DLG_JWT_HS256, secret1, hs_header, claims);
        len = strlen(tok);
    }
    assert_true(len > DLG_JWT_MAX_TOKEN);
    expect(v, tok, DLG_EAUTH, "limit 8192");
    free(tok);
    free(claims);
    dlg_jwt_verifier_free(v);
}

static void segments(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", tok);
    *strrchr(buf, '.') = '\0';
    expect(v, buf, DLG_EAUTH, "malformed token: 2 segments, expected 3");
    snprintf(buf, sizeof buf, "%s.e30", tok);
    expect(v, buf, DLG_EAUTH, "malformed token: 4 segments, expected 3");
    expect(v, "", DLG_EAUTH, "malformed token: 1 segments");
    expect(v, "..", DLG_EAUTH, "header is not a JSON object");
    /* an embedded NUL is not the end of the token */
    size_t n = strlen(tok);
    memcpy(buf, tok, n + 1);
    buf[n] = '\0';
    dlg_jwt_claims c;
    char err[128];
    assert_int_equal(dlg_jwt_verify(v, buf, n + 1, NOW, &c, err, sizeof err), DLG_EAUTH);
    assert_non_null(strstr(err, "signature is not base64url"));
    free(tok);
    dlg_jwt_verifier_free(v);
}

static void bad_base64(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    expect(v, tok, 0, NULL);
    char buf[1024];
    /* standard-alphabet characters */
    snprintf(buf, sizeof buf, "%s", tok);
    buf[3] = '+';
    expect(v, buf, DLG_EAUTH, "header is not base64url");
    snprintf(buf, sizeof buf, "%s", tok);
    strchr(buf, '.')[2] = '/';
    expect(v, buf, DLG_EAUTH, "payload is not base64url");
    /* padding */
    snprintf(buf, sizeof buf, "%s=", tok);
    expect(v, buf, DLG_EAUTH, "signature is not base64url");
    snprintf(buf, sizeof buf, "%s", tok);
    buf[5] = '*';
    expect(v, buf, DLG_EAUTH, "header is not base64url");
    /* an impossible length (4n+1: 43 + 2) */
    snprintf(buf, sizeof buf, "%sAA", tok);
    expect(v, buf, DLG_EAUTH, "signature is not base64url");
    /* the 43-char HS256 signature leaves 2 unused bits; setting them gives a
     * second spelling of the same bytes, which must be refused */
    snprintf(buf, sizeof buf, "%s", tok);
    char *last = buf + strlen(buf) - 1;
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int val = (int)(strchr(alpha, *last) - alpha);
    assert_int_equal(val & 3, 0);
    *last = alpha[val | 1];
    expect(v, buf, DLG_EAUTH, "signature is not base64url");
    free(tok);
    expect(v, "!!!.???.***", DLG_EAUTH, "header is not base64url");
    dlg_jwt_verifier_free(v);
}

static void not_objects(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    static const char *const payloads[] = {"[1,2]", "\"alice\"", "42", "null", "{", "",
                                           "{\"sub\":\"a\"} x"};
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, payloads[i]);
        expect(v, tok, DLG_EAUTH, "payload is not a JSON object");
        free(tok);
    }
    char *tok = make_token(DLG_JWT_HS256, secret1, "[\"HS256\"]", base_claims);
    expect(v, tok, DLG_EAUTH, "header is not a JSON object");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}",
                     base_claims);
    expect(v, tok, DLG_EAUTH, "header typ is not JWT");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
                     base_claims);
    expect(v, tok, 0, NULL);
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                     base_claims);
    expect(v, tok, DLG_EAUTH, "crit");
    free(tok);
    tok = make_token(DLG_JWT_HS256, secret1, "{\"alg\":\"HS256\",\"alg\":\"none\"}",
                     base_claims);
    expect(v, tok, DLG_EAUTH, "header is not a JSON object");
    free(tok);
    dlg_jwt_verifier_free(v);
}

static void es256_signature_shape(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_public_key_file(v, NULL, DLG_JWT_ES256, f->ec_pem, err,
                                                 sizeof err), 0);
    /* DER, as OpenSSL produces it, is not the JOSE form */
    const char *header = "{\"alg\":\"ES256\"}";
    char *h = b64url(header, strlen(header));
    char *p = b64url(base_claims, strlen(base_claims));
    char msg[1024];
    snprintf(msg, sizeof msg, "%s.%s", h, p);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, f->ec), 1);
    uint8_t der[128];
    size_t n = sizeof der;
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (uint8_t *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    char *s = b64url(der, n);
    char tok[2048];
    snprintf(tok, sizeof tok, "%s.%s", msg, s);
    expect(v, tok, DLG_EAUTH, "ES256 signature is");
    /* r = s = 0 */
    uint8_t zero[64] = {0};
    free(s);
    s = b64url(zero, sizeof zero);
    snprintf(tok, sizeof tok, "%s.%s", msg, s);
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    /* r, s = the group order (out of range) */
    static const uint8_t order[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
    uint8_t big[64];
    memcpy(big, order, 32);
    memcpy(big + 32, order, 32);
    free(s);
    s = b64url(big, sizeof big);
    snprintf(tok, sizeof tok, "%s.%s", msg, s);
    expect(v, tok, DLG_EAUTH, "token signature invalid");
    free(s);
    free(h);
    free(p);
    dlg_jwt_verifier_free(v);
}

static void bad_arguments(void **state) {
    (void)state;
    dlg_jwt_claims c;
    char err[64];
    assert_int_equal(dlg_jwt_verify(NULL, "a.b.c", 5, NOW, &c, err, sizeof err), DLG_EINVAL);
    dlg_jwt_verifier *v = hs_verifier();
    assert_int_equal(dlg_jwt_verify(v, NULL, 0, NOW, &c, err, sizeof err), DLG_EINVAL);
    /* no room for a message is fine */
    assert_int_equal(dlg_jwt_verify(v, "x", 1, NOW, &c, NULL, 0), DLG_EAUTH);
    char tiny[8];
    assert_int_equal(dlg_jwt_verify(v, "x", 1, NOW, &c, tiny, sizeof tiny), DLG_EAUTH);
    assert_int_equal(strlen(tiny), 7);
    dlg_jwt_verifier_free(v);
    dlg_jwt_verifier_free(NULL);
    dlg_jwt_claims_free(NULL);
    assert_int_equal(dlg_jwt_verifier_new(NULL), DLG_EINVAL);
}

/* ---- claims copy, session deadline ---------------------------------------------------------- */

static void claims_copy_and_deadline(void **state) {
    (void)state;
    dlg_jwt_verifier *v = hs_verifier();
    char *tok = make_token(DLG_JWT_HS256, secret1, hs_header, base_claims);
    dlg_jwt_claims c, d;
    char err[128];
    assert_int_equal(dlg_jwt_verify(v, tok, strlen(tok), NOW, &c, err, sizeof err), 0);
    assert_int_equal(dlg_jwt_claims_copy(&d, &c), 0);
    dlg_jwt_claims_free(&c);
    assert_string_equal(d.sub, "alice");
    assert_int_equal(d.n_roles, 2);
    assert_string_equal(d.roles[1], "ops");
    assert_int_equal(d.exp, NOW + 600);
    assert_int_equal(dlg_jwt_session_deadline(v, &d), NOW + 600 + DLG_JWT_DEFAULT_LEEWAY);
    dlg_jwt_set_leeway(v, 0);
    assert_int_equal(dlg_jwt_session_deadline(v, &d), NOW + 600);
    dlg_jwt_claims_free(&d);
    assert_int_equal(dlg_jwt_claims_copy(&d, NULL), DLG_EINVAL);
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- minting --------------------------------------------------------------------------------- */

static void sign_arguments(void **state) {
    (void)state;
    const uint8_t *s = (const uint8_t *)secret1;
    size_t n = strlen(secret1);
    char *tok = (char *)"unchanged";
    const char *star[] = {"*"};
    const char *ok[] = {"a"};
    assert_int_equal(dlg_jwt_sign_hs256(s, 10, NULL, "a", NULL, 0, NOW, 60, NULL, NULL, &tok),
                     DLG_EINVAL);
    assert_int_equal(dlg_jwt_sign_hs256(s, n, NULL, "", NULL, 0, NOW, 60, NULL, NULL, &tok),
                     DLG_EINVAL);
    assert_int_equal(dlg_jwt_sign_hs256(s, n, NULL, "a", star, 1, NOW, 60, NULL, NULL, &tok),
                     DLG_EINVAL);
    assert_int_equal(dlg_jwt_sign_hs256(s, n, NULL, "a", ok, 1, NOW, 0, NULL, NULL, &tok),
                     DLG_EINVAL);
    assert_int_equal(dlg_jwt_sign_hs256(s, n, "bad\nkid", "a", ok, 1, NOW, 60, NULL, NULL,
                                        &tok), DLG_EINVAL);
    assert_int_equal(dlg_jwt_sign_hs256(s, n, NULL, "a", ok, 1, NOW, 60, "\xff", NULL, &tok),
                     DLG_EINVAL);
    assert_string_equal(tok, "unchanged");
    assert_true(dlg_jwt_name_valid("alice", false));
    assert_false(dlg_jwt_name_valid("*", true));
    assert_true(dlg_jwt_name_valid("*", false));
    assert_false(dlg_jwt_name_valid("\xc3\x28", false));
    assert_false(dlg_jwt_name_valid(NULL, false));

    /* one role is minted as a string, kid lands in the header */
    assert_int_equal(dlg_jwt_sign_hs256(s, n, "k1", "bob", ok, 1, NOW, 60, NULL, NULL, &tok),
                     0);
    dlg_jwt_verifier *v = NULL;
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_hmac_key(v, "k1", s, n), 0);
    expect(v, tok, 0, NULL);
    char *p = strchr(tok, '.') + 1;
    size_t plen = (size_t)(strchr(p, '.') - p);
    uint8_t json[512];
    char b64[512];
    snprintf(b64, sizeof b64, "%.*s", (int)plen, p);
    for (char *q = b64; *q; q++)
        *q = *q == '-' ? '+' : *q == '_' ? '/' : *q;
    while (strlen(b64) % 4)
        strcat(b64, "=");
    int jl = EVP_DecodeBlock(json, (uint8_t *)b64, (int)strlen(b64));
    assert_true(jl > 0);
    json[jl] = '\0';
    assert_non_null(strstr((char *)json, "\"role\":\"a\""));
    assert_non_null(strstr((char *)json, "\"exp\":1800000060"));
    free(tok);
    dlg_jwt_verifier_free(v);
}

/* ---- dialoguectl token --------------------------------------------------------------------- */

/* Runs the subcommand with output captured; returns its exit status. */
static int run_token(char **argv, char *out, size_t outlen, char *err, size_t errlen) {
    int argc = 0;
    while (argv[argc])
        argc++;
    FILE *o = tmpfile(), *e = tmpfile();
    assert_non_null(o);
    assert_non_null(e);
    int rc = dlg_cli_token_run(argc, argv, o, e);
    rewind(o);
    rewind(e);
    size_t n = fread(out, 1, outlen - 1, o);
    out[n] = '\0';
    n = fread(err, 1, errlen - 1, e);
    err[n] = '\0';
    fclose(o);
    fclose(e);
    return rc;
}

static void cli_token(void **state) {
    fixture *f = *state;
    char out[4096], err[1024];
    char *help[] = {"token", "--help", NULL};
    assert_int_equal(run_token(help, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "DEVELOPMENT AND TESTS"));
    assert_non_null(strstr(out, "--secret-file"));

    char *good[] = {"token", "--secret-file", f->secret_file, "--sub", "carol", "--role",
                    "admin", "--role=ops", "--ttl", "30m", "--aud", "dialogue", NULL};
    int64_t before = (int64_t)time(NULL);
    assert_int_equal(run_token(good, out, sizeof out, err, sizeof err), 0);
    int64_t after = (int64_t)time(NULL);
    assert_string_equal(err, "");
    size_t n = strlen(out);
    assert_true(n > 10 && out[n - 1] == '\n');
    out[n - 1] = '\0';
    dlg_jwt_verifier *v = NULL;
    char why[256] = "";
    assert_int_equal(dlg_jwt_verifier_new(&v), 0);
    assert_int_equal(dlg_jwt_add_secret_file(v, NULL, f->secret_file, why, sizeof why), 0);
    assert_int_equal(dlg_jwt_set_audience(v, "dialogue"), 0);
    dlg_jwt_claims c;
    assert_int_equal(dlg_jwt_verify(v, out, strlen(out), after, &c, why, sizeof why), 0);
    assert_string_equal(c.sub, "carol");
    assert_int_equal(c.n_roles, 2);
    assert_string_equal(c.roles[1], "ops");
    assert_true(c.exp >= before + 1800 && c.exp <= after + 1800);
    dlg_jwt_claims_free(&c);
    dlg_jwt_verifier_free(v);

    static const struct {
        const char *ttl;
        int ok;
    } ttls[] = {{"45s", 1}, {"3600", 1}, {"1h", 1}, {"2d", 1}, {"365d", 1}, {"366d", 0},
                {"0", 0}, {"1x", 0}, {"h", 0}, {"-5", 0}, {"1hh", 0}, {"", 0},
                {"99999999999999999999", 0}};
    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        char *argv[] = {"token", "--secret-file", f->secret_file, "--sub", "x", "--ttl",
                        (char *)ttls[i].ttl, NULL};
        int rc = run_token(argv, out, sizeof out, err, sizeof err);
        if (rc != (ttls[i].ok ? 0 : 2))
            fail_msg("--ttl \"%s\": exit %d, stderr %s", ttls[i].ttl, rc, err);
        if (!ttls[i].ok)
            assert_non_null(strstr(err, "--ttl"));
    }

    char *no_sub[] = {"token", "--secret-file", f->secret_file, NULL};
    assert_int_equal(run_token(no_sub, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "--sub is required"));
    assert_string_equal(out, "");
    char *no_secret[] = {"token", "--sub", "x", NULL};
    assert_int_equal(run_token(no_secret, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "--secret-file is required"));
    char *dangling[] = {"token", "--secret-file", f->secret_file, "--sub", NULL};
    assert_int_equal(run_token(dangling, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "--sub needs a value"));
    char *unknown[] = {"token", "--secret-file", f->secret_file, "--sub", "x", "--subject",
                       "y", NULL};
    assert_int_equal(run_token(unknown, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "\"--subject\""));
    char *star[] = {"token", "--secret-file", f->secret_file, "--sub", "x", "--role", "*",
                    NULL};
    assert_int_equal(run_token(star, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "--role \"*\""));
    char *short_secret[] = {"token", "--secret-file", f->short_secret, "--sub", "x", NULL};
    assert_int_equal(run_token(short_secret, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, f->short_secret));
    assert_null(strstr(err, "tooshort"));
    assert_string_equal(out, "");
    char missing[160];
    snprintf(missing, sizeof missing, "%s/absent", f->dir);
    char *absent[] = {"token", "--secret-file", missing, "--sub", "x", NULL};
    assert_int_equal(run_token(absent, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, missing));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alg_names),
        cmocka_unit_test(hs256_minted_roundtrip),
        cmocka_unit_test(hs256_secret_file),
        cmocka_unit_test(rs256_valid),
        cmocka_unit_test(es256_valid),
        cmocka_unit_test(eddsa_valid),
        cmocka_unit_test(hs256_forged),
        cmocka_unit_test(certificate_as_key),
        cmocka_unit_test(alg_none),
        cmocka_unit_test(alg_mismatch),
        cmocka_unit_test(hmac_with_rsa_public_key),
        cmocka_unit_test(kid_selection),
        cmocka_unit_test(default_keys),
        cmocka_unit_test(rsa_rotation),
        cmocka_unit_test(key_loading_errors),
        cmocka_unit_test(expired),
        cmocka_unit_test(not_before_and_iat),
        cmocka_unit_test(leeway),
        cmocka_unit_test(exp_optional),
        cmocka_unit_test(audience_and_issuer),
        cmocka_unit_test(audience_unconfigured),
        cmocka_unit_test(subject),
        cmocka_unit_test(roles),
        cmocka_unit_test(oversize),
        cmocka_unit_test(segments),
        cmocka_unit_test(bad_base64),
        cmocka_unit_test(not_objects),
        cmocka_unit_test(es256_signature_shape),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(claims_copy_and_deadline),
        cmocka_unit_test(sign_arguments),
        cmocka_unit_test(cli_token),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
