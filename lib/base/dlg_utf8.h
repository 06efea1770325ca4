/* dlg_utf8.h: strict UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), the one decoder every module checks text with:
 * protocol strings, token names, schema validation, logs. */
#ifndef DLG_UTF8_H
#define DLG_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 sequence at s (n > 0 bytes left) and
 * its code point in *cp, or 0 when s does not start one. */
size_t dlg_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp);

/* 1 when s[0, n) is valid UTF-8, else 0. */
int dlg_utf8_valid(const void *s, size_t n);

#endif
