/* conn.c: a connection's lifecycle: accept and admission (the caps on
 * connections, before and after Welcome), the handshake deadline, the one
 * timer for heartbeats and token expiry, the sweep that cuts stuck writers
 * and slow consumers and gives idle connections' memory back, closing and
 * freeing. The read path is read.c, the queue outq.c, the write path
 * flush.c. */
#include "conn_int.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlg_alloc.h"
#include "dlg_err.h"
#include "uring.h"

/* A connection that sent nothing yet has no codec: what it is told before
 * it speaks is said in dialogue/1, the protocol every client knew first. */
static void say_in_ours(dlg_conn *c) {
    if (c->codec == NULL)
        c->codec = &dlg_codec_native;
}

void dlg_conn_release(dlg_conn *c) {
    if (--c->handles_open > 0)
        return;
    c->srv->heap_churn++;
    if (c->parent != NULL) {
        c->srv->n_sessions--;
        c->srv->n_sessions_ready -= c->ready_counted;
    }
    for (size_t i = 0; i < c->q_len; i++)
        dlg_buf_unref(c->q[(c->q_head + i) % c->q_cap].buf);
    free(c->q);
    free(c->latest);
    dlg_stream_free_tls(&c->st);
    if (c->codec && c->codec->free)
        c->codec->free(c);
    dlg_frame_dec_free(&c->dec);
    for (size_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    free(c->roles);
    free(c->user_id);
    free(c->client_name);
    free(c->members);
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
    dlg_conn_release(h->data);
}

static void unlink_conn(dlg_conn *c) {
    dlg_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_conns--;
}

/* The connections admitted before Welcome, oldest first: the budget
 * pre_auth_max_connections counts them, and the oldest makes room for a
 * newcomer (dlg_conn_accept). */
static void pre_link(dlg_conn *c) {
    dlg_server *s = c->srv;
    c->pre_prev = s->pre_tail;
    c->pre_next = NULL;
    if (s->pre_tail)
        s->pre_tail->pre_next = c;
    else
        s->pre_head = c;
    s->pre_tail = c;
    c->pre_linked = 1;
    s->n_pre_auth++;
}

static void pre_unlink(dlg_conn *c) {
    dlg_server *s = c->srv;
    if (!c->pre_linked)
        return;
    if (c->pre_prev)
        c->pre_prev->pre_next = c->pre_next;
    else
        s->pre_head = c->pre_next;
    if (c->pre_next)
        c->pre_next->pre_prev = c->pre_prev;
    else
        s->pre_tail = c->pre_prev;
    c->pre_prev = c->pre_next = NULL;
    c->pre_linked = 0;
    s->n_pre_auth--;
}

/* One info line per connection that ends, with its reason: at most
 * DLG_CLOSE_LOGS_PER_SEC a second, so that a flood of connections cannot
 * flood the log; the sweep reports how many were left out. */
static void log_close(dlg_conn *c, const char *reason) {
    dlg_server *s = c->srv;
    uint64_t now = uv_now(s->loop);
    /* Counted per second of the log's own clock, as a reader counts. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((uint64_t)ts.tv_sec != s->close_log_sec) {
        s->close_log_sec = (uint64_t)ts.tv_sec;
        s->close_logs = 0;
    }
    if (s->close_logs >= DLG_CLOSE_LOGS_PER_SEC) {
        s->close_logs_dropped++;
        return;
    }
    s->close_logs++;
    dlg_log_info(&s->log, "conn %s (%s): closed: %s (after %.1f s%s%s)", c->client_id, c->peer,
                 reason, (double)(now - c->born_ms) / 1000.0, c->user_id ? ", user " : "",
                 c->user_id ? c->user_id : "");
}

static void on_deadline(uv_timer_t *t);

void dlg_conn_close(dlg_conn *c, const char *reason) {
    if (c->state == DLG_CONN_CLOSING)
        return;
    log_close(c, reason ? reason : "closed");
    int was_ready = c->state == DLG_CONN_READY;
    dlg_conn_goodbye(c);
    pre_unlink(c);
    if (c->refuse_full)
        c->srv->n_refusing--;
    c->state = DLG_CONN_CLOSING;
    /* Still on the dirty list: it must outlive that until the flush takes
     * it off (see unlist in flush.c), whatever runs first. (A stream's
     * session is marked, never listed: its connection is.) */
    if (c->in_dirty && !c->dirty_hold && c->parent == NULL) {
        c->dirty_hold = 1;
        c->handles_open++;
    }
    /* The sessions on its streams (or a session's stream) end first. */
    if (c->codec && c->codec->closing)
        c->codec->closing(c);
    if (c->srv->up.closing)
        c->srv->up.closing(c, reason ? reason : "closed", was_ready);
    if (c->parent != NULL) {
        /* A stream's session: its stream ended above; it has only a timer. */
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        return;
    }
    unlink_conn(c);
    /* Before the descriptor closes: a send parked on a full socket would
     * otherwise keep the socket open until the peer reads. */
    if (c->usend != NULL)
        dlg_uring_cancel(c->srv->uring, c->usend);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->st.tcp, on_handle_closed);
}

dlg_conn *dlg_conn_new_session(dlg_conn *parent) {
    dlg_server *srv = parent->srv;
    dlg_conn *c = dlg_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->lis = parent->lis;
    c->parent = parent;
    c->st.fd = -1; /* no socket of its own: the parent's carries it */
    c->born_ms = uv_now(srv->loop);
    c->id = ++srv->next_conn_id;
    snprintf(c->client_id, sizeof(c->client_id), "c%llu", (unsigned long long)c->id);
    snprintf(c->peer, sizeof(c->peer), "%s", parent->peer);
    c->dec.max_frame = srv->opts.max_frame < srv->opts.pre_auth_max_bytes
                           ? srv->opts.max_frame : srv->opts.pre_auth_max_bytes;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    c->state = DLG_CONN_HELLO;
    c->codec = &dlg_codec_h2_stream;
    uv_timer_start(&c->timer, on_deadline, srv->opts.handshake_timeout_ms, 0);
    srv->n_sessions++;
    return c;
}

void dlg_conn_doom(dlg_conn *c, const char *reason) {
    if (c->in_doomed || c->state == DLG_CONN_CLOSING)
        return;
    c->in_doomed = 1;
    c->close_reason = reason;
    c->doomed_next = c->srv->doomed;
    c->srv->doomed = c;
}


void dlg_conn_reap(dlg_server *srv) {
    while (srv->doomed) {
        dlg_conn *c = srv->doomed;
        srv->doomed = c->doomed_next;
        c->in_doomed = 0;
        if (c->close_after_flush)
            continue; /* already closing gracefully */
        if (c->close_status)
            dlg_conn_final_error(c, c->close_status, c->close_reason);
        dlg_conn_close(c, c->close_reason);
    }
}

/* Gives back what only traffic needs. Everything freed here is allocated
 * again on demand, so this only runs on a connection that had no traffic
 * for a whole sweep interval: busy ones are not made to churn malloc. */
static void release_idle(dlg_conn *c) {
    if (c->q_len == 0 && c->q != NULL) {
        /* With the queue empty every "latest" position is stale too. */
        free(c->q);
        c->q = NULL;
        c->q_cap = c->q_head = 0;
        free(c->latest);
        c->latest = NULL;
        c->n_latest = c->cap_latest = 0;
    }
    if (c->dec.body != NULL && dlg_frame_dec_pending(&c->dec) == 0)
        dlg_frame_dec_free(&c->dec); /* keeps max_frame */
    /* The TLS ciphertext buffers keep the largest size they reached (a
     * 16 KiB record stage, a 64 KiB read) until freed. */
    if (c->tls_bufs && c->state != DLG_CONN_TLS && dlg_tlsio_compact(&c->st.tls) != 0)
        c->tls_bufs = 0;
    if (c->codec && c->codec->release_idle)
        c->codec->release_idle(c);
}

void dlg_conn_sweep_one(dlg_conn *c, uint64_t now) {
    dlg_server *srv = c->srv;
    if (c->state == DLG_CONN_CLOSING || c->in_doomed)
        return;
    if (c->io_recent)
        c->io_recent = 0;
    else if (!c->close_after_flush)
        release_idle(c);
    /* In every state: a connection that is closing has its own deadline
     * (on_close_deadline). A stream's session counts here from when its
     * stream's flow-control window stopped its output (h2.c). */
    if (!c->close_after_flush && c->st.inflight_since &&
        now - c->st.inflight_since > srv->opts.write_timeout_ms) {
        srv->counters.write_timeouts++;
        dlg_log_warn(&srv->log, "conn %s (%s): write did not drain in %u ms (the %s took "
                                "nothing for that long)", c->client_id, c->peer,
                     srv->opts.write_timeout_ms,
                     c->parent ? "stream's flow-control window" : "socket");
        if (c->parent)
            c->close_status = DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED; /* the call's status */
        dlg_conn_doom(c, "write timeout");
        return;
    }
    if (c->codec && c->codec->sweep)
        c->codec->sweep(c, now);
    if (c->state != DLG_CONN_READY)
        return;
    uint64_t pending = dlg_conn_pending(c);
    if (pending <= srv->opts.soft_pending_bytes) {
        c->soft_since = 0;
    } else if (c->soft_since == 0) {
        c->soft_since = now;
    } else if (now - c->soft_since > srv->opts.soft_pending_ms) {
        srv->counters.slow_consumers++;
        dlg_log_warn(&srv->log, "conn %s (%s): slow consumer: %llu bytes pending for %u ms",
                     c->client_id, c->peer, (unsigned long long)pending,
                     srv->opts.soft_pending_ms);
        c->close_status = DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED;
        dlg_conn_doom(c, "slow consumer");
    }
}

void dlg_conn_sweep(dlg_server *srv, uint64_t now) {
    for (dlg_conn *c = srv->conns; c; c = c->next)
        dlg_conn_sweep_one(c, now);
    dlg_conn_reap(srv);
}

/* How long a graceful close may take: the write timeout, or before
 * Welcome the handshake's (a client that never said Hello gets no more
 * time than it had to say it). */
static uint32_t close_deadline_ms(const dlg_conn *c) {
    return c->state == DLG_CONN_READY ? c->srv->opts.write_timeout_ms
                                      : c->srv->opts.handshake_timeout_ms;
}

/* A connection that is closing gracefully and whose output has not
 * drained: a peer that stopped reading must not hold it open. */
static void on_close_deadline(uv_timer_t *t) {
    dlg_conn *c = t->data;
    if (c->state == DLG_CONN_CLOSING)
        return;
    c->srv->counters.write_timeouts++;
    dlg_log_warn(&c->srv->log,
                 "conn %s (%s): output did not drain within %u ms of closing (%s): %llu bytes "
                 "dropped",
                 c->client_id, c->peer, close_deadline_ms(c), c->close_reason,
                 (unsigned long long)dlg_conn_pending(c));
    dlg_conn_close(c, "close timeout");
}

void dlg_conn_close_after_flush(dlg_conn *c, const char *reason) {
    if (c->state == DLG_CONN_CLOSING || c->close_after_flush)
        return;
    /* The reason is logged (at info) when the connection is gone. */
    dlg_log_debug(&c->srv->log, "conn %s (%s): closing: %s", c->client_id, c->peer, reason);
    c->close_after_flush = 1;
    c->close_reason = reason;
    /* The timer's handshake deadline or heartbeat has no more use. */
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_close_deadline, close_deadline_ms(c), 0);
    dlg_conn_mark_dirty(c); /* flush_conn sends the queue, then close_notify */
}


static void on_deadline(uv_timer_t *t) {
    dlg_conn *c = t->data;
    if (c->state == DLG_CONN_READY || c->state == DLG_CONN_CLOSING)
        return;
    const char *quiet = c->codec && c->codec->deadline ? c->codec->deadline(c) : NULL;
    if (quiet != NULL) {
        dlg_log_debug(&c->srv->log, "conn %s (%s): %s", c->client_id, c->peer, quiet);
        dlg_conn_close(c, quiet);
        return;
    }
    dlg_log_info(&c->srv->log,
                 "conn %s (%s): refused: no Hello within %u ms (handshake timeout)",
                 c->client_id, c->peer, c->srv->opts.handshake_timeout_ms);
    c->srv->counters.hs_failed[DLG_HSF_TIMEOUT]++;
    if (c->state == DLG_CONN_HELLO) {
        say_in_ours(c);
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__DEADLINE_EXCEEDED,
                            "no Hello within %u ms", c->srv->opts.handshake_timeout_ms);
        dlg_conn_close_after_flush(c, "handshake timeout");
    } else {
        dlg_conn_close(c, "handshake timeout");
    }
}

/* One timer per connection serves the heartbeat and the token's expiry:
 * it is set for whichever comes first, so a session ends at its deadline
 * to the millisecond, not at the next heartbeat. */
static void on_tick(uv_timer_t *t);

static void arm_tick(dlg_conn *c) {
    /* A stream's session has no heartbeat of its own: HTTP/2 PINGs keep
     * its connection alive (h2.c). */
    uint64_t now = uv_now(c->srv->loop),
             at = c->srv->opts.heartbeat_ms && c->parent == NULL ? c->ping_at : 0;
    if (c->expire_at && (at == 0 || c->expire_at < at))
        at = c->expire_at;
    if (at)
        uv_timer_start(&c->timer, on_tick, at > now ? at - now : 0, 0);
}

/* The heartbeat: 0 = alive or pinged, 1 = closing. */
static int heartbeat(dlg_conn *c) {
    if (c->in_bytes != c->in_at_tick) {
        /* Anything received proves the peer is alive. */
        c->in_at_tick = c->in_bytes;
        c->missed_pongs = 0;
        return 0;
    }
    if (c->missed_pongs >= 2) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__UNAVAILABLE,
                            "no answer to 2 heartbeats (%u ms apart)", c->srv->opts.heartbeat_ms);
        dlg_conn_close_after_flush(c, "heartbeat timeout");
        return 1;
    }
    c->missed_pongs++;
    Dialogue__V1__Ping p = DIALOGUE__V1__PING__INIT;
    p.nonce = (uint64_t)c->missed_pongs;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PING;
    f.ping = &p;
    dlg_reply_frame(c, &f);
    return 0;
}

static void on_tick(uv_timer_t *t) {
    dlg_conn *c = t->data;
    if (c->state != DLG_CONN_READY || c->close_after_flush)
        return;
    uint64_t now = uv_now(c->srv->loop), hb = c->srv->opts.heartbeat_ms;
    if (c->expire_at && now >= c->expire_at) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__UNAUTHENTICATED,
                            "token expired: session ended");
        dlg_conn_close_after_flush(c, "token expired");
        return;
    }
    if (hb && now >= c->ping_at) {
        if (heartbeat(c))
            return;
        c->ping_at = now + hb;
    }
    arm_tick(c);
}

int dlg_conn_transport(const dlg_conn *c) {
    if (c->lis != NULL && c->lis->conf.admin)
        return DLG_TR_ADMIN;
    const dlg_codec *k = c->codec;
    return k == NULL ? DLG_TR_NONE
           : k == &dlg_codec_native ? DLG_TR_NATIVE
           : k == &dlg_codec_http ? (dlg_http_upgraded(c) ? DLG_TR_WEBSOCKET : DLG_TR_HTTP)
           : k == &dlg_codec_ws ? DLG_TR_WEBSOCKET
           : k == &dlg_codec_h2 ? DLG_TR_H2
           : k == &dlg_codec_h2_stream ? DLG_TR_GRPC
                                        : DLG_TR_NONE;
}

void dlg_conn_start_heartbeat(dlg_conn *c) {
    uint64_t now = uv_now(c->srv->loop);
    c->srv->counters.handshakes[dlg_conn_transport(c)]++;
    if (c->parent != NULL && !c->ready_counted) {
        c->ready_counted = 1;
        c->srv->n_sessions_ready++;
    }
    c->dec.max_frame = c->srv->opts.max_frame; /* authenticated: the full limit */
    pre_unlink(c);
    uv_timer_stop(&c->timer);
    c->in_at_tick = c->in_bytes;
    c->ping_at = now + c->srv->opts.heartbeat_ms;
    c->expire_at = 0;
    if (c->session_deadline_ms) {
        /* The deadline is wall-clock time; the timer runs on the loop's. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t left = c->session_deadline_ms - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        c->expire_at = now + (left > 0 ? (uint64_t)left : 0);
        if (c->expire_at == 0)
            c->expire_at = 1; /* 0 means none */
    }
    arm_tick(c);
}

/* Closes the oldest connection that has not finished Hello. */
static void evict_oldest(dlg_server *srv) {
    dlg_conn *o = srv->pre_head;
    srv->counters.pre_auth_evicted++;
    srv->counters.hs_failed[DLG_HSF_EVICTED]++;
    dlg_log_debug(&srv->log, "conn %s (%s): closed before Welcome to make room for a new "
                             "connection (%u waiting, pre_auth_max_connections %u)",
                  o->client_id, o->peer, srv->n_pre_auth, srv->opts.pre_auth_max_connections);
    if (o->state == DLG_CONN_HELLO) {
        say_in_ours(o);
        dlg_conn_final_error(o, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                             "too many connections waiting for Hello: this one was the oldest");
    }
    dlg_conn_close(o, "made room before Welcome");
}

/* Called with a new connection counted in n_conns but not yet admitted:
 * connections before Welcome keep within their own budget, and while some
 * are waiting, the newcomer does not find the server full (the oldest
 * waiting one goes; a client that finishes its handshake gets in, a
 * slowloris holds a slot only until someone needs it). */
static void make_room(dlg_server *srv) {
    uint32_t budget = srv->opts.pre_auth_max_connections;
    if (budget > srv->opts.max_connections)
        budget = srv->opts.max_connections;
    while (srv->pre_head != NULL && srv->n_pre_auth >= budget)
        evict_oldest(srv);
    if (srv->pre_head != NULL && srv->n_conns - srv->n_refusing > srv->opts.max_connections)
        evict_oldest(srv);
}

void dlg_conn_accept(dlg_listener *l, int fd) {
    dlg_server *srv = l->srv;
    dlg_conn *c = dlg_calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd); /* dropped: the backlog must not spin the loop */
        srv->counters.conns_refused++;
        srv->counters.hs_failed[DLG_HSF_FULL]++;
        return;
    }
    c->srv = srv;
    c->lis = l;
    c->born_ms = uv_now(srv->loop);
    c->id = ++srv->next_conn_id;
    snprintf(c->client_id, sizeof(c->client_id), "c%llu", (unsigned long long)c->id);
    /* Before Welcome no frame may exceed the pre-auth budget. */
    c->dec.max_frame = srv->opts.max_frame < srv->opts.pre_auth_max_bytes
                           ? srv->opts.max_frame : srv->opts.pre_auth_max_bytes;
    dlg_stream_init(&c->st, srv->loop, c, dlg_conn_on_written);
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    c->state = l->ssl_ctx ? DLG_CONN_TLS : DLG_CONN_HELLO;
    c->st.tls_on = l->ssl_ctx != NULL;
    /* Linked before anything can fail, so dlg_conn_close can unlink it. */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (uv_tcp_open(&c->st.tcp, fd) != 0) {
        close(fd);
        dlg_conn_close(c, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->st.tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char host[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    }
    srv->counters.conns_accepted++;
    make_room(srv);
    if (srv->n_conns - srv->n_refusing > srv->opts.max_connections) {
        srv->counters.conns_refused++;
        srv->counters.hs_failed[DLG_HSF_FULL]++;
        dlg_log_warn(&srv->log, "conn %s (%s): refused: %u connections is the limit",
                     c->client_id, c->peer, srv->opts.max_connections);
        /* A few over the limit are told why (after TLS, so the client can
         * read it); past that they are just closed. */
        if (srv->n_refusing >= 64) {
            dlg_conn_close(c, "connection limit");
            return;
        }
        c->refuse_full = 1;
        srv->n_refusing++;
    } else {
        pre_link(c);
    }
    uv_tcp_nodelay(&c->st.tcp, 1);
    if (c->st.tls_on && dlg_stream_tls_start(&c->st, l->ssl_ctx, 1, NULL, 0) != 0) {
        dlg_conn_close(c, "TLS session setup failed");
        return;
    }
    uv_timer_start(&c->timer, on_deadline, srv->opts.handshake_timeout_ms, 0);
    if (dlg_conn_start_reading(c) != 0) {
        dlg_conn_close(c, "read start failed");
        return;
    }
    if (c->refuse_full && !c->st.tls_on)
        dlg_conn_refuse_full(c);
}

const char *dlg_conn_name(const dlg_conn *c) {
    return c->user_id ? c->user_id : c->client_id;
}

int dlg_conn_has_role(const dlg_conn *c, const char *role) {
    for (size_t i = 0; i < c->n_roles; i++)
        if (strcmp(c->roles[i], role) == 0)
            return 1;
    return 0;
}

void dlg_conn_refuse_full(dlg_conn *c) {
    say_in_ours(c);
    dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                        "server full: %u connections is the limit",
                        c->srv->opts.max_connections);
    dlg_conn_close_after_flush(c, "connection limit");
}
