/* dlg_err.h: the one error scheme of dialogue. Functions return 0 or a
 * negative DLG_E* code; one X-macro table (dlg_errno.h) gives codes, names,
 * messages and the wire status each maps to; these functions read it.
 * Inside the tree only: libdialogue-client does not export them (its own
 * dlg_client_strerror and dlg_client_status_name stand for them). */
#ifndef DLG_ERR_H
#define DLG_ERR_H

#include <stddef.h>

#include "dlg_errno.h"

/* Human text for a DLG_E* code (static storage; never NULL). */
const char *dlg_strerror(int err);

/* Symbolic name ("EINVAL") for a DLG_E* code (static storage; never NULL). */
const char *dlg_err_name(int err);

/* The dialogue.v1.Status value a DLG_E* code is reported as on the wire
 * (the table's column): every reply that reports a failed call's code
 * takes its status from here. 0 for 0; 2 (UNKNOWN) outside the table. */
int dlg_err_status(int err);

/* The DLG_E* code closest to a dialogue.v1.Status received from the wire:
 * the code the table marks `back` for it (NOT_FOUND -> DLG_ENOTFOUND, ...),
 * CANCELLED -> DLG_ECLOSED, UNIMPLEMENTED -> DLG_EPROTO, anything else ->
 * DLG_EINTERNAL; 0 for OK, and a negative input (already a code) as it
 * is. */
int dlg_err_from_status(int status);

/* snprintf into an error buffer; does nothing when err is NULL or errlen 0,
 * so callers that want no message can pass nothing. */
void dlg_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The gRPC name of a dialogue.v1.Status value ("INVALID_ARGUMENT"), or
 * "UNKNOWN" for a value outside the table. Static storage. */
const char *dlg_status_name(int status);

#endif
