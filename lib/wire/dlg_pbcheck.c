/* dlg_pbcheck.c: string checks on protobuf wire bytes (see dlg_pbcheck.h). */
#include "dlg_pbcheck.h"

#include <stdio.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_utf8.h"
#include "dlg_varint.h"

typedef struct rd {
    const uint8_t *p, *end;
} rd;

/* A varint as protobuf-c reads it: at most 10 bytes, the low 64 bits
 * kept. */
static int varint(rd *r, uint64_t *v) {
    int rc = dlg_varint_get(&r->p, r->end, v);
    return rc == DLG_VARINT_OK || rc == DLG_VARINT_OVER ? 0 : DLG_EPROTO;
}

/* The field numbered num: fields are sorted by number, so with the dense
 * numbering our messages use it sits at num - 1 (one load, on every
 * Trigger); protobuf-c's search for the others. */
static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *d,
                                                uint64_t num) {
    if (num >= 1 && num <= d->n_fields && d->fields[num - 1].id == num)
        return &d->fields[num - 1];
    return num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
}

static int check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, int depth,
                 char *err, size_t errlen) {
    if (depth > 32)
        return DLG_EPROTO;
    if (len == 0)
        return 0; /* an empty message (buf may be NULL: no NULL + 0 below) */
    rd r = {buf, buf + len};
    while (r.p < r.end) {
        uint64_t key, n;
        if (varint(&r, &key) != 0)
            return DLG_EPROTO;
        unsigned wt = key & 7;
        uint64_t num = key >> 3;
        const ProtobufCFieldDescriptor *f = field_of(d, num);
        switch (wt) {
        case 0:
            if (varint(&r, &n) != 0)
                return DLG_EPROTO;
            break;
        case 1:
        case 5: {
            size_t w = wt == 1 ? 8 : 4;
            if ((size_t)(r.end - r.p) < w)
                return DLG_EPROTO;
            r.p += w;
            break;
        }
        case 2: {
            if (varint(&r, &n) != 0 || n > (uint64_t)(r.end - r.p))
                return DLG_EPROTO;
            const uint8_t *v = r.p;
            r.p += n;
            if (f == NULL)
                break;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                const char *why = memchr(v, 0, n) ? "holds a NUL byte"
                                  : !dlg_utf8_valid(v, n) ? "is not valid UTF-8" : NULL;
                if (why) {
                    dlg_errf(err, errlen, "%s.%s: %s", d->short_name, f->name, why);
                    return DLG_EINVAL;
                }
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = check(f->descriptor, v, n, depth + 1, err, errlen);
                if (rc != 0)
                    return rc;
            }
            break;
        }
        default: /* groups: protobuf-c refuses them in proto3 messages */
            return DLG_EPROTO;
        }
    }
    return 0;
}

int dlg_pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                         char *err, size_t errlen) {
    return check(d, buf, len, 0, err, errlen);
}
