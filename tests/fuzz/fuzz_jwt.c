/* fuzz_jwt.c: libFuzzer harness for the JWT verifier (lib/jwt/jwt_verify.c), against
 * two verifiers holding HS256 and ES256 keys (default and by kid) with
 * different claim settings. Input starting with 0x01 is "header JSON \n
 * payload JSON", which the harness encodes and signs with the HS256 test
 * secret, so the claim checks behind the signature get fuzzed too; any other
 * input is a token as is. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dlg_err.h"
#include "fuzz_sets.h"
#include "fuzz_util.h"
#include "jwt.h"

/* Test-only keys (also in mkseeds.py). Each holds bytes that messages never
 * quote (they show attacker text as printable ASCII only), so finding one
 * in a message means key material leaked, not that the fuzzer put the
 * secret's text into a header, which it learns to do from this very check. */
static const char hs_secret[] = "dialogue-fuzz-\x01hs256\xfe-secret-001";
static const char hs_secret_k2[] = "dialogue-fuzz-\x01hs256\xfe-kid-k2-002";
/* Fixed clock, so verdicts do not change with the date (seeds expire in 2033). */
#define FUZZ_NOW 1700000000
#define MAX_SIGNED 4096

typedef struct harness {
    dlg_jwt_verifier *v[2];
    bool require_exp[2];
    int64_t leeway[2];
} harness;

/* libFuzzer's entry points carry no context pointer, so the verifiers built
 * once in LLVMFuzzerInitialize live here; inputs only read them. */
static harness *g_h;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void add_es256(dlg_jwt_verifier *v, const char *kid, const char *pem_path) {
    char err[512];
    int rc = dlg_jwt_add_public_key_file(v, kid, DLG_JWT_ES256, pem_path, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "ES256 key %s: %s", pem_path, err);
}

static void add_hs256(dlg_jwt_verifier *v, const char *kid, const char *secret) {
    int rc = dlg_jwt_add_hmac_key(v, kid, (const uint8_t *)secret, strlen(secret));
    FUZZ_CHECK(rc == 0, "HS256 key %s: %s", kid ? kid : "(default)", dlg_strerror(rc));
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    harness *h = calloc(1, sizeof(*h));
    FUZZ_CHECK(h != NULL, "out of memory");
    /* The verifier reads public keys from files only. */
    char pem[256];
    int fd = fuzz_tmpfile("es256", pem, sizeof(pem));
    fuzz_tmpfile_put(fd, fuzz_es256_pub, fuzz_es256_pub_len);

    /* v[0]: defaults (exp required, leeway 30, roles claim "role"); a
     * default HS256 key, an ES256 key and a second HS256 key by kid. */
    FUZZ_CHECK(dlg_jwt_verifier_new(&h->v[0]) == 0, "out of memory");
    add_hs256(h->v[0], NULL, hs_secret);
    add_es256(h->v[0], "es1", pem);
    add_hs256(h->v[0], "k2", hs_secret_k2);
    h->require_exp[0] = true;
    h->leeway[0] = DLG_JWT_DEFAULT_LEEWAY;

    /* v[1]: issuer, audience, roles claim "roles", no exp needed, no leeway;
     * two default keys of different algorithms. */
    FUZZ_CHECK(dlg_jwt_verifier_new(&h->v[1]) == 0, "out of memory");
    add_es256(h->v[1], NULL, pem);
    add_hs256(h->v[1], NULL, hs_secret);
    FUZZ_CHECK(dlg_jwt_set_issuer(h->v[1], "https://issuer.test") == 0 &&
                   dlg_jwt_set_audience(h->v[1], "dialogue") == 0 &&
                   dlg_jwt_set_roles_claim(h->v[1], "roles") == 0,
               "cannot configure verifier %d", 1);
    dlg_jwt_set_leeway(h->v[1], 0);
    dlg_jwt_set_require_exp(h->v[1], false);
    h->require_exp[1] = false;
    h->leeway[1] = 0;
    /* The keys are loaded: no file left behind, even if an input crashes. */
    close(fd);
    unlink(pem);
    g_h = h;
    return 0;
}

static size_t b64url(const uint8_t *in, size_t n, char *out) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    return o;
}

/* "header\npayload" -> header.payload.HS256-signature in a new buffer. */
static char *sign(const uint8_t *p, size_t n, size_t *len) {
    const uint8_t *nl = memchr(p, '\n', n);
    if (nl == NULL || n > MAX_SIGNED)
        return NULL;
    size_t hn = (size_t)(nl - p), pn = n - hn - 1;
    char *tok = malloc((n / 3 + 2) * 4 + 2 + 64);
    FUZZ_CHECK(tok != NULL, "out of memory");
    size_t o = b64url(p, hn, tok);
    tok[o++] = '.';
    o += b64url(nl + 1, pn, tok + o);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    FUZZ_CHECK(HMAC(EVP_sha256(), hs_secret, (int)strlen(hs_secret), (const uint8_t *)tok, o,
                    mac, &mlen) != NULL,
               "HMAC failed for a %zu-byte token", o);
    tok[o++] = '.';
    o += b64url(mac, mlen, tok + o);
    *len = o;
    return tok;
}

static void check(const harness *h, int i, const char *tok, size_t len) {
    dlg_jwt_claims c;
    char err[256] = "";
    memset(&c, 0xa5, sizeof(c));
    int rc = dlg_jwt_verify(h->v[i], tok, len, FUZZ_NOW, &c, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == DLG_EAUTH, "verifier %d returned %d", i, rc);
    /* A reason must never echo a secret. */
    FUZZ_CHECK(strstr(err, hs_secret) == NULL && strstr(err, hs_secret_k2) == NULL,
               "message holds a secret: %s", err);
    if (rc != 0) {
        FUZZ_CHECK(err[0] != 0, "verifier %d refused without a reason", i);
        FUZZ_CHECK(c.sub == NULL && c.roles == NULL && c.n_roles == 0 && c.exp == 0,
                   "verifier %d left claims set after refusing: %s", i, err);
        return;
    }
    FUZZ_CHECK(dlg_jwt_name_valid(c.sub, false), "verifier %d accepted a bad sub", i);
    FUZZ_CHECK(c.n_roles <= DLG_JWT_MAX_ROLES, "%zu roles accepted", c.n_roles);
    FUZZ_CHECK((c.n_roles == 0) == (c.roles == NULL), "roles %p with n_roles %zu",
               (void *)c.roles, c.n_roles);
    for (size_t k = 0; k < c.n_roles; k++)
        FUZZ_CHECK(dlg_jwt_name_valid(c.roles[k], true), "verifier %d accepted bad role %zu",
                   i, k);
    if (h->require_exp[i])
        FUZZ_CHECK(c.exp != 0, "verifier %d accepted a token without exp", i);
    /* exp + leeway saturates here: an overflow would be the harness's UB. */
    int64_t end;
    if (__builtin_add_overflow(c.exp, h->leeway[i], &end))
        end = INT64_MAX;
    if (c.exp != 0)
        FUZZ_CHECK(FUZZ_NOW < end, "verifier %d accepted exp %lld at %d", i,
                   (long long)c.exp, FUZZ_NOW);
    int64_t deadline = dlg_jwt_session_deadline(h->v[i], &c);
    FUZZ_CHECK(c.exp == 0 ? deadline == 0 : deadline == end, "deadline %lld for exp %lld",
               (long long)deadline, (long long)c.exp);
    dlg_jwt_claims copy;
    FUZZ_CHECK(dlg_jwt_claims_copy(&copy, &c) == 0, "claims copy failed");
    FUZZ_CHECK(strcmp(copy.sub, c.sub) == 0 && copy.n_roles == c.n_roles && copy.exp == c.exp,
               "claims copy differs");
    dlg_jwt_claims_free(&copy);
    dlg_jwt_claims_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 0 && data[0] == 0x01) {
        size_t len = 0;
        char *tok = sign(data + 1, size - 1, &len);
        if (tok == NULL)
            return 0;
        check(g_h, 0, tok, len);
        check(g_h, 1, tok, len);
        free(tok);
        return 0;
    }
    /* Not NUL-terminated on purpose: the verifier takes a length. */
    check(g_h, 0, (const char *)data, size);
    check(g_h, 1, (const char *)data, size);
    return 0;
}
