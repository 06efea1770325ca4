/* pbjson_encode.c: JSON -> protobuf wire for a message known at run time
 * (dlg_pbjson_encode): the proto3 JSON mapping read leniently, written in
 * field-number order by a small wire writer. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_base64.h"
#include "dlg_err.h"
#include "dlg_varint.h"
#include "dlg_vec.h"
#include "pbjson.h"
#include "pbjson_int.h"

/* ---- wire writer -------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wbuf;

static int wb_reserve(wbuf *b, size_t n) {
    if (n > SIZE_MAX - b->len)
        return DLG_ENOMEM;
    return DLG_GROW(b->p, b->cap, b->len + n);
}

static int wb_put(wbuf *b, const void *data, size_t n) {
    if (n == 0)
        return 0;
    int rc = wb_reserve(b, n);
    if (rc == 0) {
        memcpy(b->p + b->len, data, n);
        b->len += n;
    }
    return rc;
}

static int wb_varint(wbuf *b, uint64_t v) {
    uint8_t tmp[DLG_VARINT_MAX];
    return wb_put(b, tmp, (size_t)(dlg_varint_put(tmp, v) - tmp));
}

static int wb_fixed(wbuf *b, uint64_t v, size_t n) {
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return wb_put(b, tmp, n);
}

static int wb_tag(wbuf *b, uint32_t number, int wt) {
    return wb_varint(b, (uint64_t)number << 3 | (uint64_t)wt);
}

/* Appends a length-delimited payload (length prefix + bytes). */
static int wb_lenbytes(wbuf *b, const void *data, size_t n) {
    int rc = wb_varint(b, n);
    return rc ? rc : wb_put(b, data, n);
}

/* ---- JSON -> wire ------------------------------------------------------- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: case JSON_REAL: return "number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* The value as the user wrote it (roughly), cut to fit an error line. */
static const char *show(const json_t *v, char *buf, size_t n) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    if (s == NULL) {
        snprintf(buf, n, "value");
        return buf;
    }
    size_t len = strlen(s);
    if (len < n)
        memcpy(buf, s, len + 1);
    else
        snprintf(buf, n, "%.*s...", (int)(n - 4), s);
    free(s);
    return buf;
}

/* 0: not a JSON number; 1: an integer literal; 2: with fraction/exponent.
 * Checked before strtod/strtoll so neither sees hex, "inf" or spaces. */
static int number_syntax(const char *s) {
    int kind = 1;
    if (*s == '-')
        s++;
    if (*s < '0' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
        kind = 2;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
        kind = 2;
    }
    return *s ? 0 : kind;
}

static int range_err(pbjson_ctx *c, const json_t *v, const char *tname) {
    char b[64];
    return dlg__pbjson_fail(c, DLG_EINVAL, "%s out of range for %s", show(v, b, sizeof b),
                tname);
}

/* Integral value of a number or numeric string, as a double when it is not a
 * plain integer literal; shared by the signed and unsigned readers.
 * Returns 1 when *d was set, 0 when *lit holds an integer literal string,
 * 2 when *ll holds a JSON integer, or an error. */
static int int_source(pbjson_ctx *c, const json_t *v, double *d, const char **lit,
                      long long *ll) {
    if (json_is_integer(v)) {
        *ll = json_integer_value(v);
        return 2;
    }
    if (json_is_real(v)) {
        *d = json_real_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        int kind = number_syntax(s);
        if (kind == 0)
            return dlg__pbjson_fail(c, DLG_EINVAL, "expected a number, got string");
        if (kind == 1) {
            *lit = s;
            return 0;
        }
        *d = strtod(s, NULL);
        return 1;
    }
    return dlg__pbjson_fail(c, DLG_EINVAL, "expected a number, got %s", json_kind(v));
}

static int check_integral(pbjson_ctx *c, const json_t *v, double d) {
    char b[64];
    if (isfinite(d) && d != trunc(d))
        return dlg__pbjson_fail(c, DLG_EINVAL, "%s is not an integer", show(v, b, sizeof b));
    return 0;
}

static int get_i64(pbjson_ctx *c, const json_t *v, int64_t lo, int64_t hi,
                   const char *tname, int64_t *out) {
    double d = 0;
    const char *lit = NULL;
    long long ll = 0;
    int64_t x;
    int k = int_source(c, v, &d, &lit, &ll);
    if (k < 0)
        return k;
    if (k == 2) {
        x = ll;
    } else if (k == 0) {
        errno = 0;
        ll = strtoll(lit, NULL, 10);
        if (errno == ERANGE)
            return range_err(c, v, tname);
        x = ll;
    } else {
        int rc = check_integral(c, v, d);
        if (rc)
            return rc;
        /* 2^63 is exact in a double; INT64_MAX is not. */
        if (!isfinite(d) || d < -9223372036854775808.0 ||
            d >= 9223372036854775808.0)
            return range_err(c, v, tname);
        x = (int64_t)d;
    }
    if (x < lo || x > hi)
        return range_err(c, v, tname);
    *out = x;
    return 0;
}

static int get_u64(pbjson_ctx *c, const json_t *v, uint64_t hi, const char *tname,
                   uint64_t *out) {
    double d = 0;
    const char *lit = NULL;
    long long ll = 0;
    uint64_t x;
    int k = int_source(c, v, &d, &lit, &ll);
    if (k < 0)
        return k;
    if (k == 2) {
        if (ll < 0)
            return range_err(c, v, tname);
        x = (uint64_t)ll;
    } else if (k == 0) {
        if (lit[0] == '-') {
            /* strtoull would wrap "-1"; only "-0" is in range. */
            if (lit[strspn(lit + 1, "0") + 1] != '\0')
                return range_err(c, v, tname);
            x = 0;
        } else {
            errno = 0;
            unsigned long long u = strtoull(lit, NULL, 10);
            if (errno == ERANGE)
                return range_err(c, v, tname);
            x = u;
        }
    } else {
        int rc = check_integral(c, v, d);
        if (rc)
            return rc;
        if (!isfinite(d) || d < 0 || d >= 18446744073709551616.0)
            return range_err(c, v, tname);
        x = (uint64_t)d;
    }
    if (x > hi)
        return range_err(c, v, tname);
    *out = x;
    return 0;
}

static int get_double(pbjson_ctx *c, const json_t *v, int is_float, double *out) {
    double d;
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0) {
            d = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            d = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            d = -INFINITY;
        } else if (number_syntax(s)) {
            d = strtod(s, NULL);
            if (isinf(d))
                return range_err(c, v, "double");
        } else {
            return dlg__pbjson_fail(c, DLG_EINVAL, "expected a number, got string");
        }
    } else {
        return dlg__pbjson_fail(c, DLG_EINVAL, "expected a number, got %s", json_kind(v));
    }
    if (is_float && isfinite(d) && fabs(d) > FLT_MAX) {
        /* The shortest decimal of FLT_MAX ("3.40282347e+38", what decode
         * prints) reads back a hair above it: whatever rounds to FLT_MAX is
         * in range; only what would round to infinity is not. */
        if (fabs(d) >= (double)FLT_MAX + ldexp(1.0, 103))
            return range_err(c, v, "float");
        d = copysign((double)FLT_MAX, d);
    }
    *out = d;
    return 0;
}

static int enc_message(pbjson_ctx *c, const dlg_schema_msg *m, const json_t *obj,
                       wbuf *out, int depth);

/* Appends the value of one field (no tag): the varint/fixed bytes, or the
 * length prefix and payload. is_key: v is a map key, always a string. */
static int enc_value(pbjson_ctx *c, const dlg_schema_field *f, const json_t *v,
                     wbuf *out, int depth, int is_key) {
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    int rc;
    char b[64];
    switch (f->type) {
    case DLG_FT_DOUBLE:
    case DLG_FT_FLOAT:
        if ((rc = get_double(c, v, f->type == DLG_FT_FLOAT, &d)))
            return rc;
        if (f->type == DLG_FT_DOUBLE) {
            memcpy(&u, &d, sizeof d);
            rc = wb_fixed(out, u, 8);
        } else {
            float fl = (float)d;
            uint32_t u32;
            memcpy(&u32, &fl, sizeof fl);
            rc = wb_fixed(out, u32, 4);
        }
        break;
    case DLG_FT_INT32:
        if ((rc = get_i64(c, v, INT32_MIN, INT32_MAX, "int32", &i)))
            return rc;
        rc = wb_varint(out, (uint64_t)i);   /* negatives take 10 bytes */
        break;
    case DLG_FT_SINT32:
        if ((rc = get_i64(c, v, INT32_MIN, INT32_MAX, "sint32", &i)))
            return rc;
        rc = wb_varint(out, ((uint32_t)i << 1) ^ (uint32_t)-(i < 0));
        break;
    case DLG_FT_SFIXED32:
        if ((rc = get_i64(c, v, INT32_MIN, INT32_MAX, "sfixed32", &i)))
            return rc;
        rc = wb_fixed(out, (uint32_t)i, 4);
        break;
    case DLG_FT_INT64:
        if ((rc = get_i64(c, v, INT64_MIN, INT64_MAX, "int64", &i)))
            return rc;
        rc = wb_varint(out, (uint64_t)i);
        break;
    case DLG_FT_SINT64:
        if ((rc = get_i64(c, v, INT64_MIN, INT64_MAX, "sint64", &i)))
            return rc;
        rc = wb_varint(out, ((uint64_t)i << 1) ^ (uint64_t)-(i < 0));
        break;
    case DLG_FT_SFIXED64:
        if ((rc = get_i64(c, v, INT64_MIN, INT64_MAX, "sfixed64", &i)))
            return rc;
        rc = wb_fixed(out, (uint64_t)i, 8);
        break;
    case DLG_FT_UINT32:
    case DLG_FT_FIXED32:
        if ((rc = get_u64(c, v, UINT32_MAX,
                          f->type == DLG_FT_UINT32 ? "uint32" : "fixed32", &u)))
            return rc;
        rc = f->type == DLG_FT_UINT32 ? wb_varint(out, u) : wb_fixed(out, u, 4);
        break;
    case DLG_FT_UINT64:
    case DLG_FT_FIXED64:
        if ((rc = get_u64(c, v, UINT64_MAX,
                          f->type == DLG_FT_UINT64 ? "uint64" : "fixed64", &u)))
            return rc;
        rc = f->type == DLG_FT_UINT64 ? wb_varint(out, u) : wb_fixed(out, u, 8);
        break;
    case DLG_FT_BOOL:
        if (json_is_boolean(v)) {
            u = json_is_true(v);
        } else if (is_key && strcmp(json_string_value(v), "true") == 0) {
            u = 1;
        } else if (is_key && strcmp(json_string_value(v), "false") == 0) {
            u = 0;
        } else if (is_key) {
            return dlg__pbjson_fail(c, DLG_EINVAL, "%s is not a boolean",
                        show(v, b, sizeof b));
        } else {
            return dlg__pbjson_fail(c, DLG_EINVAL, "expected a boolean, got %s",
                        json_kind(v));
        }
        rc = wb_varint(out, u);
        break;
    case DLG_FT_ENUM:
        if (f->en == NULL)
            return dlg__pbjson_fail(c, DLG_EINVAL, "enum type of field %s not resolved",
                        f->name);
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            size_t k;
            for (k = 0; k < f->en->n_values; k++)
                if (strcmp(f->en->names[k], s) == 0)
                    break;
            if (k == f->en->n_values)
                return dlg__pbjson_fail(c, DLG_EINVAL, "%s is not a value of %s",
                            show(v, b, sizeof b), f->en->full_name);
            i = f->en->numbers[k];
        } else if (json_is_number(v)) {
            /* Unknown numbers pass: proto3 enums are open, and the server's
             * validator decides for closed ones. */
            if ((rc = get_i64(c, v, INT32_MIN, INT32_MAX, "int32", &i)))
                return rc;
        } else {
            return dlg__pbjson_fail(c, DLG_EINVAL, "expected an enum name or number, got %s",
                        json_kind(v));
        }
        rc = wb_varint(out, (uint64_t)i);
        break;
    case DLG_FT_STRING:
        if (!json_is_string(v))
            return dlg__pbjson_fail(c, DLG_EINVAL, "expected a string, got %s",
                        json_kind(v));
        rc = wb_lenbytes(out, json_string_value(v), json_string_length(v));
        break;
    case DLG_FT_BYTES: {
        if (!json_is_string(v))
            return dlg__pbjson_fail(c, DLG_EINVAL, "expected a base64 string, got %s",
                        json_kind(v));
        size_t n = json_string_length(v), blen = 0;
        uint8_t *bytes = malloc(DLG_BASE64_DECODED_MAX(n) + 1);
        if (bytes == NULL)
            return dlg__pbjson_fail_nomem(c);
        if (dlg_base64_decode(json_string_value(v), n, DLG_PBJSON_B64, bytes, &blen) != 0) {
            free(bytes);
            return dlg__pbjson_fail(c, DLG_EINVAL, "not valid base64");
        }
        rc = wb_lenbytes(out, bytes, blen);
        free(bytes);
        break;
    }
    case DLG_FT_MESSAGE: {
        if (f->msg == NULL)
            return dlg__pbjson_fail(c, DLG_EINVAL, "message type of field %s not resolved",
                        f->name);
        wbuf sub = {0};
        rc = enc_message(c, f->msg, v, &sub, depth + 1);
        if (rc == 0)
            rc = wb_lenbytes(out, sub.p, sub.len);
        free(sub.p);
        if (rc == DLG_EINVAL)
            return rc;     /* message already written by the nested call */
        break;
    }
    default:
        return dlg__pbjson_fail(c, DLG_EINVAL, "field %s has unsupported type %d", f->name,
                    f->type);
    }
    return rc == DLG_ENOMEM ? dlg__pbjson_fail_nomem(c) : rc;
}

static int enc_map(pbjson_ctx *c, const dlg_schema_field *f, const json_t *v,
                   wbuf *out, int depth) {
    if (!json_is_object(v))
        return dlg__pbjson_fail(c, DLG_EINVAL, "expected an object, got %s", json_kind(v));
    const dlg_schema_field *kf = dlg__pbjson_field_num(f->msg, 1);
    const dlg_schema_field *vf = dlg__pbjson_field_num(f->msg, 2);
    if (kf == NULL || vf == NULL)
        return dlg__pbjson_fail(c, DLG_EINVAL, "map entry %s lacks a key or value field",
                    f->msg->full_name);
    wbuf ent = {0};
    int rc = 0;
    /* jansson's iterators take a non-const object but do not modify it. */
    json_t *obj = (json_t *)v;
    for (void *it = json_object_iter(obj); it != NULL;
         it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        const json_t *val = json_object_iter_value(it);
        size_t old = dlg__pbjson_path_push(c, "[\"%s\"]", key);
        ent.len = 0;
        if (json_is_null(val)) {
            rc = dlg__pbjson_fail(c, DLG_EINVAL, "null is not allowed as a map value");
            goto fail;
        }
        if ((rc = wb_tag(&ent, 1, dlg__pbjson_wire_type(kf->type))))
            goto nomem;
        if (kf->type == DLG_FT_STRING) {
            if ((rc = wb_lenbytes(&ent, key, klen)))
                goto nomem;
        } else {
            json_t *kj = json_stringn_nocheck(key, klen);
            if (kj == NULL)
                goto nomem;
            size_t at_key = dlg__pbjson_path_push(c, " (map key)");
            rc = enc_value(c, kf, kj, &ent, depth, 1);
            json_decref(kj);
            if (rc)
                goto fail;
            dlg__pbjson_path_pop(c, at_key);
        }
        if ((rc = wb_tag(&ent, 2, dlg__pbjson_wire_type(vf->type))))
            goto nomem;
        if ((rc = enc_value(c, vf, val, &ent, depth, 0)))
            goto fail;
        if ((rc = wb_tag(out, f->number, WT_LEN)) ||
            (rc = wb_lenbytes(out, ent.p, ent.len)))
            goto nomem;
        dlg__pbjson_path_pop(c, old);
    }
    free(ent.p);
    return 0;
nomem:
    rc = dlg__pbjson_fail_nomem(c);
fail:
    free(ent.p);
    return rc;
}

static int enc_repeated(pbjson_ctx *c, const dlg_schema_field *f, const json_t *v,
                        wbuf *out, int depth) {
    if (!json_is_array(v))
        return dlg__pbjson_fail(c, DLG_EINVAL, "expected an array, got %s", json_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return 0;
    int wt = dlg__pbjson_wire_type(f->type);
    int packed = f->packed && wt != WT_LEN;
    wbuf pk = {0};
    wbuf *dst = packed ? &pk : out;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = dlg__pbjson_path_push(c, "[%zu]", i);
        if (json_is_null(e)) {
            rc = dlg__pbjson_fail(c, DLG_EINVAL, "null is not allowed in a repeated field");
            goto fail;
        }
        if (!packed && (rc = wb_tag(out, f->number, wt))) {
            rc = dlg__pbjson_fail_nomem(c);
            goto fail;
        }
        if ((rc = enc_value(c, f, e, dst, depth, 0)))
            goto fail;
        dlg__pbjson_path_pop(c, old);
    }
    if (packed && ((rc = wb_tag(out, f->number, WT_LEN)) ||
                   (rc = wb_lenbytes(out, pk.p, pk.len)))) {
        rc = dlg__pbjson_fail_nomem(c);
        goto fail;
    }
    free(pk.p);
    return 0;
fail:
    free(pk.p);
    return rc;
}

static int enc_field(pbjson_ctx *c, const dlg_schema_field *f, const json_t *v,
                     wbuf *out, int depth) {
    if (!dlg__pbjson_known_type(f->type))
        return dlg__pbjson_fail(c, DLG_EINVAL, "field %s has unsupported type %d", f->name,
                    f->type);
    if (dlg__pbjson_is_map(f))
        return enc_map(c, f, v, out, depth);
    if (f->label == DLG_FL_REPEATED)
        return enc_repeated(c, f, v, out, depth);
    if (wb_tag(out, f->number, dlg__pbjson_wire_type(f->type)))
        return dlg__pbjson_fail_nomem(c);
    return enc_value(c, f, v, out, depth, 0);
}

static int enc_message(pbjson_ctx *c, const dlg_schema_msg *m, const json_t *obj,
                       wbuf *out, int depth) {
    if (!json_is_object(obj))
        return dlg__pbjson_fail(c, DLG_EINVAL, "expected an object, got %s",
                    json_kind(obj));
    if (depth > DLG_PBJSON_MAX_DEPTH)
        return dlg__pbjson_fail(c, DLG_EINVAL, "nesting deeper than %d",
                    DLG_PBJSON_MAX_DEPTH);
    size_t n = m->n_fields ? m->n_fields : 1;
    const json_t **vals = calloc(n, sizeof *vals);
    const char **keys = calloc(n, sizeof *keys);
    int rc = 0;
    if (vals == NULL || keys == NULL) {
        rc = dlg__pbjson_fail_nomem(c);
        goto done;
    }
    /* First match JSON keys to fields (catching unknown and doubled names),
     * then write in field-number order whatever order the JSON had. */
    const char *key;
    json_t *v;
    /* The cast only satisfies jansson's iterator API, which reads. */
    json_object_foreach((json_t *)obj, key, v) {
        size_t i;
        for (i = 0; i < m->n_fields; i++) {
            const dlg_schema_field *f = &m->fields[i];
            if ((f->json_name && strcmp(f->json_name, key) == 0) ||
                strcmp(f->name, key) == 0)
                break;
        }
        if (i == m->n_fields) {
            rc = dlg__pbjson_fail(c, DLG_EINVAL, "unknown field \"%s\" in %s", key,
                      m->full_name);
            goto done;
        }
        if (keys[i] != NULL) {
            rc = dlg__pbjson_fail(c, DLG_EINVAL,
                      "\"%s\" and \"%s\" both set field %s of %s", keys[i],
                      key, m->fields[i].name, m->full_name);
            goto done;
        }
        keys[i] = key;
        vals[i] = json_is_null(v) ? NULL : v;
    }
    for (size_t i = 0; i < m->n_fields; i++) {
        if (vals[i] == NULL)
            continue;
        size_t old = dlg__pbjson_path_push_name(c, keys[i]);
        rc = enc_field(c, &m->fields[i], vals[i], out, depth);
        if (rc)
            goto done;
        dlg__pbjson_path_pop(c, old);
    }
done:
    free(vals);
    free(keys);
    return rc;
}

int dlg_pbjson_encode(const dlg_schema_msg *m, const json_t *in, uint8_t **out,
                      size_t *out_len, char *err, size_t errlen) {
    pbjson_ctx c = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (m == NULL || in == NULL || out == NULL || out_len == NULL)
        return dlg__pbjson_fail(&c, DLG_EINVAL, "dlg_pbjson_encode: NULL argument");
    wbuf b = {0};
    int rc = enc_message(&c, m, in, &b, 0);
    if (rc == 0 && b.p == NULL && (b.p = malloc(1)) == NULL)
        rc = dlg__pbjson_fail_nomem(&c);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}
