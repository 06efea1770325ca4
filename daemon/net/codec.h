/* codec.h: the transport a connection speaks over its byte stream (after
 * TLS, or over plain TCP): dialogue/1's length-prefixed frames (native.c),
 * and the transports added beside it. Each one turns the peer's bytes into
 * ClientFrames for srv->up.frame, and the output queue's ServerFrames into
 * its own framing; the connection, its caps, timers, TLS and the three
 * senders are the same for all. A new transport is a new file in net/ that
 * fills one of these and is named in dlg_codec_pick. */
#ifndef DLG_CODEC_H
#define DLG_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct dlg_conn;

typedef struct dlg_codec {
    const char *name; /* as logs and metrics name it: "dialogue/1", ... */
    /* Plaintext from the peer, in order (the caller has counted it against
     * the connection's input budgets). Returns 0 to read on, non-zero when
     * the connection is to read no more (it is closing). */
    int (*feed)(struct dlg_conn *c, const uint8_t *data, size_t len);
    /* Moves up to cap bytes of output to dst: the queue's items in this
     * transport's framing (dlg_outq_stage_with) and any output of its own;
     * returns how many (0 = nothing fits or nothing is left). NULL: the
     * queue's bytes as they are (dlg_outq_stage). */
    size_t (*stage)(struct dlg_conn *c, uint8_t *dst, size_t cap);
    /* Non-zero while the codec holds output of its own beyond the queue
     * (a pong, a control frame). NULL = never. */
    int (*more)(const struct dlg_conn *c);
    /* Bytes the codec holds for this connection (buffered input, its own
     * output), counted in the connection's caps. NULL = none. */
    uint64_t (*pending)(const struct dlg_conn *c);
    /* Writes an Error{status, msg} as this transport says a session ends
     * (the last thing sent before the connection is cut, at a frame
     * boundary) into dst; returns its length, 0 when it does not fit or
     * the transport has no such thing. */
    size_t (*final_error)(struct dlg_conn *c, int status, const char *msg, uint8_t *dst,
                          size_t cap);
    /* The handshake deadline passed before Welcome. NULL (or a NULL
     * return): the usual, an Error and a close; else close at once with
     * the reason returned, logged at debug only (an HTTP keep-alive
     * connection that fetched the page is no failed client). */
    const char *(*deadline)(struct dlg_conn *c);
    /* The connection had no traffic for a sweep: give back what only
     * traffic needs. NULL = nothing. */
    void (*release_idle)(struct dlg_conn *c);
    /* Frees the codec's state (c->codec_st); once, when c is freed. NULL =
     * nothing to free. */
    void (*free)(struct dlg_conn *c);
} dlg_codec;

/* dialogue/1 (native.c). */
extern const dlg_codec dlg_codec_native;

/* HTTP/1.1: the web page, and WebSocket sessions upgraded from it
 * (http.c, ws.c). */
extern const dlg_codec dlg_codec_http;

/* The codec for a connection whose TLS handshake chose alpn (alpn_len
 * bytes, not NUL-terminated; NULL when the client offered none): the
 * native protocol for "dialogue/1", HTTP for "http/1.1". Without ALPN
 * (and on plaintext listeners) the first bytes decide (dlg_codec_sniff). */
const dlg_codec *dlg_codec_by_alpn(const uint8_t *alpn, size_t alpn_len);

/* The codec for a stream that starts with data[0..len) (len >= 1): a
 * dialogue/1 frame starts with its flag byte, 0; an HTTP request with an
 * upper-case method name. NULL when no codec speaks what they start. */
const dlg_codec *dlg_codec_sniff(const uint8_t *data, size_t len);

#endif
