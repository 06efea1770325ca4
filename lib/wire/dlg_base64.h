/* dlg_base64.h: base64 (RFC 4648), the one implementation of the tree:
 * strict base64url for JWT segments, lenient standard-or-URL base64 for the
 * bytes fields of dialoguectl's JSON and its --base64 input. */
#ifndef DLG_BASE64_H
#define DLG_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Flags. Encoding uses the URL alphabet ("-_") with DLG_B64_URL, else the
 * standard one ("+/"), and appends '=' padding with DLG_B64_PAD. Decoding
 * accepts the characters of each alphabet named (DLG_B64_STD, DLG_B64_URL;
 * both may be given, even mixed in one string), '=' padding only with
 * DLG_B64_PAD (then optional, at most two, and only to a multiple of 4
 * characters), and with DLG_B64_CANONICAL refuses an encoding whose last
 * character carries non-zero unused bits (so each value has exactly one
 * encoding, as a signature check needs). */
enum {
    DLG_B64_STD = 1,
    DLG_B64_URL = 2,
    DLG_B64_PAD = 4,
    DLG_B64_CANONICAL = 8,
};

/* Room dlg_base64_decode needs for n characters. */
#define DLG_BASE64_DECODED_MAX(n) ((n) / 4 * 3 + 2)

/* Decodes n characters of in (no blanks; NUL not needed) into out, which
 * has DLG_BASE64_DECODED_MAX(n) bytes, as flags allow; *outlen gets the
 * byte count. Returns 0, or DLG_EINVAL for a character outside the allowed
 * alphabets, padding not allowed or misplaced, a length no encoder makes
 * (4k + 1 characters), or non-canonical unused bits (DLG_B64_CANONICAL).
 * On error out may hold partial output and *outlen is unchanged. */
int dlg_base64_decode(const char *in, size_t n, unsigned flags, uint8_t *out, size_t *outlen);

/* Encodes n bytes as flags say (DLG_B64_URL, DLG_B64_PAD) into a malloc'd,
 * NUL-terminated string the caller frees; *outlen (may be NULL) gets its
 * length. NULL when out of memory or n too large to encode. */
char *dlg_base64_encode(const uint8_t *in, size_t n, unsigned flags, size_t *outlen);

#endif
