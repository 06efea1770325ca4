/* auth.h: turns a Hello into a verified identity (user id and roles) or a
 * refusal. Identity comes only from what the server can verify: a JWT
 * checked against configured keys, or a client certificate. Metadata the
 * client sends is informational and never grants anything. */
#ifndef DLG_AUTH_H
#define DLG_AUTH_H

#include <stddef.h>

#include "conn.h"

/* Authenticates c from Hello h. On success sets c->user_id / c->roles and
 * returns 0; otherwise returns the wire Status to refuse with and writes
 * the reason (never the token) to err. */
int dlg_auth_hello(dlg_server *srv, dlg_conn *c, const Dialogue__V1__Hello *h,
                   char *err, size_t errlen);

#endif
