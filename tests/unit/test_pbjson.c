/* test_pbjson.c: the protobuf <-> JSON transcoder of dialoguectl, against
 * the dashboard events and the every-type fixture in tests/pbjson/. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlg_err.h"
#include "dlg_schema.h"
#include "pbjson.h"

#ifndef PBJSON_TEST_B
#define PBJSON_TEST_B "build"
#endif

typedef struct {
    dlg_schema *s;
    const dlg_schema_msg *metrics, *alert, *all, *deep;
} fx_t;

static int group_setup(void **state) {
    fx_t *fx = calloc(1, sizeof *fx);
    char err[256] = "";
    if (fx == NULL || dlg_schema_new(&fx->s) != 0)
        return -1;
    if (dlg_schema_load_file(fx->s, PBJSON_TEST_B "/share/dialogue/dashboard.pb",
                             err, sizeof err) != 0 ||
        dlg_schema_load_file(fx->s, PBJSON_TEST_B "/tests/pbjson/alltypes.pb",
                             err, sizeof err) != 0) {
        fprintf(stderr, "loading descriptor sets: %s\n", err);
        return -1;
    }
    const dlg_schema_event *m = dlg_schema_event_find(fx->s, "metrics:update");
    const dlg_schema_event *a = dlg_schema_event_find(fx->s, "alert:triggered");
    fx->metrics = m ? m->msg : NULL;
    fx->alert = a ? a->msg : NULL;
    fx->all = dlg_schema_msg_find(fx->s, "pbjson.test.All");
    fx->deep = dlg_schema_msg_find(fx->s, "pbjson.test.Deep");
    if (!fx->metrics || !fx->alert || !fx->all || !fx->deep) {
        fprintf(stderr, "fixture message types missing\n");
        return -1;
    }
    *state = fx;
    return 0;
}

static int group_teardown(void **state) {
    fx_t *fx = *state;
    if (fx) {
        dlg_schema_free(fx->s);
        free(fx);
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static json_t *parse(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (j == NULL)
        fail_msg("bad JSON in test: %s: %s", text, je.text);
    return j;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = 0;
    unsigned v;
    int used;
    while (sscanf(hex, " %2x%n", &v, &used) == 1) {
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        hex += used;
    }
    return n;
}

static void assert_json_text(const json_t *got, const char *want_text) {
    json_t *want = parse(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_ENCODE_ANY | JSON_SORT_KEYS);
        print_error("got  %s\nwant %s\n", g, w);
        free(g);
        free(w);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

/* Encodes text and checks the exact wire bytes (hex, spaces allowed). */
static void enc_hex(const dlg_schema_msg *m, const char *text, const char *hex) {
    uint8_t want[256];
    size_t wn = unhex(hex, want, sizeof want);
    json_t *in = parse(text);
    uint8_t *out = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = dlg_pbjson_encode(m, in, &out, &n, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: rc %d: %s", text, rc, err);
    assert_non_null(out);
    if (n != wn || memcmp(out, want, n) != 0) {
        print_error("%s encoded as", text);
        for (size_t i = 0; i < n; i++)
            print_error(" %02x", out[i]);
        print_error("\n   expected %s\n", hex);
        fail();
    }
    free(out);
    json_decref(in);
}

static void enc_err(const dlg_schema_msg *m, const char *text,
                    const char *want) {
    json_t *in = parse(text);
    uint8_t *out = (uint8_t *)"untouched";
    size_t n = 12345;
    char err[512] = "";
    int rc = dlg_pbjson_encode(m, in, &out, &n, err, sizeof err);
    if (rc != DLG_EINVAL || strcmp(err, want) != 0)
        fail_msg("%s: rc %d, err '%s', want '%s'", text, rc, err, want);
    assert_string_equal((char *)out, "untouched");   /* left unchanged */
    assert_int_equal(n, 12345);
    json_decref(in);
}

/* Wire bytes (hex) decode to the JSON text given. */
static void dec_hex(const dlg_schema_msg *m, const char *hex, const char *want) {
    uint8_t in[256];
    size_t n = unhex(hex, in, sizeof in);
    json_t *got = NULL;
    char err[256] = "";
    int rc = dlg_pbjson_decode(m, in, n, &got, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: rc %d: %s", hex, rc, err);
    assert_json_text(got, want);
    json_decref(got);
}

static void dec_err_buf(const dlg_schema_msg *m, const uint8_t *in, size_t n,
                        const char *want) {
    json_t *got = (json_t *)&n;
    char err[512] = "";
    int rc = dlg_pbjson_decode(m, in, n, &got, err, sizeof err);
    if (rc != DLG_EINVAL || strcmp(err, want) != 0)
        fail_msg("rc %d, err '%s', want '%s'", rc, err, want);
    assert_ptr_equal(got, (json_t *)&n);
}

static void dec_err(const dlg_schema_msg *m, const char *hex, const char *want) {
    uint8_t in[256];
    size_t n = unhex(hex, in, sizeof in);
    dec_err_buf(m, in, n, want);
}

/* JSON -> bytes -> JSON gives want (the canonical form of text). */
static void trip(const dlg_schema_msg *m, const char *text, const char *want) {
    json_t *in = parse(text);
    uint8_t *bytes = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = dlg_pbjson_encode(m, in, &bytes, &n, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: rc %d: %s", text, rc, err);
    json_t *back = NULL;
    rc = dlg_pbjson_decode(m, bytes, n, &back, err, sizeof err);
    if (rc != 0)
        fail_msg("decoding %s: rc %d: %s", text, rc, err);
    assert_json_text(back, want ? want : text);
    json_decref(back);
    json_decref(in);
    free(bytes);
}

/* A tiny wire writer, independent of the one under test. */
typedef struct {
    uint8_t b[4096];
    size_t n;
} wire_t;

static void w_varint(wire_t *w, uint64_t v) {
    do {
        assert_true(w->n < sizeof w->b);
        w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void w_tag(wire_t *w, uint64_t num, int wt) {
    w_varint(w, num << 3 | (uint64_t)wt);
}

static void w_raw(wire_t *w, const char *hex) {
    w->n += unhex(hex, w->b + w->n, sizeof w->b - w->n);
}

static void w_dec(const dlg_schema_msg *m, const wire_t *w, const char *want) {
    json_t *got = NULL;
    char err[256] = "";
    int rc = dlg_pbjson_decode(m, w->b, w->n, &got, err, sizeof err);
    if (rc != 0)
        fail_msg("rc %d: %s", rc, err);
    assert_json_text(got, want);
    json_decref(got);
}

/* Every field of the fixture with values at the edges of their types. */
static const char all_json[] =
    "{\"fDouble\": -2.5, \"fFloat\": 0.1,"
    " \"fInt64\": \"-9223372036854775808\","
    " \"fUint64\": \"18446744073709551615\", \"fInt32\": -2147483648,"
    " \"fFixed64\": \"18446744073709551615\", \"fFixed32\": 4294967295,"
    " \"fBool\": true, \"fString\": \"h\\u00e9llo \\u0000 \\u4e16\\ud83d\\ude00\","
    " \"fMsg\": {\"id\": 7, \"label\": \"x\","
    "            \"children\": [{\"id\": 1}, {\"label\": \"y\"}]},"
    " \"fBytes\": \"AAEC/f7/\", \"fUint32\": 4294967295, \"fEnum\": \"GREEN\","
    " \"fSfixed32\": -5, \"fSfixed64\": \"-6\", \"fSint32\": -2147483648,"
    " \"fSint64\": \"-9223372036854775808\","
    " \"rInt32\": [1, -1, 2147483647], \"rString\": [\"a\", \"\", \"c\"],"
    " \"rMsg\": [{\"id\": 1}, {}, {\"label\": \"z\"}],"
    " \"rDouble\": [1.5, \"NaN\", \"Infinity\", \"-Infinity\", 0.0, 1e300],"
    " \"rSint64\": [\"-1\", \"1\", \"9223372036854775807\"],"
    " \"rEnum\": [\"RED\", \"COLOR_UNSPECIFIED\", 7],"
    " \"rBytes\": [\"\", \"AA==\", \"AAE=\"], \"rUnpacked\": [0, 5],"
    " \"rFloat\": [1.5, -0.25, 1e-10, \"NaN\"],"
    " \"rFixed64\": [\"0\", \"18446744073709551615\"],"
    " \"mStrInt\": {\"a\": 1, \"\": -1},"
    " \"mI64Str\": {\"-5\": \"neg\", \"9223372036854775807\": \"max\"},"
    " \"mBoolMsg\": {\"true\": {\"id\": 1}, \"false\": {}},"
    " \"mU32Enum\": {\"0\": \"RED\", \"4294967295\": \"GREEN\"},"
    " \"mS32Bytes\": {\"-2147483648\": \"/w==\"},"
    " \"requests\": \"12\", \"count\": 0, \"ucount\": 0,"
    " \"deep\": {\"next\": {\"next\": {\"v\": 3}}}}";

/* ---- encoding ----------------------------------------------------------- */

static void metrics_cpu_zero_exact(void **state) {
    fx_t *fx = *state;
    enc_hex(fx->metrics, "{\"cpu\":0}", "09 00 00 00 00 00 00 00 00");
    enc_hex(fx->metrics, "{\"cpu\":0.0}", "09 00 00 00 00 00 00 00 00");
    enc_hex(fx->metrics, "{\"cpu\":1.5}", "09 00 00 00 00 00 00 f8 3f");
    enc_hex(fx->metrics, "{\"memory\":2,\"cpu\":null}",
            "11 00 00 00 00 00 00 00 40");
}

static void alert_roundtrip(void **state) {
    fx_t *fx = *state;
    const char *a = "{\"alertId\":\"a\",\"severity\":\"high\",\"message\":\"m\","
                    "\"timestamp\":\"1700000000000\"}";
    /* 1700000000000 = varint 80 d0 95 ff bc 31 */
    enc_hex(fx->alert, a, "0a 01 61 10 02 1a 01 6d 20 80 d0 95 ff bc 31");
    trip(fx->alert, a, NULL);
    /* Proto names are accepted and come back as json_name. */
    trip(fx->alert, "{\"alert_id\":\"a\",\"severity\":2,\"message\":\"m\","
                    "\"timestamp\":1700000000000}", a);
    enc_hex(fx->alert, "{\"severity\":\"low\",\"alert_id\":\"\"}",
            "0a 00 10 00");
}

static void exact_bytes(void **state) {
    fx_t *fx = *state;
    /* proto3 repeated scalars are packed by default... */
    enc_hex(fx->all, "{\"rInt32\":[1,2,300]}", "a2 01 04 01 02 ac 02");
    /* -FLT_MAX as decode prints it (shortest decimal, a hair beyond FLT_MAX). */
    enc_hex(fx->all, "{\"rFloat\":[-3.40282347e+38]}", "e2 01 04 ff ff 7f ff");
    /* ...unless [packed = false]. */
    enc_hex(fx->all, "{\"rUnpacked\":[1,2]}", "d8 01 01 d8 01 02");
    /* Strings and bytes are never packed. */
    enc_hex(fx->all, "{\"rString\":[\"a\",\"\"]}", "aa 01 01 61 aa 01 00");
    /* Zero values given are written (explicit presence). */
    enc_hex(fx->all, "{\"fInt32\":0,\"fString\":\"\",\"fBool\":false}",
            "28 00 40 00 4a 00");
    enc_hex(fx->all, "{\"fInt32\":-1}", "28 ff ff ff ff ff ff ff ff ff 01");
    enc_hex(fx->all, "{\"fSint32\":-1,\"fSint64\":\"-2\"}", "88 01 01 90 01 03");
    enc_hex(fx->all, "{\"fSint32\":-2147483648}", "88 01 ff ff ff ff 0f");
    enc_hex(fx->all, "{\"fFixed32\":1,\"fSfixed64\":\"-1\"}",
            "3d 01 00 00 00 81 01 ff ff ff ff ff ff ff ff");
    enc_hex(fx->all, "{\"fFloat\":1}", "15 00 00 80 3f");
    enc_hex(fx->all, "{\"fBytes\":\"-_8\"}", "62 02 fb ff");
    enc_hex(fx->all, "{\"fBytes\":\"+/8=\"}", "62 02 fb ff");
    enc_hex(fx->all, "{\"fEnum\":\"GREEN\"}", "70 02");
    enc_hex(fx->all, "{\"fEnum\":-1}", "70 ff ff ff ff ff ff ff ff ff 01");
    enc_hex(fx->all, "{\"fMsg\":{}}", "5a 00");
    enc_hex(fx->all, "{\"fMsg\":{\"id\":1}}", "5a 02 08 01");
    enc_hex(fx->all, "{\"mStrInt\":{\"a\":1}}", "f2 01 05 0a 01 61 10 01");
    enc_hex(fx->all, "{\"mBoolMsg\":{\"true\":{}}}", "82 02 04 08 01 12 00");
    /* Field-number order whatever the JSON order. */
    enc_hex(fx->all, "{\"fInt32\":1,\"fDouble\":0}",
            "09 00 00 00 00 00 00 00 00 28 01");
    /* Empty repeated and map fields write nothing; out is still set. */
    enc_hex(fx->all, "{\"rInt32\":[],\"mStrInt\":{},\"fString\":null}", "");
    enc_hex(fx->all, "{}", "");
}

static void all_types_roundtrip(void **state) {
    fx_t *fx = *state;
    trip(fx->all, all_json, NULL);
}

static void accepted_spellings(void **state) {
    fx_t *fx = *state;
    trip(fx->all, "{\"f_int32\":\"7\"}", "{\"fInt32\":7}");
    trip(fx->all, "{\"fInt32\":7.0}", "{\"fInt32\":7}");
    trip(fx->all, "{\"fInt32\":\"1e2\"}", "{\"fInt32\":100}");
    trip(fx->all, "{\"fInt32\":\"-0\"}", "{\"fInt32\":0}");
    trip(fx->all, "{\"fInt64\":5}", "{\"fInt64\":\"5\"}");
    trip(fx->all, "{\"fInt64\":-5.0}", "{\"fInt64\":\"-5\"}");
    trip(fx->all, "{\"fInt64\":\"9223372036854775807\"}",
         "{\"fInt64\":\"9223372036854775807\"}");
    trip(fx->all, "{\"fUint64\":5}", "{\"fUint64\":\"5\"}");
    trip(fx->all, "{\"fUint64\":1e19}", "{\"fUint64\":\"10000000000000000000\"}");
    trip(fx->all, "{\"fUint32\":\"-0\"}", "{\"fUint32\":0}");
    trip(fx->all, "{\"fEnum\":2}", "{\"fEnum\":\"GREEN\"}");
    trip(fx->all, "{\"fEnum\":7}", "{\"fEnum\":7}");
    trip(fx->all, "{\"fBytes\":\"-_8\"}", "{\"fBytes\":\"+/8=\"}");
    trip(fx->all, "{\"fBytes\":\"AAE\"}", "{\"fBytes\":\"AAE=\"}");
    trip(fx->all, "{\"fBytes\":\"\"}", "{\"fBytes\":\"\"}");
    trip(fx->all, "{\"fDouble\":\"1.5\"}", "{\"fDouble\":1.5}");
    trip(fx->all, "{\"fDouble\":3}", "{\"fDouble\":3.0}");
    trip(fx->all, "{\"fDouble\":\"-Infinity\"}", "{\"fDouble\":\"-Infinity\"}");
    trip(fx->all, "{\"fFloat\":0.1}", "{\"fFloat\":0.1}");
    trip(fx->all, "{\"fFloat\":\"NaN\"}", "{\"fFloat\":\"NaN\"}");
    trip(fx->all, "{\"fString\":null,\"fMsg\":null}", "{}");
    trip(fx->all, "{\"m_i64_str\":{\"007\":\"x\"}}", "{\"mI64Str\":{\"7\":\"x\"}}");
    trip(fx->all, "{\"m_str_int\":{\"k\":\"3\"}}", "{\"mStrInt\":{\"k\":3}}");
    trip(fx->all, "{\"mBoolMsg\":{\"false\":{\"label\":\"f\"}}}",
         "{\"mBoolMsg\":{\"false\":{\"label\":\"f\"}}}");
    trip(fx->all, "{\"r_enum\":[1,\"GREEN\"]}", "{\"rEnum\":[\"RED\",\"GREEN\"]}");
}

static void encode_errors(void **state) {
    fx_t *fx = *state;
    static const struct {
        int which;              /* 0 metrics, 1 alert, 2 all */
        const char *in, *err;
    } t[] = {
        {0, "{\"cpu\":\"high\"}", "cpu: expected a number, got string"},
        {0, "{\"cpuu\":1}",
         "unknown field \"cpuu\" in dialogue.dashboard.MetricsUpdate"},
        {0, "{\"cpu\":true}", "cpu: expected a number, got boolean"},
        {0, "[1]", "expected an object, got array"},
        {0, "\"x\"", "expected an object, got string"},
        {1, "{\"severity\":\"hgh\"}",
         "severity: \"hgh\" is not a value of dialogue.dashboard.Severity"},
        {1, "{\"severity\":true}",
         "severity: expected an enum name or number, got boolean"},
        {1, "{\"alertId\":\"a\",\"alert_id\":\"b\"}",
         "\"alertId\" and \"alert_id\" both set field alert_id of "
         "dialogue.dashboard.AlertTriggered"},
        {1, "{\"alertId\":5}", "alertId: expected a string, got number"},
        {1, "{\"timestamp\":\"-1\"}",
         "timestamp: \"-1\" out of range for uint64"},
        {1, "{\"timestamp\":1.5e20}",
         "timestamp: 1.5e20 out of range for uint64"},
        {2, "{\"requests\":1.5}", "requests: 1.5 is not an integer"},
        {2, "{\"requests\":\"1.5\"}", "requests: \"1.5\" is not an integer"},
        {2, "{\"requests\":\"12a\"}", "requests: expected a number, got string"},
        {2, "{\"requests\":\" 12\"}", "requests: expected a number, got string"},
        {2, "{\"requests\":\"0x10\"}", "requests: expected a number, got string"},
        {2, "{\"requests\":\"9223372036854775808\"}",
         "requests: \"9223372036854775808\" out of range for int64"},
        {2, "{\"requests\":9.3e18}", "requests: 9.3e18 out of range for int64"},
        {2, "{\"count\":3000000000}", "count: 3000000000 out of range for int32"},
        {2, "{\"count\":-2147483649}",
         "count: -2147483649 out of range for int32"},
        {2, "{\"ucount\":-1}", "ucount: -1 out of range for uint32"},
        {2, "{\"ucount\":\"-1\"}", "ucount: \"-1\" out of range for uint32"},
        {2, "{\"ucount\":4294967296}",
         "ucount: 4294967296 out of range for uint32"},
        {2, "{\"fSint32\":2147483648}",
         "fSint32: 2147483648 out of range for sint32"},
        {2, "{\"fFixed32\":-3}", "fFixed32: -3 out of range for fixed32"},
        {2, "{\"fUint64\":\"18446744073709551616\"}",
         "fUint64: \"18446744073709551616\" out of range for uint64"},
        {2, "{\"fFloat\":1e39}", "fFloat: 1e39 out of range for float"},
        {2, "{\"fDouble\":\"1e999\"}",
         "fDouble: \"1e999\" out of range for double"},
        {2, "{\"fDouble\":\"nan\"}", "fDouble: expected a number, got string"},
        {2, "{\"fDouble\":[]}", "fDouble: expected a number, got array"},
        {2, "{\"fBool\":\"true\"}", "fBool: expected a boolean, got string"},
        {2, "{\"fBool\":1}", "fBool: expected a boolean, got number"},
        {2, "{\"fString\":{}}", "fString: expected a string, got object"},
        {2, "{\"fBytes\":\"!!\"}", "fBytes: not valid base64"},
        {2, "{\"fBytes\":\"A\"}", "fBytes: not valid base64"},
        {2, "{\"fBytes\":\"AA===\"}", "fBytes: not valid base64"},
        {2, "{\"fBytes\":\"AA=\"}", "fBytes: not valid base64"},
        {2, "{\"fBytes\":\"A=AA\"}", "fBytes: not valid base64"},
        {2, "{\"fBytes\":1}", "fBytes: expected a base64 string, got number"},
        {2, "{\"fEnum\":\"2\"}", "fEnum: \"2\" is not a value of pbjson.test.Color"},
        {2, "{\"fEnum\":1.5}", "fEnum: 1.5 is not an integer"},
        {2, "{\"fMsg\":5}", "fMsg: expected an object, got number"},
        {2, "{\"fMsg\":{\"idd\":1}}",
         "fMsg: unknown field \"idd\" in pbjson.test.Inner"},
        {2, "{\"f_msg\":{\"children\":[{},{\"id\":\"x\"}]}}",
         "f_msg.children[1].id: expected a number, got string"},
        {2, "{\"rInt32\":{}}", "rInt32: expected an array, got object"},
        {2, "{\"rInt32\":[1,\"x\"]}", "rInt32[1]: expected a number, got string"},
        {2, "{\"rInt32\":[null]}",
         "rInt32[0]: null is not allowed in a repeated field"},
        {2, "{\"rMsg\":[{}, 3]}", "rMsg[1]: expected an object, got number"},
        {2, "{\"mStrInt\":[]}", "mStrInt: expected an object, got array"},
        {2, "{\"mStrInt\":{\"k\":\"x\"}}",
         "mStrInt[\"k\"]: expected a number, got string"},
        {2, "{\"mStrInt\":{\"k\":null}}",
         "mStrInt[\"k\"]: null is not allowed as a map value"},
        {2, "{\"mI64Str\":{\"abc\":\"x\"}}",
         "mI64Str[\"abc\"] (map key): expected a number, got string"},
        {2, "{\"mU32Enum\":{\"-1\":\"RED\"}}",
         "mU32Enum[\"-1\"] (map key): \"-1\" out of range for uint32"},
        {2, "{\"mBoolMsg\":{\"yes\":{}}}",
         "mBoolMsg[\"yes\"] (map key): \"yes\" is not a boolean"},
        {2, "{\"mU32Enum\":{\"1\":\"BLUE\"}}",
         "mU32Enum[\"1\"]: \"BLUE\" is not a value of pbjson.test.Color"},
        {2, "{\"mBoolMsg\":{\"true\":{\"x\":1}}}",
         "mBoolMsg[\"true\"]: unknown field \"x\" in pbjson.test.Inner"},
    };
    const dlg_schema_msg *ms[] = {fx->metrics, fx->alert, fx->all};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        enc_err(ms[t[i].which], t[i].in, t[i].err);
}

/* Builds {"deep":{"next":{...{"v":1}}}} with levels nested "next" objects. */
static json_t *deep_json(int levels) {
    json_t *cur = json_pack("{s:i}", "v", 1);
    for (int i = 0; i < levels; i++)
        cur = json_pack("{s:o}", "next", cur);
    return json_pack("{s:o}", "deep", cur);
}

static void encode_depth_limit(void **state) {
    fx_t *fx = *state;
    /* All is depth 0 and "deep" depth 1, so 31 "next" reach depth 32. */
    json_t *ok = deep_json(31);
    uint8_t *out = NULL;
    size_t n = 0;
    char err[512] = "";
    assert_int_equal(dlg_pbjson_encode(fx->all, ok, &out, &n, err, sizeof err), 0);
    json_t *back = NULL;
    assert_int_equal(dlg_pbjson_decode(fx->all, out, n, &back, err, sizeof err), 0);
    assert_true(json_equal(back, ok));
    json_decref(back);
    free(out);
    json_decref(ok);

    json_t *bad = deep_json(32);
    assert_int_equal(dlg_pbjson_encode(fx->all, bad, &out, &n, err, sizeof err),
                     DLG_EINVAL);
    char want[512] = "deep";
    for (int i = 0; i < 32; i++)
        strcat(want, ".next");
    strcat(want, ": nesting deeper than 32");
    assert_string_equal(err, want);
    json_decref(bad);
}

static void encode_args_and_err_buffer(void **state) {
    fx_t *fx = *state;
    json_t *in = parse("{\"cpuu\":1}");
    uint8_t *out = NULL;
    size_t n = 0;
    char err[8];
    /* A short buffer gets a cut, terminated message; NULL err is fine. */
    assert_int_equal(dlg_pbjson_encode(fx->metrics, in, &out, &n, err, sizeof err),
                     DLG_EINVAL);
    assert_string_equal(err, "unknown");
    assert_int_equal(dlg_pbjson_encode(fx->metrics, in, &out, &n, NULL, 0),
                     DLG_EINVAL);
    assert_int_equal(dlg_pbjson_encode(NULL, in, &out, &n, NULL, 0), DLG_EINVAL);
    assert_int_equal(dlg_pbjson_encode(fx->metrics, NULL, &out, &n, NULL, 0),
                     DLG_EINVAL);
    assert_null(out);
    json_decref(in);
}

/* ---- decoding ----------------------------------------------------------- */

static void decode_basics(void **state) {
    fx_t *fx = *state;
    dec_hex(fx->metrics, "09 00 00 00 00 00 00 00 00", "{\"cpu\":0.0}");
    dec_hex(fx->metrics, "", "{}");
    json_t *got = NULL;
    assert_int_equal(dlg_pbjson_decode(fx->metrics, NULL, 0, &got, NULL, 0), 0);
    assert_json_text(got, "{}");
    json_decref(got);
    /* NaN and infinities as strings, float shown by its shortest decimal. */
    dec_hex(fx->all, "09 00 00 00 00 00 00 f8 7f 15 cd cc cc 3d",
            "{\"fDouble\":\"NaN\",\"fFloat\":0.1}");
    dec_hex(fx->all, "09 00 00 00 00 00 00 f0 ff 15 00 00 80 7f",
            "{\"fDouble\":\"-Infinity\",\"fFloat\":\"Infinity\"}");
    /* Undefined enum number shown as a number. */
    dec_hex(fx->all, "70 09", "{\"fEnum\":9}");
    dec_hex(fx->alert, "10 03", "{\"severity\":\"critical\"}");
    /* int32 from a 10-byte negative varint and a truncated 5-byte one. */
    dec_hex(fx->all, "28 fe ff ff ff ff ff ff ff ff 01", "{\"fInt32\":-2}");
    dec_hex(fx->all, "28 fe ff ff ff 0f", "{\"fInt32\":-2}");
    /* Last value wins for a repeated singular scalar. */
    dec_hex(fx->all, "28 01 28 02", "{\"fInt32\":2}");
    /* A message seen twice is merged. */
    dec_hex(fx->all, "5a 02 08 01 5a 03 12 01 78",
            "{\"fMsg\":{\"id\":1,\"label\":\"x\"}}");
    /* Packed field sent unpacked and the reverse, mixed. */
    dec_hex(fx->all, "a0 01 01 a2 01 02 02 03 a0 01 04",
            "{\"rInt32\":[1,2,3,4]}");
    dec_hex(fx->all, "da 01 02 01 02 d8 01 03", "{\"rUnpacked\":[1,2,3]}");
    dec_hex(fx->all, "e2 01 08 00 00 80 3f 00 00 00 c0",
            "{\"rFloat\":[1.0,-2.0]}");
    dec_hex(fx->all, "a2 01 00", "{}"); /* empty repeated: omitted, as canonical JSON does */
    /* Map entries with parts missing take the defaults; last key wins. */
    dec_hex(fx->all, "f2 01 00", "{\"mStrInt\":{\"\":0}}");
    dec_hex(fx->all, "82 02 02 08 01", "{\"mBoolMsg\":{\"true\":{}}}");
    dec_hex(fx->all, "8a 02 02 08 05", "{\"mU32Enum\":{\"5\":\"COLOR_UNSPECIFIED\"}}");
    dec_hex(fx->all, "92 02 02 08 03", "{\"mS32Bytes\":{\"-2\":\"\"}}");
    dec_hex(fx->all, "f2 01 05 0a 01 61 10 01 f2 01 05 0a 01 61 10 02",
            "{\"mStrInt\":{\"a\":2}}");
    /* Value before key, and an unknown field inside the entry. */
    dec_hex(fx->all, "f2 01 07 10 09 18 01 0a 01 62", "{\"mStrInt\":{\"b\":9}}");
    dec_hex(fx->alert, "0a 03 e2 82 ac", "{\"alertId\":\"\\u20ac\"}");
}

/* Decodes hex as m and checks the text dlg_pbjson_dumps makes of it. */
static void dumps_hex(const dlg_schema_msg *m, const char *hex, const char *want) {
    uint8_t in[256];
    size_t n = unhex(hex, in, sizeof in);
    json_t *got = NULL;
    char err[256] = "";
    if (dlg_pbjson_decode(m, in, n, &got, err, sizeof err) != 0)
        fail_msg("%s: %s", hex, err);
    char *text = dlg_pbjson_dumps(got);
    assert_non_null(text);
    if (strcmp(text, want) != 0)
        fail_msg("%s printed as %s, want %s", hex, text, want);
    /* Valid JSON that reads back as the same values. */
    json_error_t je;
    json_t *back = json_loads(text, 0, &je);
    if (back == NULL)
        fail_msg("%s is not valid JSON: %s", text, je.text);
    assert_true(json_equal(back, got));
    json_decref(back);
    free(text);
    json_decref(got);
}

static void dumps_shortest_numbers(void **state) {
    fx_t *fx = *state;
    /* float 2.32f (0x40147ae1) and double 2.32: both print 2.32, not
     * 2.3199999999999998 (jansson's %.17g) or 2.3199999332427979. */
    dumps_hex(fx->all, "09 8f c2 f5 28 5c 8f 02 40 15 e1 7a 14 40",
              "{\"fDouble\":2.32,\"fFloat\":2.32}");
    /* 0.1f, 1e-7f, 3.4e38f, -0.0f, 5.0f in a packed float list. */
    dumps_hex(fx->all, "e2 01 14 cd cc cc 3d 95 bf d6 33 9e c9 7f 7f 00 00 00 80 00 00 a0 40",
              "{\"rFloat\":[0.1,1e-07,3.4e+38,-0.0,5.0]}");
    /* Doubles keep every digit they need: 0.1 + 0.2. */
    dumps_hex(fx->all, "09 34 33 33 33 33 33 d3 3f", "{\"fDouble\":0.30000000000000004}");
    dumps_hex(fx->metrics, "09 00 00 00 00 00 00 59 40 11 00 00 00 00 00 00 f0 3f",
              "{\"cpu\":100.0,\"memory\":1.0}");
    /* Strings, nesting and integers come out as jansson writes them. */
    dumps_hex(fx->alert, "0a 03 e2 82 ac 10 02 1a 04 22 5c 0a 01 20 07",
              "{\"alertId\":\"\u20ac\",\"severity\":\"high\",\"message\":\"\\\"\\\\\\n\\u0001\","
              "\"timestamp\":\"7\"}");
    char b[40];
    static const struct {
        double d;
        const char *text;
    } v[] = {{0.015, "0.015"}, {1.5e-5, "1.5e-05"}, {1e16, "1e+16"},
             {1e15, "1000000000000000.0"}, {0.0001, "0.0001"}, {-0.0, "-0.0"},
             {4.9e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_int_equal(dlg_pbjson_real_text(v[i].d, b, sizeof b), 0);
        assert_string_equal(b, v[i].text);
    }
    /* Every double and every float (as the decoder stores it) reads back
     * exactly. */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (isfinite(d)) {
            assert_int_equal(dlg_pbjson_real_text(d, b, sizeof b), 0);
            assert_true(strtod(b, NULL) == d);
        }
    }
    assert_int_equal(dlg_pbjson_real_text(NAN, b, sizeof b), DLG_EINVAL);
    assert_int_equal(dlg_pbjson_real_text(1.0, b, 8), DLG_EINVAL);
}

static void decode_skips_unknown(void **state) {
    fx_t *fx = *state;
    wire_t w = {.n = 0};
    w_tag(&w, 5, 0); w_varint(&w, 5);
    w_tag(&w, 111, 0); w_varint(&w, UINT64_MAX);
    w_tag(&w, 100, 2); w_raw(&w, "02 aa bb");
    w_tag(&w, 101, 5); w_raw(&w, "01 02 03 04");
    w_tag(&w, 102, 1); w_raw(&w, "01 02 03 04 05 06 07 08");
    w_tag(&w, 103, 3);                  /* group with a nested group */
    w_tag(&w, 1, 0); w_varint(&w, 1);
    w_tag(&w, 2, 3); w_tag(&w, 1, 2); w_raw(&w, "00"); w_tag(&w, 2, 4);
    w_tag(&w, 103, 4);
    w_tag(&w, 536870911, 0); w_varint(&w, 0);
    w_tag(&w, 5, 0); w_varint(&w, 6);
    w_dec(fx->all, &w, "{\"fInt32\":6}");
    /* Unknown fields inside a nested message too. */
    wire_t n = {.n = 0};
    w_tag(&n, 11, 2); w_raw(&n, "04 08 07 20 01");
    w_dec(fx->all, &n, "{\"fMsg\":{\"id\":7}}");
}

static void decode_malformed(void **state) {
    fx_t *fx = *state;
    dec_err(fx->all, "28", "fInt32: truncated varint");
    dec_err(fx->all, "28 80", "fInt32: truncated varint");
    dec_err(fx->all, "28 ff ff ff ff ff ff ff ff ff 02",
            "fInt32: varint overflows 64 bits");
    dec_err(fx->all, "80", "truncated varint");
    dec_err(fx->all, "4a 05 61", "fString: length 5 runs past the end (1 bytes left)");
    dec_err(fx->all, "4a ff ff ff ff ff ff ff ff 7f 61",
            "fString: length 9223372036854775807 runs past the end (1 bytes left)");
    dec_err(fx->all, "2a 00", "fInt32: wire type 2 does not fit field f_int32 "
                              "(expected 0)");
    dec_err(fx->all, "2d 00 00 00 00", "fInt32: wire type 5 does not fit field "
                                       "f_int32 (expected 0)");
    dec_err(fx->all, "4d 00 00 00 00", "fString: wire type 5 does not fit field "
                                       "f_string (expected 2)");
    dec_err(fx->all, "a5 01 00 00 00 00", "rInt32: wire type 5 does not fit field "
                                          "r_int32 (expected 0)");
    dec_err(fx->all, "ff 06", "field 111 has invalid wire type 7");
    dec_err(fx->all, "00", "invalid field number 0");
    dec_err(fx->all, "80 80 80 80 10", "invalid field number 536870912");
    dec_err(fx->all, "4a 01 ff", "fString: string is not valid UTF-8");
    dec_err(fx->all, "4a 02 c0 80", "fString: string is not valid UTF-8");
    dec_err(fx->all, "4a 03 ed a0 80", "fString: string is not valid UTF-8");
    dec_err(fx->all, "4a 04 f4 90 80 80", "fString: string is not valid UTF-8");
    dec_err(fx->all, "4a 02 e2 82", "fString: string is not valid UTF-8");
    dec_err(fx->all, "09 00 00", "fDouble: truncated 8-byte value");
    dec_err(fx->all, "15 00", "fFloat: truncated 4-byte value");
    dec_err(fx->all, "a2 01 03 01 02 80", "rInt32: truncated varint");
    dec_err(fx->all, "e2 01 03 00 00 80", "rFloat: truncated 4-byte value");
    dec_err(fx->all, "bb 06", "group 103 not terminated");
    dec_err(fx->all, "bb 06 08 01", "group 103 not terminated");
    dec_err(fx->all, "bb 06 0c", "group 103 ended by tag 1");
    dec_err(fx->all, "bc 06", "end of group 103 without a start");
    dec_err(fx->all, "5a 01 08", "fMsg.id: truncated varint");
    dec_err(fx->all, "5a 03 08 01", "fMsg: length 3 runs past the end (2 bytes left)");
    dec_err(fx->all, "f2 01 02 08 01", "mStrInt: wire type 0 does not fit field "
                                       "key (expected 2)");
    dec_err(fx->all, "f2 01 01 0a", "mStrInt: truncated varint");
    dec_err(fx->all, "f0 01 01", "mStrInt: wire type 0 does not fit field "
                                 "m_str_int (expected 2)");
    dec_err(fx->alert, "1a 01 80", "message: string is not valid UTF-8");

    /* A group nested past the limit and a message nested past it. */
    wire_t g = {.n = 0};
    for (int i = 0; i < 40; i++)
        w_tag(&g, 200, 3);
    dec_err_buf(fx->all, g.b, g.n, "groups nested deeper than 32");
    wire_t d = {.n = 0};
    uint8_t inner[512];
    size_t il = 0;
    inner[il++] = 0x10; /* Deep.v = 1 */
    inner[il++] = 0x01;
    for (int i = 0; i < 40; i++) {
        /* wrap: 0a <len> inner */
        assert_true(il < 120);
        memmove(inner + 2, inner, il);
        inner[0] = 0x0a;
        inner[1] = (uint8_t)il;
        il += 2;
    }
    w_tag(&d, 45, 2);
    w_varint(&d, il);
    memcpy(d.b + d.n, inner, il);
    d.n += il;
    json_t *got = (json_t *)&il;
    char err[512] = "";
    assert_int_equal(dlg_pbjson_decode(fx->all, d.b, d.n, &got, err, sizeof err),
                     DLG_EINVAL);
    assert_non_null(strstr(err, ": nesting deeper than 32"));
    assert_ptr_equal(got, (json_t *)&il);
}

/* Decoding never reads outside its input and either succeeds or returns
 * DLG_EINVAL, for every prefix and many corruptions of a valid encoding and
 * for random bytes (ASan run catches stray reads). */
static void decode_survives_garbage(void **state) {
    fx_t *fx = *state;
    json_t *in = parse(all_json);
    uint8_t *bytes = NULL;
    size_t n = 0;
    assert_int_equal(dlg_pbjson_encode(fx->all, in, &bytes, &n, NULL, 0), 0);
    json_decref(in);
    int ok = 0, bad = 0;
    for (size_t len = 0; len <= n; len++) {
        /* A copy of exactly len bytes so ASan sees any read past the end. */
        uint8_t *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, bytes, len);
        json_t *got = NULL;
        int rc = dlg_pbjson_decode(fx->all, cut, len, &got, NULL, 0);
        assert_true(rc == 0 || rc == DLG_EINVAL);
        if (rc == 0) {
            ok++;
            json_decref(got);
        } else {
            bad++;
        }
        free(cut);
    }
    assert_true(ok > 0 && bad > 0);
    uint8_t *mut = malloc(n);
    assert_non_null(mut);
    static const uint8_t flips[] = {0x01, 0x80, 0xff, 0x07, 0x40};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            memcpy(mut, bytes, n);
            mut[i] ^= flips[k];
            json_t *got = NULL;
            int rc = dlg_pbjson_decode(fx->all, mut, n, &got, NULL, 0);
            assert_true(rc == 0 || rc == DLG_EINVAL);
            json_decref(got);
        }
    }
    free(mut);
    free(bytes);

    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t buf[64];
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (uint8_t)(seed >> 16);
        }
        uint8_t *exact = malloc(len ? len : 1);
        assert_non_null(exact);
        memcpy(exact, buf, len);
        json_t *got = NULL;
        int rc = dlg_pbjson_decode(iter & 1 ? fx->all : fx->alert, exact, len,
                                   &got, NULL, 0);
        assert_true(rc == 0 || rc == DLG_EINVAL);
        json_decref(got);
        free(exact);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_cpu_zero_exact),
        cmocka_unit_test(alert_roundtrip),
        cmocka_unit_test(exact_bytes),
        cmocka_unit_test(all_types_roundtrip),
        cmocka_unit_test(accepted_spellings),
        cmocka_unit_test(encode_errors),
        cmocka_unit_test(encode_depth_limit),
        cmocka_unit_test(encode_args_and_err_buffer),
        cmocka_unit_test(decode_basics),
        cmocka_unit_test(dumps_shortest_numbers),
        cmocka_unit_test(decode_skips_unknown),
        cmocka_unit_test(decode_malformed),
        cmocka_unit_test(decode_survives_garbage),
    };
    return cmocka_run_group_tests_name("pbjson", tests, group_setup,
                                       group_teardown);
}
