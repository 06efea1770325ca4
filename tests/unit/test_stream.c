/* test_stream.c: lib/stream, the socket + TLS object the daemon's
 * connections and the client library share. The read side is driven with
 * bytes moved by hand between a server and a client stream (handshake,
 * plaintext, close_notify, failures before and after the handshake); the
 * senders over a real loopback TCP pair whose reader holds back until the
 * socket is full, so the uv_write and spill paths and their completions
 * run. Links only the layers below (libdlgcommon: base, wire, tls,
 * stream). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dlg_err.h"
#include "dlg_stream.h"

#include "selfsigned.h"

/* What the owner of a stream saw through dlg_stream_up. */
typedef struct owner {
    int handshakes;
    int stop_on_plain;     /* plain returns 1 */
    int stop_on_handshake; /* handshake returns 1 */
    uint8_t got[1 << 16];
    size_t have;
} owner;

static int up_handshake(void *ud) {
    owner *o = ud;
    o->handshakes++;
    return o->stop_on_handshake;
}

static int up_plain(void *ud, const uint8_t *data, size_t len) {
    owner *o = ud;
    assert_true(o->have + len <= sizeof(o->got));
    memcpy(o->got + o->have, data, len);
    o->have += len;
    return o->stop_on_plain;
}

static const dlg_stream_up up = {.handshake = up_handshake, .plain = up_plain};

/* ---- the read side, bytes moved by hand --------------------------------- */

typedef struct tls_pair {
    uv_loop_t loop;
    SSL_CTX *sctx, *cctx;
    dlg_stream srv, cli;
    owner so, co;
    uint8_t pbuf[16 * 1024];
    char err[256];
} tls_pair;

static tls_pair *tls_pair_new(void) {
    tls_pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(uv_loop_init(&p->loop), 0);
    p->sctx = SSL_CTX_new(TLS_server_method());
    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->sctx);
    assert_non_null(p->cctx);
    assert_int_equal(SSL_CTX_use_certificate(p->sctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, g_key), 1);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
    assert_int_equal(dlg_stream_init(&p->srv, &p->loop, &p->so, NULL), 0);
    assert_int_equal(dlg_stream_init(&p->cli, &p->loop, &p->co, NULL), 0);
    assert_int_equal(dlg_stream_tls_start(&p->srv, p->sctx, 1, NULL, 0), 0);
    assert_int_equal(dlg_stream_tls_start(&p->cli, p->cctx, 0, NULL, 0), 0);
    assert_true(p->srv.tls_on && p->cli.tls_on);
    return p;
}

static void tls_pair_free(tls_pair *p) {
    uv_close((uv_handle_t *)&p->srv.tcp, NULL);
    uv_close((uv_handle_t *)&p->cli.tcp, NULL);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    dlg_stream_free_tls(&p->srv);
    dlg_stream_free_tls(&p->cli);
    dlg_stream_free_tls(&p->srv); /* idempotent */
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    free(p);
}

/* Moves what `from` made to `to` through dlg_stream_input; its result. */
static int move(tls_pair *p, dlg_stream *from, dlg_stream *to, owner *o) {
    uint8_t buf[64 * 1024];
    size_t n = dlg_tlsio_out_take(&from->tls, buf, sizeof(buf));
    p->err[0] = '\0';
    return dlg_stream_input(to, buf, n, p->pbuf, sizeof(p->pbuf), &up, o, p->err,
                            sizeof(p->err));
}

static void handshake(tls_pair *p) {
    /* The client's first flight: input of nothing advances the handshake. */
    assert_int_equal(dlg_stream_input(&p->cli, NULL, 0, p->pbuf, sizeof(p->pbuf), &up, &p->co,
                                      p->err, sizeof(p->err)),
                     0);
    assert_true(dlg_tlsio_out_pending(&p->cli.tls) > 0);
    for (int i = 0; i < 8 && !(p->srv.tls.done && p->cli.tls.done); i++) {
        assert_int_equal(move(p, &p->cli, &p->srv, &p->so), 0);
        assert_int_equal(move(p, &p->srv, &p->cli, &p->co), 0);
    }
    assert_true(p->srv.tls.done && p->cli.tls.done);
    assert_int_equal(p->so.handshakes, 1);
    assert_int_equal(p->co.handshakes, 1);
}

static void test_plaintext_input_goes_up_as_it_is(void **state) {
    (void)state;
    uv_loop_t loop;
    dlg_stream s;
    owner o = {0};
    uint8_t pbuf[64];
    char err[64];
    memset(&s, 0, sizeof(s));
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(dlg_stream_init(&s, &loop, &o, NULL), 0);
    assert_int_equal(s.tcp.data, &o);
    assert_int_equal(dlg_stream_input(&s, (const uint8_t *)"abc", 3, pbuf, sizeof(pbuf), &up, &o,
                                      err, sizeof(err)),
                     0);
    assert_int_equal(dlg_stream_input(&s, NULL, 0, pbuf, sizeof(pbuf), &up, &o, err,
                                      sizeof(err)),
                     0);
    o.stop_on_plain = 1;
    assert_int_equal(dlg_stream_input(&s, (const uint8_t *)"de", 2, pbuf, sizeof(pbuf), &up, &o,
                                      err, sizeof(err)),
                     1);
    assert_int_equal(o.have, 5);
    assert_memory_equal(o.got, "abcde", 5);
    assert_int_equal(o.handshakes, 0);
    uv_close((uv_handle_t *)&s.tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    dlg_stream_free_tls(&s);
}

static void test_tls_handshake_then_records_both_ways(void **state) {
    (void)state;
    tls_pair *p = tls_pair_new();
    handshake(p);
    /* Many records in one input, each record's plaintext through pbuf. */
    uint8_t msg[40000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(dlg_tlsio_write(&p->cli.tls, msg, sizeof(msg)), 0);
    assert_int_equal(move(p, &p->cli, &p->srv, &p->so), 0);
    assert_int_equal(p->so.have, sizeof(msg));
    assert_memory_equal(p->so.got, msg, sizeof(msg));
    assert_int_equal(dlg_tlsio_write(&p->srv.tls, "pong", 4), 0);
    assert_int_equal(move(p, &p->srv, &p->cli, &p->co), 0);
    /* A TLS 1.3 server may send session tickets first: they carry no data. */
    assert_int_equal(p->co.have, 4);
    assert_memory_equal(p->co.got, "pong", 4);
    /* close_notify after data: the data first, then DLG_ECLOSED. */
    assert_int_equal(dlg_tlsio_write(&p->cli.tls, "bye", 3), 0);
    dlg_tlsio_shutdown(&p->cli.tls);
    assert_int_equal(move(p, &p->cli, &p->srv, &p->so), DLG_ECLOSED);
    assert_int_equal(p->so.have, sizeof(msg) + 3);
    assert_memory_equal(p->so.got + sizeof(msg), "bye", 3);
    tls_pair_free(p);
}

static void test_tls_callbacks_stop_the_input(void **state) {
    (void)state;
    tls_pair *p = tls_pair_new();
    p->so.stop_on_handshake = 1;
    assert_int_equal(dlg_stream_input(&p->cli, NULL, 0, p->pbuf, sizeof(p->pbuf), &up, &p->co,
                                      p->err, sizeof(p->err)),
                     0);
    assert_int_equal(move(p, &p->cli, &p->srv, &p->so), 0); /* ClientHello */
    assert_int_equal(move(p, &p->srv, &p->cli, &p->co), 0); /* client done */
    assert_true(p->cli.tls.done);
    /* The client's Finished and a record behind it, in one input: the
     * owner stops at the handshake, and the record is not read. */
    assert_int_equal(dlg_tlsio_write(&p->cli.tls, "early", 5), 0);
    assert_int_equal(move(p, &p->cli, &p->srv, &p->so), 1);
    assert_int_equal(p->so.handshakes, 1);
    assert_int_equal(p->so.have, 0);
    /* The next input reads it; a plain callback that stops is obeyed. */
    p->so.stop_on_plain = 1;
    assert_int_equal(dlg_stream_input(&p->srv, NULL, 0, p->pbuf, sizeof(p->pbuf), &up, &p->so,
                                      p->err, sizeof(p->err)),
                     1);
    assert_int_equal(p->so.handshakes, 1);
    assert_int_equal(p->so.have, 5);
    tls_pair_free(p);
}

static void test_tls_garbage_fails_naming_why(void **state) {
    (void)state;
    /* Before the handshake: DLG_ETLS with tls.done == 0 and a reason. */
    tls_pair *p = tls_pair_new();
    static const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int rc = dlg_stream_input(&p->srv, junk, sizeof(junk) - 1, p->pbuf, sizeof(p->pbuf), &up,
                              &p->so, p->err, sizeof(p->err));
    assert_int_equal(rc, DLG_ETLS);
    assert_false(p->srv.tls.done);
    assert_true(strlen(p->err) > 0);
    assert_int_equal(p->so.handshakes, 0);
    tls_pair_free(p);
    /* After it: a record that does not decrypt. */
    p = tls_pair_new();
    handshake(p);
    assert_int_equal(dlg_tlsio_write(&p->cli.tls, "hello", 5), 0);
    uint8_t rec[256];
    size_t n = dlg_tlsio_out_take(&p->cli.tls, rec, sizeof(rec));
    assert_true(n > 10);
    rec[n - 1] ^= 0x55; /* the tag */
    rc = dlg_stream_input(&p->srv, rec, n, p->pbuf, sizeof(p->pbuf), &up, &p->so, p->err,
                          sizeof(p->err));
    assert_int_equal(rc, DLG_ETLS);
    assert_true(p->srv.tls.done);
    assert_true(strlen(p->err) > 0);
    assert_int_equal(p->so.have, 0);
    tls_pair_free(p);
}

/* ---- the senders, over a loopback TCP pair ------------------------------ */

typedef struct tcp_pair {
    uv_loop_t loop;
    dlg_stream w;          /* the writer under test */
    uv_tcp_t r;            /* its peer, which reads only when told */
    size_t expect, got;    /* bytes written / read back */
    int bad_order;
    int written_calls, written_errors;
} tcp_pair;

static uint8_t pattern(size_t i) {
    return (uint8_t)((i * 131) >> 3);
}

static void on_written(dlg_stream *s, int status) {
    tcp_pair *p = s->tcp.data;
    p->written_calls++;
    if (status != 0)
        p->written_errors++;
}

static void tcp_pair_new(tcp_pair *p) {
    memset(p, 0, sizeof(*p));
    assert_int_equal(uv_loop_init(&p->loop), 0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
    int sfd = accept(l, NULL, NULL);
    assert_true(sfd >= 0);
    close(l);
    /* Small buffers: the socket fills after a few hundred KiB. */
    int small = 16 * 1024;
    setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(dlg_stream_init(&p->w, &p->loop, p, on_written), 0);
    assert_int_equal(uv_tcp_open(&p->w.tcp, cfd), 0);
    assert_int_equal(uv_tcp_init(&p->loop, &p->r), 0);
    assert_int_equal(uv_tcp_open(&p->r, sfd), 0);
    p->r.data = p;
}

static void r_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    static char b[64 * 1024];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(b, sizeof(b));
}

static void r_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    tcp_pair *p = st->data;
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++)
        if ((uint8_t)buf->base[i] != pattern(p->got + (size_t)i))
            p->bad_order++;
    p->got += (size_t)n;
    if (p->got >= p->expect)
        uv_read_stop(st);
}

/* Reads everything back (bounded: the loop runs until the reader has it
 * all or nothing is left to run, and each turn makes progress). */
static void read_all(tcp_pair *p) {
    assert_int_equal(uv_read_start((uv_stream_t *)&p->r, r_alloc, r_read), 0);
    for (int turns = 0; p->got < p->expect && turns < 100000; turns++)
        uv_run(&p->loop, UV_RUN_ONCE);
    assert_int_equal(p->got, p->expect);
    assert_int_equal(p->bad_order, 0);
}

static void tcp_pair_free(tcp_pair *p) {
    uv_close((uv_handle_t *)&p->w.tcp, NULL);
    uv_close((uv_handle_t *)&p->r, NULL);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    dlg_stream_free_tls(&p->w);
}

static void test_uv_sender_queues_behind_a_full_socket(void **state) {
    (void)state;
    tcp_pair p;
    tcp_pair_new(&p);
    uint8_t chunk[32 * 1024];
    /* Until the socket is full, then as much again: all of it waits in
     * uv_writes, in order. */
    size_t extra = 0;
    while (extra < 4 * sizeof(chunk) && p.expect < (64u << 20)) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = pattern(p.expect + i);
        assert_int_equal(dlg_stream_write(&p.w, chunk, sizeof(chunk)), 0);
        p.expect += sizeof(chunk);
        if (dlg_stream_backed_up(&p.w))
            extra += sizeof(chunk);
    }
    assert_true(p.w.inflight_bytes > 0);
    assert_true(p.w.inflight_since > 0);
    /* Nothing sent while bytes wait: close_notify would overtake them. */
    dlg_stream_goodbye(&p.w);
    read_all(&p);
    assert_int_equal(p.w.inflight_bytes, 0);
    assert_int_equal(p.w.inflight_since, 0);
    assert_true(p.written_calls > 0);
    assert_int_equal(p.written_errors, 0);
    assert_int_equal(p.w.uv_err, 0);
    tcp_pair_free(&p);
}

static void test_off_loop_sender_spills_then_hands_to_libuv(void **state) {
    (void)state;
    tcp_pair p;
    tcp_pair_new(&p);
    uint8_t chunk[32 * 1024];
    while (p.w.spill_len < 3 * sizeof(chunk) && p.expect < (64u << 20)) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = pattern(p.expect + i);
        assert_int_equal(dlg_stream_write_off_loop(&p.w, chunk, sizeof(chunk)), 0);
        p.expect += sizeof(chunk);
    }
    assert_true(p.w.spill_len >= 3 * sizeof(chunk));
    assert_true(dlg_stream_backed_up(&p.w));
    assert_int_equal(p.w.inflight_bytes, 0);
    size_t spilled = p.w.spill_len;
    assert_int_equal(dlg_stream_spill_flush(&p.w), 0);
    assert_null(p.w.spill);
    assert_int_equal(p.w.spill_len, 0);
    assert_true(p.w.inflight_bytes > 0 && p.w.inflight_bytes <= spilled);
    read_all(&p);
    assert_int_equal(p.w.inflight_bytes, 0);
    assert_int_equal(p.written_errors, 0);
    tcp_pair_free(&p);
}

static void test_write_to_a_closed_peer_names_the_error(void **state) {
    (void)state;
    tcp_pair p;
    tcp_pair_new(&p);
    uv_close((uv_handle_t *)&p.r, NULL);
    uv_run(&p.loop, UV_RUN_NOWAIT);
    uint8_t chunk[4096] = {0};
    int rc = 0;
    /* The first writes may still be taken; a reset peer then fails them. */
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = dlg_stream_write(&p.w, chunk, sizeof(chunk));
        if (rc == 0 && p.w.inflight_bytes > 0)
            uv_run(&p.loop, UV_RUN_NOWAIT);
        if (p.written_errors > 0)
            break;
    }
    assert_true(rc == DLG_EIO || p.written_errors > 0);
    if (rc == DLG_EIO)
        assert_true(p.w.uv_err < 0);
    uv_close((uv_handle_t *)&p.w.tcp, NULL);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p.loop), 0);
    dlg_stream_free_tls(&p.w);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a write to the reset peer fails, as in the daemon */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plaintext_input_goes_up_as_it_is),
        cmocka_unit_test(test_tls_handshake_then_records_both_ways),
        cmocka_unit_test(test_tls_callbacks_stop_the_input),
        cmocka_unit_test(test_tls_garbage_fails_naming_why),
        cmocka_unit_test(test_uv_sender_queues_behind_a_full_socket),
        cmocka_unit_test(test_off_loop_sender_spills_then_hands_to_libuv),
        cmocka_unit_test(test_write_to_a_closed_peer_names_the_error),
    };
    return cmocka_run_group_tests(tests, selfsigned_setup, selfsigned_teardown);
}
