/* dlg_frame.c: Length-Prefixed-Message decoder and packer (see dlg_frame.h). */
#include "dlg_frame.h"

#include <stdlib.h>
#include <string.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

static uint32_t get_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void dlg_frame_put_header(uint8_t hdr[DLG_FRAME_HDR], uint32_t len) {
    hdr[0] = 0;
    hdr[1] = (uint8_t)(len >> 24);
    hdr[2] = (uint8_t)(len >> 16);
    hdr[3] = (uint8_t)(len >> 8);
    hdr[4] = (uint8_t)len;
}

static uint32_t max_of(const dlg_frame_dec *d) {
    return d->max_frame ? d->max_frame : DLG_FRAME_DEFAULT_MAX;
}

/* Validates a complete header; on success body_len is set. */
static int check_header(dlg_frame_dec *d) {
    d->body_len = get_be32(d->hdr + 1);
    if (d->hdr[0] != 0)
        return DLG_EFLAG;
    if (d->body_len > max_of(d))
        return DLG_ETOOBIG;
    return 0;
}

int dlg_frame_dec_feed(dlg_frame_dec *d, const uint8_t *data, size_t len,
                       dlg_frame_cb cb, void *ctx, size_t *consumed) {
    size_t pos = 0;
    int rc = 0;

    while (pos < len) {
        if (d->hdr_have < DLG_FRAME_HDR) {
            /* Fast path: a whole header and body inside data, nothing buffered. */
            if (d->hdr_have == 0 && len - pos >= DLG_FRAME_HDR) {
                memcpy(d->hdr, data + pos, DLG_FRAME_HDR);
                if ((rc = check_header(d)) != 0)
                    goto out;
                if (len - pos - DLG_FRAME_HDR >= d->body_len) {
                    pos += DLG_FRAME_HDR;
                    const uint8_t *body = data + pos;
                    pos += d->body_len;
                    if ((rc = cb(ctx, body, d->body_len)) != 0)
                        goto out;
                    continue;
                }
                d->hdr_have = DLG_FRAME_HDR;
                pos += DLG_FRAME_HDR;
                d->body_have = 0;
            } else {
                size_t n = DLG_FRAME_HDR - d->hdr_have;
                if (n > len - pos)
                    n = len - pos;
                memcpy(d->hdr + d->hdr_have, data + pos, n);
                d->hdr_have += (uint32_t)n;
                pos += n;
                if (d->hdr_have < DLG_FRAME_HDR)
                    break;
                if ((rc = check_header(d)) != 0)
                    goto out;
                d->body_have = 0;
            }
        }
        size_t want = d->body_len - d->body_have;
        size_t n = want < len - pos ? want : len - pos;
        /* Memory follows the bytes that arrived, never the announced
         * length: a peer that sends only a large header costs nothing. */
        if (d->body_have + n > d->body_cap) {
            size_t cap = d->body_cap ? d->body_cap * 2 : 4096;
            if (cap < d->body_have + n)
                cap = d->body_have + n;
            if (cap > d->body_len)
                cap = d->body_len;
            uint8_t *nb = dlg_realloc(d->body, cap);
            if (nb == NULL) {
                rc = DLG_ENOMEM;
                goto out;
            }
            d->body = nb;
            d->body_cap = cap;
        }
        if (n > 0) {
            memcpy(d->body + d->body_have, data + pos, n);
            d->body_have += (uint32_t)n;
            pos += n;
        }
        if (d->body_have == d->body_len) {
            d->hdr_have = 0;
            rc = cb(ctx, d->body, d->body_len);
            /* A large one-off frame should not pin its buffer forever. */
            if (d->body_cap > 64 * 1024) {
                free(d->body);
                d->body = NULL;
                d->body_cap = 0;
            }
            if (rc != 0)
                goto out;
        }
    }
out:
    if (consumed)
        *consumed = pos;
    return rc;
}

uint32_t dlg_frame_dec_bad_len(const dlg_frame_dec *d) {
    return get_be32(d->hdr + 1);
}

size_t dlg_frame_dec_pending(const dlg_frame_dec *d) {
    return d->hdr_have + (d->hdr_have == DLG_FRAME_HDR ? d->body_have : 0);
}

void dlg_frame_dec_free(dlg_frame_dec *d) {
    free(d->body);
    d->body = NULL;
    d->body_cap = 0;
    d->hdr_have = 0;
    d->body_have = 0;
}

int dlg_frame_pack(const ProtobufCMessage *msg, uint32_t max, dlg_buf **out) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > UINT32_MAX || (max != 0 && n > max))
        return DLG_ETOOBIG;
    dlg_buf *b = dlg_buf_new(DLG_FRAME_HDR + n);
    if (b == NULL)
        return DLG_ENOMEM;
    dlg_frame_put_header(b->data, (uint32_t)n);
    size_t w = protobuf_c_message_pack(msg, b->data + DLG_FRAME_HDR);
    if (w != n) {
        dlg_buf_unref(b);
        return DLG_EINTERNAL;
    }
    *out = b;
    return 0;
}
