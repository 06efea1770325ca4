/* test_client_proto.c: the client library against a scripted fake server
 * (tests/integration/client/fakesrv.c) on the same loop: Hello contents and
 * ALPN, refused Hello, oversized and undecodable frames, wrong reply types,
 * request timeouts and late replies, heartbeats and the silence watchdog,
 * write coalescing, event and Left pushes, restore after reconnect
 * (including a refused rejoin), offline queue, max_pending, the server's
 * max_frame, connect timeout. No daemon involved. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "dialogue/client.h"
#include "dlg_frame.h"
#include "fakesrv.h"
#include "harness.h"

/* ---- the per-test world: one loop, one fake server, one client --------- */

typedef struct script script;
typedef void (*script_fn)(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f);

struct script {
    script_fn fn;
    int conn_no;             /* Hellos seen: 1 on the first connection */
    int n_pings;
    uint64_t first_ping;
    char hello_name[64], hello_token[64];
    uint32_t hello_version;
    uint64_t hello_id;
    int n_triggers, n_joins;
    char log[1024];          /* "J:r1 S:r1:e2 U:r2:e3 ..." */
    void *extra;
};

typedef struct world {
    dlgt_daemon certs;       /* only the certificate folder is used */
    uv_loop_t loop;
    fsrv *srv;
    dlg_client *c;
    script sc;
    char ca[400];
    int connected, disconnected, closed_cb;
    char reason[512];
    char states[64];
} world;

static void on_frame(fsrv_conn *sc, const Dialogue__V1__ClientFrame *f, void *ud) {
    script *s = ud;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        s->conn_no++;
        s->hello_version = f->hello->protocol_version;
        s->hello_id = f->request_id;
        snprintf(s->hello_name, sizeof(s->hello_name), "%s", f->hello->client_name);
        snprintf(s->hello_token, sizeof(s->hello_token), "%s", f->hello->token);
    }
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_PING)
        s->n_pings++;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_TRIGGER)
        s->n_triggers++;
    size_t n = strlen(s->log);
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN) {
        s->n_joins++;
        snprintf(s->log + n, sizeof(s->log) - n, "J:%s ", f->join->room);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_SUBSCRIBE ||
               f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_UNSUBSCRIBE) {
        int sub = f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_SUBSCRIBE;
        const char *room = sub ? f->subscribe->room : f->unsubscribe->room;
        size_t ne = sub ? f->subscribe->n_events : f->unsubscribe->n_events;
        char **ev = sub ? f->subscribe->events : f->unsubscribe->events;
        int all = sub ? f->subscribe->all : f->unsubscribe->all;
        n += (size_t)snprintf(s->log + n, sizeof(s->log) - n, "%c:%s", sub ? 'S' : 'U', room);
        if (all)
            n += (size_t)snprintf(s->log + n, sizeof(s->log) - n, ":*");
        for (size_t i = 0; i < ne; i++)
            n += (size_t)snprintf(s->log + n, sizeof(s->log) - n, ":%s", ev[i]);
        snprintf(s->log + n, sizeof(s->log) - n, " ");
    }
    s->fn(s, sc, f);
}

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    world *w = ud;
    (void)c;
    size_t n = strlen(w->states);
    if (n + 1 < sizeof(w->states)) {
        w->states[n] = "icCdX"[st];
        w->states[n + 1] = 0;
    }
    if (st == DLG_STATE_CONNECTED)
        w->connected++;
    if (st == DLG_STATE_DISCONNECTED) {
        w->disconnected++;
        snprintf(w->reason, sizeof(w->reason), "%s", reason);
    }
}

static void base_opts(world *w, dlg_client_opts **op) {
    assert_int_equal(dlg_client_opts_new(op), 0);
    dlg_client_opts *o = *op;
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, fsrv_port(w->srv));
    dlg_client_opts_set_ca_file(o, w->ca);
    dlg_client_opts_set_reconnect(o, 0);
    dlg_client_opts_set_backoff_min_ms(o, 1);
    dlg_client_opts_set_backoff_max_ms(o, 5);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);
}

/* Starts the loop and the fake server with fn; the client is made by the
 * test (opts differ), through make_client. */
static void world_open(world *w, script_fn fn, int no_tls) {
    memset(w, 0, sizeof(*w));
    assert_int_equal(dlgt_setup(&w->certs, NULL), 0);
    snprintf(w->ca, sizeof(w->ca), "%s/ca.crt", w->certs.certs);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->sc.fn = fn;
    assert_int_equal(fsrv_start(&w->loop, w->certs.certs, on_frame, &w->sc, no_tls, &w->srv), 0);
}

static void make_client(world *w, const dlg_client_opts *o) {
    assert_int_equal(dlg_client_new(&w->loop, o, &w->c), 0);
    assert_int_equal(dlg_client_on_state(w->c, on_state, w), 0);
}

static void on_closed(dlg_client *c, void *ud) {
    (void)c;
    ((world *)ud)->closed_cb = 1;
}

static void world_close(world *w) {
    if (w->c != NULL) {
        assert_int_equal(dlg_client_close(w->c, on_closed, w), 0);
        assert_int_equal(dlgt_run_until(&w->loop, &w->closed_cb, 5000), 0);
        dlg_client_free(w->c);
    }
    fsrv_stop(w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    dlgt_teardown(&w->certs);
}

static void run_for(world *w, unsigned ms) {
    int never = 0;
    (void)dlgt_run_until(&w->loop, &never, ms);
}

/* ---- replies ------------------------------------------------------------- */

static void reply_pong(fsrv_conn *sc, uint64_t rid) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Pong p = DIALOGUE__V1__PONG__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PONG;
    f.pong = &p;
    fsrv_send(sc, rid, &f);
}

static void reply_ack(fsrv_conn *sc, uint64_t rid, uint64_t seq) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Ack a = DIALOGUE__V1__ACK__INIT;
    a.seq = seq;
    a.recipients = 1;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ACK;
    f.ack = &a;
    fsrv_send(sc, rid, &f);
}

static void reply_joined(fsrv_conn *sc, uint64_t rid, const char *room, char **subs, size_t n) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Joined j = DIALOGUE__V1__JOINED__INIT;
    j.room = (char *)room;
    j.subscriptions = subs;
    j.n_subscriptions = n;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_JOINED;
    f.joined = &j;
    fsrv_send(sc, rid, &f);
}

/* Welcome, Pong for pings, Ack for triggers. */
static void s_plain(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    (void)s;
    switch (f->msg_case) {
    case DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO:
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_PING:
        reply_pong(sc, f->request_id);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_TRIGGER:
        reply_ack(sc, f->request_id, (uint64_t)s->n_triggers);
        break;
    default:
        break;
    }
}

typedef struct rec {
    int done, status;
    char msg[512];
} rec;

static void on_reply(dlg_client *c, void *ud, int status, const char *message,
                     const void *reply) {
    rec *r = ud;
    (void)c;
    (void)reply;
    r->done++;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", message);
}

static void connect_ok(world *w) {
    assert_int_equal(dlg_client_connect(w->c), 0);
    if (dlgt_run_until(&w->loop, &w->connected, 5000) != 0)
        fail_msg("not connected: %s (%s)", w->reason, w->states);
}

/* ---- tests ----------------------------------------------------------------- */

static void hello_alpn_tls(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_plain, 0);
    base_opts(&w, &o);
    dlg_client_opts_set_client_name(o, "unit");
    dlg_client_opts_set_token(o, "tok.en.x");
    make_client(&w, o);
    connect_ok(&w);
    fsrv_stats *st = fsrv_stats_of(w.srv);
    assert_string_equal(st->alpn, "dialogue/1");
    assert_true(st->tls_version >= TLS1_2_VERSION);
    assert_int_equal(w.sc.hello_version, 1);
    assert_int_equal(w.sc.hello_id, 1);
    assert_string_equal(w.sc.hello_name, "unit");
    assert_string_equal(w.sc.hello_token, "tok.en.x");
    /* Request ids go on from the Hello's. */
    rec r = {0};
    assert_int_equal(dlg_client_ping(w.c, on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r.done, 5000), 0);
    assert_int_equal(r.status, 0);
    world_close(&w);
    assert_string_equal(w.states, "cCX");
    dlg_client_opts_free(o);
}

static void s_refuse(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    int code = s->extra ? *(int *)s->extra : 16;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_error(sc, f->request_id, code, "bad token");
        fsrv_close(sc);
    }
}

static void hello_refused_stops_retrying(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    int code = 16; /* UNAUTHENTICATED */
    world_open(&w, s_refuse, 0);
    w.sc.extra = &code;
    base_opts(&w, &o);
    dlg_client_opts_set_reconnect(o, 1);
    make_client(&w, o);
    assert_int_equal(dlg_client_connect(w.c), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &w.disconnected, 5000), 0);
    assert_string_equal(w.reason, "server refused Hello: UNAUTHENTICATED: bad token");
    /* Backoff is 1..5 ms: a retry would have happened by now. */
    run_for(&w, 200);
    assert_int_equal(fsrv_stats_of(w.srv)->accepted, 1);
    assert_int_equal(dlg_client_state(w.c), DLG_STATE_DISCONNECTED);
    world_close(&w);
    dlg_client_opts_free(o);
}

static void hello_unavailable_retries(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    int code = 14; /* UNAVAILABLE: worth another try */
    world_open(&w, s_refuse, 0);
    w.sc.extra = &code;
    base_opts(&w, &o);
    dlg_client_opts_set_reconnect(o, 1);
    make_client(&w, o);
    assert_int_equal(dlg_client_connect(w.c), 0);
    for (int i = 0; i < 500 && w.disconnected < 3; i++)
        run_for(&w, 10);
    assert_true(w.disconnected >= 3);
    assert_true(fsrv_stats_of(w.srv)->accepted >= 3);
    world_close(&w);
    dlg_client_opts_free(o);
}

/* On a ping, answers with what extra says: 0 = a frame header above the
 * client's limit, 1 = an Ack (wrong type), 2 = garbage, 3 = nothing. */
static void s_misbehave(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    int mode = *(int *)s->extra;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        return;
    }
    if (f->msg_case != DIALOGUE__V1__CLIENT_FRAME__MSG_PING)
        return;
    if (mode == 0) {
        uint8_t hdr[5] = {0, 0, 0, 0x04, 0x01}; /* 1025 bytes announced */
        fsrv_send_raw(sc, hdr, sizeof(hdr));
    } else if (mode == 1) {
        reply_ack(sc, f->request_id, 1);
    } else if (mode == 2) {
        uint8_t bad[] = {0, 0, 0, 0, 3, 0xff, 0xff, 0xff};
        fsrv_send_raw(sc, bad, sizeof(bad));
    } else if (mode == 4) {
        uint8_t flagged[] = {1, 0, 0, 0, 0};
        fsrv_send_raw(sc, flagged, sizeof(flagged));
    }
}

static void misbehave(int mode, const char *want_reason, int want_status) {
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_misbehave, 0);
    w.sc.extra = &mode;
    base_opts(&w, &o);
    dlg_client_opts_set_max_frame(o, 1024);
    make_client(&w, o);
    connect_ok(&w);
    rec r = {0};
    assert_int_equal(dlg_client_ping(w.c, on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r.done, 5000), 0);
    assert_int_equal(r.status, want_status);
    assert_int_equal(dlgt_run_until(&w.loop, &w.disconnected, 5000), 0);
    if (strstr(w.reason, want_reason) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", w.reason, want_reason);
    assert_int_equal(r.done, 1);
    world_close(&w);
    dlg_client_opts_free(o);
}

static void oversized_frame_closes(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    misbehave(0, "server sent a frame of 1025 bytes, above max_frame 1024", DLG_ECLOSED);
}

static void wrong_reply_type_closes(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    misbehave(1, "protocol error: server answered ping", DLG_EPROTO);
}

static void undecodable_frame_closes(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    misbehave(2, "does not decode", DLG_ECLOSED);
}

static void compressed_flag_closes(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    misbehave(4, "flag 1", DLG_ECLOSED);
}

/* First ping unanswered; on the second, a late Pong for the first, then
 * the real one. */
static void s_late(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_PING) {
        if (s->n_pings == 1) {
            s->first_ping = f->request_id;
            return;
        }
        reply_pong(sc, s->first_ping);
        reply_pong(sc, f->request_id);
    }
}

static void request_timeout_and_late_reply(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_late, 0);
    base_opts(&w, &o);
    dlg_client_opts_set_request_timeout_ms(o, 100);
    make_client(&w, o);
    connect_ok(&w);
    rec r1 = {0}, r2 = {0};
    assert_int_equal(dlg_client_ping(w.c, on_reply, &r1), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r1.done, 5000), 0);
    assert_int_equal(r1.status, DLG_ETIMEDOUT);
    assert_non_null(strstr(r1.msg, "ping"));
    assert_non_null(strstr(r1.msg, "no reply within 100 ms"));
    assert_int_equal(dlg_client_state(w.c), DLG_STATE_CONNECTED);
    assert_int_equal(dlg_client_ping(w.c, on_reply, &r2), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r2.done, 5000), 0);
    assert_int_equal(r2.status, 0);
    /* The late Pong went nowhere: still one completion for the first. */
    assert_int_equal(r1.done, 1);
    assert_int_equal(w.disconnected, 0);
    world_close(&w);
    dlg_client_opts_free(o);
}

static void s_heartbeat(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    int hb = *(int *)s->extra;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, (uint32_t)hb, 0, NULL, 0);
        if (hb > 1000) {
            Dialogue__V1__ServerFrame p = DIALOGUE__V1__SERVER_FRAME__INIT;
            Dialogue__V1__Ping ping = DIALOGUE__V1__PING__INIT;
            ping.nonce = 77;
            p.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PING;
            p.ping = &ping;
            fsrv_send(sc, 0, &p);
        }
    }
}

static void server_ping_answered(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    int hb = 30000;
    world_open(&w, s_heartbeat, 0);
    w.sc.extra = &hb;
    base_opts(&w, &o);
    make_client(&w, o);
    connect_ok(&w);
    fsrv_stats *st = fsrv_stats_of(w.srv);
    for (int i = 0; i < 500 && st->pongs == 0; i++)
        run_for(&w, 10);
    assert_int_equal(st->pongs, 1);
    assert_int_equal(st->last_pong_nonce, 77);
    world_close(&w);
    dlg_client_opts_free(o);
}

static void silent_server_detected(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    int hb = 20; /* promises pings every 20 ms, never sends one */
    world_open(&w, s_heartbeat, 0);
    w.sc.extra = &hb;
    base_opts(&w, &o);
    make_client(&w, o);
    connect_ok(&w);
    assert_int_equal(dlgt_run_until(&w.loop, &w.disconnected, 5000), 0);
    assert_non_null(strstr(w.reason, "heartbeat 20 ms"));
    world_close(&w);
    dlg_client_opts_free(o);
}

static void writes_coalesced(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_plain, 0);
    base_opts(&w, &o);
    make_client(&w, o);
    connect_ok(&w);
    /* Settle: nothing more from the client after the handshake. */
    run_for(&w, 50);
    fsrv_stats *st = fsrv_stats_of(w.srv);
    int records0 = st->records, frames0 = st->frames;
    rec r[50];
    memset(r, 0, sizeof(r));
    /* 50 requests in one loop turn: one TLS write, so one record. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(dlg_client_trigger(w.c, "room", "ev", "abc", 3, on_reply, &r[i]), 0);
    for (int i = 0; i < 500 && st->frames < frames0 + 50; i++)
        run_for(&w, 10);
    assert_int_equal(st->frames, frames0 + 50);
    assert_int_equal(st->records - records0, 1);
    assert_int_equal(dlgt_run_until(&w.loop, &r[49].done, 5000), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(r[i].status, 0);
    world_close(&w);
    dlg_client_opts_free(o);
}

/* Join: Joined with the default [e1]; then push an Event and a Left. */
static void s_push(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    (void)s;
    static char *subs[] = {(char *)"e1"};
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN) {
        reply_joined(sc, f->request_id, f->join->room, subs, 1);
        Dialogue__V1__ServerFrame e = DIALOGUE__V1__SERVER_FRAME__INIT;
        Dialogue__V1__Event ev = DIALOGUE__V1__EVENT__INIT;
        ev.room = f->join->room;
        ev.event = (char *)"e1";
        ev.data.data = (uint8_t *)"\x08\x01";
        ev.data.len = 2;
        ev.from = (char *)"system";
        ev.ts_ms = 1234;
        ev.seq = 9;
        ev.epoch = 3;
        e.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
        e.event = &ev;
        fsrv_send(sc, 0, &e);
        Dialogue__V1__ServerFrame l = DIALOGUE__V1__SERVER_FRAME__INIT;
        Dialogue__V1__Left left = DIALOGUE__V1__LEFT__INIT;
        left.room = f->join->room;
        left.reason = (char *)"kicked";
        l.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_LEFT;
        l.left = &left;
        fsrv_send(sc, 0, &l);
    }
}

typedef struct evrec {
    int n;
    dlg_event copy;
    char room[32], event[32], from[32];
    uint8_t data[8];
    int left;
    char left_room[32], left_reason[64];
} evrec;

static void on_ev(dlg_client *c, void *ud, const dlg_event *ev) {
    evrec *e = ud;
    (void)c;
    e->n++;
    e->copy = *ev;
    snprintf(e->room, sizeof(e->room), "%s", ev->room);
    snprintf(e->event, sizeof(e->event), "%s", ev->event);
    snprintf(e->from, sizeof(e->from), "%s", ev->from);
    memcpy(e->data, ev->data, ev->len < 8 ? ev->len : 8);
}

static void on_left(dlg_client *c, void *ud, const char *room, const char *reason) {
    evrec *e = ud;
    (void)c;
    e->left++;
    snprintf(e->left_room, sizeof(e->left_room), "%s", room);
    snprintf(e->left_reason, sizeof(e->left_reason), "%s", reason);
}

static void event_and_left_pushes(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    evrec e;
    memset(&e, 0, sizeof(e));
    world_open(&w, s_push, 0);
    base_opts(&w, &o);
    make_client(&w, o);
    dlg_client_on_event(w.c, "r", "e1", on_ev, &e);
    dlg_client_on_left(w.c, on_left, &e);
    connect_ok(&w);
    rec r = {0};
    assert_int_equal(dlg_client_join(w.c, "r", on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &e.left, 5000), 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.room, "r");
    assert_string_equal(e.event, "e1");
    assert_string_equal(e.from, "system");
    assert_int_equal(e.copy.len, 2);
    assert_memory_equal(e.data, "\x08\x01", 2);
    assert_int_equal(e.copy.ts_ms, 1234);
    assert_int_equal(e.copy.seq, 9);
    assert_int_equal(e.copy.epoch, 3);
    assert_string_equal(e.left_room, "r");
    assert_string_equal(e.left_reason, "kicked");
    world_close(&w);
    dlg_client_opts_free(o);
}

/* Join answers, then one write (one TLS record, one read on loopback)
 * carries events e1 e2 e3, a Left of the room, events e4 e5. */
static void s_burst(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    static char *subs[] = {(char *)"*"};
    (void)s;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        return;
    }
    if (f->msg_case != DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN)
        return;
    reply_joined(sc, f->request_id, f->join->room, subs, 1);
    uint8_t out[2048];
    size_t len = 0;
    for (int i = 1; i <= 6; i++) {
        Dialogue__V1__ServerFrame fr = DIALOGUE__V1__SERVER_FRAME__INIT;
        Dialogue__V1__Event ev = DIALOGUE__V1__EVENT__INIT;
        Dialogue__V1__Left left = DIALOGUE__V1__LEFT__INIT;
        char name[16];
        uint8_t data[1] = {(uint8_t)i};
        if (i == 4) {
            left.room = f->join->room;
            left.reason = (char *)"kicked";
            fr.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_LEFT;
            fr.left = &left;
        } else {
            snprintf(name, sizeof(name), "e%d", i < 4 ? i : i - 1);
            ev.room = f->join->room;
            ev.event = name;
            ev.from = (char *)"system";
            ev.data.data = data;
            ev.data.len = 1;
            ev.seq = (uint64_t)(i < 4 ? i : i - 1);
            ev.epoch = 3;
            fr.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
            fr.event = &ev;
        }
        dlg_buf *b = NULL;
        assert_int_equal(dlg_frame_pack(&fr.base, 0, &b), 0);
        assert_true(len + b->len <= sizeof(out));
        memcpy(out + len, b->data, b->len);
        len += b->len;
        dlg_buf_unref(b);
    }
    assert_int_equal(fsrv_send_raw(sc, out, len), 0);
}

typedef struct burst {
    char log[256];
    int left, events, calls, done;
} burst;

static void burst_log(burst *b, const char *what) {
    size_t n = strlen(b->log);
    snprintf(b->log + n, sizeof(b->log) - n, "%s ", what);
}

static void burst_ev(dlg_client *c, void *ud, const dlg_event *ev) {
    (void)c;
    burst_log(ud, ev->event);
}

/* Logs "B<n>[name/data/seq,...]" and checks every view. */
static void burst_batch(dlg_client *c, void *ud, const dlg_event *evs, size_t n) {
    burst *b = ud;
    char what[128];
    size_t k = (size_t)snprintf(what, sizeof(what), "B%zu[", n);
    (void)c;
    b->calls++;
    for (size_t i = 0; i < n && k < sizeof(what); i++) {
        assert_string_equal(evs[i].room, "r");
        assert_string_equal(evs[i].from, "system");
        assert_int_equal(evs[i].len, 1);
        assert_int_equal(evs[i].epoch, 3);
        k += (size_t)snprintf(what + k, sizeof(what) - k, "%s%s/%u/%llu", i ? "," : "",
                              evs[i].event, evs[i].data[0], (unsigned long long)evs[i].seq);
        b->events++;
    }
    if (k < sizeof(what))
        snprintf(what + k, sizeof(what) - k, "]");
    burst_log(b, what);
    b->done = b->events >= 5;
}

static void burst_left(dlg_client *c, void *ud, const char *room, const char *reason) {
    burst *b = ud;
    (void)c;
    (void)room;
    (void)reason;
    b->left++;
    burst_log(b, "L");
}

/* dlg_client_on_events: the events of one read come in one call, after
 * their per-event handlers and before the Left that followed them; the
 * events after the Left come in the next call. */
static void batch_callback_per_read(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    burst b;
    memset(&b, 0, sizeof(b));
    world_open(&w, s_burst, 0);
    base_opts(&w, &o);
    make_client(&w, o);
    assert_int_equal(dlg_client_on_event(w.c, NULL, NULL, burst_ev, &b), 0);
    assert_int_equal(dlg_client_on_events(w.c, burst_batch, &b), 0);
    assert_int_equal(dlg_client_on_left(w.c, burst_left, &b), 0);
    connect_ok(&w);
    rec r = {0};
    assert_int_equal(dlg_client_join(w.c, "r", on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &b.done, 5000), 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(b.left, 1);
    assert_string_equal(b.log, "e1 e2 e3 B3[e1/1/1,e2/2/2,e3/3/3] L "
                               "e4 e5 B2[e4/5/4,e5/6/5] ");
    assert_int_equal(b.calls, 2);
    /* Removed: events go to the per-event handlers only. */
    assert_int_equal(dlg_client_on_events(w.c, NULL, NULL), 0);
    world_close(&w);
    dlg_client_opts_free(o);
}

/* Connection 1: Join r1/r2 get [e1]; Subscribe answers with what was
 * asked added. The server then drops the connection. Connection 2: Welcome
 * auto-joins r2 with [e1, e3]; Join r1 is refused. */
static void s_restore(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    static char *e1[] = {(char *)"e1"};
    static char *e1e2[] = {(char *)"e1", (char *)"e2"};
    static char *e1e3[] = {(char *)"e1", (char *)"e3"};
    switch (f->msg_case) {
    case DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO:
        if (s->conn_no == 1) {
            fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        } else {
            Dialogue__V1__Joined j = DIALOGUE__V1__JOINED__INIT;
            Dialogue__V1__Joined *list[] = {&j};
            j.room = (char *)"r2";
            j.subscriptions = e1e3;
            j.n_subscriptions = 2;
            fsrv_welcome(sc, f->request_id, 0, 0, list, 1);
        }
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN:
        if (s->conn_no == 1)
            reply_joined(sc, f->request_id, f->join->room, e1, 1);
        else
            fsrv_error(sc, f->request_id, 7, "no");
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_SUBSCRIBE:
        reply_joined(sc, f->request_id, f->subscribe->room, e1e2, 2);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_UNSUBSCRIBE:
        reply_joined(sc, f->request_id, f->unsubscribe->room, e1, 1);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_PING:
        if (s->conn_no == 1)
            fsrv_close(sc);
        else
            reply_pong(sc, f->request_id);
        break;
    default:
        break;
    }
}

static void restore_after_reconnect(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    evrec e;
    memset(&e, 0, sizeof(e));
    world_open(&w, s_restore, 0);
    base_opts(&w, &o);
    dlg_client_opts_set_reconnect(o, 1);
    make_client(&w, o);
    dlg_client_on_left(w.c, on_left, &e);
    connect_ok(&w);
    rec r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    const char *e2[] = {"e2"};
    assert_int_equal(dlg_client_join(w.c, "r1", on_reply, &r1), 0);
    assert_int_equal(dlg_client_join(w.c, "r2", on_reply, &r2), 0);
    assert_int_equal(dlg_client_subscribe(w.c, "r1", e2, 1, 0, on_reply, &r3), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r3.done, 5000), 0);
    assert_int_equal(r1.status + r2.status + r3.status, 0);
    /* The ping makes the server drop us; the ping fails, we reconnect. */
    assert_int_equal(dlg_client_ping(w.c, on_reply, &r4), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r4.done, 5000), 0);
    assert_int_equal(r4.status, DLG_ECLOSED);
    for (int i = 0; i < 500 && (w.connected < 2 || e.left == 0); i++)
        run_for(&w, 10);
    assert_int_equal(w.connected, 2);
    assert_int_equal(e.left, 1);
    assert_string_equal(e.left_room, "r1");
    assert_string_equal(e.left_reason, "rejoin refused: PERMISSION_DENIED: no");
    /* r2 came back through auto_join with an extra e3: only the fix-up is
     * sent, no Join; r1 was rejoined (and refused). */
    for (int i = 0; i < 100 && strstr(w.sc.log, "U:r2:e3") == NULL; i++)
        run_for(&w, 10);
    assert_string_equal(w.sc.log, "J:r1 J:r2 S:r1:e2 U:r2:e3 J:r1 ");
    world_close(&w);
    dlg_client_opts_free(o);
}

static void offline_queue_and_max_pending(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_late, 0);
    base_opts(&w, &o);
    dlg_client_opts_set_offline_queue(o, 1);
    dlg_client_opts_set_max_pending(o, 3);
    make_client(&w, o);
    rec q1 = {0};
    /* Before connect: one request may wait, the next is refused. */
    assert_int_equal(dlg_client_trigger(w.c, "room", "ev", "x", 1, on_reply, &q1), 0);
    assert_int_equal(dlg_client_trigger(w.c, "room", "ev", "x", 1, NULL, NULL), DLG_ECLOSED);
    connect_ok(&w);
    /* s_late ignores triggers: the queued one is pending, plus two pings
     * (the first ignored) make max_pending. */
    for (int i = 0; i < 100 && w.sc.n_triggers == 0; i++)
        run_for(&w, 10);
    assert_int_equal(w.sc.n_triggers, 1);
    rec p1 = {0};
    assert_int_equal(dlg_client_ping(w.c, on_reply, &p1), 0);
    assert_int_equal(dlg_client_ping(w.c, NULL, NULL), 0);
    assert_int_equal(dlg_client_ping(w.c, NULL, NULL), DLG_EFULL);
    world_close(&w);
    /* Closed: the waiting requests completed with ECLOSED first. */
    assert_int_equal(q1.done, 1);
    assert_int_equal(q1.status, DLG_ECLOSED);
    dlg_client_opts_free(o);
}

static void s_small_frames(script *s, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    (void)s;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO)
        fsrv_welcome(sc, f->request_id, 0, 64, NULL, 0);
    else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_TRIGGER)
        reply_ack(sc, f->request_id, 1);
}

static void server_max_frame_respected(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_small_frames, 0);
    base_opts(&w, &o);
    make_client(&w, o);
    connect_ok(&w);
    char big[100];
    memset(big, 'x', sizeof(big));
    assert_int_equal(dlg_client_trigger(w.c, "r", "e", big, sizeof(big), NULL, NULL),
                     DLG_ETOOBIG);
    rec r = {0};
    assert_int_equal(dlg_client_trigger(w.c, "r", "e", big, 10, on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r.done, 5000), 0);
    assert_int_equal(r.status, 0);
    world_close(&w);
    dlg_client_opts_free(o);
}

static void connect_timeout_in_handshake(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    dlg_client_opts *o = NULL;
    world_open(&w, s_plain, 1);
    base_opts(&w, &o);
    dlg_client_opts_set_connect_timeout_ms(o, 100);
    make_client(&w, o);
    assert_int_equal(dlg_client_connect(w.c), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &w.disconnected, 5000), 0);
    assert_non_null(strstr(w.reason, "timed out after 100 ms (in the TLS handshake)"));
    world_close(&w);
    dlg_client_opts_free(o);
}

/* dlg_sync_connect against a refusing server on its own thread. */
typedef struct srv_thread {
    uv_loop_t loop;
    uv_async_t stop;
    fsrv *srv;
    script sc;
} srv_thread;

static void on_stop(uv_async_t *a) {
    srv_thread *t = a->data;
    fsrv_stop(t->srv);
    uv_close((uv_handle_t *)a, NULL);
}

static void srv_main(void *arg) {
    srv_thread *t = arg;
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

static void sync_connect_refused(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    dlgt_daemon certs;
    srv_thread t;
    int code = 16;
    memset(&t, 0, sizeof(t));
    assert_int_equal(dlgt_setup(&certs, NULL), 0);
    assert_int_equal(uv_loop_init(&t.loop), 0);
    t.sc.fn = s_refuse;
    t.sc.extra = &code;
    assert_int_equal(fsrv_start(&t.loop, certs.certs, on_frame, &t.sc, 0, &t.srv), 0);
    uv_async_init(&t.loop, &t.stop, on_stop);
    t.stop.data = &t;
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, srv_main, &t), 0);

    dlg_client_opts *o = NULL;
    char ca[400], err[256];
    assert_int_equal(dlg_client_opts_new(&o), 0);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs.certs);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, fsrv_port(t.srv));
    dlg_client_opts_set_ca_file(o, ca);
    dlg_client_opts_set_reconnect(o, 1); /* refused credentials end the wait anyway */
    dlg_client *c = NULL;
    assert_int_equal(dlg_sync_connect(o, 20000, &c, err, sizeof err), DLG_EAUTH);
    assert_null(c);
    assert_string_equal(err, "server refused Hello: UNAUTHENTICATED: bad token");
    uv_async_send(&t.stop);
    uv_thread_join(&th);
    assert_int_equal(uv_loop_close(&t.loop), 0);
    dlgt_teardown(&certs);
    dlg_client_opts_free(o);
}

int main(void) {
    /* Loop-mode clients and the fake server run on this thread: a write to
     * a socket the peer just closed must be an EPIPE, not a SIGPIPE that
     * kills the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_alpn_tls),
        cmocka_unit_test(hello_refused_stops_retrying),
        cmocka_unit_test(hello_unavailable_retries),
        cmocka_unit_test(oversized_frame_closes),
        cmocka_unit_test(wrong_reply_type_closes),
        cmocka_unit_test(undecodable_frame_closes),
        cmocka_unit_test(compressed_flag_closes),
        cmocka_unit_test(request_timeout_and_late_reply),
        cmocka_unit_test(server_ping_answered),
        cmocka_unit_test(silent_server_detected),
        cmocka_unit_test(writes_coalesced),
        cmocka_unit_test(event_and_left_pushes),
        cmocka_unit_test(batch_callback_per_read),
        cmocka_unit_test(restore_after_reconnect),
        cmocka_unit_test(offline_queue_and_max_pending),
        cmocka_unit_test(server_max_frame_respected),
        cmocka_unit_test(connect_timeout_in_handshake),
        cmocka_unit_test(sync_connect_refused),
    };
    int rc = cmocka_run_group_tests_name("client_proto", tests, NULL, NULL);
    dlgt_timeout(0, NULL);
    return rc;
}
