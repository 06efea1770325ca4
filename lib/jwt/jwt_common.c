/* jwt_common.c: what key set-up, verification and minting share: the
 * algorithm names, the rules for names (sub, kid, roles), strict base64url,
 * and reading key and secret files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dlg_alloc.h"
#include "dlg_base64.h"
#include "dlg_err.h"
#include "dlg_utf8.h"
#include "jwt.h"
#include "jwt_int.h"

static const char *const alg_names[] = {NULL, "HS256", "RS256", "ES256", "EdDSA"};

int dlg_jwt_alg_parse(const char *s) {
    if (!s)
        return -1;
    for (int i = DLG_JWT_HS256; i <= DLG_JWT_EDDSA; i++)
        if (strcmp(s, alg_names[i]) == 0)
            return i;
    return -1;
}

const char *dlg_jwt_alg_name(int alg) {
    if (alg < DLG_JWT_HS256 || alg > DLG_JWT_EDDSA)
        return "?";
    return alg_names[alg];
}

void dlg__jwt_quote_safe(char *dst, size_t dstlen, const char *src) {
    size_t o = 0;
    for (size_t i = 0; src[i] && o + 4 < dstlen; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (i >= 48) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '?';
    }
    dst[o] = '\0';
}

/* ---- base64url (RFC 4648 section 5, no padding) --------------------------- */

int dlg__jwt_b64url_decode(const char *in, size_t n, uint8_t **out, size_t *outlen) {
    uint8_t *buf = dlg_malloc(DLG_BASE64_DECODED_MAX(n) + 1);
    if (!buf)
        return DLG_ENOMEM;
    if (dlg_base64_decode(in, n, DLG_B64_URL | DLG_B64_CANONICAL, buf, outlen) != 0) {
        free(buf);
        return DLG_EPROTO;
    }
    *out = buf;
    return 0;
}

/* ---- names (sub, roles, kid) --------------------------------------------- */

bool dlg__jwt_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > DLG_JWT_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return dlg_utf8_valid(s, n);
}

bool dlg__jwt_role_ok(const char *s) {
    return dlg__jwt_name_ok(s) && strcmp(s, "*") != 0;
}

bool dlg_jwt_name_valid(const char *s, bool as_role) {
    return s && (as_role ? dlg__jwt_role_ok(s) : dlg__jwt_name_ok(s));
}

/* ---- files ---------------------------------------------------------------- */

int dlg__jwt_read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err,
                     size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dlg_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return DLG_EIO;
    }
    int rc;
    uint8_t *buf = dlg_malloc(max + 1);
    if (!buf) {
        rc = DLG_ENOMEM;
        goto fail;
    }
    size_t n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        dlg_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = DLG_EIO;
        goto fail;
    }
    if (n > max) {
        dlg_errf(err, errlen, "%s: larger than %zu bytes", path, max);
        rc = DLG_EINVAL;
        goto fail;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, max + 1);
        free(buf);
    }
    fclose(f);
    return rc;
}

int dlg_jwt_read_secret_file(const char *path, uint8_t **out, size_t *len, char *err,
                             size_t errlen) {
    if (!path || !out || !len)
        return DLG_EINVAL;
    uint8_t *buf;
    size_t n;
    int rc = dlg__jwt_read_file(path, DLG_JWT_MAX_SECRET + 2, &buf, &n, err, errlen);
    if (rc)
        return rc;
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n < DLG_JWT_MIN_SECRET || n > DLG_JWT_MAX_SECRET) {
        dlg_errf(err, errlen, "%s: secret is %zu bytes, expected %d..%d", path, n,
               DLG_JWT_MIN_SECRET, DLG_JWT_MAX_SECRET);
        OPENSSL_cleanse(buf, DLG_JWT_MAX_SECRET + 3);
        free(buf);
        return DLG_EINVAL;
    }
    *out = buf;
    *len = n;
    return 0;
}

