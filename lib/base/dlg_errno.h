/* dlg_errno.h: the error codes of dialogue, one X-macro table; the only
 * place they are written. Functions return 0 or a negative DLG_E* code.
 * Nothing but macros and an enum: libdialogue-client installs this header
 * (as dialogue/dlg_errno.h, next to client.h), so it must declare nothing
 * the shared library does not export. The functions over the table
 * (dlg_strerror, dlg_err_status, ...) are in dlg_err.h, inside the tree. */
#ifndef DLG_ERRNO_H
#define DLG_ERRNO_H

/* name, value, message, wire status (the dialogue.v1.Status a daemon
 * reports the code as: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 6 ALREADY_EXISTS,
 * 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION,
 * 13 INTERNAL, 14 UNAVAILABLE, 16 UNAUTHENTICATED, ...) */
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

#endif
