/* pbjson.c: protobuf wire <-> canonical JSON transcoding driven by run-time
 * descriptors (dlg_schema), with its own small wire reader/writer and base64. */
#include "pbjson.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_utf8.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4,
       WT_I32 = 5 };

/* Field numbers above this do not fit a tag (protobuf's own limit). */
#define MAX_FIELD_NUMBER 536870911u

/* Where we are in the JSON being read or written, so every error can name
 * the offending value; plus the caller's error buffer. */
typedef struct {
    char path[256];
    size_t plen;
    char *err;
    size_t errlen;
} ctx_t;

__attribute__((format(printf, 3, 4)))
static int fail(ctx_t *c, int rc, const char *fmt, ...) {
    if (c->err == NULL || c->errlen == 0)
        return rc;
    size_t n = 0;
    if (c->plen > 0) {
        int w = snprintf(c->err, c->errlen, "%s: ", c->path);
        n = w < 0 ? 0 : (size_t)w;
    }
    if (n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int fail_nomem(ctx_t *c) {
    return fail(c, DLG_ENOMEM, "out of memory");
}

/* Path segments are appended in place and popped by restoring the old
 * length; a path longer than the buffer is cut, which only shortens errors. */
__attribute__((format(printf, 2, 3)))
static size_t path_push(ctx_t *c, const char *fmt, ...) {
    size_t old = c->plen;
    size_t room = sizeof c->path - old;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(c->path + old, room, fmt, ap);
    va_end(ap);
    if (w < 0)
        c->path[old] = '\0';
    else
        c->plen = (size_t)w < room ? old + (size_t)w : sizeof c->path - 1;
    return old;
}

static size_t path_push_name(ctx_t *c, const char *name) {
    return path_push(c, c->plen ? ".%s" : "%s", name);
}

static void path_pop(ctx_t *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

static const char *field_key(const dlg_schema_field *f) {
    return f->json_name ? f->json_name : f->name;
}

static int wire_type(int type) {
    switch (type) {
    case DLG_FT_DOUBLE: case DLG_FT_FIXED64: case DLG_FT_SFIXED64:
        return WT_I64;
    case DLG_FT_FLOAT: case DLG_FT_FIXED32: case DLG_FT_SFIXED32:
        return WT_I32;
    case DLG_FT_STRING: case DLG_FT_BYTES: case DLG_FT_MESSAGE:
        return WT_LEN;
    case DLG_FT_GROUP:
        return WT_SGROUP;
    default:
        return WT_VARINT;
    }
}

static int known_type(int type) {
    return type >= DLG_FT_DOUBLE && type <= DLG_FT_SINT64 &&
           type != DLG_FT_GROUP;
}

static int is_map(const dlg_schema_field *f) {
    return f->label == DLG_FL_REPEATED && f->type == DLG_FT_MESSAGE &&
           f->msg != NULL && f->msg->map_entry;
}

static const dlg_schema_field *field_num(const dlg_schema_msg *m, uint32_t n) {
    for (size_t i = 0; i < m->n_fields; i++)
        if (m->fields[i].number == n)
            return &m->fields[i];
    return NULL;
}

/* Two's complement reinterpretation without implementation-defined casts. */
static int64_t u64_to_i64(uint64_t u) {
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static int32_t u32_to_i32(uint32_t u) {
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* ---- base64 ------------------------------------------------------------- */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return -1;
}

/* Decodes standard or URL-safe base64, padding optional; out must hold
 * n / 4 * 3 + 2 bytes. Returns -1 on a character outside both alphabets,
 * misplaced padding or a length no encoder produces. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t *olen) {
    size_t pad = 0;
    while (pad < n && s[n - 1 - pad] == '=')
        pad++;
    if (pad > 2 || (pad > 0 && n % 4 != 0))
        return -1;
    n -= pad;
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *olen = o;
    return 0;
}

/* Returns a malloc'd, NUL-terminated padded standard encoding (length in
 * *olen), or NULL when out of memory. */
static char *b64_encode(const uint8_t *p, size_t n, size_t *olen) {
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t len = (n + 2) / 3 * 4;
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_std[v >> 18];
        out[o++] = b64_std[(v >> 12) & 63];
        out[o++] = b64_std[(v >> 6) & 63];
        out[o++] = b64_std[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        out[o++] = b64_std[v >> 18];
        out[o++] = b64_std[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_std[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    *olen = o;
    return out;
}

/* ---- wire writer -------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wbuf;

static int wb_reserve(wbuf *b, size_t n) {
    if (n > SIZE_MAX - b->len)
        return DLG_ENOMEM;
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
        return DLG_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
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
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    return wb_put(b, tmp, n);
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

static int range_err(ctx_t *c, const json_t *v, const char *tname) {
    char b[64];
    return fail(c, DLG_EINVAL, "%s out of range for %s", show(v, b, sizeof b),
                tname);
}

/* Integral value of a number or numeric string, as a double when it is not a
 * plain integer literal; shared by the signed and unsigned readers.
 * Returns 1 when *d was set, 0 when *lit holds an integer literal string,
 * 2 when *ll holds a JSON integer, or an error. */
static int int_source(ctx_t *c, const json_t *v, double *d, const char **lit,
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
            return fail(c, DLG_EINVAL, "expected a number, got string");
        if (kind == 1) {
            *lit = s;
            return 0;
        }
        *d = strtod(s, NULL);
        return 1;
    }
    return fail(c, DLG_EINVAL, "expected a number, got %s", json_kind(v));
}

static int check_integral(ctx_t *c, const json_t *v, double d) {
    char b[64];
    if (isfinite(d) && d != trunc(d))
        return fail(c, DLG_EINVAL, "%s is not an integer", show(v, b, sizeof b));
    return 0;
}

static int get_i64(ctx_t *c, const json_t *v, int64_t lo, int64_t hi,
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

static int get_u64(ctx_t *c, const json_t *v, uint64_t hi, const char *tname,
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

static int get_double(ctx_t *c, const json_t *v, int is_float, double *out) {
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
            return fail(c, DLG_EINVAL, "expected a number, got string");
        }
    } else {
        return fail(c, DLG_EINVAL, "expected a number, got %s", json_kind(v));
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

static int enc_message(ctx_t *c, const dlg_schema_msg *m, const json_t *obj,
                       wbuf *out, int depth);

/* Appends the value of one field (no tag): the varint/fixed bytes, or the
 * length prefix and payload. is_key: v is a map key, always a string. */
static int enc_value(ctx_t *c, const dlg_schema_field *f, const json_t *v,
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
            return fail(c, DLG_EINVAL, "%s is not a boolean",
                        show(v, b, sizeof b));
        } else {
            return fail(c, DLG_EINVAL, "expected a boolean, got %s",
                        json_kind(v));
        }
        rc = wb_varint(out, u);
        break;
    case DLG_FT_ENUM:
        if (f->en == NULL)
            return fail(c, DLG_EINVAL, "enum type of field %s not resolved",
                        f->name);
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            size_t k;
            for (k = 0; k < f->en->n_values; k++)
                if (strcmp(f->en->names[k], s) == 0)
                    break;
            if (k == f->en->n_values)
                return fail(c, DLG_EINVAL, "%s is not a value of %s",
                            show(v, b, sizeof b), f->en->full_name);
            i = f->en->numbers[k];
        } else if (json_is_number(v)) {
            /* Unknown numbers pass: proto3 enums are open, and the server's
             * validator decides for closed ones. */
            if ((rc = get_i64(c, v, INT32_MIN, INT32_MAX, "int32", &i)))
                return rc;
        } else {
            return fail(c, DLG_EINVAL, "expected an enum name or number, got %s",
                        json_kind(v));
        }
        rc = wb_varint(out, (uint64_t)i);
        break;
    case DLG_FT_STRING:
        if (!json_is_string(v))
            return fail(c, DLG_EINVAL, "expected a string, got %s",
                        json_kind(v));
        rc = wb_lenbytes(out, json_string_value(v), json_string_length(v));
        break;
    case DLG_FT_BYTES: {
        if (!json_is_string(v))
            return fail(c, DLG_EINVAL, "expected a base64 string, got %s",
                        json_kind(v));
        size_t n = json_string_length(v), blen = 0;
        uint8_t *bytes = malloc(n / 4 * 3 + 3);
        if (bytes == NULL)
            return fail_nomem(c);
        if (b64_decode(json_string_value(v), n, bytes, &blen) < 0) {
            free(bytes);
            return fail(c, DLG_EINVAL, "not valid base64");
        }
        rc = wb_lenbytes(out, bytes, blen);
        free(bytes);
        break;
    }
    case DLG_FT_MESSAGE: {
        if (f->msg == NULL)
            return fail(c, DLG_EINVAL, "message type of field %s not resolved",
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
        return fail(c, DLG_EINVAL, "field %s has unsupported type %d", f->name,
                    f->type);
    }
    return rc == DLG_ENOMEM ? fail_nomem(c) : rc;
}

static int enc_map(ctx_t *c, const dlg_schema_field *f, const json_t *v,
                   wbuf *out, int depth) {
    if (!json_is_object(v))
        return fail(c, DLG_EINVAL, "expected an object, got %s", json_kind(v));
    const dlg_schema_field *kf = field_num(f->msg, 1);
    const dlg_schema_field *vf = field_num(f->msg, 2);
    if (kf == NULL || vf == NULL)
        return fail(c, DLG_EINVAL, "map entry %s lacks a key or value field",
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
        size_t old = path_push(c, "[\"%s\"]", key);
        ent.len = 0;
        if (json_is_null(val)) {
            rc = fail(c, DLG_EINVAL, "null is not allowed as a map value");
            goto fail;
        }
        if ((rc = wb_tag(&ent, 1, wire_type(kf->type))))
            goto nomem;
        if (kf->type == DLG_FT_STRING) {
            if ((rc = wb_lenbytes(&ent, key, klen)))
                goto nomem;
        } else {
            json_t *kj = json_stringn_nocheck(key, klen);
            if (kj == NULL)
                goto nomem;
            size_t at_key = path_push(c, " (map key)");
            rc = enc_value(c, kf, kj, &ent, depth, 1);
            json_decref(kj);
            if (rc)
                goto fail;
            path_pop(c, at_key);
        }
        if ((rc = wb_tag(&ent, 2, wire_type(vf->type))))
            goto nomem;
        if ((rc = enc_value(c, vf, val, &ent, depth, 0)))
            goto fail;
        if ((rc = wb_tag(out, f->number, WT_LEN)) ||
            (rc = wb_lenbytes(out, ent.p, ent.len)))
            goto nomem;
        path_pop(c, old);
    }
    free(ent.p);
    return 0;
nomem:
    rc = fail_nomem(c);
fail:
    free(ent.p);
    return rc;
}

static int enc_repeated(ctx_t *c, const dlg_schema_field *f, const json_t *v,
                        wbuf *out, int depth) {
    if (!json_is_array(v))
        return fail(c, DLG_EINVAL, "expected an array, got %s", json_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return 0;
    int wt = wire_type(f->type);
    int packed = f->packed && wt != WT_LEN;
    wbuf pk = {0};
    wbuf *dst = packed ? &pk : out;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = path_push(c, "[%zu]", i);
        if (json_is_null(e)) {
            rc = fail(c, DLG_EINVAL, "null is not allowed in a repeated field");
            goto fail;
        }
        if (!packed && (rc = wb_tag(out, f->number, wt))) {
            rc = fail_nomem(c);
            goto fail;
        }
        if ((rc = enc_value(c, f, e, dst, depth, 0)))
            goto fail;
        path_pop(c, old);
    }
    if (packed && ((rc = wb_tag(out, f->number, WT_LEN)) ||
                   (rc = wb_lenbytes(out, pk.p, pk.len)))) {
        rc = fail_nomem(c);
        goto fail;
    }
    free(pk.p);
    return 0;
fail:
    free(pk.p);
    return rc;
}

static int enc_field(ctx_t *c, const dlg_schema_field *f, const json_t *v,
                     wbuf *out, int depth) {
    if (!known_type(f->type))
        return fail(c, DLG_EINVAL, "field %s has unsupported type %d", f->name,
                    f->type);
    if (is_map(f))
        return enc_map(c, f, v, out, depth);
    if (f->label == DLG_FL_REPEATED)
        return enc_repeated(c, f, v, out, depth);
    if (wb_tag(out, f->number, wire_type(f->type)))
        return fail_nomem(c);
    return enc_value(c, f, v, out, depth, 0);
}

static int enc_message(ctx_t *c, const dlg_schema_msg *m, const json_t *obj,
                       wbuf *out, int depth) {
    if (!json_is_object(obj))
        return fail(c, DLG_EINVAL, "expected an object, got %s",
                    json_kind(obj));
    if (depth > DLG_PBJSON_MAX_DEPTH)
        return fail(c, DLG_EINVAL, "nesting deeper than %d",
                    DLG_PBJSON_MAX_DEPTH);
    size_t n = m->n_fields ? m->n_fields : 1;
    const json_t **vals = calloc(n, sizeof *vals);
    const char **keys = calloc(n, sizeof *keys);
    int rc = 0;
    if (vals == NULL || keys == NULL) {
        rc = fail_nomem(c);
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
            rc = fail(c, DLG_EINVAL, "unknown field \"%s\" in %s", key,
                      m->full_name);
            goto done;
        }
        if (keys[i] != NULL) {
            rc = fail(c, DLG_EINVAL,
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
        size_t old = path_push_name(c, keys[i]);
        rc = enc_field(c, &m->fields[i], vals[i], out, depth);
        if (rc)
            goto done;
        path_pop(c, old);
    }
done:
    free(vals);
    free(keys);
    return rc;
}

int dlg_pbjson_encode(const dlg_schema_msg *m, const json_t *in, uint8_t **out,
                      size_t *out_len, char *err, size_t errlen) {
    ctx_t c = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (m == NULL || in == NULL || out == NULL || out_len == NULL)
        return fail(&c, DLG_EINVAL, "dlg_pbjson_encode: NULL argument");
    wbuf b = {0};
    int rc = enc_message(&c, m, in, &b, 0);
    if (rc == 0 && b.p == NULL && (b.p = malloc(1)) == NULL)
        rc = fail_nomem(&c);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

/* ---- wire -> JSON ------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} rd_t;

static int rd_varint(ctx_t *c, rd_t *r, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return fail(c, DLG_EINVAL, "truncated varint");
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            return fail(c, DLG_EINVAL, "varint overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return fail(c, DLG_EINVAL, "varint longer than 10 bytes");
}

static int rd_fixed(ctx_t *c, rd_t *r, size_t n, uint64_t *out) {
    if ((size_t)(r->end - r->p) < n)
        return fail(c, DLG_EINVAL, "truncated %zu-byte value", n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *out = v;
    return 0;
}

/* Reads a length prefix and returns the payload as its own range. */
static int rd_len(ctx_t *c, rd_t *r, rd_t *sub) {
    uint64_t n;
    int rc = rd_varint(c, r, &n);
    if (rc)
        return rc;
    if (n > (uint64_t)(r->end - r->p))
        return fail(c, DLG_EINVAL, "length %" PRIu64 " runs past the end "
                    "(%zu bytes left)", n, (size_t)(r->end - r->p));
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* Raw scalar by wire type (varint, fixed64 or fixed32). */
static int rd_scalar(ctx_t *c, rd_t *r, int wt, uint64_t *out) {
    if (wt == WT_VARINT)
        return rd_varint(c, r, out);
    return rd_fixed(c, r, wt == WT_I64 ? 8 : 4, out);
}

static int rd_tag(ctx_t *c, rd_t *r, uint32_t *num, int *wt) {
    uint64_t tag;
    *num = 0;   /* GCC cannot see that fail() returns non-zero */
    *wt = 0;
    int rc = rd_varint(c, r, &tag);
    if (rc)
        return rc;
    if ((tag >> 3) == 0 || (tag >> 3) > MAX_FIELD_NUMBER)
        return fail(c, DLG_EINVAL, "invalid field number %" PRIu64, tag >> 3);
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    return 0;
}

static int skip_field(ctx_t *c, rd_t *r, uint32_t num, int wt, int depth) {
    uint64_t v;
    rd_t sub;
    switch (wt) {
    case WT_VARINT: return rd_varint(c, r, &v);
    case WT_I64: return rd_fixed(c, r, 8, &v);
    case WT_I32: return rd_fixed(c, r, 4, &v);
    case WT_LEN: return rd_len(c, r, &sub);
    case WT_SGROUP:
        if (depth >= DLG_PBJSON_MAX_DEPTH)
            return fail(c, DLG_EINVAL, "groups nested deeper than %d",
                        DLG_PBJSON_MAX_DEPTH);
        while (r->p < r->end) {
            uint32_t n2;
            int wt2, rc = rd_tag(c, r, &n2, &wt2);
            if (rc)
                return rc;
            if (wt2 == WT_EGROUP) {
                if (n2 != num)
                    return fail(c, DLG_EINVAL, "group %u ended by tag %u", num,
                                n2);
                return 0;
            }
            if ((rc = skip_field(c, r, n2, wt2, depth + 1)))
                return rc;
        }
        return fail(c, DLG_EINVAL, "group %u not terminated", num);
    case WT_EGROUP:
        return fail(c, DLG_EINVAL, "end of group %u without a start", num);
    default:
        return fail(c, DLG_EINVAL, "field %u has invalid wire type %d", num, wt);
    }
}

/* Shortest decimal that reads back as the same float, so 0.1f shows as 0.1
 * and not as 0.10000000149011612. The JSON number holds the double nearest
 * that decimal, which dlg_pbjson_dumps prints as the same short text. */
static double float_shortest(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return f;
}

static json_t *json_double(double d) {
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

/* JSON for a varint/fixed scalar; NULL only when out of memory. */
static json_t *scalar_json(const dlg_schema_field *f, uint64_t raw) {
    char buf[24];
    switch (f->type) {
    case DLG_FT_DOUBLE: {
        double d;
        memcpy(&d, &raw, sizeof d);
        return json_double(d);
    }
    case DLG_FT_FLOAT: {
        uint32_t u = (uint32_t)raw;
        float fl;
        memcpy(&fl, &u, sizeof fl);
        return isfinite(fl) ? json_real(float_shortest(fl)) : json_double(fl);
    }
    case DLG_FT_INT64:
    case DLG_FT_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, u64_to_i64(raw));
        return json_string(buf);
    case DLG_FT_SINT64:
        snprintf(buf, sizeof buf, "%" PRId64,
                 u64_to_i64((raw >> 1) ^ (uint64_t)-(raw & 1)));
        return json_string(buf);
    case DLG_FT_UINT64:
    case DLG_FT_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, raw);
        return json_string(buf);
    case DLG_FT_INT32:
    case DLG_FT_SFIXED32:
        return json_integer(u32_to_i32((uint32_t)raw));
    case DLG_FT_SINT32: {
        uint32_t u = (uint32_t)raw;
        return json_integer(u32_to_i32((u >> 1) ^ (uint32_t)-(u & 1)));
    }
    case DLG_FT_UINT32:
    case DLG_FT_FIXED32:
        return json_integer((uint32_t)raw);
    case DLG_FT_BOOL:
        return json_boolean(raw != 0);
    case DLG_FT_ENUM: {
        int32_t n = u32_to_i32((uint32_t)raw);
        for (size_t i = 0; f->en && i < f->en->n_values; i++)
            if (f->en->numbers[i] == n)
                return json_string(f->en->names[i]);
        return json_integer(n);
    }
    default:
        return json_null();
    }
}


static int dec_message(ctx_t *c, const dlg_schema_msg *m, rd_t r, json_t *obj,
                       int depth);

/* Decodes one value of f whose tag said wire type wt (already checked) into
 * a new reference in *out. */
static int dec_value(ctx_t *c, const dlg_schema_field *f, int wt, rd_t *r,
                     int depth, json_t **out) {
    rd_t sub;
    uint64_t raw;
    int rc;
    json_t *j;
    switch (f->type) {
    case DLG_FT_STRING:
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        if (!dlg_utf8_valid(sub.p, (size_t)(sub.end - sub.p)))
            return fail(c, DLG_EINVAL, "string is not valid UTF-8");
        j = json_stringn_nocheck((const char *)sub.p, (size_t)(sub.end - sub.p));
        break;
    case DLG_FT_BYTES: {
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        size_t n = 0;
        char *s = b64_encode(sub.p, (size_t)(sub.end - sub.p), &n);
        j = s ? json_stringn_nocheck(s, n) : NULL;
        free(s);
        break;
    }
    case DLG_FT_MESSAGE:
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        if ((j = json_object()) == NULL)
            break;
        if ((rc = dec_message(c, f->msg, sub, j, depth + 1))) {
            json_decref(j);
            return rc;
        }
        break;
    default:
        if ((rc = rd_scalar(c, r, wt, &raw)))
            return rc;
        j = scalar_json(f, raw);
        break;
    }
    if (j == NULL)
        return fail_nomem(c);
    *out = j;
    return 0;
}

/* What a map entry shows for a key or value missing from the wire. */
static json_t *default_json(const dlg_schema_field *f) {
    switch (f->type) {
    case DLG_FT_STRING: case DLG_FT_BYTES: return json_string("");
    case DLG_FT_MESSAGE: return json_object();
    default: return scalar_json(f, 0);
    }
}

static int wt_mismatch(ctx_t *c, const dlg_schema_field *f, int wt) {
    return fail(c, DLG_EINVAL, "wire type %d does not fit field %s "
                "(expected %d)", wt, f->name, wire_type(f->type));
}

/* Decodes one map entry from r and stores it in map (later keys win). */
static int dec_map_entry(ctx_t *c, const dlg_schema_field *f, rd_t r,
                         json_t *map, int depth) {
    const dlg_schema_field *kf = field_num(f->msg, 1);
    const dlg_schema_field *vf = field_num(f->msg, 2);
    if (kf == NULL || vf == NULL)
        return fail(c, DLG_EINVAL, "map entry %s lacks a key or value field",
                    f->msg->full_name);
    if (depth + 1 > DLG_PBJSON_MAX_DEPTH)
        return fail(c, DLG_EINVAL, "nesting deeper than %d",
                    DLG_PBJSON_MAX_DEPTH);
    json_t *kj = NULL, *vj = NULL;
    int rc = 0;
    while (r.p < r.end) {
        uint32_t num;
        int wt;
        if ((rc = rd_tag(c, &r, &num, &wt)))
            goto fail;
        const dlg_schema_field *ef = num == 1 ? kf : num == 2 ? vf : NULL;
        if (ef == NULL) {
            if ((rc = skip_field(c, &r, num, wt, 0)))
                goto fail;
            continue;
        }
        if (wt != wire_type(ef->type)) {
            rc = wt_mismatch(c, ef, wt);
            goto fail;
        }
        json_t **slot = num == 1 ? &kj : &vj;
        if (ef->type == DLG_FT_MESSAGE && *slot != NULL) {
            rd_t sub;
            if ((rc = rd_len(c, &r, &sub)) ||
                (rc = dec_message(c, ef->msg, sub, *slot, depth + 2)))
                goto fail;
            continue;
        }
        json_t *j = NULL;
        if ((rc = dec_value(c, ef, wt, &r, depth + 1, &j)))
            goto fail;
        json_decref(*slot);
        *slot = j;
    }
    if ((kj == NULL && (kj = default_json(kf)) == NULL) ||
        (vj == NULL && (vj = default_json(vf)) == NULL))
        goto nomem;
    char buf[24];
    const char *ks;
    size_t klen;
    if (json_is_string(kj)) {
        ks = json_string_value(kj);
        klen = json_string_length(kj);
    } else if (json_is_integer(kj)) {
        klen = (size_t)snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                                json_integer_value(kj));
        ks = buf;
    } else if (json_is_boolean(kj)) {
        ks = json_is_true(kj) ? "true" : "false";
        klen = strlen(ks);
    } else {
        rc = fail(c, DLG_EINVAL, "map key type %d of %s is not allowed",
                  kf->type, f->msg->full_name);
        goto fail;
    }
    rc = json_object_setn_new_nocheck(map, ks, klen, vj);
    vj = NULL;              /* stolen, even on failure */
    if (rc)
        goto nomem;
    json_decref(kj);
    return 0;
nomem:
    rc = fail_nomem(c);
fail:
    json_decref(kj);
    json_decref(vj);
    return rc;
}

/* The array or object already collected under key, or a new one stored
 * there; NULL when out of memory. */
static json_t *child(json_t *obj, const char *key, int want_array) {
    json_t *j = json_object_get(obj, key);
    if (j != NULL && (want_array ? json_is_array(j) : json_is_object(j)))
        return j;
    j = want_array ? json_array() : json_object();
    if (j == NULL || json_object_set_new(obj, key, j) < 0)
        return NULL;
    return j;
}

static int dec_field(ctx_t *c, const dlg_schema_field *f, int wt, rd_t *r,
                     json_t *obj, int depth) {
    const char *key = field_key(f);
    int ewt = wire_type(f->type);
    rd_t sub;
    json_t *j = NULL, *dst;
    int rc;
    if ((f->type == DLG_FT_MESSAGE && f->msg == NULL) ||
        (f->type == DLG_FT_ENUM && f->en == NULL))
        return fail(c, DLG_EINVAL, "type of field %s not resolved", f->name);
    if (is_map(f)) {
        if (wt != WT_LEN)
            return wt_mismatch(c, f, wt);
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        if ((dst = child(obj, key, 0)) == NULL)
            return fail_nomem(c);
        return dec_map_entry(c, f, sub, dst, depth);
    }
    if (f->label == DLG_FL_REPEATED) {
        if (wt != ewt && !(wt == WT_LEN && ewt != WT_LEN))
            return wt_mismatch(c, f, wt);
        if ((dst = child(obj, key, 1)) == NULL)
            return fail_nomem(c);
        if (wt == ewt) {
            if ((rc = dec_value(c, f, wt, r, depth, &j)))
                return rc;
            return json_array_append_new(dst, j) ? fail_nomem(c) : 0;
        }
        /* Packed run; accepted whatever the field's packed flag says, as
         * protobuf parsers do. */
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        while (sub.p < sub.end) {
            if ((rc = dec_value(c, f, ewt, &sub, depth, &j)))
                return rc;
            if (json_array_append_new(dst, j))
                return fail_nomem(c);
        }
        return 0;
    }
    if (wt != ewt)
        return wt_mismatch(c, f, wt);
    if (f->type == DLG_FT_MESSAGE) {
        /* A message seen twice merges into the first, as protobuf does. */
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        if ((dst = child(obj, key, 0)) == NULL)
            return fail_nomem(c);
        return dec_message(c, f->msg, sub, dst, depth + 1);
    }
    if ((rc = dec_value(c, f, wt, r, depth, &j)))
        return rc;
    return json_object_set_new(obj, key, j) ? fail_nomem(c) : 0;
}

static int dec_message(ctx_t *c, const dlg_schema_msg *m, rd_t r, json_t *obj,
                       int depth) {
    if (depth > DLG_PBJSON_MAX_DEPTH)
        return fail(c, DLG_EINVAL, "nesting deeper than %d",
                    DLG_PBJSON_MAX_DEPTH);
    while (r.p < r.end) {
        uint32_t num;
        int wt, rc;
        if ((rc = rd_tag(c, &r, &num, &wt)))
            return rc;
        const dlg_schema_field *f = field_num(m, num);
        if (f == NULL || !known_type(f->type)) {
            /* Unknown fields (and groups) are skipped; the server has
             * validated the event already. */
            if ((rc = skip_field(c, &r, num, wt, 0)))
                return rc;
            continue;
        }
        size_t old = path_push_name(c, field_key(f));
        rc = dec_field(c, f, wt, &r, obj, depth);
        if (rc)
            return rc;
        path_pop(c, old);
    }
    /* A zero-length packed field leaves an empty array; canonical JSON
     * omits empty repeated fields (and encode writes nothing for them). */
    const char *key;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(obj, tmp, key, val) {
        if (json_is_array(val) && json_array_size(val) == 0)
            json_object_del(obj, key);
    }
    return 0;
}

int dlg_pbjson_decode(const dlg_schema_msg *m, const uint8_t *data, size_t len,
                      json_t **out, char *err, size_t errlen) {
    ctx_t c = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (m == NULL || out == NULL || (data == NULL && len > 0))
        return fail(&c, DLG_EINVAL, "dlg_pbjson_decode: NULL argument");
    json_t *obj = json_object();
    if (obj == NULL)
        return fail_nomem(&c);
    rd_t r = {data, data ? data + len : NULL};
    int rc = dec_message(&c, m, r, obj, 0);
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

/* ---- JSON text ---------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

int dlg_pbjson_real_text(double d, char *buf, size_t len) {
    if (!isfinite(d) || len < 32)
        return DLG_EINVAL;
    /* The fewest significant digits that read back as d (17 always do). */
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, len, "%.*e", digits - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    snprintf(buf, len, "%.*e", digits - 1, d);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    /* Plain decimals where they read well (100.0, 0.015), exponents for
     * the very large and very small (1e+16, 1.5e-05), as Python prints
     * numbers. The same digits either way. */
    if (exp10 >= -4 && exp10 < 16) {
        int decimals = digits - 1 - exp10;
        snprintf(buf, len, "%.*f", decimals > 0 ? decimals : 0, d);
        /* "5" would read back as an integer: keep it a real, as jansson
         * does. */
        if (strchr(buf, '.') == NULL)
            strcat(buf, ".0");
    }
    return 0;
}

/* A string (or key) as jansson escapes it: UTF-8 kept, controls, quotes
 * and backslashes escaped. */
static void dump_string(sbuf *b, const char *s, size_t n) {
    json_t *j = json_stringn_nocheck(s, n);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (t == NULL)
        b->oom = 1;
    else
        sb_put(b, t, strlen(t));
    free(t);
    json_decref(j);
}

static void dump_value(sbuf *b, const json_t *v) {
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        sb_put(b, "{", 1);
        json_object_foreach((json_t *)v, key, val) {
            if (!first)
                sb_put(b, ",", 1);
            first = 0;
            dump_string(b, key, json_object_iter_key_len(json_object_key_to_iter(key)));
            sb_put(b, ":", 1);
            dump_value(b, val);
        }
        sb_put(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        sb_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                sb_put(b, ",", 1);
            dump_value(b, json_array_get(v, i));
        }
        sb_put(b, "]", 1);
        break;
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_put(b, num, strlen(num));
        break;
    case JSON_REAL:
        /* jansson keeps only finite reals. */
        if (dlg_pbjson_real_text(json_real_value(v), num, sizeof num) != 0)
            snprintf(num, sizeof num, "null");
        sb_put(b, num, strlen(num));
        break;
    case JSON_TRUE: sb_put(b, "true", 4); break;
    case JSON_FALSE: sb_put(b, "false", 5); break;
    default: sb_put(b, "null", 4); break;
    }
}

char *dlg_pbjson_dumps(const json_t *v) {
    sbuf b = {0};
    if (v == NULL)
        return NULL;
    dump_value(&b, v);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int dlg_pbjson_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len) {
    uint8_t *bytes = malloc(n / 4 * 3 + 3);
    size_t blen = 0;
    if (bytes == NULL)
        return DLG_ENOMEM;
    if (b64_decode(s, n, bytes, &blen) < 0) {
        free(bytes);
        return DLG_EINVAL;
    }
    *out = bytes;
    *len = blen;
    return 0;
}
