/* dlg_schema_validate.c: the hand-written wire-format walker that
 * validates an event payload against the registry's message layout and the
 * (dialogue.v1.rule) bounds, naming the offending field path on error. */
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_schema.h"
#include "dlg_schema_int.h"
#include "dlg_utf8.h"
#include "dlg_varint.h"

#define MAX_DEPTH 32            /* nested messages below the event message */

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

static void fmt_float(char *buf, size_t n, float f) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return;
    }
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
        if (dlg_varint_get(&p, end, &tag) != DLG_VARINT_OK)
            break;
        int same = (tag >> 3) == fr->f->number;
        switch (tag & 7) {
        case 0:
            if (dlg_varint_get(&p, end, &v) != DLG_VARINT_OK)
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
            if (dlg_varint_get(&p, end, &v) != DLG_VARINT_OK || v > (uint64_t)(end - p))
                return n;
            if (same)
                n += dlg__schema_is_numeric(fr->f->type) ? packed_count(fr->f->type, p, (size_t)v) : 1;
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
    /* DLG_VARINT_OVER too: a 10th byte above 1 is more than 64 bits. */
    return fail(c, nframes, why == DLG_VARINT_TRUNC ? "truncated varint at byte %zu"
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
        dlg__schema_fmt_double(b, sizeof(b), f->min);
        return fail(c, nf, "%lld is below min %s", (long long)v, b);
    }
    if (f->has_max && i64_above(v, f->max)) {
        dlg__schema_fmt_double(b, sizeof(b), f->max);
        return fail(c, nf, "%lld is above max %s", (long long)v, b);
    }
    return 0;
}

static int check_unsigned(vctx *c, const dlg_schema_field *f, uint64_t v, int nf) {
    char b[40];
    if (f->has_min && u64_below(v, f->min)) {
        dlg__schema_fmt_double(b, sizeof(b), f->min);
        return fail(c, nf, "%llu is below min %s", (unsigned long long)v, b);
    }
    if (f->has_max && u64_above(v, f->max)) {
        dlg__schema_fmt_double(b, sizeof(b), f->max);
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
        dlg__schema_fmt_double(a, sizeof(a), v);
    dlg__schema_fmt_double(b, sizeof(b), below ? f->min : f->max);
    return fail(c, nf, "%s is %s %s", a, below ? "below min" : "above max", b);
}

static int enum_defined(const dlg_schema_enum *e, int32_t v) {
    const enum_impl *ei = (const enum_impl *)e;
    return bsearch(&v, ei->sorted, e->n_values, sizeof(int32_t), dlg__schema_cmp_i32) != NULL;
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
            int r = dlg_varint_get(&q, end, &raw);
            if (r != DLG_VARINT_OK)
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
        int r = dlg_varint_get(&p, end, &tag);
        if (r != DLG_VARINT_OK)
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
            if ((r = dlg_varint_get(&p, end, &v)) != DLG_VARINT_OK)
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
            if ((r = dlg_varint_get(&p, end, &v)) != DLG_VARINT_OK)
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
