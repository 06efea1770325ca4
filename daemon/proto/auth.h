/* auth.h: turns a Hello into a verified identity (user id and roles) or a
 * refusal. Identity comes only from what the server can verify: a JWT
 * checked against configured keys, or a client certificate. Metadata the
 * client sends is informational and never grants anything. */
#ifndef DLG_AUTH_H
#define DLG_AUTH_H

#include <stddef.h>

#include "conn.h"

struct dlg_config;

struct dlg_jwt_verifier;

/* Builds a verifier from cfg's auth.jwt keys and checks (NULL in *out when
 * there are no keys: token auth off); warnings go to log. *out is owned by
 * the caller. Returns 0 or a DLG_E* code with err naming the key file at
 * fault (file:line); *out is then NULL. */
int dlg_auth_verifier(const struct dlg_config *cfg, const dlg_log *log,
                      struct dlg_jwt_verifier **out, char *err, size_t errlen);

/* dlg_auth_verifier into srv->jwt (the old one, if any, is freed). */
int dlg_auth_setup(dlg_server *srv, const struct dlg_config *cfg, char *err, size_t errlen);

/* Authenticates c from Hello h. On success sets c->user_id / c->roles and
 * returns 0 (c->session_deadline_ms is set from the token's exp: the session
 * ends there with UNAUTHENTICATED); otherwise returns the wire Status to refuse with and writes
 * the reason (never the token) to err. */
int dlg_auth_hello(dlg_server *srv, dlg_conn *c, const Dialogue__V1__Hello *h,
                   char *err, size_t errlen);

/* Whether kind a / name an and kind b / name bn are one identity: names
 * alone are not (a token sub can equal an anonymous client id). */
int dlg_auth_same(int a, const char *an, int b, const char *bn);

#endif
