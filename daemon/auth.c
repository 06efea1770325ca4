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

#include <openssl/x509v3.h>

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

/* The identity in a verified client certificate: subject CN, or the first
 * DNS / email SAN. Returns a malloc'd string or NULL. */
static char *cert_identity(X509 *x, int from_san) {
    if (from_san) {
        GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        char *out = NULL;
        for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !out; i++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            if (g->type == GEN_DNS || g->type == GEN_EMAIL) {
                const unsigned char *d = ASN1_STRING_get0_data(g->d.ia5);
                int n = ASN1_STRING_length(g->d.ia5);
                if (n > 0 && n <= 255 && memchr(d, 0, (size_t)n) == NULL)
                    out = strndup((const char *)d, (size_t)n);
            }
        }
        GENERAL_NAMES_free(sans);
        return out;
    }
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    if (n <= 0 || (size_t)n != strlen(cn))
        return NULL; /* empty, or an embedded NUL */
    return strdup(cn);
}

/* Identity from a client certificate the TLS layer has verified against
 * the listener's client CA; roles from auth.client_cert.roles. */
static int auth_cert(dlg_server *srv, dlg_conn *c, char *err, size_t errlen) {
    /* A session that left OpenSSL after its handshake had no client
     * certificate (dlg_tlsio_ctx_lean keeps those on OpenSSL). */
    if (c->tls.ssl == NULL)
        return 1;
    X509 *x = SSL_get0_peer_certificate(c->tls.ssl);
    if (x == NULL || SSL_get_verify_result(c->tls.ssl) != X509_V_OK)
        return 1;
    const dlg_config_client_cert *cc = srv->cfg ? &srv->cfg->auth.client_cert : NULL;
    char *user = cert_identity(x, cc && cc->user_from == DLG_CFG_USER_FROM_SAN);
    if (user == NULL) {
        snprintf(err, errlen, "client certificate has no usable %s",
                 cc && cc->user_from == DLG_CFG_USER_FROM_SAN ? "DNS or email SAN" : "CN");
        return -1;
    }
    c->user_id = user;
    for (size_t i = 0; cc && i < cc->n_roles; i++) {
        if (strcmp(cc->roles[i].match, user) != 0)
            continue;
        size_t n = cc->roles[i].roles.n;
        c->roles = calloc(n ? n : 1, sizeof(char *));
        for (size_t k = 0; c->roles && k < n; k++)
            if ((c->roles[k] = strdup(cc->roles[i].roles.v[k])) != NULL)
                c->n_roles++;
        break;
    }
    return 0;
}

int dlg_auth_hello(dlg_server *srv, dlg_conn *c, const Dialogue__V1__Hello *h,
                   char *err, size_t errlen) {
    if (h->token && h->token[0]) {
        if (srv->jwt == NULL) {
            snprintf(err, errlen, "token authentication is not configured on this server");
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
        }
        dlg_jwt_claims cl;
        /* Not time(): it reads a coarse clock that can lag the issuer's by
         * a tick, and with leeway 0 a fresh token would look "from the future". */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (dlg_jwt_verify(srv->jwt, h->token, strlen(h->token), (int64_t)now.tv_sec, &cl,
                           err, errlen) != 0)
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
        /* Take ownership of the verified claims. */
        c->user_id = cl.sub;
        c->roles = cl.roles;
        c->n_roles = cl.n_roles;
        c->session_deadline = dlg_jwt_session_deadline(srv->jwt, &cl);
        return 0;
    }
    if (c->tls_on && srv->opts.client_ca_file) {
        int r = auth_cert(srv, c, err, errlen);
        if (r == 0)
            return 0;
        if (r < 0)
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
    }
    if (!srv->opts.allow_anonymous) {
        snprintf(err, errlen, "credentials required: send a token in Hello");
        return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
    }
    return 0;
}
