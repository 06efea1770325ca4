/* fuzz_dispatch.c: libFuzzer harness for the per-state frame dispatcher
 * (daemon/dispatch.c) without sockets. Each input is the plaintext byte
 * stream of one client: it is framed by the real decoder and dispatched on a
 * fresh server booted from a fixed config, next to a second client that is a
 * member of every room. Replies are taken straight off the output queues
 * (nothing is flushed to a socket) and checked: every server frame parses, a
 * frame before Hello or a second Hello closes the connection, and a request
 * with a request_id gets exactly one reply. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "access.h"
#include "boot.h"
#include "config.h"
#include "conn.h"
#include "../unit/fakeconn.h"
#include "dispatch.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "fuzz_sets.h"
#include "fuzz_util.h"
#include "history.h"
#include "jwt.h"
#include "room.h"
#include "server.h"

/* Rooms for every access path: typed with per-event trigger roles, a
 * "latest" event and history synced on join; untyped, nearly full, with
 * history; joinable only by role. No schemas key: the harness hands the
 * server the embedded dashboard set. The store is memory (no SQLite file). */
static const char config_yaml[] =
    "log_level: error\n"
    "listen:\n"
    "  - {address: \"127.0.0.1:0\", tls: false}\n"
    "limits:\n"
    "  max_frame: 4096\n"
    "  max_rooms_per_connection: 4\n"
    "auth:\n"
    "  anonymous: true\n"
    "room_admin:\n"
    "  create: [\"*\"]\n"
    "  delete: [admin]\n"
    "rooms:\n"
    "  - id: dash\n"
    "    events: [metrics:update, alert:triggered]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [\"*\"]\n"
    "    trigger: [admin]\n"
    "    trigger_events:\n"
    "      - {event: metrics:update, roles: [\"*\"]}\n"
    "    delivery:\n"
    "      - {event: metrics:update, policy: latest}\n"
    "    history:\n"
    "      - {event: \"*\", limit: 4}\n"
    "      - {event: alert:triggered, limit: 2, max_age_seconds: 60}\n"
    "    sync_history_on_join: 2\n"
    "  - id: open\n"
    "    events: [\"*\"]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    max_size: 2\n"
    "    join: [\"*\"]\n"
    "    trigger: [\"*\"]\n"
    "    history:\n"
    "      - {event: \"*\", limit: 3}\n"
    "  - id: closed\n"
    "    events: [alert:triggered]\n"
    "    join: [admin]\n"
    "auto_join:\n"
    "  - {role: admin, rooms: [closed]}\n";

/* Test-only HS256 secret; the seed corpus holds tokens signed with it. */
static const char hs_secret[] = "dialogue-fuzz-\x01hs256\xfe-secret-001";

typedef struct harness {
    uv_loop_t loop;
    dlg_config *cfg;
    dlg_schema *schema;
    dlg_jwt_verifier *jwt;
    uint8_t *scratch[3];          /* lent to each server as rbuf, pbuf, wbuf */
} harness;

/* libFuzzer's entry points carry no context pointer, so what is built once
 * in LLVMFuzzerInitialize lives here; each input gets its own server. */
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
    int fd = fuzz_tmpfile("dispatch-config", path, sizeof(path));
    fuzz_tmpfile_put(fd, (const uint8_t *)config_yaml, sizeof(config_yaml) - 1);
    int rc = dlg_config_load(path, &h->cfg, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "fixture config: %s", err);
    close(fd);
    unlink(path);
    h->schema = fuzz_schema_load(FUZZ_SET_DASHBOARD);
    FUZZ_CHECK(dlg_jwt_verifier_new(&h->jwt) == 0, "out of memory");
    rc = dlg_jwt_add_hmac_key(h->jwt, NULL, (const uint8_t *)hs_secret, strlen(hs_secret));
    FUZZ_CHECK(rc == 0, "HS256 key: %s", dlg_strerror(rc));
    for (int i = 0; i < 3; i++)
        FUZZ_CHECK((h->scratch[i] = malloc(DLG_SCRATCH)) != NULL, "out of memory");
    g_h = h;
    return 0;
}

static dlg_conn *conn_new(dlg_server *s, int state) {
    dlg_conn *c = fake_conn_new(s, state, "fuzz");
    FUZZ_CHECK(c != NULL, "out of memory");
    return c;
}

/* What a client frame asked for, read before dispatch to judge the reply. */
typedef struct expect {
    uint64_t rid;
    int msg_case;      /* -1: the body is not a ClientFrame */
    int was_ready;
} expect;

/* Counts what drain saw for one dispatched frame. */
typedef struct seen {
    size_t replies;    /* frames echoing the request id (not events, nor the
                          history a Join or Hello brings along) */
    int error_code;    /* code of the last Error reply, -1 = none */
} seen;

/* Takes every queued frame off c's queue (as a flush would), checking that
 * each is a well-formed ServerFrame. */
static void drain(dlg_conn *c, const expect *ex, seen *sn) {
    while (c->q_len > 0) {
        dlg_outq_item *it = &c->q[c->q_head];
        dlg_buf *b = it->buf;
        FUZZ_CHECK(b->len >= DLG_FRAME_HDR && b->data[0] == 0, "%s: bad frame header",
                   c->client_id);
        uint32_t n = ((uint32_t)b->data[1] << 24) | ((uint32_t)b->data[2] << 16) |
                     ((uint32_t)b->data[3] << 8) | b->data[4];
        FUZZ_CHECK(n == b->len - DLG_FRAME_HDR, "%s: header says %u, body is %zu",
                   c->client_id, n, b->len - DLG_FRAME_HDR);
        Dialogue__V1__ServerFrame *f =
            dialogue__v1__server_frame__unpack(NULL, n, b->data + DLG_FRAME_HDR);
        FUZZ_CHECK(f != NULL, "%s: queued a frame that is not a ServerFrame", c->client_id);
        /* A Join (or Hello, for auto-joined rooms) may be followed by
         * HistoryBatch frames echoing its id; for History that is the reply. */
        int is_reply = f->msg_case != DIALOGUE__V1__SERVER_FRAME__MSG_EVENT &&
                       (f->msg_case != DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH ||
                        (ex && ex->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HISTORY));
        if (ex && sn && ex->rid != 0 && f->request_id == ex->rid && is_reply) {
            sn->replies++;
            if (f->msg_case == DIALOGUE__V1__SERVER_FRAME__MSG_ERROR)
                sn->error_code = (int)f->error->code;
        }
        dialogue__v1__server_frame__free_unpacked(f, NULL);
        c->q_bytes -= b->len - it->off;
        dlg_buf_unref(b);
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_len--;
        c->q_popped++;
    }
}

typedef struct session {
    dlg_server *srv;
    dlg_conn *client;
    dlg_conn *observer;
} session;

static int gone(const dlg_conn *c) {
    return c->state == DLG_CONN_CLOSING || c->close_after_flush || c->in_doomed;
}

/* The decoder callback: conn.c's on_frame, plus the checks. */
static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    session *s = ctx;
    dlg_conn *c = s->client;
    if (gone(c))
        return 1;
    expect ex = {.msg_case = -1, .was_ready = c->state == DLG_CONN_READY};
    Dialogue__V1__ClientFrame *cf = dialogue__v1__client_frame__unpack(NULL, len, body);
    if (cf) {
        ex.rid = cf->request_id;
        ex.msg_case = (int)cf->msg_case;
        dialogue__v1__client_frame__free_unpacked(cf, NULL);
    }
    int stop = dlg_dispatch_frame(c, body, len);
    seen sn = {.error_code = -1};
    drain(c, &ex, &sn);
    drain(s->observer, NULL, NULL);
    dlg_conn_reap(s->srv);

    const int hello = DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO;
    if (ex.msg_case < 0)
        FUZZ_CHECK(stop && c->close_after_flush, "malformed frame did not close the connection");
    else if (!ex.was_ready && ex.msg_case != hello)
        FUZZ_CHECK(stop && c->close_after_flush && c->state != DLG_CONN_READY,
                   "frame %d before Hello did not close the connection", ex.msg_case);
    else if (ex.was_ready && ex.msg_case == hello)
        FUZZ_CHECK(stop && c->close_after_flush, "second Hello did not close the connection");
    if (ex.msg_case >= 0 && ex.rid != 0 && ex.msg_case != DIALOGUE__V1__CLIENT_FRAME__MSG_PONG &&
        !c->in_doomed)
        FUZZ_CHECK(sn.replies == 1, "request %llu (frame %d) got %zu replies",
                   (unsigned long long)ex.rid, ex.msg_case, sn.replies);
    if (!ex.was_ready && ex.msg_case != hello && ex.msg_case >= 0 && ex.rid != 0)
        FUZZ_CHECK(sn.error_code == DIALOGUE__V1__STATUS__FAILED_PRECONDITION,
                   "frame %d before Hello answered with code %d", ex.msg_case, sn.error_code);
    return stop;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    harness *h = g_h;
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    dlg_server_opts_default(&srv.opts);
    srv.loop = &h->loop;
    /* Borrowed, as jwt below: cleared before dlg_server_free. */
    srv.schema = h->schema;
    srv.rbuf = h->scratch[0];
    srv.pbuf = h->scratch[1];
    srv.wbuf = h->scratch[2];
    char err[512] = "";
    int rc = dlg_boot_apply(&srv, h->cfg, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "boot: %s", err);
    srv.jwt = h->jwt;
    /* What dlg_server_start does besides TLS, the listener and signals. */
    dlg_access_hooks(&srv.hooks[0]);
    srv.n_hooks = 1;
    uv_idle_init(srv.loop, &srv.kick);
    FUZZ_CHECK(dlg_history_start(srv.history) == 0, "history start failed");

    session s = {.srv = &srv};
    s.observer = conn_new(&srv, DLG_CONN_READY);
    for (size_t i = 0; i < srv.rooms->n; i++)
        dlg_room_join(srv.rooms->v[i], s.observer, NULL);
    s.client = conn_new(&srv, DLG_CONN_HELLO);

    dlg_frame_dec dec;
    memset(&dec, 0, sizeof(dec));
    dec.max_frame = srv.opts.max_frame;
    dlg_frame_dec_feed(&dec, data, size, on_frame, &s, NULL);
    dlg_frame_dec_free(&dec);

    drain(s.client, NULL, NULL);
    drain(s.observer, NULL, NULL);
    /* Nothing is flushed here: the dirty list is dropped as a flush would
     * empty it (a connection closed while listed waits for that). */
    srv.dirty = NULL;
    s.client->in_dirty = s.observer->in_dirty = 0;
    if (s.client->state != DLG_CONN_CLOSING)
        dlg_conn_close(s.client, "end of fuzz input");
    if (s.observer->state != DLG_CONN_CLOSING)
        dlg_conn_close(s.observer, "end of fuzz input");
    /* Closed while listed: the list's count, given back (see unlist). */
    dlg_conn *both[2] = {s.client, s.observer};
    for (int i = 0; i < 2; i++)
        if (both[i]->dirty_hold) {
            both[i]->dirty_hold = 0;
            both[i]->handles_open--;
        }
    uv_close((uv_handle_t *)&srv.kick, NULL);
    dlg_history_stop(srv.history);
    /* Runs the close callbacks, which free the connections. */
    uv_run(srv.loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(!uv_loop_alive(srv.loop), "handles left open after the input");
    srv.schema = NULL;
    srv.jwt = NULL;
    srv.rbuf = srv.pbuf = srv.wbuf = NULL;
    dlg_server_free(&srv);
    return 0;
}
