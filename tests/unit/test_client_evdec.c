/* test_client_evdec.c: the event fast path (dlg__evdec) against protobuf-c,
 * which stays the reference: whenever the fast decoder says 1, protobuf-c
 * must decode the same bytes to a plain Event frame with the same fields;
 * and the frames the server really sends must take the fast path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dialogue/client.h"
#include "dialogue/v1/protocol.pb-c.h"
#include "evdec.h"

/* ---- building frames by hand ------------------------------------------------ */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct wbuf {
    uint8_t b[4096];
    size_t n;
} wbuf;

static void w_raw(wbuf *w, const void *p, size_t n) {
    assert_true(w->n + n <= sizeof(w->b));
    if (n > 0)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_byte(wbuf *w, uint8_t c) {
    w_raw(w, &c, 1);
}

static void w_varint(wbuf *w, uint64_t v) {
    while (v >= 0x80) {
        w_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    w_byte(w, (uint8_t)v);
}

static void w_tag(wbuf *w, uint32_t field, unsigned wt) {
    w_varint(w, ((uint64_t)field << 3) | wt);
}

static void w_u64(wbuf *w, uint32_t field, uint64_t v) {
    w_tag(w, field, WT_VARINT);
    w_varint(w, v);
}

static void w_bytes(wbuf *w, uint32_t field, const void *p, size_t n) {
    w_tag(w, field, WT_LEN);
    w_varint(w, n);
    w_raw(w, p, n);
}

static void w_str(wbuf *w, uint32_t field, const char *s) {
    w_bytes(w, field, s, strlen(s));
}

/* ServerFrame{event = ev} around an encoded Event. */
static void w_event(wbuf *frame, const wbuf *ev) {
    w_bytes(frame, 5, ev->b, ev->n);
}

/* One unknown field of each wire type protobuf-c accepts. */
static void w_unknowns(wbuf *w, uint32_t base) {
    uint8_t eight[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    w_u64(w, base, 0xdeadbeefcafeull);
    w_tag(w, base + 1, WT_I64);
    w_raw(w, eight, 8);
    w_str(w, base + 2, "unknown bytes");
    w_tag(w, base + 3, WT_I32);
    w_raw(w, eight, 4);
}

/* ---- the reference --------------------------------------------------------- */

/* Runs both decoders on b[0..n). When the fast one says 1, protobuf-c must
 * give a plain Event frame with the same fields. Returns the fast answer. */
static int compare(const uint8_t *b, size_t n) {
    dlg__event_view v;
    /* Garbage first, so a field the decoder forgets to set shows. */
    memset(&v, 0xa5, sizeof(v));
    int fast = dlg__evdec(b, n, &v);
    assert_true(fast == 0 || fast == 1);
    Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(NULL, n, b);
    if (fast) {
        assert_non_null(f);
        assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_EVENT);
        assert_int_equal(f->request_id, 0);
        const Dialogue__V1__Event *e = f->event;
        assert_non_null(memchr(v.room, 0, sizeof(v.room)));
        assert_non_null(memchr(v.event, 0, sizeof(v.event)));
        assert_non_null(memchr(v.from, 0, sizeof(v.from)));
        assert_string_equal(v.room, e->room);
        assert_string_equal(v.event, e->event);
        assert_string_equal(v.from, e->from);
        assert_int_equal(v.len, e->data.len);
        assert_int_equal(v.data == NULL, e->data.data == NULL);
        if (v.len > 0) {
            assert_true(v.data >= b && v.data + v.len <= b + n);
            assert_memory_equal(v.data, e->data.data, v.len);
        }
        assert_int_equal(v.ts_ms, e->ts_ms);
        assert_int_equal(v.seq, e->seq);
        assert_int_equal(v.epoch, e->epoch);
        assert_int_equal(v.from_kind, (int)e->from_kind);
    }
    if (f != NULL)
        dialogue__v1__server_frame__free_unpacked(f, NULL);
    return fast;
}

static int compare_w(const wbuf *w) {
    return compare(w->b, w->n);
}

/* Packs f with protobuf-c into w. */
static void pack(const Dialogue__V1__ServerFrame *f, wbuf *w) {
    size_t n = dialogue__v1__server_frame__get_packed_size(f);
    assert_true(n <= sizeof(w->b));
    assert_int_equal(dialogue__v1__server_frame__pack(f, w->b), n);
    w->n = n;
}

static uint8_t payload[300];

/* An Event as the daemon fills it; mask picks which fields are set (bit 0
 * room .. bit 6 epoch, bit 7 from_kind). */
static void pack_event(unsigned mask, uint64_t request_id, wbuf *w) {
    Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    if (mask & 1)
        e.room = "dashboard";
    if (mask & 2)
        e.event = "metrics:update";
    if (mask & 4) {
        e.data.data = payload;
        e.data.len = sizeof(payload);
    }
    if (mask & 8)
        e.from = "user-42";
    if (mask & 16)
        e.ts_ms = 1764300000123ull;
    if (mask & 32)
        e.seq = 123456789;
    if (mask & 64)
        e.epoch = 0x0123456789abcdefull;
    if (mask & 128)
        e.from_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE;
    f.request_id = request_id;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
    f.event = &e;
    pack(&f, w);
}

/* ---- the tests ----------------------------------------------------------- */

static void every_field_and_every_subset(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 1);
    for (unsigned mask = 0; mask < 256; mask++) {
        wbuf w = {.n = 0};
        pack_event(mask, 0, &w);
        assert_int_equal(compare_w(&w), 1);
    }
    /* The full one, checked by hand too. */
    wbuf w = {.n = 0};
    pack_event(255, 0, &w);
    dlg__event_view v;
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.room, "dashboard");
    assert_string_equal(v.event, "metrics:update");
    assert_string_equal(v.from, "user-42");
    assert_int_equal(v.len, sizeof(payload));
    assert_memory_equal(v.data, payload, sizeof(payload));
    assert_int_equal(v.ts_ms, 1764300000123ull);
    assert_int_equal(v.seq, 123456789);
    assert_int_equal(v.epoch, 0x0123456789abcdefull);
    assert_int_equal(v.from_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE);
    /* Nothing set: an empty Event is still a plain event frame. */
    pack_event(0, 0, &w);
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.room, "");
    assert_null(v.data);
    assert_int_equal(v.len, 0);
}

static void request_id(void **state) {
    (void)state;
    wbuf w = {.n = 0};
    /* protobuf-c leaves a 0 out; an explicit 0, anywhere, is the same. */
    pack_event(127, 0, &w);
    wbuf x = {.n = 0};
    w_u64(&x, 1, 0);
    w_raw(&x, w.b, w.n);
    w_u64(&x, 1, 0);
    assert_int_equal(compare_w(&x), 1);
    /* A reply-shaped event (history is delivered as HistoryBatch, never so;
     * but it must not be taken for a push). */
    pack_event(127, 7, &w);
    assert_int_equal(compare_w(&w), 0);
    /* The last request_id counts, as in protobuf-c. */
    x.n = 0;
    w_u64(&x, 1, 9);
    w_u64(&x, 1, 0);
    pack_event(127, 0, &w);
    w_raw(&x, w.b, w.n);
    assert_int_equal(compare_w(&x), 1);
    x.n = 0;
    w_u64(&x, 1, 9);
    w_raw(&x, w.b, w.n);
    assert_int_equal(compare_w(&x), 0);
    x.n = 0;
    pack_event(127, 0, &w);
    w_raw(&x, w.b, w.n);
    w_u64(&x, 1, 9);
    assert_int_equal(compare_w(&x), 0);
    /* request_id with another wire type: protobuf-c refuses the frame. */
    x.n = 0;
    w_str(&x, 1, "");
    w_raw(&x, w.b, w.n);
    assert_int_equal(compare_w(&x), 0);
    assert_null(dialogue__v1__server_frame__unpack(NULL, x.n, x.b));
}

static void unknown_fields_are_skipped(void **state) {
    (void)state;
    /* In the Event, before, between and after the known fields; and in the
     * frame around the event. */
    wbuf ev = {.n = 0}, w = {.n = 0};
    w_unknowns(&ev, 9);
    w_str(&ev, 1, "r1");
    w_unknowns(&ev, 100);
    w_str(&ev, 2, "e1");
    w_bytes(&ev, 3, "\x01\x02\x03", 3);
    w_unknowns(&ev, 2000);
    w_str(&ev, 4, "alice");
    w_u64(&ev, 5, 1);
    w_u64(&ev, 6, 2);
    w_u64(&ev, 7, 3);
    w_unknowns(&ev, 536870000); /* near the largest field number */
    w_unknowns(&w, 14);
    w_event(&w, &ev);
    w_unknowns(&w, 50000);
    assert_int_equal(compare_w(&w), 1);
    dlg__event_view v;
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.from, "alice");
    assert_int_equal(v.epoch, 3);
    /* An unknown field with an empty payload, and one with the longest key
     * protobuf-c reads (5 bytes). */
    ev.n = 0;
    w.n = 0;
    w_str(&ev, 9, "");
    w_u64(&ev, 0xffffffffu >> 3, 5);
    w_str(&ev, 1, "r");
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 1);
}

static void groups_and_bad_wire_types(void **state) {
    (void)state;
    /* Wire types 3, 4, 6, 7 anywhere: protobuf-c refuses the message. */
    for (unsigned wt = 3; wt <= 7; wt++) {
        if (wt == WT_I32)
            continue;
        for (int where = 0; where < 2; where++) {
            wbuf ev = {.n = 0}, w = {.n = 0};
            w_str(&ev, 1, "room");
            if (where == 0)
                w_tag(&ev, 20, wt);
            w_event(&w, &ev);
            if (where == 1)
                w_tag(&w, 20, wt);
            assert_int_equal(compare_w(&w), 0);
            assert_null(dialogue__v1__server_frame__unpack(NULL, w.n, w.b));
        }
    }
    /* A group with its end, the old way of nesting: still refused. */
    wbuf ev = {.n = 0}, w = {.n = 0};
    w_tag(&ev, 20, WT_SGROUP);
    w_u64(&ev, 1, 1);
    w_tag(&ev, 20, WT_EGROUP);
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 0);
}

static void known_fields_with_the_wrong_wire_type(void **state) {
    (void)state;
    uint8_t eight[8] = {0};
    for (uint32_t field = 1; field <= 8; field++) {
        for (unsigned wt = 0; wt <= 5; wt++) {
            if (wt == WT_SGROUP || wt == WT_EGROUP)
                continue;
            int right = field <= 4 ? wt == WT_LEN : wt == WT_VARINT;
            wbuf ev = {.n = 0}, w = {.n = 0};
            w_tag(&ev, field, wt);
            if (wt == WT_VARINT)
                w_varint(&ev, 1);
            else if (wt == WT_LEN)
                w_varint(&ev, 0);
            else
                w_raw(&ev, eight, wt == WT_I64 ? 8 : 4);
            w_event(&w, &ev);
            assert_int_equal(compare_w(&w), right);
            if (!right)
                assert_null(dialogue__v1__server_frame__unpack(NULL, w.n, w.b));
        }
    }
    /* The event itself as a varint. */
    wbuf w = {.n = 0};
    w_u64(&w, 5, 3);
    assert_int_equal(compare_w(&w), 0);
    assert_null(dialogue__v1__server_frame__unpack(NULL, w.n, w.b));
}

static void unusual_order(void **state) {
    (void)state;
    wbuf ev = {.n = 0}, w = {.n = 0};
    w_u64(&ev, 7, 11);
    w_u64(&ev, 6, 10);
    w_u64(&ev, 5, 9);
    w_str(&ev, 4, "bob");
    w_bytes(&ev, 3, "xyz", 3);
    w_str(&ev, 2, "tick");
    w_str(&ev, 1, "clock");
    /* The event before request_id. */
    w_event(&w, &ev);
    w_u64(&w, 1, 0);
    assert_int_equal(compare_w(&w), 1);
    dlg__event_view v;
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.room, "clock");
    assert_int_equal(v.seq, 10);
}

static void repeated_fields_last_wins(void **state) {
    (void)state;
    wbuf ev = {.n = 0}, w = {.n = 0};
    w_str(&ev, 1, "first-room");
    w_bytes(&ev, 3, "first", 5);
    w_u64(&ev, 6, 1);
    w_str(&ev, 1, "second-room");
    w_bytes(&ev, 3, "", 0);
    w_u64(&ev, 6, 2);
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 1);
    dlg__event_view v;
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.room, "second-room");
    assert_null(v.data);
    assert_int_equal(v.seq, 2);
    /* Data set again after an empty one. */
    ev.n = w.n = 0;
    w_bytes(&ev, 3, "", 0);
    w_bytes(&ev, 3, "again", 5);
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 1);
    /* The event twice: protobuf-c replaces the first one, it does not merge
     * it (from and seq of the first are gone). */
    wbuf ev2 = {.n = 0};
    ev.n = w.n = 0;
    w_str(&ev, 1, "a");
    w_str(&ev, 4, "from-first");
    w_u64(&ev, 6, 99);
    w_str(&ev2, 1, "b");
    w_event(&w, &ev);
    w_event(&w, &ev2);
    assert_int_equal(compare_w(&w), 1);
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.room, "b");
    assert_string_equal(v.from, "");
    assert_int_equal(v.seq, 0);
    /* A first event protobuf-c cannot parse sinks the frame even though the
     * second is fine. */
    w.n = 0;
    w_bytes(&w, 5, "\x0a\x05", 2);
    w_event(&w, &ev2);
    assert_int_equal(compare_w(&w), 0);
    assert_null(dialogue__v1__server_frame__unpack(NULL, w.n, w.b));
}

static void string_bounds(void **state) {
    (void)state;
    char s[DLG__EVDEC_STR_MAX + 2];
    for (uint32_t field = 1; field <= 4; field++) {
        if (field == 3)
            continue;
        for (size_t len = DLG__EVDEC_STR_MAX - 1; len <= DLG__EVDEC_STR_MAX + 1; len++) {
            memset(s, 'a' + (int)field, len);
            s[len] = '\0';
            wbuf ev = {.n = 0}, w = {.n = 0};
            w_str(&ev, 1, "r");
            w_str(&ev, 2, "e");
            w_str(&ev, 4, "f");
            w_str(&ev, field, s);
            w_event(&w, &ev);
            int want = len <= DLG__EVDEC_STR_MAX;
            assert_int_equal(compare_w(&w), want);
            /* Over the bound is not malformed: protobuf-c takes it. */
            Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(NULL, w.n, w.b);
            assert_non_null(f);
            dialogue__v1__server_frame__free_unpacked(f, NULL);
        }
    }
    /* A long string in a first event that a second replaces: still 0,
     * which only costs the fast path. */
    memset(s, 'x', DLG__EVDEC_STR_MAX + 1);
    s[DLG__EVDEC_STR_MAX + 1] = '\0';
    wbuf ev = {.n = 0}, ev2 = {.n = 0}, w = {.n = 0};
    w_str(&ev, 1, s);
    w_str(&ev2, 1, "short");
    w_event(&w, &ev);
    w_event(&w, &ev2);
    assert_int_equal(compare_w(&w), 0);
    /* Long data is fine: it is not copied. */
    uint8_t big[3000];
    memset(big, 0x5a, sizeof(big));
    ev.n = w.n = 0;
    w_bytes(&ev, 3, big, sizeof(big));
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 1);
}

static void odd_strings(void **state) {
    (void)state;
    /* Invalid UTF-8 and an embedded NUL: protobuf-c checks neither, and the
     * C string ends at the NUL for both decoders. */
    wbuf ev = {.n = 0}, w = {.n = 0};
    w_bytes(&ev, 1, "\xff\xfe\xc3(", 4);
    w_bytes(&ev, 2, "ab\0cd", 5);
    w_bytes(&ev, 4, "\0", 1);
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 1);
    dlg__event_view v;
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_string_equal(v.event, "ab");
    assert_string_equal(v.from, "");
}

static void varints(void **state) {
    (void)state;
    uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                       INT64_MAX, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        wbuf ev = {.n = 0}, w = {.n = 0};
        w_u64(&ev, 5, vals[i]);
        w_u64(&ev, 6, vals[i]);
        w_u64(&ev, 7, vals[i]);
        w_event(&w, &ev);
        assert_int_equal(compare_w(&w), 1);
    }
    /* Over-long encodings of small values (padding with 0x80): up to 10
     * bytes in all is accepted. */
    for (int len = 2; len <= 11; len++) {
        wbuf ev = {.n = 0}, w = {.n = 0};
        w_tag(&ev, 6, WT_VARINT);
        w_byte(&ev, 0x85);
        for (int i = 1; i < len - 1; i++)
            w_byte(&ev, 0x80);
        w_byte(&ev, 0x00);
        w_event(&w, &ev);
        assert_int_equal(compare_w(&w), len <= 10);
        if (len > 10)
            assert_null(dialogue__v1__server_frame__unpack(NULL, w.n, w.b));
    }
    /* A tenth byte above 1 spells bits past 64: protobuf-c drops them. */
    wbuf ev = {.n = 0}, w = {.n = 0};
    w_tag(&ev, 6, WT_VARINT);
    for (int i = 0; i < 9; i++)
        w_byte(&ev, 0xff);
    w_byte(&ev, 0x7f);
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 1);
    dlg__event_view v;
    assert_int_equal(dlg__evdec(w.b, w.n, &v), 1);
    assert_int_equal(v.seq, UINT64_MAX);
    /* Over-long length prefixes: 5 bytes is protobuf-c's limit. */
    for (int len = 1; len <= 6; len++) {
        ev.n = w.n = 0;
        w_tag(&ev, 1, WT_LEN);
        for (int i = 0; i < len - 1; i++)
            w_byte(&ev, i == 0 ? 0x83 : 0x80);
        w_byte(&ev, len == 1 ? 3 : 0);
        w_raw(&ev, "abc", 3);
        w_event(&w, &ev);
        assert_int_equal(compare_w(&w), len <= 5);
    }
    /* Over-long keys: 5 bytes is the limit there too. */
    for (int len = 1; len <= 6; len++) {
        ev.n = w.n = 0;
        w_byte(&ev, len == 1 ? 0x30 : 0xb0); /* field 6, varint */
        for (int i = 1; i < len; i++)
            w_byte(&ev, i == len - 1 ? 0x00 : 0x80);
        w_byte(&ev, 42);
        w_event(&w, &ev);
        assert_int_equal(compare_w(&w), len <= 5);
    }
}

static void malformed(void **state) {
    (void)state;
    wbuf ev = {.n = 0}, w = {.n = 0};
    /* Lengths past the end, in the event and of the event. */
    w_tag(&ev, 1, WT_LEN);
    w_varint(&ev, 10);
    w_raw(&ev, "abc", 3);
    w_event(&w, &ev);
    assert_int_equal(compare_w(&w), 0);
    w.n = 0;
    w_tag(&w, 5, WT_LEN);
    w_varint(&w, 100);
    w_raw(&w, "\x0a\x01x", 3);
    assert_int_equal(compare_w(&w), 0);
    /* Huge lengths that a 32-bit sum would wrap. */
    const uint8_t wrap1[] = {0x2a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t wrap2[] = {0x2a, 0x85, 0x80, 0x80, 0x80, 0x10, 0x0a, 0x03, 'a', 'b', 'c'};
    const uint8_t wrap3[] = {0x2a, 0x05, 0x0a, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(compare(wrap1, sizeof(wrap1)), 0);
    assert_int_equal(compare(wrap2, sizeof(wrap2)), 0);
    assert_int_equal(compare(wrap3, sizeof(wrap3)), 0);
    /* Key 0, short and over-long; a key cut short; fixed fields cut short. */
    const uint8_t key0[] = {0x00, 0x2a, 0x00};
    const uint8_t key0_long[] = {0x80, 0x00, 0x00, 0x2a, 0x00};
    const uint8_t key_cut[] = {0x2a, 0x00, 0x80};
    const uint8_t i64_cut[] = {0x2a, 0x00, 0xa1, 0x01, 1, 2, 3}; /* field 20 */
    const uint8_t i32_cut[] = {0x2a, 0x00, 0xa5, 0x01, 1, 2, 3};
    const uint8_t varint_cut[] = {0x2a, 0x02, 0x30, 0x80};
    assert_int_equal(compare(key0, sizeof(key0)), 0);
    assert_int_equal(compare(key0_long, sizeof(key0_long)), 0);
    assert_int_equal(compare(key_cut, sizeof(key_cut)), 0);
    assert_int_equal(compare(i64_cut, sizeof(i64_cut)), 0);
    assert_int_equal(compare(i32_cut, sizeof(i32_cut)), 0);
    assert_int_equal(compare(varint_cut, sizeof(varint_cut)), 0);
    /* Empty input, and no input at all. */
    dlg__event_view v;
    assert_int_equal(compare(w.b, 0), 0);
    assert_int_equal(dlg__evdec(NULL, 0, &v), 0);
}

static void truncated_at_every_byte(void **state) {
    (void)state;
    wbuf frames[3];
    memset(frames, 0, sizeof(frames));
    pack_event(127, 0, &frames[0]);
    wbuf ev = {.n = 0};
    w_unknowns(&ev, 9);
    w_str(&ev, 1, "room");
    w_u64(&ev, 6, UINT64_MAX);
    w_bytes(&ev, 3, "payload", 7);
    w_unknowns(&frames[1], 20);
    w_event(&frames[1], &ev);
    w_unknowns(&frames[1], 30);
    /* Ends with the event: every cut falls inside it. */
    w_u64(&frames[2], 1, 0);
    w_event(&frames[2], &ev);
    for (int k = 0; k < 3; k++) {
        const wbuf *f = &frames[k];
        size_t decoded = 0;
        for (size_t cut = 0; cut < f->n; cut++)
            decoded += (size_t)compare(f->b, cut);
        assert_int_equal(compare(f->b, f->n), 1);
        /* A prefix decodes only when the cut falls between the frame's own
         * fields, after the whole event. */
        /* frames[1]: right after the event and after each of the first
         * three unknown fields behind it. */
        assert_int_equal(decoded, k == 1 ? 4 : 0);
    }
}

static void not_event_frames(void **state) {
    (void)state;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    wbuf w = {.n = 0};
    /* Nothing set. */
    pack(&f, &w);
    assert_int_equal(compare_w(&w), 0);
    Dialogue__V1__Welcome wel = DIALOGUE__V1__WELCOME__INIT;
    wel.client_id = "c1";
    wel.max_frame = 1024;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_WELCOME;
    f.welcome = &wel;
    f.request_id = 1;
    pack(&f, &w);
    assert_int_equal(compare_w(&w), 0);
    Dialogue__V1__Ack ack = DIALOGUE__V1__ACK__INIT;
    ack.seq = 5;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ACK;
    f.ack = &ack;
    pack(&f, &w);
    assert_int_equal(compare_w(&w), 0);
    Dialogue__V1__Ping ping = DIALOGUE__V1__PING__INIT;
    f.request_id = 0;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_PING;
    f.ping = &ping;
    pack(&f, &w);
    assert_int_equal(compare_w(&w), 0);
    Dialogue__V1__Left left = DIALOGUE__V1__LEFT__INIT;
    left.room = "r";
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_LEFT;
    f.left = &left;
    pack(&f, &w);
    assert_int_equal(compare_w(&w), 0);
    /* A HistoryBatch is full of Events, one level down. */
    Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
    e.room = "r";
    Dialogue__V1__Event *evs[] = {&e, &e};
    Dialogue__V1__HistoryBatch hb = DIALOGUE__V1__HISTORY_BATCH__INIT;
    hb.room = "r";
    hb.events = evs;
    hb.n_events = 2;
    f.request_id = 3;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH;
    f.history_batch = &hb;
    pack(&f, &w);
    assert_int_equal(compare_w(&w), 0);
    /* An event next to another member of msg, either way round: protobuf-c
     * keeps the last; the fast path leaves both cases to it. */
    wbuf ev = {.n = 0}, x = {.n = 0};
    w_str(&ev, 1, "r");
    w_event(&x, &ev);
    w_bytes(&x, 10, "", 0);
    assert_int_equal(compare_w(&x), 0);
    x.n = 0;
    w_bytes(&x, 2, "", 0);
    w_event(&x, &ev);
    assert_int_equal(compare_w(&x), 0);
    /* Every other member number, with an empty message. */
    for (uint32_t field = 2; field <= 13; field++) {
        if (field == 5)
            continue;
        x.n = 0;
        w_bytes(&x, field, "", 0);
        assert_int_equal(compare_w(&x), 0);
    }
}

/* The schema is what evdec.c hard-codes: ServerFrame.request_id = 1, msg
 * members 2..13 with event = 5; Event fields 1..8 with these types. A new
 * member or field fails here until evdec.c learns it. */
static void schema_matches(void **state) {
    (void)state;
    const ProtobufCMessageDescriptor *fd = &dialogue__v1__server_frame__descriptor;
    assert_int_equal(fd->n_fields, 13);
    for (unsigned i = 0; i < fd->n_fields; i++) {
        const ProtobufCFieldDescriptor *fld = &fd->fields[i];
        if (fld->id == 1) {
            assert_int_equal(fld->type, PROTOBUF_C_TYPE_UINT64);
            assert_int_equal(fld->flags & PROTOBUF_C_FIELD_FLAG_ONEOF, 0);
            continue;
        }
        assert_true(fld->id >= 2 && fld->id <= 13);
        assert_true(fld->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
        assert_int_equal(fld->type, PROTOBUF_C_TYPE_MESSAGE);
        if (fld->id == 5)
            assert_ptr_equal(fld->descriptor, &dialogue__v1__event__descriptor);
    }
    const ProtobufCMessageDescriptor *ed = &dialogue__v1__event__descriptor;
    const ProtobufCType types[] = {PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_STRING,
                                   PROTOBUF_C_TYPE_BYTES,  PROTOBUF_C_TYPE_STRING,
                                   PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_UINT64,
                                   PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_ENUM};
    assert_int_equal(ed->n_fields, 8);
    for (unsigned i = 0; i < ed->n_fields; i++) {
        const ProtobufCFieldDescriptor *fld = &ed->fields[i];
        assert_true(fld->id >= 1 && fld->id <= 8);
        assert_int_equal(fld->type, types[fld->id - 1]);
        assert_int_equal(fld->label, PROTOBUF_C_LABEL_NONE);
    }
    /* The public DLG_FROM_* values are the protocol's IdentityKind. */
    assert_int_equal(DLG_FROM_SERVER, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_SERVER);
    assert_int_equal(DLG_FROM_TOKEN, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN);
    assert_int_equal(DLG_FROM_CERTIFICATE, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE);
    assert_int_equal(DLG_FROM_ANONYMOUS, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS);
}

/* A deterministic mutation run over the frames above: byte flips, cuts,
 * insertions. tests/fuzz/fuzz_evdec.c does this for real; this keeps a
 * cheap version in every test run. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void mutations(void **state) {
    (void)state;
    wbuf seeds[3];
    memset(seeds, 0, sizeof(seeds));
    pack_event(0x7f & ~4, 0, &seeds[0]); /* no data: short frames */
    wbuf ev = {.n = 0};
    w_unknowns(&ev, 9);
    w_str(&ev, 1, "room");
    w_str(&ev, 2, "ev");
    w_u64(&ev, 7, 300);
    w_event(&seeds[1], &ev);
    w_event(&seeds[2], &ev);
    w_event(&seeds[2], &ev);
    uint64_t rng = 0x2545f4914f6cdd1dull;
    size_t decoded = 0;
    for (int i = 0; i < 200000; i++) {
        wbuf w = seeds[i % 3];
        int edits = 1 + (int)(rng_next(&rng) % 4);
        for (int k = 0; k < edits && w.n > 0; k++) {
            size_t at = rng_next(&rng) % w.n;
            switch (rng_next(&rng) % 4) {
            case 0:
                w.b[at] ^= (uint8_t)(1u << (rng_next(&rng) % 8));
                break;
            case 1:
                w.b[at] = (uint8_t)rng_next(&rng);
                break;
            case 2:
                w.n = at;
                break;
            default:
                if (w.n < sizeof(w.b)) {
                    memmove(w.b + at + 1, w.b + at, w.n - at);
                    w.b[at] = (uint8_t)rng_next(&rng);
                    w.n++;
                }
                break;
            }
        }
        decoded += (size_t)compare_w(&w);
    }
    /* The run exercised both answers. */
    assert_true(decoded > 1000);
    assert_true(decoded < 200000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_field_and_every_subset),
        cmocka_unit_test(request_id),
        cmocka_unit_test(unknown_fields_are_skipped),
        cmocka_unit_test(groups_and_bad_wire_types),
        cmocka_unit_test(known_fields_with_the_wrong_wire_type),
        cmocka_unit_test(unusual_order),
        cmocka_unit_test(repeated_fields_last_wins),
        cmocka_unit_test(string_bounds),
        cmocka_unit_test(odd_strings),
        cmocka_unit_test(varints),
        cmocka_unit_test(malformed),
        cmocka_unit_test(truncated_at_every_byte),
        cmocka_unit_test(not_event_frames),
        cmocka_unit_test(schema_matches),
        cmocka_unit_test(mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
