/* fuzz_frame.c: libFuzzer harness for the incremental frame decoder
 * (dlg_frame_dec_feed). The same stream fed whole and fed in pieces must give
 * the same frames and the same verdict, and never buffer beyond the cap.
 *
 * Input: [n_cuts & 7] [n_cuts piece sizes] [max_frame: 2 bytes BE, small]
 *        [stop_after] [stream...]                                          */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "fuzz_util.h"

typedef struct frame_rec {
    uint32_t len;
    uint64_t hash;
} frame_rec;

/* What one decoding pass saw. */
typedef struct run {
    frame_rec *v;
    size_t n, cap;
    size_t stop_after;   /* callback returns 7 on this frame (1-based; 0 = never) */
    uint32_t max;        /* effective max_frame, for the buffering check */
} run;

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Every complete body is unpacked as the daemon would, and a ClientFrame
 * that parses must pack back into a frame the decoder accepts. */
static void check_body(const uint8_t *body, size_t len) {
    Dialogue__V1__ClientFrame *f = dialogue__v1__client_frame__unpack(NULL, len, body);
    if (f == NULL)
        return;
    dlg_buf *b = NULL;
    int rc = dlg_frame_pack(&f->base, 0, &b);
    FUZZ_CHECK(rc == 0, "dlg_frame_pack of a parsed ClientFrame: %s", dlg_err_name(rc));
    FUZZ_CHECK(b->len >= DLG_FRAME_HDR && b->data[0] == 0, "packed header of %zu bytes", b->len);
    uint32_t blen = ((uint32_t)b->data[1] << 24) | ((uint32_t)b->data[2] << 16) |
                    ((uint32_t)b->data[3] << 8) | b->data[4];
    FUZZ_CHECK(blen == b->len - DLG_FRAME_HDR, "header says %u, body is %zu", blen,
               b->len - DLG_FRAME_HDR);
    dlg_buf_unref(b);
    dialogue__v1__client_frame__free_unpacked(f, NULL);
}

static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    run *r = ctx;
    FUZZ_CHECK(len <= r->max, "frame of %zu bytes passed with max_frame %u", len, r->max);
    FUZZ_CHECK(r->n < r->cap, "more frames (%zu) than the input can hold", r->n + 1);
    r->v[r->n].len = (uint32_t)len;
    r->v[r->n].hash = fnv1a(body, len);
    r->n++;
    check_body(body, len);
    return r->n == r->stop_after ? 7 : 0;
}

/* Feeds data in the given pieces (one piece = whole); returns the verdict. */
static int feed(run *r, uint32_t max_frame, const uint8_t *data, size_t len,
                const uint8_t *cuts, size_t n_cuts) {
    dlg_frame_dec d;
    memset(&d, 0, sizeof(d));
    d.max_frame = max_frame;
    size_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i <= n_cuts && rc == 0; i++) {
        /* The last piece takes whatever is left. */
        size_t piece = i < n_cuts ? cuts[i] : len - pos;
        if (piece > len - pos)
            piece = len - pos;
        size_t used = 0;
        rc = dlg_frame_dec_feed(&d, data + pos, piece, on_frame, r, &used);
        FUZZ_CHECK(used <= piece, "consumed %zu of %zu bytes", used, piece);
        if (rc == 0)
            FUZZ_CHECK(used == piece, "consumed %zu of %zu bytes without an error", used,
                       piece);
        /* The cap: nothing beyond one header and one max-size body waits. */
        FUZZ_CHECK(dlg_frame_dec_pending(&d) <= (size_t)r->max + DLG_FRAME_HDR,
                   "%zu bytes pending with max_frame %u", dlg_frame_dec_pending(&d), r->max);
        FUZZ_CHECK(d.body_cap <= r->max, "body buffer of %zu bytes with max_frame %u",
                   d.body_cap, r->max);
        pos += used;
    }
    if (rc == DLG_ETOOBIG)
        FUZZ_CHECK(dlg_frame_dec_bad_len(&d) > r->max, "ETOOBIG for length %u, max %u",
                   dlg_frame_dec_bad_len(&d), r->max);
    dlg_frame_dec_free(&d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4)
        return 0;
    size_t n_cuts = data[0] & 7;
    if (size < 4 + n_cuts)
        return 0;
    const uint8_t *cuts = data + 1;
    size_t p = 1 + n_cuts;
    /* Small caps (0..1023, 0 = the 1 MiB default) so lengths hit them. */
    uint32_t max_frame = (((uint32_t)data[p] << 8) | data[p + 1]) & 1023;
    size_t stop_after = data[p + 2] & 15;
    p += 3;
    const uint8_t *stream = data + p;
    size_t len = size - p;

    size_t cap = len / DLG_FRAME_HDR + 1;
    run whole = {.cap = cap, .stop_after = stop_after,
                 .max = max_frame ? max_frame : DLG_FRAME_DEFAULT_MAX};
    run split = whole;
    whole.v = calloc(cap, sizeof(frame_rec));
    split.v = calloc(cap, sizeof(frame_rec));
    FUZZ_CHECK(whole.v && split.v, "out of memory for %zu records", cap);

    int rc_whole = feed(&whole, max_frame, stream, len, NULL, 0);
    int rc_split = feed(&split, max_frame, stream, len, cuts, n_cuts);

    FUZZ_CHECK(rc_whole == rc_split, "whole feed gave %d, split feed %d", rc_whole, rc_split);
    FUZZ_CHECK(rc_whole == 0 || rc_whole == 7 || rc_whole == DLG_ETOOBIG ||
                   rc_whole == DLG_EFLAG,
               "unexpected verdict %d", rc_whole);
    FUZZ_CHECK(whole.n == split.n, "whole feed gave %zu frames, split feed %zu", whole.n,
               split.n);
    for (size_t i = 0; i < whole.n; i++)
        FUZZ_CHECK(whole.v[i].len == split.v[i].len && whole.v[i].hash == split.v[i].hash,
                   "frame %zu differs: %u vs %u bytes", i, whole.v[i].len, split.v[i].len);
    free(whole.v);
    free(split.v);
    return 0;
}
