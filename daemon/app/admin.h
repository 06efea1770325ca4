/* admin.h: the answers of the admin listener (config admin, --admin):
 * /metrics (Prometheus text format 0.0.4), /healthz and /readyz. Boot
 * installs dlg_admin_answer as srv->up.admin; net/http.c calls it for GET
 * and HEAD on that listener once the bearer token (if any) checked out. */
#ifndef DLG_ADMIN_H
#define DLG_ADMIN_H

#include <stddef.h>

#include "dlg_buf.h"
#include "server.h"

/* srv->up.admin (server.h): the body for path (len bytes, no query), owned
 * by the caller; *status 200, 503 (/readyz when not ready) or 404; *ctype
 * static. NULL only when out of memory. */
dlg_buf *dlg_admin_answer(dlg_server *srv, const char *path, size_t len, int *status,
                          const char **ctype);

/* 1 when srv is ready: every listener listening, the history store open
 * (when configured), the cluster link up (when clustered); else 0 with why
 * (len bytes at most) saying, a line each, what is not. */
int dlg_admin_ready(dlg_server *srv, char *why, size_t len);

#endif
