/* fakesrv.c: the scripted test server (see fakesrv.h). */
#include "fakesrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "dlg_err.h"
#include "dlg_frame.h"
#include "dlg_tlsio.h"

struct fsrv_conn {
    fsrv *srv;
    fsrv_conn *next;
    uv_tcp_t tcp;
    dlg_tlsio tls;
    dlg_frame_dec dec;
    int dead;
    /* TLS record parser over the client's ciphertext. */
    uint8_t rhdr[5];
    size_t rhave;
    size_t rskip;
    uint8_t buf[64 * 1024];
    uint8_t plain[16 * 1024];
};

struct fsrv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *ctx;
    fsrv_frame_cb cb;
    void *ud;
    int no_tls;
    int stopping;
    int open;           /* handles not yet closed (listener + connections) */
    unsigned port;
    fsrv_conn *conns;
    fsrv_stats st;
};

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
    fsrv *s = arg;
    (void)ssl;
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 10 && memcmp(in + i + 1, "dialogue/1", 10) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            snprintf(s->st.alpn, sizeof(s->st.alpn), "dialogue/1");
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void maybe_free(fsrv *s) {
    if (s->stopping && s->open == 0) {
        SSL_CTX_free(s->ctx);
        free(s);
    }
}

static void on_conn_closed(uv_handle_t *h) {
    fsrv_conn *sc = h->data;
    fsrv *s = sc->srv;
    fsrv_conn **pp = &s->conns;
    while (*pp != sc)
        pp = &(*pp)->next;
    *pp = sc->next;
    dlg_tlsio_free(&sc->tls);
    dlg_frame_dec_free(&sc->dec);
    free(sc);
    s->st.closed++;
    s->open--;
    maybe_free(s);
}

typedef struct wr {
    uv_write_t req;
    uint8_t data[];
} wr;

static void on_written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void flush_out(fsrv_conn *sc) {
    size_t n = dlg_tlsio_out_pending(&sc->tls);
    if (n == 0 || sc->dead)
        return;
    wr *w = malloc(sizeof(*w) + n);
    if (w == NULL)
        return;
    n = dlg_tlsio_out_take(&sc->tls, w->data, n);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&sc->tcp, &b, 1, on_written) != 0)
        free(w);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    fsrv_conn *sc = req->data;
    (void)status;
    free(req);
    uv_close((uv_handle_t *)&sc->tcp, on_conn_closed);
}

void fsrv_close(fsrv_conn *sc) {
    if (sc->dead)
        return;
    flush_out(sc);
    sc->dead = 1;
    /* uv_close would cancel queued writes (an Error before the close must
     * arrive): shut the write side first, close when it is done. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req != NULL) {
        req->data = sc;
        if (uv_shutdown(req, (uv_stream_t *)&sc->tcp, on_shutdown) == 0)
            return;
        free(req);
    }
    uv_close((uv_handle_t *)&sc->tcp, on_conn_closed);
}

fsrv *fsrv_of(fsrv_conn *sc) {
    return sc->srv;
}

int fsrv_send_raw(fsrv_conn *sc, const void *data, size_t len) {
    if (sc->dead || dlg_tlsio_write(&sc->tls, data, len) != 0)
        return -1;
    flush_out(sc);
    return 0;
}

int fsrv_send(fsrv_conn *sc, uint64_t rid, Dialogue__V1__ServerFrame *f) {
    dlg_buf *b = NULL;
    f->request_id = rid;
    if (dlg_frame_pack(&f->base, 0, &b) != 0)
        return -1;
    int rc = fsrv_send_raw(sc, b->data, b->len);
    dlg_buf_unref(b);
    return rc;
}

int fsrv_welcome(fsrv_conn *sc, uint64_t rid, uint32_t heartbeat_ms, uint32_t max_frame,
                 Dialogue__V1__Joined **auto_joined, size_t n_auto) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Welcome w = DIALOGUE__V1__WELCOME__INIT;
    w.client_id = (char *)"fake1";
    w.server_version = (char *)"fakesrv";
    w.heartbeat_ms = heartbeat_ms;
    w.max_frame = max_frame;
    w.auto_joined = auto_joined;
    w.n_auto_joined = n_auto;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_WELCOME;
    f.welcome = &w;
    return fsrv_send(sc, rid, &f);
}

int fsrv_error(fsrv_conn *sc, uint64_t rid, int code, const char *message) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Error e = DIALOGUE__V1__ERROR__INIT;
    e.code = (Dialogue__V1__Status)code;
    e.message = (char *)message;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    return fsrv_send(sc, rid, &f);
}

static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    fsrv_conn *sc = ctx;
    fsrv *s = sc->srv;
    Dialogue__V1__ClientFrame *f = dialogue__v1__client_frame__unpack(NULL, len, body);
    if (f == NULL) {
        fprintf(stderr, "fakesrv: undecodable client frame (%zu bytes)\n", len);
        fsrv_close(sc);
        return 1;
    }
    s->st.frames++;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_PONG) {
        s->st.pongs++;
        s->st.last_pong_nonce = f->pong->nonce;
    }
    if (s->cb != NULL)
        s->cb(sc, f, s->ud);
    else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO)
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
    dialogue__v1__client_frame__free_unpacked(f, NULL);
    return sc->dead ? 1 : 0;
}

/* Counts application-data records in the client's ciphertext. */
static void count_records(fsrv_conn *sc, const uint8_t *p, size_t n) {
    while (n > 0) {
        if (sc->rskip > 0) {
            size_t k = n < sc->rskip ? n : sc->rskip;
            sc->rskip -= k;
            p += k;
            n -= k;
            continue;
        }
        sc->rhdr[sc->rhave++] = *p++;
        n--;
        if (sc->rhave == 5) {
            if (sc->rhdr[0] == 23)
                sc->srv->st.records++;
            sc->rskip = ((size_t)sc->rhdr[3] << 8) | sc->rhdr[4];
            sc->rhave = 0;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    fsrv_conn *sc = h->data;
    (void)hint;
    *b = uv_buf_init((char *)sc->buf, sizeof(sc->buf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
    fsrv_conn *sc = st->data;
    fsrv *s = sc->srv;
    (void)b;
    if (sc->dead || nread == 0)
        return;
    if (nread < 0) {
        fsrv_close(sc);
        return;
    }
    if (s->no_tls)
        return;
    count_records(sc, sc->buf, (size_t)nread);
    dlg_tlsio_feed(&sc->tls, sc->buf, (size_t)nread);
    if (!sc->tls.done) {
        char err[256];
        int r = dlg_tlsio_handshake(&sc->tls, err, sizeof(err));
        flush_out(sc);
        if (r < 0) {
            fsrv_close(sc);
            return;
        }
        if (r == 0)
            return;
        s->st.handshakes++;
        s->st.tls_version = SSL_version(sc->tls.ssl);
    }
    for (;;) {
        int n = dlg_tlsio_read(&sc->tls, sc->plain, sizeof(sc->plain));
        if (n <= 0) {
            if (n < 0)
                fsrv_close(sc);
            break;
        }
        if (dlg_frame_dec_feed(&sc->dec, sc->plain, (size_t)n, on_frame, sc, NULL) != 0) {
            fsrv_close(sc);
            break;
        }
        if (sc->dead)
            break;
    }
    flush_out(sc);
}

static void on_connection(uv_stream_t *l, int status) {
    fsrv *s = l->data;
    if (status < 0)
        return;
    fsrv_conn *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return;
    sc->srv = s;
    uv_tcp_init(s->loop, &sc->tcp);
    sc->tcp.data = sc;
    sc->next = s->conns;
    s->conns = sc;
    s->open++;
    if (uv_accept(l, (uv_stream_t *)&sc->tcp) != 0 ||
        dlg_tlsio_init(&sc->tls, s->ctx, 1, NULL, 0) != 0) {
        fsrv_close(sc);
        return;
    }
    uv_tcp_nodelay(&sc->tcp, 1);
    s->st.accepted++;
    uv_read_start((uv_stream_t *)&sc->tcp, on_alloc, on_read);
}

int fsrv_start(uv_loop_t *loop, const char *certdir, fsrv_frame_cb cb, void *ud,
               int no_tls, fsrv **out) {
    char crt[512], key[512];
    struct sockaddr_in addr;
    fsrv *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->loop = loop;
    s->cb = cb;
    s->ud = ud;
    s->no_tls = no_tls;
    snprintf(crt, sizeof(crt), "%s/server.crt", certdir);
    snprintf(key, sizeof(key), "%s/server.key", certdir);
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL || SSL_CTX_use_certificate_chain_file(s->ctx, crt) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "fakesrv: cannot load %s / %s\n", crt, key);
        SSL_CTX_free(s->ctx);
        free(s);
        return -1;
    }
    SSL_CTX_set_alpn_select_cb(s->ctx, select_alpn, s);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->open = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->listener, 16, on_connection) != 0) {
        s->stopping = 1;
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        SSL_CTX_free(s->ctx);
        free(s);
        return -1;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
}

unsigned fsrv_port(const fsrv *s) {
    return s->port;
}

fsrv_stats *fsrv_stats_of(fsrv *s) {
    return &s->st;
}

static void on_listener_closed(uv_handle_t *h) {
    fsrv *s = h->data;
    s->open--;
    maybe_free(s);
}

void fsrv_stop(fsrv *s) {
    s->stopping = 1;
    for (fsrv_conn *sc = s->conns; sc != NULL; sc = sc->next)
        fsrv_close(sc);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
