/* test_client_history.c: positions, history batches and recovery in the
 * client library against a scripted fake server (fakesrv.c): the sync batch
 * after Joined and after Welcome delivered as events, duplicates dropped,
 * stray batches ignored, Join{recover, epoch, since_seq} after a reconnect,
 * gap reports (epoch changed, events evicted, auto-joined room with a new
 * epoch) before the recovered events, a recovery refused with UNAVAILABLE
 * (the room kept, asked again on the next connection), a Gap frame
 * reported in order, a recovery batch filtered by the recorded
 * subscriptions, History requests and their replies, and the
 * blocking variant. No daemon involved. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dialogue/client.h"
#include "fakesrv.h"
#include "harness.h"

/* ---- the world: one loop, one fake server, one loop-mode client ---------- */

typedef struct world world;
/* Reacts to a client frame; conn is 1 on the first connection. */
typedef void (*script_fn)(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f);

struct world {
    dlgt_daemon certs;      /* only the certificate folder is used */
    uv_loop_t loop;
    fsrv *srv;
    dlg_client *c;
    script_fn fn;
    char ca[400];
    int conn;               /* Hellos seen */
    uint64_t hello_id;
    int connected, disconnected, closed;
    /* dlg_client_auto_joined for "r" and "other" in each CONNECTED callback,
     * and for "r" in the last DISCONNECTED one. */
    int auto_r[4], auto_other[4], auto_r_down;
    /* What the client sent. */
    int joins;
    int join_recover[4];    /* per connection: the last Join's fields */
    uint64_t join_epoch[4], join_since[4];
    int n_history;
    Dialogue__V1__History last_history;   /* strings below */
    char history_room[32], history_event[32];
    /* What the client delivered, in order: "E<seq>/<epoch> " and "G " for a gap. */
    char got[1024];
    int n_events, n_gaps;
    dlg_gap gap;            /* the last one (strings copied below) */
    char gap_room[32], gap_reason[512];
};

static void on_frame(fsrv_conn *sc, const Dialogue__V1__ClientFrame *f, void *ud) {
    world *w = ud;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        w->conn++;
        w->hello_id = f->request_id;
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN && w->conn < 4) {
        w->joins++;
        w->join_recover[w->conn] = f->join->recover;
        w->join_epoch[w->conn] = f->join->epoch;
        w->join_since[w->conn] = f->join->since_seq;
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HISTORY) {
        w->n_history++;
        w->last_history = *f->history;
        snprintf(w->history_room, sizeof(w->history_room), "%s", f->history->room);
        snprintf(w->history_event, sizeof(w->history_event), "%s", f->history->event);
    }
    w->fn(w, sc, f);
}

static void on_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    world *w = ud;
    (void)reason;
    if (st == DLG_STATE_CONNECTED && w->connected < 4) {
        w->auto_r[w->connected] = dlg_client_auto_joined(c, "r");
        w->auto_other[w->connected] = dlg_client_auto_joined(c, "other");
    }
    if (st == DLG_STATE_CONNECTED)
        w->connected++;
    if (st == DLG_STATE_DISCONNECTED) {
        w->disconnected++;
        w->auto_r_down = dlg_client_auto_joined(c, "r");
    }
}

static void append(world *w, const char *fmt, uint64_t a, uint64_t b) {
    size_t n = strlen(w->got);
    snprintf(w->got + n, sizeof(w->got) - n, fmt, (unsigned long long)a, (unsigned long long)b);
}

static void on_event(dlg_client *c, void *ud, const dlg_event *ev) {
    world *w = ud;
    (void)c;
    w->n_events++;
    append(w, "E%llu/%llu ", ev->seq, ev->epoch);
}

static void on_gap(dlg_client *c, void *ud, const dlg_gap *g) {
    world *w = ud;
    (void)c;
    w->n_gaps++;
    w->gap = *g;
    snprintf(w->gap_room, sizeof(w->gap_room), "%s", g->room);
    snprintf(w->gap_reason, sizeof(w->gap_reason), "%s", g->reason);
    append(w, "G ", 0, 0);
}

static void world_open(world *w, script_fn fn) {
    memset(w, 0, sizeof(*w));
    assert_int_equal(dlgt_setup(&w->certs, NULL), 0);
    snprintf(w->ca, sizeof(w->ca), "%s/ca.crt", w->certs.certs);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->fn = fn;
    assert_int_equal(fsrv_start(&w->loop, w->certs.certs, on_frame, w, 0, &w->srv), 0);
    dlg_client_opts *o = NULL;
    assert_int_equal(dlg_client_opts_new(&o), 0);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, fsrv_port(w->srv));
    dlg_client_opts_set_ca_file(o, w->ca);
    dlg_client_opts_set_backoff_min_ms(o, 1);
    dlg_client_opts_set_backoff_max_ms(o, 5);
    dlg_client_opts_set_request_timeout_ms(o, 2000);
    dlg_client_opts_set_log_level(o, getenv("DLGT_LOG") ? 3 : -1);
    assert_int_equal(dlg_client_new(&w->loop, o, &w->c), 0);
    assert_int_equal(dlg_client_on_state(w->c, on_state, w), 0);
    assert_int_equal(dlg_client_on_event(w->c, NULL, NULL, on_event, w), 0);
    assert_int_equal(dlg_client_on_gap(w->c, on_gap, w), 0);
    assert_int_equal(dlg_client_connect(w->c), 0);
    assert_int_equal(dlgt_run_until(&w->loop, &w->connected, 5000), 0);
    dlg_client_opts_free(o);
}

static void on_closed(dlg_client *c, void *ud) {
    (void)c;
    ((world *)ud)->closed = 1;
}

static void world_close(world *w) {
    assert_int_equal(dlg_client_close(w->c, on_closed, w), 0);
    assert_int_equal(dlgt_run_until(&w->loop, &w->closed, 5000), 0);
    dlg_client_free(w->c);
    fsrv_stop(w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    dlgt_teardown(&w->certs);
}

static void run_for(world *w, unsigned ms) {
    int never = 0;
    (void)dlgt_run_until(&w->loop, &never, ms);
}

/* Runs until got ends with want (or 5 s), then compares all of it. */
static void expect_got(world *w, const char *want) {
    size_t lw = strlen(want);
    for (int i = 0; i < 500; i++) {
        size_t lg = strlen(w->got);
        if (lg >= lw && strcmp(w->got + lg - lw, want) == 0)
            break;
        run_for(w, 10);
    }
    assert_string_equal(w->got, want);
}

/* ---- server frames ---------------------------------------------------------- */

static char *all_subs[] = {(char *)"*"};

static void send_joined(fsrv_conn *sc, uint64_t rid, const char *room, uint64_t epoch,
                        uint64_t seq) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Joined j = DIALOGUE__V1__JOINED__INIT;
    j.room = (char *)room;
    j.subscriptions = all_subs;
    j.n_subscriptions = 1;
    j.epoch = epoch;
    j.seq = seq;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_JOINED;
    f.joined = &j;
    fsrv_send(sc, rid, &f);
}

static void fill_event(Dialogue__V1__Event *e, const char *room, uint64_t seq, uint64_t epoch) {
    static uint8_t payload[] = {0x08, 0x01};
    dialogue__v1__event__init(e);
    e->room = (char *)room;
    e->event = (char *)"tick";
    e->data.data = payload;
    e->data.len = sizeof(payload);
    e->from = (char *)"system";
    e->ts_ms = 1000 + seq;
    e->seq = seq;
    e->epoch = epoch;
}

static void send_event(fsrv_conn *sc, const char *room, uint64_t seq, uint64_t epoch) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Event e;
    fill_event(&e, room, seq, epoch);
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
    f.event = &e;
    fsrv_send(sc, 0, &f);
}

/* A HistoryBatch answering rid with events first..last of epoch. */
static void send_batch(fsrv_conn *sc, uint64_t rid, const char *room, uint64_t epoch,
                       int complete, uint64_t first, uint64_t last) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__HistoryBatch b = DIALOGUE__V1__HISTORY_BATCH__INIT;
    Dialogue__V1__Event ev[16], *evp[16];
    size_t n = 0;
    for (uint64_t s = first; s <= last && first != 0 && n < 16; s++, n++) {
        fill_event(&ev[n], room, s, epoch);
        evp[n] = &ev[n];
    }
    b.room = (char *)room;
    b.events = evp;
    b.n_events = n;
    b.complete = complete;
    b.epoch = epoch;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH;
    f.history_batch = &b;
    fsrv_send(sc, rid, &f);
}

static void send_pong(fsrv_conn *sc, uint64_t rid) {
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Pong p = DIALOGUE__V1__PONG__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PONG;
    f.pong = &p;
    fsrv_send(sc, rid, &f);
}

typedef struct rec {
    int done, status;
    char msg[256];
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

static void join(world *w, const char *room) {
    rec r = {0};
    assert_int_equal(dlg_client_join(w->c, room, on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w->loop, &r.done, 5000), 0);
    assert_int_equal(r.status, 0);
}

/* Pings; scripts answer a ping on the first connection by dropping it. */
static void cut(world *w) {
    rec r = {0};
    int want = w->connected + 1;
    assert_int_equal(dlg_client_ping(w->c, on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w->loop, &r.done, 5000), 0);
    for (int i = 0; i < 500 && w->connected < want; i++)
        run_for(w, 10);
    assert_int_equal(w->connected, want);
}

/* ---- sync on join ----------------------------------------------------------------- */

/* Join: Joined{7, 5}, its batch 3..5, a live duplicate 5, live 6, a batch
 * with an unknown request id, and the join's batch once more (late). */
static void s_sync(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN) {
        send_joined(sc, f->request_id, "r", 7, 5);
        send_batch(sc, f->request_id, "r", 7, 1, 3, 5);
        send_event(sc, "r", 5, 7);
        send_event(sc, "r", 6, 7);
        send_batch(sc, 999, "r", 7, 1, 7, 8);
        send_batch(sc, f->request_id, "r", 7, 1, 9, 9);
        send_event(sc, "r", 10, 7);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_PING) {
        send_pong(sc, f->request_id);
    }
    (void)w;
}

static void sync_batch_delivered_once_in_order(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_sync);
    join(&w, "r");
    expect_got(&w, "E3/7 E4/7 E5/7 E6/7 E10/7 ");
    assert_int_equal(w.n_gaps, 0);
    assert_int_equal(w.join_recover[1], 0);
    world_close(&w);
}

/* Welcome auto-joins r{7, 2} and sends its batch 1..2 with the Hello's id;
 * then live 3. */
static void s_auto(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    (void)w;
    if (f->msg_case != DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO)
        return;
    Dialogue__V1__Joined j = DIALOGUE__V1__JOINED__INIT;
    Dialogue__V1__Joined *list[] = {&j};
    j.room = (char *)"r";
    j.subscriptions = all_subs;
    j.n_subscriptions = 1;
    j.epoch = 7;
    j.seq = 2;
    fsrv_welcome(sc, f->request_id, 0, 0, list, 1);
    send_batch(sc, f->request_id, "r", 7, 1, 1, 2);
    send_event(sc, "r", 3, 7);
}

static void auto_join_batch_delivered(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_auto);
    expect_got(&w, "E1/7 E2/7 E3/7 ");
    world_close(&w);
}

static void s_auto_epoch(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f);

/* The client knows, from the CONNECTED callback on, which rooms the
 * Welcome joined it to (so it does not Join them again), and only those. */
static void auto_joined_rooms_are_known(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_auto);
    assert_int_equal(w.auto_r[0], 1);
    assert_int_equal(w.auto_other[0], 0);
    assert_int_equal(dlg_client_auto_joined(w.c, "r"), 1);
    assert_int_equal(dlg_client_auto_joined(NULL, "r"), DLG_EINVAL);
    assert_int_equal(dlg_client_auto_joined(w.c, NULL), DLG_EINVAL);
    expect_got(&w, "E1/7 E2/7 E3/7 ");
    world_close(&w);
    /* A room joined with Join is a membership, not an auto-join. */
    world_open(&w, s_sync);
    assert_int_equal(w.auto_r[0], 0);
    join(&w, "r");
    expect_got(&w, "E3/7 E4/7 E5/7 E6/7 E10/7 ");
    assert_int_equal(dlg_client_auto_joined(w.c, "r"), 0);
    world_close(&w);
    /* Per connection: auto-joined again after a reconnect, not while down. */
    world_open(&w, s_auto_epoch);
    expect_got(&w, "E4/7 ");
    cut(&w);
    expect_got(&w, "E4/7 G E1/9 ");
    assert_int_equal(w.auto_r_down, 0);
    assert_int_equal(w.auto_r[1], 1);
    world_close(&w);
}

/* ---- recovery ---------------------------------------------------------------------- */

/* What the second connection answers to the recovery Join. */
enum { R_COMPLETE, R_NEW_EPOCH, R_EVICTED, R_NO_BATCH_CUT, R_UNAVAILABLE };

static int rmode;  /* set by each test before the world opens */

/* Connection 1: Joined{7, 10}, live 11 and 12; a ping drops it.
 * Connection 2 depends on rmode; connection 3 answers Joined only. */
static void s_recover(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    switch (f->msg_case) {
    case DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO:
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_PING:
        if (w->conn == 1 || (w->conn == 2 && rmode == R_NEW_EPOCH))
            fsrv_close(sc);
        else
            send_pong(sc, f->request_id);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN:
        if (w->conn == 1) {
            send_joined(sc, f->request_id, "r", 7, 10);
            send_event(sc, "r", 11, 7);
            send_event(sc, "r", 12, 7);
        } else if (w->conn == 2 && rmode == R_COMPLETE) {
            send_joined(sc, f->request_id, "r", 7, 15);
            send_batch(sc, f->request_id, "r", 7, 1, 13, 15);
            send_event(sc, "r", 16, 7);
        } else if (w->conn == 2 && rmode == R_NEW_EPOCH) {
            send_joined(sc, f->request_id, "r", 8, 2);
            send_batch(sc, f->request_id, "r", 8, 0, 1, 2);
            send_event(sc, "r", 3, 8);
        } else if (w->conn == 2 && rmode == R_UNAVAILABLE) {
            /* A cluster node behind the client's position (issue 24). */
            fsrv_error(sc, f->request_id, 14, "room r: this node has delivered up to seq 9, "
                       "behind this client's position 12, and did not catch up within "
                       "5000 ms: try another node");
        } else if (rmode == R_UNAVAILABLE) {
            send_joined(sc, f->request_id, "r", 7, 14);
            send_batch(sc, f->request_id, "r", 7, 1, 13, 14);
        } else if (w->conn == 2 && rmode == R_EVICTED) {
            send_joined(sc, f->request_id, "r", 7, 20);
            send_batch(sc, f->request_id, "r", 7, 0, 18, 20);
        } else {
            send_joined(sc, f->request_id, "r", 8, 3);
            send_batch(sc, f->request_id, "r", 8, 1, 0, 0);
        }
        break;
    default:
        break;
    }
}

static void recover_replays_missed_events(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    rmode = R_COMPLETE;
    world_open(&w, s_recover);
    join(&w, "r");
    expect_got(&w, "E11/7 E12/7 ");
    cut(&w);
    expect_got(&w, "E11/7 E12/7 E13/7 E14/7 E15/7 E16/7 ");
    assert_int_equal(w.join_recover[1], 0);
    assert_int_equal(w.join_recover[2], 1);
    assert_int_equal(w.join_epoch[2], 7);
    assert_int_equal(w.join_since[2], 12);
    assert_int_equal(w.n_gaps, 0);
    world_close(&w);
}

/* Issue 24: the recovery is refused with UNAVAILABLE (a node behind the
 * client): the room is kept and the next connection recovers it, exactly,
 * with no gap reported. */
static void recover_unavailable_tries_again(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    rmode = R_UNAVAILABLE;
    world_open(&w, s_recover);
    join(&w, "r");
    expect_got(&w, "E11/7 E12/7 ");
    int before = w.disconnected;
    rec r = {0};
    assert_int_equal(dlg_client_ping(w.c, on_reply, &r), 0); /* drops connection 1 */
    expect_got(&w, "E11/7 E12/7 E13/7 E14/7 ");
    assert_int_equal(w.conn, 3);
    assert_int_equal(w.disconnected, before + 2);
    assert_int_equal(w.join_recover[2], 1);
    assert_int_equal(w.join_since[2], 12);
    assert_int_equal(w.join_recover[3], 1);
    assert_int_equal(w.join_epoch[3], 7);
    assert_int_equal(w.join_since[3], 12);
    assert_int_equal(w.n_gaps, 0);
    world_close(&w);
}

/* Issue 24: Joined{7, 5}, live 6, Gap{seq 6}, live 7. */
static void s_gap(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    (void)w;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN) {
        send_joined(sc, f->request_id, "r", 7, 5);
        send_event(sc, "r", 6, 7);
        Dialogue__V1__ServerFrame fr = DIALOGUE__V1__SERVER_FRAME__INIT;
        Dialogue__V1__Gap g = DIALOGUE__V1__GAP__INIT;
        g.room = (char *)"r";
        g.epoch = 7;
        g.seq = 6;
        g.reason = (char *)"node n1 was not connected to NATS for 3.0 s";
        fr.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_GAP;
        fr.gap = &g;
        fsrv_send(sc, 0, &fr);
        g.room = (char *)"not-joined";
        fsrv_send(sc, 0, &fr);
        send_event(sc, "r", 7, 7);
    }
}

static void server_gap_reported_in_order(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_gap);
    join(&w, "r");
    expect_got(&w, "E6/7 G E7/7 ");
    assert_int_equal(w.n_gaps, 1);
    assert_string_equal(w.gap_room, "r");
    assert_int_equal(w.gap.epoch_changed, 0);
    assert_int_equal(w.gap.old_epoch, 7);
    assert_int_equal(w.gap.since_seq, 6);
    assert_int_equal(w.gap.epoch, 7);
    assert_non_null(strstr(w.gap_reason, "room r: events after seq 6 may be lost"));
    assert_non_null(strstr(w.gap_reason, "node n1 was not connected to NATS for 3.0 s"));
    world_close(&w);
}

static void recover_new_epoch_reports_gap(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    rmode = R_NEW_EPOCH;
    world_open(&w, s_recover);
    join(&w, "r");
    expect_got(&w, "E11/7 E12/7 ");
    cut(&w);
    /* The gap comes first, then what the server still has, then live. */
    expect_got(&w, "E11/7 E12/7 G E1/8 E2/8 E3/8 ");
    assert_int_equal(w.n_gaps, 1);
    assert_string_equal(w.gap_room, "r");
    assert_int_equal(w.gap.epoch_changed, 1);
    assert_int_equal(w.gap.old_epoch, 7);
    assert_int_equal(w.gap.since_seq, 12);
    assert_int_equal(w.gap.epoch, 8);
    assert_non_null(strstr(w.gap_reason, "room r: epoch changed from 7 to 8"));
    /* The position moved to the new epoch: the next rejoin asks from it. */
    cut(&w);
    for (int i = 0; i < 200 && w.joins < 3; i++)
        run_for(&w, 10);
    assert_int_equal(w.join_recover[3], 1);
    assert_int_equal(w.join_epoch[3], 8);
    assert_int_equal(w.join_since[3], 3);
    run_for(&w, 50);
    assert_int_equal(w.n_gaps, 1);
    world_close(&w);
}

static void recover_evicted_reports_gap(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    rmode = R_EVICTED;
    world_open(&w, s_recover);
    join(&w, "r");
    expect_got(&w, "E11/7 E12/7 ");
    cut(&w);
    expect_got(&w, "E11/7 E12/7 G E18/7 E19/7 E20/7 ");
    assert_int_equal(w.gap.epoch_changed, 0);
    assert_int_equal(w.gap.since_seq, 12);
    assert_int_equal(w.gap.epoch, 7);
    assert_non_null(strstr(w.gap_reason, "no longer kept"));
    world_close(&w);
}

/* Join without a batch: the Joined's seq is the position once the next
 * frame shows no batch is coming. Then a Joined whose batch never comes
 * because the connection drops: the rejoin cannot claim it. */
static void s_floor(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    switch (f->msg_case) {
    case DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO:
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_PING:
        if (w->conn == 1)
            fsrv_close(sc);
        else
            send_pong(sc, f->request_id);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN:
        if (strcmp(f->join->room, "a") == 0) {
            send_joined(sc, f->request_id, "a", 7, 40);
            if (f->join->recover) /* as dialogued: always a batch */
                send_batch(sc, f->request_id, "a", 7, 1, 0, 0);
        } else {
            send_joined(sc, f->request_id, "b", 5, 30);
            if (w->conn == 1)
                fsrv_close(sc); /* before b's batch */
        }
        break;
    default:
        break;
    }
}

typedef struct joinlog {
    char rooms[4][8];
    int recover[4];
    uint64_t since[4];
    int n;
} joinlog;

static joinlog jlog;

static void s_floor_logged(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN && w->conn == 2 && jlog.n < 4) {
        snprintf(jlog.rooms[jlog.n], sizeof(jlog.rooms[0]), "%s", f->join->room);
        jlog.recover[jlog.n] = f->join->recover;
        jlog.since[jlog.n] = f->join->since_seq;
        jlog.n++;
    }
    s_floor(w, sc, f);
}

static void position_from_joined_without_batch(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    memset(&jlog, 0, sizeof(jlog));
    world_open(&w, s_floor_logged);
    join(&w, "a");
    rec r = {0};
    assert_int_equal(dlg_client_join(w.c, "b", on_reply, &r), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &r.done, 5000), 0);
    for (int i = 0; i < 500 && (w.connected < 2 || jlog.n < 2); i++)
        run_for(&w, 10);
    assert_int_equal(jlog.n, 2);
    /* a: settled at 40 by b's Joined (a later frame). b: its batch might
     * still have come, so it is rejoined without a claim. */
    assert_string_equal(jlog.rooms[0], "a");
    assert_int_equal(jlog.recover[0], 1);
    assert_int_equal(jlog.since[0], 40);
    assert_string_equal(jlog.rooms[1], "b");
    assert_int_equal(jlog.recover[1], 0);
    assert_int_equal(w.n_gaps, 0);
    world_close(&w);
}

/* Connection 1: Welcome auto-joins r{7, 3}, no batch; live 4.
 * Connection 2: auto-joins r{9, 1} with its batch (seq 1 of epoch 9). */
static void s_auto_epoch(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_PING) {
        if (w->conn == 1)
            fsrv_close(sc);
        else
            send_pong(sc, f->request_id);
        return;
    }
    if (f->msg_case != DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO)
        return;
    Dialogue__V1__Joined j = DIALOGUE__V1__JOINED__INIT;
    Dialogue__V1__Joined *list[] = {&j};
    j.room = (char *)"r";
    j.subscriptions = all_subs;
    j.n_subscriptions = 1;
    j.epoch = w->conn == 1 ? 7 : 9;
    j.seq = w->conn == 1 ? 3 : 1;
    fsrv_welcome(sc, f->request_id, 0, 0, list, 1);
    if (w->conn == 1) {
        send_event(sc, "r", 4, 7);
    } else {
        send_batch(sc, f->request_id, "r", 9, 1, 1, 1);
    }
}

static void auto_joined_new_epoch_reports_gap(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_auto_epoch);
    expect_got(&w, "E4/7 ");
    cut(&w);
    expect_got(&w, "E4/7 G E1/9 ");
    assert_int_equal(w.gap.epoch_changed, 1);
    assert_int_equal(w.gap.old_epoch, 7);
    assert_int_equal(w.gap.since_seq, 4);
    assert_int_equal(w.gap.epoch, 9);
    assert_int_equal(w.joins, 0); /* the server joined it: no Join sent */
    world_close(&w);
}

/* Connection 1: Joined [tick] {7, 10}, live 11. Connection 2: the new
 * membership has the defaults [tick, other]; the batch holds 12 (other)
 * and 13 (tick); the Unsubscribe that restores [tick] is answered. */
static void s_filter(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    static char *tick[] = {(char *)"tick"};
    static char *both[] = {(char *)"tick", (char *)"other"};
    Dialogue__V1__ServerFrame fr = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Joined j = DIALOGUE__V1__JOINED__INIT;
    j.room = (char *)"r";
    j.epoch = 7;
    fr.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_JOINED;
    fr.joined = &j;
    switch (f->msg_case) {
    case DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO:
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_PING:
        if (w->conn == 1)
            fsrv_close(sc);
        else
            send_pong(sc, f->request_id);
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN:
        if (w->conn == 1) {
            j.subscriptions = tick;
            j.n_subscriptions = 1;
            j.seq = 10;
            fsrv_send(sc, f->request_id, &fr);
            send_event(sc, "r", 11, 7);
        } else {
            Dialogue__V1__ServerFrame bf = DIALOGUE__V1__SERVER_FRAME__INIT;
            Dialogue__V1__HistoryBatch b = DIALOGUE__V1__HISTORY_BATCH__INIT;
            Dialogue__V1__Event e12, e13, *evs[] = {&e12, &e13};
            j.subscriptions = both;
            j.n_subscriptions = 2;
            j.seq = 13;
            fsrv_send(sc, f->request_id, &fr);
            fill_event(&e12, "r", 12, 7);
            e12.event = (char *)"other";
            fill_event(&e13, "r", 13, 7);
            b.room = (char *)"r";
            b.events = evs;
            b.n_events = 2;
            b.complete = 1;
            b.epoch = 7;
            bf.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH;
            bf.history_batch = &b;
            fsrv_send(sc, f->request_id, &bf);
        }
        break;
    case DIALOGUE__V1__CLIENT_FRAME__MSG_UNSUBSCRIBE:
        j.subscriptions = tick;
        j.n_subscriptions = 1;
        j.seq = 13;
        fsrv_send(sc, f->request_id, &fr);
        break;
    default:
        break;
    }
}

static void recovery_batch_follows_recorded_subscriptions(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_filter);
    join(&w, "r");
    expect_got(&w, "E11/7 ");
    cut(&w);
    expect_got(&w, "E11/7 E13/7 ");
    run_for(&w, 50);
    assert_string_equal(w.got, "E11/7 E13/7 ");
    assert_int_equal(w.n_gaps, 0);
    assert_int_equal(dlg_client_state(w.c), DLG_STATE_CONNECTED);
    world_close(&w);
}

/* ---- History requests ------------------------------------------------------------ */

/* History "r": events 4..6 of epoch 7 (complete), except when the event asked
 * is "slow" (no answer: the request times out; the answer comes with the
 * next request's) or "none" (FAILED_PRECONDITION). */
static uint64_t slow_rid;

static void s_history(world *w, fsrv_conn *sc, const Dialogue__V1__ClientFrame *f) {
    (void)w;
    if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO) {
        fsrv_welcome(sc, f->request_id, 0, 0, NULL, 0);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN) {
        send_joined(sc, f->request_id, f->join->room, 7, 6);
    } else if (f->msg_case == DIALOGUE__V1__CLIENT_FRAME__MSG_HISTORY) {
        if (strcmp(f->history->event, "slow") == 0) {
            slow_rid = f->request_id;
        } else if (strcmp(f->history->event, "none") == 0) {
            fsrv_error(sc, f->request_id, 9, "not a member of room x");
        } else {
            if (slow_rid != 0)
                send_batch(sc, slow_rid, "r", 7, 1, 1, 3);
            slow_rid = 0;
            send_batch(sc, f->request_id, f->history->room, 7, 1, 4, 6);
        }
    }
}

typedef struct hrec {
    int done, status;
    char msg[256];
    size_t n;
    uint64_t first, last, epoch;
    int complete;
    char room[16], event[16], from[16];
    uint8_t data[4];
    size_t len;
} hrec;

static void on_history(dlg_client *c, void *ud, int status, const char *message,
                       const void *reply) {
    hrec *h = ud;
    (void)c;
    h->done++;
    h->status = status;
    snprintf(h->msg, sizeof(h->msg), "%s", message);
    if (status != 0)
        return;
    const dlg_history_reply *v = reply;
    h->n = v->n_events;
    h->complete = v->complete;
    h->epoch = v->epoch;
    snprintf(h->room, sizeof(h->room), "%s", v->room);
    if (v->n_events > 0) {
        h->first = v->events[0].seq;
        h->last = v->events[v->n_events - 1].seq;
        snprintf(h->event, sizeof(h->event), "%s", v->events[0].event);
        snprintf(h->from, sizeof(h->from), "%s", v->events[0].from);
        h->len = v->events[0].len;
        memcpy(h->data, v->events[0].data, h->len < 4 ? h->len : 4);
    }
}

static void history_request_and_reply(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    world_open(&w, s_history);
    join(&w, "r");
    hrec h = {0};
    assert_int_equal(dlg_client_history(w.c, "r", "tick", 2, 3, 1, 3, on_history, &h), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &h.done, 5000), 0);
    assert_int_equal(h.status, 0);
    assert_string_equal(w.history_room, "r");
    assert_string_equal(w.history_event, "tick");
    assert_int_equal(w.last_history.start, 2);
    assert_int_equal(w.last_history.limit, 3);
    assert_int_equal(w.last_history.by_seq, 1);
    assert_int_equal(w.last_history.since_seq, 3);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.first, 4);
    assert_int_equal(h.last, 6);
    assert_int_equal(h.complete, 1);
    assert_int_equal(h.epoch, 7);
    assert_string_equal(h.room, "r");
    assert_string_equal(h.event, "tick");
    assert_string_equal(h.from, "system");
    assert_int_equal(h.len, 2);
    assert_memory_equal(h.data, "\x08\x01", 2);
    /* A reply is not a delivery. */
    assert_int_equal(w.n_events, 0);
    assert_int_equal(w.n_history, 1);

    /* NULL event = every type; a refusal carries the server's status. */
    hrec e = {0};
    assert_int_equal(dlg_client_history(w.c, "r", "none", 0, 0, 0, 0, on_history, &e), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &e.done, 5000), 0);
    assert_int_equal(e.status, 9);
    assert_string_equal(e.msg, "not a member of room x");
    hrec a = {0};
    assert_int_equal(dlg_client_history(w.c, "r", NULL, 0, 0, 0, 0, on_history, &a), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &a.done, 5000), 0);
    assert_int_equal(a.status, 0);
    assert_string_equal(w.history_event, "");
    assert_int_equal(dlg_client_history(w.c, "", NULL, 0, 0, 0, 0, on_history, &a),
                     DLG_EINVAL);
    assert_int_equal(dlg_client_history(w.c, NULL, NULL, 0, 0, 0, 0, on_history, &a),
                     DLG_EINVAL);
    world_close(&w);
}

static void late_history_reply_is_not_delivered(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    world w;
    slow_rid = 0;
    world_open(&w, s_history);
    join(&w, "r");
    hrec slow = {0}, next = {0};
    assert_int_equal(dlg_client_history(w.c, "r", "slow", 0, 0, 0, 0, on_history, &slow), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &slow.done, 5000), 0);
    assert_int_equal(slow.status, DLG_ETIMEDOUT);
    assert_non_null(strstr(slow.msg, "history r"));
    assert_int_equal(dlg_client_history(w.c, "r", "tick", 0, 0, 0, 0, on_history, &next), 0);
    assert_int_equal(dlgt_run_until(&w.loop, &next.done, 5000), 0);
    assert_int_equal(next.status, 0);
    run_for(&w, 50);
    assert_int_equal(slow.done, 1);
    assert_int_equal(w.n_events, 0);
    assert_int_equal(dlg_client_state(w.c), DLG_STATE_CONNECTED);
    world_close(&w);
}

/* ---- the blocking variant -------------------------------------------------------- */

typedef struct srv_thread {
    uv_loop_t loop;
    uv_async_t stop;
    fsrv *srv;
    world w;                 /* only the script fields are used */
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

static void sync_history_copy(void **state) {
    (void)state;
    dlgt_timeout(30, __func__);
    static srv_thread t;
    dlgt_daemon certs;
    char ca[400], err[256];
    uv_thread_t th;
    memset(&t, 0, sizeof(t));
    assert_int_equal(dlgt_setup(&certs, NULL), 0);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs.certs);
    assert_int_equal(uv_loop_init(&t.loop), 0);
    t.w.fn = s_history;
    assert_int_equal(fsrv_start(&t.loop, certs.certs, on_frame, &t.w, 0, &t.srv), 0);
    assert_int_equal(uv_async_init(&t.loop, &t.stop, on_stop), 0);
    t.stop.data = &t;
    unsigned port = fsrv_port(t.srv);
    assert_int_equal(uv_thread_create(&th, srv_main, &t), 0);

    dlg_client_opts *o = NULL;
    assert_int_equal(dlg_client_opts_new(&o), 0);
    dlg_client_opts_set_host(o, "127.0.0.1");
    dlg_client_opts_set_port(o, port);
    dlg_client_opts_set_ca_file(o, ca);
    dlg_client_opts_set_reconnect(o, 0);
    dlg_client *c = NULL;
    dlg_history_reply *h = NULL;
    assert_int_equal(dlg_sync_connect(o, 5000, &c, err, sizeof(err)), 0);
    assert_int_equal(dlg_sync_join(c, "r", 5000, err, sizeof(err)), 0);
    assert_int_equal(dlg_sync_history(c, "r", "tick", 0, 10, 1, 3, 5000, &h, err, sizeof(err)),
                     0);
    assert_non_null(h);
    assert_int_equal(dlg_sync_history(c, "r", "none", 0, 0, 0, 0, 5000, &h, err, sizeof(err)),
                     DLG_ESTATE);
    assert_string_equal(err, "FAILED_PRECONDITION: not a member of room x");
    assert_int_equal(dlg_sync_history(c, "", NULL, 0, 0, 0, 0, 5000, &h, err, sizeof(err)),
                     DLG_EINVAL);
    dlg_client_free(c);
    /* The copy outlives the client. */
    assert_string_equal(h->room, "r");
    assert_int_equal(h->n_events, 3);
    assert_int_equal(h->complete, 1);
    assert_int_equal(h->epoch, 7);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(h->events[i].seq, 4 + i);
        assert_int_equal(h->events[i].ts_ms, 1004 + i);
        assert_string_equal(h->events[i].room, "r");
        assert_string_equal(h->events[i].event, "tick");
        assert_string_equal(h->events[i].from, "system");
        assert_int_equal(h->events[i].len, 2);
        assert_memory_equal(h->events[i].data, "\x08\x01", 2);
    }
    dlg_history_reply_free(h);
    dlg_history_reply_free(NULL);
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
        cmocka_unit_test(sync_batch_delivered_once_in_order),
        cmocka_unit_test(auto_join_batch_delivered),
        cmocka_unit_test(recover_replays_missed_events),
        cmocka_unit_test(recover_new_epoch_reports_gap),
        cmocka_unit_test(recover_unavailable_tries_again),
        cmocka_unit_test(server_gap_reported_in_order),
        cmocka_unit_test(recover_evicted_reports_gap),
        cmocka_unit_test(position_from_joined_without_batch),
        cmocka_unit_test(auto_joined_new_epoch_reports_gap),
        cmocka_unit_test(auto_joined_rooms_are_known),
        cmocka_unit_test(recovery_batch_follows_recorded_subscriptions),
        cmocka_unit_test(history_request_and_reply),
        cmocka_unit_test(late_history_reply_is_not_delivered),
        cmocka_unit_test(sync_history_copy),
    };
    int rc = cmocka_run_group_tests_name("client_history", tests, NULL, NULL);
    dlgt_timeout(0, NULL);
    return rc;
}
