/* history.h: the server's event history (issue 8): the rings of each room
 * (rings.h) for the rooms of the config, the durable store behind them,
 * History requests, sync on join, recovery, and deferred Acks for the
 * store. docs/history.md states the guarantees.
 * Single loop thread (the SQLite writer thread never touches these). */
#ifndef DLG_HISTORY_H
#define DLG_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_buf.h"
#include "rings.h"
#include "seam.h"

struct dlg_server;
struct dlg_config;
struct dlg_conn;
struct dlg_room;
struct dlg_member;

/* ---- the server's history: config, store, requests ------------------ */

/* Store durability (store: sqlite only). */
enum {
    DLG_STORE_SYNC_ACK,   /* [default] Ack after the batch commit (fsync) */
    DLG_STORE_SYNC_BATCH, /* Ack at once; committed within one batch */
};

typedef struct dlg_history dlg_history;

/* Builds srv->history from cfg after the rooms exist: a dlg_hroom for every
 * config room with history rules or sync_history_on_join, and, for
 * `store: sqlite`, opens cfg->store_path (durability srv->opts.store_sync)
 * and loads each room's epoch, seq and kept events. A corrupt database is
 * moved aside (logged) and started afresh. Returns 0 or a DLG_E* code with
 * err naming the room or the file; srv->history is then left NULL. */
int dlg_history_setup(struct dlg_server *srv, const struct dlg_config *cfg, char *err,
                      size_t errlen);

/* Starts the store's writer on srv->loop (no-op without a store). Returns
 * 0 or DLG_EINTERNAL (thread or handle could not start; logged). */
int dlg_history_start(dlg_history *h);

/* Writes what is queued, marks a clean stop, joins the writer and closes
 * the loop handle (the loop must run once more). Pending Acks are dropped
 * (their connections are closing). Safe to call twice or when not started. */
void dlg_history_stop(dlg_history *h);

/* What the metrics read of the history (loop thread). */
typedef struct dlg_history_metrics {
    uint64_t rooms;           /* rooms that keep events */
    uint64_t events;          /* events kept in memory, every room */
    uint64_t bytes;           /* their frames' bytes */
    int store;                /* 1: a SQLite store is configured */
    int store_open;           /* ...and its writer runs */
    int lost;                 /* the store refused an event this run */
    uint64_t written, failed, dropped; /* events committed, in failed batches, refused */
    uint64_t batches;         /* transactions committed */
    uint64_t commit_ns;       /* time spent in them */
} dlg_history_metrics;

/* Fills *out (zeroes when h is NULL: no history). Takes the store's lock
 * once: not for the fan-out path. */
void dlg_history_metrics_get(dlg_history *h, dlg_history_metrics *out);

/* Frees h (after the loop has returned). NULL is ignored. */
void dlg_history_free(dlg_history *h);

/* Keeps an event just published in r (frame = its fan-out frame) and hands
 * it to the store. Called once per publish; never blocks. */
void dlg_history_append(struct dlg_server *srv, struct dlg_room *r, const char *event,
                        uint64_t seq, uint64_t ts_ms, dlg_buf *frame);

/* With store_sync ack: when event seq of room r waits for its commit,
 * records the Ack to send once it is durable (or an Error DATA_LOSS if the
 * write fails) and returns 1; else returns 0 and the caller acks now. */
int dlg_history_defer_ack(struct dlg_server *srv, struct dlg_conn *c, uint64_t request_id,
                          struct dlg_room *r, uint64_t seq, uint32_t recipients);

/* The core's keeper (seam.h) for srv: appends go to dlg_history_append,
 * closing connections to dlg_history_conn_gone. */
void dlg_history_keeper(struct dlg_server *srv, dlg_keeper *out);

/* Forgets c's deferred Acks (c is closing). */
void dlg_history_conn_gone(struct dlg_server *srv, struct dlg_conn *c);

/* Answers a History request from c, which is a member of r. */
void dlg_history_request(struct dlg_conn *c, uint64_t request_id, struct dlg_room *r,
                         const Dialogue__V1__History *req);

/* Whether dlg_history_on_join(m, j) will answer with a HistoryBatch (the
 * Join asks to recover, or the room sends history on join): said in
 * Joined.history_follows before it comes. */
int dlg_history_join_follows(const struct dlg_member *m, const Dialogue__V1__Join *j);

/* Right after the Joined reply for member m: queues one HistoryBatch
 * (request_id echoed) when the Join asked to recover (j->recover) or the
 * room syncs history on join; nothing otherwise. j NULL = an auto_join. */
void dlg_history_on_join(struct dlg_conn *c, uint64_t request_id, struct dlg_member *m,
                         const Dialogue__V1__Join *j);

#endif
