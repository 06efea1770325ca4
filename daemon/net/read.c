/* read.c: the read path: socket -> TLS (handshake, then records) ->
 * the connection's codec, which hands whole ClientFrames to srv->up.frame.
 * Everything read is counted against the budgets before Welcome. */
#include "conn_int.h"
#include "reply.h"

#include "dlg_err.h"

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    dlg_conn *c = h->data;
    buf->base = (char *)c->srv->rbuf;
    buf->len = DLG_SCRATCH;
}

/* Plaintext from the peer: counted against the budget before Welcome,
 * then handed to the connection's codec, chosen by the first bytes when
 * ALPN did not choose it. 0 = read on. */
static int feed_plain(dlg_conn *c, const uint8_t *data, size_t len) {
    c->in_bytes += len;
    c->srv->counters.bytes_in += len;
    if (c->codec == NULL && c->lis != NULL && c->lis->conf.admin)
        c->codec = &dlg_codec_http; /* nothing else is spoken there */
    if (c->codec == NULL && (c->codec = dlg_codec_sniff(data, len)) == NULL) {
        dlg_log_info(&c->srv->log, "conn %s (%s): refused: its first bytes are no protocol "
                                   "this listener speaks (first byte 0x%02x)",
                     c->client_id, c->peer, data[0]);
        dlg_conn_close(c, "unknown protocol");
        return 1;
    }
    /* A transport that carries many sessions may bring the first request
     * of each at once (HTTP/2: max_streams calls in its first flight):
     * it may read the budget for each; each session keeps its own. */
    uint64_t budget = (uint64_t)c->srv->opts.pre_auth_max_bytes *
                      (c->codec->sessions ? c->srv->opts.max_streams : 1);
    if (c->state != DLG_CONN_READY && c->in_bytes > budget) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                            "more than %llu bytes before Welcome", (unsigned long long)budget);
        c->srv->counters.hs_failed[DLG_HSF_BUDGET]++;
        dlg_conn_close_after_flush(c, "pre-auth input budget exceeded");
        return 1;
    }
    return c->codec->feed(c, data, len);
}

/* After a read: what TLS made for the peer by itself (a KeyUpdate answer,
 * an alert) is sent this turn even when no frame is, and counts in the
 * caps with the rest: a peer that never reads and sends what makes the
 * daemon answer is cut, before Welcome at pre_auth_max_bytes. */
static void tls_output_check(dlg_conn *c) {
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (dlg_tlsio_out_pending(&c->st.tls) > 0)
        dlg_conn_mark_dirty(c);
    if (c->close_after_flush || c->in_doomed)
        return; /* reads no more: nothing grows */
    uint64_t pending = dlg_conn_pending(c);
    if (c->state == DLG_CONN_READY) {
        if (pending > c->srv->opts.max_pending_bytes)
            dlg_conn_cut_slow(c, pending);
    } else if (pending > c->srv->opts.pre_auth_max_bytes) {
        dlg_log_info(&c->srv->log,
                     "conn %s (%s): refused: %llu bytes of output pending before Welcome "
                     "(pre_auth_max_bytes %u)",
                     c->client_id, c->peer, (unsigned long long)pending,
                     c->srv->opts.pre_auth_max_bytes);
        c->srv->counters.hs_failed[DLG_HSF_BUDGET]++;
        dlg_conn_close(c, "pre-auth output budget exceeded");
    }
}

/* The TLS handshake completed (dlg_stream_up). */
static int on_handshake(void *ud) {
    dlg_conn *c = ud;
    /* The transport ALPN chose; without ALPN the first bytes choose. */
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->st.tls.ssl, &alpn, &alpn_len);
    c->codec = c->lis != NULL && c->lis->conf.admin
                   ? &dlg_codec_http
                   : dlg_codec_by_alpn(alpn_len ? alpn : NULL, alpn_len);
    /* Clients with a certificate stay on OpenSSL: auth reads it at
     * Hello. */
    dlg_tlsio_handover(&c->st.tls);
    c->state = DLG_CONN_HELLO;
    c->tls_compact = 1;
    c->srv->heap_churn++; /* the handshake's transient memory is free now */
    if (c->refuse_full) {
        dlg_conn_refuse_full(c);
        return 1;
    }
    return 0;
}

static int on_plain(void *ud, const uint8_t *data, size_t len) {
    return feed_plain(ud, data, len);
}

static const dlg_stream_up conn_up = {.handshake = on_handshake, .plain = on_plain};

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    dlg_conn *c = st->data;
    if (c->state == DLG_CONN_CLOSING)
        return;
    if (nread < 0) {
        dlg_conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->close_after_flush)
        return;
    c->io_recent = 1;
    if (c->st.tls_on)
        c->tls_bufs = 1;
    char err[256] = "";
    int rc = dlg_stream_input(&c->st, (const uint8_t *)buf->base, (size_t)nread, c->srv->pbuf,
                              DLG_SCRATCH, &conn_up, c, err, sizeof(err));
    if (rc == DLG_ENOMEM) {
        dlg_conn_close(c, "out of memory");
        return;
    }
    if (rc == DLG_ETLS && !c->st.tls.done) {
        dlg_log_info(&c->srv->log, "conn %s (%s): TLS handshake refused: %s", c->client_id,
                     c->peer, err);
        dlg_conn_drain_now(c); /* the alert, if OpenSSL made one */
        c->srv->counters.hs_failed[DLG_HSF_TLS]++;
        dlg_conn_close(c, "TLS handshake failed");
        return;
    }
    if (rc == DLG_ETLS) {
        dlg_conn_drain_now(c); /* the alert that says why, if one was made */
        dlg_conn_close(c, err);
        return;
    }
    if (!c->st.tls_on)
        goto out;
    if (c->state == DLG_CONN_TLS) {
        dlg_conn_mark_dirty(c); /* the handshake's next flight */
        return;
    }
    if (rc == DLG_ECLOSED) {
        /* What it asked before is still answered, then our own
         * close_notify (RFC 8446 6.1). */
        dlg_conn_close_after_flush(c, "peer sent close_notify");
    }
    tls_output_check(c);
out:
    /* Replies are flushed by the check handle at the end of this loop turn. */
    dlg_conn_reap(c->srv);
}

int dlg_conn_start_reading(dlg_conn *c) {
    return uv_read_start((uv_stream_t *)&c->st.tcp, on_alloc, on_read);
}
