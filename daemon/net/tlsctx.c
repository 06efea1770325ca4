/* tlsctx.c: the listener's TLS context and its CRLs (see tlsctx.h). */
#include "tlsctx.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dlg_err.h"
#include "dlg_tlsio.h"

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    /* The admin listener (arg non-NULL) speaks HTTP/1.1 alone. */
    static const unsigned char admin[] = "\x08" "http/1.1";
    if (arg != NULL) {
        if (SSL_select_next_proto((unsigned char **)out, outlen, admin, sizeof(admin) - 1, in,
                                  inlen) != OPENSSL_NPN_NEGOTIATED)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        return SSL_TLSEXT_ERR_OK;
    }
    /* In our order of preference: the native protocol, HTTP/1.1 (the web
     * page and WebSocket), HTTP/2 (gRPC, h2.c). HTTP/1.1 before h2: a
     * browser offers both and must get the page, which only the HTTP/1.1
     * codec serves; gRPC clients offer h2 alone. A client that offers ALPN
     * must offer one of ours; one that offers none is accepted (its first
     * bytes say which it speaks). */
    static const unsigned char ours[] = "\x0a" "dialogue/1" "\x08" "http/1.1" "\x02" "h2";
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

/* A CRL's time field as text for messages ("2026-12-07 10:00:00 GMT"). */
static void time_text(const ASN1_TIME *t, char *buf, size_t len) {
    BIO *b = BIO_new(BIO_s_mem());
    int n = b && ASN1_TIME_print(b, t) == 1 ? BIO_read(b, buf, (int)len - 1) : 0;
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

/* One CRL of file: refused when it is not in force now (a stale CRL would
 * fail every client certificate at once, or worse, be trusted), else added
 * to st. */
static int add_crl(X509_STORE *st, X509_CRL *crl, const char *file, char *err, size_t errlen) {
    char when[64], issuer[256];
    X509_NAME_oneline(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    if (next != NULL && X509_cmp_current_time(next) <= 0) {
        time_text(next, when, sizeof(when));
        snprintf(err, errlen, "CRL %s (issuer %s) is stale: its nextUpdate %s has passed; "
                              "fetch a fresh one", file, issuer, when);
        return DLG_ETLS;
    }
    const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl);
    if (last == NULL || X509_cmp_current_time(last) > 0) {
        if (last)
            time_text(last, when, sizeof(when));
        snprintf(err, errlen, "CRL %s (issuer %s) is not valid yet (lastUpdate %s)", file,
                 issuer, last ? when : "missing");
        return DLG_ETLS;
    }
    if (X509_STORE_add_crl(st, crl) != 1) {
        char why[256];
        dlg_tlsio_last_error(why, sizeof(why));
        snprintf(err, errlen, "CRL %s: %s", file, why);
        return DLG_ETLS;
    }
    return 0;
}

/* The CRLs of one file: PEM (one or more), else one DER. Returns the count
 * added, or a DLG_E* code with err set. */
static int load_crl_file(X509_STORE *st, const char *file, char *err, size_t errlen) {
    BIO *b = BIO_new_file(file, "rb");
    if (b == NULL) {
        snprintf(err, errlen, "cannot open CRL %s: %s", file, strerror(errno));
        ERR_clear_error();
        return DLG_EIO;
    }
    int n = 0, rc = 0;
    X509_CRL *crl;
    while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
        rc = add_crl(st, crl, file, err, errlen);
        X509_CRL_free(crl);
        if (rc != 0)
            goto out;
        n++;
    }
    ERR_clear_error();
    if (n == 0 && BIO_reset(b) == 0 && (crl = d2i_X509_CRL_bio(b, NULL)) != NULL) {
        rc = add_crl(st, crl, file, err, errlen);
        X509_CRL_free(crl);
        if (rc != 0)
            goto out;
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "CRL file %s holds no CRL (PEM \"X509 CRL\" or DER)", file);
        rc = DLG_ETLS;
    }
out:
    ERR_clear_error();
    BIO_free(b);
    return rc != 0 ? rc : n;
}

int dlg_tlsctx_load_crls(X509_STORE *st, const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "cannot open CRL %s: %s", path, strerror(errno));
        return DLG_EIO;
    }
    int total = 0;
    if (!S_ISDIR(sb.st_mode)) {
        total = load_crl_file(st, path, err, errlen);
    } else {
        DIR *d = opendir(path);
        if (d == NULL) {
            snprintf(err, errlen, "cannot open CRL folder %s: %s", path, strerror(errno));
            return DLG_EIO;
        }
        struct dirent *e;
        while (total >= 0 && (e = readdir(d)) != NULL) {
            char file[4096];
            if (e->d_name[0] == '.' ||
                snprintf(file, sizeof(file), "%s/%s", path, e->d_name) >= (int)sizeof(file) ||
                stat(file, &sb) != 0 || !S_ISREG(sb.st_mode))
                continue;
            int n = load_crl_file(st, file, err, errlen);
            total = n < 0 ? n : total + n;
        }
        closedir(d);
        if (total == 0) {
            snprintf(err, errlen, "CRL folder %s holds no CRL file", path);
            return DLG_EIO;
        }
    }
    if (total < 0)
        return total;
    /* The leaf and every CA above it (but the trust anchor) need a CRL
     * from their issuer: a revoked intermediate revokes what it signed. */
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return total;
}

/* Tickets are for TLS 1.3 only: a TLS 1.2 ticket carries the session's
 * master secret and is sent before encryption starts, so whoever got the
 * ticket key could decrypt every recorded TLS 1.2 session that received
 * one (no forward secrecy). A client that does not offer TLS 1.3 gets
 * SSL_OP_NO_TICKET on its connection: no ticket, no resumption. One that
 * offers it negotiates it (our maximum). */
static int tickets_tls13_only(SSL *ssl, int *alert, void *arg) {
    (void)alert, (void)arg;
    const unsigned char *v = NULL;
    size_t len = 0;
    int tls13 = 0;
    /* supported_versions (RFC 8446 4.2.1): a length byte, then 2-byte
     * versions. */
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &v, &len) == 1 &&
        len >= 1 && v[0] == len - 1 && (len - 1) % 2 == 0)
        for (size_t i = 1; i + 1 < len; i += 2)
            if (v[i] == 0x03 && v[i + 1] == 0x04)
                tls13 = 1;
    if (!tls13)
        SSL_set_options(ssl, SSL_OP_NO_TICKET);
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Session tickets for listener o: the key from o->ticket_key_file (exactly
 * DLG_TLSCTX_TICKET_KEY bytes: OpenSSL's key name, HMAC and AES keys), one
 * TLS 1.3 ticket per handshake (stateless: nothing kept per session here),
 * valid for DLG_TLSCTX_TICKET_SECONDS; none for TLS 1.2. 0 or DLG_EIO / DLG_ETLS with err naming
 * the file. */
static int use_ticket_key(SSL_CTX *ctx, const dlg_listener_conf *o, char *err, size_t errlen) {
    unsigned char key[DLG_TLSCTX_TICKET_KEY + 1];
    FILE *f = fopen(o->ticket_key_file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open ticket_key %s: %s", o->ticket_key_file,
                 strerror(errno));
        return DLG_EIO;
    }
    size_t n = fread(key, 1, sizeof(key), f);
    int bad = ferror(f);
    fclose(f);
    int rc = 0;
    if (bad) {
        snprintf(err, errlen, "cannot read ticket_key %s", o->ticket_key_file);
        rc = DLG_EIO;
    } else if (n != DLG_TLSCTX_TICKET_KEY) {
        snprintf(err, errlen, "ticket_key %s must hold exactly %d bytes (openssl rand %d > "
                              "FILE), not %s%zu", o->ticket_key_file, DLG_TLSCTX_TICKET_KEY,
                 DLG_TLSCTX_TICKET_KEY, n > DLG_TLSCTX_TICKET_KEY ? "more than " : "",
                 n > DLG_TLSCTX_TICKET_KEY ? (size_t)DLG_TLSCTX_TICKET_KEY : n);
        rc = DLG_ETLS;
    } else if (SSL_CTX_set_tlsext_ticket_keys(ctx, key, DLG_TLSCTX_TICKET_KEY) != 1) {
        snprintf(err, errlen, "ticket_key %s: OpenSSL refused the key", o->ticket_key_file);
        rc = DLG_ETLS;
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != 0)
        return rc;
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_client_hello_cb(ctx, tickets_tls13_only, NULL);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_timeout(ctx, DLG_TLSCTX_TICKET_SECONDS);
    return 0;
}

/* The OpenSSL reason for a failed step, after what: into err. */
static int ssl_fail(char *err, size_t errlen, const char *what, const char *file) {
    char why[256];
    dlg_tlsio_last_error(why, sizeof(why));
    snprintf(err, errlen, "%s %s: %s", what, file, why);
    return DLG_ETLS;
}

int dlg_tlsctx_new(const dlg_listener_conf *o, int own_records, SSL_CTX **out, char *err,
                   size_t errlen) {
    int rc = DLG_ETLS;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_fail(err, errlen, "cannot create a context", "");
        return DLG_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation, no compression, server picks the cipher; TLS 1.2
     * limited to AEAD suites with forward secrecy. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* AEAD suites with forward secrecy only. AES-GCM first: measured end to
     * end (bench/run.sh W1, 2 x 3 runs each) it beat ChaCha20-Poly1305 here
     * (3.8 vs 4.6 us daemon CPU per delivery) although `openssl speed`
     * favours ChaCha20 on 256-byte blocks; see docs/benchmarks.md. */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
        ssl_fail(err, errlen, "cannot configure ciphers", "");
        goto fail;
    }
    /* No session resumption unless the listener has a ticket_key (below):
     * no tickets are minted per handshake, and TLS 1.2 session ids are
     * off in every case (no server-side session cache). */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (o->cert_file == NULL || o->key_file == NULL) {
        snprintf(err, errlen, "a certificate and key are required (--cert, --key), or a "
                              "plaintext listener configured explicitly");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        ssl_fail(err, errlen, "cannot load certificate", o->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_fail(err, errlen, "cannot load key", o->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "key %s does not match certificate %s", o->key_file,
                 o->cert_file);
        goto fail;
    }
    if (o->client_ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, o->client_ca_file, NULL) != 1) {
            ssl_fail(err, errlen, "cannot load client CA", o->client_ca_file);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        if (o->client_crl_file &&
            (rc = dlg_tlsctx_load_crls(SSL_CTX_get_cert_store(ctx), o->client_crl_file, err,
                                       errlen)) < 0)
            goto fail;
        rc = DLG_ETLS;
        /* A certificate that does not verify fails the handshake; none at
         * all is allowed unless required (the client may use a token). */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (o->require_client_cert
                                                       ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
        SSL_CTX_set_verify_depth(ctx, 4);
    } else if (o->client_crl_file) {
        snprintf(err, errlen, "client_crl %s needs a client CA (client_ca)", o->client_crl_file);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, o->admin ? (void *)1 : NULL);
    /* Established TLS 1.3 sessions leave OpenSSL for our record layer
     * (common/dlg_tls13.h): 2.5 KB per idle connection instead of 13 KB,
     * and cheaper records. */
    if (own_records && dlg_tlsio_ctx_lean(ctx) != 0) {
        snprintf(err, errlen, "cannot set up the record layer handover");
        goto fail;
    }
    /* After the handover's setup, which turns tickets off. */
    if (o->ticket_key_file != NULL) {
        /* A resumed session would skip the client certificate check of a
         * revoked or re-issued certificate: with client certificates every
         * connection proves its identity afresh. Tokens are checked at
         * every Hello whatever TLS did. */
        if (o->client_ca_file != NULL) {
            snprintf(err, errlen, "ticket_key %s cannot be used with client_ca %s",
                     o->ticket_key_file, o->client_ca_file);
            goto fail;
        }
        if ((rc = use_ticket_key(ctx, o, err, errlen)) != 0)
            goto fail;
        rc = DLG_ETLS;
    }
    *out = ctx;
    ERR_clear_error();
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}
