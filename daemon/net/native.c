/* native.c: dialogue/1, the native transport: gRPC's Length-Prefixed
 * Messages (dlg_frame.h) straight over the stream, one ClientFrame or
 * ServerFrame each. The output queue already holds frames in this form, so
 * its items go out as they are. */
#include "conn_int.h"
#include "reply.h"

#include <string.h>

#include "dlg_err.h"
#include "dlg_frame.h"

static int on_frame(void *ctx, const uint8_t *body, size_t len) {
    dlg_conn *c = ctx;
    if (c->state == DLG_CONN_CLOSING || c->close_after_flush)
        return 1; /* stop: nothing more is read from a closing client */
    return c->srv->up.frame(c, body, len);
}

static int native_feed(dlg_conn *c, const uint8_t *data, size_t len) {
    int rc = dlg_frame_dec_feed(&c->dec, data, len, on_frame, c, NULL);
    if (rc == DLG_ETOOBIG) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__RESOURCE_EXHAUSTED,
                        "frame length %u is above the limit %u", dlg_frame_dec_bad_len(&c->dec),
                        c->dec.max_frame);
        dlg_conn_close_after_flush(c, "oversize frame");
        return 1;
    }
    if (rc == DLG_EFLAG) {
        dlg_reply_error(c, 0, DIALOGUE__V1__STATUS__INVALID_ARGUMENT,
                        "frame flag %u is not supported (only 0, uncompressed)",
                        c->dec.hdr[0]);
        dlg_conn_close_after_flush(c, "bad frame flag");
        return 1;
    }
    return rc;
}

static size_t native_final_error(dlg_conn *c, int status, const char *msg, uint8_t *dst,
                                 size_t cap) {
    (void)c;
    Dialogue__V1__Error e = DIALOGUE__V1__ERROR__INIT;
    e.code = (Dialogue__V1__Status)status;
    e.message = (char *)msg;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_ERROR;
    f.error = &e;
    size_t body = protobuf_c_message_get_packed_size(&f.base);
    if (DLG_FRAME_HDR + body > cap)
        return 0;
    dlg_frame_put_header(dst, (uint32_t)body);
    protobuf_c_message_pack(&f.base, dst + DLG_FRAME_HDR);
    return DLG_FRAME_HDR + body;
}

const dlg_codec dlg_codec_native = {
    .name = "dialogue/1",
    .feed = native_feed,
    .final_error = native_final_error,
};
