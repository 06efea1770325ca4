/* load_auth.c: the `auth` section: anonymous clients, the JWT keys and
 * their checks, and the roles granted to client certificates. */
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_err.h"

void dlg__cfg_auth_free(dlg_config_auth *a) {
    dlg_config_jwt *j = &a->jwt;
    free(j->issuer);
    free(j->audience);
    free(j->roles_claim);
    for (size_t i = 0; i < j->n_keys; i++) {
        free(j->keys[i].kid);
        free(j->keys[i].secret_file);
        free(j->keys[i].public_key_file);
    }
    free(j->keys);
    dlg_config_client_cert *cc = &a->client_cert;
    for (size_t i = 0; i < cc->n_roles; i++) {
        free(cc->roles[i].match);
        dlg__cfg_strv_free(&cc->roles[i].roles);
    }
    free(cc->roles);
}

static int load_jwt_key(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_jwt_key *k) {
    static const char *const keys[] = {"kid", "alg", "secret_file", "public_key_file", NULL};
    static const char *const algs[] = {"HS256", "RS256", "ES256", "EdDSA", NULL};
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    k->line = (unsigned)m->start_mark.line + 1;
    if ((v = dlg__yaml_get(y, m, "kid"))) {
        dlg__yaml_keypath(p, path, "kid");
        if ((rc = dlg__yaml_opt_text(y, v, p, DLG_CFG_NAME_MAX, &k->kid)) < 0)
            return rc;
    }
    if (!(v = dlg__yaml_get(y, m, "alg")))
        return dlg__yaml_missing(y, m, path, "alg");
    dlg__yaml_keypath(p, path, "alg");
    if ((rc = dlg__yaml_enum(y, v, p, algs, &k->alg)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "secret_file"))) {
        dlg__yaml_keypath(p, path, "secret_file");
        if ((rc = dlg__yaml_path(y, v, p, &k->secret_file)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "public_key_file"))) {
        dlg__yaml_keypath(p, path, "public_key_file");
        if ((rc = dlg__yaml_path(y, v, p, &k->public_key_file)) < 0)
            return rc;
    }
    bool hmac = k->alg == DLG_CFG_ALG_HS256;
    if (hmac && !k->secret_file)
        return dlg__yaml_fail(y, m, path, "alg HS256 needs secret_file");
    if (hmac && k->public_key_file)
        return dlg__yaml_fail(y, m, path, "alg HS256 takes secret_file, not public_key_file");
    if (!hmac && !k->public_key_file)
        return dlg__yaml_fail(y, m, path, "alg %s needs public_key_file", algs[k->alg]);
    if (!hmac && k->secret_file)
        return dlg__yaml_fail(y, m, path, "alg %s takes public_key_file, not secret_file",
                              algs[k->alg]);
    return 0;
}

static int load_jwt(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {
        "issuer", "audience", "issuer_audience_optional", "leeway_seconds", "roles_claim",
        "keys",   NULL};
    dlg_config_jwt *j = &dlg__cfg(y)->auth.jwt;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "auth.jwt", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "issuer")) &&
        (rc = dlg__yaml_opt_text(y, v, "auth.jwt.issuer", DLG_CFG_TEXT_MAX, &j->issuer)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "audience")) &&
        (rc = dlg__yaml_opt_text(y, v, "auth.jwt.audience", DLG_CFG_TEXT_MAX, &j->audience)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "issuer_audience_optional")) &&
        (rc = dlg__yaml_bool(y, v, "auth.jwt.issuer_audience_optional",
                             &j->issuer_audience_optional)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "leeway_seconds")) &&
        (rc = dlg__yaml_u32(y, v, "auth.jwt.leeway_seconds", 0, 86400, &j->leeway_seconds)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "roles_claim"))) {
        if ((rc = dlg__yaml_text(y, v, "auth.jwt.roles_claim", DLG_CFG_NAME_MAX, &j->roles_claim)) <
            0)
            return rc;
        if (!*j->roles_claim)
            return dlg__yaml_fail(y, v, "auth.jwt.roles_claim", "must not be empty");
    }
    if (!(v = dlg__yaml_get(y, m, "keys")))
        return 0;
    if ((rc = dlg__yaml_seq_alloc(y, v, "auth.jwt.keys", sizeof(*j->keys), (void **)&j->keys,
                                  &j->n_keys)) < 0)
        return rc;
    for (size_t i = 0; i < j->n_keys; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, "auth.jwt.keys", i);
        dlg_ynode *km = dlg__yaml_seq_at(y, v, i);
        if ((rc = load_jwt_key(y, km, p, &j->keys[i])) < 0)
            return rc;
        for (size_t k = 0; k < i && j->keys[i].kid; k++)
            if (j->keys[k].kid && !strcmp(j->keys[k].kid, j->keys[i].kid))
                return dlg__yaml_fail(y, km, p,
                                      "duplicate kid \"%s\" (also auth.jwt.keys[%zu], line %u)",
                                      j->keys[i].kid, k, j->keys[k].line);
        /* A public key verifies tokens a third party mints for many
         * services: without iss and aud any of its tokens would do. */
        if (j->keys[i].alg != DLG_CFG_ALG_HS256 && !j->issuer_audience_optional &&
            (!j->issuer || !j->audience))
            return dlg__yaml_fail(y, km, p,
                                  "an %s key needs auth.jwt.issuer and auth.jwt.audience (set "
                                  "auth.jwt.issuer_audience_optional: true to opt out)",
                                  j->keys[i].alg == DLG_CFG_ALG_RS256   ? "RS256"
                                  : j->keys[i].alg == DLG_CFG_ALG_ES256 ? "ES256"
                                                                        : "EdDSA");
    }
    return 0;
}

static int load_client_cert(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"user_from", "roles", NULL};
    static const char *const rkeys[] = {"match", "roles", NULL};
    static const char *const from[] = {"cn", "dns", "email", "uri", NULL};
    dlg_config_client_cert *cc = &dlg__cfg(y)->auth.client_cert;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "auth.client_cert", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "user_from"))) {
        /* "san" took the first DNS or email SAN: two names that differ only
         * in their type (email:admin, DNS:admin) were one user. */
        if (v->type == YAML_SCALAR_NODE && !strcmp(dlg__yaml_sval(v), "san"))
            return dlg__yaml_fail(
                y, v, "auth.client_cert.user_from",
                "\"san\" is ambiguous (a DNS and an email name could be one user): "
                "pick dns, email or uri");
        if ((rc = dlg__yaml_enum(y, v, "auth.client_cert.user_from", from, &cc->user_from)) < 0)
            return rc;
    }
    if (!(v = dlg__yaml_get(y, m, "roles")))
        return 0;
    if ((rc = dlg__yaml_seq_alloc(y, v, "auth.client_cert.roles", sizeof(*cc->roles),
                                  (void **)&cc->roles, &cc->n_roles)) < 0)
        return rc;
    for (size_t i = 0; i < cc->n_roles; i++) {
        char p[DLG_YAML_KEYPATH], q[DLG_YAML_KEYPATH];
        dlg_config_cert_roles *r = &cc->roles[i];
        dlg_ynode *rm = dlg__yaml_seq_at(y, v, i), *f;
        dlg__yaml_idxpath(p, "auth.client_cert.roles", i);
        if ((rc = dlg__yaml_want_map(y, rm, p, rkeys)) < 0)
            return rc;
        r->line = (unsigned)rm->start_mark.line + 1;
        if (!(f = dlg__yaml_get(y, rm, "match")))
            return dlg__yaml_missing(y, rm, p, "match");
        dlg__yaml_keypath(q, p, "match");
        if ((rc = dlg__yaml_text(y, f, q, DLG_CFG_NAME_MAX, &r->match)) < 0)
            return rc;
        if (!*r->match)
            return dlg__yaml_fail(y, f, q, "must not be empty");
        if (!(f = dlg__yaml_get(y, rm, "roles")))
            return dlg__yaml_missing(y, rm, p, "roles");
        dlg__yaml_keypath(q, p, "roles");
        if ((rc = dlg__cfg_strv(y, f, q, DLG_CFG_K_GRANT, &r->roles)) < 0)
            return rc;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(cc->roles[k].match, r->match))
                return dlg__yaml_fail(y, rm, p, "match \"%s\" is already mapped at line %u",
                                      r->match, cc->roles[k].line);
    }
    return 0;
}

int dlg__cfg_load_auth(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"anonymous", "jwt", "client_cert", NULL};
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "auth", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "anonymous")) &&
        (rc = dlg__yaml_bool(y, v, "auth.anonymous", &dlg__cfg(y)->auth.anonymous)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "jwt")) && (rc = load_jwt(y, v)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "client_cert")) && (rc = load_client_cert(y, v)) < 0)
        return rc;
    return 0;
}
