/* jwtcache.c: the verified-token cache (see jwtcache.h). */
#include "jwtcache.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

typedef struct entry {
    uint8_t key[32];          /* SHA-256 of the token */
    int used;
    int64_t deadline;         /* exp + leeway; 0 = no exp */
    dlg_jwt_claims cl;
} entry;

struct dlg_jwt_cache {
    size_t n;
    entry *e;
};

int dlg_jwt_cache_new(size_t slots, dlg_jwt_cache **out) {
    if (slots == 0) {
        *out = NULL;
        return 0;
    }
    dlg_jwt_cache *c = dlg_calloc(1, sizeof(*c));
    if (c == NULL)
        return DLG_ENOMEM;
    if ((c->e = dlg_calloc(slots, sizeof(*c->e))) == NULL) {
        dlg_free(c);
        return DLG_ENOMEM;
    }
    c->n = slots;
    *out = c;
    return 0;
}

static void drop(entry *e) {
    dlg_jwt_claims_free(&e->cl);
    OPENSSL_cleanse(e->key, sizeof(e->key));
    e->used = 0;
    e->deadline = 0;
}

void dlg_jwt_cache_clear(dlg_jwt_cache *c) {
    for (size_t i = 0; c != NULL && i < c->n; i++)
        if (c->e[i].used)
            drop(&c->e[i]);
}

void dlg_jwt_cache_free(dlg_jwt_cache *c) {
    if (c == NULL)
        return;
    dlg_jwt_cache_clear(c);
    dlg_free(c->e);
    dlg_free(c);
}

/* The token's hash, and its slot. A collision of SHA-256 would be needed
 * to pass one token for another. 0, or -1 when hashing failed. */
static int slot_of(const dlg_jwt_cache *c, const char *token, size_t len, uint8_t key[32],
                   entry **slot) {
    unsigned int n = 0;
    if (EVP_Digest(token, len, key, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return -1;
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    *slot = &c->e[h % c->n];
    return 0;
}

int dlg_jwt_cache_get(dlg_jwt_cache *c, const char *token, size_t len, int64_t now,
                      dlg_jwt_claims *out, int64_t *deadline) {
    uint8_t key[32];
    entry *e;
    if (c == NULL || slot_of(c, token, len, key, &e) != 0)
        return 0;
    int hit = e->used && CRYPTO_memcmp(e->key, key, sizeof(key)) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    if (!hit)
        return 0;
    /* The verify's own bound: accepted while now < exp + leeway. */
    if (e->deadline != 0 && e->deadline <= now) {
        drop(e);
        return 0;
    }
    if (dlg_jwt_claims_copy(out, &e->cl) != 0)
        return DLG_ENOMEM;
    *deadline = e->deadline;
    return 1;
}

void dlg_jwt_cache_put(dlg_jwt_cache *c, const char *token, size_t len,
                       const dlg_jwt_claims *cl, int64_t deadline) {
    uint8_t key[32];
    entry *e;
    dlg_jwt_claims copy;
    if (c == NULL || slot_of(c, token, len, key, &e) != 0)
        return;
    if (dlg_jwt_claims_copy(&copy, cl) != 0) {
        OPENSSL_cleanse(key, sizeof(key));
        return;
    }
    if (e->used)
        drop(e);
    memcpy(e->key, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    e->cl = copy;
    e->deadline = deadline;
    e->used = 1;
}
