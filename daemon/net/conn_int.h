/* conn_int.h: what the files of one connection share, private to
 * daemon/net: conn.c (lifecycle, limits, timers), outq.c (the output
 * queue), flush.c (the write path and its three senders), read.c (the
 * read path) and the codecs (codec.h). */
#ifndef DLG_CONN_INT_H
#define DLG_CONN_INT_H

#include "codec.h"
#include "conn.h"

/* TLS records carry at most 16 KiB of plaintext: one staged chunk each. */
#define DLG_TLS_RECORD_MAX (16 * 1024)

/* conn.c: drops one of the counts that keep c allocated (its two
 * handles, an io_uring send in flight); the last one frees it. */
void dlg_conn_release(dlg_conn *c);

/* conn.c: tells c the server is full (after TLS, so it can read why) and
 * closes it once that is sent. */
void dlg_conn_refuse_full(dlg_conn *c);

/* outq.c: puts c on the list the end of this loop turn flushes. */
void dlg_conn_mark_dirty(dlg_conn *c);

/* outq.c: marks c a slow consumer (pending output passed
 * max_pending_bytes) and dooms it. */
void dlg_conn_cut_slow(dlg_conn *c, uint64_t pending);

/* outq.c: non-zero while c has output to stage (queue or codec). */
int dlg_conn_has_output(const dlg_conn *c);

/* outq.c: stages up to cap bytes of c's output through its codec. */
size_t dlg_conn_stage(dlg_conn *c, uint8_t *dst, size_t cap);

/* outq.c: moves up to cap bytes of the queue's items, as they are, to dst
 * (items are cut anywhere: their offsets remember where). */
size_t dlg_outq_stage(dlg_conn *c, uint8_t *dst, size_t cap);

/* Frames one item for a codec's stage: writes at most cap bytes of it to
 * dst starting at it->off, advances it->off past the item bytes it used,
 * and returns the bytes written (0 = nothing fits now). */
typedef size_t (*dlg_outq_put_fn)(dlg_conn *c, dlg_outq_item *it, uint8_t *dst, size_t cap);

/* outq.c: drops the head item (a codec that took its bytes elsewhere). */
void dlg_outq_drop_head(dlg_conn *c);

/* outq.c: like dlg_outq_stage, with each item framed by put. */
size_t dlg_outq_stage_with(dlg_conn *c, uint8_t *dst, size_t cap, dlg_outq_put_fn put);

/* flush.c: RFC 8446 6.1 close_notify before the socket closes, when the
 * socket takes it at once (best effort). */
void dlg_conn_goodbye(dlg_conn *c);

/* flush.c: writes what TLS produced by itself (an alert) at once, from the
 * loop thread: on the way to a close. */
void dlg_conn_drain_now(dlg_conn *c);

/* read.c: starts reading c's socket. 0 or a libuv error. */
int dlg_conn_start_reading(dlg_conn *c);

#endif
