/* dlg_utf8.c: strict UTF-8 (see dlg_utf8.h). */
#include "dlg_utf8.h"

#include <string.h>

size_t dlg_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp) {
    uint32_t c = s[0], min;
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

int dlg_utf8_valid(const void *p, size_t n) {
    const uint8_t *s = p;
    size_t i = 0;
    /* Names and ids are ASCII: eight bytes at a time while no high bit is
     * set (checked on every Trigger's room and event). */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    while (i < n) {
        uint32_t cp;
        size_t k = s[i] < 0x80 ? 1 : dlg_utf8_seq(s + i, n - i, &cp);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}
