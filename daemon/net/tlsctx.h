/* tlsctx.h: the listener's TLS context, built from the server options:
 * protocol versions and suites, certificate and key, the client CA and its
 * revocation lists (CRLs), ALPN, and the hand-over to our record layer.
 * Built at start and again on every reload (SIGHUP): a context that cannot
 * be built leaves the running one in place. Connections hold their own
 * reference to the context they started with, so swapping it never
 * disturbs an established session. */
#ifndef DLG_TLSCTX_H
#define DLG_TLSCTX_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "listener.h"

/* A listener's ticket_key file: OpenSSL's ticket key name (16 bytes), HMAC
 * key (32) and AES-256 key (32). */
#define DLG_TLSCTX_TICKET_KEY 80
/* How long a session ticket may be used to resume (its lifetime hint). */
#define DLG_TLSCTX_TICKET_SECONDS 7200

/* Builds a server TLS context for listener l (cert_file, key_file,
 * client_ca_file, client_crl_file, require_client_cert, ticket_key_file:
 * TLS 1.3 session tickets under that key, never with a client CA, else
 * none); own_records lets
 * established TLS 1.3 sessions leave OpenSSL (tls_own_records). CRLs are checked
 * for the client certificate and every CA above it; a CRL whose nextUpdate
 * has passed (or whose lastUpdate is in the future) is refused, naming its
 * file. On success *out is a new context owned by the caller
 * (SSL_CTX_free). Returns 0, or DLG_ETLS / DLG_EIO / DLG_ENOMEM with err
 * naming the file and the reason; *out is then untouched. */
int dlg_tlsctx_new(const dlg_listener_conf *l, int own_records, SSL_CTX **out, char *err,
                   size_t errlen);

/* Loads the CRLs of path (a file of one or more PEM or DER CRLs, or a
 * folder: every regular file in it not starting with '.') into st and
 * turns on CRL checks for whole chains. Returns the number of CRLs loaded
 * (>= 1), or DLG_EIO / DLG_ETLS / DLG_ENOMEM with err naming the file. */
int dlg_tlsctx_load_crls(X509_STORE *st, const char *path, char *err, size_t errlen);

#endif
