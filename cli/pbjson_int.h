/* pbjson_int.h: what the parts of the transcoder share (pbjson.c): the
 * error context that names the JSON path of a bad value, field lookups and
 * wire types. Not for use outside cli/pbjson*.c. */
#ifndef DLG_PBJSON_INT_H
#define DLG_PBJSON_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dlg_base64.h"
#include "dlg_schema.h"

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
} pbjson_ctx;

/* Writes "<path>: <fmt...>" into c's error buffer (if any) and returns rc. */
int dlg__pbjson_fail(pbjson_ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* dlg__pbjson_fail(c, DLG_ENOMEM, "out of memory"). */
int dlg__pbjson_fail_nomem(pbjson_ctx *c);

/* Path segments are appended in place and popped by restoring the old
 * length (which push returns); a path longer than the buffer is cut, which
 * only shortens errors. push_name adds ".name" (or "name" at the top). */
size_t dlg__pbjson_path_push(pbjson_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t dlg__pbjson_path_push_name(pbjson_ctx *c, const char *name);
void dlg__pbjson_path_pop(pbjson_ctx *c, size_t old);

/* The WT_* a value of this DLG_FT_* type is written with. */
int dlg__pbjson_wire_type(int type);
/* Whether the transcoder handles this DLG_FT_* type (every type but group). */
int dlg__pbjson_known_type(int type);
/* Whether f is a map (a repeated synthetic map-entry message). */
int dlg__pbjson_is_map(const dlg_schema_field *f);
/* m's field with this number, or NULL. */
const dlg_schema_field *dlg__pbjson_field_num(const dlg_schema_msg *m, uint32_t n);

/* How bytes fields and --base64 input are read: standard or URL-safe
 * alphabet, padding optional (dlg_base64.h). */
#define DLG_PBJSON_B64 (DLG_B64_STD | DLG_B64_URL | DLG_B64_PAD)

#endif
