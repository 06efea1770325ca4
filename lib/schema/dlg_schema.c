/* dlg_schema.c: the registry of event types built from compiled descriptor
 * sets: loading (staged, then committed in one step), freeing, lookups. The
 * validator that walks payloads against it is dlg_schema_validate.c. */
#include "dlg_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dialogue/v1/options.pb-c.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_schema_int.h"
#include "dlg_vec.h"
#include "dlg_varint.h"
#include "google/protobuf/descriptor.pb-c.h"

#define EXT_EVENT 50000u        /* MessageOptions extension in options.proto */
#define EXT_RULE 50001u         /* FieldOptions extension in options.proto */
#define MAX_DESC_DEPTH 100      /* nested message declarations in a .proto */
#define MAX_REQUIRED 64         /* one bit each in the validator's seen mask */
#define MAX_EVENT_NAME 128
#define MAX_SET_FILE (64u << 20)

/* ---- small helpers ------------------------------------------------------ */

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = dlg_malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* "scope.name", or "name" at the top of a file without a package. */
static char *join_name(const char *scope, const char *name) {
    size_t a = strlen(scope), b = strlen(name);
    char *d = dlg_malloc(a + b + 2);
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
    char *d = dlg_malloc(strlen(name) + 1);
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
    if (DLG_GROW(x->v, x->cap, x->n + 1) != 0)
        return DLG_ENOMEM;
    x->v[x->n++] = p;
    return 0;
}

int dlg__schema_is_numeric(int type) {
    return type != DLG_FT_STRING && type != DLG_FT_BYTES &&
           type != DLG_FT_MESSAGE && type != DLG_FT_GROUP;
}

void dlg__schema_fmt_double(char *buf, size_t n, double d) {
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
    *out = dlg_calloc(1, sizeof(**out));
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
    if (DLG_GROW(st->pend, st->cap_pend, st->n_pend + 1) != 0)
        return DLG_ENOMEM;
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
    const uint8_t *p = u->data, *end = u->data + u->len;
    uint64_t n;
    int rc = dlg_varint_get(&p, end, &n);
    if ((rc != DLG_VARINT_OK && rc != DLG_VARINT_OVER) || n != (uint64_t)(end - p))
        return -1;
    *data = p;
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
    ev_impl *e = dlg_calloc(1, sizeof(*e));
    if (e == NULL || (e->pub.name = dlg_malloc(len + 1)) == NULL) {
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
    if ((f->has_min || f->has_max) && !dlg__schema_is_numeric(f->type))
        what = "min/max apply to numeric fields only";
    else if ((f->has_min && f->min != f->min) || (f->has_max && f->max != f->max))
        what = "min/max must not be NaN";
    else if (f->has_min && f->has_max && f->min > f->max) {
        dlg__schema_fmt_double(a, sizeof(a), f->min);
        dlg__schema_fmt_double(b, sizeof(b), f->max);
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
    if (f->label == DLG_FL_REPEATED && dlg__schema_is_numeric(f->type)) {
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

int dlg__schema_cmp_i32(const void *a, const void *b) {
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
    enum_impl *e = dlg_calloc(1, sizeof(*e));
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
    e->pub.numbers = dlg_calloc(n ? n : 1, sizeof(int32_t));
    e->sorted = dlg_calloc(n ? n : 1, sizeof(int32_t));
    e->pub.names = dlg_calloc(n ? n : 1, sizeof(char *));
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
    qsort(e->sorted, n, sizeof(int32_t), dlg__schema_cmp_i32);
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
    msg_impl *m = dlg_calloc(1, sizeof(*m));
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
        dlg_malloc((n ? n : 1) * sizeof(*order));
    m->pub.fields = dlg_calloc(n ? n : 1, sizeof(dlg_schema_field));
    m->req_bit = dlg_malloc(n ? n : 1);
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
    void **all = dlg_malloc((n ? n : 1) * sizeof(*all));
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
    events = dlg_malloc((n_events ? n_events : 1) * sizeof(*events));
    sets = dlg_malloc((s->n_sets + 1) * sizeof(*sets));
    files = dlg_malloc((s->n_files + st.files.n) * sizeof(*files));
    copy = dlg_malloc(len ? len : 1);
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
    if ((buf = dlg_malloc(size ? size : 1)) == NULL) {
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
