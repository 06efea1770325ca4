/* tcpproxy.c: the test proxy (see tcpproxy.h): one accepted socket and one
 * upstream socket per connection, each read handed to the other side's
 * uv_write without a copy. No backpressure: test traffic is small. */
#include "tcpproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tp_pair {
    tproxy *p;
    struct tp_pair *next;
    uv_tcp_t down;        /* the client's connection */
    uv_tcp_t up;          /* ours to the target */
    uv_connect_t creq;
    int open;             /* handles not yet closed */
    int closing;
} tp_pair;

struct tproxy {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listener_open;    /* the handle exists (not closed yet) */
    unsigned port, target;
    tp_pair *pairs;
    int accepted;
    int stopping;
    int open;             /* listener + pairs not yet released */
};

typedef struct tp_write {
    uv_write_t req;
    char *base;
} tp_write;

static void maybe_free(tproxy *p) {
    if (p->stopping && p->open == 0)
        free(p);
}

static void on_pair_handle_closed(uv_handle_t *h) {
    tp_pair *pr = h->data;
    if (--pr->open > 0)
        return;
    tproxy *p = pr->p;
    tp_pair **pp = &p->pairs;
    while (*pp != pr)
        pp = &(*pp)->next;
    *pp = pr->next;
    free(pr);
    p->open--;
    maybe_free(p);
}

static void pair_close(tp_pair *pr) {
    if (pr->closing)
        return;
    pr->closing = 1;
    /* Pending writes and a connect in flight complete with UV_ECANCELED. */
    uv_close((uv_handle_t *)&pr->down, on_pair_handle_closed);
    uv_close((uv_handle_t *)&pr->up, on_pair_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    char *b = malloc(hint);
    *buf = uv_buf_init(b, b ? (unsigned)hint : 0);
}

static void on_written(uv_write_t *req, int status) {
    tp_write *w = (tp_write *)req;
    tp_pair *pr = req->data;
    free(w->base);
    free(w);
    if (status < 0)
        pair_close(pr);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    tp_pair *pr = s->data;
    if (nread <= 0 || pr->closing) {
        free(buf->base);
        if (nread < 0)
            pair_close(pr);
        return;
    }
    uv_stream_t *other = s == (uv_stream_t *)&pr->down ? (uv_stream_t *)&pr->up
                                                         : (uv_stream_t *)&pr->down;
    tp_write *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(buf->base);
        pair_close(pr);
        return;
    }
    w->base = buf->base;
    w->req.data = pr;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    if (uv_write(&w->req, other, &b, 1, on_written) != 0) {
        free(w->base);
        free(w);
        pair_close(pr);
    }
}

static void on_up_connected(uv_connect_t *req, int status) {
    tp_pair *pr = req->data;
    if (status < 0 || pr->closing) {
        pair_close(pr);
        return;
    }
    if (uv_read_start((uv_stream_t *)&pr->down, on_alloc, on_read) != 0 ||
        uv_read_start((uv_stream_t *)&pr->up, on_alloc, on_read) != 0)
        pair_close(pr);
}

static void on_connection(uv_stream_t *l, int status) {
    tproxy *p = l->data;
    struct sockaddr_in sa;
    if (status < 0)
        return;
    tp_pair *pr = calloc(1, sizeof(*pr));
    if (pr == NULL)
        return;
    pr->p = p;
    uv_tcp_init(p->loop, &pr->down);
    uv_tcp_init(p->loop, &pr->up);
    pr->down.data = pr->up.data = pr->creq.data = pr;
    pr->open = 2;
    pr->next = p->pairs;
    p->pairs = pr;
    p->open++;
    if (uv_accept(l, (uv_stream_t *)&pr->down) != 0) {
        pair_close(pr);
        return;
    }
    p->accepted++;
    uv_tcp_nodelay(&pr->down, 1);
    uv_tcp_nodelay(&pr->up, 1);
    uv_ip4_addr("127.0.0.1", (int)p->target, &sa);
    if (uv_tcp_connect(&pr->creq, &pr->up, (const struct sockaddr *)&sa, on_up_connected) != 0)
        pair_close(pr);
}

static void on_listener_closed(uv_handle_t *h) {
    tproxy *p = h->data;
    p->listener_open = 0;
    p->open--;
    maybe_free(p);
}

static int listen_on(tproxy *p, unsigned port) {
    struct sockaddr_in sa;
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_tcp_init(p->loop, &p->listener);
    p->listener.data = p;
    p->listener_open = 1;
    p->open++;
    uv_ip4_addr("127.0.0.1", (int)port, &sa);
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->listener, 64, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&p->listener, (struct sockaddr *)&got, &len);
    if (rc != 0) {
        fprintf(stderr, "tcpproxy: listen on 127.0.0.1:%u: %s\n", port, uv_strerror(rc));
        uv_close((uv_handle_t *)&p->listener, on_listener_closed);
        return -1;
    }
    p->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    return 0;
}

int tproxy_start(uv_loop_t *loop, unsigned target_port, tproxy **out) {
    tproxy *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    p->loop = loop;
    p->target = target_port;
    if (listen_on(p, 0) != 0) {
        /* Freed by the listener's close callback. */
        p->stopping = 1;
        return -1;
    }
    *out = p;
    return 0;
}

unsigned tproxy_port(const tproxy *p) {
    return p->port;
}

int tproxy_accepted(const tproxy *p) {
    return p->accepted;
}

void tproxy_cut(tproxy *p) {
    if (p->listener_open && !uv_is_closing((uv_handle_t *)&p->listener))
        uv_close((uv_handle_t *)&p->listener, on_listener_closed);
    for (tp_pair *pr = p->pairs; pr != NULL; pr = pr->next)
        pair_close(pr);
}

int tproxy_resume(tproxy *p) {
    if (p->listener_open)
        return -1;
    return listen_on(p, p->port);
}

void tproxy_stop(tproxy *p) {
    p->stopping = 1;
    tproxy_cut(p);
    maybe_free(p);
}
