/* ratelimit.h: token buckets keyed by who acts (identity kind and name),
 * what they do and where (a room, or the whole server), so that a budget
 * survives Leave/Join and reconnects: it belongs to the identity, not to a
 * membership or a connection. Every connection of one user draws on the
 * same buckets. A bucket that has refilled completely is the same as no
 * bucket, so dlg_ratelimit_expire drops those and the table holds only
 * identities that acted recently. Single loop thread. */
#ifndef DLG_RATELIMIT_H
#define DLG_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct dlg_ratelimit dlg_ratelimit;

/* What a bucket limits. */
enum {
    DLG_RATE_TRIGGER = 1, /* triggers into one room (the room's rate_limit) */
    DLG_RATE_ROOM_OPS,    /* Join, Leave, CreateRoom, DeleteRoom, server-wide */
};

/* Buckets one table holds at most: past this, dlg_ratelimit_take refuses
 * (deny by default) until idle buckets expire. */
#define DLG_RATE_MAX_BUCKETS (1u << 22)

/* Creates an empty table (free with dlg_ratelimit_free). NULL on ENOMEM. */
dlg_ratelimit *dlg_ratelimit_new(void);

/* Frees the table. NULL is fine. */
void dlg_ratelimit_free(dlg_ratelimit *rl);

/* Takes one token from the bucket of (kind, name, what, scope) at time
 * now_ns (CLOCK_MONOTONIC): per_second tokens a second, at most burst
 * (0 = per_second) saved up; a new bucket starts full. per_second 0 means
 * no limit (nothing is stored). name (<= 255 bytes) and scope (<= 255
 * bytes, "" for server-wide) are copied. Returns 1 = allowed, 0 = over the
 * limit, DLG_ENOMEM or DLG_EFULL (the caller refuses: deny by default). */
int dlg_ratelimit_take(dlg_ratelimit *rl, int kind, const char *name, int what,
                       const char *scope, uint32_t per_second, uint32_t burst, uint64_t now_ns);

/* Drops every bucket that is full again at now_ns (idle long enough).
 * Called once a second by the server's sweep. */
void dlg_ratelimit_expire(dlg_ratelimit *rl, uint64_t now_ns);

/* Buckets held (for tests and metrics). */
size_t dlg_ratelimit_count(const dlg_ratelimit *rl);

#endif
