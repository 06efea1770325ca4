/* dlg_frame.h: the wire framing, gRPC's Length-Prefixed-Message: a flag byte
 * (0 = uncompressed, anything else is refused), a 4-byte big-endian length,
 * then one protobuf message. An incremental decoder and a packer. */
#ifndef DLG_FRAME_H
#define DLG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "dlg_buf.h"

#define DLG_FRAME_HDR 5
#define DLG_FRAME_DEFAULT_MAX (1u << 20)

/* Called once per complete frame body. body is valid only during the call.
 * A non-zero return stops decoding and is returned by dlg_frame_dec_feed. */
typedef int (*dlg_frame_cb)(void *ctx, const uint8_t *body, size_t len);

/* Incremental decoder state. Zero it, then set max_frame (0 = default). */
typedef struct dlg_frame_dec {
    uint32_t max_frame;
    uint8_t hdr[DLG_FRAME_HDR];
    uint32_t hdr_have;
    uint32_t body_len;  /* valid once hdr_have == DLG_FRAME_HDR */
    uint32_t body_have;
    uint8_t *body;      /* partial body, only when a frame spans reads */
    size_t body_cap;
} dlg_frame_dec;

/* Feeds len bytes. Complete frames are passed to cb in order; a frame that
 * lies whole inside data is passed without copying. A length above
 * max_frame is refused (DLG_ETOOBIG) before any byte of it is buffered; a
 * non-zero flag gives DLG_EFLAG. After an error the decoder must not be fed
 * again (the connection is to be closed). Returns 0, a DLG_E* code, or cb's
 * non-zero return. *consumed (may be NULL) gets how many bytes were used. */
int dlg_frame_dec_feed(dlg_frame_dec *d, const uint8_t *data, size_t len,
                       dlg_frame_cb cb, void *ctx, size_t *consumed);

/* The length announced by the header that caused the last DLG_ETOOBIG. */
uint32_t dlg_frame_dec_bad_len(const dlg_frame_dec *d);

/* Bytes buffered for an incomplete frame (for per-connection limits). */
size_t dlg_frame_dec_pending(const dlg_frame_dec *d);

/* Frees the partial-frame buffer; the decoder may be zeroed and reused. */
void dlg_frame_dec_free(dlg_frame_dec *d);

/* Writes the 5-byte header for a body of len bytes into hdr. */
void dlg_frame_put_header(uint8_t hdr[DLG_FRAME_HDR], uint32_t len);

/* Packs msg into a new buffer holding header + body; the caller owns the one
 * reference. Returns 0, DLG_ENOMEM, or DLG_ETOOBIG when the body would exceed
 * max (0 = no limit) or UINT32_MAX. On error *out is untouched. */
int dlg_frame_pack(const ProtobufCMessage *msg, uint32_t max, dlg_buf **out);

#endif
