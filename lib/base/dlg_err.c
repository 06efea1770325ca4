/* dlg_err.c: tables behind dlg_err.h. */
#include "dlg_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *dlg_strerror(int err) {
    switch (err) {
    case DLG_OK: return "success";
#define X(name, val, msg, st, back) case DLG_##name: return msg;
    DLG_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *dlg_err_name(int err) {
    switch (err) {
    case DLG_OK: return "OK";
#define X(name, val, msg, st, back) case DLG_##name: return #name;
    DLG_ERRNO_MAP(X)
#undef X
    }
    return "EUNKNOWN";
}

int dlg_err_status(int err) {
    switch (err) {
    case DLG_OK: return 0;
#define X(name, val, msg, st, back) case DLG_##name: return st;
    DLG_ERRNO_MAP(X)
#undef X
    }
    return 2;
}

int dlg_err_from_status(int status) {
    if (status <= 0)
        return status;
    /* The wire's own reasons for which the table has no code of its own. */
    if (status == 1)  /* CANCELLED */
        return DLG_ECLOSED;
    if (status == 12) /* UNIMPLEMENTED */
        return DLG_EPROTO;
#define X(name, val, msg, st, back)                                           \
    if ((back) && status == (st))                                             \
        return DLG_##name;
    DLG_ERRNO_MAP(X)
#undef X
    return DLG_EINTERNAL; /* UNKNOWN, ABORTED, INTERNAL, DATA_LOSS, ... */
}

const char *dlg_status_name(int status) {
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    };
    if (status < 0 || (size_t)status >= sizeof(names) / sizeof(names[0]))
        return "UNKNOWN";
    return names[status];
}

void dlg_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
