/* codec.c: which transport a new connection speaks (codec.h). */
#include "codec.h"

#include <string.h>

const dlg_codec *dlg_codec_by_alpn(const uint8_t *alpn, size_t alpn_len) {
    if (alpn != NULL && alpn_len == 10 && memcmp(alpn, "dialogue/1", 10) == 0)
        return &dlg_codec_native;
    return NULL; /* no ALPN: the first bytes say */
}

const dlg_codec *dlg_codec_sniff(const uint8_t *data, size_t len) {
    if (len >= 1 && data[0] == 0)
        return &dlg_codec_native; /* a frame's flag byte */
    /* Until other transports exist, everything else is taken for a
     * dialogue/1 frame with a bad flag, and refused as one. */
    return &dlg_codec_native;
}
