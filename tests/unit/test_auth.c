/* test_auth.c: Hello -> identity (auth.c) in the protocol layer with
 * lib/jwt under it, nothing of the app layer: dlg_auth_setup from a
 * dlg_config built in code (an HS256 secret file and RS256 / ES256 public
 * keys made with OpenSSL at test time in a mkdtemp directory), tokens made
 * by a signer of the test's own (so a bug in jwt.c cannot hide on both
 * sides), and dlg_auth_hello on connections without sockets. The client
 * certificate identity is reached without a socket too: a TLS handshake
 * between two SSL objects over an in-memory BIO pair leaves the server side
 * holding a verified peer certificate, as the daemon's would. */
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
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "dlg_err.h"
#include "jwt.h"
#include "jwtcache.h"

enum { UNAUTH = DIALOGUE__V1__STATUS__UNAUTHENTICATED };

static const char secret[] = "0123456789abcdef0123456789abcdef-auth";
static const char other_secret[] = "0123456789abcdef0123456789abcdef-evil";

typedef struct fixture {
    char dir[64];
    char secret_file[128], rsa_pem[128], ec_pem[128];
    EVP_PKEY *rsa, *ec, *ec_other;
    dlg_config *cfg;
    dlg_server srv;
} fixture;

/* ---- keys and files --------------------------------------------------------- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void write_pubkey(const char *path, EVP_PKEY *k) {
    BIO *b = BIO_new_file(path, "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    BIO_free(b);
}

static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/dlg-auth-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->secret_file, sizeof(f->secret_file), "%s/secret", f->dir);
    snprintf(f->rsa_pem, sizeof(f->rsa_pem), "%s/rsa.pub.pem", f->dir);
    snprintf(f->ec_pem, sizeof(f->ec_pem), "%s/ec.pub.pem", f->dir);
    f->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    f->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    f->ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!f->rsa || !f->ec || !f->ec_other)
        return -1;
    char line[128];
    snprintf(line, sizeof(line), "%s\n", secret);
    write_file(f->secret_file, line);
    write_pubkey(f->rsa_pem, f->rsa);
    write_pubkey(f->ec_pem, f->ec);
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    unlink(f->secret_file);
    unlink(f->rsa_pem);
    unlink(f->ec_pem);
    rmdir(f->dir);
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->ec);
    EVP_PKEY_free(f->ec_other);
    free(f);
    return 0;
}

/* A default config plus one key of alg (DLG_CFG_ALG_*) and the given
 * issuer / audience (NULL = none), as config.c would leave them (owned
 * strings, so dlg_config_free frees them). */
static dlg_config *config_with_key(fixture *f, int alg, const char *iss, const char *aud) {
    dlg_config *c = NULL;
    assert_int_equal(dlg_config_new_default(&c), 0);
    assert_non_null(c->path = strdup("unit.yaml"));
    dlg_config_jwt *j = &c->auth.jwt;
    assert_non_null(j->keys = calloc(1, sizeof(*j->keys)));
    j->n_keys = 1;
    j->keys[0].alg = alg;
    j->keys[0].line = 7;
    if (alg == DLG_CFG_ALG_HS256)
        assert_non_null(j->keys[0].secret_file = strdup(f->secret_file));
    else
        assert_non_null(j->keys[0].public_key_file =
                            strdup(alg == DLG_CFG_ALG_RS256 ? f->rsa_pem : f->ec_pem));
    if (iss)
        assert_non_null(j->issuer = strdup(iss));
    if (aud)
        assert_non_null(j->audience = strdup(aud));
    return c;
}

static void setup_srv(fixture *f, dlg_config *cfg) {
    memset(&f->srv, 0, sizeof(f->srv));
    f->srv.log.level = DLG_LOG_ERROR; /* the missing-iss/aud warnings are expected */
    f->srv.cfg = cfg;
    f->cfg = cfg;
    char err[512] = "";
    if (dlg_auth_setup(&f->srv, cfg, err, sizeof(err)) != 0)
        fail_msg("dlg_auth_setup: %s", err);
    assert_non_null(f->srv.jwt);
}

static int each_teardown(void **state) {
    fixture *f = *state;
    dlg_jwt_verifier_free(f->srv.jwt);
    f->srv.jwt = NULL;
    dlg_jwt_cache_free(f->srv.jwt_cache);
    f->srv.jwt_cache = NULL;
    dlg_config_free(f->cfg);
    f->cfg = NULL;
    return 0;
}

/* ---- a signer independent of jwt.c ------------------------------------------ */

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

/* JOSE signature over msg: HMAC with secret (key NULL), else RS256 / ES256
 * with key (ES256 as r || s, 32 bytes each). */
static size_t sign(const char *alg, EVP_PKEY *key, const char *hsecret, const char *msg,
                   uint8_t *sig) {
    if (key == NULL) {
        unsigned len = 0;
        assert_non_null(HMAC(EVP_sha256(), hsecret, (int)strlen(hsecret),
                             (const uint8_t *)msg, strlen(msg), sig, &len));
        return len;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    uint8_t der[1024];
    size_t n = sizeof(der);
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (const uint8_t *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    if (strcmp(alg, "ES256") != 0) {
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

/* header.payload.signature; the header says alg_hdr, the signature is made
 * with key / hsecret (they may disagree, to test that). Caller frees. */
static char *token(const char *alg_hdr, EVP_PKEY *key, const char *hsecret,
                   const char *payload) {
    char header[64];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg_hdr);
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    size_t mlen = strlen(h) + 1 + strlen(p);
    char *msg = malloc(mlen + 1);
    assert_non_null(msg);
    snprintf(msg, mlen + 1, "%s.%s", h, p);
    uint8_t sig[1024];
    size_t n = sign(alg_hdr, key, hsecret, msg, sig);
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

static long long now_s(void) {
    return (long long)time(NULL);
}

/* ---- running a Hello -------------------------------------------------------- */

static void conn_clear(dlg_conn *c) {
    for (size_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    free(c->roles);
    free(c->user_id);
    memset(c, 0, sizeof(*c));
}

/* Hello with tok (may be NULL) on a fresh connection: the status, the
 * message in err, and the connection's identity left in *c (conn_clear it). */
static int hello(fixture *f, dlg_conn *c, const char *tok, char *err, size_t errlen) {
    memset(c, 0, sizeof(*c));
    c->srv = &f->srv;
    snprintf(c->client_id, sizeof(c->client_id), "c1");
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = (char *)(tok ? tok : "");
    err[0] = '\0';
    return dlg_auth_hello(&f->srv, c, &h, err, errlen);
}

/* The token is refused with UNAUTHENTICATED, a message holding want, and
 * no identity left on the connection. */
static void refused(fixture *f, const char *tok, const char *want) {
    dlg_conn c;
    char err[256];
    int st = hello(f, &c, tok, err, sizeof(err));
    if (st != UNAUTH || strstr(err, want) == NULL)
        fail_msg("status %d (want %d), \"%s\" (want \"%s\")", st, UNAUTH, err, want);
    assert_null(c.user_id);
    assert_int_equal(c.n_roles, 0);
    assert_null(strstr(err, tok)); /* never the token itself */
    conn_clear(&c);
}

/* ---- HS256 -------------------------------------------------------------------- */

static void test_hs256_valid_token_gives_identity(void **state) {
    fixture *f = *state;
    setup_srv(f, config_with_key(f, DLG_CFG_ALG_HS256, "issuer.test", "dialogue"));
    char pl[256];
    long long exp = now_s() + 600;
    snprintf(pl, sizeof(pl), "{\"sub\":\"alice\",\"iss\":\"issuer.test\",\"aud\":\"dialogue\","
                             "\"exp\":%lld,\"role\":[\"admin\",\"ops\"]}", exp);
    char *tok = token("HS256", NULL, secret, pl);
    dlg_conn c;
    char err[256];
    assert_int_equal(hello(f, &c, tok, err, sizeof(err)), 0);
    assert_string_equal(c.user_id, "alice");
    assert_int_equal(c.id_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN);
    assert_int_equal(c.n_roles, 2);
    assert_string_equal(c.roles[0], "admin");
    assert_string_equal(c.roles[1], "ops");
    /* the session ends at exp plus the configured leeway (30 s by default) */
    assert_int_equal(c.session_deadline_ms, (exp + 30) * 1000);
    conn_clear(&c);
    free(tok);
}

/* auth.jwt.roles_claim names where roles are; "role" is then not read. */
static void test_roles_claim(void **state) {
    fixture *f = *state;
    dlg_config *cfg = config_with_key(f, DLG_CFG_ALG_HS256, NULL, NULL);
    free(cfg->auth.jwt.roles_claim);
    assert_non_null(cfg->auth.jwt.roles_claim = strdup("groups"));
    setup_srv(f, cfg);
    char pl[256];
    snprintf(pl, sizeof(pl), "{\"sub\":\"bob\",\"exp\":%lld,\"role\":\"admin\","
                             "\"groups\":\"readers\"}", now_s() + 600);
    char *tok = token("HS256", NULL, secret, pl);
    dlg_conn c;
    char err[256];
    assert_int_equal(hello(f, &c, tok, err, sizeof(err)), 0);
    assert_string_equal(c.user_id, "bob");
    assert_int_equal(c.n_roles, 1);
    assert_string_equal(c.roles[0], "readers");
    conn_clear(&c);
    free(tok);
}

static void test_hs256_refusals(void **state) {
    fixture *f = *state;
    setup_srv(f, config_with_key(f, DLG_CFG_ALG_HS256, "issuer.test", "dialogue"));
    long long now = now_s();
    char pl[256];
    char *tok;
#define REFUSED(alg, key, sec, want, ...)                                                   \
    do {                                                                                     \
        snprintf(pl, sizeof(pl), __VA_ARGS__);                                               \
        tok = token(alg, key, sec, pl);                                                      \
        refused(f, tok, want);                                                               \
        free(tok);                                                                           \
    } while (0)
    /* expired, past the 30 s leeway */
    REFUSED("HS256", NULL, secret, "expired",
            "{\"sub\":\"a\",\"iss\":\"issuer.test\",\"aud\":\"dialogue\",\"exp\":%lld}",
            now - 100);
    /* not yet valid */
    REFUSED("HS256", NULL, secret, "not valid before",
            "{\"sub\":\"a\",\"iss\":\"issuer.test\",\"aud\":\"dialogue\",\"exp\":%lld,"
            "\"nbf\":%lld}", now + 600, now + 300);
    /* signed with another secret */
    REFUSED("HS256", NULL, other_secret, "signature",
            "{\"sub\":\"a\",\"iss\":\"issuer.test\",\"aud\":\"dialogue\",\"exp\":%lld}",
            now + 600);
    /* another alg than the key's (the header's alg never picks the check) */
    REFUSED("RS256", f->rsa, NULL, "alg",
            "{\"sub\":\"a\",\"iss\":\"issuer.test\",\"aud\":\"dialogue\",\"exp\":%lld}",
            now + 600);
    /* wrong audience, and none */
    REFUSED("HS256", NULL, secret, "audience",
            "{\"sub\":\"a\",\"iss\":\"issuer.test\",\"aud\":\"elsewhere\",\"exp\":%lld}",
            now + 600);
    REFUSED("HS256", NULL, secret, "aud",
            "{\"sub\":\"a\",\"iss\":\"issuer.test\",\"exp\":%lld}", now + 600);
    /* wrong issuer, and none */
    REFUSED("HS256", NULL, secret, "issuer",
            "{\"sub\":\"a\",\"iss\":\"mallory\",\"aud\":\"dialogue\",\"exp\":%lld}", now + 600);
    REFUSED("HS256", NULL, secret, "iss",
            "{\"sub\":\"a\",\"aud\":\"dialogue\",\"exp\":%lld}", now + 600);
#undef REFUSED
    /* not a token at all */
    refused(f, "garbage", "malformed");
}

/* aud in a token when the server has no audience configured: refused (it
 * was minted for some other recipient). */
static void test_aud_without_audience_configured(void **state) {
    fixture *f = *state;
    setup_srv(f, config_with_key(f, DLG_CFG_ALG_HS256, NULL, NULL));
    char pl[256];
    snprintf(pl, sizeof(pl), "{\"sub\":\"a\",\"aud\":\"dialogue\",\"exp\":%lld}", now_s() + 600);
    char *tok = token("HS256", NULL, secret, pl);
    refused(f, tok, "auth.jwt.audience");
    free(tok);
    /* and the same token without aud passes */
    snprintf(pl, sizeof(pl), "{\"sub\":\"a\",\"exp\":%lld}", now_s() + 600);
    tok = token("HS256", NULL, secret, pl);
    dlg_conn c;
    char err[256];
    assert_int_equal(hello(f, &c, tok, err, sizeof(err)), 0);
    assert_string_equal(c.user_id, "a");
    conn_clear(&c);
    free(tok);
}

/* ---- RS256 / ES256 -------------------------------------------------------------- */

static void asym(fixture *f, int cfg_alg, const char *alg, EVP_PKEY *key, EVP_PKEY *wrong) {
    setup_srv(f, config_with_key(f, cfg_alg, "issuer.test", "dialogue"));
    char pl[256];
    snprintf(pl, sizeof(pl), "{\"sub\":\"svc\",\"iss\":\"issuer.test\",\"aud\":\"dialogue\","
                             "\"exp\":%lld,\"role\":\"writer\"}", now_s() + 600);
    char *tok = token(alg, key, NULL, pl);
    dlg_conn c;
    char err[256];
    int st = hello(f, &c, tok, err, sizeof(err));
    if (st != 0)
        fail_msg("%s: status %d: %s", alg, st, err);
    assert_string_equal(c.user_id, "svc");
    assert_int_equal(c.n_roles, 1);
    assert_string_equal(c.roles[0], "writer");
    conn_clear(&c);
    free(tok);
    /* another key of the same kind: refused */
    tok = token(alg, wrong, NULL, pl);
    refused(f, tok, "signature");
    free(tok);
    /* an HS256 token "signed" with anything: refused for its alg */
    tok = token("HS256", NULL, secret, pl);
    refused(f, tok, "alg");
    free(tok);
}

static void test_rs256(void **state) {
    fixture *f = *state;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(other);
    asym(f, DLG_CFG_ALG_RS256, "RS256", f->rsa, other);
    EVP_PKEY_free(other);
}

static void test_es256(void **state) {
    fixture *f = *state;
    asym(f, DLG_CFG_ALG_ES256, "ES256", f->ec, f->ec_other);
}

/* ---- setup errors, no keys, anonymous --------------------------------------------- */

/* A key file that cannot be read: the error names the config file, the
 * key's line and index; nothing is installed. */
static void test_setup_names_bad_key_file(void **state) {
    fixture *f = *state;
    dlg_config *cfg = config_with_key(f, DLG_CFG_ALG_HS256, NULL, NULL);
    free(cfg->auth.jwt.keys[0].secret_file);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no-such-secret", f->dir);
    assert_non_null(cfg->auth.jwt.keys[0].secret_file = strdup(missing));
    f->cfg = cfg;
    memset(&f->srv, 0, sizeof(f->srv));
    f->srv.log.level = DLG_LOG_ERROR;
    char err[512] = "";
    assert_int_not_equal(dlg_auth_setup(&f->srv, cfg, err, sizeof(err)), 0);
    assert_null(f->srv.jwt);
    if (strstr(err, "unit.yaml:7: auth.jwt.keys[0]") == NULL || strstr(err, missing) == NULL)
        fail_msg("error does not name the file, line and key: \"%s\"", err);
    /* an RS256 key file holding an EC key: refused for its kind */
    dlg_config *c2 = config_with_key(f, DLG_CFG_ALG_RS256, "i", "a");
    free(c2->auth.jwt.keys[0].public_key_file);
    assert_non_null(c2->auth.jwt.keys[0].public_key_file = strdup(f->ec_pem));
    err[0] = '\0';
    assert_int_not_equal(dlg_auth_setup(&f->srv, c2, err, sizeof(err)), 0);
    assert_null(f->srv.jwt);
    assert_non_null(strstr(err, "unit.yaml:7: auth.jwt.keys[0]"));
    dlg_config_free(c2);
}

/* No keys configured: token auth is off; a token is refused, saying so. */
static void test_token_without_keys(void **state) {
    fixture *f = *state;
    dlg_config *cfg = NULL;
    assert_int_equal(dlg_config_new_default(&cfg), 0);
    f->cfg = cfg;
    memset(&f->srv, 0, sizeof(f->srv));
    f->srv.log.level = DLG_LOG_ERROR;
    char err[256] = "";
    assert_int_equal(dlg_auth_setup(&f->srv, cfg, err, sizeof(err)), 0);
    assert_null(f->srv.jwt);
    f->srv.opts.allow_anonymous = 1; /* a token is not silently dropped to anonymous */
    char pl[128];
    snprintf(pl, sizeof(pl), "{\"sub\":\"a\",\"exp\":%lld}", now_s() + 600);
    char *tok = token("HS256", NULL, secret, pl);
    refused(f, tok, "not configured");
    free(tok);
}

static void test_anonymous_per_config(void **state) {
    fixture *f = *state;
    setup_srv(f, config_with_key(f, DLG_CFG_ALG_HS256, NULL, NULL));
    dlg_conn c;
    char err[256];
    f->srv.opts.allow_anonymous = 0;
    assert_int_equal(hello(f, &c, NULL, err, sizeof(err)), UNAUTH);
    assert_non_null(strstr(err, "credentials required"));
    assert_null(c.user_id);
    conn_clear(&c);
    f->srv.opts.allow_anonymous = 1;
    assert_int_equal(hello(f, &c, NULL, err, sizeof(err)), 0);
    assert_null(c.user_id);
    assert_int_equal(c.n_roles, 0);
    assert_int_equal(c.id_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS);
    conn_clear(&c);
    /* a bad token is refused even when anonymous clients are allowed */
    refused(f, "a.b.c", "malformed");
}

static void test_same_identity(void **state) {
    (void)state;
    enum { T = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN,
           A = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS };
    assert_true(dlg_auth_same(T, "alice", T, "alice"));
    assert_false(dlg_auth_same(T, "alice", A, "alice"));
    assert_false(dlg_auth_same(T, "alice", T, "bob"));
    assert_false(dlg_auth_same(T, NULL, T, NULL));
}

/* ---- client certificates ------------------------------------------------------------ */

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key, int is_ca,
                       const char *san) {
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca ? ca : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                            is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (is_ca) {
        e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (san) {
        e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, ca_key ? ca_key : key, EVP_sha256()) > 0);
    return x;
}

static int accept_any(int ok, X509_STORE_CTX *ctx) {
    (void)ok;
    (void)ctx;
    return 1; /* the handshake goes on; the verify result tells the truth */
}

/* A TLS 1.3 handshake in memory: the server trusts ca and asks for a client
 * certificate; the client presents cert. Returns the server's SSL (free it,
 * and *client, with SSL_free). */
static SSL *handshake(X509 *ca, X509 *cert, EVP_PKEY *key, SSL **client) {
    EVP_PKEY *skey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(skey);
    X509 *scert = make_cert(skey, "server", NULL, NULL, 0, NULL);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(sctx);
    assert_non_null(cctx);
    assert_int_equal(SSL_CTX_use_certificate(sctx, scert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(sctx, skey), 1);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), ca), 1);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, accept_any);
    assert_int_equal(SSL_CTX_use_certificate(cctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(cctx, key), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    assert_non_null(s);
    assert_non_null(c);
    BIO *sb = NULL, *cb = NULL;
    assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 50 && !(sdone && cdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(c) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(s) == 1;
    }
    assert_true(sdone && cdone);
    /* the server side has the certificate once it read the client's Finished */
    assert_non_null(SSL_get0_peer_certificate(s));
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    X509_free(scert);
    EVP_PKEY_free(skey);
    *client = c;
    return s;
}

typedef struct certs {
    EVP_PKEY *ca_key, *key, *rogue_key;
    X509 *ca, *rogue_ca, *cert, *rogue;
} certs;

static void certs_make(certs *k) {
    k->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->rogue_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k->ca_key);
    assert_non_null(k->rogue_key);
    assert_non_null(k->key);
    k->ca = make_cert(k->ca_key, "unit CA", NULL, NULL, 1, NULL);
    k->rogue_ca = make_cert(k->rogue_key, "unit CA", NULL, NULL, 1, NULL);
    const char *san = "DNS:carol.example,email:carol@example.org";
    k->cert = make_cert(k->key, "carol", k->ca, k->ca_key, 0, san);
    k->rogue = make_cert(k->key, "carol", k->rogue_ca, k->rogue_key, 0, san);
}

static void certs_free(certs *k) {
    X509_free(k->ca);
    X509_free(k->rogue_ca);
    X509_free(k->cert);
    X509_free(k->rogue);
    EVP_PKEY_free(k->ca_key);
    EVP_PKEY_free(k->rogue_key);
    EVP_PKEY_free(k->key);
}

/* Hello without a token on a connection whose TLS session is s, accepted
 * on a listener that asks for client certificates. */
static int cert_hello(fixture *f, SSL *s, dlg_conn *c, dlg_listener *lis, char *err,
                      size_t errlen) {
    memset(lis, 0, sizeof(*lis));
    lis->conf.client_ca_file = "ca.pem"; /* only its presence is read here */
    memset(c, 0, sizeof(*c));
    c->srv = &f->srv;
    c->lis = lis;
    c->st.tls_on = 1;
    c->st.tls.ssl = s;
    snprintf(c->client_id, sizeof(c->client_id), "c9");
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    h.protocol_version = 1;
    err[0] = '\0';
    return dlg_auth_hello(&f->srv, c, &h, err, errlen);
}

static void test_client_certificate_identity(void **state) {
    fixture *f = *state;
    dlg_config *cfg = NULL;
    assert_int_equal(dlg_config_new_default(&cfg), 0);
    f->cfg = cfg;
    dlg_config_client_cert *cc = &cfg->auth.client_cert;
    assert_non_null(cc->roles = calloc(2, sizeof(*cc->roles)));
    cc->n_roles = 2;
    assert_non_null(cc->roles[0].match = strdup("dave"));
    assert_non_null(cc->roles[1].match = strdup("carol"));
    assert_non_null(cc->roles[1].roles.v = calloc(2, sizeof(char *)));
    assert_non_null(cc->roles[1].roles.v[0] = strdup("ops"));
    assert_non_null(cc->roles[1].roles.v[1] = strdup("audit"));
    cc->roles[1].roles.n = 2;
    memset(&f->srv, 0, sizeof(f->srv));
    f->srv.log.level = DLG_LOG_ERROR;
    f->srv.cfg = cfg;

    certs k;
    certs_make(&k);
    SSL *cl = NULL;
    SSL *s = handshake(k.ca, k.cert, k.key, &cl);
    dlg_conn c;
    dlg_listener lis;
    char err[256];

    /* user_from CN (default): "carol", roles from auth.client_cert.roles */
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), 0);
    assert_string_equal(c.user_id, "carol");
    assert_int_equal(c.id_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE);
    assert_int_equal(c.n_roles, 2);
    assert_string_equal(c.roles[0], "ops");
    assert_string_equal(c.roles[1], "audit");
    conn_clear(&c);
    /* the one SAN of a type */
    cc->user_from = DLG_CFG_USER_FROM_DNS;
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), 0);
    assert_string_equal(c.user_id, "carol.example");
    assert_int_equal(c.n_roles, 0); /* roles match the name exactly */
    conn_clear(&c);
    cc->user_from = DLG_CFG_USER_FROM_EMAIL;
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), 0);
    assert_string_equal(c.user_id, "carol@example.org");
    conn_clear(&c);
    /* no SAN of the type asked for: refused, never anonymous instead */
    cc->user_from = DLG_CFG_USER_FROM_URI;
    f->srv.opts.allow_anonymous = 1;
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), UNAUTH);
    assert_non_null(strstr(err, "no URI SAN"));
    assert_null(c.user_id);
    conn_clear(&c);
    /* a listener that does not ask for certificates does not read one */
    cc->user_from = DLG_CFG_USER_FROM_CN;
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), 0);
    conn_clear(&c);
    lis.conf.client_ca_file = NULL;
    memset(&c, 0, sizeof(c));
    c.srv = &f->srv;
    c.lis = &lis;
    c.st.tls_on = 1;
    c.st.tls.ssl = s;
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    assert_int_equal(dlg_auth_hello(&f->srv, &c, &h, err, sizeof(err)), 0);
    assert_null(c.user_id);
    assert_int_equal(c.id_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS);
    conn_clear(&c);
    SSL_free(s);
    SSL_free(cl);

    /* a certificate that did not verify (another CA, same names) gives no
     * identity: anonymous when allowed, refused when not */
    s = handshake(k.ca, k.rogue, k.key, &cl);
    assert_int_not_equal(SSL_get_verify_result(s), X509_V_OK);
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), 0);
    assert_null(c.user_id);
    assert_int_equal(c.id_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS);
    conn_clear(&c);
    f->srv.opts.allow_anonymous = 0;
    assert_int_equal(cert_hello(f, s, &c, &lis, err, sizeof(err)), UNAUTH);
    assert_null(c.user_id);
    conn_clear(&c);
    SSL_free(s);
    SSL_free(cl);
    certs_free(&k);
    ERR_clear_error();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hs256_valid_token_gives_identity, each_teardown),
        cmocka_unit_test_teardown(test_roles_claim, each_teardown),
        cmocka_unit_test_teardown(test_hs256_refusals, each_teardown),
        cmocka_unit_test_teardown(test_aud_without_audience_configured, each_teardown),
        cmocka_unit_test_teardown(test_rs256, each_teardown),
        cmocka_unit_test_teardown(test_es256, each_teardown),
        cmocka_unit_test_teardown(test_setup_names_bad_key_file, each_teardown),
        cmocka_unit_test_teardown(test_token_without_keys, each_teardown),
        cmocka_unit_test_teardown(test_anonymous_per_config, each_teardown),
        cmocka_unit_test(test_same_identity),
        cmocka_unit_test_teardown(test_client_certificate_identity, each_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
