/* codec.c: which transport a new connection speaks (codec.h). */
#include "codec.h"

#include <string.h>

const dlg_codec *dlg_codec_by_alpn(const uint8_t *alpn, size_t alpn_len) {
    if (alpn != NULL && alpn_len == 10 && memcmp(alpn, "dialogue/1", 10) == 0)
        return &dlg_codec_native;
    if (alpn != NULL && alpn_len == 2 && memcmp(alpn, "h2", 2) == 0)
        return &dlg_codec_h2;
    return NULL; /* no ALPN: the first bytes say */
}

const dlg_codec *dlg_codec_sniff(const uint8_t *data, size_t len) {
    static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (len >= 1 && data[0] == 0)
        return &dlg_codec_native; /* a frame's flag byte */
    /* HTTP/2 with prior knowledge; nghttp2 checks the rest of the preface. */
    if (len >= 3 && memcmp(data, h2_preface, len < 24 ? len : 24) == 0)
        return &dlg_codec_h2;
    /* Until other transports exist, everything else is taken for a
     * dialogue/1 frame with a bad flag, and refused as one. */
    return &dlg_codec_native;
}
