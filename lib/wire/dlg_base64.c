/* dlg_base64.c: base64 encoding and decoding (see dlg_base64.h). */
#include "dlg_base64.h"

#include <stdlib.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

static const char std_tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of ch in the alphabets flags allow, or -1. */
static int value_of(unsigned char ch, unsigned flags) {
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if ((flags & DLG_B64_STD) && (ch == '+' || ch == '/'))
        return ch == '+' ? 62 : 63;
    if ((flags & DLG_B64_URL) && (ch == '-' || ch == '_'))
        return ch == '-' ? 62 : 63;
    return -1;
}

int dlg_base64_decode(const char *in, size_t n, unsigned flags, uint8_t *out, size_t *outlen) {
    size_t pad = 0;
    if (flags & DLG_B64_PAD) {
        while (pad < n && in[n - 1 - pad] == '=')
            pad++;
        if (pad > 2 || (pad > 0 && n % 4 != 0))
            return DLG_EINVAL;
        n -= pad;
    }
    if (n % 4 == 1)
        return DLG_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of((unsigned char)in[i], flags);
        if (v < 0)
            return DLG_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* What is left are the unused low bits of the last character. */
    if ((flags & DLG_B64_CANONICAL) && acc != 0)
        return DLG_EINVAL;
    *outlen = o;
    return 0;
}

char *dlg_base64_encode(const uint8_t *in, size_t n, unsigned flags, size_t *outlen) {
    const char *tab = (flags & DLG_B64_URL) ? url_tab : std_tab;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = dlg_malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        else if (flags & DLG_B64_PAD)
            out[o++] = '=';
        if (flags & DLG_B64_PAD)
            out[o++] = '=';
    }
    out[o] = '\0';
    if (outlen != NULL)
        *outlen = o;
    return out;
}
