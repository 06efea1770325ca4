/* test_security.c: units behind the security review's fixes (issue 16):
 * log escaping (dlg_log_escape) and the identity-keyed rate limiter
 * (ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlg_err.h"
#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_log.h"
#include "dlg_pbcheck.h"
#include "dlg_utf8.h"
#include "ratelimit.h"

/* ---- log escaping ------------------------------------------------------- */

static void escape_case(const char *in, const char *want) {
    char out[256];
    size_t n = dlg_log_escape(in, out, sizeof(out));
    if (strcmp(out, want) != 0)
        print_error("escape(%s): got \"%s\", want \"%s\"\n", in, out, want);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void log_escapes_what_forges_lines(void **state) {
    (void)state;
    escape_case("plain name", "plain name");
    escape_case("a\nb", "a\\x0ab");
    escape_case("x\r\n2026-12-07T00:00:00.000Z dialogued INFO welcome user=root",
                "x\\x0d\\x0a2026-12-07T00:00:00.000Z dialogued INFO welcome user=root");
    escape_case("esc\x1b[31mred", "esc\\x1b[31mred");
    escape_case("del\x7f", "del\\x7f");
    escape_case("back\\slash", "back\\\\slash");
    escape_case("J\xc3\xbcrgen", "J\xc3\xbcrgen");             /* UTF-8 kept */
    escape_case("c1\xc2\x9b" "31m", "c1\\xc2\\x9b31m");          /* C1 CSI */
    escape_case("bad\xff\xfe", "bad\\xff\\xfe");                 /* not UTF-8 */
    escape_case("over\xc0\xaf", "over\\xc0\\xaf");               /* overlong */
    escape_case("ls\xe2\x80\xa8x", "ls\\xe2\\x80\\xa8x");        /* U+2028 */
    escape_case("bidi\xe2\x80\xae" "evil", "bidi\\xe2\\x80\\xae" "evil"); /* U+202E */
    escape_case("cut\xe2\x82", "cut\\xe2\\x82");                 /* truncated */
}

static void log_escape_never_splits(void **state) {
    (void)state;
    char out[8];
    /* "ab" fits, then "\x0a" (4 bytes) does not: nothing half-written. */
    assert_int_equal(dlg_log_escape("abcde\nz", out, sizeof(out)), 5);
    assert_string_equal(out, "abcde");
    assert_int_equal(dlg_log_escape("ab\xc3\xbc\xc3\xbc\xc3\xbc", out, sizeof(out)), 6);
    assert_string_equal(out, "ab\xc3\xbc\xc3\xbc");
    assert_int_equal(dlg_log_escape("x", out, 0), 0);
    assert_int_equal(dlg_log_escape("x", out, 1), 0);
    assert_string_equal(out, "");
}

static void log_line_is_one_line(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    dlg_log l = {.level = DLG_LOG_INFO, .out = f, .prog = "t"};
    dlg_log_info(&l, "welcome name=%s", "evil\n2026 t INFO welcome user=root");
    fclose(f);
    assert_non_null(strstr(buf, "welcome name=evil\\x0a2026 t INFO"));
    assert_ptr_equal(strchr(buf, '\n'), buf + len - 1);
    free(buf);
}

/* ---- rate limiter ------------------------------------------------------- */

#define SEC 1000000000ull
enum { TOKEN = 2, CERT = 3, ANON = 4 };

static int take(dlg_ratelimit *rl, int kind, const char *name, const char *room, uint64_t t) {
    return dlg_ratelimit_take(rl, kind, name, DLG_RATE_TRIGGER, room, 1, 3, t);
}

static void rate_bucket_per_identity(void **state) {
    (void)state;
    dlg_ratelimit *rl = dlg_ratelimit_new();
    assert_non_null(rl);
    uint64_t t = 10 * SEC;
    for (int i = 0; i < 3; i++)
        assert_int_equal(take(rl, TOKEN, "alice", "r", t), 1);
    assert_int_equal(take(rl, TOKEN, "alice", "r", t), 0);
    /* Another room, another kind of the same name, another op: their own. */
    assert_int_equal(take(rl, TOKEN, "alice", "s", t), 1);
    assert_int_equal(take(rl, CERT, "alice", "r", t), 1);
    assert_int_equal(dlg_ratelimit_take(rl, TOKEN, "alice", DLG_RATE_ROOM_OPS, "r", 1, 3, t), 1);
    /* (name "ab", room "c") and (name "a", room "bc") are two buckets. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(take(rl, TOKEN, "ab", "c", t), 1);
    assert_int_equal(take(rl, TOKEN, "a", "bc", t), 1);
    /* One token a second comes back, never more than the burst. */
    assert_int_equal(take(rl, TOKEN, "alice", "r", t + SEC / 2), 0);
    assert_int_equal(take(rl, TOKEN, "alice", "r", t + SEC + SEC / 10), 1);
    assert_int_equal(take(rl, TOKEN, "alice", "r", t + SEC + SEC / 5), 0);
    /* per_second 0: no limit, nothing stored. */
    size_t n = dlg_ratelimit_count(rl);
    for (int i = 0; i < 100; i++)
        assert_int_equal(dlg_ratelimit_take(rl, TOKEN, "bob", DLG_RATE_TRIGGER, "r", 0, 0, t), 1);
    assert_int_equal(dlg_ratelimit_count(rl), n);
    dlg_ratelimit_free(rl);
}

static void rate_expiry_keeps_the_rest(void **state) {
    (void)state;
    dlg_ratelimit *rl = dlg_ratelimit_new();
    assert_non_null(rl);
    char name[32];
    /* Enough buckets to grow the table several times and make long probe
     * runs; the odd ones are drained (full again only after 3 s). */
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "user-%d", i);
        assert_int_equal(take(rl, TOKEN, name, "r", SEC), 1);
        if (i % 2)
            for (int k = 0; k < 2; k++)
                assert_int_equal(take(rl, TOKEN, name, "r", SEC), 1);
    }
    assert_int_equal(dlg_ratelimit_count(rl), N);
    /* At 2.5 s the even ones (one token used) are full again; the odd ones
     * (all three used) are not. */
    dlg_ratelimit_expire(rl, SEC + 5 * SEC / 2 - SEC / 2);
    assert_int_equal(dlg_ratelimit_count(rl), N / 2);
    /* Every odd bucket is still found, with its state: empty at 1 s plus
     * 1.2 s = one token. */
    for (int i = 1; i < N; i += 2) {
        snprintf(name, sizeof(name), "user-%d", i);
        assert_int_equal(take(rl, TOKEN, name, "r", SEC + SEC + SEC / 5), 1);
        assert_int_equal(take(rl, TOKEN, name, "r", SEC + SEC + SEC / 5), 0);
    }
    assert_int_equal(dlg_ratelimit_count(rl), N / 2);
    dlg_ratelimit_expire(rl, 100 * SEC);
    assert_int_equal(dlg_ratelimit_count(rl), 0);
    dlg_ratelimit_free(rl);
}

static void rate_bad_arguments(void **state) {
    (void)state;
    dlg_ratelimit *rl = dlg_ratelimit_new();
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(take(rl, TOKEN, longname, "r", SEC), DLG_EINVAL);
    assert_int_equal(take(rl, ANON, "c1", longname, SEC), DLG_EINVAL);
    dlg_ratelimit_free(rl);
    dlg_ratelimit_free(NULL);
}

/* ---- UTF-8 and protocol strings ------------------------------------- */

static void utf8_strict(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"plain", 5, 1},
        {"J\xc3\xbcrgen", 7, 1},
        {"\xf0\x9f\x98\x80", 4, 1},          /* U+1F600 */
        {"\xc0\xaf", 2, 0},                   /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},               /* overlong */
        {"\xed\xa0\x80", 3, 0},               /* surrogate D800 */
        {"\xf4\x90\x80\x80", 4, 0},           /* above U+10FFFF */
        {"\xc3", 1, 0},                       /* cut short */
        {"\x80", 1, 0},                       /* lone continuation */
        {"a\0b", 3, 1},                       /* NUL is UTF-8; pbcheck refuses it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (dlg_utf8_valid(cases[i].s, cases[i].n) != cases[i].ok)
            fail_msg("case %zu", i);
}

/* A ClientFrame{join{room}} with room's bytes as given. */
static size_t join_frame(uint8_t *out, const char *room, size_t n) {
    out[0] = 0x08; /* request_id = 5 */
    out[1] = 5;
    out[2] = (uint8_t)(DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN << 3 | 2);
    out[3] = (uint8_t)(n + 2);
    out[4] = 0x0a; /* Join.room */
    out[5] = (uint8_t)n;
    memcpy(out + 6, room, n);
    return 6 + n;
}

static void protocol_strings(void **state) {
    (void)state;
    const ProtobufCMessageDescriptor *d = &dialogue__v1__client_frame__descriptor;
    uint8_t buf[64];
    char err[128] = "";
    size_t n = join_frame(buf, "lobby", 5);
    assert_int_equal(dlg_pb_check_strings(d, buf, n, err, sizeof(err)), 0);
    n = join_frame(buf, "secret\0junk", 11);
    assert_int_equal(dlg_pb_check_strings(d, buf, n, err, sizeof(err)), DLG_EINVAL);
    assert_string_equal(err, "Join.room: holds a NUL byte");
    n = join_frame(buf, "r\xff", 2);
    assert_int_equal(dlg_pb_check_strings(d, buf, n, err, sizeof(err)), DLG_EINVAL);
    assert_string_equal(err, "Join.room: is not valid UTF-8");
    /* Bytes fields are not strings: a Trigger's data may hold anything. */
    Dialogue__V1__Trigger t = DIALOGUE__V1__TRIGGER__INIT;
    t.room = "r";
    t.event = "e";
    t.data.data = (uint8_t *)"\0\xff\xfe";
    t.data.len = 3;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_TRIGGER;
    f.trigger = &t;
    n = dialogue__v1__client_frame__pack(&f, buf);
    assert_int_equal(dlg_pb_check_strings(d, buf, n, err, sizeof(err)), 0);
    /* Truncated input: not a message. */
    n = join_frame(buf, "lobby", 5);
    assert_int_equal(dlg_pb_check_strings(d, buf, n - 2, err, sizeof(err)), DLG_EPROTO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_escapes_what_forges_lines),
        cmocka_unit_test(log_escape_never_splits),
        cmocka_unit_test(log_line_is_one_line),
        cmocka_unit_test(rate_bucket_per_identity),
        cmocka_unit_test(rate_expiry_keeps_the_rest),
        cmocka_unit_test(rate_bad_arguments),
        cmocka_unit_test(utf8_strict),
        cmocka_unit_test(protocol_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
