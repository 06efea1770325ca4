/* conn.c: one connection attempt and its socket: resolve, TCP connect
 * (trying each address), the stream (lib/stream/dlg_stream.h: TLS, the read
 * side and the sender, the same object the daemon's connections use), the
 * framed read path, the coalesced write path (one TLS write per loop
 * turn), and the teardown that decides about requests and the next retry. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "dlg_err.h"

static void conn_close(dlg__conn *conn, int notify);

static void conn_release(dlg__conn *conn) {
    if (--conn->refs > 0)
        return;
    dlg_client *c = conn->c;
    if (conn->ai_list != NULL)
        uv_freeaddrinfo(conn->ai_list);
    dlg_stream_free_tls(&conn->st);
    dlg_frame_dec_free(&conn->dec);
    dlg__free(conn);
    c->live_conns--;
    dlg__maybe_finalize(c);
}

static void on_tcp_closed(uv_handle_t *h) {
    conn_release(h->data);
}

static void drop_output(dlg_client *c) {
    for (size_t i = 0; i < c->n_out; i++)
        dlg_buf_unref(c->out[i]);
    c->n_out = 0;
    uv_prepare_stop(&c->flush);
}

/* ---- teardown -------------------------------------------------------------- */

void dlg__conn_abort(dlg_client *c, int notify) {
    dlg__conn *conn = c->conn;
    c->conn = NULL;
    if (conn != NULL)
        conn_close(conn, notify);
    uv_timer_stop(&c->conn_timer);
    uv_timer_stop(&c->hb_timer);
    drop_output(c);
}

void dlg__conn_fail(dlg_client *c, const char *reason, int fatal) {
    char why[640];
    const dlg__server *sv = dlg__server_now(c);
    dlg__conn *conn = c->conn;
    /* A lost connection rather than a failed attempt, and how long it was
     * up: that decides the delay below. */
    int was_up = conn != NULL && conn->phase == DLG__CONN_READY;
    uint64_t up_ms = was_up ? uv_now(c->loop) - conn->ready_at : 0;
    /* reason may point into the connection, which closing may reuse. With
     * a list the reader must learn which server this was about; with one
     * server the text stays as it always was. */
    if (c->o.n_servers > 1 && strstr(reason, sv->name) == NULL)
        snprintf(why, sizeof(why), "%s (server %s)", reason, sv->name);
    else
        snprintf(why, sizeof(why), "%s", reason);
    dlg__conn_abort(c, 0);
    if (c->closing)
        return;
    if (fatal)
        c->no_retry = 1;
    /* With reconnect off, dlg_client_connect still makes its one pass over
     * the list (a failed attempt moves on while entries are left), but a
     * lost connection is not retried. */
    int retry = !c->no_retry && (c->o.v.reconnect || (!was_up && c->pass_left > 0));
    /* Sent requests cannot be resent safely (a trigger may have been
     * applied); unsent ones wait if the offline queue has room. */
    dlg__req *lost = NULL, **tail = &lost;
    size_t kept = 0;
    for (dlg__req *r = c->reqs_head, *next; r != NULL; r = next) {
        next = r->next;
        if (!r->sent && r->owner == DLG__OWNER_USER && retry &&
            kept < c->o.v.offline_queue) {
            kept++;
            continue;
        }
        dlg__req_unlink(c, r);
        *tail = r;
        tail = &r->next;
    }
    for (size_t i = 0; i < c->n_rooms; i++)
        c->rooms[i].in_restore = 0;
    dlg__pos_disconnected(c);
    uv_mutex_lock(&c->mu);
    /* For dlg_sync_connect: 1 = no retry by configuration, 2 = refused. */
    c->final_failure = retry ? 0 : (c->no_retry ? 2 : 1);
    uv_mutex_unlock(&c->mu);
    /* A node that served us for a while died: another one of the list is
     * likely up, so try it at once. A connection that dies right after its
     * Welcome (a node refusing work, a flapping path) takes the backoff
     * like a failed attempt, so two such nodes cannot make the client spin
     * between them; failed attempts double the delay, so a cluster that is
     * down is not hammered. */
    uint64_t delay = 0;
    if (!(was_up && c->o.n_servers > 1 && up_ms >= c->o.v.backoff_min_ms)) {
        delay = dlg__backoff_ms(c->o.v.backoff_min_ms, c->o.v.backoff_max_ms,
                                c->o.v.backoff_jitter, c->attempt, &c->rng);
        c->attempt++;
    }
    dlg__set_state(c, DLG_STATE_DISCONNECTED, why);
    for (dlg__req *r = lost, *next; r != NULL; r = next) {
        next = r->next;
        dlg__req_complete_local(c, r, DLG_ECLOSED, why);
        dlg__req_free(r);
    }
    /* The callbacks above may have closed the client or connected again. */
    if (retry && !c->closing && c->conn == NULL &&
        c->state == DLG_STATE_DISCONNECTED && !uv_is_active((uv_handle_t *)&c->retry_timer)) {
        /* on_retry moves to the next entry. */
        dlg_log_info(&c->log, "reconnecting to %s in %llu ms",
                     c->o.servers[(c->srv + 1) % c->o.n_servers].name,
                     (unsigned long long)delay);
        dlg__schedule_retry(c, delay);
    }
}

static void conn_close(dlg__conn *conn, int notify) {
    if (conn->phase == DLG__CONN_DEAD)
        return;
    conn->phase = DLG__CONN_DEAD;
    if (notify)
        dlg_stream_goodbye(&conn->st); /* best effort; the socket closes right after */
    /* A resolve in flight reports UV_ECANCELED and drops its reference. */
    if (conn->refs > 1)
        uv_cancel((uv_req_t *)&conn->gai);
    uv_close((uv_handle_t *)&conn->st.tcp, on_tcp_closed);
}

/* ---- writing ------------------------------------------------------------------ */

/* A uv_write of the stream finished (dlg_stream_written_fn). */
static void on_written(dlg_stream *st, int status) {
    dlg__conn *conn = st->tcp.data;
    if (status < 0 && status != UV_ECANCELED && conn->phase != DLG__CONN_DEAD &&
        conn->c->conn == conn) {
        char why[160];
        snprintf(why, sizeof(why), "write to %s failed: %s", conn->peer, uv_strerror(status));
        dlg__conn_fail(conn->c, why, 0);
    }
}

/* Sends whatever ciphertext OpenSSL produced. 0, or non-zero when the
 * connection was torn down. */
static int flush_cipher(dlg__conn *conn) {
    if (conn->phase == DLG__CONN_DEAD || dlg_tlsio_out_pending(&conn->st.tls) == 0)
        return 0;
    uint8_t scratch[16 * 1024];
    int rc = dlg_stream_tls_drain(&conn->st, scratch, sizeof(scratch), 0);
    if (rc == 0)
        return 0;
    char why[160];
    if (rc == DLG_ENOMEM)
        snprintf(why, sizeof(why), "out of memory for output to %s", conn->peer);
    else
        snprintf(why, sizeof(why), "write to %s failed: %s", conn->peer,
                 dlg_stream_strerror(&conn->st, rc));
    dlg__conn_fail(conn->c, why, 0);
    return 1;
}

void dlg__flush(dlg_client *c) {
    uv_prepare_stop(&c->flush);
    dlg__conn *conn = c->conn;
    if (conn == NULL || conn->phase == DLG__CONN_DEAD || !conn->st.tls.done)
        return;
    if (c->n_out > 0) {
        const uint8_t *data;
        size_t total = 0;
        for (size_t i = 0; i < c->n_out; i++)
            total += c->out[i]->len;
        if (c->n_out == 1) {
            data = c->out[0]->data;
        } else {
            /* Coalesce: one TLS record stream, one socket write per turn. */
            if (total > c->stage_cap) {
                uint8_t *n = dlg__realloc(c->stage, total);
                if (n == NULL) {
                    dlg__conn_fail(c, "out of memory for output", 0);
                    return;
                }
                c->stage = n;
                c->stage_cap = total;
            }
            size_t off = 0;
            for (size_t i = 0; i < c->n_out; i++) {
                memcpy(c->stage + off, c->out[i]->data, c->out[i]->len);
                off += c->out[i]->len;
            }
            data = c->stage;
        }
        int rc = dlg_tlsio_write(&conn->st.tls, data, total);
        for (size_t i = 0; i < c->n_out; i++)
            dlg_buf_unref(c->out[i]);
        c->n_out = 0;
        /* A burst should not pin a big staging buffer forever. */
        if (c->stage_cap > 256 * 1024) {
            dlg__free(c->stage);
            c->stage = NULL;
            c->stage_cap = 0;
        }
        if (rc != 0) {
            char why[320], tls[200];
            dlg_tlsio_last_error(tls, sizeof(tls));
            snprintf(why, sizeof(why), "TLS write to %s failed: %s", conn->peer, tls);
            dlg__conn_fail(c, why, 0);
            return;
        }
    }
    flush_cipher(conn);
}

static void on_flush(uv_prepare_t *p) {
    dlg__flush(p->data);
}

int dlg__conn_queue(dlg_client *c, dlg_buf *frame) {
    if (c->n_out == c->cap_out) {
        size_t cap = c->cap_out ? c->cap_out * 2 : 16;
        dlg_buf **n = dlg__realloc(c->out, cap * sizeof(*n));
        if (n == NULL) {
            dlg_buf_unref(frame);
            return DLG_ENOMEM;
        }
        c->out = n;
        c->cap_out = cap;
    }
    c->out[c->n_out++] = frame;
    if (!c->closing)
        uv_prepare_start(&c->flush, on_flush);
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    dlg__conn *conn = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)conn->rbuf, sizeof(conn->rbuf));
}

static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    dlg__conn *conn = ctx;
    if (conn->phase == DLG__CONN_DEAD)
        return 1;
    return dlg__session_frame(conn->c, body, len) ? 1 : 0;
}

static void fail_closed(dlg__conn *conn, const char *what) {
    char why[512];
    if (conn->server_error[0])
        snprintf(why, sizeof(why), "%s (%s)", what, conn->server_error);
    else
        snprintf(why, sizeof(why), "%s", what);
    dlg__conn_fail(conn->c, why, 0);
}

/* The TLS handshake completed (dlg_stream_up): the ALPN check, then
 * Hello. Non-zero when the connection was torn down. */
static int on_handshake(void *ud) {
    dlg__conn *conn = ud;
    dlg_client *c = conn->c;
    char why[400];
    if (flush_cipher(conn) != 0) /* our Finished, ahead of Hello */
        return 1;
    const unsigned char *proto = NULL;
    unsigned plen = 0;
    SSL_get0_alpn_selected(conn->st.tls.ssl, &proto, &plen);
    /* A server that ignores ALPN is tolerated; one that picks another
     * protocol is not ours. */
    if (plen > 0 && (plen != strlen(DLG__ALPN) || memcmp(proto, DLG__ALPN, plen) != 0)) {
        snprintf(why, sizeof(why), "server %s chose ALPN protocol \"%.*s\", not " DLG__ALPN,
                 conn->peer, (int)plen, proto);
        dlg__conn_fail(c, why, 0);
        return 1;
    }
    /* Nothing more is needed from OpenSSL's session (certificate checked,
     * ALPN read): TLS 1.3 continues on our record layer. */
    dlg_tlsio_handover(&conn->st.tls);
    if (dlg__session_hello(c) != 0) {
        dlg__conn_fail(c, "out of memory sending Hello", 0);
        return 1;
    }
    dlg__flush(c);
    return conn->phase == DLG__CONN_DEAD;
}

/* Plaintext from the server (dlg_stream_up): frames to the session.
 * Non-zero when the connection was torn down. */
static int on_plain(void *ud, const uint8_t *data, size_t len) {
    dlg__conn *conn = ud;
    dlg_client *c = conn->c;
    char why[400];
    int rc = dlg_frame_dec_feed(&conn->dec, data, len, on_frame, conn, NULL);
    if (rc == 0)
        return conn->phase == DLG__CONN_DEAD;
    dlg__events_flush(c);
    if (conn->phase == DLG__CONN_DEAD)
        return 1; /* torn down while handling a frame or by the batch */
    if (rc == DLG_ETOOBIG)
        snprintf(why, sizeof(why), "server sent a frame of %u bytes, above max_frame %u",
                 dlg_frame_dec_bad_len(&conn->dec), c->o.v.max_frame);
    else if (rc == DLG_EFLAG)
        snprintf(why, sizeof(why), "server sent a frame with flag %u (compression is not supported)",
                 conn->dec.hdr[0]);
    else
        snprintf(why, sizeof(why), "reading frames from %s: %s", conn->peer, dlg_strerror(rc));
    dlg__conn_fail(c, why, 0);
    return 1;
}

static const dlg_stream_up conn_up = {.handshake = on_handshake, .plain = on_plain};

/* Socket bytes through the stream (len 0: only the handshake's first
 * flight), then what TLS made for the server. */
static void stream_input(dlg__conn *conn, const uint8_t *data, size_t len) {
    dlg_client *c = conn->c;
    char err[256], why[400];
    int rc = dlg_stream_input(&conn->st, data, len, conn->pbuf, sizeof(conn->pbuf), &conn_up,
                              conn, err, sizeof(err));
    if (rc == 1)
        return; /* torn down by a callback, which said why */
    if (rc == DLG_ENOMEM) {
        dlg__conn_fail(c, "out of memory for input", 0);
        return;
    }
    if (rc == DLG_ETLS && !conn->st.tls.done) {
        if (flush_cipher(conn) != 0) /* the alert that says why */
            return;
        snprintf(why, sizeof(why), "TLS handshake with %s (%s) failed: %s",
                 dlg__server_now(c)->host, conn->peer, err);
        dlg__conn_fail(c, why, 0);
        return;
    }
    if (!conn->st.tls.done) {
        flush_cipher(conn); /* the handshake's next flight */
        return;
    }
    /* One batch callback per read, however many records it brought
     * (DLG_EVENTS_BATCH_MAX at most); the events of this read reach it
     * before the connection's end is reported. */
    dlg__events_flush(c);
    if (conn->phase == DLG__CONN_DEAD)
        return;
    if (rc == DLG_ECLOSED) {
        snprintf(why, sizeof(why), "%s closed the TLS session", conn->peer);
        fail_closed(conn, why);
        return;
    }
    if (rc == DLG_ETLS) {
        snprintf(why, sizeof(why), "TLS error from %s: %s", conn->peer, err);
        dlg__conn_fail(c, why, 0);
        return;
    }
    /* TLS may want to answer (key update); ordinary output goes via flush. */
    flush_cipher(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    dlg__conn *conn = s->data;
    dlg_client *c = conn->c;
    char why[400];
    (void)buf;
    if (conn->phase == DLG__CONN_DEAD || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            snprintf(why, sizeof(why), "connection closed by %s", conn->peer);
        else
            snprintf(why, sizeof(why), "read from %s failed: %s", conn->peer,
                     uv_strerror((int)nread));
        fail_closed(conn, why);
        return;
    }
    conn->last_rx = uv_now(c->loop);
    stream_input(conn, conn->rbuf, (size_t)nread);
}

/* ---- connecting ------------------------------------------------------------ */

static dlg__conn *conn_new(dlg_client *c) {
    dlg__conn *conn = dlg__calloc(1, sizeof(*conn));
    if (conn == NULL)
        return NULL;
    conn->c = c;
    conn->dec.max_frame = c->o.v.max_frame;
    dlg_stream_init(&conn->st, c->loop, conn, on_written);
    conn->refs = 1;
    /* Set before the socket exists: libuv applies it when it creates one,
     * so the handshake never waits on delayed ACKs. */
    uv_tcp_nodelay(&conn->st.tcp, 1);
    c->live_conns++;
    return conn;
}

static void try_address(dlg__conn *conn);

static void on_connect(uv_connect_t *req, int status) {
    dlg__conn *conn = req->data;
    dlg_client *c = conn->c;
    char why[320];
    if (conn->phase == DLG__CONN_DEAD)
        return;
    if (status < 0) {
        snprintf(why, sizeof(why), "connect to %s: %s", conn->peer, uv_strerror(status));
        if (conn->ai_next != NULL) {
            /* Another address of the host: a fresh socket for it. */
            dlg__conn *next = conn_new(c);
            if (next == NULL) {
                dlg__conn_fail(c, "out of memory", 0);
                return;
            }
            next->ai_list = conn->ai_list;
            next->ai_next = conn->ai_next;
            conn->ai_list = NULL;
            c->conn = next;
            conn_close(conn, 0);
            dlg_log_debug(&c->log, "%s; trying the next address", why);
            try_address(next);
            return;
        }
        dlg__conn_fail(c, why, 0);
        return;
    }
    uv_tcp_nodelay(&conn->st.tcp, 1);
    conn->phase = DLG__CONN_HANDSHAKE;
    /* The entry's host is the name its certificate must carry. */
    const char *host = dlg__server_now(c)->host;
    int rc = dlg_stream_tls_start(&conn->st, c->ssl_ctx, 0, host, 1);
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot set up TLS for %s: %s", host, dlg_strerror(rc));
        dlg__conn_fail(c, why, 0);
        return;
    }
    rc = uv_read_start((uv_stream_t *)&conn->st.tcp, on_alloc, on_read);
    if (rc != 0) {
        snprintf(why, sizeof(why), "read from %s: %s", conn->peer, uv_strerror(rc));
        dlg__conn_fail(c, why, 0);
        return;
    }
    stream_input(conn, NULL, 0);
}

static void try_address(dlg__conn *conn) {
    dlg_client *c = conn->c;
    struct addrinfo *ai = conn->ai_next;
    char host[INET6_ADDRSTRLEN] = "?";
    conn->ai_next = ai->ai_next;
    if (ai->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, host, sizeof(host));
    else
        uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, host, sizeof(host));
    snprintf(conn->peer, sizeof(conn->peer), ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             host, dlg__server_now(c)->port);
    conn->phase = DLG__CONN_CONNECTING;
    conn->creq.data = conn;
    int rc = uv_tcp_connect(&conn->creq, &conn->st.tcp, ai->ai_addr, on_connect);
    if (rc != 0) {
        char why[320];
        snprintf(why, sizeof(why), "connect to %s: %s", conn->peer, uv_strerror(rc));
        dlg__conn_fail(c, why, 0);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    dlg__conn *conn = req->data;
    dlg_client *c = conn->c;
    if (conn->phase == DLG__CONN_DEAD) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        conn_release(conn);
        return;
    }
    conn_release(conn); /* the resolve's reference; the socket's remains */
    if (status < 0 || res == NULL) {
        char why[320];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", dlg__server_now(c)->host,
                 status < 0 ? uv_strerror(status) : "no address");
        if (res != NULL)
            uv_freeaddrinfo(res);
        dlg__conn_fail(c, why, 0);
        return;
    }
    conn->ai_list = conn->ai_next = res;
    try_address(conn);
}

static const char *phase_name(int phase) {
    switch (phase) {
    case DLG__CONN_RESOLVING: return "resolving the host";
    case DLG__CONN_CONNECTING: return "in TCP connect";
    case DLG__CONN_HANDSHAKE: return "in the TLS handshake";
    case DLG__CONN_HELLO: return "waiting for Welcome";
    default: return "connecting";
    }
}

static void on_conn_timeout(uv_timer_t *t) {
    dlg_client *c = t->data;
    char why[320];
    if (c->conn == NULL)
        return;
    snprintf(why, sizeof(why), "connect to %s timed out after %u ms (%s)",
             dlg__server_now(c)->name, c->o.v.connect_timeout_ms, phase_name(c->conn->phase));
    dlg__conn_fail(c, why, 0);
}

static void on_watchdog(uv_timer_t *t) {
    dlg_client *c = t->data;
    dlg__conn *conn = c->conn;
    if (conn == NULL || conn->phase != DLG__CONN_READY)
        return;
    /* The server pings a quiet client every heartbeat_ms, so three periods
     * of silence mean the path is dead. */
    uint64_t limit = 3ull * c->heartbeat_ms;
    uint64_t quiet = uv_now(c->loop) - conn->last_rx;
    if (quiet >= limit) {
        char why[200];
        snprintf(why, sizeof(why), "nothing from %s for %llu ms (heartbeat %u ms)", conn->peer,
                 (unsigned long long)quiet, c->heartbeat_ms);
        dlg__conn_fail(c, why, 0);
    }
}

void dlg__conn_watchdog(dlg_client *c) {
    if (c->heartbeat_ms == 0) {
        uv_timer_stop(&c->hb_timer);
        return;
    }
    uv_timer_start(&c->hb_timer, on_watchdog, c->heartbeat_ms, c->heartbeat_ms);
}

void dlg__conn_start(dlg_client *c) {
    char port[8];
    struct addrinfo hints;
    const dlg__server *sv = dlg__server_now(c);
    dlg__conn *conn = conn_new(c);
    if (conn == NULL) {
        dlg__conn_fail(c, "out of memory", 0);
        return;
    }
    c->conn = conn;
    conn->phase = DLG__CONN_RESOLVING;
    conn->last_rx = uv_now(c->loop);
    snprintf(conn->peer, sizeof(conn->peer), "%s", sv->name);
    uv_timer_start(&c->conn_timer, on_conn_timeout, c->o.v.connect_timeout_ms, 0);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", sv->port);
    conn->gai.data = conn;
    conn->refs++;
    int rc = uv_getaddrinfo(c->loop, &conn->gai, on_resolved, sv->host, port, &hints);
    if (rc != 0) {
        char why[320];
        conn->refs--;
        snprintf(why, sizeof(why), "cannot resolve %s: %s", sv->host, uv_strerror(rc));
        dlg__conn_fail(c, why, 0);
    }
}
