/* codec.c: which transport a new connection speaks (codec.h). */
#include "codec.h"

#include <string.h>

const dlg_codec *dlg_codec_by_alpn(const uint8_t *alpn, size_t alpn_len) {
    if (alpn == NULL)
        return NULL; /* the first bytes say */
    if (alpn_len == 10 && memcmp(alpn, "dialogue/1", 10) == 0)
        return &dlg_codec_native;
    if (alpn_len == 8 && memcmp(alpn, "http/1.1", 8) == 0)
        return &dlg_codec_http;
    return NULL;
}

const dlg_codec *dlg_codec_sniff(const uint8_t *data, size_t len) {
    if (len == 0)
        return NULL;
    if (data[0] == 0)
        return &dlg_codec_native; /* a frame's flag byte */
    if (data[0] >= 'A' && data[0] <= 'Z')
        return &dlg_codec_http; /* GET, HEAD, ...: http_parser judges the rest */
    /* Anything else was a dialogue/1 frame with a flag byte we do not
     * take: refused as one, with an Error that says so. */
    return &dlg_codec_native;
}
