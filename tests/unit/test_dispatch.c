/* test_dispatch.c: the protocol layer with what is under it, nothing of
 * the app layer (no boot, no config file, no listener): connections without
 * sockets, frames handed to dlg_dispatch_frame, replies read off their
 * output queues. The state machine (Hello first, once), request ids echoed
 * and 0 refused, rooms (Join, Trigger with its Ack, Leave), presence names
 * in Subscribe, and undecodable frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "access.h"
#include "conn.h"
#include "fakeconn.h"
#include "fakeserver.h"
#include "dispatch.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "ratelimit.h"
#include "room.h"

typedef struct world {
    uv_loop_t loop;
    dlg_server srv;
    dlg_conn *c[2];
} world;

static dlg_conn *conn_new(dlg_server *s) {
    dlg_conn *c = fake_conn_new(s, DLG_CONN_HELLO, "unit");
    assert_non_null(c);
    return c;
}

static int setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    dlg_server *s = &w->srv;
    assert_int_equal(fake_server_init(s, &w->loop), 0);
    s->opts.allow_anonymous = 1;
    static const char *const any[] = {"*"};
    dlg_room_spec spec = {.id = "r", .events = any, .n_events = 1, .join = any, .n_join = 1,
                          .trigger = any, .n_trigger = 1, .default_subs = any,
                          .n_default_subs = 1};
    char err[256];
    dlg_room *r = NULL;
    assert_int_equal(dlg_rooms_add(s->rooms, &spec, 0, &r, err, sizeof(err)), 0);
    w->c[0] = conn_new(s);
    w->c[1] = conn_new(s);
    *state = w;
    return 0;
}

static int teardown(void **state) {
    world *w = *state;
    while (w->srv.conns)
        dlg_conn_close(w->srv.conns, "test over");
    /* The flush takes closed connections off the dirty list (they are
     * freed only then, as in the daemon's loop). */
    dlg_conn_flush_all(&w->srv);
    uv_close((uv_handle_t *)&w->srv.kick, NULL);
    for (int i = 0; i < 5; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    dlg_rooms_free(w->srv.rooms);
    dlg_ratelimit_free(w->srv.rates);
    free(w->srv.flush_v);
    free(w);
    return 0;
}

/* Dispatches f on c; returns what dispatch returned. */
static int send_cf(dlg_conn *c, Dialogue__V1__ClientFrame *f) {
    uint8_t buf[4096];
    size_t n = protobuf_c_message_pack(&f->base, buf);
    return dlg_dispatch_frame(c, buf, n);
}

/* Takes the oldest queued frame off c (NULL when none); free it after. */
static Dialogue__V1__ServerFrame *next(dlg_conn *c) {
    if (c->q_len == 0)
        return NULL;
    dlg_outq_item *it = &c->q[c->q_head];
    Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(
        NULL, it->buf->len - DLG_FRAME_HDR, it->buf->data + DLG_FRAME_HDR);
    assert_non_null(f);
    c->q_bytes -= it->buf->len;
    dlg_buf_unref(it->buf);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    c->q_popped++;
    return f;
}

static void expect(dlg_conn *c, int msg_case, uint64_t rid) {
    Dialogue__V1__ServerFrame *f = next(c);
    assert_non_null(f);
    if ((int)f->msg_case != msg_case && f->msg_case == DIALOGUE__V1__SERVER_FRAME__MSG_ERROR)
        fail_msg("expected case %d, got Error %d: %s", msg_case, f->error->code,
                 f->error->message);
    assert_int_equal(f->msg_case, msg_case);
    assert_int_equal(f->request_id, rid);
    dialogue__v1__server_frame__free_unpacked(f, NULL);
}

static void expect_error(dlg_conn *c, uint64_t rid, int code, const char *contains) {
    Dialogue__V1__ServerFrame *f = next(c);
    assert_non_null(f);
    assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_ERROR);
    assert_int_equal(f->request_id, rid);
    assert_int_equal(f->error->code, code);
    if (strstr(f->error->message, contains) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", f->error->message, contains);
    dialogue__v1__server_frame__free_unpacked(f, NULL);
}

static void hello(dlg_conn *c, uint64_t rid) {
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    h.protocol_version = 1;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO;
    f.hello = &h;
    assert_int_equal(send_cf(c, &f), 0);
    expect(c, DIALOGUE__V1__SERVER_FRAME__MSG_WELCOME, rid);
    assert_int_equal(c->state, DLG_CONN_READY);
}

static void ping(dlg_conn *c, uint64_t rid, uint64_t nonce) {
    Dialogue__V1__Ping p = DIALOGUE__V1__PING__INIT;
    p.nonce = nonce;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_PING;
    f.ping = &p;
    send_cf(c, &f);
}

static void test_hello_first_and_once(void **state) {
    world *w = *state;
    dlg_conn *c = w->c[0];
    ping(c, 1, 5);
    expect_error(c, 1, DIALOGUE__V1__STATUS__FAILED_PRECONDITION, "Hello");
    assert_true(c->close_after_flush);
    dlg_conn *d = w->c[1];
    hello(d, 1);
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    h.protocol_version = 1;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.request_id = 2;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO;
    f.hello = &h;
    assert_int_not_equal(send_cf(d, &f), 0); /* stops reading */
    expect_error(d, 2, DIALOGUE__V1__STATUS__FAILED_PRECONDITION, "Hello");
    assert_true(d->close_after_flush);
}

static void test_ping_echoes_and_id_zero_is_refused(void **state) {
    world *w = *state;
    dlg_conn *c = w->c[0];
    hello(c, 1);
    ping(c, 77, 123);
    Dialogue__V1__ServerFrame *f = next(c);
    assert_non_null(f);
    assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_PONG);
    assert_int_equal(f->request_id, 77);
    assert_int_equal(f->pong->nonce, 123);
    dialogue__v1__server_frame__free_unpacked(f, NULL);
    ping(c, 0, 1);
    expect_error(c, 0, DIALOGUE__V1__STATUS__INVALID_ARGUMENT, "reserved");
    assert_false(c->close_after_flush); /* after Welcome the session goes on */
}

static void test_rooms_join_trigger_leave(void **state) {
    world *w = *state;
    dlg_conn *a = w->c[0], *b = w->c[1];
    hello(a, 1);
    hello(b, 1);
    Dialogue__V1__Join j = DIALOGUE__V1__JOIN__INIT;
    j.room = "nope";
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.request_id = 2;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN;
    f.join = &j;
    send_cf(a, &f);
    expect_error(a, 2, DIALOGUE__V1__STATUS__NOT_FOUND, "nope");
    j.room = "r";
    f.request_id = 3;
    send_cf(a, &f);
    expect(a, DIALOGUE__V1__SERVER_FRAME__MSG_JOINED, 3);
    send_cf(b, &f);
    expect(b, DIALOGUE__V1__SERVER_FRAME__MSG_JOINED, 3);
    Dialogue__V1__Trigger t = DIALOGUE__V1__TRIGGER__INIT;
    t.room = "r";
    t.event = "e";
    t.data.data = (uint8_t *)"hi";
    t.data.len = 2;
    Dialogue__V1__ClientFrame tf = DIALOGUE__V1__CLIENT_FRAME__INIT;
    tf.request_id = 4;
    tf.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_TRIGGER;
    tf.trigger = &t;
    send_cf(a, &tf);
    /* a is subscribed to "*" too: its Event comes before its Ack. */
    expect(a, DIALOGUE__V1__SERVER_FRAME__MSG_EVENT, 0);
    Dialogue__V1__ServerFrame *ack = next(a);
    assert_non_null(ack);
    assert_int_equal(ack->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_ACK);
    assert_int_equal(ack->request_id, 4);
    assert_int_equal(ack->ack->seq, 1);
    assert_int_equal(ack->ack->recipients, 2);
    dialogue__v1__server_frame__free_unpacked(ack, NULL);
    expect(b, DIALOGUE__V1__SERVER_FRAME__MSG_EVENT, 0);
    /* presence: events are the server's own */
    t.event = "presence:join";
    tf.request_id = 5;
    send_cf(a, &tf);
    expect_error(a, 5, DIALOGUE__V1__STATUS__PERMISSION_DENIED, "server's own");
    Dialogue__V1__Leave l = DIALOGUE__V1__LEAVE__INIT;
    l.room = "r";
    Dialogue__V1__ClientFrame lf = DIALOGUE__V1__CLIENT_FRAME__INIT;
    lf.request_id = 6;
    lf.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_LEAVE;
    lf.leave = &l;
    send_cf(a, &lf);
    expect(a, DIALOGUE__V1__SERVER_FRAME__MSG_LEFT, 6);
    t.event = "e";
    tf.request_id = 7;
    send_cf(a, &tf);
    expect_error(a, 7, DIALOGUE__V1__STATUS__FAILED_PRECONDITION, "not a member");
}

static void test_presence_names_in_subscribe(void **state) {
    world *w = *state;
    dlg_conn *a = w->c[0];
    hello(a, 1);
    Dialogue__V1__Join j = DIALOGUE__V1__JOIN__INIT;
    j.room = "r";
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.request_id = 2;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN;
    f.join = &j;
    send_cf(a, &f);
    expect(a, DIALOGUE__V1__SERVER_FRAME__MSG_JOINED, 2);
    char *names[] = {"presence:join", "presence:leave"};
    Dialogue__V1__Subscribe s = DIALOGUE__V1__SUBSCRIBE__INIT;
    s.room = "r";
    s.events = names;
    s.n_events = 2;
    Dialogue__V1__ClientFrame sf = DIALOGUE__V1__CLIENT_FRAME__INIT;
    sf.request_id = 3;
    sf.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_SUBSCRIBE;
    sf.subscribe = &s;
    send_cf(a, &sf);
    Dialogue__V1__ServerFrame *jd = next(a);
    assert_non_null(jd);
    assert_int_equal(jd->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_JOINED);
    /* "*" (the room's default) and both system events. */
    assert_int_equal(jd->joined->n_subscriptions, 3);
    assert_string_equal(jd->joined->subscriptions[1], "presence:join");
    assert_string_equal(jd->joined->subscriptions[2], "presence:leave");
    dialogue__v1__server_frame__free_unpacked(jd, NULL);
    /* The frame's own list was left as it came (it is freed by protobuf-c). */
    assert_string_equal(names[0], "presence:join");
    char *bad[] = {"presence:who"};
    s.events = bad;
    s.n_events = 1;
    sf.request_id = 4;
    send_cf(a, &sf);
    expect_error(a, 4, DIALOGUE__V1__STATUS__NOT_FOUND, "presence:who");
}

static void test_undecodable_frame_closes(void **state) {
    world *w = *state;
    dlg_conn *c = w->c[0];
    hello(c, 1);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_not_equal(dlg_dispatch_frame(c, junk, sizeof(junk)), 0);
    Dialogue__V1__ServerFrame *f = next(c);
    assert_non_null(f);
    assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_ERROR);
    assert_int_equal(f->error->code, DIALOGUE__V1__STATUS__INVALID_ARGUMENT);
    dialogue__v1__server_frame__free_unpacked(f, NULL);
    assert_true(c->close_after_flush);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_first_and_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_echoes_and_id_zero_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rooms_join_trigger_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_names_in_subscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable_frame_closes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
