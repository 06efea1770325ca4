/* device.c: nanopb encoding of MetricsUpdate and AlertTriggered into caller
 * buffers, sized first so an overflow is reported as such. */
#include <stdio.h>

#include <pb_encode.h>

#include "device.h"
#include "dlg_errno.h"

static int encode(const pb_msgdesc_t *desc, const void *msg, const char *what, uint8_t *buf,
                  size_t cap, size_t *len, char *err, size_t errlen) {
    /* A sizing pass runs the encoder with no output: a refused message fails
     * here, before a byte of buf is written. */
    pb_ostream_t sizing = PB_OSTREAM_SIZING;
    if (!pb_encode(&sizing, desc, msg)) {
        if (err != NULL)
            snprintf(err, errlen, "%s: nanopb refused it: %s", what, PB_GET_ERROR(&sizing));
        return DLG_EINVAL;
    }
    size_t need = sizing.bytes_written;
    if (need > cap) {
        if (err != NULL)
            snprintf(err, errlen, "%s needs %zu bytes, the buffer has %zu", what, need, cap);
        return DLG_ETOOBIG;
    }
    pb_ostream_t out = pb_ostream_from_buffer(buf, cap);
    if (!pb_encode(&out, desc, msg) || out.bytes_written != need) {
        if (err != NULL)
            snprintf(err, errlen, "%s: sized %zu bytes, encoded %zu (%s)", what, need,
                     out.bytes_written, PB_GET_ERROR(&out));
        return DLG_EINVAL;
    }
    *len = need;
    return 0;
}

int nbp_encode_metrics(const dialogue_dashboard_MetricsUpdate *m, uint8_t *buf, size_t cap,
                       size_t *len, char *err, size_t errlen) {
    return encode(dialogue_dashboard_MetricsUpdate_fields, m, "MetricsUpdate", buf, cap, len,
                  err, errlen);
}

int nbp_encode_alert(const dialogue_dashboard_AlertTriggered *a, uint8_t *buf, size_t cap,
                     size_t *len, char *err, size_t errlen) {
    return encode(dialogue_dashboard_AlertTriggered_fields, a, "AlertTriggered", buf, cap, len,
                  err, errlen);
}
