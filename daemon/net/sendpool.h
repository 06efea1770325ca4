/* sendpool.h: helper threads that share the per-turn flush with the loop
 * thread. The loop thread still owns everything (rooms, connections, the
 * libuv handles); during one flush it hands out connections, each to
 * exactly one thread, and waits until all are done, so no connection is
 * ever touched by two threads at once and nothing needs a lock per
 * delivery: one mutex round per turn. */
#ifndef DLG_SENDPOOL_H
#define DLG_SENDPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct dlg_sendpool dlg_sendpool;

/* Work on one item. scratch is the calling thread's own buffer of the
 * size given to dlg_sendpool_new (the loop thread's is the one passed to
 * dlg_sendpool_run); ud is dlg_sendpool_run's. Runs on any of the threads. */
typedef void (*dlg_sendpool_fn)(void *item, uint8_t *scratch, void *ud);

/* Starts `helpers` threads (1..63), each with a scratch buffer of
 * scratch_len bytes. *out is owned by the caller (dlg_sendpool_free).
 * Returns 0, DLG_EINVAL or DLG_ENOMEM / DLG_EIO (a thread could not be
 * started); on error nothing is left running or allocated. */
int dlg_sendpool_new(unsigned helpers, size_t scratch_len, dlg_sendpool **out);

/* Calls fn once on every one of the n items (borrowed; they must stay
 * valid until this returns), spread over the calling thread and the
 * helpers: each thread takes the next item not yet taken, so a helper that
 * wakes late simply takes fewer (or none). Returns when every call has
 * returned; what they wrote is then visible to the caller. Only one thread
 * may call this at a time (the loop thread). */
void dlg_sendpool_run(dlg_sendpool *p, void **items, size_t n, dlg_sendpool_fn fn, void *ud,
                      uint8_t *scratch);

/* Number of helper threads (not counting the caller). */
unsigned dlg_sendpool_helpers(const dlg_sendpool *p);

/* Items each helper took, summed over all runs (for tests and logs). */
uint64_t dlg_sendpool_helped(dlg_sendpool *p);

/* Stops and joins the helpers and frees p. NULL is ignored. Not while a
 * run is in progress. */
void dlg_sendpool_free(dlg_sendpool *p);

#endif
