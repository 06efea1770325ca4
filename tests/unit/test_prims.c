/* test_prims.c: the primitives written once for the whole tree (issue 19
 * item 3): varints (lib/wire/dlg_varint.h), base64 in its strict JWT and
 * lenient JSON flavours (lib/wire/dlg_base64.c), growable arrays and FIFO
 * rings (lib/base/dlg_vec.c). Expected bytes are written out here, not
 * produced by the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlg_base64.h"
#include "dlg_err.h"
#include "dlg_varint.h"
#include "dlg_vec.h"

/* ---- varints ------------------------------------------------------------- */

static void varint_round_trips(void **state) {
    (void)state;
    static const struct {
        uint64_t v;
        size_t len;
        uint8_t bytes[10];
    } cases[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {127, 1, {0x7f}},
        {128, 2, {0x80, 0x01}},
        {300, 2, {0xac, 0x02}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {UINT32_MAX, 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
        {UINT64_MAX, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[DLG_VARINT_MAX + 1];
        memset(buf, 0xee, sizeof(buf));
        assert_int_equal(dlg_varint_len(cases[i].v), cases[i].len);
        assert_ptr_equal(dlg_varint_put(buf, cases[i].v), buf + cases[i].len);
        assert_memory_equal(buf, cases[i].bytes, cases[i].len);
        assert_int_equal(buf[cases[i].len], 0xee); /* nothing past it */
        const uint8_t *p = cases[i].bytes;
        uint64_t v = 0;
        assert_int_equal(dlg_varint_get(&p, cases[i].bytes + cases[i].len, &v), DLG_VARINT_OK);
        assert_true(v == cases[i].v);
        assert_ptr_equal(p, cases[i].bytes + cases[i].len);
    }
}

static void varint_errors(void **state) {
    (void)state;
    const uint8_t trunc[] = {0x80, 0x80};
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    const uint8_t *p;
    uint64_t v = 42;

    /* Truncated and too long: nothing consumed, nothing written. */
    p = trunc;
    assert_int_equal(dlg_varint_get(&p, trunc + sizeof(trunc), &v), DLG_VARINT_TRUNC);
    assert_ptr_equal(p, trunc);
    assert_true(v == 42);
    p = trunc;
    assert_int_equal(dlg_varint_get(&p, trunc, &v), DLG_VARINT_TRUNC);
    p = eleven;
    assert_int_equal(dlg_varint_get(&p, eleven + sizeof(eleven), &v), DLG_VARINT_LONG);
    assert_ptr_equal(p, eleven);
    assert_true(v == 42);

    /* A 10th byte above 1: more than 64 bits; the low 64 are given and the
     * bytes consumed, as protobuf-c reads it. */
    p = over;
    assert_int_equal(dlg_varint_get(&p, over + sizeof(over), &v), DLG_VARINT_OVER);
    assert_ptr_equal(p, over + sizeof(over));
    assert_true(v == UINT64_MAX);

    /* A 5-byte limit (keys and lengths): six bytes are too many. */
    p = six;
    assert_int_equal(dlg_varint_get_max(&p, six + sizeof(six), 5, &v), DLG_VARINT_LONG);
    assert_int_equal(dlg_varint_get(&p, six + sizeof(six), &v), DLG_VARINT_OK);
    assert_true(v == (1ull << 35));
}

/* ---- base64 ------------------------------------------------------------- */

#define JWT (DLG_B64_URL | DLG_B64_CANONICAL)
#define JSON (DLG_B64_STD | DLG_B64_URL | DLG_B64_PAD)

static int dec(const char *s, unsigned flags, char *out, size_t *len) {
    uint8_t buf[64];
    size_t n = 0;
    int rc = dlg_base64_decode(s, strlen(s), flags, buf, &n);
    if (rc == 0) {
        memcpy(out, buf, n);
        out[n] = 0;
        *len = n;
    }
    return rc;
}

static void base64_decode_flavours(void **state) {
    (void)state;
    char out[64];
    size_t n = 0;
    /* RFC 4648 section 10 vectors, both flavours. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                         "Zm9vYmFy"};
    static const char *const bare[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(dec(padded[i], JSON, out, &n), 0);
        assert_string_equal(out, plain[i]);
        assert_int_equal(dec(bare[i], JSON, out, &n), 0);
        assert_string_equal(out, plain[i]);
        assert_int_equal(dec(bare[i], JWT, out, &n), 0);
        assert_string_equal(out, plain[i]);
        assert_int_equal(n, strlen(plain[i]));
    }
    /* The alphabets: "+/" standard, "-_" URL; JSON takes both, JWT only URL. */
    assert_int_equal(dec("-_8", JWT, out, &n), 0);
    assert_memory_equal(out, "\xfb\xff", 2);
    assert_int_equal(dec("+/8", JSON, out, &n), 0);
    assert_memory_equal(out, "\xfb\xff", 2);
    assert_int_equal(dec("+_8", JSON, out, &n), 0);
    assert_int_equal(dec("+/8", JWT, out, &n), DLG_EINVAL);
    /* Padding: JWT never, JSON only to a multiple of four, at most two. */
    assert_int_equal(dec("Zg==", JWT, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Zg=", JSON, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Z===", JSON, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Zg=a", JSON, out, &n), DLG_EINVAL);
    /* Lengths no encoder makes, characters outside any alphabet. */
    assert_int_equal(dec("Zm9vY", JSON, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Zm9vY", JWT, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Zm 9", JSON, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Zm.9", JWT, out, &n), DLG_EINVAL);
    /* Non-zero unused bits: "Zh" decodes to "f" too, but only the lenient
     * flavour takes it. */
    assert_int_equal(dec("Zh", JSON, out, &n), 0);
    assert_string_equal(out, "f");
    assert_int_equal(dec("Zh", JWT, out, &n), DLG_EINVAL);
    assert_int_equal(dec("Zm9", JWT, out, &n), DLG_EINVAL);
}

static void base64_encode_flavours(void **state) {
    (void)state;
    size_t n = 0;
    char *s = dlg_base64_encode((const uint8_t *)"foob", 4, DLG_B64_PAD, &n);
    assert_string_equal(s, "Zm9vYg==");
    assert_int_equal(n, 8);
    free(s);
    s = dlg_base64_encode((const uint8_t *)"fooba", 5, DLG_B64_PAD, NULL);
    assert_string_equal(s, "Zm9vYmE=");
    free(s);
    s = dlg_base64_encode((const uint8_t *)"fooba", 5, DLG_B64_URL, &n);
    assert_string_equal(s, "Zm9vYmE");
    assert_int_equal(n, 7);
    free(s);
    s = dlg_base64_encode((const uint8_t *)"\xfb\xff", 2, DLG_B64_URL, NULL);
    assert_string_equal(s, "-_8");
    free(s);
    s = dlg_base64_encode((const uint8_t *)"\xfb\xff", 2, DLG_B64_PAD, NULL);
    assert_string_equal(s, "+/8=");
    free(s);
    s = dlg_base64_encode(NULL, 0, DLG_B64_PAD, &n);
    assert_string_equal(s, "");
    assert_int_equal(n, 0);
    free(s);
}

/* ---- growable arrays ---------------------------------------------------- */

static void grow_policy(void **state) {
    (void)state;
    int *v = NULL;
    size_t cap = 0;
    assert_int_equal(DLG_GROW(v, cap, 0), 0);
    assert_null(v);
    assert_int_equal(DLG_GROW(v, cap, 1), 0);
    assert_int_equal(cap, DLG_GROW_MIN);
    for (int i = 0; i < DLG_GROW_MIN; i++)
        v[i] = i;
    int *before = v;
    assert_int_equal(DLG_GROW(v, cap, DLG_GROW_MIN), 0); /* room enough: untouched */
    assert_ptr_equal(v, before);
    assert_int_equal(DLG_GROW(v, cap, DLG_GROW_MIN + 1), 0);
    assert_int_equal(cap, 2 * DLG_GROW_MIN);
    for (int i = 0; i < DLG_GROW_MIN; i++)
        assert_int_equal(v[i], i);
    assert_int_equal(DLG_GROW(v, cap, 1000), 0); /* more than double: what is needed */
    assert_int_equal(cap, 1000);
    /* A size that overflows: refused, nothing changed. */
    before = v;
    assert_int_equal(DLG_GROW(v, cap, SIZE_MAX / 2), DLG_ENOMEM);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 1000);
    free(v);
}

/* ---- FIFO rings --------------------------------------------------------- */

typedef struct item {
    uint64_t ticket;
    char tag[12];
} item;

static void fifo_order_across_wrap_and_growth(void **state) {
    (void)state;
    dlg_fifo q = {0};
    uint64_t next_in = 1, next_out = 1;
    /* Interleave so the ring wraps before every growth. */
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 5 + round * 3; i++) {
            item *it = dlg_fifo_push(&q, sizeof(item));
            assert_non_null(it);
            assert_true(it->ticket == 0); /* zeroed */
            it->ticket = next_in++;
        }
        for (int i = 0; i < 3; i++) {
            item *it = dlg_fifo_at(&q, 0);
            assert_true(it->ticket == next_out);
            next_out++;
            dlg_fifo_pop(&q);
        }
        for (size_t i = 0; i < q.n; i++)
            assert_true(((item *)dlg_fifo_at(&q, i))->ticket == next_out + i);
    }
    assert_int_equal(q.n, next_in - next_out);
    /* Reserve makes the next push infallible; a wrong item size is refused. */
    assert_int_equal(dlg_fifo_reserve(&q, sizeof(item)), 0);
    assert_true(q.cap > q.n);
    assert_int_equal(dlg_fifo_reserve(&q, sizeof(item) + 1), DLG_EINVAL);
    assert_null(dlg_fifo_push(&q, 0));
    dlg_fifo_free(&q);
    assert_int_equal(q.n, 0);
    assert_null(q.v);
    assert_non_null(dlg_fifo_push(&q, sizeof(int))); /* usable again, any size */
    dlg_fifo_free(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(varint_round_trips),
        cmocka_unit_test(varint_errors),
        cmocka_unit_test(base64_decode_flavours),
        cmocka_unit_test(base64_encode_flavours),
        cmocka_unit_test(grow_policy),
        cmocka_unit_test(fifo_order_across_wrap_and_growth),
    };
    return cmocka_run_group_tests_name("prims", tests, NULL, NULL);
}
