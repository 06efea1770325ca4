/* test_schema.c: the schema registry (descriptor sets, options, type
 * resolution) and the wire-format validator, fed hand-encoded payloads. */
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
#include "google/protobuf/descriptor.pb-c.h"

#ifndef DLG_TEST_SHARE
#define DLG_TEST_SHARE "build/share/dialogue"
#endif
#define DASHBOARD_PB DLG_TEST_SHARE "/dashboard.pb"
#define FIXTURES_PB DLG_TEST_SHARE "/test_fixtures.pb"
#define DUP_PB DLG_TEST_SHARE "/test_dup.pb"

/* ---- a tiny protobuf encoder --------------------------------------------- */

typedef struct enc {
    uint8_t b[8192];
    size_t n;
} enc;

static void put_raw(enc *e, const void *p, size_t n) {
    assert_true(e->n + n <= sizeof(e->b));
    memcpy(e->b + e->n, p, n);
    e->n += n;
}

static void put_byte(enc *e, uint8_t b) {
    put_raw(e, &b, 1);
}

static void put_varint(enc *e, uint64_t v) {
    while (v >= 0x80) {
        put_byte(e, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(e, (uint8_t)v);
}

static void put_tag(enc *e, uint64_t num, unsigned wt) {
    put_varint(e, (num << 3) | wt);
}

static void put_le(enc *e, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        put_byte(e, (uint8_t)(v >> (8 * i)));
}

static void f_varint(enc *e, uint32_t num, uint64_t v) {
    put_tag(e, num, 0);
    put_varint(e, v);
}

static void f_sint(enc *e, uint32_t num, int64_t v) {
    f_varint(e, num, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void f_double(enc *e, uint32_t num, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_tag(e, num, 1);
    put_le(e, u, 8);
}

static void f_float(enc *e, uint32_t num, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_tag(e, num, 5);
    put_le(e, u, 4);
}

static void f_fixed32(enc *e, uint32_t num, uint32_t v) {
    put_tag(e, num, 5);
    put_le(e, v, 4);
}

static void f_fixed64(enc *e, uint32_t num, uint64_t v) {
    put_tag(e, num, 1);
    put_le(e, v, 8);
}

static void f_bytes(enc *e, uint32_t num, const void *p, size_t n) {
    put_tag(e, num, 2);
    put_varint(e, n);
    put_raw(e, p, n);
}

static void f_str(enc *e, uint32_t num, const char *s) {
    f_bytes(e, num, s, strlen(s));
}

static void f_msg(enc *e, uint32_t num, const enc *sub) {
    f_bytes(e, num, sub->b, sub->n);
}

/* A packed run of varints. */
static void f_packed(enc *e, uint32_t num, const uint64_t *v, size_t n) {
    enc run = {.n = 0};
    for (size_t i = 0; i < n; i++)
        put_varint(&run, v[i]);
    f_msg(e, num, &run);
}

/* ---- registry fixture and checks ----------------------------------------- */

typedef struct fixture {
    dlg_schema *s;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    char err[512] = "";
    if (fx == NULL || dlg_schema_new(&fx->s) != 0)
        return -1;
    if (dlg_schema_load_file(fx->s, DASHBOARD_PB, err, sizeof(err)) != 0 ||
        dlg_schema_load_file(fx->s, FIXTURES_PB, err, sizeof(err)) != 0) {
        fprintf(stderr, "setup: %s (run from the repo root after ninja)\n", err);
        dlg_schema_free(fx->s);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    dlg_schema_free(fx->s);
    free(fx);
    return 0;
}

static const dlg_schema_event *event(void **state, const char *name) {
    fixture *fx = *state;
    const dlg_schema_event *ev = dlg_schema_event_find(fx->s, name);
    assert_non_null(ev);
    return ev;
}

static void expect_ok_f(void **state, const char *ev, const enc *e, unsigned flags) {
    char err[512] = "";
    int rc = dlg_schema_validate(event(state, ev), e->b, e->n, flags, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: expected valid, got: %s", ev, err);
}

static void expect_ok(void **state, const char *ev, const enc *e) {
    expect_ok_f(state, ev, e, 0);
}

static void expect_err_f(void **state, const char *ev, const enc *e, unsigned flags,
                         const char *want) {
    char err[1024] = "";
    int rc = dlg_schema_validate(event(state, ev), e->b, e->n, flags, err, sizeof(err));
    if (rc != DLG_ESCHEMA)
        fail_msg("%s: expected \"%s\", got rc %d", ev, want, rc);
    assert_string_equal(err, want);
}

static void expect_err(void **state, const char *ev, const enc *e, const char *want) {
    expect_err_f(state, ev, e, 0, want);
}

/* A complete, valid MetricsUpdate with the given cpu. */
static void metrics(enc *e, double cpu) {
    e->n = 0;
    f_double(e, 1, cpu);
    f_double(e, 2, 50);
    f_double(e, 3, 10);
    f_double(e, 4, 0);
    f_double(e, 5, 1.5);
}

/* ---- registry tests -------------------------------------------------------- */

static void registry_dashboard(void **state) {
    fixture *fx = *state;
    const dlg_schema_event *ev = event(state, "metrics:update");
    assert_string_equal(ev->name, "metrics:update");
    assert_string_equal(ev->msg->full_name, "dialogue.dashboard.MetricsUpdate");
    assert_ptr_equal(ev->msg, dlg_schema_msg_find(fx->s, "dialogue.dashboard.MetricsUpdate"));
    assert_int_equal(ev->msg->n_fields, 5);
    const dlg_schema_field *cpu = dlg_schema_field_by_name(ev->msg, "cpu");
    assert_non_null(cpu);
    assert_int_equal(cpu->number, 1);
    assert_int_equal(cpu->type, DLG_FT_DOUBLE);
    assert_true(cpu->has_min && cpu->has_max && cpu->required && cpu->has_presence);
    assert_true(cpu->min == 0 && cpu->max == 100);
    assert_false(cpu->has_min_len || cpu->has_max_len);
    const dlg_schema_field *req = dlg_schema_field_by_number(ev->msg, 3);
    assert_string_equal(req->name, "requests");
    assert_true(req->has_min && !req->has_max);

    const dlg_schema_event *al = event(state, "alert:triggered");
    const dlg_schema_field *id = dlg_schema_field_by_name(al->msg, "alertId");
    assert_ptr_equal(id, dlg_schema_field_by_name(al->msg, "alert_id"));
    assert_string_equal(id->json_name, "alertId");
    assert_true(id->has_min_len && id->min_len == 1 && id->has_max_len && id->max_len == 128);
    const dlg_schema_field *sev = dlg_schema_field_by_number(al->msg, 2);
    assert_int_equal(sev->type, DLG_FT_ENUM);
    assert_string_equal(sev->en->full_name, "dialogue.dashboard.Severity");
    assert_int_equal(sev->en->n_values, 4);
    assert_string_equal(sev->en->names[3], "critical");
    assert_int_equal(sev->en->numbers[3], 3);
    assert_null(dlg_schema_field_by_number(al->msg, 5));
    assert_null(dlg_schema_field_by_name(al->msg, "nope"));

    /* Load order, then the fixture set's events. */
    assert_int_equal(dlg_schema_event_count(fx->s), 5);
    assert_string_equal(dlg_schema_event_at(fx->s, 0)->name, "metrics:update");
    assert_string_equal(dlg_schema_event_at(fx->s, 1)->name, "alert:triggered");
    assert_null(dlg_schema_event_at(fx->s, 5));
    assert_null(dlg_schema_event_find(fx->s, "metrics:updat"));
    assert_null(dlg_schema_event_find(fx->s, "metrics:update "));
    assert_null(dlg_schema_msg_find(fx->s, ".dialogue.dashboard.MetricsUpdate"));

    /* The raw sets are kept byte for byte. */
    assert_int_equal(dlg_schema_set_count(fx->s), 2);
    const uint8_t *data;
    size_t len;
    dlg_schema_set_at(fx->s, 0, &data, &len);
    FILE *f = fopen(DASHBOARD_PB, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(len, n);
    assert_memory_equal(data, buf, n);
    dlg_schema_set_at(fx->s, 9, &data, &len);
    assert_null(data);
    assert_int_equal(len, 0);
}

static void registry_fixtures(void **state) {
    fixture *fx = *state;
    const dlg_schema_msg *m = event(state, "test:everything")->msg;
    /* Sorted by number whatever the declaration order. */
    for (size_t i = 1; i < m->n_fields; i++)
        assert_true(m->fields[i - 1].number < m->fields[i].number);
    const dlg_schema_field *f;
    f = dlg_schema_field_by_name(m, "nums");
    assert_true(f->label == DLG_FL_REPEATED && f->packed && !f->has_presence);
    f = dlg_schema_field_by_name(m, "loose");
    assert_false(f->packed);
    f = dlg_schema_field_by_name(m, "tags");
    assert_false(f->packed);    /* strings are never packed */
    f = dlg_schema_field_by_name(m, "big");
    assert_false(f->has_presence);
    f = dlg_schema_field_by_name(m, "inner");
    assert_true(f->has_presence);
    assert_ptr_equal(f->msg, dlg_schema_msg_find(fx->s, "dialogue.test.Inner"));
    f = dlg_schema_field_by_name(m, "text");
    assert_true(f->has_presence);   /* oneof member */
    f = dlg_schema_field_by_number(m, 536870911);
    assert_string_equal(f->name, "far");
    f = dlg_schema_field_by_name(m, "children");
    assert_true(f->type == DLG_FT_MESSAGE && f->label == DLG_FL_REPEATED);
    assert_true(f->msg->map_entry);
    assert_string_equal(f->msg->full_name, "dialogue.test.Everything.ChildrenEntry");
    assert_ptr_equal(f->msg, dlg_schema_msg_find(fx->s, "dialogue.test.Everything.ChildrenEntry"));
    assert_int_equal(f->msg->n_fields, 2);
    assert_string_equal(f->msg->fields[1].name, "value");
    assert_ptr_equal(f->msg->fields[1].msg, dlg_schema_msg_find(fx->s, "dialogue.test.Inner"));
    f = dlg_schema_field_by_name(m, "color");
    assert_string_equal(f->en->full_name, "dialogue.test.Color");
    assert_int_equal(f->en->n_values, 5);
    assert_int_equal(f->en->numbers[4], -3);
    assert_false(dlg_schema_msg_find(fx->s, "dialogue.test.Everything")->map_entry);

    const dlg_schema_msg *p = event(state, "test:presence")->msg;
    f = dlg_schema_field_by_name(p, "count");
    assert_true(f->has_presence && f->required);    /* proto3 optional */
    assert_false(dlg_schema_field_by_name(p, "plain")->has_presence);

    const dlg_schema_msg *l = event(state, "test:legacy")->msg;
    f = dlg_schema_field_by_name(l, "id");
    assert_true(f->label == DLG_FL_REQUIRED && f->has_presence && !f->required);
    assert_true(dlg_schema_field_by_name(l, "opt")->has_presence);
    assert_false(dlg_schema_field_by_name(l, "plain")->packed);     /* proto2 */
    assert_true(dlg_schema_field_by_name(l, "packed_vals")->packed);
    assert_string_equal(dlg_schema_field_by_name(l, "packed_vals")->json_name, "packedVals");
    f = dlg_schema_field_by_name(l, "customName");
    assert_non_null(f);
    assert_string_equal(f->name, "name");
    assert_ptr_equal(dlg_schema_field_by_name(l, "inner")->msg,
                     dlg_schema_msg_find(fx->s, "dialogue.test.Inner"));
    assert_ptr_equal(dlg_schema_field_by_name(l, "next")->msg, l);
}

static void registry_same_file_skipped(void **state) {
    (void)state;
    dlg_schema *s;
    char err[512] = "";
    assert_int_equal(dlg_schema_new(&s), 0);
    assert_int_equal(dlg_schema_load_file(s, DASHBOARD_PB, err, sizeof(err)), 0);
    assert_int_equal(dlg_schema_load_file(s, DASHBOARD_PB, err, sizeof(err)), 0);
    assert_int_equal(dlg_schema_set_count(s), 1);
    assert_int_equal(dlg_schema_event_count(s), 2);
    /* Shares options.proto and descriptor.proto with the first set. */
    assert_int_equal(dlg_schema_load_file(s, FIXTURES_PB, err, sizeof(err)), 0);
    assert_int_equal(dlg_schema_set_count(s), 2);
    assert_int_equal(dlg_schema_event_count(s), 5);
    dlg_schema_free(s);
    dlg_schema_free(NULL);
}

static void registry_event_defined_twice(void **state) {
    (void)state;
    dlg_schema *s;
    char err[512] = "";
    assert_int_equal(dlg_schema_new(&s), 0);
    assert_int_equal(dlg_schema_load_file(s, DASHBOARD_PB, err, sizeof(err)), 0);
    assert_int_equal(dlg_schema_load_file(s, DUP_PB, err, sizeof(err)), DLG_ESCHEMA);
    assert_string_equal(err, DUP_PB ": event metrics:update defined twice "
                             "(dialogue.dashboard.MetricsUpdate and other.Pkg.Msg)");
    /* Unchanged: the set, its file and its message are not there. */
    assert_int_equal(dlg_schema_set_count(s), 1);
    assert_int_equal(dlg_schema_event_count(s), 2);
    assert_null(dlg_schema_msg_find(s, "other.Pkg.Msg"));
    assert_string_equal(dlg_schema_event_find(s, "metrics:update")->msg->full_name,
                        "dialogue.dashboard.MetricsUpdate");
    dlg_schema_free(s);
}

static void registry_bad_sets(void **state) {
    (void)state;
    dlg_schema *s;
    char err[512] = "";
    assert_int_equal(dlg_schema_new(&s), 0);
    assert_null(dlg_schema_event_find(s, "metrics:update"));   /* empty registry */
    assert_null(dlg_schema_msg_find(s, "t.M"));
    assert_int_equal(dlg_schema_event_count(s), 0);
    const uint8_t junk[] = {0x0a, 0x05, 0x01};
    assert_int_equal(dlg_schema_add_set(s, junk, sizeof(junk), err, sizeof(err)), DLG_ESCHEMA);
    assert_string_equal(err, "descriptor set does not parse (3 bytes)");
    assert_int_equal(dlg_schema_add_set(s, junk, 0, err, sizeof(err)), DLG_ESCHEMA);
    assert_string_equal(err, "descriptor set holds no files");
    assert_int_equal(dlg_schema_load_file(s, "/nonexistent/x.pb", err, sizeof(err)), DLG_EIO);
    assert_string_equal(err, "/nonexistent/x.pb: No such file or directory");
    assert_int_equal(dlg_schema_load_file(s, "/", err, sizeof(err)), DLG_EIO);
    assert_string_equal(err, "/: not a regular file");
    assert_int_equal(dlg_schema_set_count(s), 0);
    dlg_schema_free(s);
}

/* Hand-built descriptor sets, for what protoc would never write or what
 * the loader must refuse. */
typedef struct desc {
    Google__Protobuf__FileDescriptorSet set;
    Google__Protobuf__FileDescriptorProto file, *files[1];
    Google__Protobuf__DescriptorProto msg, *msgs[1];
    Google__Protobuf__MessageOptions mopt;
    ProtobufCMessageUnknownField mext;
    Google__Protobuf__FieldDescriptorProto field, *fields[1];
    Google__Protobuf__FieldOptions fopt;
    ProtobufCMessageUnknownField fext;
} desc;

/* One file "t.proto", package t, message M with one field `f = 1`. */
static void desc_init(desc *d, const char *syntax, int type, int label) {
    memset(d, 0, sizeof(*d));
    google__protobuf__file_descriptor_set__init(&d->set);
    google__protobuf__file_descriptor_proto__init(&d->file);
    google__protobuf__descriptor_proto__init(&d->msg);
    google__protobuf__field_descriptor_proto__init(&d->field);
    d->set.n_file = 1;
    d->set.file = d->files;
    d->files[0] = &d->file;
    d->file.name = "t.proto";
    d->file.package = "t";
    d->file.syntax = (char *)syntax;
    d->file.n_message_type = 1;
    d->file.message_type = d->msgs;
    d->msgs[0] = &d->msg;
    d->msg.name = "M";
    d->msg.n_field = 1;
    d->msg.field = d->fields;
    d->fields[0] = &d->field;
    d->field.name = "some_field_name";
    d->field.has_number = 1;
    d->field.number = 1;
    d->field.has_type = 1;
    d->field.type = type;
    d->field.has_label = 1;
    d->field.label = label;
}

/* Attaches (dialogue.v1.event) = name; raw is the unknown field's bytes
 * with their length prefix, as protobuf-c keeps them. */
static void desc_event(desc *d, uint8_t *raw, const char *name) {
    size_t n = strlen(name);
    raw[0] = (uint8_t)n;
    memcpy(raw + 1, name, n);
    google__protobuf__message_options__init(&d->mopt);
    d->mext = (ProtobufCMessageUnknownField){.tag = 50000,
        .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = n + 1, .data = raw};
    d->mopt.base.n_unknown_fields = 1;
    d->mopt.base.unknown_fields = &d->mext;
    d->msg.options = &d->mopt;
}

/* Attaches (dialogue.v1.rule) with the FieldRule bytes rule[0..n). */
static void desc_rule(desc *d, uint8_t *raw, const uint8_t *rule, size_t n) {
    raw[0] = (uint8_t)n;
    memcpy(raw + 1, rule, n);
    google__protobuf__field_options__init(&d->fopt);
    d->fext = (ProtobufCMessageUnknownField){.tag = 50001,
        .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = n + 1, .data = raw};
    d->fopt.base.n_unknown_fields = 1;
    d->fopt.base.unknown_fields = &d->fext;
    d->field.options = &d->fopt;
}

/* Adds d to a new registry; returns the rc, err filled; *out kept if asked. */
static int desc_add(desc *d, char *err, size_t errlen, dlg_schema **out) {
    static uint8_t buf[4096];
    size_t n = google__protobuf__file_descriptor_set__get_packed_size(&d->set);
    assert_true(n <= sizeof(buf));
    assert_int_equal(google__protobuf__file_descriptor_set__pack(&d->set, buf), n);
    dlg_schema *s;
    assert_int_equal(dlg_schema_new(&s), 0);
    err[0] = '\0';
    int rc = dlg_schema_add_set(s, buf, n, err, errlen);
    if (rc != 0)
        assert_int_equal(dlg_schema_set_count(s), 0);
    if (out)
        *out = s;
    else
        dlg_schema_free(s);
    return rc;
}

static void registry_hand_built(void **state) {
    (void)state;
    desc d;
    char err[512];
    uint8_t raw[64], raw2[64];
    dlg_schema *s;

    /* json_name absent: computed; proto3 repeated scalar: packed. */
    desc_init(&d, "proto3", GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT64,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED);
    desc_event(&d, raw, "t:m");
    assert_int_equal(desc_add(&d, err, sizeof(err), &s), 0);
    const dlg_schema_msg *m = dlg_schema_msg_find(s, "t.M");
    assert_non_null(m);
    assert_string_equal(m->fields[0].json_name, "someFieldName");
    assert_true(m->fields[0].packed);
    assert_ptr_equal(dlg_schema_event_find(s, "t:m")->msg, m);
    dlg_schema_free(s);

    /* A message without fields (found by fuzzing: field array is NULL);
     * any non-empty payload is then an unknown field. */
    d.msg.n_field = 0;
    d.msg.field = NULL;
    assert_int_equal(desc_add(&d, err, sizeof(err), &s), 0);
    const uint8_t one[] = {0x08, 0x01};
    assert_int_equal(dlg_schema_validate(dlg_schema_event_find(s, "t:m"), one, 0, 0, err,
                                         sizeof(err)), 0);
    assert_int_equal(dlg_schema_validate(dlg_schema_event_find(s, "t:m"), one, 2, 0, err,
                                         sizeof(err)), DLG_ESCHEMA);
    assert_string_equal(err, "t:m: unknown field 1");
    dlg_schema_free(s);

    desc_init(&d, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    d.field.type_name = ".t.Missing";
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: field t.M.some_field_name: type .t.Missing is "
                             "not defined in the loaded sets");
    d.field.type_name = ".t.M";     /* self-reference resolves */
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), 0);
    d.field.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM;
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: field t.M.some_field_name: type .t.M is not an enum");

    desc_init(&d, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: field t.M.some_field_name: groups are not supported");

    /* FieldRule {min: 5, max: 3} */
    static const uint8_t min5max3[] = {0x09, 0, 0, 0, 0, 0, 0, 0x14, 0x40,
                                       0x11, 0, 0, 0, 0, 0, 0, 0x08, 0x40};
    desc_init(&d, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    desc_rule(&d, raw2, min5max3, sizeof(min5max3));
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: field t.M.some_field_name: min 5 is above max 3");
    d.field.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING;
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: field t.M.some_field_name: min/max apply to "
                             "numeric fields only");

    /* FieldRule {required: true} on a proto3 implicit-presence scalar. */
    static const uint8_t required[] = {0x28, 0x01};
    desc_init(&d, "proto3", GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_DOUBLE,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    desc_rule(&d, raw2, required, sizeof(required));
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_non_null(strstr(err, "t.proto: field t.M.some_field_name: required needs "
                                "explicit presence"));
    d.field.has_proto3_optional = d.field.proto3_optional = 1;
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), 0);

    /* A rule whose bytes do not decode, and a length prefix that lies. */
    static const uint8_t broken[] = {0x09, 0x00};
    desc_rule(&d, raw2, broken, sizeof(broken));
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: field t.M.some_field_name: option "
                             "(dialogue.v1.rule) does not decode");
    desc_rule(&d, raw2, required, sizeof(required));
    raw2[0] = 5;
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);

    desc_init(&d, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    desc_event(&d, raw, "bad name");
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_non_null(strstr(err, "t.proto: message t.M: option (dialogue.v1.event)"));
    desc_event(&d, raw, "");
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);

    desc_init(&d, "editions", GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: syntax \"editions\" is not supported");

    desc_init(&d, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    d.field.number = 0;
    assert_int_equal(desc_add(&d, err, sizeof(err), NULL), DLG_ESCHEMA);
    assert_string_equal(err, "t.proto: message t.M: field some_field_name lacks a valid "
                             "name, number, type or label");
}

/* The same message name from two files is refused, the registry kept. */
static void registry_message_defined_twice(void **state) {
    (void)state;
    desc a, b;
    char err[512];
    static uint8_t buf[2][4096];
    size_t n[2];
    desc_init(&a, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    desc_init(&b, NULL, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL);
    b.file.name = "u.proto";
    n[0] = google__protobuf__file_descriptor_set__pack(&a.set, buf[0]);
    n[1] = google__protobuf__file_descriptor_set__pack(&b.set, buf[1]);
    dlg_schema *s;
    assert_int_equal(dlg_schema_new(&s), 0);
    assert_int_equal(dlg_schema_add_set(s, buf[0], n[0], err, sizeof(err)), 0);
    assert_int_equal(dlg_schema_add_set(s, buf[1], n[1], err, sizeof(err)), DLG_ESCHEMA);
    assert_string_equal(err, "message t.M defined twice (in t.proto and u.proto)");
    assert_int_equal(dlg_schema_set_count(s), 1);
    dlg_schema_free(s);
}

/* ---- validator: dashboard events ------------------------------------------- */

static void metrics_bounds(void **state) {
    enc e;
    metrics(&e, 0);     /* 0 is written (proto2 optional) and accepted */
    expect_ok(state, "metrics:update", &e);
    metrics(&e, 100);
    expect_ok(state, "metrics:update", &e);
    metrics(&e, 42.5);
    expect_ok(state, "metrics:update", &e);
    metrics(&e, -0.0);  /* -0 == 0: not below */
    expect_ok(state, "metrics:update", &e);
    metrics(&e, 100.5);
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: 100.5 is above max 100");
    metrics(&e, 150);
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: 150 is above max 100");
    metrics(&e, -1);
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: -1 is below min 0");
    metrics(&e, 100.00000000000001);     /* the next double after 100 */
    expect_err(state, "metrics:update", &e,
               "metrics:update.cpu: 100.00000000000001 is above max 100");
    metrics(&e, __builtin_inf());
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: inf is above max 100");
    metrics(&e, __builtin_nan(""));
    expect_err(state, "metrics:update", &e,
               "metrics:update.cpu: NaN is not allowed (the field has bounds)");
}

static void metrics_required(void **state) {
    enc e = {.n = 0};
    f_double(&e, 2, 50);
    f_double(&e, 3, 10);
    f_double(&e, 4, 0);
    f_double(&e, 5, 1);
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: required field is missing");
    e.n = 0;
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: required field is missing");
    metrics(&e, 1);
    e.n -= 9;   /* drop latency */
    expect_err(state, "metrics:update", &e,
               "metrics:update.latency: required field is missing");
    /* Order on the wire does not matter; a repeat is fine (last wins). */
    e.n = 0;
    f_double(&e, 5, 1);
    f_double(&e, 4, 1);
    f_double(&e, 3, 1);
    f_double(&e, 2, 1);
    f_double(&e, 1, 1);
    f_double(&e, 1, 2);
    expect_ok(state, "metrics:update", &e);
}

static void alert_fields(void **state) {
    enc e = {.n = 0};
    f_str(&e, 1, "a-1");
    f_varint(&e, 2, 3);
    f_str(&e, 3, "disk full");
    f_varint(&e, 4, UINT64_MAX);
    expect_ok(state, "alert:triggered", &e);

    e.n = 0;
    f_str(&e, 1, "a-1");
    f_varint(&e, 2, 9);
    f_str(&e, 3, "x");
    f_varint(&e, 4, 1);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered.severity: 9 is not a defined value of "
               "dialogue.dashboard.Severity");
    e.n = 0;
    f_str(&e, 1, "a-1");
    f_varint(&e, 2, UINT64_MAX);    /* -1 as int32 */
    expect_err(state, "alert:triggered", &e,
               "alert:triggered.severity: -1 is not a defined value of "
               "dialogue.dashboard.Severity");

    e.n = 0;
    f_str(&e, 1, "");
    expect_err(state, "alert:triggered", &e,
               "alert:triggered.alert_id: length 0 is below min_len 1");
    char big[200];
    memset(big, 'x', sizeof(big));
    e.n = 0;
    f_bytes(&e, 1, big, 128);
    f_varint(&e, 2, 0);
    f_bytes(&e, 3, big, 129);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered.timestamp: required field is missing");
    e.n = 0;
    f_bytes(&e, 1, big, 129);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered.alert_id: length 129 is above max_len 128");
    /* 43 euro signs: 43 code points, 129 bytes; lengths count bytes. */
    e.n = 0;
    char euros[43 * 3 + 1] = "";
    for (int i = 0; i < 43; i++)
        strcat(euros, "\xe2\x82\xac");
    f_str(&e, 1, euros);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered.alert_id: length 129 is above max_len 128");
}

/* ---- validator: wire structure --------------------------------------------- */

static void wire_structure(void **state) {
    enc e;
    metrics(&e, 1);
    e.n -= 1;   /* last double cut short */
    expect_err(state, "metrics:update", &e, "metrics:update: truncated fixed64 at byte 37");

    e.n = 0;
    put_byte(&e, 0x08);
    put_byte(&e, 0x80);
    expect_err(state, "metrics:update", &e, "metrics:update.cpu: wire type 0 does not match double");
    e.n = 0;
    f_double(&e, 2, 1);
    put_byte(&e, 0x80);     /* tag cut short at byte 9 */
    expect_err(state, "metrics:update", &e, "metrics:update: truncated varint at byte 9");

    /* Alert timestamp (uint64) as a truncated varint value, at byte 7. */
    e.n = 0;
    f_str(&e, 1, "ab");
    f_varint(&e, 2, 1);
    put_tag(&e, 4, 0);
    put_byte(&e, 0xff);
    expect_err(state, "alert:triggered", &e, "alert:triggered: truncated varint at byte 7");

    /* 11-byte varint, and a 10-byte one with bits above 63. */
    e.n = 0;
    f_str(&e, 1, "ab");
    put_tag(&e, 4, 0);
    for (int i = 0; i < 10; i++)
        put_byte(&e, 0x80);
    put_byte(&e, 0x00);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered: varint longer than 10 bytes at byte 5");
    e.n = 0;
    put_tag(&e, 4, 0);
    for (int i = 0; i < 9; i++)
        put_byte(&e, 0xff);
    put_byte(&e, 0x02);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered: varint longer than 10 bytes at byte 1");
    /* ...but a full 10-byte varint up to 2^64 - 1 is fine. */
    e.n = 0;
    f_str(&e, 1, "ab");
    f_varint(&e, 2, 0);
    f_str(&e, 3, "m");
    put_tag(&e, 4, 0);
    for (int i = 0; i < 9; i++)
        put_byte(&e, 0xff);
    put_byte(&e, 0x01);
    expect_ok(state, "alert:triggered", &e);
    /* An overlong (zero-padded) tag is still a valid varint. */
    e.n = 0;
    put_byte(&e, 0x89);
    put_byte(&e, 0x00);
    put_le(&e, 0, 8);
    expect_err(state, "metrics:update", &e,
               "metrics:update.memory: required field is missing");

    e.n = 0;
    put_tag(&e, 0, 0);
    put_byte(&e, 1);
    expect_err(state, "metrics:update", &e,
               "metrics:update: field number 0 at byte 0 is out of range");
    e.n = 0;
    put_tag(&e, 536870912, 0);
    put_byte(&e, 1);
    expect_err(state, "metrics:update", &e,
               "metrics:update: field number 536870912 at byte 0 is out of range");
    e.n = 0;
    put_varint(&e, ((uint64_t)1 << 40) | 0);  /* a tag above 32 bits */
    put_byte(&e, 1);
    expect_err(state, "metrics:update", &e,
               "metrics:update: field number 137438953472 at byte 0 is out of range");

    static const char *const wt_err[8] = {
        [3] = "metrics:update: group (wire type 3) at byte 0 is not supported",
        [4] = "metrics:update: group (wire type 4) at byte 0 is not supported",
        [6] = "metrics:update: invalid wire type 6 at byte 0",
        [7] = "metrics:update: invalid wire type 7 at byte 0",
    };
    for (unsigned wt = 3; wt < 8; wt++) {
        if (wt == 5)
            continue;
        e.n = 0;
        put_tag(&e, 1, wt);
        /* Unknown fields with these wire types are refused even when allowed. */
        expect_err_f(state, "metrics:update", &e, DLG_SCHEMA_ALLOW_UNKNOWN, wt_err[wt]);
        e.n = 0;
        put_tag(&e, 99, wt);
        expect_err_f(state, "metrics:update", &e, DLG_SCHEMA_ALLOW_UNKNOWN, wt_err[wt]);
    }

    e.n = 0;
    f_str(&e, 1, "ab");
    put_tag(&e, 3, 2);
    put_varint(&e, 300);
    put_raw(&e, "xyz", 3);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered: length 300 at byte 5 exceeds the 3 bytes left");
    e.n = 0;
    put_tag(&e, 3, 2);
    put_varint(&e, UINT64_MAX);
    expect_err(state, "alert:triggered", &e,
               "alert:triggered: length 18446744073709551615 at byte 1 exceeds the 0 "
               "bytes left");
}

static void wire_type_mismatch(void **state) {
    enc e = {.n = 0};
    f_fixed64(&e, 1, 5);
    expect_err(state, "test:everything", &e,
               "test:everything.big: wire type 1 does not match int64");
    e.n = 0;
    f_varint(&e, 16, 1);
    expect_err(state, "test:everything", &e,
               "test:everything.inner: wire type 0 does not match message");
    e.n = 0;
    f_bytes(&e, 24, "\x01", 1);     /* packed encoding of a singular field */
    expect_err(state, "test:everything", &e,
               "test:everything.i32: wire type 2 does not match int32");
    e.n = 0;
    f_fixed32(&e, 12, 1);
    expect_err(state, "test:everything", &e,
               "test:everything.tags[0]: wire type 5 does not match string");
    e.n = 0;
    f_float(&e, 8, 0.5f);
    expect_err(state, "test:everything", &e,
               "test:everything.dbl: wire type 5 does not match double");
    e.n = 0;
    f_varint(&e, 5, 1);
    expect_err(state, "test:everything", &e,
               "test:everything.f32: wire type 0 does not match fixed32");
}

static void unknown_fields(void **state) {
    enc e;
    metrics(&e, 1);
    f_varint(&e, 12, 7);
    expect_err(state, "metrics:update", &e, "metrics:update: unknown field 12");
    expect_ok_f(state, "metrics:update", &e, DLG_SCHEMA_ALLOW_UNKNOWN);
    metrics(&e, 1);
    f_str(&e, 13, "\xff");  /* unknown, so no UTF-8 check */
    f_fixed32(&e, 14, 1);
    f_fixed64(&e, 15, 1);
    expect_ok_f(state, "metrics:update", &e, DLG_SCHEMA_ALLOW_UNKNOWN);
    /* Allowed unknown fields must still be well-formed. */
    metrics(&e, 1);
    put_tag(&e, 12, 2);
    put_varint(&e, 5);
    expect_err_f(state, "metrics:update", &e, DLG_SCHEMA_ALLOW_UNKNOWN,
                 "metrics:update: length 5 at byte 46 exceeds the 0 bytes left");
    metrics(&e, 1);
    put_tag(&e, 12, 5);
    put_raw(&e, "\0\0", 2);
    expect_err_f(state, "metrics:update", &e, DLG_SCHEMA_ALLOW_UNKNOWN,
                 "metrics:update: truncated fixed32 at byte 46");

    enc in = {.n = 0};
    f_str(&in, 1, "n");
    f_varint(&in, 99, 1);
    e.n = 0;
    f_msg(&e, 16, &in);
    expect_err(state, "test:everything", &e, "test:everything.inner: unknown field 99");
    expect_ok_f(state, "test:everything", &e, DLG_SCHEMA_ALLOW_UNKNOWN);
    /* Unknown inside a map entry. */
    enc entry = {.n = 0};
    f_varint(&entry, 1, 3);
    f_varint(&entry, 3, 3);
    e.n = 0;
    f_msg(&e, 15, &entry);
    expect_err(state, "test:everything", &e, "test:everything.palette[0]: unknown field 3");
}

/* ---- validator: numbers in their own domain -------------------------------- */

static void int64_exact(void **state) {
    enc e = {.n = 0};
    const int64_t two53 = (int64_t)1 << 53;
    f_varint(&e, 1, (uint64_t)two53);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_varint(&e, 1, (uint64_t)-two53);
    expect_ok(state, "test:everything", &e);
    /* 2^53 + 1 rounds to 2^53 as a double: must still be refused. */
    e.n = 0;
    f_varint(&e, 1, (uint64_t)(two53 + 1));
    expect_err(state, "test:everything", &e,
               "test:everything.big: 9007199254740993 is above max 9007199254740992");
    e.n = 0;
    f_varint(&e, 1, (uint64_t)(-two53 - 1));
    expect_err(state, "test:everything", &e,
               "test:everything.big: -9007199254740993 is below min -9007199254740992");
    e.n = 0;
    f_varint(&e, 1, (uint64_t)INT64_MIN);
    expect_err(state, "test:everything", &e,
               "test:everything.big: -9223372036854775808 is below min -9007199254740992");
    e.n = 0;
    f_varint(&e, 1, (uint64_t)INT64_MAX);
    expect_err(state, "test:everything", &e,
               "test:everything.big: 9223372036854775807 is above max 9007199254740992");

    e.n = 0;
    f_varint(&e, 2, 10000000000000000000ull);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_varint(&e, 2, 10000000000000000001ull);
    expect_err(state, "test:everything", &e,
               "test:everything.ubig: 10000000000000000001 is above max 10000000000000000000");
    e.n = 0;
    f_varint(&e, 2, UINT64_MAX);
    expect_err(state, "test:everything", &e,
               "test:everything.ubig: 18446744073709551615 is above max 10000000000000000000");
    e.n = 0;
    f_varint(&e, 2, 9);
    expect_err(state, "test:everything", &e, "test:everything.ubig: 9 is below min 10");
    e.n = 0;
    f_varint(&e, 2, 10);
    expect_ok(state, "test:everything", &e);

    e.n = 0;
    f_sint(&e, 3, -100);
    f_sint(&e, 4, -1000);
    f_fixed32(&e, 5, 1000);
    f_fixed64(&e, 6, (uint64_t)-10);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_sint(&e, 3, -101);
    expect_err(state, "test:everything", &e, "test:everything.s32: -101 is below min -100");
    e.n = 0;
    f_sint(&e, 3, 101);
    expect_err(state, "test:everything", &e, "test:everything.s32: 101 is above max 100");
    e.n = 0;
    f_sint(&e, 4, -1001);
    expect_err(state, "test:everything", &e, "test:everything.s64: -1001 is below min -1000");
    e.n = 0;
    f_sint(&e, 4, INT64_MAX);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_fixed32(&e, 5, 1001);
    expect_err(state, "test:everything", &e, "test:everything.f32: 1001 is above max 1000");
    e.n = 0;
    f_fixed32(&e, 5, UINT32_MAX);
    expect_err(state, "test:everything", &e,
               "test:everything.f32: 4294967295 is above max 1000");
    e.n = 0;
    f_fixed64(&e, 6, (uint64_t)-11);
    expect_err(state, "test:everything", &e, "test:everything.sf64: -11 is below min -10");

    /* int32: negatives are 10-byte varints; parsers keep the low 32 bits. */
    e.n = 0;
    f_varint(&e, 24, (uint64_t)-1);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_varint(&e, 24, (uint64_t)-2);
    expect_err(state, "test:everything", &e, "test:everything.i32: -2 is below min -1");
    e.n = 0;
    f_varint(&e, 24, ((uint64_t)1 << 32) | 1);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_varint(&e, 24, ((uint64_t)1 << 32) | 2);
    expect_err(state, "test:everything", &e, "test:everything.i32: 2 is above max 1");
    e.n = 0;
    f_varint(&e, 24, 0x80000000u);  /* INT32_MIN once truncated */
    expect_err(state, "test:everything", &e,
               "test:everything.i32: -2147483648 is below min -1");
}

static void reals(void **state) {
    enc e = {.n = 0};
    f_float(&e, 7, 0.1f);   /* above the double 0.1, equal to max as a float */
    f_float(&e, 7, 0.0f);
    f_double(&e, 8, -1);
    f_double(&e, 8, 1);
    expect_ok(state, "test:everything", &e);
    e.n = 0;
    f_float(&e, 7, 0.2f);
    expect_err(state, "test:everything", &e, "test:everything.fl: 0.2 is above max 0.1");
    e.n = 0;
    f_float(&e, 7, -1e-45f);
    expect_err(state, "test:everything", &e, "test:everything.fl: -1e-45 is below min 0");
    e.n = 0;
    f_float(&e, 7, __builtin_nanf(""));
    expect_err(state, "test:everything", &e,
               "test:everything.fl: NaN is not allowed (the field has bounds)");
    e.n = 0;
    f_double(&e, 8, -__builtin_inf());
    expect_err(state, "test:everything", &e, "test:everything.dbl: -inf is below min -1");
    e.n = 0;
    f_double(&e, 8, 1.0000000000000002);
    expect_err(state, "test:everything", &e,
               "test:everything.dbl: 1.0000000000000002 is above max 1");
    /* Inside a packed run of doubles too. */
    enc pk = {.n = 0};
    put_le(&pk, 0x7ff8000000000000ull, 8);
    e.n = 0;
    f_msg(&e, 22, &pk);
    expect_err(state, "test:everything", &e,
               "test:everything.reals[0]: NaN is not allowed (the field has bounds)");
}

/* ---- validator: repeated, packed, enums, strings, nesting ------------------ */

static void repeated_packed_unpacked(void **state) {
    enc e = {.n = 0};
    const uint64_t ok[] = {0, 5, 1000};
    f_packed(&e, 10, ok, 3);        /* packed, as declared */
    f_varint(&e, 10, 7);            /* and unpacked, as parsers accept */
    f_varint(&e, 11, 10);           /* loose: unpacked as declared */
    f_packed(&e, 11, ok, 1);        /* and packed */
    f_packed(&e, 10, ok, 0);        /* an empty run */
    expect_ok(state, "test:everything", &e);

    const uint64_t bad[] = {1, 2, 1001};
    e.n = 0;
    f_packed(&e, 10, bad, 3);
    expect_err(state, "test:everything", &e, "test:everything.nums[2]: 1001 is above max 1000");
    /* Indexes count across packed runs and unpacked elements alike. */
    e.n = 0;
    f_varint(&e, 10, 1);
    f_varint(&e, 11, 1);
    f_packed(&e, 10, ok, 2);
    f_packed(&e, 10, bad, 3);
    expect_err(state, "test:everything", &e, "test:everything.nums[5]: 1001 is above max 1000");
    e.n = 0;
    f_varint(&e, 11, 1);
    f_varint(&e, 11, 2);
    f_varint(&e, 11, 11);
    expect_err(state, "test:everything", &e, "test:everything.loose[2]: 11 is above max 10");
    e.n = 0;
    f_varint(&e, 10, (uint64_t)-1);
    expect_err(state, "test:everything", &e, "test:everything.nums[0]: -1 is below min 0");

    /* A run cut inside a varint; fixed-width runs of a wrong length. */
    e.n = 0;
    f_bytes(&e, 10, "\x01\x80", 2);
    expect_err(state, "test:everything", &e,
               "test:everything.nums[1]: truncated varint at byte 3");
    e.n = 0;
    f_bytes(&e, 21, "\x01\x00\x00\x00\x02", 5);
    expect_err(state, "test:everything", &e,
               "test:everything.fx: packed length 5 is not a multiple of 4");
    enc fx = {.n = 0};
    put_le(&fx, 100, 4);
    put_le(&fx, 101, 4);
    e.n = 0;
    f_fixed32(&e, 21, 3);
    f_msg(&e, 21, &fx);
    expect_err(state, "test:everything", &e, "test:everything.fx[2]: 101 is above max 100");

    /* proto2 Legacy: plain is unpacked by default, packed_vals packed. */
    e.n = 0;
    f_varint(&e, 1, 0);
    f_varint(&e, 3, 1);
    f_packed(&e, 3, ok, 3);
    f_sint(&e, 4, -5);
    enc pv = {.n = 0};
    put_varint(&pv, 9);     /* zigzag -5 */
    put_varint(&pv, 11);    /* zigzag -6 */
    f_msg(&e, 4, &pv);
    expect_err(state, "test:legacy", &e, "test:legacy.packed_vals[2]: -6 is below min -5");
}

static void enums(void **state) {
    enc e = {.n = 0};
    const uint64_t ok[] = {0, 1, 2, 7, (uint64_t)-3};
    f_packed(&e, 13, ok, 5);
    f_varint(&e, 13, 7);
    f_varint(&e, 26, (uint64_t)-3);
    expect_ok(state, "test:everything", &e);
    const uint64_t bad[] = {1, 5};
    e.n = 0;
    f_packed(&e, 13, bad, 2);
    expect_err(state, "test:everything", &e,
               "test:everything.colors[1]: 5 is not a defined value of dialogue.test.Color");
    e.n = 0;
    f_varint(&e, 26, 3);    /* proto3 (open) enum: still refused */
    expect_err(state, "test:everything", &e,
               "test:everything.color: 3 is not a defined value of dialogue.test.Color");
    e.n = 0;
    f_varint(&e, 1, 1);
    f_varint(&e, 5, 3);     /* proto2 (closed) enum */
    expect_err(state, "test:legacy", &e,
               "test:legacy.kind: 3 is not a defined value of dialogue.test2.Kind");
    e.n = 0;
    f_varint(&e, 1, 1);
    f_varint(&e, 5, 0);     /* 0 is not a Kind either */
    expect_err(state, "test:legacy", &e,
               "test:legacy.kind: 0 is not a defined value of dialogue.test2.Kind");
    e.n = 0;
    f_varint(&e, 1, 1);
    f_varint(&e, 5, 2);
    expect_ok(state, "test:legacy", &e);
}

static void strings_and_bytes(void **state) {
    enc e = {.n = 0};
    f_str(&e, 12, "a");
    f_str(&e, 12, "abcdefgh");
    f_str(&e, 23, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf \xef\xbf\xbf");
    f_str(&e, 23, "");
    f_bytes(&e, 23, "a\0b", 3);     /* NUL is valid UTF-8 */
    f_bytes(&e, 18, "\xff\xfe\x00\xc0", 4);
    f_str(&e, 19, "12345");
    expect_ok(state, "test:everything", &e);

    e.n = 0;
    f_str(&e, 12, "a");
    f_str(&e, 12, "b");
    f_str(&e, 12, "abcdefghi");
    expect_err(state, "test:everything", &e,
               "test:everything.tags[2]: length 9 is above max_len 8");
    e.n = 0;
    f_str(&e, 12, "");
    expect_err(state, "test:everything", &e,
               "test:everything.tags[0]: length 0 is below min_len 1");
    e.n = 0;
    f_bytes(&e, 18, "12345", 5);
    expect_err(state, "test:everything", &e, "test:everything.blob: length 5 is above max_len 4");
    e.n = 0;
    f_str(&e, 19, "123456");
    expect_err(state, "test:everything", &e, "test:everything.text: length 6 is above max_len 5");

    static const char *const bad[] = {
        "\xc0\x80",             /* overlong NUL */
        "\xc1\xbf",             /* overlong */
        "\xe0\x80\xaf",         /* overlong '/' */
        "\xf0\x8f\xbf\xbf",     /* overlong U+FFFF */
        "\xed\xa0\x80",         /* surrogate U+D800 */
        "\xed\xbf\xbf",         /* surrogate U+DFFF */
        "\xf4\x90\x80\x80",     /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xff",
        "\x80",                 /* lone continuation */
        "ab\xe2\x82",           /* cut short */
        "\xe2\x28\xa1",         /* bad continuation */
        "\xc3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enc in = {.n = 0};
        f_str(&in, 1, bad[i]);
        e.n = 0;
        f_msg(&e, 16, &in);
        expect_err(state, "test:everything", &e, "test:everything.inner.name: invalid UTF-8");
        e.n = 0;
        f_str(&e, 23, bad[i]);
        expect_err(state, "test:everything", &e, "test:everything.plain: invalid UTF-8");
    }
}

static void nested_and_maps(void **state) {
    enc in = {.n = 0}, e = {.n = 0};
    f_str(&in, 1, "n");
    f_varint(&in, 2, (uint64_t)-5);
    f_msg(&e, 16, &in);
    f_msg(&e, 17, &in);
    f_msg(&e, 17, &in);
    expect_ok(state, "test:everything", &e);

    enc bad = {.n = 0};
    f_varint(&bad, 2, 6);
    f_str(&bad, 1, "n");
    e.n = 0;
    f_msg(&e, 16, &bad);
    expect_err(state, "test:everything", &e, "test:everything.inner.level: 6 is above max 5");

    enc noname = {.n = 0};
    f_varint(&noname, 2, 1);
    e.n = 0;
    f_msg(&e, 17, &in);
    f_msg(&e, 17, &noname);
    expect_err(state, "test:everything", &e,
               "test:everything.items[1].name: required field is missing");
    /* Deeper: items[1].child.child.level */
    enc c2 = {.n = 0}, c1 = {.n = 0}, it = {.n = 0};
    f_str(&c2, 1, "c2");
    f_varint(&c2, 2, 9);
    f_str(&c1, 1, "c1");
    f_msg(&c1, 3, &c2);
    f_str(&it, 1, "it");
    f_msg(&it, 3, &c1);
    e.n = 0;
    f_msg(&e, 17, &in);
    f_msg(&e, 17, &it);
    expect_err(state, "test:everything", &e,
               "test:everything.items[1].child.child.level: 9 is above max 5");
    /* A nested truncation reports the enclosing message and the byte
     * (counted from the start of the payload; field 16's tag is 2 bytes). */
    e.n = 0;
    f_bytes(&e, 16, "\x0a\x05zz", 4);
    expect_err(state, "test:everything", &e,
               "test:everything.inner: length 5 at byte 4 exceeds the 2 bytes left");

    /* map<string, Inner>: entries are messages; value rules apply. */
    enc entry = {.n = 0};
    f_str(&entry, 1, "k");
    f_msg(&entry, 2, &in);
    e.n = 0;
    f_msg(&e, 14, &entry);
    f_msg(&e, 14, &entry);
    enc empty = {.n = 0};
    f_msg(&e, 14, &empty);  /* key and value both default: allowed */
    expect_ok(state, "test:everything", &e);
    enc entry_bad = {.n = 0};
    f_str(&entry_bad, 1, "k2");
    f_msg(&entry_bad, 2, &noname);
    e.n = 0;
    f_msg(&e, 14, &entry);
    f_msg(&e, 14, &entry_bad);
    expect_err(state, "test:everything", &e,
               "test:everything.children[1].value.name: required field is missing");
    enc entry_key = {.n = 0};
    f_bytes(&entry_key, 1, "\xff", 1);
    e.n = 0;
    f_msg(&e, 14, &entry_key);
    expect_err(state, "test:everything", &e, "test:everything.children[0].key: invalid UTF-8");
    /* map<int32, Color> */
    enc pal = {.n = 0};
    f_varint(&pal, 1, 1);
    f_varint(&pal, 2, 7);
    e.n = 0;
    f_msg(&e, 15, &pal);
    expect_ok(state, "test:everything", &e);
    pal.n = 0;
    f_varint(&pal, 1, 1);
    f_varint(&pal, 2, 4);
    e.n = 0;
    f_msg(&e, 15, &pal);
    expect_err(state, "test:everything", &e,
               "test:everything.palette[0].value: 4 is not a defined value of dialogue.test.Color");

    /* proto2 required inside a recursive message, and across files. */
    enc next = {.n = 0};
    f_varint(&next, 2, 1);
    e.n = 0;
    f_varint(&e, 1, 1);
    f_msg(&e, 7, &next);
    expect_err(state, "test:legacy", &e, "test:legacy.next.id: required field is missing");
    e.n = 0;
    f_varint(&e, 1, 1);
    f_msg(&e, 8, &noname);
    expect_err(state, "test:legacy", &e, "test:legacy.inner.name: required field is missing");
}

/* Inner nested `levels` deep under Everything.inner (1 = inner alone). */
static void nest(enc *out, int levels) {
    enc cur = {.n = 0}, tmp;
    f_str(&cur, 1, "x");
    for (int i = 1; i < levels; i++) {
        tmp.n = 0;
        f_str(&tmp, 1, "x");
        f_msg(&tmp, 3, &cur);
        cur = tmp;
    }
    out->n = 0;
    f_msg(out, 16, &cur);
}

static void nesting_limit(void **state) {
    enc e;
    nest(&e, 32);
    expect_ok(state, "test:everything", &e);
    nest(&e, 33);
    char want[512] = "test:everything.inner";
    for (int i = 0; i < 32; i++)
        strcat(want, ".child");
    strcat(want, ": nesting too deep");
    expect_err(state, "test:everything", &e, want);
}

static void presence(void **state) {
    enc e = {.n = 0};
    f_varint(&e, 1, 0);     /* proto3 optional: 0 is written, and present */
    expect_ok(state, "test:presence", &e);
    e.n = 0;
    f_varint(&e, 2, 5);
    expect_err(state, "test:presence", &e, "test:presence.count: required field is missing");
    e.n = 0;
    f_varint(&e, 1, 11);
    expect_err(state, "test:presence", &e, "test:presence.count: 11 is above max 10");
    e.n = 0;
    f_varint(&e, 2, 1);
    expect_err(state, "test:legacy", &e, "test:legacy.id: required field is missing");
    e.n = 0;
    f_varint(&e, 1, 0);
    expect_ok(state, "test:legacy", &e);
    /* oneof members have presence: code = 0 is written and checked. */
    e.n = 0;
    f_varint(&e, 20, 0);
    expect_err(state, "test:everything", &e, "test:everything.code: 0 is below min 1");
    e.n = 0;
    f_varint(&e, 536870911, 5);     /* the largest field number */
    expect_ok(state, "test:everything", &e);
}

static void api_edges(void **state) {
    enc e;
    metrics(&e, 1);
    const dlg_schema_event *ev = event(state, "metrics:update");
    char err[64];
    assert_int_equal(dlg_schema_validate(NULL, e.b, e.n, 0, err, sizeof(err)), DLG_EINVAL);
    assert_int_equal(dlg_schema_validate(ev, NULL, 3, 0, err, sizeof(err)), DLG_EINVAL);
    assert_int_equal(dlg_schema_validate(ev, NULL, 0, 0, err, sizeof(err)), DLG_ESCHEMA);
    assert_string_equal(err, "metrics:update.cpu: required field is missing");
    assert_int_equal(dlg_schema_validate(event(state, "test:everything"), NULL, 0, 0, err,
                                         sizeof(err)), 0);
    /* Short or absent error buffers are fine. */
    metrics(&e, 500);
    char small[12];
    assert_int_equal(dlg_schema_validate(ev, e.b, e.n, 0, small, sizeof(small)), DLG_ESCHEMA);
    assert_string_equal(small, "metrics:upd");
    assert_int_equal(dlg_schema_validate(ev, e.b, e.n, 0, NULL, 0), DLG_ESCHEMA);
    assert_int_equal(dlg_schema_validate(ev, e.b, e.n, 0, small, 0), DLG_ESCHEMA);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_dashboard),
        cmocka_unit_test(registry_fixtures),
        cmocka_unit_test(registry_same_file_skipped),
        cmocka_unit_test(registry_event_defined_twice),
        cmocka_unit_test(registry_bad_sets),
        cmocka_unit_test(registry_hand_built),
        cmocka_unit_test(registry_message_defined_twice),
        cmocka_unit_test(metrics_bounds),
        cmocka_unit_test(metrics_required),
        cmocka_unit_test(alert_fields),
        cmocka_unit_test(wire_structure),
        cmocka_unit_test(wire_type_mismatch),
        cmocka_unit_test(unknown_fields),
        cmocka_unit_test(int64_exact),
        cmocka_unit_test(reals),
        cmocka_unit_test(repeated_packed_unpacked),
        cmocka_unit_test(enums),
        cmocka_unit_test(strings_and_bytes),
        cmocka_unit_test(nested_and_maps),
        cmocka_unit_test(nesting_limit),
        cmocka_unit_test(presence),
        cmocka_unit_test(api_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
