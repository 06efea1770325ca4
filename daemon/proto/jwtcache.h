/* jwtcache.h: a bounded cache of tokens the server has verified, so a
 * client that reconnects with the same token costs a hash instead of a
 * signature check (an ES256 verify is some 100 us; a reconnect storm has
 * thousands). Keyed by the SHA-256 of the token's bytes; what is kept is
 * what the verify gave (sub, roles, exp) and the session deadline. A hit
 * is honoured only while that deadline (exp + leeway, the bound the verify
 * applied) is in the future: an expired token is refused as the verify
 * would refuse it. Failures are never cached. The owner clears the cache
 * whenever the verifier changes (a reload with other keys or claims). One
 * thread (the loop's). */
#ifndef DLG_JWTCACHE_H
#define DLG_JWTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "jwt.h"

typedef struct dlg_jwt_cache dlg_jwt_cache;

/* A cache of `slots` entries (direct-mapped: a token takes the slot its
 * hash picks, replacing what was there, so memory stays bounded by slots
 * whatever tokens come). slots 0 = no cache: *out NULL and 0. Returns 0
 * or DLG_ENOMEM (*out untouched). */
int dlg_jwt_cache_new(size_t slots, dlg_jwt_cache **out);

/* Frees the cache and what it holds. NULL is ignored. */
void dlg_jwt_cache_free(dlg_jwt_cache *c);

/* Forgets every entry. NULL is ignored. */
void dlg_jwt_cache_clear(dlg_jwt_cache *c);

/* Looks token (len bytes) up at time now (Unix seconds). 1: found and still
 * valid, *out a copy of its claims (caller frees, dlg_jwt_claims_free) and
 * *deadline its session deadline (0 = no exp); 0: not there, or its
 * deadline has passed (the entry is then dropped); DLG_ENOMEM. c NULL = 0. */
int dlg_jwt_cache_get(dlg_jwt_cache *c, const char *token, size_t len, int64_t now,
                      dlg_jwt_claims *out, int64_t *deadline);

/* Keeps a copy of cl, verified for token (len bytes), valid until deadline
 * (Unix seconds, 0 = no exp: dlg_jwt_session_deadline). Out of memory, the
 * entry is just not kept. c NULL is ignored. */
void dlg_jwt_cache_put(dlg_jwt_cache *c, const char *token, size_t len,
                       const dlg_jwt_claims *cl, int64_t deadline);

#endif
