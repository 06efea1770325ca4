/* pbjson_decode.c: protobuf wire -> canonical JSON for a message known at
 * run time (dlg_pbjson_decode), with a bounds-checked wire reader. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_base64.h"
#include "dlg_err.h"
#include "dlg_varint.h"
#include "dlg_utf8.h"
#include "pbjson.h"
#include "pbjson_int.h"

/* ---- helpers ---------------------------------------------------------------- */

static const char *field_key(const dlg_schema_field *f) {
    return f->json_name ? f->json_name : f->name;
}

/* Two's complement reinterpretation without implementation-defined casts. */
static int64_t u64_to_i64(uint64_t u) {
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static int32_t u32_to_i32(uint32_t u) {
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* ---- wire -> JSON ------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} rd_t;

static int rd_varint(pbjson_ctx *c, rd_t *r, uint64_t *out) {
    switch (dlg_varint_get(&r->p, r->end, out)) {
    case DLG_VARINT_OK:
        return 0;
    case DLG_VARINT_TRUNC:
        return dlg__pbjson_fail(c, DLG_EINVAL, "truncated varint");
    default:
        /* Ten bytes and still going, or a tenth above 1: either way the
         * value does not fit 64 bits. */
        return dlg__pbjson_fail(c, DLG_EINVAL, "varint overflows 64 bits");
    }
}

static int rd_fixed(pbjson_ctx *c, rd_t *r, size_t n, uint64_t *out) {
    if ((size_t)(r->end - r->p) < n)
        return dlg__pbjson_fail(c, DLG_EINVAL, "truncated %zu-byte value", n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *out = v;
    return 0;
}

/* Reads a length prefix and returns the payload as its own range. */
static int rd_len(pbjson_ctx *c, rd_t *r, rd_t *sub) {
    uint64_t n;
    int rc = rd_varint(c, r, &n);
    if (rc)
        return rc;
    if (n > (uint64_t)(r->end - r->p))
        return dlg__pbjson_fail(c, DLG_EINVAL, "length %" PRIu64 " runs past the end "
                    "(%zu bytes left)", n, (size_t)(r->end - r->p));
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* Raw scalar by wire type (varint, fixed64 or fixed32). */
static int rd_scalar(pbjson_ctx *c, rd_t *r, int wt, uint64_t *out) {
    if (wt == WT_VARINT)
        return rd_varint(c, r, out);
    return rd_fixed(c, r, wt == WT_I64 ? 8 : 4, out);
}

static int rd_tag(pbjson_ctx *c, rd_t *r, uint32_t *num, int *wt) {
    uint64_t tag;
    *num = 0;   /* GCC cannot see that dlg__pbjson_fail() returns non-zero */
    *wt = 0;
    int rc = rd_varint(c, r, &tag);
    if (rc)
        return rc;
    if ((tag >> 3) == 0 || (tag >> 3) > MAX_FIELD_NUMBER)
        return dlg__pbjson_fail(c, DLG_EINVAL, "invalid field number %" PRIu64, tag >> 3);
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    return 0;
}

static int skip_field(pbjson_ctx *c, rd_t *r, uint32_t num, int wt, int depth) {
    uint64_t v;
    rd_t sub;
    switch (wt) {
    case WT_VARINT: return rd_varint(c, r, &v);
    case WT_I64: return rd_fixed(c, r, 8, &v);
    case WT_I32: return rd_fixed(c, r, 4, &v);
    case WT_LEN: return rd_len(c, r, &sub);
    case WT_SGROUP:
        if (depth >= DLG_PBJSON_MAX_DEPTH)
            return dlg__pbjson_fail(c, DLG_EINVAL, "groups nested deeper than %d",
                        DLG_PBJSON_MAX_DEPTH);
        while (r->p < r->end) {
            uint32_t n2;
            int wt2, rc = rd_tag(c, r, &n2, &wt2);
            if (rc)
                return rc;
            if (wt2 == WT_EGROUP) {
                if (n2 != num)
                    return dlg__pbjson_fail(c, DLG_EINVAL, "group %u ended by tag %u", num,
                                n2);
                return 0;
            }
            if ((rc = skip_field(c, r, n2, wt2, depth + 1)))
                return rc;
        }
        return dlg__pbjson_fail(c, DLG_EINVAL, "group %u not terminated", num);
    case WT_EGROUP:
        return dlg__pbjson_fail(c, DLG_EINVAL, "end of group %u without a start", num);
    default:
        return dlg__pbjson_fail(c, DLG_EINVAL, "field %u has invalid wire type %d", num, wt);
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

static int dec_message(pbjson_ctx *c, const dlg_schema_msg *m, rd_t r, json_t *obj,
                       int depth);

/* Decodes one value of f whose tag said wire type wt (already checked) into
 * a new reference in *out. */
static int dec_value(pbjson_ctx *c, const dlg_schema_field *f, int wt, rd_t *r,
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
            return dlg__pbjson_fail(c, DLG_EINVAL, "string is not valid UTF-8");
        j = json_stringn_nocheck((const char *)sub.p, (size_t)(sub.end - sub.p));
        break;
    case DLG_FT_BYTES: {
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        size_t n = 0;
        char *s = dlg_base64_encode(sub.p, (size_t)(sub.end - sub.p), DLG_B64_PAD, &n);
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
        return dlg__pbjson_fail_nomem(c);
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

static int wt_mismatch(pbjson_ctx *c, const dlg_schema_field *f, int wt) {
    return dlg__pbjson_fail(c, DLG_EINVAL, "wire type %d does not fit field %s "
                "(expected %d)", wt, f->name, dlg__pbjson_wire_type(f->type));
}

/* Decodes one map entry from r and stores it in map (later keys win). */
static int dec_map_entry(pbjson_ctx *c, const dlg_schema_field *f, rd_t r,
                         json_t *map, int depth) {
    const dlg_schema_field *kf = dlg__pbjson_field_num(f->msg, 1);
    const dlg_schema_field *vf = dlg__pbjson_field_num(f->msg, 2);
    if (kf == NULL || vf == NULL)
        return dlg__pbjson_fail(c, DLG_EINVAL, "map entry %s lacks a key or value field",
                    f->msg->full_name);
    if (depth + 1 > DLG_PBJSON_MAX_DEPTH)
        return dlg__pbjson_fail(c, DLG_EINVAL, "nesting deeper than %d",
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
        if (wt != dlg__pbjson_wire_type(ef->type)) {
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
        rc = dlg__pbjson_fail(c, DLG_EINVAL, "map key type %d of %s is not allowed",
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
    rc = dlg__pbjson_fail_nomem(c);
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

static int dec_field(pbjson_ctx *c, const dlg_schema_field *f, int wt, rd_t *r,
                     json_t *obj, int depth) {
    const char *key = field_key(f);
    int ewt = dlg__pbjson_wire_type(f->type);
    rd_t sub;
    json_t *j = NULL, *dst;
    int rc;
    if ((f->type == DLG_FT_MESSAGE && f->msg == NULL) ||
        (f->type == DLG_FT_ENUM && f->en == NULL))
        return dlg__pbjson_fail(c, DLG_EINVAL, "type of field %s not resolved", f->name);
    if (dlg__pbjson_is_map(f)) {
        if (wt != WT_LEN)
            return wt_mismatch(c, f, wt);
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        if ((dst = child(obj, key, 0)) == NULL)
            return dlg__pbjson_fail_nomem(c);
        return dec_map_entry(c, f, sub, dst, depth);
    }
    if (f->label == DLG_FL_REPEATED) {
        if (wt != ewt && !(wt == WT_LEN && ewt != WT_LEN))
            return wt_mismatch(c, f, wt);
        if ((dst = child(obj, key, 1)) == NULL)
            return dlg__pbjson_fail_nomem(c);
        if (wt == ewt) {
            if ((rc = dec_value(c, f, wt, r, depth, &j)))
                return rc;
            return json_array_append_new(dst, j) ? dlg__pbjson_fail_nomem(c) : 0;
        }
        /* Packed run; accepted whatever the field's packed flag says, as
         * protobuf parsers do. */
        if ((rc = rd_len(c, r, &sub)))
            return rc;
        while (sub.p < sub.end) {
            if ((rc = dec_value(c, f, ewt, &sub, depth, &j)))
                return rc;
            if (json_array_append_new(dst, j))
                return dlg__pbjson_fail_nomem(c);
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
            return dlg__pbjson_fail_nomem(c);
        return dec_message(c, f->msg, sub, dst, depth + 1);
    }
    if ((rc = dec_value(c, f, wt, r, depth, &j)))
        return rc;
    return json_object_set_new(obj, key, j) ? dlg__pbjson_fail_nomem(c) : 0;
}

static int dec_message(pbjson_ctx *c, const dlg_schema_msg *m, rd_t r, json_t *obj,
                       int depth) {
    if (depth > DLG_PBJSON_MAX_DEPTH)
        return dlg__pbjson_fail(c, DLG_EINVAL, "nesting deeper than %d",
                    DLG_PBJSON_MAX_DEPTH);
    while (r.p < r.end) {
        uint32_t num;
        int wt, rc;
        if ((rc = rd_tag(c, &r, &num, &wt)))
            return rc;
        const dlg_schema_field *f = dlg__pbjson_field_num(m, num);
        if (f == NULL || !dlg__pbjson_known_type(f->type)) {
            /* Unknown fields (and groups) are skipped; the server has
             * validated the event already. */
            if ((rc = skip_field(c, &r, num, wt, 0)))
                return rc;
            continue;
        }
        size_t old = dlg__pbjson_path_push_name(c, field_key(f));
        rc = dec_field(c, f, wt, &r, obj, depth);
        if (rc)
            return rc;
        dlg__pbjson_path_pop(c, old);
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
    pbjson_ctx c = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (m == NULL || out == NULL || (data == NULL && len > 0))
        return dlg__pbjson_fail(&c, DLG_EINVAL, "dlg_pbjson_decode: NULL argument");
    json_t *obj = json_object();
    if (obj == NULL)
        return dlg__pbjson_fail_nomem(&c);
    rd_t r = {data, data ? data + len : NULL};
    int rc = dec_message(&c, m, r, obj, 0);
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}
