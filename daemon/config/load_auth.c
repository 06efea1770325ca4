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
    size_t mark = y->n_errors;
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    k->line = (unsigned)m->start_mark.line + 1;
    if ((v = dlg__yaml_get(y, m, "kid"))) {
        dlg__yaml_keypath(p, path, "kid");
        DLG_CFG_TRY(dlg__yaml_opt_text(y, v, p, DLG_CFG_NAME_MAX, &k->kid));
    }
    if (!(v = dlg__yaml_get(y, m, "alg"))) {
        dlg__yaml_missing(y, m, path, "alg");
    } else {
        dlg__yaml_keypath(p, path, "alg");
        DLG_CFG_TRY(dlg__yaml_enum(y, v, p, algs, &k->alg));
    }
    if ((v = dlg__yaml_get(y, m, "secret_file"))) {
        dlg__yaml_keypath(p, path, "secret_file");
        DLG_CFG_TRY(dlg__yaml_path(y, v, p, &k->secret_file));
    }
    if ((v = dlg__yaml_get(y, m, "public_key_file"))) {
        dlg__yaml_keypath(p, path, "public_key_file");
        DLG_CFG_TRY(dlg__yaml_path(y, v, p, &k->public_key_file));
    }
    if (y->n_errors > mark)
        return DLG_ECONFIG;
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
        "cache_size", "keys", NULL};
    size_t mark = y->n_errors;
    dlg_config_jwt *j = &dlg__cfg(y)->auth.jwt;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "auth.jwt", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "issuer")))
        DLG_CFG_TRY(dlg__yaml_opt_text(y, v, "auth.jwt.issuer", DLG_CFG_TEXT_MAX, &j->issuer));
    if ((v = dlg__yaml_get(y, m, "audience")))
        DLG_CFG_TRY(
            dlg__yaml_opt_text(y, v, "auth.jwt.audience", DLG_CFG_TEXT_MAX, &j->audience));
    if ((v = dlg__yaml_get(y, m, "issuer_audience_optional")))
        DLG_CFG_TRY(dlg__yaml_bool(y, v, "auth.jwt.issuer_audience_optional",
                                   &j->issuer_audience_optional));
    if ((v = dlg__yaml_get(y, m, "leeway_seconds")))
        DLG_CFG_TRY(dlg__yaml_u32(y, v, "auth.jwt.leeway_seconds", 0, 86400, &j->leeway_seconds));
    if ((v = dlg__yaml_get(y, m, "cache_size")))
        DLG_CFG_TRY(dlg__yaml_u32(y, v, "auth.jwt.cache_size", 0, 1000000, &j->cache_size));
    if ((v = dlg__yaml_get(y, m, "roles_claim"))) {
        DLG_CFG_TRY(
            rc = dlg__yaml_text(y, v, "auth.jwt.roles_claim", DLG_CFG_NAME_MAX, &j->roles_claim));
        if (rc == 0 && !*j->roles_claim)
            dlg__yaml_fail(y, v, "auth.jwt.roles_claim", "must not be empty");
    }
    /* The issuer and audience check below is only fair when they read well. */
    bool head_ok = y->n_errors == mark;
    if (!(v = dlg__yaml_get(y, m, "keys")))
        return dlg__yaml_since(y, mark);
    if ((rc = dlg__yaml_seq_alloc(y, v, "auth.jwt.keys", sizeof(*j->keys), (void **)&j->keys,
                                  &j->n_keys)) < 0)
        return rc;
    for (size_t i = 0; i < j->n_keys; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, "auth.jwt.keys", i);
        dlg_ynode *km = dlg__yaml_seq_at(y, v, i);
        DLG_CFG_TRY(rc = load_jwt_key(y, km, p, &j->keys[i]));
        if (rc < 0)
            continue;
        for (size_t k = 0; k < i && j->keys[i].kid; k++)
            if (j->keys[k].kid && !strcmp(j->keys[k].kid, j->keys[i].kid)) {
                dlg__yaml_fail(y, km, p, "duplicate kid \"%s\" (also auth.jwt.keys[%zu], line %u)",
                               j->keys[i].kid, k, j->keys[k].line);
                break;
            }
        /* A public key verifies tokens a third party mints for many
         * services: without iss and aud any of its tokens would do. */
        if (head_ok && j->keys[i].alg != DLG_CFG_ALG_HS256 && !j->issuer_audience_optional &&
            (!j->issuer || !j->audience))
            dlg__yaml_fail(y, km, p,
                           "an %s key needs auth.jwt.issuer and auth.jwt.audience (set "
                           "auth.jwt.issuer_audience_optional: true to opt out)",
                           j->keys[i].alg == DLG_CFG_ALG_RS256   ? "RS256"
                           : j->keys[i].alg == DLG_CFG_ALG_ES256 ? "ES256"
                                                                 : "EdDSA");
    }
    return dlg__yaml_since(y, mark);
}

/* One auth.client_cert.roles entry. */
static int load_cert_roles(dlg_yaml *y, const dlg_ynode *rm, const char *p,
                           dlg_config_cert_roles *r) {
    static const char *const rkeys[] = {"match", "roles", NULL};
    size_t mark = y->n_errors;
    char q[DLG_YAML_KEYPATH];
    dlg_ynode *f;
    int rc = dlg__yaml_want_map(y, rm, p, rkeys);
    if (rc < 0)
        return rc;
    r->line = (unsigned)rm->start_mark.line + 1;
    if (!(f = dlg__yaml_get(y, rm, "match"))) {
        dlg__yaml_missing(y, rm, p, "match");
    } else {
        dlg__yaml_keypath(q, p, "match");
        DLG_CFG_TRY(rc = dlg__yaml_text(y, f, q, DLG_CFG_NAME_MAX, &r->match));
        if (rc == 0 && !*r->match)
            dlg__yaml_fail(y, f, q, "must not be empty");
    }
    if (!(f = dlg__yaml_get(y, rm, "roles"))) {
        dlg__yaml_missing(y, rm, p, "roles");
    } else {
        dlg__yaml_keypath(q, p, "roles");
        DLG_CFG_TRY(dlg__cfg_strv(y, f, q, DLG_CFG_K_GRANT, &r->roles));
    }
    return dlg__yaml_since(y, mark);
}

static int load_client_cert(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"user_from", "roles", NULL};
    static const char *const from[] = {"cn", "dns", "email", "uri", NULL};
    size_t mark = y->n_errors;
    dlg_config_client_cert *cc = &dlg__cfg(y)->auth.client_cert;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "auth.client_cert", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "user_from"))) {
        /* "san" took the first DNS or email SAN: two names that differ only
         * in their type (email:admin, DNS:admin) were one user. */
        if (v->type == YAML_SCALAR_NODE && !strcmp(dlg__yaml_sval(v), "san"))
            dlg__yaml_fail(y, v, "auth.client_cert.user_from",
                           "\"san\" is ambiguous (a DNS and an email name could be one user): "
                           "pick dns, email or uri");
        else
            DLG_CFG_TRY(dlg__yaml_enum(y, v, "auth.client_cert.user_from", from, &cc->user_from));
    }
    if (!(v = dlg__yaml_get(y, m, "roles")))
        return dlg__yaml_since(y, mark);
    if ((rc = dlg__yaml_seq_alloc(y, v, "auth.client_cert.roles", sizeof(*cc->roles),
                                  (void **)&cc->roles, &cc->n_roles)) < 0)
        return rc;
    for (size_t i = 0; i < cc->n_roles; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg_config_cert_roles *r = &cc->roles[i];
        dlg_ynode *rm = dlg__yaml_seq_at(y, v, i);
        dlg__yaml_idxpath(p, "auth.client_cert.roles", i);
        DLG_CFG_TRY(rc = load_cert_roles(y, rm, p, r));
        if (rc < 0)
            continue;
        for (size_t k = 0; k < i; k++)
            if (cc->roles[k].match && !strcmp(cc->roles[k].match, r->match)) {
                dlg__yaml_fail(y, rm, p, "match \"%s\" is already mapped at line %u", r->match,
                               cc->roles[k].line);
                break;
            }
    }
    return dlg__yaml_since(y, mark);
}

int dlg__cfg_load_auth(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"anonymous", "jwt", "client_cert", NULL};
    size_t mark = y->n_errors;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "auth", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "anonymous")))
        DLG_CFG_TRY(dlg__yaml_bool(y, v, "auth.anonymous", &dlg__cfg(y)->auth.anonymous));
    if ((v = dlg__yaml_get(y, m, "jwt")))
        DLG_CFG_TRY(load_jwt(y, v));
    if ((v = dlg__yaml_get(y, m, "client_cert")))
        DLG_CFG_TRY(load_client_cert(y, v));
    return dlg__yaml_since(y, mark);
}
