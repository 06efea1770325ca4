/* auth.c: Hello -> identity (see auth.h). The JWT verifier is built once
 * from the config; the algorithm comes from the key config, never from the
 * token. Identity is never taken from client-supplied metadata. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dlg_err.h"
#include "jwt.h"

int dlg_auth_setup(dlg_server *srv, const dlg_config *cfg, char *err, size_t errlen) {
    const dlg_config_jwt *j = &cfg->auth.jwt;
    if (j->n_keys == 0)
        return 0;
    dlg_jwt_verifier *v = NULL;
    int rc = dlg_jwt_verifier_new(&v);
    if (rc != 0)
        goto fail;
    for (size_t i = 0; i < j->n_keys; i++) {
        const dlg_config_jwt_key *k = &j->keys[i];
        char why[512] = "";
        if (k->alg == DLG_CFG_ALG_HS256)
            rc = dlg_jwt_add_secret_file(v, k->kid, k->secret_file, why, sizeof(why));
        else
            rc = dlg_jwt_add_public_key_file(v, k->kid, k->alg + 1, k->public_key_file, why,
                                             sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "%s:%u: auth.jwt.keys[%zu]: %s",
                     cfg->path ? cfg->path : "config", k->line, i, why);
            goto fail;
        }
    }
    if ((j->issuer && (rc = dlg_jwt_set_issuer(v, j->issuer)) != 0) ||
        (j->audience && (rc = dlg_jwt_set_audience(v, j->audience)) != 0) ||
        (j->roles_claim && (rc = dlg_jwt_set_roles_claim(v, j->roles_claim)) != 0)) {
        snprintf(err, errlen, "auth.jwt: %s", dlg_strerror(rc));
        goto fail;
    }
    dlg_jwt_set_leeway(v, j->leeway_seconds);
    srv->jwt = v;
    return 0;
fail:
    dlg_jwt_verifier_free(v);
    if (rc == 0)
        rc = DLG_ECONFIG;
    return rc;
}

int dlg_auth_hello(dlg_server *srv, dlg_conn *c, const Dialogue__V1__Hello *h,
                   char *err, size_t errlen) {
    if (h->token && h->token[0]) {
        if (srv->jwt == NULL) {
            snprintf(err, errlen, "token authentication is not configured on this server");
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
        }
        dlg_jwt_claims cl;
        if (dlg_jwt_verify(srv->jwt, h->token, strlen(h->token), (int64_t)time(NULL), &cl,
                           err, errlen) != 0)
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
        /* Take ownership of the verified claims. */
        c->user_id = cl.sub;
        c->roles = cl.roles;
        c->n_roles = cl.n_roles;
        c->session_deadline = dlg_jwt_session_deadline(srv->jwt, &cl);
        return 0;
    }
    if (!srv->opts.allow_anonymous) {
        snprintf(err, errlen, "credentials required: send a token in Hello");
        return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
    }
    return 0;
}
