/* ratelimit.c: identity-keyed token buckets (see ratelimit.h) in an
 * open-addressing hash table with linear probing and backward-shift
 * deletion (no tombstones, so expiry never slows lookups down). */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

typedef struct bucket {
    uint8_t *key;       /* NULL = empty slot */
    uint32_t klen;
    uint64_t hash;
    double tokens;
    uint64_t last_ns;   /* last refill */
    uint64_t full_ns;   /* when the bucket is full again if nothing is taken */
} bucket;

struct dlg_ratelimit {
    bucket *v;
    size_t cap;         /* a power of two, or 0 */
    size_t n;
    uint64_t seed;      /* per table: keys an attacker picks (names) cannot be
                           aimed at one chain without knowing it */
};

dlg_ratelimit *dlg_ratelimit_new(void) {
    dlg_ratelimit *rl = dlg_calloc(1, sizeof(*rl));
    if (rl == NULL)
        return NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rl->seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
               (uint64_t)(uintptr_t)rl;
    return rl;
}

void dlg_ratelimit_free(dlg_ratelimit *rl) {
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->cap; i++)
        free(rl->v[i].key);
    free(rl->v);
    free(rl);
}

size_t dlg_ratelimit_count(const dlg_ratelimit *rl) {
    return rl->n;
}

/* FNV-1a over the seed and the key, then a final mix (FNV's low bits are
 * weak, and the table indexes by low bits). */
static uint64_t key_hash(const dlg_ratelimit *rl, const uint8_t *k, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ rl->seed;
    for (size_t i = 0; i < n; i++) {
        h ^= k[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Where key sits, or the empty slot where it would go. cap must be > 0. */
static size_t find_slot(const dlg_ratelimit *rl, const uint8_t *k, uint32_t klen,
                        uint64_t h) {
    size_t mask = rl->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const bucket *b = &rl->v[i];
        if (b->key == NULL || (b->hash == h && b->klen == klen && memcmp(b->key, k, klen) == 0))
            return i;
    }
}

/* Doubles the table (or makes the first one). 0 or DLG_ENOMEM; on error
 * the table is unchanged. */
static int grow(dlg_ratelimit *rl) {
    size_t ncap = rl->cap ? rl->cap * 2 : 64;
    bucket *nv = dlg_calloc(ncap, sizeof(*nv));
    if (nv == NULL)
        return DLG_ENOMEM;
    bucket *old = rl->v;
    size_t ocap = rl->cap;
    rl->v = nv;
    rl->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key != NULL)
            rl->v[find_slot(rl, old[i].key, old[i].klen, old[i].hash)] = old[i];
    free(old);
    return 0;
}

int dlg_ratelimit_take(dlg_ratelimit *rl, int kind, const char *name, int what,
                       const char *scope, uint32_t per_second, uint32_t burst, uint64_t now_ns) {
    if (per_second == 0)
        return 1;
    size_t nl = strlen(name), sl = strlen(scope);
    if (nl > 255 || sl > 255)
        return DLG_EINVAL;
    /* kind, what and the name's length first: no two (name, scope) pairs
     * give the same bytes. */
    uint8_t k[3 + 255 + 255];
    k[0] = (uint8_t)kind;
    k[1] = (uint8_t)what;
    k[2] = (uint8_t)nl;
    memcpy(k + 3, name, nl);
    memcpy(k + 3 + nl, scope, sl);
    uint32_t klen = (uint32_t)(3 + nl + sl);
    uint64_t h = key_hash(rl, k, klen);
    double cap_tokens = burst ? burst : per_second;

    if (rl->cap == 0 && grow(rl) != 0)
        return DLG_ENOMEM;
    size_t i = find_slot(rl, k, klen, h);
    bucket *b = &rl->v[i];
    if (b->key == NULL) {
        if (rl->n >= DLG_RATE_MAX_BUCKETS)
            return DLG_EFULL;
        /* Keep the load at most one half: probes stay short. */
        if ((rl->n + 1) * 2 > rl->cap) {
            if (grow(rl) != 0)
                return DLG_ENOMEM;
            i = find_slot(rl, k, klen, h);
            b = &rl->v[i];
        }
        if ((b->key = dlg_malloc(klen)) == NULL)
            return DLG_ENOMEM;
        memcpy(b->key, k, klen);
        b->klen = klen;
        b->hash = h;
        b->tokens = cap_tokens;
        b->last_ns = now_ns;
        rl->n++;
    } else if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * per_second / 1e9;
        b->last_ns = now_ns;
    }
    /* A reload may have lowered the burst. */
    if (b->tokens > cap_tokens)
        b->tokens = cap_tokens;
    int ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    b->full_ns = now_ns + (uint64_t)((cap_tokens - b->tokens) * 1e9 / per_second);
    return ok;
}

/* Empties slot i and moves later entries of its probe run back so that
 * every entry stays reachable from its home slot. */
static void remove_at(dlg_ratelimit *rl, size_t i) {
    size_t mask = rl->cap - 1;
    free(rl->v[i].key);
    rl->v[i].key = NULL;
    rl->n--;
    for (size_t j = (i + 1) & mask; rl->v[j].key != NULL; j = (j + 1) & mask) {
        size_t home = rl->v[j].hash & mask;
        /* j's entry may move to i only if its home is not in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        rl->v[i] = rl->v[j];
        rl->v[j].key = NULL;
        i = j;
    }
}

void dlg_ratelimit_expire(dlg_ratelimit *rl, uint64_t now_ns) {
    for (size_t i = 0; i < rl->cap;) {
        bucket *b = &rl->v[i];
        /* After a removal slot i may hold an entry moved back into it:
         * look at it again. One moved from the table's start to its end is
         * looked at twice, which is harmless. */
        if (b->key != NULL && b->full_ns <= now_ns)
            remove_at(rl, i);
        else
            i++;
    }
}
