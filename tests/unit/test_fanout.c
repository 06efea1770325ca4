/* test_fanout.c: the core layer alone (daemon/core, linked with net and
 * what is under it, nothing above): dlg_fanout_emit numbers an event,
 * encodes it once, queues the same buffer to each subscriber of (room,
 * event) and nobody else, conflates "latest" events, hands the frame to
 * the keeper and (only when asked) the forwarder seams, and goes to the
 * cluster log instead when the forwarder says the log numbers the room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "conn.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "fanout.h"
#include "room.h"

#define N_CONNS 6

typedef struct world {
    uv_loop_t loop;
    dlg_server srv;
    dlg_conn *c[N_CONNS];
    dlg_room *room;
    /* what the seams saw */
    size_t kept, forwarded, logged, interest;
    uint64_t kept_seq;
    dlg_buf *kept_frame;
    int log_rooms;           /* the forwarder's answer to log_room */
} world;

static void keep(void *ud, dlg_room *r, const char *event, uint64_t seq, uint64_t ts_ms,
                 dlg_buf *frame) {
    (void)r;
    (void)event;
    (void)ts_ms;
    world *w = ud;
    w->kept++;
    w->kept_seq = seq;
    w->kept_frame = frame; /* borrowed for the assertion only */
}

static int log_room(void *ud, const dlg_room *r) {
    (void)r;
    return ((world *)ud)->log_rooms;
}

static int log_publish(void *ud, const dlg_room *r, const char *event, dlg_buf *frame,
                       uint64_t *ticket, char *err, size_t errlen) {
    (void)r;
    (void)event;
    (void)frame;
    (void)err;
    (void)errlen;
    world *w = ud;
    *ticket = ++w->logged;
    return 0;
}

static void publish(void *ud, const dlg_room *r, const char *event, dlg_buf *frame) {
    (void)r;
    (void)event;
    (void)frame;
    ((world *)ud)->forwarded++;
}

static void interest(void *ud, const dlg_room *r) {
    (void)r;
    ((world *)ud)->interest++;
}

static int setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->srv.loop = &w->loop;
    w->srv.log.level = DLG_LOG_ERROR;
    w->srv.opts.max_pending_bytes = 1 << 20;
    uv_idle_init(&w->loop, &w->srv.kick);
    w->srv.keeper = (dlg_keeper){.ud = w, .append = keep};
    w->srv.fwd = (dlg_forwarder){.ud = w, .log_room = log_room, .log_publish = log_publish,
                                 .publish = publish, .room_changed = interest};
    assert_non_null(w->srv.rooms = dlg_rooms_new());
    static const char *const events[] = {"*"};
    dlg_room_spec spec = {.id = "r", .events = events, .n_events = 1};
    char err[256];
    assert_int_equal(dlg_rooms_add(w->srv.rooms, &spec, 0, &w->room, err, sizeof(err)), 0);
    for (int i = 0; i < N_CONNS; i++) {
        w->c[i] = calloc(1, sizeof(dlg_conn));
        assert_non_null(w->c[i]);
        w->c[i]->srv = &w->srv;
        w->c[i]->state = DLG_CONN_READY;
        snprintf(w->c[i]->client_id, sizeof(w->c[i]->client_id), "c%d", i);
        w->c[i]->id = (uint64_t)i + 1;
    }
    *state = w;
    return 0;
}

static int teardown(void **state) {
    world *w = *state;
    for (int i = 0; i < N_CONNS; i++) {
        dlg_conn *c = w->c[i];
        while (c->n_members)
            dlg_room_leave(c->members[0]->room, c);
        for (size_t k = 0; k < c->q_len; k++)
            dlg_buf_unref(c->q[(c->q_head + k) % c->q_cap].buf);
        free(c->q);
        free(c->latest);
        free(c->members);
        free(c);
    }
    dlg_rooms_free(w->srv.rooms);
    uv_close((uv_handle_t *)&w->srv.kick, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    free(w);
    return 0;
}

static dlg_member *join(world *w, int i, const char *const *events, size_t n) {
    dlg_member *m = NULL;
    assert_int_equal(dlg_room_join(w->room, w->c[i], &m), 0);
    if (n) {
        const char *bad = NULL;
        int full = 0;
        assert_int_equal(dlg_room_subscribe(m, (char *const *)events, n, 0, 0, 0, &bad, &full),
                         0);
    }
    return m;
}

static int emit(world *w, const char *event, const char *data, unsigned flags,
                dlg_publish_result *res) {
    Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
    e.room = w->room->id;
    e.event = (char *)event;
    e.data.data = (uint8_t *)data;
    e.data.len = strlen(data);
    e.from = "tester";
    char err[256] = "";
    return dlg_fanout_emit(&w->srv, w->room, &e, flags, 0, res, err, sizeof(err));
}

/* The Event in c's queue at position k. */
static Dialogue__V1__Event *queued(dlg_conn *c, size_t k, Dialogue__V1__ServerFrame **f) {
    dlg_buf *b = c->q[(c->q_head + k) % c->q_cap].buf;
    *f = dialogue__v1__server_frame__unpack(NULL, b->len - DLG_FRAME_HDR,
                                            b->data + DLG_FRAME_HDR);
    assert_non_null(*f);
    assert_int_equal((*f)->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_EVENT);
    return (*f)->event;
}

static void test_numbered_encoded_once_and_only_to_subscribers(void **state) {
    world *w = *state;
    static const char *const a[] = {"a"}, *const b[] = {"b"};
    join(w, 0, a, 1);
    join(w, 1, a, 1);
    join(w, 2, b, 1);
    dlg_member *all = join(w, 3, NULL, 0);
    const char *bad = NULL;
    int full = 0;
    assert_int_equal(dlg_room_subscribe(all, NULL, 0, 1, 0, 0, &bad, &full), 0);
    dlg_publish_result res;
    assert_int_equal(emit(w, "a", "one", 0, &res), 0);
    assert_int_equal(res.seq, 1);
    assert_int_equal(res.recipients, 3); /* c0, c1 and the "*" member */
    assert_int_equal(emit(w, "b", "two", 0, &res), 0);
    assert_int_equal(res.seq, 2);
    assert_int_equal(res.recipients, 2);
    assert_int_equal(w->c[0]->q_len, 1);
    assert_int_equal(w->c[2]->q_len, 1);
    assert_int_equal(w->c[3]->q_len, 2);
    assert_int_equal(w->c[4]->q_len, 0);
    /* One buffer, shared: the same pointer in every queue that has it. */
    assert_ptr_equal(w->c[0]->q[w->c[0]->q_head].buf, w->c[1]->q[w->c[1]->q_head].buf);
    assert_ptr_equal(w->c[0]->q[w->c[0]->q_head].buf, w->c[3]->q[w->c[3]->q_head].buf);
    Dialogue__V1__ServerFrame *f;
    Dialogue__V1__Event *e = queued(w->c[3], 1, &f);
    assert_string_equal(e->event, "b");
    assert_int_equal(e->seq, 2);
    assert_int_equal(e->epoch, w->room->epoch);
    assert_string_equal(e->from, "tester");
    assert_int_equal(f->request_id, 0);
    dialogue__v1__server_frame__free_unpacked(f, NULL);
    assert_int_equal(w->srv.counters.deliveries, 5);
}

static void test_seams_keep_always_forward_when_asked(void **state) {
    world *w = *state;
    static const char *const a[] = {"a"};
    join(w, 0, a, 1);
    dlg_publish_result res;
    assert_int_equal(emit(w, "a", "x", 0, &res), 0);
    assert_int_equal(w->kept, 1);
    assert_int_equal(w->kept_seq, 1);
    assert_ptr_equal(w->kept_frame, w->c[0]->q[w->c[0]->q_head].buf);
    assert_int_equal(w->forwarded, 0); /* a relayed event is not sent back */
    assert_int_equal(emit(w, "a", "y", DLG_EMIT_FORWARD, &res), 0);
    assert_int_equal(w->kept, 2);
    assert_int_equal(w->forwarded, 1);
    /* An event nobody subscribed to is still numbered, kept, forwarded. */
    assert_int_equal(emit(w, "zzz", "z", DLG_EMIT_FORWARD, &res), 0);
    assert_int_equal(res.recipients, 0);
    assert_int_equal(res.seq, 3);
    assert_int_equal(w->kept, 3);
    assert_int_equal(w->forwarded, 2);
}

static void test_cluster_log_numbers_instead(void **state) {
    world *w = *state;
    static const char *const a[] = {"a"};
    join(w, 0, a, 1);
    w->log_rooms = 1;
    dlg_publish_result res;
    assert_int_equal(emit(w, "a", "x", DLG_EMIT_LOG | DLG_EMIT_FORWARD, &res), 0);
    assert_int_equal(res.ticket, 1);
    assert_int_equal(res.seq, 0);
    assert_int_equal(w->c[0]->q_len, 0); /* delivered when the log hands it back */
    assert_int_equal(w->kept, 0);
    assert_int_equal(w->room->seq, 0);
    /* Without DLG_EMIT_LOG (the log's own delivery) it goes out here. */
    assert_int_equal(emit(w, "a", "x", 0, &res), 0);
    assert_int_equal(res.seq, 1);
    assert_int_equal(w->c[0]->q_len, 1);
}

static void test_latest_policy_conflates(void **state) {
    world *w = *state;
    static const char *const m[] = {"metrics"};
    join(w, 0, m, 1);
    dlg_evslot *slot = dlg_room_slot(w->room, "metrics");
    assert_non_null(slot);
    slot->delivery = DLG_DELIVERY_LATEST;
    dlg_publish_result res;
    for (int i = 0; i < 5; i++)
        assert_int_equal(emit(w, "metrics", i == 4 ? "newest" : "old", 0, &res), 0);
    assert_int_equal(res.seq, 5);
    assert_int_equal(w->c[0]->q_len, 1);
    assert_int_equal(w->c[0]->conflated, 4);
    Dialogue__V1__ServerFrame *f;
    Dialogue__V1__Event *e = queued(w->c[0], 0, &f);
    assert_int_equal(e->seq, 5);
    assert_memory_equal(e->data.data, "newest", 6);
    dialogue__v1__server_frame__free_unpacked(f, NULL);
}

static void test_a_slow_member_is_doomed_not_closed_during_the_loop(void **state) {
    world *w = *state;
    static const char *const a[] = {"a"};
    join(w, 0, a, 1);
    join(w, 1, a, 1);
    w->srv.opts.max_pending_bytes = 1000;
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    dlg_publish_result res;
    for (int i = 0; i < 4; i++)
        assert_int_equal(emit(w, "a", big, 0, &res), 0);
    /* Both passed the cap; both are marked, neither closed yet (the fan-out
     * loop must not lose its place), and the count says so. */
    assert_true(w->c[0]->in_doomed);
    assert_true(w->c[1]->in_doomed);
    assert_int_equal(w->c[0]->state, DLG_CONN_READY);
    assert_int_equal(w->srv.counters.slow_consumers, 2);
    w->srv.doomed = NULL; /* not reaped here: these connections have no sockets */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numbered_encoded_once_and_only_to_subscribers,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_seams_keep_always_forward_when_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cluster_log_numbers_instead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_policy_conflates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_slow_member_is_doomed_not_closed_during_the_loop,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
