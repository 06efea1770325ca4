/* codec.c: which transport a new connection speaks (codec.h). */
#include "codec.h"

#include <string.h>

const dlg_codec *dlg_codec_by_alpn(const uint8_t *alpn, size_t alpn_len) {
    if (alpn == NULL)
        return NULL; /* the first bytes say */
    if (alpn_len == 10 && memcmp(alpn, "dialogue/1", 10) == 0)
        return &dlg_codec_native;
    if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0)
        return &dlg_codec_h2;
    if (alpn_len == 8 && memcmp(alpn, "http/1.1", 8) == 0)
        return &dlg_codec_http;
    return NULL;
}

const dlg_codec *dlg_codec_sniff(const uint8_t *data, size_t len) {
    static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (len == 0)
        return NULL;
    if (data[0] == 0)
        return &dlg_codec_native; /* a frame's flag byte */
    /* HTTP/2 with prior knowledge (before the HTTP/1.1 methods: "PRI" is
     * no method of theirs); nghttp2 checks the rest of the preface. */
    if (len >= 3 && memcmp(data, h2_preface, len < 24 ? len : 24) == 0)
        return &dlg_codec_h2;
    if (data[0] >= 'A' && data[0] <= 'Z')
        return &dlg_codec_http; /* GET, HEAD, ...: http_parser judges the rest */
    /* Anything else was a dialogue/1 frame with a flag byte we do not
     * take: refused as one, with an Error that says so. */
    return &dlg_codec_native;
}
