/* peer_mqtt.c: a bench peer on mosquitto through libmosquitto (MQTT 3.1.1,
 * QoS 0), driven from the worker's libuv loop: a uv_poll on
 * mosquitto_socket() calls mosquitto_loop_read / mosquitto_loop_write, and
 * libmosquitto's callbacks run inside those calls on the loop thread.
 * Subscribers subscribe to the measured and the warm-up topic; a QoS 0
 * publish has no reply, so it counts as acknowledged once handed to the
 * library (which writes it at once when the socket takes it).
 *
 * mosquitto_loop_read handles one packet per call (more only with QoS > 0
 * messages queued); called once per readable event, a subscriber would
 * take one message per loop turn. It is called until the socket is empty,
 * as the NATS and Redis clients read whole buffers. The keep-alive is the
 * protocol's longest (about 18 hours), so no timer has to call
 * mosquitto_loop_misc during a run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "dlg_err.h"
#include "target.h"

/* Packets taken per readable event at most, so one busy connection cannot
 * hold the loop. */
#define READS_PER_EVENT 4096

typedef struct mpeer {
    bench_xbase b;            /* first: bench_xbase_closed finds the peer */
    struct mosquitto *m;
    uv_poll_t poll;
    int poll_open;
    int events;
    int sub_mid;              /* the SUBSCRIBE awaiting its SUBACK */
} mpeer;

static void release(bench_xbase *b) {
    free(b);
}

static void close_poll(mpeer *p) {
    if (!p->poll_open)
        return;
    p->poll_open = 0;
    uv_close((uv_handle_t *)&p->poll, bench_xbase_closed);
}

static void mqtt_fail(mpeer *p, const char *what, int rc) {
    char why[300];
    snprintf(why, sizeof(why), "%s: %s", what,
             rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    close_poll(p);
    bench_xbase_fail(&p->b, why);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches for writability only while libmosquitto has output queued. */
static void update_poll(mpeer *p) {
    if (!p->poll_open)
        return;
    int want = UV_READABLE | (mosquitto_want_write(p->m) ? UV_WRITABLE : 0);
    if (want != p->events) {
        p->events = want;
        uv_poll_start(&p->poll, want, on_poll);
    }
}

static void on_poll(uv_poll_t *h, int status, int events) {
    mpeer *p = h->data;
    int rc;
    if (status < 0 || (events & UV_READABLE)) {
        for (int i = 0; i < READS_PER_EVENT && p->poll_open; i++) {
            errno = 0;
            rc = mosquitto_loop_read(p->m, 1);
            if (rc != MOSQ_ERR_SUCCESS) {
                mqtt_fail(p, "read", rc);
                return;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
        }
    }
    if (p->poll_open && (events & UV_WRITABLE)) {
        rc = mosquitto_loop_write(p->m, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            mqtt_fail(p, "write", rc);
            return;
        }
    }
    update_poll(p);
}

/* ---- libmosquitto callbacks (inside loop_read/loop_write) ----------------- */

static void on_connect(struct mosquitto *m, void *ud, int rc) {
    mpeer *p = ud;
    char why[200];
    if (rc != 0) {
        snprintf(why, sizeof(why), "CONNECT refused: %s", mosquitto_connack_string(rc));
        close_poll(p);
        bench_xbase_fail(&p->b, why);
        return;
    }
    if (p->b.role != BENCH_ROLE_SUB) {
        bench_xbase_ready(&p->b);
        return;
    }
    char *const topics[2] = {p->b.sub_subject[0], p->b.sub_subject[1]};
    int src = mosquitto_subscribe_multiple(m, &p->sub_mid, 2, topics, 0, 0, NULL);
    if (src != MOSQ_ERR_SUCCESS)
        mqtt_fail(p, "subscribe", src);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted) {
    mpeer *p = ud;
    (void)m;
    if (mid != p->sub_mid)
        return;
    for (int i = 0; i < n; i++) {
        if (granted[i] > 2) { /* 0x80: the broker refused that topic */
            close_poll(p);
            bench_xbase_fail(&p->b, "subscription refused");
            return;
        }
    }
    bench_xbase_ready(&p->b);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg) {
    mpeer *p = ud;
    (void)m;
    bench_xbase_deliver(&p->b, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc) {
    mpeer *p = ud;
    (void)m;
    if (p->b.freeing)
        return;
    mqtt_fail(p, "disconnected", rc ? rc : MOSQ_ERR_CONN_LOST);
}

/* ---- the peer ------------------------------------------------------------------ */

static uv_once_t lib_once = UV_ONCE_INIT;
static int lib_ok;
/* libmosquitto sets up its TLS globals on the first TLS connect without a
 * lock (net__init_tls in 2.0.11): two worker threads connecting at once
 * both create them and one copy leaks. Connects take turns; they are setup,
 * not measured. */
static uv_mutex_t connect_mu;

static void close_lib(void) {
    mosquitto_lib_cleanup();
}

static void open_lib(void) {
    if (uv_mutex_init(&connect_mu) == 0 && mosquitto_lib_init() == MOSQ_ERR_SUCCESS) {
        lib_ok = 1;
        atexit(close_lib);
    }
}

static int new_peer(uv_loop_t *loop, const bench_conn_opts *o, int role,
                    const bench_peer_cbs *cbs, void *ud, void **out, char *err,
                    size_t errlen) {
    uv_once(&lib_once, open_lib);
    if (!lib_ok) {
        snprintf(err, errlen, "libmosquitto did not initialise");
        return DLG_EINTERNAL;
    }
    mpeer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory for an MQTT peer");
        return DLG_ENOMEM;
    }
    /* MQTT topic levels are separated by '/'. */
    int rc = bench_xbase_init(&p->b, loop, o, role, cbs, ud, "mqtt", "/", release, err, errlen);
    if (rc != 0) {
        free(p);
        return rc;
    }
    /* A clean session with a random client id: nothing survives a run. */
    p->m = mosquitto_new(NULL, true, p);
    if (p->m == NULL) {
        snprintf(err, errlen, "mosquitto_new: %s", strerror(errno));
        bench_xbase_free(&p->b); /* release frees p once the timers close */
        return DLG_ENOMEM;
    }
    mosquitto_connect_callback_set(p->m, on_connect);
    mosquitto_subscribe_callback_set(p->m, on_subscribe);
    mosquitto_message_callback_set(p->m, on_message);
    mosquitto_disconnect_callback_set(p->m, on_disconnect);
    /* As every other client here: no Nagle delay (a TLS handshake stalls
     * about 40 ms on delayed ACKs without it). */
    mosquitto_int_option(p->m, MOSQ_OPT_TCP_NODELAY, 1);
    if (!o->plaintext) {
        rc = o->ca ? mosquitto_tls_set(p->m, o->ca, NULL, NULL, NULL, NULL)
                   : mosquitto_int_option(p->m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            snprintf(err, errlen, "mqtt TLS setup with CA %s: %s", o->ca ? o->ca : "(system)",
                     mosquitto_strerror(rc));
            mosquitto_destroy(p->m);
            bench_xbase_free(&p->b);
            return DLG_ETLS;
        }
    }
    *out = p;
    return 0;
}

static int start(void *vp) {
    mpeer *p = vp;
    if (p->b.state != XS_IDLE)
        return DLG_ESTATE;
    bench_xbase_connecting(&p->b);
    /* The TCP connect blocks this loop (setup is not measured); libmosquitto
     * leaves the socket non-blocking, the TLS handshake and CONNACK follow
     * through the poll. */
    uv_mutex_lock(&connect_mu);
    int rc = mosquitto_connect(p->m, p->b.o->host, (int)p->b.o->port, 65535);
    uv_mutex_unlock(&connect_mu);
    if (rc != MOSQ_ERR_SUCCESS) {
        mqtt_fail(p, "connect", rc);
        return 0;
    }
    if (uv_poll_init_socket(p->b.loop, &p->poll, mosquitto_socket(p->m)) != 0) {
        bench_xbase_fail(&p->b, "cannot poll the socket");
        return 0;
    }
    p->poll.data = &p->b;
    p->poll_open = 1;
    p->b.handles++;
    p->events = 0;
    update_poll(p);
    return 0;
}

static int trigger(void *vp, const char *event, const void *data, size_t len) {
    mpeer *p = vp;
    if (p->b.state != XS_READY)
        return DLG_ESTATE;
    const char *topic = bench_xbase_pub_subject(&p->b, event);
    if (topic == NULL)
        return DLG_EINVAL;
    int rc = mosquitto_publish(p->m, NULL, topic, (int)len, data, 0, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        mqtt_fail(p, "publish", rc);
        return DLG_ECLOSED;
    }
    update_poll(p); /* what the socket did not take goes when it is writable */
    bench_xbase_ack_later(&p->b);
    return 0;
}

static void free_peer(void *vp) {
    mpeer *p = vp;
    if (p == NULL)
        return;
    p->b.freeing = 1;
    /* The poll first: mosquitto_destroy closes the descriptor. */
    close_poll(p);
    mosquitto_destroy(p->m);
    p->m = NULL;
    bench_xbase_free(&p->b);
}

const bench_target_ops bench_mqtt_ops = {
    .name = "mqtt",
    .no_tls = NULL,
    .new_peer = new_peer,
    .start = start,
    .trigger = trigger,
    .free_peer = free_peer,
};
