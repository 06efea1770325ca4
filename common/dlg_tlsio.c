/* dlg_tlsio.c: TLS over memory BIOs (see dlg_tlsio.h). */
#include "dlg_tlsio.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "dlg_err.h"

void dlg_tlsio_last_error(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (len == 0)
        return;
    if (e == 0)
        snprintf(buf, len, "unexpected TLS failure");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

int dlg_tlsio_init(dlg_tlsio *t, SSL_CTX *ctx, int server, const char *sni,
                   int verify_host) {
    memset(t, 0, sizeof(*t));
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL)
        goto fail;
    t->rbio = BIO_new(BIO_s_mem());
    if (t->rbio == NULL)
        goto fail_ssl;
    t->wbio = BIO_new(BIO_s_mem());
    if (t->wbio == NULL)
        goto fail_rbio;
    /* A drained memory BIO must read as "retry", not EOF. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        /* RFC 6066: SNI carries host names only, never IP literals. */
        unsigned char ipbuf[16];
        int is_ip = sni != NULL && (inet_pton(AF_INET, sni, ipbuf) == 1 ||
                                    inet_pton(AF_INET6, sni, ipbuf) == 1);
        if (sni != NULL && !is_ip && SSL_set_tlsext_host_name(t->ssl, sni) != 1)
            goto fail_set;
        if (sni != NULL && verify_host) {
            X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
            X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            /* An IP literal must match an IP SAN, a name a DNS SAN. */
            if (X509_VERIFY_PARAM_set1_ip_asc(p, sni) != 1 &&
                SSL_set1_host(t->ssl, sni) != 1)
                goto fail_set;
            ERR_clear_error();
        }
    }
    return 0;

fail_set:
    SSL_free(t->ssl); /* frees both BIOs, now owned by ssl */
    memset(t, 0, sizeof(*t));
    return DLG_ETLS;
fail_rbio:
    BIO_free(t->rbio);
fail_ssl:
    SSL_free(t->ssl);
fail:
    memset(t, 0, sizeof(*t));
    return DLG_ENOMEM;
}

void dlg_tlsio_free(dlg_tlsio *t) {
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    memset(t, 0, sizeof(*t));
}

int dlg_tlsio_feed(dlg_tlsio *t, const void *data, size_t len) {
    size_t off = 0;
    while (off < len) {
        size_t w = 0;
        if (BIO_write_ex(t->rbio, (const char *)data + off, len - off, &w) != 1)
            return DLG_ENOMEM;
        off += w;
    }
    return 0;
}

int dlg_tlsio_handshake(dlg_tlsio *t, char *err, size_t errlen) {
    if (t->done)
        return 1;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->done = 1;
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (err != NULL) {
        long vr = SSL_get_verify_result(t->ssl);
        if (vr != X509_V_OK)
            snprintf(err, errlen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(vr));
        else
            dlg_tlsio_last_error(err, errlen);
    }
    ERR_clear_error();
    return DLG_ETLS;
}

int dlg_tlsio_read(dlg_tlsio *t, void *buf, size_t cap) {
    size_t n = 0;
    if (SSL_read_ex(t->ssl, buf, cap, &n) == 1)
        return (int)n;
    int e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return DLG_ECLOSED;
    ERR_clear_error();
    return DLG_ETLS;
}

int dlg_tlsio_write(dlg_tlsio *t, const void *data, size_t len) {
    size_t w = 0;
    if (len == 0)
        return 0;
    /* Memory BIOs grow, so one call writes everything or fails. */
    if (SSL_write_ex(t->ssl, data, len, &w) != 1 || w != len) {
        ERR_clear_error();
        return DLG_ETLS;
    }
    return 0;
}

size_t dlg_tlsio_out_pending(const dlg_tlsio *t) {
    return BIO_ctrl_pending(t->wbio);
}

size_t dlg_tlsio_out_take(dlg_tlsio *t, void *buf, size_t cap) {
    size_t n = 0;
    if (cap == 0 || BIO_read_ex(t->wbio, buf, cap, &n) != 1)
        return 0;
    return n;
}

void dlg_tlsio_shutdown(dlg_tlsio *t) {
    if (t->ssl != NULL && t->done)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int dlg_tlsio_compact(dlg_tlsio *t) {
    if (BIO_ctrl_pending(t->rbio) > 0 || BIO_ctrl_pending(t->wbio) > 0)
        return 0;
    BIO *r = BIO_new(BIO_s_mem());
    BIO *w = BIO_new(BIO_s_mem());
    if (r == NULL || w == NULL) {
        BIO_free(r);
        BIO_free(w);
        return DLG_ENOMEM;
    }
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(t->ssl, r, w); /* frees the old pair */
    t->rbio = r;
    t->wbio = w;
    return 1;
}
