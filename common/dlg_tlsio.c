/* dlg_tlsio.c: TLS over in-memory ciphertext buffers and the BIO that
 * connects them to OpenSSL (see dlg_tlsio.h). */
#include "dlg_tlsio.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "dlg_err.h"

/* Waiting ciphertext: bytes [off, len) of data. */
struct dlg_tlsio_buf {
    size_t off, len, cap;
    unsigned char data[];
};

static size_t buf_pending(const struct dlg_tlsio_buf *b) {
    return b != NULL ? b->len - b->off : 0;
}

/* Appends n bytes to *pb, allocating or growing it. 0 or DLG_ENOMEM; on
 * error the bytes already waiting are kept. */
static int buf_append(struct dlg_tlsio_buf **pb, const void *data, size_t n) {
    struct dlg_tlsio_buf *b = *pb;
    size_t have = buf_pending(b);
    if (n > SIZE_MAX / 2 - sizeof(*b) - have)
        return DLG_ENOMEM;
    if (b != NULL && b->len + n > b->cap && b->off > 0) {
        memmove(b->data, b->data + b->off, have);
        b->off = 0;
        b->len = have;
    }
    if (b == NULL || have + n > b->cap) {
        size_t cap = b != NULL ? b->cap * 2 : 0;
        if (cap < have + n)
            cap = have + n;
        struct dlg_tlsio_buf *nb = realloc(b, sizeof(*nb) + cap);
        if (nb == NULL)
            return DLG_ENOMEM;
        if (b == NULL)
            nb->off = nb->len = 0;
        nb->cap = cap;
        *pb = b = nb;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

/* Moves up to cap bytes out of b; returns how many. */
static size_t buf_take(struct dlg_tlsio_buf *b, void *out, size_t cap) {
    size_t n = buf_pending(b);
    if (n == 0)
        return 0;
    if (n > cap)
        n = cap;
    memcpy(out, b->data + b->off, n);
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
    return n;
}

/* The BIO. Unlike BIO_s_mem it can drop its buffers when they are empty
 * (dlg_tlsio_compact), and one BIO object serves both directions. Reads
 * with nothing buffered ask OpenSSL to retry (WANT_READ), never EOF. */
static int bio_write_ex(BIO *bio, const char *data, size_t len, size_t *written) {
    dlg_tlsio *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    *written = 0;
    if (buf_append(&t->out, data, len) != 0)
        return 0; /* no retry flag: OpenSSL fails the call */
    *written = len;
    return 1;
}

static int bio_read_ex(BIO *bio, char *out, size_t cap, size_t *nread) {
    dlg_tlsio *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    *nread = buf_take(t->in, out, cap);
    if (*nread == 0 && cap > 0) {
        BIO_set_retry_read(bio);
        return 0;
    }
    return 1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)num;
    (void)ptr;
    dlg_tlsio *t = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)buf_pending(t->in);
    case BIO_CTRL_WPENDING:
        return (long)buf_pending(t->out);
    case BIO_CTRL_FLUSH:
        return 1; /* the owner sends out; the handshake must not stall here */
    default:
        return 0;
    }
}

static int bio_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

/* The method table is immutable once built and shared by every session
 * (like BIO_s_mem()'s); it lives until exit. */
static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_method_once = CRYPTO_ONCE_STATIC_INIT;

static void bio_method_build(void) {
    int index = BIO_get_new_index();
    if (index == -1)
        return;
    BIO_METHOD *m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "dialogue ciphertext");
    if (m == NULL)
        return;
    if (BIO_meth_set_write_ex(m, bio_write_ex) != 1 ||
        BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

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
    if (CRYPTO_THREAD_run_once(&bio_method_once, bio_method_build) != 1 ||
        bio_method == NULL)
        goto fail;
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL)
        goto fail;
    t->bio = BIO_new(bio_method);
    if (t->bio == NULL)
        goto fail_ssl;
    BIO_set_data(t->bio, t);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* takes our one reference */
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
    SSL_free(t->ssl); /* frees the BIO, now owned by ssl */
    memset(t, 0, sizeof(*t));
    return DLG_ETLS;
fail_ssl:
    SSL_free(t->ssl);
fail:
    memset(t, 0, sizeof(*t));
    return DLG_ENOMEM;
}

void dlg_tlsio_free(dlg_tlsio *t) {
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    free(t->in);
    free(t->out);
    memset(t, 0, sizeof(*t));
}

int dlg_tlsio_feed(dlg_tlsio *t, const void *data, size_t len) {
    return len == 0 ? 0 : buf_append(&t->in, data, len);
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
    /* The BIO grows, so one call writes everything or fails. */
    if (SSL_write_ex(t->ssl, data, len, &w) != 1 || w != len) {
        ERR_clear_error();
        return DLG_ETLS;
    }
    return 0;
}

size_t dlg_tlsio_out_pending(const dlg_tlsio *t) {
    return buf_pending(t->out);
}

size_t dlg_tlsio_out_take(dlg_tlsio *t, void *buf, size_t cap) {
    return buf_take(t->out, buf, cap);
}

void dlg_tlsio_shutdown(dlg_tlsio *t) {
    if (t->ssl != NULL && t->done)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int dlg_tlsio_compact(dlg_tlsio *t) {
    if (t->in != NULL && buf_pending(t->in) == 0) {
        free(t->in);
        t->in = NULL;
    }
    if (t->out != NULL && buf_pending(t->out) == 0) {
        free(t->out);
        t->out = NULL;
    }
    return t->in == NULL && t->out == NULL;
}
