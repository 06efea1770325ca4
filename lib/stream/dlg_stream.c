/* dlg_stream.c: the socket + TLS object shared by the daemon's connections
 * and the client library (dlg_stream.h): the read side, the libuv and
 * off-loop senders, TLS output and close_notify. */
#include "dlg_stream.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

/* One uv_write in flight, with the bytes it owns. */
typedef struct stream_wreq {
    uv_write_t req;
    dlg_stream *s;
    size_t len;
    uint8_t data[];
} stream_wreq;

int dlg_stream_init(dlg_stream *s, uv_loop_t *loop, void *owner, dlg_stream_written_fn on_written) {
    int rc = uv_tcp_init(loop, &s->tcp);
    if (rc != 0)
        return rc;
    s->tcp.data = owner;
    s->on_written = on_written;
    s->fd = -1;
    return 0;
}

int dlg_stream_tls_start(dlg_stream *s, SSL_CTX *ctx, int server, const char *sni, int verify) {
    int rc = dlg_tlsio_init(&s->tls, ctx, server, sni, verify);
    if (rc == 0)
        s->tls_on = 1;
    return rc;
}

void dlg_stream_spill_drop(dlg_stream *s) {
    dlg_free(s->spill);
    s->spill = NULL;
    s->spill_len = 0;
}

void dlg_stream_free_tls(dlg_stream *s) {
    dlg_tlsio_free(&s->tls);
    dlg_stream_spill_drop(s);
}

static void on_write(uv_write_t *req, int status) {
    stream_wreq *w = (stream_wreq *)req;
    dlg_stream *s = w->s;
    dlg_stream_inflight_done(s, w->len);
    dlg_free(w);
    if (s->on_written)
        s->on_written(s, status);
}

int dlg_stream_write(dlg_stream *s, const void *data, size_t len) {
    const uint8_t *p = data;
    size_t off = 0;
    if (s->inflight_bytes == 0) {
        uv_buf_t ub = uv_buf_init((char *)p, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&s->tcp, &ub, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN) {
            s->uv_err = n;
            return DLG_EIO;
        }
    }
    if (off == len)
        return 0;
    size_t rest = len - off;
    stream_wreq *w = dlg_malloc(sizeof(*w) + rest);
    if (w == NULL)
        return DLG_ENOMEM;
    memcpy(w->data, p + off, rest);
    w->s = s;
    w->len = rest;
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)rest);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &ub, 1, on_write);
    if (rc != 0) {
        dlg_free(w);
        s->uv_err = rc;
        return DLG_EIO;
    }
    dlg_stream_inflight_add(s, rest);
    return 0;
}

int dlg_stream_write_off_loop(dlg_stream *s, const void *data, size_t len) {
    const uint8_t *p = data;
    size_t off = 0;
    if (s->spill_len == 0) {
        uv_os_fd_t fd;
        int rc = uv_fileno((const uv_handle_t *)&s->tcp, &fd);
        if (rc != 0) {
            s->uv_err = rc;
            return DLG_EIO;
        }
        while (off < len) {
            ssize_t n = write(fd, p + off, len - off);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno == EINTR)
                continue;
            else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            else {
                s->uv_err = -errno;
                return DLG_EIO;
            }
        }
    }
    if (off == len)
        return 0;
    size_t rest = len - off;
    uint8_t *ns = dlg_realloc(s->spill, s->spill_len + rest);
    if (ns == NULL)
        return DLG_ENOMEM;
    memcpy(ns + s->spill_len, p + off, rest);
    s->spill = ns;
    s->spill_len += rest;
    return 0;
}

const char *dlg_stream_strerror(const dlg_stream *s, int rc) {
    return rc == DLG_EIO && s->uv_err != 0 ? uv_strerror(s->uv_err) : dlg_strerror(rc);
}

int dlg_stream_spill_flush(dlg_stream *s) {
    if (s->spill_len == 0)
        return 0;
    int rc = dlg_stream_write(s, s->spill, s->spill_len);
    dlg_stream_spill_drop(s);
    return rc;
}

int dlg_stream_tls_drain(dlg_stream *s, uint8_t *scratch, size_t cap, int off_loop) {
    size_t n;
    while ((n = dlg_tlsio_out_take(&s->tls, scratch, cap)) > 0) {
        int rc = off_loop ? dlg_stream_write_off_loop(s, scratch, n)
                          : dlg_stream_write(s, scratch, n);
        if (rc != 0)
            return rc;
        if (s->spill_len > 0)
            return 0; /* the socket is full: the rest stays with TLS, in order */
    }
    return 0;
}

void dlg_stream_goodbye(dlg_stream *s) {
    if (!s->tls_on || !s->tls.done || dlg_stream_backed_up(s))
        return;
    dlg_tlsio_shutdown(&s->tls);
    uint8_t tmp[4096];
    size_t n;
    while ((n = dlg_tlsio_out_take(&s->tls, tmp, sizeof(tmp))) > 0) {
        uv_buf_t ub = uv_buf_init((char *)tmp, (unsigned)n);
        if (uv_try_write((uv_stream_t *)&s->tcp, &ub, 1) != (int)n)
            break;
    }
}

int dlg_stream_input(dlg_stream *s, const uint8_t *data, size_t len, uint8_t *pbuf, size_t pcap,
                     const dlg_stream_up *up, void *ud, char *err, size_t errlen) {
    if (!s->tls_on)
        return len > 0 && up->plain(ud, data, len) ? 1 : 0;
    if (len > 0 && dlg_tlsio_feed(&s->tls, data, len) != 0)
        return DLG_ENOMEM;
    if (!s->tls.done) {
        int r = dlg_tlsio_handshake(&s->tls, err, errlen);
        if (r < 0)
            return DLG_ETLS;
        if (r == 0)
            return 0;
        if (up->handshake(ud))
            return 1;
    }
    for (;;) {
        int n = dlg_tlsio_read(&s->tls, pbuf, pcap);
        if (n == 0)
            return 0;
        if (n == DLG_ECLOSED)
            return DLG_ECLOSED;
        if (n < 0) {
            dlg_tlsio_error(&s->tls, err, errlen);
            return DLG_ETLS;
        }
        if (up->plain(ud, pbuf, (size_t)n))
            return 1;
    }
}
