/* dlg_schema_int.h: what the registry (dlg_schema.c) and the validator
 * (dlg_schema_validate.c) share inside the schema module: the layouts behind
 * the public structs and a few helpers. Not for use outside lib/schema. */
#ifndef DLG_SCHEMA_INT_H
#define DLG_SCHEMA_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dlg_schema.h"

#define MAX_FIELD_NUMBER 536870911u     /* 2^29 - 1 */

/* The public structs come first so the pointers handed out are also
 * pointers to these (C11 6.7.2.1p15); the rest is the module's own. */
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

/* Whether a field of this DLG_FT_* type is a number (a varint or fixed
 * width value, so packable and subject to min/max). */
int dlg__schema_is_numeric(int type);

/* Formats a rule bound or a floating value into buf (n bytes): integers in
 * full (bounds of int64 fields are often large), anything else in the
 * shortest form that reads back to the same double. */
void dlg__schema_fmt_double(char *buf, size_t n, double d);

/* qsort/bsearch order of int32_t values (enum numbers). */
int dlg__schema_cmp_i32(const void *a, const void *b);

#endif
