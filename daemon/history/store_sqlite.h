/* store_sqlite.h: durable history in one SQLite file (WAL): loading rooms
 * at start, and a writer thread that commits queued events in batches so
 * the event loop never waits on the disk. */
#ifndef DLG_STORE_SQLITE_H
#define DLG_STORE_SQLITE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dlg_buf.h"
#include "dlg_log.h"
#include "history.h"

typedef struct dlg_store dlg_store;

/* One event to write. room and event are borrowed and must stay valid
 * until the store is closed (history keeps them); buf is referenced by
 * dlg_store_put itself. */
typedef struct dlg_store_item {
    const char *room;
    const char *event;
    uint64_t seq, ts_ms, epoch;
    dlg_buf *buf;
    uint32_t off, len;    /* the encoded Event in buf */
    uint64_t evicted_max; /* the type's ring dropped up to here: prune */
} dlg_store_item;

/* One committed (or failed) batch, reported on the loop thread. Tickets
 * are given by dlg_store_put in order; the batch covers every ticket up to
 * `last`. err is set when rc != 0 and is valid during the callback. */
typedef struct dlg_store_result {
    uint64_t last;
    size_t n;
    int rc;               /* 0 or DLG_EIO / DLG_EFULL (disk full) */
    const char *err;
} dlg_store_result;

typedef void (*dlg_store_done_cb)(void *ud, const dlg_store_result *r);

typedef struct dlg_store_stats {
    uint64_t queued;      /* items accepted by dlg_store_put */
    uint64_t dropped;     /* refused: queue over its cap, or stopped */
    uint64_t written;     /* items committed */
    uint64_t failed;      /* items in batches that failed */
    uint64_t batches;     /* transactions committed */
    uint64_t errors;      /* transactions that failed */
    uint64_t commit_ns;   /* time spent in committed transactions */
} dlg_store_stats;

/* Opens (creating if needed) the database at path in WAL mode and checks
 * it (quick_check). A file that is not a database or is corrupt is renamed
 * to "<path>.corrupt-<unix time>-<pid>" (with its -wal), logged as an error, and
 * a new one is started: every room then gets a new epoch. A file of schema
 * version 1 (no checksums) is migrated to version 2 in one transaction,
 * every stored event getting the CRC-32C of its body (logged). sync is a
 * DLG_STORE_SYNC_* value (ack: synchronous=FULL, batch: NORMAL). log must
 * outlive the store. Returns 0 or DLG_EIO with err naming path and cause
 * (directory missing, not writable, locked by another process, a schema
 * version newer than this code's: that file is left as it is); *out is
 * owned by the caller (dlg_store_free). */
int dlg_store_open(const char *path, int sync, const dlg_log *log, dlg_store **out,
                   char *err, size_t errlen);

/* What `dialogued --check-config` asks of a store before a start, without
 * opening it (opening may write: a WAL index, a migration, a corrupt file
 * moved aside): a file at path is a regular file this process may read and
 * write; without one, its directory exists and is writable. Returns 0 or
 * DLG_EIO with err naming path and cause. A file that is there but is not
 * an SQLite database is not an error (the start moves it aside and begins
 * a new store): 0, with warn (may be NULL) saying so; warn is "" else. */
int dlg_store_check(const char *path, char *err, size_t errlen, char *warn, size_t warnlen);

/* Loads room's state (before dlg_store_start, loop thread): *epoch is the
 * stored epoch after a clean stop, else a new random one (first start, or
 * the last run crashed / lost writes: it may have delivered events it never
 * stored); *seq continues from the highest valid seq used; kept events are
 * appended to hr (re-stamped with the new epoch when it changed) and dropped
 * ranges noted. Every row is checked first (seq, event name, a non-empty
 * body matching its checksum and its own columns): a damaged one is logged
 * with its seq, never appended, and noted in hr as a gap
 * (dlg_hroom_note_damaged); the row is left as it is. Returns 0 or DLG_EIO /
 * DLG_ENOMEM with err naming room and cause. */
int dlg_store_load_room(dlg_store *st, const char *room, dlg_hroom *hr, uint64_t now_ms,
                        uint64_t *epoch, uint64_t *seq, char *err, size_t errlen);

/* Marks the run as started (not clean until dlg_store_close) and starts the
 * writer thread; done is called on loop's thread after each batch. Returns
 * 0 or DLG_EIO / DLG_EINTERNAL with err set. */
int dlg_store_start(dlg_store *st, uv_loop_t *loop, dlg_store_done_cb done, void *ud,
                    char *err, size_t errlen);

/* Queues one event (loop thread; takes a mutex, never waits on I/O).
 * Returns its ticket (> 0), or 0 when refused: the queue holds more than
 * its cap (65536 items or 64 MiB) because the disk is slower than the
 * events, or the store is stopped. A refused event is not stored. */
uint64_t dlg_store_put(dlg_store *st, const dlg_store_item *it);

/* Final seq of a room, written at a clean stop. */
typedef struct dlg_store_seq {
    const char *room;
    uint64_t seq;
} dlg_store_seq;

/* Writes what is queued plus each room's final seq, and, when no event was
 * refused or failed during the run (lost = 0 and no failed batch), marks
 * the stop clean so the next start keeps the epochs. Joins the writer,
 * closes the loop handle (the loop must run for it to finish). Remaining
 * results are reported through done before this returns. Safe to call
 * twice, or without dlg_store_start. */
void dlg_store_close(dlg_store *st, const dlg_store_seq *seqs, size_t n, int lost);

/* Frees st (after close and after the loop has run the handle's close). A
 * store never closed has its writer stopped here, and the stop is not
 * marked clean. NULL is ignored. */
void dlg_store_free(dlg_store *st);

/* Counters (loop thread). */
void dlg_store_get_stats(dlg_store *st, dlg_store_stats *out);

/* The path given to dlg_store_open. */
const char *dlg_store_path(const dlg_store *st);

#endif
