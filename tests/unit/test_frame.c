/* test_frame.c: the Length-Prefixed-Message decoder and packer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_err.h"
#include "dlg_frame.h"

typedef struct {
    int n;
    size_t lens[16];
    uint8_t first[16];
} seen_t;

static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    seen_t *s = ctx;
    if (s->n < 16) {
        s->lens[s->n] = len;
        s->first[s->n] = len ? body[0] : 0;
    }
    s->n++;
    return 0;
}

static size_t make_frame(uint8_t *out, uint8_t fill, uint32_t len) {
    dlg_frame_put_header(out, len);
    memset(out + DLG_FRAME_HDR, fill, len);
    return DLG_FRAME_HDR + len;
}

static void split_byte_by_byte(void **state) {
    (void)state;
    uint8_t buf[64];
    size_t n = make_frame(buf, 0xAB, 40);
    dlg_frame_dec d = {0};
    seen_t s = {0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(dlg_frame_dec_feed(&d, buf + i, 1, on_frame, &s, NULL), 0);
        assert_int_equal(s.n, i == n - 1 ? 1 : 0);
    }
    assert_int_equal(s.lens[0], 40);
    assert_int_equal(s.first[0], 0xAB);
    dlg_frame_dec_free(&d);
}

static void many_frames_one_read(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t n = 0;
    n += make_frame(buf + n, 1, 10);
    n += make_frame(buf + n, 2, 0);
    n += make_frame(buf + n, 3, 30);
    n += make_frame(buf + n, 4, 7);
    dlg_frame_dec d = {0};
    seen_t s = {0};
    /* All but the last 3 bytes, then the rest: the last frame spans reads. */
    assert_int_equal(dlg_frame_dec_feed(&d, buf, n - 3, on_frame, &s, NULL), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(dlg_frame_dec_feed(&d, buf + n - 3, 3, on_frame, &s, NULL), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.lens[1], 0);
    assert_int_equal(s.lens[2], 30);
    assert_int_equal(s.first[3], 4);
    dlg_frame_dec_free(&d);
}

static void oversize_rejected_before_buffering(void **state) {
    (void)state;
    uint8_t hdr[DLG_FRAME_HDR];
    dlg_frame_dec d = {.max_frame = 1024};
    seen_t s = {0};
    dlg_frame_put_header(hdr, 1025);
    assert_int_equal(dlg_frame_dec_feed(&d, hdr, sizeof(hdr), on_frame, &s, NULL), DLG_ETOOBIG);
    assert_int_equal(dlg_frame_dec_bad_len(&d), 1025);
    assert_null(d.body);
    assert_int_equal(s.n, 0);
    dlg_frame_dec_free(&d);

    dlg_frame_dec d2 = {0};
    dlg_frame_put_header(hdr, 0xFFFFFFFFu);
    /* Byte by byte too: the check happens as soon as the header is whole. */
    int rc = 0;
    for (size_t i = 0; i < sizeof(hdr) && rc == 0; i++)
        rc = dlg_frame_dec_feed(&d2, hdr + i, 1, on_frame, &s, NULL);
    assert_int_equal(rc, DLG_ETOOBIG);
    assert_null(d2.body);
    dlg_frame_dec_free(&d2);
}

static void exact_max_accepted(void **state) {
    (void)state;
    size_t len = 1024;
    uint8_t *buf = malloc(DLG_FRAME_HDR + len);
    make_frame(buf, 9, (uint32_t)len);
    dlg_frame_dec d = {.max_frame = 1024};
    seen_t s = {0};
    assert_int_equal(dlg_frame_dec_feed(&d, buf, 100, on_frame, &s, NULL), 0);
    assert_int_equal(dlg_frame_dec_pending(&d), 100);
    assert_int_equal(dlg_frame_dec_feed(&d, buf + 100, DLG_FRAME_HDR + len - 100, on_frame, &s, NULL), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.lens[0], 1024);
    free(buf);
    dlg_frame_dec_free(&d);
}

static void header_alone_allocates_nothing_big(void **state) {
    (void)state;
    uint8_t buf[DLG_FRAME_HDR + 10];
    dlg_frame_dec d = {.max_frame = 1u << 20};
    seen_t s = {0};
    dlg_frame_put_header(buf, (1u << 20) - 1);
    memset(buf + DLG_FRAME_HDR, 7, 10);
    assert_int_equal(dlg_frame_dec_feed(&d, buf, sizeof(buf), on_frame, &s, NULL), 0);
    assert_int_equal(s.n, 0);
    /* Buffered memory follows the 10 bytes that came, not the 1 MiB announced. */
    assert_true(d.body_cap <= 4096);
    dlg_frame_dec_free(&d);
}

static void compressed_flag_rejected(void **state) {
    (void)state;
    uint8_t buf[16];
    make_frame(buf, 0, 3);
    buf[0] = 1;
    dlg_frame_dec d = {0};
    seen_t s = {0};
    assert_int_equal(dlg_frame_dec_feed(&d, buf, 8, on_frame, &s, NULL), DLG_EFLAG);
    assert_int_equal(s.n, 0);
    dlg_frame_dec_free(&d);
}

static int stop_cb(void *ctx, const uint8_t *body, size_t len) {
    (void)body;
    (void)len;
    (*(int *)ctx)++;
    return 42;
}

static void callback_stops_decoding(void **state) {
    (void)state;
    uint8_t buf[64];
    size_t n = make_frame(buf, 1, 3);
    n += make_frame(buf + n, 2, 3);
    dlg_frame_dec d = {0};
    int calls = 0;
    size_t used = 0;
    assert_int_equal(dlg_frame_dec_feed(&d, buf, n, stop_cb, &calls, &used), 42);
    assert_int_equal(calls, 1);
    assert_int_equal(used, DLG_FRAME_HDR + 3);
    dlg_frame_dec_free(&d);
}

static void pack_roundtrip(void **state) {
    (void)state;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    Dialogue__V1__Pong pong = DIALOGUE__V1__PONG__INIT;
    pong.nonce = 77;
    f.request_id = 5;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PONG;
    f.pong = &pong;
    dlg_buf *b = NULL;
    assert_int_equal(dlg_frame_pack(&f.base, 0, &b), 0);
    assert_non_null(b);
    assert_int_equal(b->data[0], 0);
    uint32_t len = ((uint32_t)b->data[1] << 24) | ((uint32_t)b->data[2] << 16) |
                   ((uint32_t)b->data[3] << 8) | b->data[4];
    assert_int_equal(len, b->len - DLG_FRAME_HDR);
    Dialogue__V1__ServerFrame *u =
        dialogue__v1__server_frame__unpack(NULL, len, b->data + DLG_FRAME_HDR);
    assert_non_null(u);
    assert_int_equal(u->request_id, 5);
    assert_int_equal(u->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_PONG);
    assert_int_equal(u->pong->nonce, 77);
    dialogue__v1__server_frame__free_unpacked(u, NULL);
    dlg_buf *b2 = NULL;
    assert_int_equal(dlg_frame_pack(&f.base, 2, &b2), DLG_ETOOBIG);
    assert_null(b2);
    dlg_buf_unref(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_byte_by_byte),
        cmocka_unit_test(many_frames_one_read),
        cmocka_unit_test(oversize_rejected_before_buffering),
        cmocka_unit_test(exact_max_accepted),
        cmocka_unit_test(compressed_flag_rejected),
        cmocka_unit_test(header_alone_allocates_nothing_big),
        cmocka_unit_test(callback_stops_decoding),
        cmocka_unit_test(pack_roundtrip),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
