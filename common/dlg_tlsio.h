/* dlg_tlsio.h: one TLS session driven through memory BIOs. The owner feeds it
 * ciphertext read from the socket and writes out the ciphertext it produces;
 * OpenSSL never touches a file descriptor. Used by the daemon and the client. */
#ifndef DLG_TLSIO_H
#define DLG_TLSIO_H

#include <stddef.h>

#include <openssl/ssl.h>

typedef struct dlg_tlsio {
    SSL *ssl;
    BIO *rbio; /* ciphertext in (owned by ssl) */
    BIO *wbio; /* ciphertext out (owned by ssl) */
    int done;  /* handshake finished */
} dlg_tlsio;

/* Creates the session from ctx. server != 0 for the accepting side. For a
 * client, sni (may be NULL) is sent as SNI and, when verify_host is set,
 * checked against the server certificate. Returns 0 or DLG_ETLS/DLG_ENOMEM;
 * on error nothing needs freeing. */
int dlg_tlsio_init(dlg_tlsio *t, SSL_CTX *ctx, int server, const char *sni,
                   int verify_host);

/* Frees the session. Safe on a zeroed or already-freed struct. */
void dlg_tlsio_free(dlg_tlsio *t);

/* Hands ciphertext read from the socket to OpenSSL. 0 or DLG_ENOMEM. */
int dlg_tlsio_feed(dlg_tlsio *t, const void *data, size_t len);

/* Advances the handshake. 1 = finished, 0 = needs more input (and maybe has
 * output to send), DLG_ETLS = failed (err, if not NULL, gets a short reason
 * of at most errlen bytes). */
int dlg_tlsio_handshake(dlg_tlsio *t, char *err, size_t errlen);

/* Reads decrypted bytes into buf. Returns the count (> 0), 0 when no more
 * plaintext is available yet, DLG_ECLOSED on a clean close_notify, or
 * DLG_ETLS on a failure (renegotiation attempts included). */
int dlg_tlsio_read(dlg_tlsio *t, void *buf, size_t cap);

/* Encrypts len bytes as one TLS record stream. Returns 0 or DLG_ETLS. The
 * caller keeps ownership of data (OpenSSL copies it into wbio). */
int dlg_tlsio_write(dlg_tlsio *t, const void *data, size_t len);

/* Number of ciphertext bytes waiting to be sent. */
size_t dlg_tlsio_out_pending(const dlg_tlsio *t);

/* Moves up to cap ciphertext bytes into buf; returns how many. */
size_t dlg_tlsio_out_take(dlg_tlsio *t, void *buf, size_t cap);

/* Swaps both memory BIOs for fresh, empty ones when neither holds data, so
 * the buffers grown during the handshake are freed (an idle connection then
 * keeps only OpenSSL's own state). Returns 1 when swapped, 0 when data was
 * pending (try again later), DLG_ENOMEM. */
int dlg_tlsio_compact(dlg_tlsio *t);

/* Queues a close_notify alert (send it with out_take). */
void dlg_tlsio_shutdown(dlg_tlsio *t);

/* Writes the reason for the newest OpenSSL error into buf (NUL-terminated)
 * and clears the error queue. */
void dlg_tlsio_last_error(char *buf, size_t len);

#endif
