/* auth.c: Hello -> identity (see auth.h). The JWT verifier is built once
 * from the config; the algorithm comes from the key config, never from the
 * token. Identity is never taken from client-supplied metadata. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "jwt.h"
#include "jwtcache.h"

#include <openssl/x509v3.h>

int dlg_auth_verifier(const dlg_config *cfg, const dlg_log *log, dlg_jwt_verifier **out,
                      char *err, size_t errlen) {
    const dlg_config_jwt *j = &cfg->auth.jwt;
    *out = NULL;
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
    /* config.c refuses public keys without both; a shared secret is
     * allowed, but the operator should know what is not checked. */
    if (!j->issuer)
        dlg_log_warn(log, "auth.jwt: no issuer configured: tokens of any iss are "
                          "accepted (set auth.jwt.issuer)");
    if (!j->audience)
        dlg_log_warn(log, "auth.jwt: no audience configured: only tokens without aud "
                          "are accepted (set auth.jwt.audience)");
    dlg_jwt_set_leeway(v, j->leeway_seconds);
    *out = v;
    return 0;
fail:
    dlg_jwt_verifier_free(v);
    if (rc == 0)
        rc = DLG_ECONFIG;
    return rc;
}

int dlg_auth_setup(dlg_server *srv, const dlg_config *cfg, char *err, size_t errlen) {
    dlg_jwt_verifier *v = NULL;
    dlg_jwt_cache *cache = NULL;
    int rc = dlg_auth_verifier(cfg, &srv->log, &v, err, errlen);
    if (rc != 0)
        return rc;
    /* The cache's size is the start's; later setups only empty it. */
    if (srv->jwt_cache == NULL && v != NULL &&
        (rc = dlg_jwt_cache_new(cfg->auth.jwt.cache_size, &cache)) != 0) {
        snprintf(err, errlen, "auth.jwt.cache_size: %u entries: %s", cfg->auth.jwt.cache_size,
                 dlg_strerror(rc));
        dlg_jwt_verifier_free(v);
        return rc;
    }
    dlg_jwt_verifier_free(srv->jwt);
    srv->jwt = v;
    dlg_jwt_cache_clear(srv->jwt_cache);
    if (cache != NULL)
        srv->jwt_cache = cache;
    return 0;
}

/* What user_from names, for messages. */
static const char *user_from_name(int from) {
    switch (from) {
    case DLG_CFG_USER_FROM_DNS: return "DNS SAN";
    case DLG_CFG_USER_FROM_EMAIL: return "email SAN";
    case DLG_CFG_USER_FROM_URI: return "URI SAN";
    default: return "CN";
    }
}

/* Checks one name from a certificate (len bytes, UTF-8) against the rules
 * a token's sub obeys (jwt.h: 1..255 bytes of UTF-8, no control
 * characters), and copies it. A name that breaks them is refused, never
 * cut or cleaned: two certificates must never become one user. */
static int cert_name(const unsigned char *d, int len, int from, char **out, char *err,
                     size_t errlen) {
    const char *what = user_from_name(from);
    if (len <= 0 || len > DLG_JWT_MAX_NAME) {
        snprintf(err, errlen, "client certificate %s is %d bytes (1 to %d allowed)", what, len,
                 DLG_JWT_MAX_NAME);
        return -1;
    }
    char *s = dlg_strndup((const char *)d, (size_t)len);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (strlen(s) != (size_t)len || !dlg_jwt_name_valid(s, false)) {
        snprintf(err, errlen, "client certificate %s is not valid UTF-8 without control "
                              "characters", what);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* The identity in a verified client certificate, as auth.client_cert.
 * user_from says: the subject CN, or the SAN of one type. Exactly one must
 * be there: several CNs, or several SANs of the type, are ambiguous and
 * refused. 0 with *out malloc'd, or -1 with err saying why. */
static int cert_identity(X509 *x, int from, char **out, char *err, size_t errlen) {
    const char *what = user_from_name(from);
    if (from == DLG_CFG_USER_FROM_CN) {
        const X509_NAME *name = X509_get_subject_name(x);
        int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        if (idx < 0) {
            snprintf(err, errlen, "client certificate has no CN");
            return -1;
        }
        if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0) {
            snprintf(err, errlen, "client certificate has several CNs");
            return -1;
        }
        /* The CN may be a BMPString or UniversalString: to UTF-8 first. */
        unsigned char *u = NULL;
        const ASN1_STRING *a = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
        int n = ASN1_STRING_to_UTF8(&u, a);
        if (n < 0) {
            snprintf(err, errlen, "client certificate CN cannot be read as UTF-8");
            return -1;
        }
        int rc = cert_name(u, n, from, out, err, errlen);
        OPENSSL_free(u);
        return rc;
    }
    int type = from == DLG_CFG_USER_FROM_DNS ? GEN_DNS
               : from == DLG_CFG_USER_FROM_EMAIL ? GEN_EMAIL : GEN_URI;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    const ASN1_IA5STRING *found = NULL;
    int n = 0;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == type) {
            found = g->d.ia5;
            n++;
        }
    }
    int rc = -1;
    if (n == 0)
        snprintf(err, errlen, "client certificate has no %s", what);
    else if (n > 1)
        snprintf(err, errlen, "client certificate has %d %ss (one is needed)", n, what);
    else
        rc = cert_name(ASN1_STRING_get0_data(found), ASN1_STRING_length(found), from, out, err,
                       errlen);
    GENERAL_NAMES_free(sans);
    return rc;
}

/* Identity from a client certificate the TLS layer has verified against
 * the listener's client CA; roles from auth.client_cert.roles. */
static int auth_cert(dlg_server *srv, dlg_conn *c, char *err, size_t errlen) {
    /* The certificate is the connection's: a gRPC stream's session (conn.h:
     * parent) reads its connection's. A session that left OpenSSL after
     * its handshake had no client certificate (dlg_tlsio_ctx_lean keeps
     * those on OpenSSL). */
    const dlg_conn *t = dlg_conn_root(c);
    if (t->st.tls.ssl == NULL)
        return 1;
    X509 *x = SSL_get0_peer_certificate(t->st.tls.ssl);
    if (x == NULL || SSL_get_verify_result(t->st.tls.ssl) != X509_V_OK)
        return 1;
    const dlg_config_client_cert *cc = srv->cfg ? &srv->cfg->auth.client_cert : NULL;
    char *user = NULL;
    if (cert_identity(x, cc ? cc->user_from : DLG_CFG_USER_FROM_CN, &user, err, errlen) != 0)
        return -1;
    c->user_id = user;
    c->id_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE;
    for (size_t i = 0; cc && i < cc->n_roles; i++) {
        if (strcmp(cc->roles[i].match, user) != 0)
            continue;
        size_t n = cc->roles[i].roles.n;
        c->roles = dlg_calloc(n ? n : 1, sizeof(char *));
        for (size_t k = 0; c->roles && k < n; k++)
            if ((c->roles[k] = dlg_strdup(cc->roles[i].roles.v[k])) != NULL)
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
            srv->counters.auth_refused[DLG_AUTHF_TOKEN]++;
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
        }
        dlg_jwt_claims cl;
        /* Not time(): it reads a coarse clock that can lag the issuer's by
         * a tick, and with leeway 0 a fresh token would look "from the future". */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        size_t len = strlen(h->token);
        int64_t deadline = 0;
        /* The same token verified before, still within exp + leeway: its
         * claims as the verify gave them, without the signature check. */
        if (dlg_jwt_cache_get(srv->jwt_cache, h->token, len, (int64_t)now.tv_sec, &cl,
                              &deadline) == 1) {
            srv->counters.token_cache_hits++;
        } else {
            if (dlg_jwt_verify(srv->jwt, h->token, len, (int64_t)now.tv_sec, &cl, err,
                               errlen) != 0) {
                /* jwt_verify.c says "token expired at ..." for that one reason. */
                srv->counters.auth_refused[strncmp(err, "token expired", 13) == 0
                                               ? DLG_AUTHF_EXPIRED : DLG_AUTHF_TOKEN]++;
                return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
            }
            deadline = dlg_jwt_session_deadline(srv->jwt, &cl);
            dlg_jwt_cache_put(srv->jwt_cache, h->token, len, &cl, deadline);
        }
        /* Take ownership of the verified claims. */
        c->user_id = cl.sub;
        c->id_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN;
        c->roles = cl.roles;
        c->n_roles = cl.n_roles;
        c->session_deadline_ms = deadline * 1000;
        return 0;
    }
    if (dlg_conn_root(c)->st.tls_on && c->lis != NULL && c->lis->conf.client_ca_file) {
        int r = auth_cert(srv, c, err, errlen);
        if (r == 0)
            return 0;
        if (r < 0) {
            srv->counters.auth_refused[DLG_AUTHF_CERT]++;
            return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
        }
    }
    if (!srv->opts.allow_anonymous) {
        snprintf(err, errlen, "credentials required: send a token in Hello");
        srv->counters.auth_refused[DLG_AUTHF_NO_CREDENTIALS]++;
        return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
    }
    c->id_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS;
    return 0;
}

int dlg_auth_same(int a, const char *an, int b, const char *bn) {
    return a == b && an != NULL && bn != NULL && strcmp(an, bn) == 0;
}
