/* dlg_schema.c: the registry of event types built from compiled descriptor
 * sets, and the hand-written wire-format walker that validates payloads. */
#include "dlg_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dialogue/v1/options.pb-c.h"
#include "dlg_err.h"
#include "dlg_utf8.h"
#include "google/protobuf/descriptor.pb-c.h"

#define EXT_EVENT 50000u        /* MessageOptions extension in options.proto */
#define EXT_RULE 50001u         /* FieldOptions extension in options.proto */
#define MAX_FIELD_NUMBER 536870911u     /* 2^29 - 1 */
#define MAX_DEPTH 32            /* nested messages below the event message */
#define MAX_DESC_DEPTH 100      /* nested message declarations in a .proto */
#define MAX_REQUIRED 64         /* one bit each in the validator's seen mask */
#define MAX_EVENT_NAME 128
#define MAX_SET_FILE (64u << 20)

/* The public structs come first so the pointers handed out are also
 * pointers to these (C11 6.7.2.1p15); the rest is the validator's own. */
typedef struct msg_impl {
    dlg_schema_msg pub;
    const char *file;   /* registry-owned name of the declaring .proto */
    size_t seq;         /* load order, to name duplicates in that order */
    int8_t *req_bit;    /* per field: bit in the required mask, or -1 */
    uint64_t req_mask;
} msg_impl;

typedef struct enum_impl {
    dlg_schema_enum pub;
    const char *file;
    size_t seq;
    int32_t *sorted;    /* the numbers, sorted, for bsearch */
} enum_impl;

typedef struct ev_impl {
    dlg_schema_event pub;
    size_t seq;
} ev_impl;

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

/* The item arrays hold void * (read back through void * only, so sorting
 * and merging need no casts between pointer-to-pointer types). */
struct dlg_schema {
    blob *sets;
    size_t n_sets;
    char **files;
    size_t n_files;
    void **msgs;        /* msg_impl *, sorted by full_name */
    size_t n_msgs;
    void **enums;       /* enum_impl *, sorted by full_name */
    size_t n_enums;
    void **events;      /* ev_impl *, load order */
    void **by_name;     /* the same events sorted by name */
    size_t n_events;
};

/* ---- small helpers ------------------------------------------------------ */


static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* "scope.name", or "name" at the top of a file without a package. */
static char *join_name(const char *scope, const char *name) {
    size_t a = strlen(scope), b = strlen(name);
    char *d = malloc(a + b + 2);
    if (d == NULL)
        return NULL;
    if (a) {
        memcpy(d, scope, a);
        d[a++] = '.';
    }
    memcpy(d + a, name, b + 1);
    return d;
}

/* protoc's ToJsonName: drop each '_' and upper-case the letter after it. */
static char *json_name_of(const char *name) {
    char *d = malloc(strlen(name) + 1);
    if (d == NULL)
        return NULL;
    size_t j = 0;
    int up = 0;
    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            up = 1;
            continue;
        }
        d[j++] = (up && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
        up = 0;
    }
    d[j] = '\0';
    return d;
}

typedef struct vec {
    void **v;
    size_t n, cap;
} vec;

static int vec_push(vec *x, void *p) {
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        void **v = realloc(x->v, cap * sizeof(*v));
        if (v == NULL)
            return DLG_ENOMEM;
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = p;
    return 0;
}

static int is_numeric(int type) {
    return type != DLG_FT_STRING && type != DLG_FT_BYTES &&
           type != DLG_FT_MESSAGE && type != DLG_FT_GROUP;
}

/* The wire type a single value of this field type is written with. */
static unsigned wire_type_of(int type) {
    switch (type) {
    case DLG_FT_DOUBLE: case DLG_FT_FIXED64: case DLG_FT_SFIXED64: return 1;
    case DLG_FT_FLOAT: case DLG_FT_FIXED32: case DLG_FT_SFIXED32: return 5;
    case DLG_FT_STRING: case DLG_FT_BYTES: case DLG_FT_MESSAGE: return 2;
    default: return 0;
    }
}

static const char *type_name_of(int type) {
    static const char *const names[] = {
        "?", "double", "float", "int64", "uint64", "int32", "fixed64",
        "fixed32", "bool", "string", "group", "message", "bytes", "uint32",
        "enum", "sfixed32", "sfixed64", "sint32", "sint64",
    };
    return (type > 0 && type <= DLG_FT_SINT64) ? names[type] : "?";
}

/* Formats a rule bound or a floating value: integers in full (bounds of
 * int64 fields are often large), anything else in the shortest form that
 * reads back to the same double. */
static void fmt_double(char *buf, size_t n, double d) {
    int integral;
    if (d != d) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (d >= 0x1p63 || d <= -0x1p63)
        integral = d < 0x1p64 && d > -0x1p64;   /* all doubles this large are */
    else
        integral = (double)(int64_t)d == d;
    if (integral) {
        snprintf(buf, n, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static void fmt_float(char *buf, size_t n, float f) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return;
    }
}

/* ---- freeing -------------------------------------------------------------- */

static void free_msg(msg_impl *m) {
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->pub.n_fields; i++) {
        free(m->pub.fields[i].name);
        free(m->pub.fields[i].json_name);
    }
    free(m->pub.fields);
    free(m->req_bit);
    free(m->pub.full_name);
    free(m);
}

static void free_enum(enum_impl *e) {
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->pub.n_values; i++)
        free(e->pub.names[i]);
    free(e->pub.names);
    free(e->pub.numbers);
    free(e->sorted);
    free(e->pub.full_name);
    free(e);
}

static void free_event(ev_impl *e) {
    if (e == NULL)
        return;
    free(e->pub.name);
    free(e);
}

int dlg_schema_new(dlg_schema **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : DLG_ENOMEM;
}

void dlg_schema_free(dlg_schema *s) {
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_sets; i++)
        free(s->sets[i].data);
    free(s->sets);
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i]);
    free(s->files);
    for (size_t i = 0; i < s->n_msgs; i++)
        free_msg(s->msgs[i]);
    free(s->msgs);
    for (size_t i = 0; i < s->n_enums; i++)
        free_enum(s->enums[i]);
    free(s->enums);
    for (size_t i = 0; i < s->n_events; i++)
        free_event(s->events[i]);
    free(s->events);
    free(s->by_name);
    free(s);
}

/* ---- loading: everything new is staged, then committed in one step ------- */

typedef struct pending {
    dlg_schema_field *f;
    const char *type_name;  /* ".pkg.Msg", owned by the unpacked set */
    const char *owner;      /* full name of the message declaring f */
    const char *file;
} pending;

typedef struct stage {
    const dlg_schema *s;
    vec files;      /* char *, now owned by the stage */
    vec msgs;       /* msg_impl * */
    vec enums;      /* enum_impl * */
    vec events;     /* ev_impl * */
    pending *pend;
    size_t n_pend, cap_pend;
    char *err;
    size_t errlen;
} stage;

static void stage_free(stage *st) {
    for (size_t i = 0; i < st->files.n; i++)
        free(st->files.v[i]);
    for (size_t i = 0; i < st->msgs.n; i++)
        free_msg(st->msgs.v[i]);
    for (size_t i = 0; i < st->enums.n; i++)
        free_enum(st->enums.v[i]);
    for (size_t i = 0; i < st->events.n; i++)
        free_event(st->events.v[i]);
    free(st->files.v);
    free(st->msgs.v);
    free(st->enums.v);
    free(st->events.v);
    free(st->pend);
}

static int add_pending(stage *st, const pending *p) {
    if (st->n_pend == st->cap_pend) {
        size_t cap = st->cap_pend ? st->cap_pend * 2 : 32;
        pending *v = realloc(st->pend, cap * sizeof(*v));
        if (v == NULL)
            return DLG_ENOMEM;
        st->pend = v;
        st->cap_pend = cap;
    }
    st->pend[st->n_pend++] = *p;
    return 0;
}

/* protobuf-c keeps a length-delimited unknown field as the length prefix
 * followed by the payload; returns the payload, or -1 when the prefix does
 * not match the bytes kept. */
static int unknown_payload(const ProtobufCMessageUnknownField *u,
                           const uint8_t **data, size_t *len) {
    if (u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
        return -1;
    uint64_t n = 0;
    size_t i = 0;
    for (; i < u->len && i < 10; i++) {
        n |= (uint64_t)(u->data[i] & 0x7f) << (7 * i);
        if (!(u->data[i] & 0x80))
            break;
    }
    if (i >= u->len || i == 10 || n != u->len - i - 1)
        return -1;
    *data = u->data + i + 1;
    *len = (size_t)n;
    return 0;
}

static int event_name_ok(const uint8_t *p, size_t n) {
    if (n == 0 || n > MAX_EVENT_NAME)
        return 0;
    /* Printable ASCII without spaces: the name goes into logs and errors. */
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return 0;
    return 1;
}

/* The (dialogue.v1.event) option of a message, if any; the last occurrence
 * wins, as protobuf does for a repeated singular field. */
static int read_event_option(stage *st, const char *file, msg_impl *m,
                             const Google__Protobuf__MessageOptions *o) {
    const uint8_t *name = NULL;
    size_t len = 0;
    for (size_t i = 0; o != NULL && i < o->base.n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &o->base.unknown_fields[i];
        if (u->tag != EXT_EVENT)
            continue;
        if (unknown_payload(u, &name, &len) != 0 || !event_name_ok(name, len)) {
            dlg_errf(st->err, st->errlen, "%s: message %s: option (dialogue.v1.event) "
                   "is not a printable name of 1 to %d characters", file,
                   m->pub.full_name, MAX_EVENT_NAME);
            return DLG_ESCHEMA;
        }
    }
    if (name == NULL)
        return 0;
    ev_impl *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->pub.name = malloc(len + 1)) == NULL) {
        free(e);
        return DLG_ENOMEM;
    }
    memcpy(e->pub.name, name, len);
    e->pub.name[len] = '\0';
    e->pub.msg = &m->pub;
    e->seq = st->s->n_events + st->events.n;
    if (vec_push(&st->events, e) != 0) {
        free_event(e);
        return DLG_ENOMEM;
    }
    return 0;
}

/* Merges every (dialogue.v1.rule) occurrence into f, as protobuf merges a
 * repeated singular message field. */
static int read_rule_option(stage *st, const char *file, const char *owner,
                            dlg_schema_field *f,
                            const Google__Protobuf__FieldOptions *o) {
    for (size_t i = 0; o != NULL && i < o->base.n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &o->base.unknown_fields[i];
        if (u->tag != EXT_RULE)
            continue;
        const uint8_t *p;
        size_t n;
        Dialogue__V1__FieldRule *r = NULL;
        if (unknown_payload(u, &p, &n) != 0 ||
            (r = dialogue__v1__field_rule__unpack(NULL, n, p)) == NULL) {
            dlg_errf(st->err, st->errlen, "%s: field %s.%s: option (dialogue.v1.rule) "
                   "does not decode", file, owner, f->name);
            return DLG_ESCHEMA;
        }
        if (r->has_min) { f->has_min = 1; f->min = r->min; }
        if (r->has_max) { f->has_max = 1; f->max = r->max; }
        if (r->has_min_len) { f->has_min_len = 1; f->min_len = r->min_len; }
        if (r->has_max_len) { f->has_max_len = 1; f->max_len = r->max_len; }
        if (r->has_required) f->required = r->required;
        dialogue__v1__field_rule__free_unpacked(r, NULL);
    }
    return 0;
}

/* Rules that cannot mean anything are schema bugs; refusing them at load
 * beats rejecting (or passing) every event at run time. */
static int check_rule(stage *st, const char *file, const char *owner,
                      const dlg_schema_field *f) {
    const char *what = NULL;
    char a[40], b[40];
    if ((f->has_min || f->has_max) && !is_numeric(f->type))
        what = "min/max apply to numeric fields only";
    else if ((f->has_min && f->min != f->min) || (f->has_max && f->max != f->max))
        what = "min/max must not be NaN";
    else if (f->has_min && f->has_max && f->min > f->max) {
        fmt_double(a, sizeof(a), f->min);
        fmt_double(b, sizeof(b), f->max);
        dlg_errf(st->err, st->errlen, "%s: field %s.%s: min %s is above max %s", file,
               owner, f->name, a, b);
        return DLG_ESCHEMA;
    } else if ((f->has_min_len || f->has_max_len) && f->type != DLG_FT_STRING &&
               f->type != DLG_FT_BYTES)
        what = "min_len/max_len apply to string and bytes fields only";
    else if (f->has_min_len && f->has_max_len && f->min_len > f->max_len)
        what = "min_len is above max_len";
    else if (f->required && !f->has_presence && f->label != DLG_FL_REPEATED)
        what = "required needs explicit presence (declare the field optional), "
               "else a 0 is not sent and reads as missing";
    if (what == NULL)
        return 0;
    dlg_errf(st->err, st->errlen, "%s: field %s.%s: %s", file, owner, f->name, what);
    return DLG_ESCHEMA;
}

static int cmp_field_desc(const void *a, const void *b) {
    const Google__Protobuf__FieldDescriptorProto *x =
        *(const Google__Protobuf__FieldDescriptorProto *const *)a;
    const Google__Protobuf__FieldDescriptorProto *y =
        *(const Google__Protobuf__FieldDescriptorProto *const *)b;
    return (x->number > y->number) - (x->number < y->number);
}

static int fill_field(stage *st, const char *file, int proto3, msg_impl *m,
                      const Google__Protobuf__FieldDescriptorProto *fd,
                      dlg_schema_field *f) {
    const char *owner = m->pub.full_name;
    if (fd->name == NULL || !fd->has_number || fd->number < 1 ||
        (uint32_t)fd->number > MAX_FIELD_NUMBER || !fd->has_type || !fd->has_label) {
        dlg_errf(st->err, st->errlen, "%s: message %s: field %s lacks a valid name, "
               "number, type or label", file, owner, fd->name ? fd->name : "(unnamed)");
        return DLG_ESCHEMA;
    }
    if ((f->name = dupstr(fd->name)) == NULL)
        return DLG_ENOMEM;
    f->json_name = fd->json_name ? dupstr(fd->json_name) : json_name_of(fd->name);
    if (f->json_name == NULL)
        return DLG_ENOMEM;
    f->number = (uint32_t)fd->number;
    f->type = (int)fd->type;
    f->label = (int)fd->label;
    if (f->type < DLG_FT_DOUBLE || f->type > DLG_FT_SINT64 || f->type == DLG_FT_GROUP ||
        f->label < DLG_FL_OPTIONAL || f->label > DLG_FL_REPEATED) {
        dlg_errf(st->err, st->errlen, "%s: field %s.%s: %s", file, owner, f->name,
               f->type == DLG_FT_GROUP ? "groups are not supported"
                                       : "unknown type or label");
        return DLG_ESCHEMA;
    }
    if (f->label == DLG_FL_REPEATED && is_numeric(f->type)) {
        const Google__Protobuf__FieldOptions *o = fd->options;
        f->packed = (o && o->has_packed) ? (int)o->packed : proto3;
    }
    f->has_presence = f->label != DLG_FL_REPEATED &&
                      (!proto3 || f->type == DLG_FT_MESSAGE || fd->has_oneof_index ||
                       (fd->has_proto3_optional && fd->proto3_optional));
    int rc = read_rule_option(st, file, owner, f, fd->options);
    if (rc == 0)
        rc = check_rule(st, file, owner, f);
    if (rc != 0)
        return rc;
    if (f->type == DLG_FT_MESSAGE || f->type == DLG_FT_ENUM) {
        if (fd->type_name == NULL || fd->type_name[0] != '.') {
            dlg_errf(st->err, st->errlen, "%s: field %s.%s: type name is missing or "
                   "not fully qualified", file, owner, f->name);
            return DLG_ESCHEMA;
        }
        pending p = {f, fd->type_name, owner, file};
        return add_pending(st, &p);
    }
    return 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int add_enum(stage *st, const char *file, const char *scope,
                    const Google__Protobuf__EnumDescriptorProto *d) {
    if (d->name == NULL) {
        dlg_errf(st->err, st->errlen, "%s: enum without a name in %s", file,
               *scope ? scope : "the file scope");
        return DLG_ESCHEMA;
    }
    enum_impl *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return DLG_ENOMEM;
    if (vec_push(&st->enums, e) != 0) {
        free(e);
        return DLG_ENOMEM;
    }
    /* From here e belongs to the stage, which frees it on any error. */
    e->file = file;
    e->seq = st->s->n_enums + st->enums.n - 1;
    if ((e->pub.full_name = join_name(scope, d->name)) == NULL)
        return DLG_ENOMEM;
    size_t n = d->n_value;
    e->pub.numbers = calloc(n ? n : 1, sizeof(int32_t));
    e->sorted = calloc(n ? n : 1, sizeof(int32_t));
    e->pub.names = calloc(n ? n : 1, sizeof(char *));
    if (e->pub.numbers == NULL || e->sorted == NULL || e->pub.names == NULL)
        return DLG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const Google__Protobuf__EnumValueDescriptorProto *v = d->value[i];
        if (v->name == NULL || !v->has_number) {
            dlg_errf(st->err, st->errlen, "%s: enum %s: value %zu lacks a name or number",
                   file, e->pub.full_name, i);
            return DLG_ESCHEMA;
        }
        if ((e->pub.names[i] = dupstr(v->name)) == NULL)
            return DLG_ENOMEM;
        e->pub.n_values = i + 1;    /* names[0..i] now need freeing */
        e->pub.numbers[i] = e->sorted[i] = v->number;
    }
    qsort(e->sorted, n, sizeof(int32_t), cmp_i32);
    return 0;
}

static int add_message(stage *st, const char *file, int proto3, const char *scope,
                       const Google__Protobuf__DescriptorProto *d, int level) {
    if (d->name == NULL) {
        dlg_errf(st->err, st->errlen, "%s: message without a name in %s", file,
               *scope ? scope : "the file scope");
        return DLG_ESCHEMA;
    }
    if (level > MAX_DESC_DEPTH) {
        dlg_errf(st->err, st->errlen, "%s: message %s.%s is nested too deep", file,
               scope, d->name);
        return DLG_ESCHEMA;
    }
    msg_impl *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return DLG_ENOMEM;
    if (vec_push(&st->msgs, m) != 0) {
        free(m);
        return DLG_ENOMEM;
    }
    m->file = file;
    m->seq = st->s->n_msgs + st->msgs.n - 1;
    if ((m->pub.full_name = join_name(scope, d->name)) == NULL)
        return DLG_ENOMEM;
    m->pub.map_entry = d->options && d->options->has_map_entry && d->options->map_entry;

    size_t n = d->n_field;
    const Google__Protobuf__FieldDescriptorProto **order =
        malloc((n ? n : 1) * sizeof(*order));
    m->pub.fields = calloc(n ? n : 1, sizeof(dlg_schema_field));
    m->req_bit = malloc(n ? n : 1);
    if (order == NULL || m->pub.fields == NULL || m->req_bit == NULL) {
        free(order);
        return DLG_ENOMEM;
    }
    /* Sorted before filling: pending entries point into fields[]. */
    if (n)  /* d->field is NULL for a message without fields */
        memcpy(order, d->field, n * sizeof(*order));
    qsort(order, n, sizeof(*order), cmp_field_desc);
    int rc = 0;
    unsigned n_req = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        dlg_schema_field *f = &m->pub.fields[i];
        m->pub.n_fields = i + 1;
        rc = fill_field(st, file, proto3, m, order[i], f);
        if (rc == 0 && i > 0 && f->number == f[-1].number) {
            dlg_errf(st->err, st->errlen, "%s: message %s: field number %u used twice",
                   file, m->pub.full_name, f->number);
            rc = DLG_ESCHEMA;
        }
        m->req_bit[i] = -1;
        if (rc == 0 && (f->required || f->label == DLG_FL_REQUIRED)) {
            if (n_req == MAX_REQUIRED) {
                dlg_errf(st->err, st->errlen, "%s: message %s has more than %d required "
                       "fields", file, m->pub.full_name, MAX_REQUIRED);
                rc = DLG_ESCHEMA;
            } else {
                m->req_bit[i] = (int8_t)n_req;
                m->req_mask |= 1ull << n_req++;
            }
        }
    }
    free(order);
    if (rc != 0)
        return rc;
    if ((rc = read_event_option(st, file, m, d->options)) != 0)
        return rc;
    /* m->pub.full_name stays valid: m is owned by the stage, not moved. */
    for (size_t i = 0; i < d->n_nested_type; i++)
        if ((rc = add_message(st, file, proto3, m->pub.full_name, d->nested_type[i],
                              level + 1)) != 0)
            return rc;
    for (size_t i = 0; i < d->n_enum_type; i++)
        if ((rc = add_enum(st, file, m->pub.full_name, d->enum_type[i])) != 0)
            return rc;
    return 0;
}

static int file_known(const stage *st, const char *name) {
    for (size_t i = 0; i < st->s->n_files; i++)
        if (strcmp(st->s->files[i], name) == 0)
            return 1;
    for (size_t i = 0; i < st->files.n; i++)
        if (strcmp(st->files.v[i], name) == 0)
            return 1;
    return 0;
}

static int add_file(stage *st, const Google__Protobuf__FileDescriptorProto *fp) {
    if (fp->name == NULL) {
        dlg_errf(st->err, st->errlen, "descriptor set holds a file without a name");
        return DLG_ESCHEMA;
    }
    if (file_known(st, fp->name))
        return 0;
    int proto3 = 0;
    if (fp->syntax != NULL && strcmp(fp->syntax, "proto3") == 0)
        proto3 = 1;
    else if (fp->syntax != NULL && *fp->syntax && strcmp(fp->syntax, "proto2") != 0) {
        dlg_errf(st->err, st->errlen, "%s: syntax \"%s\" is not supported", fp->name,
               fp->syntax);
        return DLG_ESCHEMA;
    }
    char *file = dupstr(fp->name);
    if (file == NULL || vec_push(&st->files, file) != 0) {
        free(file);
        return DLG_ENOMEM;
    }
    const char *scope = fp->package ? fp->package : "";
    int rc;
    for (size_t i = 0; i < fp->n_message_type; i++)
        if ((rc = add_message(st, file, proto3, scope, fp->message_type[i], 0)) != 0)
            return rc;
    for (size_t i = 0; i < fp->n_enum_type; i++)
        if ((rc = add_enum(st, file, scope, fp->enum_type[i])) != 0)
            return rc;
    return 0;
}

static int cmp_msg(const void *a, const void *b) {
    const msg_impl *x = *(void *const *)a, *y = *(void *const *)b;
    int c = strcmp(x->pub.full_name, y->pub.full_name);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_enum(const void *a, const void *b) {
    const enum_impl *x = *(void *const *)a, *y = *(void *const *)b;
    int c = strcmp(x->pub.full_name, y->pub.full_name);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_event(const void *a, const void *b) {
    const ev_impl *x = *(void *const *)a, *y = *(void *const *)b;
    int c = strcmp(x->pub.name, y->pub.name);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Old and staged items in one new array sorted by cmp; the caller frees it.
 * Items keep their owners (registry or stage). */
static void **merge_sorted(void *const *old, size_t n_old, const vec *add,
                           int (*cmp)(const void *, const void *)) {
    size_t n = n_old + add->n;
    void **all = malloc((n ? n : 1) * sizeof(*all));
    if (all == NULL)
        return NULL;
    if (n_old)
        memcpy(all, old, n_old * sizeof(*all));
    if (add->n)
        memcpy(all + n_old, add->v, add->n * sizeof(*all));
    qsort(all, n, sizeof(*all), cmp);
    return all;
}

static int key_msg(const void *key, const void *elem) {
    const msg_impl *m = *(void *const *)elem;
    return strcmp(key, m->pub.full_name);
}

static int key_enum(const void *key, const void *elem) {
    const enum_impl *e = *(void *const *)elem;
    return strcmp(key, e->pub.full_name);
}

static int key_event(const void *key, const void *elem) {
    const ev_impl *e = *(void *const *)elem;
    return strcmp(key, e->pub.name);
}

static int resolve(stage *st, void **msgs, size_t n_msgs, void **enums,
                   size_t n_enums) {
    for (size_t i = 0; i < st->n_pend; i++) {
        pending *p = &st->pend[i];
        const char *name = p->type_name + 1;
        void **m = bsearch(name, msgs, n_msgs, sizeof(*msgs), key_msg);
        void **e = bsearch(name, enums, n_enums, sizeof(*enums), key_enum);
        if (p->f->type == DLG_FT_MESSAGE && m != NULL) {
            const msg_impl *mi = *m;
            p->f->msg = &mi->pub;
        } else if (p->f->type == DLG_FT_ENUM && e != NULL) {
            const enum_impl *ei = *e;
            p->f->en = &ei->pub;
        } else {
            dlg_errf(st->err, st->errlen, "%s: field %s.%s: type %s is %s", p->file,
                   p->owner, p->f->name, p->type_name,
                   (m || e) ? (p->f->type == DLG_FT_ENUM ? "not an enum" : "not a message")
                            : "not defined in the loaded sets");
            return DLG_ESCHEMA;
        }
    }
    return 0;
}

int dlg_schema_add_set(dlg_schema *s, const uint8_t *data, size_t len, char *err,
                       size_t errlen) {
    stage st = {.s = s, .err = err, .errlen = errlen};
    void **msgs = NULL, **enums = NULL, **by_name = NULL, **events = NULL;
    blob *sets = NULL;
    char **files = NULL;
    uint8_t *copy = NULL;
    int rc = DLG_ESCHEMA;
    Google__Protobuf__FileDescriptorSet *set =
        google__protobuf__file_descriptor_set__unpack(NULL, len, data);
    if (set == NULL) {
        dlg_errf(err, errlen, "descriptor set does not parse (%zu bytes)", len);
        goto fail;
    }
    if (set->n_file == 0) {
        dlg_errf(err, errlen, "descriptor set holds no files");
        goto fail;
    }
    for (size_t i = 0; i < set->n_file; i++)
        if ((rc = add_file(&st, set->file[i])) != 0)
            goto fail;
    if (st.files.n == 0) {      /* every file already loaded: nothing to keep */
        rc = 0;
        goto fail;              /* not a failure; the same cleanup */
    }

    rc = DLG_ENOMEM;
    msgs = merge_sorted(s->msgs, s->n_msgs, &st.msgs, cmp_msg);
    enums = merge_sorted(s->enums, s->n_enums, &st.enums, cmp_enum);
    by_name = merge_sorted(s->by_name, s->n_events, &st.events, cmp_event);
    size_t n_msgs = s->n_msgs + st.msgs.n, n_enums = s->n_enums + st.enums.n;
    size_t n_events = s->n_events + st.events.n;
    events = malloc((n_events ? n_events : 1) * sizeof(*events));
    sets = malloc((s->n_sets + 1) * sizeof(*sets));
    files = malloc((s->n_files + st.files.n) * sizeof(*files));
    copy = malloc(len ? len : 1);
    if (!msgs || !enums || !by_name || !events || !sets || !files || !copy)
        goto fail;

    rc = DLG_ESCHEMA;
    for (size_t i = 1; i < n_msgs; i++) {
        const msg_impl *a = msgs[i - 1], *b = msgs[i];
        if (strcmp(a->pub.full_name, b->pub.full_name) == 0) {
            dlg_errf(err, errlen, "message %s defined twice (in %s and %s)",
                   a->pub.full_name, a->file, b->file);
            goto fail;
        }
    }
    for (size_t i = 1; i < n_enums; i++) {
        const enum_impl *a = enums[i - 1], *b = enums[i];
        if (strcmp(a->pub.full_name, b->pub.full_name) == 0) {
            dlg_errf(err, errlen, "enum %s defined twice (in %s and %s)",
                   a->pub.full_name, a->file, b->file);
            goto fail;
        }
    }
    for (size_t i = 1; i < n_events; i++) {
        const ev_impl *a = by_name[i - 1], *b = by_name[i];
        if (strcmp(a->pub.name, b->pub.name) == 0) {
            dlg_errf(err, errlen, "event %s defined twice (%s and %s)", a->pub.name,
                   a->pub.msg->full_name, b->pub.msg->full_name);
            goto fail;
        }
    }
    if ((rc = resolve(&st, msgs, n_msgs, enums, n_enums)) != 0)
        goto fail;

    /* Commit: nothing below can fail. */
    if (len)
        memcpy(copy, data, len);
    if (s->n_sets)
        memcpy(sets, s->sets, s->n_sets * sizeof(*sets));
    sets[s->n_sets] = (blob){copy, len};
    if (s->n_files)
        memcpy(files, s->files, s->n_files * sizeof(*files));
    for (size_t i = 0; i < st.files.n; i++)
        files[s->n_files + i] = st.files.v[i];
    if (s->n_events)
        memcpy(events, s->events, s->n_events * sizeof(*events));
    for (size_t i = 0; i < st.events.n; i++)
        events[s->n_events + i] = st.events.v[i];
    free(s->sets);
    free(s->files);
    free(s->msgs);
    free(s->enums);
    free(s->events);
    free(s->by_name);
    s->sets = sets;
    s->n_sets++;
    s->files = files;
    s->n_files += st.files.n;
    s->msgs = msgs;
    s->n_msgs = n_msgs;
    s->enums = enums;
    s->n_enums = n_enums;
    s->events = events;
    s->by_name = by_name;
    s->n_events = n_events;
    st.files.n = st.msgs.n = st.enums.n = st.events.n = 0;  /* now the registry's */
    stage_free(&st);
    google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return 0;

fail:
    if (rc == DLG_ENOMEM)
        dlg_errf(err, errlen, "out of memory loading a descriptor set");
    free(msgs);
    free(enums);
    free(by_name);
    free(events);
    free(sets);
    free(files);
    free(copy);
    stage_free(&st);
    if (set != NULL)
        google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return rc;
}

int dlg_schema_load_file(dlg_schema *s, const char *path, char *err, size_t errlen) {
    uint8_t *buf = NULL;
    char why[512];
    int rc = DLG_EIO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dlg_errf(err, errlen, "%s: %s", path, strerror(errno));
        return DLG_EIO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        dlg_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        dlg_errf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size > (off_t)MAX_SET_FILE) {
        dlg_errf(err, errlen, "%s: %lld bytes, above the %u MiB cap for a descriptor set",
               path, (long long)sb.st_size, MAX_SET_FILE >> 20);
        goto fail;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    if ((buf = malloc(size ? size : 1)) == NULL) {
        rc = DLG_ENOMEM;
        dlg_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            dlg_errf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            goto fail;
        }
        got += (size_t)r;
    }
    why[0] = '\0';
    rc = dlg_schema_add_set(s, buf, size, why, sizeof(why));
    if (rc != 0)
        dlg_errf(err, errlen, "%s: %s", path, why);
fail:
    free(buf);
    close(fd);
    return rc;
}

/* ---- lookups -------------------------------------------------------------- */

const dlg_schema_event *dlg_schema_event_find(const dlg_schema *s, const char *name) {
    /* bsearch's base must not be NULL, even for 0 items. */
    if (s == NULL || name == NULL || s->n_events == 0)
        return NULL;
    void **e = bsearch(name, s->by_name, s->n_events, sizeof(*s->by_name), key_event);
    const ev_impl *ei = e ? *e : NULL;
    return ei ? &ei->pub : NULL;
}

size_t dlg_schema_event_count(const dlg_schema *s) {
    return s ? s->n_events : 0;
}

const dlg_schema_event *dlg_schema_event_at(const dlg_schema *s, size_t i) {
    const ev_impl *e = (s && i < s->n_events) ? s->events[i] : NULL;
    return e ? &e->pub : NULL;
}

const dlg_schema_msg *dlg_schema_msg_find(const dlg_schema *s, const char *full_name) {
    if (s == NULL || full_name == NULL || s->n_msgs == 0)
        return NULL;
    void **m = bsearch(full_name, s->msgs, s->n_msgs, sizeof(*s->msgs), key_msg);
    const msg_impl *mi = m ? *m : NULL;
    return mi ? &mi->pub : NULL;
}

const dlg_schema_field *dlg_schema_field_by_number(const dlg_schema_msg *m,
                                                   uint32_t number) {
    size_t lo = 0, hi = m ? m->n_fields : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t n = m->fields[mid].number;
        if (n == number)
            return &m->fields[mid];
        if (n < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const dlg_schema_field *dlg_schema_field_by_name(const dlg_schema_msg *m,
                                                 const char *name) {
    for (size_t i = 0; m && name && i < m->n_fields; i++)
        if (strcmp(m->fields[i].name, name) == 0 ||
            strcmp(m->fields[i].json_name, name) == 0)
            return &m->fields[i];
    return NULL;
}

size_t dlg_schema_set_count(const dlg_schema *s) {
    return s ? s->n_sets : 0;
}

void dlg_schema_set_at(const dlg_schema *s, size_t i, const uint8_t **data,
                       size_t *len) {
    if (s == NULL || i >= s->n_sets) {
        *data = NULL;
        *len = 0;
        return;
    }
    *data = s->sets[i].data;
    *len = s->sets[i].len;
}

/* ---- the validator -------------------------------------------------------- */

/* One level of the path to the value being checked. The element index of a
 * repeated field is only needed for an error message, so it is recounted
 * from the bytes then rather than tracked per field while walking. */
typedef struct frame {
    const dlg_schema_field *f;
    const uint8_t *msg;     /* start of the enclosing message's bytes */
    const uint8_t *tag;     /* this element's tag; NULL: field as a whole */
    size_t packed_idx;      /* element within a packed run at tag */
} frame;

typedef struct vctx {
    const dlg_schema_event *ev;
    const uint8_t *base;
    unsigned flags;
    char *err;
    size_t errlen;
    frame path[MAX_DEPTH + 1];
} vctx;

enum { VI_OK, VI_TRUNC, VI_LONG };

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p == end)
            return VI_TRUNC;
        uint8_t b = *p++;
        /* The 10th byte holds bit 63 only; anything more is over 64 bits. */
        if (i == 9 && b > 1)
            return VI_LONG;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return VI_OK;
        }
    }
    return VI_LONG;
}

static uint64_t get_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t packed_count(int type, const uint8_t *p, size_t len) {
    unsigned wt = wire_type_of(type);
    if (wt == 1)
        return len / 8;
    if (wt == 5)
        return len / 4;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += !(p[i] & 0x80);
    return n;
}

/* Elements of fr->f before fr->tag in its message (already walked, so
 * well-formed; still bounds-checked), plus the position in a packed run. */
static size_t elem_index(const frame *fr) {
    size_t n = fr->packed_idx;
    const uint8_t *p = fr->msg, *end = fr->tag;
    while (p < end) {
        uint64_t tag, v;
        if (get_varint(&p, end, &tag) != VI_OK)
            break;
        int same = (tag >> 3) == fr->f->number;
        switch (tag & 7) {
        case 0:
            if (get_varint(&p, end, &v) != VI_OK)
                return n;
            n += same;
            break;
        case 1:
        case 5: {
            size_t w = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - p) < w)
                return n;
            p += w;
            n += same;
            break;
        }
        case 2:
            if (get_varint(&p, end, &v) != VI_OK || v > (uint64_t)(end - p))
                return n;
            if (same)
                n += is_numeric(fr->f->type) ? packed_count(fr->f->type, p, (size_t)v) : 1;
            p += v;
            break;
        default:
            return n;
        }
    }
    return n;
}

static int fail(vctx *c, int nframes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(vctx *c, int nframes, const char *fmt, ...) {
    if (c->err == NULL || c->errlen == 0)
        return DLG_ESCHEMA;
    size_t off = 0;
#define PUT(...)                                                              \
    do {                                                                      \
        if (off < c->errlen) {                                                \
            int w_ = snprintf(c->err + off, c->errlen - off, __VA_ARGS__);    \
            off = w_ < 0 ? c->errlen : off + (size_t)w_;                      \
        }                                                                     \
    } while (0)
    PUT("%s", c->ev->name);
    for (int i = 0; i < nframes; i++) {
        const frame *fr = &c->path[i];
        PUT(".%s", fr->f->name);
        if (fr->f->label == DLG_FL_REPEATED && fr->tag != NULL)
            PUT("[%zu]", elem_index(fr));
    }
    PUT(": ");
#undef PUT
    if (off < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + off, c->errlen - off, fmt, ap);
        va_end(ap);
    }
    return DLG_ESCHEMA;
}

static size_t at(const vctx *c, const uint8_t *p) {
    return (size_t)(p - c->base);
}

static int bad_varint(vctx *c, int nframes, int why, const uint8_t *p) {
    return fail(c, nframes, why == VI_TRUNC ? "truncated varint at byte %zu"
                                            : "varint longer than 10 bytes at byte %zu",
                at(c, p));
}

/* Exact comparisons of an integer with a double bound: the bound is turned
 * into the nearest integer on the safe side, never the value into a double
 * (2^53 + 1 would round to 2^53). Bounds are never NaN (checked at load). */
static int i64_below(int64_t v, double min) {
    if (min >= 0x1p63)
        return 1;
    if (min < -0x1p63)
        return 0;
    int64_t t = (int64_t)min;   /* exact when |min| >= 2^52, so t + 1 fits */
    if ((double)t < min)
        t++;
    return v < t;
}

static int i64_above(int64_t v, double max) {
    if (max >= 0x1p63)
        return 0;
    if (max < -0x1p63)
        return 1;
    int64_t t = (int64_t)max;
    if ((double)t > max)
        t--;
    return v > t;
}

static int u64_below(uint64_t v, double min) {
    if (min <= 0)
        return 0;
    if (min >= 0x1p64)
        return 1;
    uint64_t t = (uint64_t)min;
    if ((double)t < min)
        t++;
    return v < t;
}

static int u64_above(uint64_t v, double max) {
    if (max < 0)
        return 1;
    if (max >= 0x1p64)
        return 0;
    return v > (uint64_t)max;
}

static int check_signed(vctx *c, const dlg_schema_field *f, int64_t v, int nf) {
    char b[40];
    if (f->has_min && i64_below(v, f->min)) {
        fmt_double(b, sizeof(b), f->min);
        return fail(c, nf, "%lld is below min %s", (long long)v, b);
    }
    if (f->has_max && i64_above(v, f->max)) {
        fmt_double(b, sizeof(b), f->max);
        return fail(c, nf, "%lld is above max %s", (long long)v, b);
    }
    return 0;
}

static int check_unsigned(vctx *c, const dlg_schema_field *f, uint64_t v, int nf) {
    char b[40];
    if (f->has_min && u64_below(v, f->min)) {
        fmt_double(b, sizeof(b), f->min);
        return fail(c, nf, "%llu is below min %s", (unsigned long long)v, b);
    }
    if (f->has_max && u64_above(v, f->max)) {
        fmt_double(b, sizeof(b), f->max);
        return fail(c, nf, "%llu is above max %s", (unsigned long long)v, b);
    }
    return 0;
}

/* A bound as the float a float field would hold for it, so that
 * max: 0.1 accepts 0.1f (which is slightly above the double 0.1). Bounds
 * beyond the float range stay as they are: compared exactly, as doubles. */
static double float_bound(double d) {
    if (d > FLT_MAX || d < -FLT_MAX)
        return d;
    return (double)(float)d;
}

/* v as written; is_float says it came from a float field. */
static int check_real(vctx *c, const dlg_schema_field *f, double v, int is_float,
                      int nf) {
    char a[40], b[40];
    if (v != v) {
        if (f->has_min || f->has_max)
            return fail(c, nf, "NaN is not allowed (the field has bounds)");
        return 0;
    }
    double min = is_float ? float_bound(f->min) : f->min;
    double max = is_float ? float_bound(f->max) : f->max;
    int below = f->has_min && v < min, above = f->has_max && v > max;
    if (!below && !above)
        return 0;
    if (is_float)
        fmt_float(a, sizeof(a), (float)v);
    else
        fmt_double(a, sizeof(a), v);
    fmt_double(b, sizeof(b), below ? f->min : f->max);
    return fail(c, nf, "%s is %s %s", a, below ? "below min" : "above max", b);
}

static int enum_defined(const dlg_schema_enum *e, int32_t v) {
    const enum_impl *ei = (const enum_impl *)e;
    return bsearch(&v, ei->sorted, e->n_values, sizeof(int32_t), cmp_i32) != NULL;
}

/* One scalar value; raw is the varint or the fixed-width bits. Parsers keep
 * only the low 32 bits of a varint for 32-bit types, so that is what is
 * checked. */
static int check_scalar(vctx *c, const dlg_schema_field *f, uint64_t raw, int nf) {
    uint32_t u32 = (uint32_t)raw;
    switch (f->type) {
    case DLG_FT_DOUBLE: {
        double d;
        memcpy(&d, &raw, sizeof(d));
        return check_real(c, f, d, 0, nf);
    }
    case DLG_FT_FLOAT: {
        float x;
        memcpy(&x, &u32, sizeof(x));
        return check_real(c, f, (double)x, 1, nf);
    }
    case DLG_FT_INT32:
    case DLG_FT_SFIXED32:
        return check_signed(c, f, (int32_t)u32, nf);
    case DLG_FT_SINT32:
        return check_signed(c, f, (int32_t)((u32 >> 1) ^ (0u - (u32 & 1))), nf);
    case DLG_FT_INT64:
    case DLG_FT_SFIXED64:
        return check_signed(c, f, (int64_t)raw, nf);
    case DLG_FT_SINT64:
        return check_signed(c, f, (int64_t)((raw >> 1) ^ (0ull - (raw & 1))), nf);
    case DLG_FT_UINT32:
    case DLG_FT_FIXED32:
        return check_unsigned(c, f, u32, nf);
    case DLG_FT_UINT64:
    case DLG_FT_FIXED64:
        return check_unsigned(c, f, raw, nf);
    case DLG_FT_BOOL:
        return check_unsigned(c, f, raw != 0, nf);
    case DLG_FT_ENUM:
        if (!enum_defined(f->en, (int32_t)u32))
            return fail(c, nf, "%d is not a defined value of %s", (int)(int32_t)u32,
                        f->en->full_name);
        return check_signed(c, f, (int32_t)u32, nf);
    }
    return 0;
}


static int walk_msg(vctx *c, const dlg_schema_msg *m, const uint8_t *p,
                    const uint8_t *end, int depth);

/* A length-delimited value of field f at path depth `depth` (its frame is
 * set), payload [p, p + len). */
static int check_ld(vctx *c, const dlg_schema_field *f, const uint8_t *p, size_t len,
                    int depth) {
    int nf = depth + 1;
    switch (f->type) {
    case DLG_FT_STRING:
    case DLG_FT_BYTES:
        /* Lengths count bytes, not code points: that is what costs memory
         * and bandwidth, and it needs no decoding. */
        if (f->has_min_len && len < f->min_len)
            return fail(c, nf, "length %zu is below min_len %u", len, f->min_len);
        if (f->has_max_len && len > f->max_len)
            return fail(c, nf, "length %zu is above max_len %u", len, f->max_len);
        if (f->type == DLG_FT_STRING && !dlg_utf8_valid(p, len))
            return fail(c, nf, "invalid UTF-8");
        return 0;
    case DLG_FT_MESSAGE:
        if (depth + 1 > MAX_DEPTH)
            return fail(c, nf, "nesting too deep");
        return walk_msg(c, f->msg, p, p + len, depth + 1);
    }
    if (f->label != DLG_FL_REPEATED)
        return fail(c, nf, "wire type 2 does not match %s", type_name_of(f->type));
    /* Packed run; accepted whether or not the schema says packed, as
     * protobuf parsers do. */
    const uint8_t *q = p, *end = p + len;
    frame *fr = &c->path[depth];
    unsigned wt = wire_type_of(f->type);
    if (wt != 0) {
        unsigned w = wt == 1 ? 8 : 4;
        if (len % w) {
            fr->tag = NULL;     /* about the run, not one element */
            return fail(c, nf, "packed length %zu is not a multiple of %u", len, w);
        }
        for (; q < end; q += w, fr->packed_idx++) {
            int rc = check_scalar(c, f, get_le(q, w), nf);
            if (rc)
                return rc;
        }
    } else {
        while (q < end) {
            const uint8_t *vp = q;
            uint64_t raw;
            int r = get_varint(&q, end, &raw);
            if (r != VI_OK)
                return bad_varint(c, nf, r, vp);
            int rc = check_scalar(c, f, raw, nf);
            if (rc)
                return rc;
            fr->packed_idx++;
        }
    }
    fr->packed_idx = 0;
    return 0;
}

static int walk_msg(vctx *c, const dlg_schema_msg *m, const uint8_t *p,
                    const uint8_t *end, int depth) {
    const msg_impl *mi = (const msg_impl *)m;
    const uint8_t *start = p;
    uint64_t seen = 0;
    while (p < end) {
        const uint8_t *tp = p;
        uint64_t tag, v;
        int r = get_varint(&p, end, &tag);
        if (r != VI_OK)
            return bad_varint(c, depth, r, tp);
        uint64_t num = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        if (num == 0 || num > MAX_FIELD_NUMBER)
            return fail(c, depth, "field number %llu at byte %zu is out of range",
                        (unsigned long long)num, at(c, tp));
        if (wt == 3 || wt == 4)
            return fail(c, depth, "group (wire type %u) at byte %zu is not supported", wt,
                        at(c, tp));
        if (wt == 6 || wt == 7)
            return fail(c, depth, "invalid wire type %u at byte %zu", wt, at(c, tp));
        const dlg_schema_field *f = dlg_schema_field_by_number(m, (uint32_t)num);
        if (f == NULL && !(c->flags & DLG_SCHEMA_ALLOW_UNKNOWN))
            return fail(c, depth, "unknown field %llu", (unsigned long long)num);
        if (f != NULL) {
            c->path[depth] = (frame){f, start, tp, 0};
            if (wt != 2 && wt != wire_type_of(f->type))
                return fail(c, depth + 1, "wire type %u does not match %s", wt,
                            type_name_of(f->type));
        }
        const uint8_t *vp = p;
        switch (wt) {
        case 0:
            if ((r = get_varint(&p, end, &v)) != VI_OK)
                return bad_varint(c, depth, r, vp);
            break;
        case 1:
        case 5: {
            unsigned w = wt == 1 ? 8 : 4;
            if ((size_t)(end - p) < w)
                return fail(c, depth, "truncated fixed%u at byte %zu", w * 8, at(c, vp));
            v = get_le(p, w);
            p += w;
            break;
        }
        default:    /* 2 */
            if ((r = get_varint(&p, end, &v)) != VI_OK)
                return bad_varint(c, depth, r, vp);
            if (v > (uint64_t)(end - p))
                return fail(c, depth, "length %llu at byte %zu exceeds the %zu bytes left",
                            (unsigned long long)v, at(c, vp), (size_t)(end - p));
            p += v;
            break;
        }
        if (f == NULL)
            continue;   /* unknown but allowed: well-formed is enough */
        int rc = wt == 2 ? check_ld(c, f, p - (size_t)v, (size_t)v, depth)
                         : check_scalar(c, f, v, depth + 1);
        if (rc)
            return rc;
        int bit = mi->req_bit[f - m->fields];
        if (bit >= 0)
            seen |= 1ull << bit;
    }
    if ((seen & mi->req_mask) != mi->req_mask) {
        for (size_t i = 0; i < m->n_fields; i++) {
            int bit = mi->req_bit[i];
            if (bit >= 0 && !(seen & (1ull << bit))) {
                c->path[depth] = (frame){&m->fields[i], start, NULL, 0};
                return fail(c, depth + 1, "required field is missing");
            }
        }
    }
    return 0;
}

int dlg_schema_validate(const dlg_schema_event *ev, const uint8_t *data, size_t len,
                        unsigned flags, char *err, size_t errlen) {
    if (ev == NULL || (data == NULL && len != 0)) {
        dlg_errf(err, errlen, "no event or no data to validate");
        return DLG_EINVAL;
    }
    vctx c = {.ev = ev, .base = data, .flags = flags, .err = err, .errlen = errlen};
    static const uint8_t empty[1];
    if (data == NULL)
        data = c.base = empty;
    return walk_msg(&c, ev->msg, data, data + len, 0);
}
