/* dlg_errno.h: the error codes of dialogue, one X-macro table; the only
 * place they are written. Functions return 0 or a negative DLG_E* code.
 * Nothing but macros and an enum: libdialogue-client installs this header
 * (as dialogue/dlg_errno.h, next to client.h), so it must declare nothing
 * the shared library does not export. The functions over the table
 * (dlg_strerror, dlg_err_status, ...) are in dlg_err.h, inside the tree. */
#ifndef DLG_ERRNO_H
#define DLG_ERRNO_H

/* name, value, message, wire status, back.
 * wire status: the dialogue.v1.Status a daemon reports the code as (3
 *   INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND, 6 ALREADY_EXISTS, 7
 *   PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION, 13
 *   INTERNAL, 14 UNAVAILABLE, 16 UNAUTHENTICATED; docs/protocol.md, "Error
 *   codes"). The one place a code becomes a status (dlg_err_status).
 * back: 1 for the one code per status that a status received from a
 *   server maps back to (dlg_client_status_err). */
#define DLG_ERRNO_MAP(X)                                                      \
    X(ENOMEM, -1, "out of memory", 13, 0)                                    \
    X(EINVAL, -2, "invalid argument", 3, 1)                                  \
    X(EPROTO, -3, "protocol error", 3, 0)                                    \
    X(ETLS, -4, "TLS error", 14, 0)                                          \
    X(EIO, -5, "I/O error", 14, 0)                                           \
    X(ETOOBIG, -6, "frame too large", 8, 0)                                  \
    X(ENOTFOUND, -7, "not found", 5, 1)                                      \
    X(EPERM, -8, "permission denied", 7, 1)                                  \
    X(EAUTH, -9, "unauthenticated", 16, 1)                                   \
    X(EAGAIN, -10, "try again", 14, 1)                                       \
    X(ECLOSED, -11, "connection closed", 14, 0)                              \
    X(ETIMEDOUT, -12, "timed out", 4, 1)                                     \
    X(ECONFIG, -13, "invalid configuration", 3, 0)                           \
    X(EEXIST, -14, "already exists", 6, 1)                                   \
    X(EFULL, -15, "resource exhausted", 8, 1)                                \
    X(ESCHEMA, -16, "schema violation", 3, 0)                                \
    X(ESTATE, -17, "not allowed in this state", 9, 1)                        \
    X(EINTERNAL, -18, "internal error", 13, 1)                               \
    X(EFLAG, -19, "unsupported frame flag", 3, 0)

enum {
    DLG_OK = 0,
#define DLG__ERR_ENUM(name, val, msg, st, back) DLG_##name = val,
    DLG_ERRNO_MAP(DLG__ERR_ENUM)
#undef DLG__ERR_ENUM
};

#endif
