/* test_conn.c: the network layer alone (daemon/net, linked with nothing
 * above it): real loopback sockets accepted into connections whose frames
 * go to a recording upcall instead of dispatch. The read path and its
 * budgets, the reply floor, the flush, "latest" conflation, the slow
 * consumer cut, codec choice by the first bytes, and the closing upcall. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "codec.h"
#include "conn.h"
#include "conn_int.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "listener.h"
#include "reply.h"

#define SCRATCH_OK ((size_t)DLG_SCRATCH)

/* A server with only what the network layer reads, a listener without a
 * socket of its own (connections are accepted here), and what the upcalls
 * saw. */
typedef struct rig {
    uv_loop_t loop;
    dlg_server srv;
    dlg_listener lis;
    int lfd;                 /* our own listening socket on 127.0.0.1 */
    int port;
    /* what reached the layer above */
    size_t frames;
    Dialogue__V1__ClientFrame *last;
    size_t closings;
    char closing_reason[128];
    int reply_mode;          /* 1 = answer every frame with an Ack of its request id */
} rig;

static rig *g_rig; /* the upcalls have no context pointer but the connection's server */

static int up_frame(dlg_conn *c, const uint8_t *body, size_t len) {
    rig *r = g_rig;
    r->frames++;
    if (r->last)
        dialogue__v1__client_frame__free_unpacked(r->last, NULL);
    r->last = dialogue__v1__client_frame__unpack(NULL, len, body);
    if (r->reply_mode && r->last)
        dlg_reply_ack(c, r->last->request_id, 7, 1);
    return 0;
}

static void up_closing(dlg_conn *c, const char *reason, int was_ready) {
    (void)c;
    (void)was_ready;
    g_rig->closings++;
    snprintf(g_rig->closing_reason, sizeof(g_rig->closing_reason), "%s", reason);
}

static int rig_setup(void **state) {
    rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    g_rig = r;
    assert_int_equal(uv_loop_init(&r->loop), 0);
    dlg_server *s = &r->srv;
    s->loop = &r->loop;
    s->log.level = DLG_LOG_ERROR;
    s->opts.max_frame = 1 << 20;
    s->opts.max_connections = 100;
    s->opts.pre_auth_max_connections = 100;
    s->opts.handshake_timeout_ms = 5000;
    s->opts.pre_auth_max_bytes = 16384;
    s->opts.max_pending_bytes = 1 << 20;
    s->opts.soft_pending_bytes = 1 << 20;
    s->opts.soft_pending_ms = 30000;
    s->opts.write_timeout_ms = 10000;
    s->up.frame = up_frame;
    s->up.closing = up_closing;
    s->rbuf = malloc(SCRATCH_OK);
    s->pbuf = malloc(2 * SCRATCH_OK);
    assert_non_null(s->rbuf);
    assert_non_null(s->pbuf);
    s->wbuf = s->pbuf + DLG_SCRATCH;
    uv_idle_init(s->loop, &s->kick);
    r->lis.srv = s;
    r->lis.fd = -1;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->lfd, 16), 0);
    assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&a, &al), 0);
    r->port = ntohs(a.sin_port);
    *state = r;
    return 0;
}

static void spin(rig *r, int turns) {
    for (int i = 0; i < turns; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        dlg_conn_flush_all(&r->srv);
        dlg_conn_reap(&r->srv);
    }
}

static int rig_teardown(void **state) {
    rig *r = *state;
    while (r->srv.conns)
        dlg_conn_close(r->srv.conns, "test over");
    uv_close((uv_handle_t *)&r->srv.kick, NULL);
    for (int i = 0; i < 10; i++)
        uv_run(&r->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    if (r->last)
        dialogue__v1__client_frame__free_unpacked(r->last, NULL);
    close(r->lfd);
    free(r->srv.rbuf);
    free(r->srv.pbuf);
    free(r->srv.flush_v);
    free(r);
    return 0;
}

/* A client socket connected to our listener, and its accepted end handed
 * to the layer: returns the client fd; the connection is srv.conns. */
static int connect_one(rig *r) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fd >= 0);
    dlg_conn_accept(&r->lis, fd);
    assert_non_null(r->srv.conns);
    return c;
}

static void send_frame(int fd, const Dialogue__V1__ClientFrame *f) {
    uint8_t buf[4096];
    size_t n = protobuf_c_message_get_packed_size(&f->base);
    assert_true(n + DLG_FRAME_HDR <= sizeof(buf));
    dlg_frame_put_header(buf, (uint32_t)n);
    protobuf_c_message_pack(&f->base, buf + DLG_FRAME_HDR);
    assert_int_equal(write(fd, buf, n + DLG_FRAME_HDR), (ssize_t)(n + DLG_FRAME_HDR));
}

/* Reads what the daemon side wrote, spinning its loop, until want bytes
 * came or it closed (returns what came; *eof set on a close). */
static size_t read_some(rig *r, int fd, uint8_t *buf, size_t want, int *eof) {
    size_t got = 0;
    *eof = 0;
    for (int i = 0; i < 200 && got < want; i++) {
        spin(r, 1);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, want - got);
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (n > 0)
            got += (size_t)n;
    }
    return got;
}

/* The next ServerFrame from fd (NULL on a close); free it after. */
static Dialogue__V1__ServerFrame *read_frame(rig *r, int fd) {
    uint8_t hdr[DLG_FRAME_HDR], body[65536];
    int eof;
    if (read_some(r, fd, hdr, sizeof(hdr), &eof) != sizeof(hdr))
        return NULL;
    uint32_t n = ((uint32_t)hdr[1] << 24) | ((uint32_t)hdr[2] << 16) | ((uint32_t)hdr[3] << 8) |
                 hdr[4];
    assert_int_equal(hdr[0], 0);
    assert_true(n <= sizeof(body));
    assert_int_equal(read_some(r, fd, body, n, &eof), n);
    return dialogue__v1__server_frame__unpack(NULL, n, body);
}

static void test_frames_reach_the_layer_above_and_replies_come_back(void **state) {
    rig *r = *state;
    r->reply_mode = 1;
    int fd = connect_one(r);
    Dialogue__V1__Ping p = DIALOGUE__V1__PING__INIT;
    p.nonce = 9;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.request_id = 41;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_PING;
    f.ping = &p;
    send_frame(fd, &f);
    f.request_id = 42;
    send_frame(fd, &f);
    for (int id = 41; id <= 42; id++) {
        Dialogue__V1__ServerFrame *sf = read_frame(r, fd);
        assert_non_null(sf);
        assert_int_equal(sf->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_ACK);
        assert_int_equal(sf->request_id, (uint64_t)id);
        dialogue__v1__server_frame__free_unpacked(sf, NULL);
    }
    assert_int_equal(r->frames, 2);
    assert_int_equal(r->last->ping->nonce, 9);
    assert_ptr_equal(r->srv.conns->codec, &dlg_codec_native);
    close(fd);
}

static void expect_error_then_close(rig *r, int fd, int status, const char *contains) {
    Dialogue__V1__ServerFrame *sf = read_frame(r, fd);
    assert_non_null(sf);
    assert_int_equal(sf->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_ERROR);
    assert_int_equal(sf->error->code, status);
    assert_non_null(strstr(sf->error->message, contains));
    dialogue__v1__server_frame__free_unpacked(sf, NULL);
    uint8_t b[64];
    int eof = 0;
    read_some(r, fd, b, sizeof(b), &eof);
    assert_true(eof);
    assert_int_equal(r->closings, 1);
}

static void test_input_budget_before_welcome(void **state) {
    rig *r = *state;
    int fd = connect_one(r);
    uint8_t junk[20000];
    memset(junk, 0, sizeof(junk)); /* frames of length 0... then a header */
    /* One frame announcing 18000 bytes (under max_frame, over the budget). */
    dlg_frame_put_header(junk, 18000);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    expect_error_then_close(r, fd, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED, "16384");
    close(fd);
}

static void test_oversize_frame_refused_on_its_header(void **state) {
    rig *r = *state;
    r->srv.opts.max_frame = 100;
    int fd = connect_one(r);
    assert_int_equal(r->srv.conns->dec.max_frame, 100);
    uint8_t hdr[DLG_FRAME_HDR];
    dlg_frame_put_header(hdr, 101);
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    expect_error_then_close(r, fd, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                            "frame length 101 is above the limit 100");
    close(fd);
}

static void test_bad_flag_refused(void **state) {
    rig *r = *state;
    int fd = connect_one(r);
    uint8_t hdr[DLG_FRAME_HDR] = {1, 0, 0, 0, 1};
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    expect_error_then_close(r, fd, DIALOGUE__V1__STATUS__INVALID_ARGUMENT, "frame flag 1");
    close(fd);
}

static void test_first_bytes_choose_http(void **state) {
    rig *r = *state;
    int fd = connect_one(r);
    const char req[] = "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    uint8_t buf[2048];
    int eof = 0;
    size_t n = read_some(r, fd, buf, sizeof(buf) - 1, &eof);
    buf[n] = 0;
    assert_true(n > 12);
    assert_memory_equal(buf, "HTTP/1.1 404", 12);
    assert_true(eof); /* refusals close */
    assert_int_equal(r->frames, 0);
    close(fd);
}

/* Queues a frame of n bytes (a Pong frame padded to n) to c. */
static dlg_buf *frame_of(size_t n) {
    dlg_buf *b = dlg_buf_new(n);
    assert_non_null(b);
    memset(b->data, 0, n);
    dlg_frame_put_header(b->data, (uint32_t)(n - DLG_FRAME_HDR));
    return b;
}

static void test_latest_conflates_in_the_queue(void **state) {
    rig *r = *state;
    int fd = connect_one(r);
    dlg_conn *c = r->srv.conns;
    int key;
    /* Three values of one "latest" event and a stream frame between:
     * before a flush only the newest value stays, in the first one's
     * place. Frames are Pongs with distinct nonces. */
    dlg_buf *v[3], *other;
    for (int i = 0; i < 3; i++) {
        Dialogue__V1__Pong pg = DIALOGUE__V1__PONG__INIT;
        pg.nonce = (uint64_t)(100 + i);
        Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
        f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PONG;
        f.pong = &pg;
        assert_int_equal(dlg_frame_pack(&f.base, 0, &v[i]), 0);
    }
    Dialogue__V1__Pong pg = DIALOGUE__V1__PONG__INIT;
    pg.nonce = 7;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PONG;
    f.pong = &pg;
    assert_int_equal(dlg_frame_pack(&f.base, 0, &other), 0);
    dlg_conn_send_latest(c, v[0], &key);
    dlg_conn_send(c, other);
    dlg_conn_send_latest(c, v[1], &key);
    dlg_conn_send_latest(c, v[2], &key);
    assert_int_equal(c->q_len, 2);
    assert_int_equal(c->conflated, 2);
    uint64_t want[] = {102, 7};
    for (int i = 0; i < 2; i++) {
        Dialogue__V1__ServerFrame *sf = read_frame(r, fd);
        assert_non_null(sf);
        assert_int_equal(sf->pong->nonce, want[i]);
        dialogue__v1__server_frame__free_unpacked(sf, NULL);
    }
    for (int i = 0; i < 3; i++)
        dlg_buf_unref(v[i]);
    dlg_buf_unref(other);
    close(fd);
}

static void test_slow_consumer_cut_at_the_cap(void **state) {
    rig *r = *state;
    r->srv.opts.max_pending_bytes = 64 * 1024;
    int fd = connect_one(r);
    dlg_conn *c = r->srv.conns;
    c->state = DLG_CONN_READY; /* past Welcome, as dispatch would make it */
    dlg_buf *b = frame_of(4096);
    /* Nothing is flushed in between: the queue alone passes the cap. */
    for (int i = 0; i < 40 && !c->in_doomed; i++)
        dlg_conn_send(c, b);
    assert_true(c->in_doomed);
    assert_true(dlg_conn_pending(c) <= r->srv.opts.max_pending_bytes);
    assert_int_equal(r->srv.counters.slow_consumers, 1);
    dlg_conn_reap(&r->srv);
    assert_int_equal(r->closings, 1);
    assert_string_equal(r->closing_reason, "slow consumer");
    dlg_buf_unref(b);
    spin(r, 3);
    close(fd);
}

static void test_close_after_flush_sends_everything_first(void **state) {
    rig *r = *state;
    int fd = connect_one(r);
    dlg_conn *c = r->srv.conns;
    dlg_buf *b = frame_of(300000); /* several writes' worth */
    dlg_conn_send(c, b);
    dlg_buf_unref(b);
    dlg_conn_close_after_flush(c, "done");
    uint8_t *buf = malloc(400000);
    assert_non_null(buf);
    int eof = 0;
    size_t n = read_some(r, fd, buf, 400000, &eof);
    assert_int_equal(n, 300000);
    assert_true(eof);
    assert_int_equal(r->closings, 1);
    assert_string_equal(r->closing_reason, "done");
    free(buf);
    close(fd);
}

static void test_peer_close_calls_closing_once(void **state) {
    rig *r = *state;
    int fd = connect_one(r);
    close(fd);
    spin(r, 5);
    assert_int_equal(r->closings, 1);
    assert_null(r->srv.conns);
    assert_int_equal(r->srv.n_conns, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frames_reach_the_layer_above_and_replies_come_back,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_input_budget_before_welcome, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_oversize_frame_refused_on_its_header, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_bad_flag_refused, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_first_bytes_choose_http, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_latest_conflates_in_the_queue, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_cut_at_the_cap, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_close_after_flush_sends_everything_first,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_calls_closing_once, rig_setup,
                                        rig_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
