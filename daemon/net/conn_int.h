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

/* conn.c: a new session for one stream of parent (conn.h: parent), in
 * DLG_CONN_HELLO with the handshake deadline running, its codec
 * dlg_codec_h2_stream; the caller sets codec_st. NULL when out of memory.
 * It is freed after dlg_conn_close, like any connection. */
dlg_conn *dlg_conn_new_session(dlg_conn *parent);

/* conn.c: one connection's part of dlg_conn_sweep (write timeout, soft
 * cap, idle memory); dooms, never closes. */
void dlg_conn_sweep_one(dlg_conn *c, uint64_t now);

/* outq.c: puts c (not yet listed, not closing) on the list the end of this
 * loop turn flushes; dlg_conn_mark_dirty below is what callers use. */
void dlg__conn_mark_dirty_slow(dlg_conn *c);

/* The helpers below run for every delivery: inline, so that splitting the
 * connection into files (outq.c, flush.c, ...) costs no calls on the
 * fan-out path (docs/benchmarks.md, "Layers and transports"). */

/* Puts c on the list the end of this loop turn flushes. */
static inline void dlg_conn_mark_dirty(dlg_conn *c) {
    if (!c->in_dirty && c->state != DLG_CONN_CLOSING)
        dlg__conn_mark_dirty_slow(c);
}

/* What c's queue counts in the caps. */
static inline uint64_t dlg__conn_q_cost(const dlg_conn *c) {
    return c->q_bytes + c->q_len * DLG_OUTQ_ITEM_COST;
}

/* Bytes c's pending output holds, as every per-connection cap counts them
 * (max_pending_bytes, the soft cap, the budget before Welcome): queued
 * frames with DLG_OUTQ_ITEM_COST each, ciphertext handed to the socket
 * that it has not taken yet, and the TLS layer's output not taken from it
 * (records sealed behind a full socket, KeyUpdate answers, alerts). */
static inline uint64_t dlg__conn_pending(const dlg_conn *c) {
    return dlg__conn_q_cost(c) + c->kids_pending + c->st.inflight_bytes + c->st.spill_len +
           (c->st.tls_on ? dlg_tlsio_out_pending(&c->st.tls) : 0) +
           (c->codec && c->codec->pending ? c->codec->pending(c) : 0);
}

/* outq.c: marks c a slow consumer (pending output passed
 * max_pending_bytes) and dooms it. */
void dlg_conn_cut_slow(dlg_conn *c, uint64_t pending);

/* Non-zero while c has output to stage (queue or codec). */
static inline int dlg_conn_has_output(const dlg_conn *c) {
    return c->q_len > 0 || (c->codec && c->codec->more && c->codec->more(c));
}

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

/* outq.c: takes the head item, not started, out of c's queue: its
 * reference passes to the caller. NULL when the queue is empty or its head
 * is partly staged. */
dlg_buf *dlg_outq_take(dlg_conn *c);

/* flush.c: a uv_write of the connection owning st finished
 * (dlg_stream_written_fn): closes it on an error, else resumes its output. */
void dlg_conn_on_written(dlg_stream *st, int status);

/* flush.c: RFC 8446 6.1 close_notify before the socket closes, when the
 * socket takes it at once (best effort). */
void dlg_conn_goodbye(dlg_conn *c);

/* flush.c: writes what TLS produced by itself (an alert) at once, from the
 * loop thread: on the way to a close. */
void dlg_conn_drain_now(dlg_conn *c);

/* read.c: starts reading c's socket. 0 or a libuv error. */
int dlg_conn_start_reading(dlg_conn *c);

#endif
