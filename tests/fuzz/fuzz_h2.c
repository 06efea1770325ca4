/* fuzz_h2.c: libFuzzer harness for the HTTP/2 intake (daemon/net/h2.c,
 * grpc.c, reflect.c) without sockets. Each input is what one client sends
 * after the HTTP/2 connection preface (which the harness sends first), cut
 * into pieces as reads would cut it; it is fed to the h2 codec of a fresh
 * server booted from a fixed config, with gRPC calls reaching the real
 * dispatcher, rooms and fan-out. After each piece the output is staged as
 * the write path would stage it and read by an nghttp2 client session:
 * every byte the server writes must parse as HTTP/2. At the end the
 * connection is closed and every handle and byte must be freed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "access.h"
#include "boot.h"
#include "codec.h"
#include "config.h"
#include "conn_int.h"
#include "../unit/fakeconn.h"
#include "dlg_err.h"
#include "fuzz_sets.h"
#include "fuzz_util.h"
#include "history.h"
#include "server.h"

static const char config_yaml[] =
    "log_level: error\n"
    "listen:\n"
    "  - {address: \"127.0.0.1:0\", tls: false}\n"
    "limits:\n"
    "  max_frame: 4096\n"
    "  max_streams_per_connection: 8\n"
    "auth:\n"
    "  anonymous: true\n"
    "rooms:\n"
    "  - id: dash\n"
    "    events: [metrics:update, alert:triggered]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [\"*\"]\n"
    "    trigger: [\"*\"]\n"
    "    delivery:\n"
    "      - {event: metrics:update, policy: latest}\n"
    "    history:\n"
    "      - {event: \"*\", limit: 4}\n"
    "    sync_history_on_join: 2\n"
    "  - id: open\n"
    "    events: [\"*\"]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [\"*\"]\n"
    "    trigger: [\"*\"]\n"
    "    history:\n"
    "      - {event: \"*\", limit: 3}\n";

typedef struct harness {
    uv_loop_t loop;
    dlg_config *cfg;
    dlg_schema *schema;
    uint8_t *scratch[3];
    uint8_t *out;                 /* one staged chunk */
} harness;

static harness *g_h;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    harness *h = calloc(1, sizeof(*h));
    FUZZ_CHECK(h != NULL, "out of memory");
    FUZZ_CHECK(uv_loop_init(&h->loop) == 0, "uv_loop_init failed");
    char path[256], err[512] = "";
    int fd = fuzz_tmpfile("h2-config", path, sizeof(path));
    fuzz_tmpfile_put(fd, (const uint8_t *)config_yaml, sizeof(config_yaml) - 1);
    int rc = dlg_config_load(path, &h->cfg, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "fixture config: %s", err);
    close(fd);
    unlink(path);
    h->schema = fuzz_schema_load(FUZZ_SET_DASHBOARD);
    for (int i = 0; i < 3; i++)
        FUZZ_CHECK((h->scratch[i] = malloc(DLG_SCRATCH)) != NULL, "out of memory");
    FUZZ_CHECK((h->out = malloc(DLG_TLS_RECORD_MAX)) != NULL, "out of memory");
    g_h = h;
    return 0;
}

/* A plaintext connection as dlg_conn_accept makes it, minus the socket. */
static dlg_conn *conn_new(dlg_server *s) {
    dlg_conn *c = fake_conn_new(s, DLG_CONN_HELLO, "fuzz");
    FUZZ_CHECK(c != NULL, "out of memory");
    c->codec = &dlg_codec_h2;
    return c;
}

/* The client side that reads what the server wrote. */
static ssize_t cl_send(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *u) {
    (void)s;
    (void)d;
    (void)f;
    (void)u;
    return (ssize_t)n; /* what the client would send is dropped */
}

/* The write path without a socket: the codec stages the connection's
 * output as flush.c would, and the client session parses it. */
static void flush(dlg_server *srv, dlg_conn *c, nghttp2_session *cl, int *cl_ok) {
    for (int i = 0; i < 256 && c->state != DLG_CONN_CLOSING && dlg_conn_has_output(c); i++) {
        size_t n = dlg_conn_stage(c, g_h->out, DLG_TLS_RECORD_MAX);
        if (n == 0)
            break;
        if (*cl_ok) {
            ssize_t rv = nghttp2_session_mem_recv(cl, g_h->out, n);
            /* The client may refuse what the input made it see (a GOAWAY
             * ends its session); a malformed frame is the server's fault. */
            FUZZ_CHECK(rv >= 0 || rv == NGHTTP2_ERR_CALLBACK_FAILURE,
                       "server output does not parse as HTTP/2: %s",
                       nghttp2_strerror((int)rv));
            if (rv < 0)
                *cl_ok = 0;
        }
    }
    /* As dlg_conn_flush_all: the dirty list is taken. */
    for (dlg_conn *d = srv->dirty; d; d = d->dirty_next)
        d->in_dirty = 0;
    srv->dirty = NULL;
    if (c->state != DLG_CONN_CLOSING && c->codec->flushed)
        c->codec->flushed(c);
    dlg_conn_reap(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    harness *h = g_h;
    if (size < 1)
        return 0;
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    dlg_server_opts_default(&srv.opts);
    srv.loop = &h->loop;
    srv.schema = h->schema;
    srv.rbuf = h->scratch[0];
    srv.pbuf = h->scratch[1];
    srv.wbuf = h->scratch[2];
    char err[512] = "";
    int rc = dlg_boot_apply(&srv, h->cfg, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "boot: %s", err);
    dlg_access_hooks(&srv.hooks[0]);
    srv.n_hooks = 1;
    uv_idle_init(srv.loop, &srv.kick);
    FUZZ_CHECK(dlg_history_start(srv.history) == 0, "history start failed");

    nghttp2_session_callbacks *cb;
    nghttp2_session *cl;
    FUZZ_CHECK(nghttp2_session_callbacks_new(&cb) == 0, "out of memory");
    nghttp2_session_callbacks_set_send_callback(cb, cl_send);
    FUZZ_CHECK(nghttp2_session_client_new(&cl, cb, NULL) == 0, "out of memory");
    nghttp2_session_callbacks_del(cb);
    int cl_ok = 1;

    dlg_conn *c = conn_new(&srv);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    c->codec->feed(c, (const uint8_t *)preface, sizeof(preface) - 1);
    flush(&srv, c, cl, &cl_ok);
    /* The first byte picks how reads cut the rest: 1..256 bytes each. */
    size_t piece = (size_t)data[0] + 1, pos = 1;
    while (pos < size && c->state != DLG_CONN_CLOSING && !c->close_after_flush) {
        size_t n = size - pos < piece ? size - pos : piece;
        c->in_bytes += n;
        c->codec->feed(c, data + pos, n);
        pos += n;
        flush(&srv, c, cl, &cl_ok);
    }
    flush(&srv, c, cl, &cl_ok);
    nghttp2_session_del(cl);
    if (c->state != DLG_CONN_CLOSING)
        dlg_conn_close(c, "end of fuzz input");
    uv_close((uv_handle_t *)&srv.kick, NULL);
    dlg_history_stop(srv.history);
    uv_run(srv.loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(!uv_loop_alive(srv.loop), "handles left open after the input");
    srv.schema = NULL;
    srv.rbuf = srv.pbuf = srv.wbuf = NULL;
    dlg_server_free(&srv);
    return 0;
}
