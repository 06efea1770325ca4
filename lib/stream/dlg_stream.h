/* dlg_stream.h: one TCP socket, plaintext or TLS, as the daemon's
 * connections and the client library's both use it (the h2o_socket idea):
 * the read side (socket bytes -> TLS handshake and records -> plaintext
 * for the owner), the senders, TLS output to the socket, and close_notify
 * on the way out.
 *
 * Senders: dlg_stream_write (loop thread: as much as the socket takes now,
 * the rest through a uv_write that owns a copy) and dlg_stream_write_off_loop
 * (any thread, no libuv: write(2), the rest kept as the stream's spill,
 * which dlg_stream_spill_flush hands to the first on the loop thread). A
 * third sender, io_uring, belongs to whoever owns the ring (the daemon's
 * server, daemon/net/uring.c): it takes the stream's TLS output with
 * dlg_tlsio_out_take and counts its send in inflight_bytes like the others,
 * so every rule here (nothing overtakes bytes in flight) holds for it too.
 *
 * The owner keeps its own state in tcp.data and hears of the stream only
 * through the callbacks it gives (on_written here, the dlg_stream_up of
 * dlg_stream_input); the stream never closes itself: errors are returned,
 * and the owner decides. */
#ifndef DLG_STREAM_H
#define DLG_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dlg_tlsio.h"

typedef struct dlg_stream dlg_stream;

/* A uv_write of s finished (inflight_bytes is already lowered): status 0,
 * or a libuv error (UV_ECANCELED when the socket closed under it). */
typedef void (*dlg_stream_written_fn)(dlg_stream *s, int status);

struct dlg_stream {
    uv_tcp_t tcp;              /* the socket; tcp.data is the owner's */
    dlg_tlsio tls;             /* the session, when tls_on */
    int tls_on;
    uint64_t inflight_bytes;   /* handed to a sender that has not finished with them */
    uint64_t inflight_since;   /* uv_now when writes began to wait; 0 = none waits */
    /* dlg_stream_write_off_loop: what the socket did not take, for the loop
     * thread (dlg_stream_spill_flush). Owned by the stream. */
    uint8_t *spill;
    size_t spill_len;
    int uv_err;                /* the libuv error of the newest write that failed
                                  (-errno off the loop); 0 = none */
    dlg_stream_written_fn on_written;
    uv_os_fd_t fd;             /* the socket's descriptor once read (dlg_stream_fd); -1 before */
};

/* Sets s up on loop with a socket handle (uv_tcp_init) owned by owner
 * (tcp.data), plaintext until the caller starts TLS (dlg_stream_tls_start).
 * on_written may be NULL. 0 or a libuv error. The handle must be closed
 * with uv_close before s's memory goes; dlg_stream_free_tls frees the rest. */
int dlg_stream_init(dlg_stream *s, uv_loop_t *loop, void *owner, dlg_stream_written_fn on_written);

/* Starts TLS on s (dlg_tlsio_init: server or client side, sni for a
 * client, verify a peer certificate when verify). 0 or a DLG_E* code. */
int dlg_stream_tls_start(dlg_stream *s, SSL_CTX *ctx, int server, const char *sni, int verify);

/* Frees s's TLS session and spill (not the handle). Idempotent. */
void dlg_stream_free_tls(dlg_stream *s);

/* Loop thread. The socket's descriptor into *fd: 0, or a libuv error
 * (no socket yet, or closed). Kept after the first call, so the io_uring
 * sender does not ask libuv once per send; only for an open handle: the
 * owner calls no sender after uv_close, when the number may be reused. */
static inline int dlg_stream_fd(dlg_stream *s, uv_os_fd_t *fd) {
    if (s->fd < 0) {
        int rc = uv_fileno((const uv_handle_t *)&s->tcp, &s->fd);
        if (rc != 0) {
            s->fd = -1;
            return rc;
        }
    }
    *fd = s->fd;
    return 0;
}

/* Non-zero while bytes handed to a sender wait (in flight or spilled):
 * anything written now would have to queue behind them. */
static inline int dlg_stream_backed_up(const dlg_stream *s) {
    return s->inflight_bytes > 0 || s->spill_len > 0;
}

/* Loop thread. len bytes were handed to a sender (the uv_write below, or
 * one the owner drives, such as io_uring): the write timeout counts from
 * when the first of them began to wait. */
static inline void dlg_stream_inflight_add(dlg_stream *s, size_t len) {
    if (s->inflight_bytes == 0)
        s->inflight_since = uv_now(s->tcp.loop);
    s->inflight_bytes += len;
}

/* Loop thread. A sender finished with len of those bytes: the write
 * timeout counts from the last write the socket finished, so a reader that
 * drains a burst slowly is not taken for a stuck one. */
static inline void dlg_stream_inflight_done(dlg_stream *s, size_t len) {
    s->inflight_bytes -= len;
    s->inflight_since = s->inflight_bytes ? uv_now(s->tcp.loop) : 0;
}

/* Frees the spill unsent (the stream is closing). */
void dlg_stream_spill_drop(dlg_stream *s);

/* Loop thread. Writes len bytes of data: if nothing is in flight, as much
 * as the socket takes now; the rest through a uv_write owning a copy
 * (on_written when it finishes). 0, DLG_ENOMEM, or DLG_EIO (the socket
 * failed: uv_err says how; s is unchanged otherwise). */
int dlg_stream_write(dlg_stream *s, const void *data, size_t len);

/* Any thread, never libuv (a send thread): write(2) as much as the socket
 * takes while there is no spill, the rest appended to the spill. Nothing
 * may call dlg_stream_write for s meanwhile. 0, DLG_ENOMEM or DLG_EIO. */
int dlg_stream_write_off_loop(dlg_stream *s, const void *data, size_t len);

/* Text for rc, a code one of s's senders returned: for DLG_EIO the
 * socket's own error when one was kept (uv_err: "connection reset by
 * peer", "broken pipe"), else dlg_strerror(rc). Static storage. */
const char *dlg_stream_strerror(const dlg_stream *s, int rc);

/* Loop thread: hands the spill to dlg_stream_write and frees it. 0 or
 * what dlg_stream_write returned. */
int dlg_stream_spill_flush(dlg_stream *s);

/* Moves the ciphertext the TLS session made to the socket, through
 * scratch (cap bytes): dlg_stream_write, or with off_loop
 * dlg_stream_write_off_loop, which stops at the first spill (the rest
 * stays in the session's buffer, in order). 0 or a DLG_E* code. */
int dlg_stream_tls_drain(dlg_stream *s, uint8_t *scratch, size_t cap, int off_loop);

/* RFC 8446 6.1: close_notify before the socket closes, when the socket
 * takes it at once and nothing sent earlier waits (it would come out ahead
 * of those bytes). Best effort, loop thread. */
void dlg_stream_goodbye(dlg_stream *s);

/* What dlg_stream_input reports up. Each returns 0 to go on, non-zero to
 * stop this input at once (the owner closed or will close the stream). */
typedef struct dlg_stream_up {
    /* The TLS handshake completed (ALPN and the peer's certificate can be
     * read now; dlg_tlsio_handover is the owner's choice). */
    int (*handshake)(void *ud);
    /* Plaintext from the peer, in order; data is valid during the call. */
    int (*plain)(void *ud, const uint8_t *data, size_t len);
} dlg_stream_up;

/* Socket bytes in (len may be 0: only advances the handshake, as a client
 * does to send its first flight). Plaintext streams hand data to up->plain
 * as it is. With TLS: fed to the session, the handshake advanced
 * (up->handshake once it completes), then every record's plaintext handed
 * to up->plain through pbuf (pcap bytes at a time).
 * Returns 0 to read on (with TLS, s->tls.done says whether the handshake is
 * over), 1 when a callback stopped it, DLG_ECLOSED when the peer sent
 * close_notify (after the plaintext before it), DLG_ETLS when the session
 * failed (s->tls.done == 0: the handshake; err says why), DLG_ENOMEM.
 * The caller sends what the session made (dlg_stream_tls_drain) after. */
int dlg_stream_input(dlg_stream *s, const uint8_t *data, size_t len, uint8_t *pbuf, size_t pcap,
                     const dlg_stream_up *up, void *ud, char *err, size_t errlen);

#endif
