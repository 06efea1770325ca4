/* dlg_err.h: the one error scheme of dialogue. Functions return 0 or a
 * negative DLG_E* code; one X-macro table gives codes, names, messages and the
 * wire status (gRPC name) each maps to. */
#ifndef DLG_ERR_H
#define DLG_ERR_H

#include <stddef.h>

/* name, value, message, wire status (dialogue.v1.Status numeric value) */
#define DLG_ERRNO_MAP(X)                                                      \
    X(ENOMEM, -1, "out of memory", 8)                                        \
    X(EINVAL, -2, "invalid argument", 3)                                     \
    X(EPROTO, -3, "protocol error", 3)                                       \
    X(ETLS, -4, "TLS error", 14)                                             \
    X(EIO, -5, "I/O error", 14)                                              \
    X(ETOOBIG, -6, "frame too large", 8)                                     \
    X(ENOTFOUND, -7, "not found", 5)                                         \
    X(EPERM, -8, "permission denied", 7)                                     \
    X(EAUTH, -9, "unauthenticated", 16)                                      \
    X(EAGAIN, -10, "try again", 14)                                          \
    X(ECLOSED, -11, "connection closed", 14)                                 \
    X(ETIMEDOUT, -12, "timed out", 4)                                        \
    X(ECONFIG, -13, "invalid configuration", 3)                              \
    X(EEXIST, -14, "already exists", 6)                                      \
    X(EFULL, -15, "resource exhausted", 8)                                   \
    X(ESCHEMA, -16, "schema violation", 3)                                   \
    X(ESTATE, -17, "not allowed in this state", 9)                           \
    X(EINTERNAL, -18, "internal error", 13)                                  \
    X(EFLAG, -19, "unsupported frame flag", 3)

enum {
    DLG_OK = 0,
#define DLG__ERR_ENUM(name, val, msg, st) DLG_##name = val,
    DLG_ERRNO_MAP(DLG__ERR_ENUM)
#undef DLG__ERR_ENUM
};

/* Human text for a DLG_E* code (static storage; never NULL). */
const char *dlg_strerror(int err);

/* Symbolic name ("EINVAL") for a DLG_E* code (static storage; never NULL). */
const char *dlg_err_name(int err);

/* The dialogue.v1.Status value a DLG_E* code is reported as on the wire. */
int dlg_err_status(int err);

/* snprintf into an error buffer; does nothing when err is NULL or errlen 0,
 * so callers that want no message can pass nothing. */
void dlg_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The gRPC name of a dialogue.v1.Status value ("INVALID_ARGUMENT"), or
 * "UNKNOWN" for a value outside the table. Static storage. */
const char *dlg_status_name(int status);

#endif
