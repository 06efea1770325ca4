/* evdec.c: the hand-written protobuf reader behind dlg__evdec, for
 * ServerFrame{event} only. Where protobuf-c 1.4 is lenient or odd, this
 * follows it or, when that is awkward, refuses and lets protobuf-c decide:
 * a 0 only costs the fast path, a 1 that protobuf-c would not give is a bug. */
#include <string.h>

#include "dlg_varint.h"
#include "evdec.h"

/* Field numbers of proto/dialogue/v1/protocol.proto. test_client_evdec
 * checks them against the generated descriptors. */
enum {
    FRAME_REQUEST_ID = 1,
    FRAME_MSG_FIRST = 2,  /* ServerFrame.msg: welcome .. gap */
    FRAME_EVENT = 5,
    FRAME_MSG_LAST = 13,
    EV_ROOM = 1,
    EV_EVENT,
    EV_DATA,
    EV_FROM,
    EV_TS_MS,
    EV_SEQ,
    EV_EPOCH,
    EV_FROM_KIND,
};

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct rd {
    const uint8_t *p, *end;
} rd;

/* A value varint: protobuf-c reads up to 10 bytes and keeps the low 64
 * bits of what they spell (a tenth byte above 1 is not refused). */
static int get_varint(rd *r, uint64_t *v) {
    int rc = dlg_varint_get(&r->p, r->end, v);
    return rc == DLG_VARINT_OK || rc == DLG_VARINT_OVER;
}

/* A key: protobuf-c takes at most 5 bytes. Field 0 is refused here even
 * where protobuf-c would keep it as an unknown field (an over-long zero
 * key): no encoder writes one, and refusing is always safe. */
static int get_tag(rd *r, uint32_t *field, unsigned *wt) {
    uint64_t x;
    if (dlg_varint_get_max(&r->p, r->end, 5, &x) != DLG_VARINT_OK || (x >> 3) == 0)
        return 0;
    *field = (uint32_t)(x >> 3);
    *wt = (unsigned)(x & 7);
    return 1;
}

/* A length prefix: at most 5 bytes, as protobuf-c, and the bytes it
 * announces must all be there. (protobuf-c does that sum in 32 bits; a
 * length that wraps it is refused here, so the two never disagree on 1.) */
static int get_len(rd *r, size_t *n) {
    uint64_t x;
    if (dlg_varint_get_max(&r->p, r->end, 5, &x) != DLG_VARINT_OK ||
        x > (uint64_t)(r->end - r->p))
        return 0;
    *n = (size_t)x;
    return 1;
}

/* Steps over a field this decoder has no use for. Groups (3, 4) and the
 * unassigned wire types 6 and 7 make protobuf-c refuse the whole message. */
static int skip(rd *r, unsigned wt) {
    uint64_t v;
    size_t n;
    switch (wt) {
    case WT_VARINT:
        return get_varint(r, &v);
    case WT_I64:
        n = 8;
        break;
    case WT_LEN:
        if (!get_len(r, &n))
            return 0;
        break;
    case WT_I32:
        n = 4;
        break;
    default:
        return 0;
    }
    if (n > (size_t)(r->end - r->p))
        return 0;
    r->p += n;
    return 1;
}

static int get_str(rd *r, unsigned wt, char *dst) {
    size_t n;
    if (wt != WT_LEN || !get_len(r, &n) || n > DLG__EVDEC_STR_MAX)
        return 0;
    memcpy(dst, r->p, n);
    dst[n] = '\0';
    r->p += n;
    return 1;
}

static int get_u64(rd *r, unsigned wt, uint64_t *dst) {
    return wt == WT_VARINT && get_varint(r, dst);
}

/* One Event message. Every call starts from the defaults: protobuf-c does
 * not merge a repeated oneof member into the earlier one, it replaces it. */
static int event_decode(const uint8_t *p, size_t len, dlg__event_view *out) {
    rd r = {p, p + len};
    out->room[0] = out->event[0] = out->from[0] = '\0';
    out->data = NULL;
    out->len = 0;
    out->ts_ms = out->seq = out->epoch = 0;
    out->from_kind = 0;
    while (r.p < r.end) {
        uint32_t field;
        unsigned wt;
        size_t n;
        if (!get_tag(&r, &field, &wt))
            return 0;
        int ok;
        switch (field) {
        case EV_ROOM:
            ok = get_str(&r, wt, out->room);
            break;
        case EV_EVENT:
            ok = get_str(&r, wt, out->event);
            break;
        case EV_FROM:
            ok = get_str(&r, wt, out->from);
            break;
        case EV_DATA:
            ok = wt == WT_LEN && get_len(&r, &n);
            if (ok) {
                out->data = n > 0 ? r.p : NULL;
                out->len = n;
                r.p += n;
            }
            break;
        case EV_TS_MS:
            ok = get_u64(&r, wt, &out->ts_ms);
            break;
        case EV_SEQ:
            ok = get_u64(&r, wt, &out->seq);
            break;
        case EV_EPOCH:
            ok = get_u64(&r, wt, &out->epoch);
            break;
        case EV_FROM_KIND: {
            /* An enum: protobuf-c keeps the low 32 bits of the varint. */
            uint64_t k = 0;
            ok = get_u64(&r, wt, &k);
            out->from_kind = (int)(int32_t)(uint32_t)k;
            break;
        }
        default:
            ok = skip(&r, wt);
            break;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

int dlg__evdec(const uint8_t *body, size_t len, dlg__event_view *out) {
    uint64_t request_id = 0;
    int have_event = 0;
    /* Also keeps body + len away from a null pointer. */
    if (body == NULL)
        return 0;
    rd r = {body, body + len};
    while (r.p < r.end) {
        uint32_t field;
        unsigned wt;
        size_t n;
        if (!get_tag(&r, &field, &wt))
            return 0;
        if (field == FRAME_REQUEST_ID) {
            if (!get_u64(&r, wt, &request_id))
                return 0;
        } else if (field == FRAME_EVENT) {
            if (wt != WT_LEN || !get_len(&r, &n) || !event_decode(r.p, n, out))
                return 0;
            r.p += n;
            have_event = 1;
        } else if (field >= FRAME_MSG_FIRST && field <= FRAME_MSG_LAST) {
            /* Another member of msg, before or after the event: which one
             * wins, and whether its bytes parse, is protobuf-c's call. */
            return 0;
        } else if (!skip(&r, wt)) {
            return 0;
        }
    }
    return have_event && request_id == 0;
}
