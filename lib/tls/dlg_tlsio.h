/* dlg_tlsio.h: one TLS session driven through in-memory ciphertext buffers.
 * The owner feeds it ciphertext read from the socket and writes out the
 * ciphertext it produces; OpenSSL never touches a file descriptor. Used by
 * the daemon and the client. */
#ifndef DLG_TLSIO_H
#define DLG_TLSIO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct dlg_tlsio_buf;     /* private to dlg_tlsio.c */
struct dlg_tlsio_secrets; /* private to dlg_tlsio.c */
struct dlg_tls13;         /* dlg_tls13.h */

/* The session's one BIO (ours, not BIO_s_mem) reads `in` and appends to
 * `out`; both buffers are allocated when data arrives and freed by
 * dlg_tlsio_compact, so an idle session holds none. The BIO points back at
 * this struct: it must not move between init and free.
 *
 * A session from a context passed to dlg_tlsio_ctx_lean may leave OpenSSL
 * once its handshake is done (dlg_tlsio_handover): `ssl` is then NULL and
 * `rl` protects the records (dlg_tls13.h). The functions below work the
 * same either way. */
typedef struct dlg_tlsio {
    SSL *ssl;                  /* NULL after the handover to rl */
    BIO *bio;                  /* both directions (owned by ssl) */
    struct dlg_tlsio_buf *in;  /* ciphertext fed, not yet read; may be NULL */
    struct dlg_tlsio_buf *out; /* ciphertext made, not yet taken; may be NULL */
    struct dlg_tls13 *rl;      /* our record layer after the handover, else NULL */
    struct dlg_tlsio_secrets *sec; /* traffic secrets seen during the handshake */
    /* With rl: the record at the head of `in` is opened in place when
     * rec_len > 0; its plaintext not yet read is [rec_pos, rec_end),
     * offsets from the head. */
    uint32_t rec_len, rec_pos, rec_end;
    /* Bytes ever taken from `out`, and where in that count our newest
     * KeyUpdate answer ends: while out_taken < ku_end it is still waiting
     * to be sent, and it answers any further request too (with rl). */
    uint64_t out_taken, ku_end;
    const char *why;           /* why the session failed (static), or NULL */
    /* Records received in a row that carried no application data (empty
     * records, KeyUpdates and other post-handshake messages, user_canceled
     * alerts), counted once the handshake is done; past
     * DLG_TLSIO_MAX_QUIET_RECORDS the session fails (see dlg_tlsio_read). */
    uint16_t quiet;
    unsigned done : 1;         /* handshake finished */
    unsigned read_closed : 1;  /* with rl: close_notify received */
    unsigned write_closed : 1; /* with rl: close_notify sent */
    unsigned failed : 1;       /* a record failed; the session is dead */
    unsigned client : 1;       /* with rl: we are the client */
    /* On OpenSSL: its keys for our writes / the peer's records are the
     * application traffic keys now (the key log reported them), and a
     * record of the peer's under them went through OpenSSL, which then
     * holds sequence numbers dlg_tls13 would start again from 0: no
     * handover. */
    unsigned app_wr : 1, app_rd : 1, app_seen : 1;
    /* Records OpenSSL wrote under our application key (a server's session
     * tickets): our record layer goes on from there. */
    uint32_t app_wr_records;
    /* A client of a context set up by dlg_tlsio_ctx_resume: 1 + the index
     * of its server's slot there (the session to offer, the tickets to
     * keep); 0 = none. */
    uint8_t resume_slot;
} dlg_tlsio;

/* Records in a row without application data that a session takes (as
 * OpenSSL takes 32 empty records, CVE-2016-8610); one more fails it with
 * unexpected_message. Nothing legitimate sends more: a KeyUpdate now and
 * then, a few NewSessionTickets, a user_canceled before close_notify. */
#define DLG_TLSIO_MAX_QUIET_RECORDS 32

/* Lets the sessions made from ctx leave OpenSSL after their handshake
 * (dlg_tlsio_handover). Sets ctx's keylog callback (to learn the traffic
 * secrets; nothing is logged) and turns off session tickets. A server
 * that turns them on afterwards (SSL_CTX_set_num_tickets) still hands
 * over: the tickets go out through OpenSSL under its application key at
 * the end of the handshake, and our record layer numbers its records
 * after them. Returns 0 or DLG_ETLS. */
int dlg_tlsio_ctx_lean(SSL_CTX *ctx);

/* Most servers (SNI names or addresses) one resuming client context keeps a
 * session for: libdialogue-client's DLG_CLIENT_MAX_SERVERS. */
#define DLG_TLSIO_RESUME_SLOTS 16

/* Lets the client sessions made from ctx resume: each keeps the newest
 * session ticket its server sends, per server name (the sni given to
 * dlg_tlsio_init), and the next session to that name offers it, once (a
 * ticket is not offered twice: RFC 8446 C.4). A server without tickets, or
 * that cannot decrypt the ticket (another key, a restart without its ticket
 * key), makes a full handshake as before. Only sessions that stay on
 * OpenSSL's records collect tickets. Call once, before the first session.
 * Returns 0, DLG_ENOMEM or DLG_ETLS. */
int dlg_tlsio_ctx_resume(SSL_CTX *ctx);

/* Called by the owner once the handshake is done and it needs nothing more
 * from `ssl` (ALPN, certificates): hands the session to our record layer
 * when its context went through dlg_tlsio_ctx_lean and it is TLS 1.3 with
 * AES-GCM or ChaCha20-Poly1305, on a server without a client certificate
 * (the daemon reads it at Hello). The session then keeps about 2.5 KB
 * instead of OpenSSL's 13 KB, and its records cost less to protect.
 * Otherwise it stays on OpenSSL, unharmed; that includes a session that
 * has already sent or read a record under the application keys through
 * OpenSSL (a dlg_tlsio_write or _read before the handover): our sequence
 * numbers would start again from 0 and reuse an AEAD nonce. Either way the
 * secrets learnt during the handshake are wiped. Returns 1 if the session
 * is on our record layer, 0 if on OpenSSL. */
int dlg_tlsio_handover(dlg_tlsio *t);

/* Creates the session from ctx in *t, which must then stay at the same
 * address until dlg_tlsio_free. server != 0 for the accepting side. For a
 * client, sni (may be NULL) is sent as SNI and, when verify_host is set,
 * checked against the server certificate; with dlg_tlsio_ctx_resume it
 * also names the server whose kept session is offered. Returns 0 or DLG_ETLS/DLG_ENOMEM;
 * on error nothing needs freeing. */
int dlg_tlsio_init(dlg_tlsio *t, SSL_CTX *ctx, int server, const char *sni,
                   int verify_host);

/* Frees the session. Safe on a zeroed or already-freed struct. */
void dlg_tlsio_free(dlg_tlsio *t);

/* Hands ciphertext read from the socket to OpenSSL (copied: the caller
 * keeps data). 0 or DLG_ENOMEM. */
int dlg_tlsio_feed(dlg_tlsio *t, const void *data, size_t len);

/* Advances the handshake. 1 = finished, 0 = needs more input (and maybe has
 * output to send), DLG_ETLS = failed (err, if not NULL, gets a short reason
 * of at most errlen bytes). */
int dlg_tlsio_handshake(dlg_tlsio *t, char *err, size_t errlen);

/* Reads decrypted bytes into buf. Returns the count (> 0), 0 when no more
 * plaintext is available yet, DLG_ECLOSED on a clean close_notify, or
 * DLG_ETLS on a failure (renegotiation attempts included; dlg_tlsio_error
 * says why). More than DLG_TLSIO_MAX_QUIET_RECORDS records in a row
 * without application data are a failure (our record layer sends
 * unexpected_message; OpenSSL's gets no further input). A KeyUpdate
 * request is answered at once, but while that answer is still waiting in
 * `out` it answers every further request too (RFC 8446 4.6.3): a flood of
 * requests never queues more than one KeyUpdate on our record layer.
 * Bytes the read made for the peer wait in `out` (dlg_tlsio_out_pending):
 * the owner sends them even when it has nothing to write itself. */
int dlg_tlsio_read(dlg_tlsio *t, void *buf, size_t cap);

/* Encrypts len bytes as one TLS record stream. Returns 0 or DLG_ETLS. The
 * caller keeps ownership of data (OpenSSL copies it into wbio). */
int dlg_tlsio_write(dlg_tlsio *t, const void *data, size_t len);

/* Number of ciphertext bytes waiting to be sent. */
size_t dlg_tlsio_out_pending(const dlg_tlsio *t);

/* Moves up to cap ciphertext bytes into buf; returns how many. */
size_t dlg_tlsio_out_take(dlg_tlsio *t, void *buf, size_t cap);

/* Frees the ciphertext buffers that hold no data (they keep the largest
 * size they reached: a handshake flight, a 16 KiB record, a 64 KiB read),
 * so an idle connection keeps only OpenSSL's own state. They are allocated
 * again when data comes. Returns 1 when none is left, 0 when one still
 * holds data (try again later). */
int dlg_tlsio_compact(dlg_tlsio *t);

/* Queues a close_notify alert (send it with out_take). */
void dlg_tlsio_shutdown(dlg_tlsio *t);

/* Writes the reason for the newest OpenSSL error into buf (NUL-terminated)
 * and clears the error queue. */
void dlg_tlsio_last_error(char *buf, size_t len);

/* Why the session failed ("bad record MAC", "peer sent alert
 * bad_certificate", OpenSSL's reason such as "decryption failed or bad
 * record mac", ...), or NULL (then dlg_tlsio_last_error tells). Static
 * storage. */
const char *dlg_tlsio_why(const dlg_tlsio *t);

/* Why the last read or write of t failed, whichever layer refused it, into
 * buf (NUL-terminated): dlg_tlsio_why, else OpenSSL's newest error (whose
 * queue is then cleared). */
void dlg_tlsio_error(const dlg_tlsio *t, char *buf, size_t len);

#endif
