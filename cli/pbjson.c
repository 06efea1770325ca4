/* pbjson.c: what both directions of the protobuf <-> JSON transcoder
 * share: the error context (JSON paths), field lookups, wire types, and
 * dlg_pbjson_base64_decode (`dialoguectl trigger --base64`; base64 itself
 * is lib/wire/dlg_base64.c). Encoding is
 * pbjson_encode.c, decoding pbjson_decode.c, JSON text pbjson_text.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "dlg_base64.h"
#include "dlg_err.h"
#include "pbjson.h"
#include "pbjson_int.h"

/* ---- errors, paths, fields ----------------------------------------------- */

int dlg__pbjson_fail(pbjson_ctx *c, int rc, const char *fmt, ...) {
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

int dlg__pbjson_fail_nomem(pbjson_ctx *c) {
    return dlg__pbjson_fail(c, DLG_ENOMEM, "out of memory");
}

size_t dlg__pbjson_path_push(pbjson_ctx *c, const char *fmt, ...) {
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

size_t dlg__pbjson_path_push_name(pbjson_ctx *c, const char *name) {
    return dlg__pbjson_path_push(c, c->plen ? ".%s" : "%s", name);
}

void dlg__pbjson_path_pop(pbjson_ctx *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

int dlg__pbjson_wire_type(int type) {
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

int dlg__pbjson_known_type(int type) {
    return type >= DLG_FT_DOUBLE && type <= DLG_FT_SINT64 &&
           type != DLG_FT_GROUP;
}

int dlg__pbjson_is_map(const dlg_schema_field *f) {
    return f->label == DLG_FL_REPEATED && f->type == DLG_FT_MESSAGE &&
           f->msg != NULL && f->msg->map_entry;
}

const dlg_schema_field *dlg__pbjson_field_num(const dlg_schema_msg *m, uint32_t n) {
    for (size_t i = 0; i < m->n_fields; i++)
        if (m->fields[i].number == n)
            return &m->fields[i];
    return NULL;
}

/* ---- base64 ------------------------------------------------------------- */

int dlg_pbjson_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len) {
    uint8_t *bytes = malloc(DLG_BASE64_DECODED_MAX(n) + 1);
    size_t blen = 0;
    if (bytes == NULL)
        return DLG_ENOMEM;
    if (dlg_base64_decode(s, n, DLG_PBJSON_B64, bytes, &blen) != 0) {
        free(bytes);
        return DLG_EINVAL;
    }
    *out = bytes;
    *len = blen;
    return 0;
}
