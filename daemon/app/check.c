/* check.c: `dialogued --check-config` (see check.h): the loader's errors,
 * then every file and rule the configuration names, each error at the
 * position of the key that named it. */
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "boot.h"
#include "bus.h"
#include "config.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_schema.h"
#include "dlg_tlsio.h"
#include "history.h"
#include "jwt.h"
#include "room.h"
#include "server.h"
#include "store_sqlite.h"
#include "tlsctx.h"
#include "web.h"

typedef struct checker {
    const dlg_check_opts *o;
    const dlg_config *cfg;        /* NULL when run without --config */
    const dlg_config_errors *errs; /* the loader's: what is not looked at again */
    const char *file;             /* for messages */
    FILE *out;
    int n;                        /* errors reported */
} checker;

/* Whether the loader already refused something at or under path. */
static bool refused(const checker *ck, const char *path) {
    return ck->errs && dlg_config_errors_under(ck->errs, path);
}

/* One line: "file:line:col: path: what" for a key of the file, "file:
 * path: what" for one it does not hold, "dialogued: flag: what" for a
 * command-line value (flag not NULL). A warning is not counted. */
static void say(checker *ck, bool warning, const char *flag, const char *path, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static void say(checker *ck, bool warning, const char *flag, const char *path, const char *fmt,
                ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *w = warning ? "warning: " : "";
    unsigned line, col;
    if (flag)
        fprintf(ck->out, "dialogued: %s: %s%s\n", flag, w, msg);
    else if (ck->cfg && dlg_config_where(ck->cfg, path, &line, &col) == 0)
        fprintf(ck->out, "%s:%u:%u: %s: %s%s\n", ck->file, line, col, path, w, msg);
    else
        fprintf(ck->out, "%s: %s: %s%s\n", ck->file, path, w, msg);
    if (!warning)
        ck->n++;
}

/* ---- listeners ---------------------------------------------------------- */

/* The OpenSSL reason for what just failed. */
static const char *ssl_why(char *buf, size_t len) {
    dlg_tlsio_last_error(buf, len);
    ERR_clear_error();
    return buf;
}

/* A file that cannot be read says so in words (OpenSSL's own reason for
 * a missing file is "system lib"). */
static bool readable(const char *file, char *why, size_t len) {
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(why, len, "%s", strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* Each file of one TLS listener on its own, so that a bad key and a bad
 * CA are two errors; then the context the daemon would build, for what
 * only the whole can tell. */
static int check_listener(checker *ck, size_t i, const dlg_listener_conf *l,
                          bool cert_flag, bool key_flag) {
    char p[64], why[512] = "";
    int rc = 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return DLG_ENOMEM;
    int before = ck->n;
    if (l->cert_file == NULL || l->key_file == NULL) {
        snprintf(p, sizeof(p), "listen[%zu]", i);
        say(ck, false, NULL, p, "a certificate and key are required (cert and key, or --cert "
                                "and --key for the first listener), or tls: false");
        goto done;
    }
    snprintf(p, sizeof(p), "listen[%zu].cert", i);
    bool cert_ok = readable(l->cert_file, why, sizeof(why)) &&
                   SSL_CTX_use_certificate_chain_file(ctx, l->cert_file) == 1;
    if (!cert_ok)
        say(ck, false, cert_flag ? "--cert" : NULL, p, "cannot load certificate %s: %s",
            l->cert_file, *why ? why : ssl_why(why, sizeof(why)));
    snprintf(p, sizeof(p), "listen[%zu].key", i);
    *why = '\0';
    bool key_ok = readable(l->key_file, why, sizeof(why)) &&
                  SSL_CTX_use_PrivateKey_file(ctx, l->key_file, SSL_FILETYPE_PEM) == 1;
    if (!key_ok)
        say(ck, false, key_flag ? "--key" : NULL, p, "cannot load key %s: %s", l->key_file,
            *why ? why : ssl_why(why, sizeof(why)));
    if (cert_ok && key_ok && SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        say(ck, false, key_flag ? "--key" : NULL, p, "key %s does not match certificate %s",
            l->key_file, l->cert_file);
    }
    bool ca_ok = false;
    if (l->client_ca_file) {
        snprintf(p, sizeof(p), "listen[%zu].client_ca", i);
        *why = '\0';
        ca_ok = readable(l->client_ca_file, why, sizeof(why)) &&
                SSL_CTX_load_verify_locations(ctx, l->client_ca_file, NULL) == 1;
        if (!ca_ok)
            say(ck, false, NULL, p, "cannot load client CA %s: %s", l->client_ca_file,
                *why ? why : ssl_why(why, sizeof(why)));
    }
    /* A CRL is checked against the CAs it revokes for: only with them. */
    if (l->client_crl_file && ca_ok) {
        snprintf(p, sizeof(p), "listen[%zu].client_crl", i);
        rc = dlg_tlsctx_load_crls(SSL_CTX_get_cert_store(ctx), l->client_crl_file, why,
                                  sizeof(why));
        if (rc == DLG_ENOMEM)
            goto done;
        if (rc < 0)
            say(ck, false, NULL, p, "%s", why);
        rc = 0;
    }
    if (ck->n == before) {
        SSL_CTX *whole = NULL;
        int own = ck->o->tls_own_records >= 0 ? ck->o->tls_own_records
                                              : (ck->cfg ? ck->cfg->tls_own_records : 1);
        snprintf(p, sizeof(p), "listen[%zu]", i);
        rc = dlg_tlsctx_new(l, own, &whole, why, sizeof(why));
        if (rc == DLG_ENOMEM)
            goto done;
        if (rc < 0)
            say(ck, false, NULL, p, "TLS: %s", why);
        rc = 0;
        SSL_CTX_free(whole);
    }
done:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

static int check_listeners(checker *ck, const dlg_server_opts *so) {
    for (size_t i = 0; i < so->n_listen; i++) {
        char p[32];
        snprintf(p, sizeof(p), "listen[%zu]", i);
        if (so->listen[i].plaintext || refused(ck, p))
            continue;
        int rc = check_listener(ck, i, &so->listen[i], i == 0 && ck->o->cert,
                                i == 0 && ck->o->key);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- tokens ------------------------------------------------------------- */

static int check_jwt(checker *ck) {
    const dlg_config_jwt *j = &ck->cfg->auth.jwt;
    if (j->n_keys == 0)
        return 0;
    dlg_jwt_verifier *v = NULL;
    int rc = dlg_jwt_verifier_new(&v);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < j->n_keys; i++) {
        const dlg_config_jwt_key *k = &j->keys[i];
        char p[64], why[512] = "";
        snprintf(p, sizeof(p), "auth.jwt.keys[%zu]", i);
        if (refused(ck, p))
            continue;
        if (k->alg == DLG_CFG_ALG_HS256) {
            strcat(p, ".secret_file");
            rc = dlg_jwt_add_secret_file(v, k->kid, k->secret_file, why, sizeof(why));
        } else {
            strcat(p, ".public_key_file");
            rc = dlg_jwt_add_public_key_file(v, k->kid, k->alg + 1, k->public_key_file, why,
                                             sizeof(why));
        }
        if (rc == DLG_ENOMEM)
            break;
        if (rc < 0)
            say(ck, false, NULL, p, "%s", why);
        rc = 0;
    }
    dlg_jwt_verifier_free(v);
    return rc;
}

/* ---- schemas and rooms -------------------------------------------------- */

/* Loads every schema file (each error on its own); *sc is NULL when one
 * could not be loaded (the rooms' events are then not checked against an
 * incomplete set). */
static int check_schemas(checker *ck, dlg_schema **sc) {
    const dlg_config_strv *fs = ck->cfg ? &ck->cfg->schemas : NULL;
    size_t n = ck->o->n_schemas + (fs ? fs->n : 0);
    *sc = NULL;
    if (n == 0)
        return refused(ck, "schemas") ? 1 : 0;
    int rc = dlg_schema_new(sc);
    if (rc < 0)
        return rc;
    /* A list the loader refused is not looked into: its entries may no
     * longer be where the file has them. */
    int bad = refused(ck, "schemas");
    if (bad)
        n = ck->o->n_schemas;
    for (size_t i = 0; i < n; i++) {
        bool flag = i < ck->o->n_schemas;
        const char *file = flag ? ck->o->schemas[i] : fs->v[i - ck->o->n_schemas];
        char p[64], why[512];
        snprintf(p, sizeof(p), "schemas[%zu]", i - (flag ? 0 : ck->o->n_schemas));
        rc = dlg_schema_load_file(*sc, file, why, sizeof(why));
        if (rc == DLG_ENOMEM)
            goto fail;
        if (rc < 0) {
            say(ck, false, flag ? "--schema" : NULL, p, "%s", why);
            bad = 1;
        }
    }
    if (bad) {
        dlg_schema_free(*sc);
        *sc = NULL;
    }
    return bad;
fail:
    dlg_schema_free(*sc);
    *sc = NULL;
    return DLG_ENOMEM;
}

/* Each room as the daemon builds it: its events against the schemas (when
 * they all loaded), its rules, its history rings. */
static int check_rooms(checker *ck, const dlg_schema *sc, bool schemas_ok) {
    dlg_rooms *rooms = dlg_rooms_new();
    if (rooms == NULL)
        return DLG_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < ck->cfg->n_rooms; i++) {
        const dlg_config_room *cr = &ck->cfg->rooms[i];
        char p[64], q[96], why[512];
        snprintf(p, sizeof(p), "rooms[%zu]", i);
        if (refused(ck, p))
            continue;
        for (size_t k = 0; schemas_ok && k < cr->events.n; k++) {
            const char *e = cr->events.v[k];
            if (strcmp(e, "*") == 0 || (sc && dlg_schema_event_find(sc, e)))
                continue;
            snprintf(q, sizeof(q), "%s.events[%zu]", p, k);
            say(ck, false, NULL, q, "room %s lists event %s, but no loaded schema defines it "
                                    "(add its descriptor set to `schemas`)", cr->id, e);
        }
        dlg_room_spec spec = {
            .id = cr->id, .name = cr->name, .description = cr->description,
            .events = (const char *const *)cr->events.v, .n_events = cr->events.n,
            .default_subs = (const char *const *)cr->default_subscriptions.v,
            .n_default_subs = cr->default_subscriptions.n, .max_size = cr->max_size,
        };
        dlg_room *r = NULL;
        rc = dlg_rooms_add(rooms, &spec, 0, &r, why, sizeof(why));
        if (rc == 0)
            rc = dlg_boot_room_rules(r, cr, why, sizeof(why));
        if (rc == DLG_ENOMEM)
            break;
        if (rc < 0)
            say(ck, false, NULL, p, "%s", why);
        rc = 0;
        if (cr->n_history == 0 && cr->sync_history_on_join == 0)
            continue;
        dlg_hist_rule *rules = dlg_calloc(cr->n_history + 1, sizeof(*rules));
        if (rules == NULL) {
            rc = DLG_ENOMEM;
            break;
        }
        for (size_t k = 0; k < cr->n_history; k++)
            rules[k] = (dlg_hist_rule){.event = cr->history[k].event,
                                       .limit = cr->history[k].limit,
                                       .max_age_s = cr->history[k].max_age_seconds};
        dlg_hroom *hr = NULL;
        rc = dlg_hroom_new(cr->id, rules, cr->n_history, cr->sync_history_on_join, &hr);
        free(rules);
        dlg_hroom_free(hr);
        if (rc == DLG_ENOMEM)
            break;
        snprintf(q, sizeof(q), "%s.history", p);
        if (rc < 0)
            say(ck, false, NULL, q, "cannot set up history: %s", dlg_strerror(rc));
        rc = 0;
    }
    dlg_rooms_free(rooms);
    return rc;
}

/* ---- store and cluster -------------------------------------------------- */

static void check_store(checker *ck) {
    const dlg_config *c = ck->cfg;
    if (c->store != DLG_CFG_STORE_SQLITE || refused(ck, "store") || refused(ck, "store_path"))
        return;
    char why[512], warn[512];
    if (dlg_store_check(c->store_path, why, sizeof(why), warn, sizeof(warn)) != 0)
        say(ck, false, NULL, "store_path", "%s", why);
    else if (*warn)
        say(ck, true, NULL, "store_path", "%s", warn);
}

/* The log file is appended to (or made) at start: it must take writes,
 * or its folder a new file. Nothing is created here. */
static void check_log_file(checker *ck) {
    const char *flag = ck->o->log_file ? "--log-file" : NULL;
    const char *path = flag ? ck->o->log_file : ck->cfg->log_file;
    if (path == NULL || (!flag && refused(ck, "log_file")))
        return;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
            say(ck, false, flag, "log_file", "%s is not a regular file", path);
        else if (access(path, W_OK) != 0)
            say(ck, false, flag, "log_file", "cannot write %s: %s", path, strerror(errno));
        return;
    }
    if (errno != ENOENT) {
        say(ck, false, flag, "log_file", "%s: %s", path, strerror(errno));
        return;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1,
             slash ? path : ".");
    if (access(dir, W_OK | X_OK) != 0)
        say(ck, false, flag, "log_file", "cannot create %s in %s: %s", path, dir,
            strerror(errno));
}

/* The page's folder is read whole at start and on reload: read it the
 * same way, so a missing folder or an oversized file shows here. */
static int check_web(checker *ck) {
    const char *flag = ck->o->web_root ? "--web-root" : NULL;
    const char *root = flag ? ck->o->web_root : ck->cfg->http.web_root;
    if (root == NULL || (!flag && refused(ck, "http.web_root")))
        return 0;
    dlg_web *w = NULL;
    char why[512];
    int rc = dlg_web_load(root, &w, why, sizeof(why));
    dlg_web_free(w);
    if (rc == DLG_ENOMEM)
        return rc;
    if (rc < 0)
        say(ck, false, flag, "http.web_root", "%s", why);
    return 0;
}

/* The bus reads the credentials and TLS files as it is made (no link yet).
 * Its messages start with the key at fault ("cluster.tls.ca: ..."): that
 * key's position when the file has it. */
static int check_cluster(checker *ck) {
    const dlg_config *c = ck->cfg;
    if (!c->cluster.enabled || refused(ck, "cluster"))
        return 0;
    const struct {
        const char *key, *file;
    } files[] = {{"cluster.creds", c->cluster.creds},
                 {"cluster.tls.ca", c->cluster.tls_ca},
                 {"cluster.tls.cert", c->cluster.tls_cert},
                 {"cluster.tls.key", c->cluster.tls_key}};
    int before = ck->n;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char why[256];
        if (files[i].file && !readable(files[i].file, why, sizeof(why)))
            say(ck, false, NULL, files[i].key, "cannot read %s: %s", files[i].file, why);
    }
    if (ck->n != before)
        return 0;
    dlg_server scratch;
    memset(&scratch, 0, sizeof(scratch));
    scratch.log.level = DLG_LOG_ERROR;
    scratch.log.prog = "dialogued";
    dlg_bus *bus = NULL;
    char why[768];
    int rc = dlg_bus_cluster_new(&scratch, &c->cluster, &bus, why, sizeof(why));
    dlg_bus_free(bus);
    if (rc == DLG_ENOMEM)
        return rc;
    if (rc < 0) {
        char key[64] = "";
        const char *colon = strstr(why, ": ");
        size_t kl = colon ? (size_t)(colon - why) : 0;
        if (kl > 8 && kl < sizeof(key) && strncmp(why, "cluster.", 8) == 0)
            snprintf(key, sizeof(key), "%.*s", (int)kl, why);
        if (*key && dlg_config_where(c, key, NULL, NULL) == 0)
            say(ck, false, NULL, key, "%s", colon + 2);
        else
            say(ck, false, NULL, "cluster", "%s", why);
    }
    return 0;
}

/* ---- admin ---------------------------------------------------------------- */

/* The admin listener's certificate and key (as its TLS context is built at
 * start) and its token file (as it is read at start). */
static int check_admin(checker *ck) {
    const dlg_config_admin *a = &ck->cfg->admin;
    char why[1024];
    if (ck->o->admin != NULL) {
        /* --admin ADDR: refused at start as dlg_boot_admin refuses it (an
         * address off loopback without the file's TLS and token). */
        dlg_server scratch;
        memset(&scratch, 0, sizeof(scratch));
        int rc = dlg_boot_admin(&scratch, ck->cfg, ck->o->admin, why, sizeof(why));
        free(scratch.admin_token);
        if (rc == DLG_ENOMEM)
            return rc;
        if (rc < 0 && strncmp(why, "--admin ", 8) == 0)
            say(ck, false, "--admin", NULL, "%s", why + 8);
    }
    if (!a->enabled || refused(ck, "admin"))
        return 0;
    if (a->cert != NULL && a->key != NULL) {
        const char *key = NULL;
        if (!readable(a->cert, why, sizeof(why)))
            say(ck, false, NULL, key = "admin.cert", "cannot read %s: %s", a->cert, why);
        if (!readable(a->key, why, sizeof(why)))
            say(ck, false, NULL, key = "admin.key", "cannot read %s: %s", a->key, why);
        if (key == NULL) {
            dlg_listener_conf l = {.address = a->listen, .cert_file = a->cert,
                                   .key_file = a->key, .admin = 1};
            SSL_CTX *ctx = NULL;
            int rc = dlg_tlsctx_new(&l, 0, &ctx, why, sizeof(why));
            SSL_CTX_free(ctx);
            if (rc == DLG_ENOMEM)
                return rc;
            if (rc < 0)
                say(ck, false, NULL,
                    strstr(why, "key ") == why || strstr(why, "load key ") ? "admin.key"
                                                                          : "admin.cert",
                    "%s", why);
        }
    }
    if (a->token_file != NULL) {
        char *tok = NULL;
        int rc = dlg_boot_read_token(a->token_file, &tok, why, sizeof(why));
        free(tok);
        if (rc == DLG_ENOMEM)
            return rc;
        if (rc < 0)
            say(ck, false, NULL, "admin.token_file", "%s", why);
    }
    return 0;
}

/* ---- the whole ---------------------------------------------------------- */

int dlg_check_config(const dlg_check_opts *o, FILE *out) {
    checker ck = {.o = o, .out = out, .file = o->config ? o->config : "(command line)"};
    dlg_config *cfg = NULL;
    dlg_config_errors errs = {0};
    int rc;
    if (o->config) {
        rc = dlg_config_check(o->config, &cfg, &errs);
        if (rc == DLG_ENOMEM)
            return rc;
        for (size_t i = 0; i < errs.n; i++)
            fprintf(out, "%s\n", errs.v[i].text);
        if (errs.total > errs.n)
            fprintf(out, "%s: %zu more error(s) not shown\n", o->config, errs.total - errs.n);
        ck.n = (int)errs.total;
        ck.errs = &errs;
        rc = 0;
        if (cfg == NULL)
            goto done; /* not readable as YAML: nothing more to look at */
    } else if ((rc = dlg_config_new_default(&cfg)) < 0) {
        return rc;
    }
    ck.cfg = cfg;
    /* The listeners as the daemon would serve them: the file's, with the
     * command line over the first one. */
    dlg_server_opts so;
    dlg_server_opts_default(&so);
    dlg_boot_listeners(&so, cfg);
    if (o->plaintext)
        so.listen[0].plaintext = 1;
    if (o->cert)
        so.listen[0].cert_file = o->cert;
    if (o->key)
        so.listen[0].key_file = o->key;
    dlg_schema *sc = NULL;
    if ((rc = check_listeners(&ck, &so)) < 0 || (rc = check_jwt(&ck)) < 0 ||
        (rc = check_schemas(&ck, &sc)) < 0)
        goto done;
    bool schemas_ok = rc == 0;
    rc = check_rooms(&ck, sc, schemas_ok);
    dlg_schema_free(sc);
    if (rc < 0)
        goto done;
    check_store(&ck);
    check_log_file(&ck);
    if ((rc = check_web(&ck)) < 0)
        goto done;
    if ((rc = check_admin(&ck)) < 0)
        goto done;
    rc = check_cluster(&ck);
done:
    dlg_config_errors_free(&errs);
    dlg_config_free(cfg);
    return rc < 0 ? rc : ck.n;
}
