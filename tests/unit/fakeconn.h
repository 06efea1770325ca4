/* fakeconn.h: a connection as dlg_conn_accept makes it, minus the accepted
 * socket (the TCP handle is initialised, never connected; nothing is
 * written), linked into s's list. For unit tests and fuzz harnesses that
 * drive the layers above the socket; header-only, so each links what it
 * already links. */
#ifndef DLG_TEST_FAKECONN_H
#define DLG_TEST_FAKECONN_H

#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "conn.h"

/* A new connection in state on s (peer "PREFIX:ID"), owned by s's list:
 * dlg_conn_close and the loop free it. NULL when out of memory. */
static inline dlg_conn *fake_conn_new(dlg_server *s, int state, const char *prefix) {
    dlg_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->srv = s;
    c->id = ++s->next_conn_id;
    snprintf(c->client_id, sizeof(c->client_id), "c%llu", (unsigned long long)c->id);
    snprintf(c->peer, sizeof(c->peer), "%s:%llu", prefix, (unsigned long long)c->id);
    c->dec.max_frame = s->opts.max_frame;
    uv_tcp_init(s->loop, &c->st.tcp);
    uv_timer_init(s->loop, &c->timer);
    c->st.tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->state = state;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    return c;
}

#endif
