/* dlg_varint.h: protobuf base-128 varints, the one implementation every
 * hand-written wire reader and writer of the tree uses (the schema
 * validator, the string checker, the client's event decoder, the history
 * frame packer, dialoguectl's transcoder). Header-only: these sit on hot
 * paths and compile to a few instructions. */
#ifndef DLG_VARINT_H
#define DLG_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Most bytes a 64-bit varint takes. */
#define DLG_VARINT_MAX 10

/* What dlg_varint_get found. */
enum {
    DLG_VARINT_OK = 0,
    DLG_VARINT_TRUNC,  /* the bytes ended before the varint did */
    DLG_VARINT_LONG,   /* no last byte within the byte limit */
    DLG_VARINT_OVER,   /* ended at the 10th byte, which is above 1: the value
                        * does not fit 64 bits (protobuf-c keeps the low 64;
                        * *out holds them and *pp is advanced, as for OK) */
};

/* Reads a varint of at most max bytes (1..DLG_VARINT_MAX) from *pp, not
 * past end. On DLG_VARINT_OK (and DLG_VARINT_OVER) *out gets the value and
 * *pp moves past it; on the other results both are unchanged. Callers that
 * mirror protobuf-c give 5 for keys and lengths, 10 for values. */
static inline int dlg_varint_get_max(const uint8_t **pp, const uint8_t *end, unsigned max,
                                     uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0; i < max; i++) {
        if (p == end)
            return DLG_VARINT_TRUNC;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return i == DLG_VARINT_MAX - 1 && b > 1 ? DLG_VARINT_OVER : DLG_VARINT_OK;
        }
    }
    return DLG_VARINT_LONG;
}

/* dlg_varint_get_max with DLG_VARINT_MAX bytes: a 64-bit value. */
static inline int dlg_varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    return dlg_varint_get_max(pp, end, DLG_VARINT_MAX, out);
}

/* Bytes v takes as a varint (1..DLG_VARINT_MAX). */
static inline size_t dlg_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes v at p, which must have dlg_varint_len(v) bytes of room; returns
 * the byte after it. */
static inline uint8_t *dlg_varint_put(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

#endif
