/* config.c: reads the daemon's YAML configuration into a dlg_config (see
 * config.h), every error pointing at file:line:column and the key path. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "dlg_err.h"

/* libcyaml 1.3 only reports positions as debug-log backtrace text, and a
 * semantic check made after its load has no position at all. libyaml's
 * document loader keeps a mark on every node, so the whole walk below runs
 * on that tree and each check can point at the node it is about. */

#define NAME_MAX_LEN 255
#define TEXT_MAX_LEN 4096
#define PATH_MAX_LEN 4096
#define KEYPATH_LEN 256
#define MAX_BYTES_CAP (1ull << 40)

typedef yaml_node_t node;

typedef struct loader {
    const char *file; /* as the caller named it, for messages */
    char *dir;        /* prefix for relative paths ("" or ".../") */
    yaml_document_t *doc;
    dlg_config *c;
    char *err;
    size_t errlen;
} loader;

/* ---- freeing ------------------------------------------------------------ */

static void strv_free(dlg_config_strv *v) {
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

static void listeners_free(dlg_config_listener *l, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(l[i].address);
        free(l[i].host);
        free(l[i].cert);
        free(l[i].key);
        free(l[i].client_ca);
        free(l[i].client_crl);
    }
    free(l);
}

static void room_free(dlg_config_room *r) {
    free(r->id);
    free(r->name);
    free(r->description);
    strv_free(&r->events);
    strv_free(&r->default_subscriptions);
    strv_free(&r->join);
    strv_free(&r->trigger);
    for (size_t i = 0; i < r->n_trigger_events; i++) {
        free(r->trigger_events[i].event);
        strv_free(&r->trigger_events[i].roles);
    }
    free(r->trigger_events);
    for (size_t i = 0; i < r->n_delivery; i++)
        free(r->delivery[i].event);
    free(r->delivery);
    for (size_t i = 0; i < r->n_history; i++)
        free(r->history[i].event);
    free(r->history);
}

static void alerts_free(dlg_config_alert *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(a[i].message);
    free(a);
}

void dlg_config_free(dlg_config *c) {
    if (!c)
        return;
    free(c->path);
    listeners_free(c->listen, c->n_listen);
    strv_free(&c->schemas);
    free(c->http.web_root);
    strv_free(&c->http.allowed_origins);
    dlg_config_jwt *j = &c->auth.jwt;
    free(j->issuer);
    free(j->audience);
    free(j->roles_claim);
    for (size_t i = 0; i < j->n_keys; i++) {
        free(j->keys[i].kid);
        free(j->keys[i].secret_file);
        free(j->keys[i].public_key_file);
    }
    free(j->keys);
    dlg_config_client_cert *cc = &c->auth.client_cert;
    for (size_t i = 0; i < cc->n_roles; i++) {
        free(cc->roles[i].match);
        strv_free(&cc->roles[i].roles);
    }
    free(cc->roles);
    strv_free(&c->room_admin.create_roles);
    strv_free(&c->room_admin.delete_roles);
    for (size_t i = 0; i < c->n_rooms; i++)
        room_free(&c->rooms[i]);
    free(c->rooms);
    for (size_t i = 0; i < c->n_auto_join; i++) {
        free(c->auto_join[i].role);
        strv_free(&c->auto_join[i].rooms);
    }
    free(c->auto_join);
    free(c->metrics.room);
    alerts_free(c->metrics.alerts, c->metrics.n_alerts);
    free(c->store_path);
    free(c->cluster.node_id);
    strv_free(&c->cluster.nats);
    free(c->cluster.creds);
    free(c->cluster.tls_ca);
    free(c->cluster.tls_cert);
    free(c->cluster.tls_key);
    free(c);
}

const dlg_config_room *dlg_config_find_room(const dlg_config *c, const char *id) {
    if (!c || !id)
        return NULL;
    for (size_t i = 0; i < c->n_rooms; i++)
        if (strcmp(c->rooms[i].id, id) == 0)
            return &c->rooms[i];
    return NULL;
}

/* ---- defaults ----------------------------------------------------------- */

static int listener_default(dlg_config_listener *l) {
    memset(l, 0, sizeof(*l));
    l->address = strdup("127.0.0.1:3000");
    l->host = strdup("127.0.0.1");
    if (!l->address || !l->host)
        return DLG_ENOMEM;
    l->port = 3000;
    l->tls = true;
    return 0;
}

/* The seed's one alert, used when `metrics` has no `alerts` key. */
static int alert_default(dlg_config_alert *a) {
    memset(a, 0, sizeof(*a));
    a->metric = DLG_CFG_METRIC_CPU;
    a->op = DLG_CFG_OP_GT;
    a->threshold = 90;
    a->severity = DLG_CFG_SEV_HIGH;
    a->cooldown_seconds = 60;
    a->message = strdup("CPU usage critical: {value}%");
    return a->message ? 0 : DLG_ENOMEM;
}

/* Fills a zeroed c with every default; on ENOMEM c stays freeable. */
static int fill_defaults(dlg_config *c) {
    c->log_level = DLG_CFG_LOG_INFO;
    c->listen = calloc(1, sizeof(*c->listen));
    if (!c->listen)
        return DLG_ENOMEM;
    c->n_listen = 1;
    if (listener_default(&c->listen[0]) < 0)
        return DLG_ENOMEM;
    c->limits = (dlg_config_limits){
        .max_frame = 1048576,
        .max_connections = 10000,
        .handshake_timeout_ms = 2000,
        .pre_auth_max_bytes = 16384,
        .pre_auth_max_connections = 1000,
        .max_pending_bytes = 67108864,
        .soft_pending_bytes = 8388608,
        .soft_pending_seconds = 30,
        .write_timeout_ms = 10000,
        .heartbeat_ms = 30000,
        .max_rooms_per_connection = 128,
        .room_ops_per_second = 50,
        .room_ops_burst = 500,
        .max_subscriptions = 1024,
        .max_room_events = 10000,
    };
    c->auth.jwt.leeway_seconds = 30;
    c->auth.jwt.roles_claim = strdup("role");
    if (!c->auth.jwt.roles_claim)
        return DLG_ENOMEM;
    c->auth.client_cert.user_from = DLG_CFG_USER_FROM_CN;
    c->metrics.interval_ms = 1000;
    c->store = DLG_CFG_STORE_MEMORY;
    c->tls_own_records = true;
    c->io_uring = true;
    return 0;
}

int dlg_config_new_default(dlg_config **out) {
    if (!out)
        return DLG_EINVAL;
    dlg_config *c = calloc(1, sizeof(*c));
    if (!c)
        return DLG_ENOMEM;
    if (fill_defaults(c) < 0) {
        dlg_config_free(c);
        return DLG_ENOMEM;
    }
    *out = c;
    return 0;
}

/* ---- messages ----------------------------------------------------------- */

/* A short, printable rendering of what a node holds, for "got ..." texts:
 * an overlong or binary value must not flood the log line. */
static void show(const node *n, char *buf, size_t len) {
    if (n->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, len, "a list");
        return;
    }
    if (n->type == YAML_MAPPING_NODE) {
        snprintf(buf, len, "a mapping");
        return;
    }
    const unsigned char *s = n->data.scalar.value;
    size_t sl = n->data.scalar.length, o = 0, keep = 60;
    if (len < 8)
        return;
    buf[o++] = '"';
    for (size_t i = 0; i < sl && i < keep && o + 6 < len; i++)
        buf[o++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    if (sl > keep && o + 6 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Writes "file:line:col: path: message" (position omitted when n is NULL)
 * and returns DLG_ECONFIG, so a check can `return fail_at(...)`. */
static int fail_at(loader *x, const node *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(loader *x, const node *n, const char *path, const char *fmt, ...) {
    if (!x->err || !x->errlen)
        return DLG_ECONFIG;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *sep = *path ? ": " : "";
    if (n)
        snprintf(x->err, x->errlen, "%s:%lu:%lu: %s%s%s", x->file,
                 (unsigned long)n->start_mark.line + 1, (unsigned long)n->start_mark.column + 1,
                 path, sep, msg);
    else
        snprintf(x->err, x->errlen, "%s: %s%s%s", x->file, path, sep, msg);
    return DLG_ECONFIG;
}

static void keypath(char *out, const char *parent, const char *key) {
    if (snprintf(out, KEYPATH_LEN, "%s%s%s", parent, *parent ? "." : "", key) >= KEYPATH_LEN)
        out[KEYPATH_LEN - 1] = '\0';
}

static void idxpath(char *out, const char *parent, size_t i) {
    if (snprintf(out, KEYPATH_LEN, "%s[%zu]", parent, i) >= KEYPATH_LEN)
        out[KEYPATH_LEN - 1] = '\0';
}

/* ---- tree access -------------------------------------------------------- */

static node *at(loader *x, int idx) {
    return yaml_document_get_node(x->doc, idx);
}

static const char *sval(const node *n) {
    return (const char *)n->data.scalar.value;
}

static bool is_null(const node *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static size_t seq_len(const node *n) {
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static node *seq_at(loader *x, const node *n, size_t i) {
    return at(x, n->data.sequence.items.start[i]);
}

static int want(loader *x, const node *n, const char *path, yaml_node_type_t t) {
    if (n->type == t)
        return 0;
    char got[80];
    show(n, got, sizeof(got));
    const char *what = t == YAML_MAPPING_NODE    ? "a mapping"
                       : t == YAML_SEQUENCE_NODE ? "a list"
                                                 : "a single value";
    return fail_at(x, n, path, "expected %s, got %s", what, got);
}

/* Rejects keys outside keys[] (NULL-terminated), non-scalar keys and keys
 * given twice: YAML parsers disagree on which duplicate wins. */
static int check_keys(loader *x, const node *map, const char *path, const char *const *keys) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        node *k = at(x, p->key);
        char got[80];
        show(k, got, sizeof(got));
        if (k->type != YAML_SCALAR_NODE)
            return fail_at(x, k, path, "expected a key name, got %s", got);
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], sval(k)) != 0)
            i++;
        if (!keys[i]) {
            char list[512];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; keys[j] && o < sizeof(list); j++)
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", keys[j]);
            return fail_at(x, k, path, "unknown key %s (expected one of: %s)", got, list);
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            node *kq = at(x, q->key);
            if (kq->type == YAML_SCALAR_NODE && strcmp(sval(kq), sval(k)) == 0)
                return fail_at(x, k, path, "duplicate key %s (first at line %lu)", got,
                               (unsigned long)kq->start_mark.line + 1);
        }
    }
    return 0;
}

/* The value of key in map, or NULL when the key is absent or null (a null
 * value means "use the default"). */
static node *get(loader *x, const node *map, const char *key) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        node *k = at(x, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), key) == 0) {
            node *v = at(x, p->value);
            return is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

/* A mapping with only allowed keys, for the value at path. */
static int want_map(loader *x, const node *n, const char *path, const char *const *keys) {
    int rc = want(x, n, path, YAML_MAPPING_NODE);
    return rc < 0 ? rc : check_keys(x, n, path, keys);
}

static int missing(loader *x, const node *map, const char *path, const char *key) {
    return fail_at(x, map, path, "missing required key \"%s\"", key);
}

/* ---- typed values ------------------------------------------------------- */

/* Copies a scalar of at most maxlen bytes into *out (replacing what was
 * there). Empty strings are kept; callers decide what "" means. */
static int get_text(loader *x, const node *n, const char *path, size_t maxlen, char **out) {
    int rc = want(x, n, path, YAML_SCALAR_NODE);
    if (rc < 0)
        return rc;
    size_t len = n->data.scalar.length;
    if (strlen(sval(n)) != len)
        return fail_at(x, n, path, "contains a NUL byte");
    if (len > maxlen)
        return fail_at(x, n, path, "is %zu bytes long (at most %zu)", len, maxlen);
    char *s = strdup(sval(n));
    if (!s)
        return DLG_ENOMEM;
    free(*out);
    *out = s;
    return 0;
}

/* Like get_text, but "" leaves *out NULL (optional strings). */
static int get_opt_text(loader *x, const node *n, const char *path, size_t maxlen, char **out) {
    int rc = get_text(x, n, path, maxlen, out);
    if (rc == 0 && !**out) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int get_path(loader *x, const node *n, const char *path, char **out) {
    char *raw = NULL;
    int rc = get_text(x, n, path, PATH_MAX_LEN, &raw);
    if (rc < 0)
        return rc;
    if (!*raw) {
        free(raw);
        return fail_at(x, n, path, "expected a file path, got \"\"");
    }
    char *s = raw;
    if (raw[0] != '/' && x->dir[0]) {
        size_t dl = strlen(x->dir), rl = strlen(raw);
        s = malloc(dl + rl + 1);
        if (!s) {
            free(raw);
            return DLG_ENOMEM;
        }
        memcpy(s, x->dir, dl);
        memcpy(s + dl, raw, rl + 1);
        free(raw);
    }
    free(*out);
    *out = s;
    return 0;
}

static bool parse_u64(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int get_uint(loader *x, const node *n, const char *path, uint64_t min, uint64_t max,
                    uint64_t *out) {
    uint64_t v;
    char got[80];
    show(n, got, sizeof(got));
    if (n->type != YAML_SCALAR_NODE || !parse_u64(sval(n), &v))
        return fail_at(x, n, path, "expected an unsigned integer, got %s", got);
    if (v < min || v > max)
        return fail_at(x, n, path, "%llu is out of range (expected %llu to %llu)",
                       (unsigned long long)v, (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

static int get_u32(loader *x, const node *n, const char *path, uint32_t min, uint32_t max,
                   uint32_t *out) {
    uint64_t v;
    int rc = get_uint(x, n, path, min, max, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

/* YAML 1.1 booleans, which is what libyaml's users expect to write. */
static int bool_word(const char *s) {
    static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, t[i]))
            return 1;
        if (!strcasecmp(s, f[i]))
            return 0;
    }
    return -1;
}

static int get_bool(loader *x, const node *n, const char *path, bool *out) {
    int b = n->type == YAML_SCALAR_NODE ? bool_word(sval(n)) : -1;
    if (b < 0) {
        char got[80];
        show(n, got, sizeof(got));
        return fail_at(x, n, path, "expected true or false, got %s", got);
    }
    *out = b;
    return 0;
}

static int get_enum(loader *x, const node *n, const char *path, const char *const *names,
                    int *out) {
    if (n->type == YAML_SCALAR_NODE)
        for (int i = 0; names[i]; i++)
            if (strcmp(names[i], sval(n)) == 0) {
                *out = i;
                return 0;
            }
    char got[80], list[256];
    size_t o = 0;
    list[0] = '\0';
    show(n, got, sizeof(got));
    for (size_t j = 0; names[j] && o < sizeof(list); j++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", names[j]);
    return fail_at(x, n, path, "expected one of: %s; got %s", list, got);
}

static int get_double(loader *x, const node *n, const char *path, double *out) {
    char got[80];
    show(n, got, sizeof(got));
    if (n->type != YAML_SCALAR_NODE)
        return fail_at(x, n, path, "expected a number, got %s", got);
    const char *s = sval(n);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* strtod also takes hex, "inf" and "nan": none of them is a threshold. */
    bool lead_ok = (*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.';
    if (!lead_ok || *end || end == s || errno || !isfinite(v) || strpbrk(s, "xX"))
        return fail_at(x, n, path, "expected a number, got %s", got);
    *out = v;
    return 0;
}

/* ---- names -------------------------------------------------------------- */

static bool name_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

/* Room ids and event names go on the wire and into logs and metrics labels,
 * hence the narrow character set. */
static int check_name(loader *x, const node *n, const char *path, const char *s) {
    if (!*s)
        return fail_at(x, n, path, "must not be empty");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!name_char(*p)) {
            char got[80];
            show(n, got, sizeof(got));
            if (*p >= 0x20 && *p < 0x7f)
                return fail_at(x, n, path,
                               "invalid character '%c' in %s (allowed: A-Z a-z 0-9 _ . : -)", *p,
                               got);
            return fail_at(x, n, path, "invalid byte 0x%02x in %s (allowed: A-Z a-z 0-9 _ . : -)",
                           *p, got);
        }
    return 0;
}

/* Roles come from JWT claims and certificate mappings, so any visible text
 * is allowed; blanks and control bytes would only hide mistakes. */
static int check_role(loader *x, const node *n, const char *path, const char *s) {
    if (!*s)
        return fail_at(x, n, path, "a role must not be empty");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) {
            char got[80];
            show(n, got, sizeof(got));
            return fail_at(x, n, path, "a role must not contain blanks or control characters: %s",
                           got);
        }
    return 0;
}

enum { K_NAME, K_EVENT, K_ROLE, K_GRANT, K_PATH, K_ORIGIN };

/* An origin as browsers send it: scheme://host[:port], nothing after. */
static int check_origin(loader *x, const node *n, const char *path, const char *o) {
    if (strcmp(o, "*") == 0)
        return 0;
    const char *h = strncmp(o, "https://", 8) == 0 ? o + 8
                    : strncmp(o, "http://", 7) == 0 ? o + 7 : NULL;
    if (h == NULL || !*h || strpbrk(h, "/?#@ ") != NULL)
        return fail_at(x, n, path, "\"%s\" is no origin: write scheme://host[:port], e.g. "
                                   "https://dash.example.com", o);
    return 0;
}

/* A list of strings of one kind: K_NAME room ids, K_EVENT event names or
 * "*" alone, K_ROLE roles or "*", K_GRANT roles without "*", K_PATH paths. */
static int get_strv(loader *x, const node *n, const char *path, int kind, dlg_config_strv *out) {
    int rc = want(x, n, path, YAML_SEQUENCE_NODE);
    if (rc < 0)
        return rc;
    strv_free(out);
    size_t cnt = seq_len(n);
    if (!cnt)
        return 0;
    out->v = calloc(cnt, sizeof(*out->v));
    if (!out->v)
        return DLG_ENOMEM;
    out->n = cnt;
    size_t star = cnt;
    for (size_t i = 0; i < cnt; i++) {
        node *it = seq_at(x, n, i);
        char p[KEYPATH_LEN];
        idxpath(p, path, i);
        rc = kind == K_PATH ? get_path(x, it, p, &out->v[i])
                            : get_text(x, it, p, NAME_MAX_LEN, &out->v[i]);
        if (rc < 0)
            return rc;
        const char *s = out->v[i];
        bool is_star = strcmp(s, "*") == 0;
        if (kind == K_PATH)
            rc = 0;
        else if (kind == K_ORIGIN)
            rc = check_origin(x, it, p, s);
        else if (is_star && (kind == K_EVENT || kind == K_ROLE))
            star = i;
        else if (is_star && kind == K_GRANT)
            rc = fail_at(x, it, p, "\"*\" cannot be granted as a role");
        else if (kind == K_NAME || kind == K_EVENT)
            rc = check_name(x, it, p, s);
        else
            rc = check_role(x, it, p, s);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->v[j], s) == 0)
                return fail_at(x, it, p, "duplicate entry \"%s\"", s);
    }
    if (kind == K_EVENT && star < cnt && cnt > 1) {
        char p[KEYPATH_LEN];
        idxpath(p, path, star);
        return fail_at(x, seq_at(x, n, star), p, "\"*\" must be the only entry of the list");
    }
    return 0;
}

static bool strv_has(const dlg_config_strv *v, const char *s) {
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i], s) == 0)
            return true;
    return false;
}

/* Allocates *v for the entries of sequence n; *cnt is set at once so a
 * failure half-way leaves zeroed, freeable entries. */
static int seq_alloc(loader *x, const node *n, const char *path, size_t size, void **v,
                     size_t *cnt) {
    int rc = want(x, n, path, YAML_SEQUENCE_NODE);
    if (rc < 0)
        return rc;
    *cnt = seq_len(n);
    *v = *cnt ? calloc(*cnt, size) : NULL;
    return *cnt && !*v ? DLG_ENOMEM : 0;
}

/* ---- listen ------------------------------------------------------------- */

static bool host_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-';
}

static int parse_address(loader *x, const node *n, const char *path, dlg_config_listener *l) {
    const char *s = l->address, *hs = s, *he, *ps;
    char got[80];
    show(n, got, sizeof(got));
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return fail_at(x, n, path, "expected [IPv6 address]:port, got %s", got);
        hs = s + 1;
        he = rb;
        ps = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return fail_at(x, n, path, "expected host:port, got %s", got);
        if (memchr(s, ':', (size_t)(colon - s)))
            return fail_at(x, n, path, "an IPv6 address needs brackets, e.g. [::1]:3000; got %s",
                           got);
        he = colon;
        ps = colon + 1;
    }
    size_t hl = (size_t)(he - hs);
    uint64_t port;
    if (!parse_u64(ps, &port) || port > 65535)
        return fail_at(x, n, path, "expected a port from 0 to 65535 after the last ':', got %s",
                       got);
    if (hl == 0 || hl > 253)
        return fail_at(x, n, path, "expected host:port with a host name or IP address, got %s",
                       got);
    char *host = strndup(hs, hl);
    if (!host)
        return DLG_ENOMEM;
    unsigned char addr[16];
    bool ok = inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, host, addr) == 1;
    if (!ok && s[0] != '[') {
        ok = true;
        for (size_t i = 0; i < hl; i++)
            ok = ok && host_char((unsigned char)host[i]);
    }
    if (!ok) {
        free(host);
        return fail_at(x, n, path, "not an IP address or host name: %s", got);
    }
    free(l->host);
    l->host = host;
    l->port = (uint16_t)port;
    return 0;
}

static int load_listener(loader *x, const node *m, const char *path, dlg_config_listener *l) {
    static const char *const keys[] = {
        "address", "tls", "cert", "key", "client_ca", "client_crl", "require_client_cert", NULL};
    char p[KEYPATH_LEN];
    node *v;
    int rc = want_map(x, m, path, keys);
    if (rc < 0 || (rc = listener_default(l)) < 0)
        return rc;
    l->line = (unsigned)m->start_mark.line + 1;
    if ((v = get(x, m, "address"))) {
        keypath(p, path, "address");
        if ((rc = get_text(x, v, p, 300, &l->address)) < 0 || (rc = parse_address(x, v, p, l)) < 0)
            return rc;
    }
    static const struct {
        const char *key;
        size_t off;
    } paths[] = {
        {"cert", offsetof(dlg_config_listener, cert)},
        {"key", offsetof(dlg_config_listener, key)},
        {"client_ca", offsetof(dlg_config_listener, client_ca)},
        {"client_crl", offsetof(dlg_config_listener, client_crl)},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if ((v = get(x, m, paths[i].key))) {
            keypath(p, path, paths[i].key);
            if ((rc = get_path(x, v, p, (char **)((char *)l + paths[i].off))) < 0)
                return rc;
        }
    if ((v = get(x, m, "tls"))) {
        keypath(p, path, "tls");
        if ((rc = get_bool(x, v, p, &l->tls)) < 0)
            return rc;
    }
    if ((v = get(x, m, "require_client_cert"))) {
        keypath(p, path, "require_client_cert");
        if ((rc = get_bool(x, v, p, &l->require_client_cert)) < 0)
            return rc;
    }
    if (l->tls && !l->cert)
        return fail_at(x, m, path, "missing \"cert\" (required when tls is true)");
    if (l->tls && !l->key)
        return fail_at(x, m, path, "missing \"key\" (required when tls is true)");
    if (!l->tls && (l->client_ca || l->client_crl || l->require_client_cert))
        return fail_at(x, m, path, "client certificates (client_ca, client_crl, "
                                   "require_client_cert) need tls: true");
    if (l->require_client_cert && !l->client_ca)
        return fail_at(x, m, path, "require_client_cert is true but client_ca is missing");
    if (l->client_crl && !l->client_ca)
        return fail_at(x, m, path, "client_crl is set but client_ca is missing");
    return 0;
}

static int load_listen(loader *x, const node *n) {
    dlg_config *c = x->c;
    listeners_free(c->listen, c->n_listen);
    c->listen = NULL;
    c->n_listen = 0;
    int rc = seq_alloc(x, n, "listen", sizeof(*c->listen), (void **)&c->listen, &c->n_listen);
    if (rc < 0)
        return rc;
    if (!c->n_listen)
        return fail_at(x, n, "listen", "expected at least one listener (or leave the key out)");
    if (c->n_listen > DLG_CFG_MAX_LISTENERS)
        return fail_at(x, n, "listen", "%zu listeners; at most %d are served", c->n_listen,
                       DLG_CFG_MAX_LISTENERS);
    for (size_t i = 0; i < c->n_listen; i++) {
        char p[KEYPATH_LEN];
        idxpath(p, "listen", i);
        dlg_config_listener *l = &c->listen[i];
        if ((rc = load_listener(x, seq_at(x, n, i), p, l)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (l->port && l->port == c->listen[j].port && !strcmp(l->host, c->listen[j].host))
                return fail_at(x, seq_at(x, n, i), p,
                               "address %s is already used by listen[%zu] (line %u)", l->address, j,
                               c->listen[j].line);
    }
    return 0;
}

/* ---- limits ------------------------------------------------------------- */

static int load_limits(loader *x, const node *m) {
    static const struct {
        const char *key;
        size_t off;
        bool wide; /* uint64_t field, else uint32_t */
        uint64_t min, max;
    } tab[] = {
        {"max_frame", offsetof(dlg_config_limits, max_frame), false, 64, 1u << 28},
        {"max_connections", offsetof(dlg_config_limits, max_connections), false, 1, 1000000},
        {"handshake_timeout_ms", offsetof(dlg_config_limits, handshake_timeout_ms), false, 1,
         3600000},
        {"pre_auth_max_bytes", offsetof(dlg_config_limits, pre_auth_max_bytes), false, 64,
         1u << 28},
        {"pre_auth_max_connections", offsetof(dlg_config_limits, pre_auth_max_connections),
         false, 1, 1000000},
        {"max_pending_bytes", offsetof(dlg_config_limits, max_pending_bytes), true, 1024,
         MAX_BYTES_CAP},
        {"soft_pending_bytes", offsetof(dlg_config_limits, soft_pending_bytes), true, 1,
         MAX_BYTES_CAP},
        {"soft_pending_seconds", offsetof(dlg_config_limits, soft_pending_seconds), false, 1, 3600},
        {"write_timeout_ms", offsetof(dlg_config_limits, write_timeout_ms), false, 1, 3600000},
        {"heartbeat_ms", offsetof(dlg_config_limits, heartbeat_ms), false, 1, 3600000},
        {"max_rooms_per_connection", offsetof(dlg_config_limits, max_rooms_per_connection), false,
         1, 1000000},
        {"room_ops_per_second", offsetof(dlg_config_limits, room_ops_per_second), false, 0,
         1000000},
        {"room_ops_burst", offsetof(dlg_config_limits, room_ops_burst), false, 0, 1000000},
        {"max_subscriptions", offsetof(dlg_config_limits, max_subscriptions), false, 1, 1000000},
        {"max_room_events", offsetof(dlg_config_limits, max_room_events), false, 1, 1000000},
    };
    enum { NTAB = sizeof(tab) / sizeof(tab[0]) };
    const char *keys[NTAB + 1];
    for (size_t i = 0; i < NTAB; i++)
        keys[i] = tab[i].key;
    keys[NTAB] = NULL;
    int rc = want_map(x, m, "limits", keys);
    if (rc < 0)
        return rc;
    dlg_config_limits *l = &x->c->limits;
    for (size_t i = 0; i < NTAB; i++) {
        node *v = get(x, m, tab[i].key);
        if (!v)
            continue;
        char p[KEYPATH_LEN];
        uint64_t val;
        keypath(p, "limits", tab[i].key);
        if ((rc = get_uint(x, v, p, tab[i].min, tab[i].max, &val)) < 0)
            return rc;
        if (tab[i].wide)
            *(uint64_t *)((char *)l + tab[i].off) = val;
        else
            *(uint32_t *)((char *)l + tab[i].off) = (uint32_t)val;
    }
    node *v;
    if (l->soft_pending_bytes > l->max_pending_bytes) {
        v = get(x, m, "soft_pending_bytes");
        return fail_at(
            x, v ? v : m, "limits.soft_pending_bytes", "%llu is above max_pending_bytes (%llu)",
            (unsigned long long)l->soft_pending_bytes, (unsigned long long)l->max_pending_bytes);
    }
    /* One full frame must fit in the output queue, or a legal event would
     * cut every recipient as a slow consumer. */
    if (l->max_pending_bytes < l->max_frame) {
        v = get(x, m, "max_pending_bytes");
        return fail_at(x, v ? v : m, "limits.max_pending_bytes", "%llu is below max_frame (%u)",
                       (unsigned long long)l->max_pending_bytes, l->max_frame);
    }
    return 0;
}

/* ---- auth --------------------------------------------------------------- */

static int load_jwt_key(loader *x, const node *m, const char *path, dlg_config_jwt_key *k) {
    static const char *const keys[] = {"kid", "alg", "secret_file", "public_key_file", NULL};
    static const char *const algs[] = {"HS256", "RS256", "ES256", "EdDSA", NULL};
    char p[KEYPATH_LEN];
    node *v;
    int rc = want_map(x, m, path, keys);
    if (rc < 0)
        return rc;
    k->line = (unsigned)m->start_mark.line + 1;
    if ((v = get(x, m, "kid"))) {
        keypath(p, path, "kid");
        if ((rc = get_opt_text(x, v, p, NAME_MAX_LEN, &k->kid)) < 0)
            return rc;
    }
    if (!(v = get(x, m, "alg")))
        return missing(x, m, path, "alg");
    keypath(p, path, "alg");
    if ((rc = get_enum(x, v, p, algs, &k->alg)) < 0)
        return rc;
    if ((v = get(x, m, "secret_file"))) {
        keypath(p, path, "secret_file");
        if ((rc = get_path(x, v, p, &k->secret_file)) < 0)
            return rc;
    }
    if ((v = get(x, m, "public_key_file"))) {
        keypath(p, path, "public_key_file");
        if ((rc = get_path(x, v, p, &k->public_key_file)) < 0)
            return rc;
    }
    bool hmac = k->alg == DLG_CFG_ALG_HS256;
    if (hmac && !k->secret_file)
        return fail_at(x, m, path, "alg HS256 needs secret_file");
    if (hmac && k->public_key_file)
        return fail_at(x, m, path, "alg HS256 takes secret_file, not public_key_file");
    if (!hmac && !k->public_key_file)
        return fail_at(x, m, path, "alg %s needs public_key_file", algs[k->alg]);
    if (!hmac && k->secret_file)
        return fail_at(x, m, path, "alg %s takes public_key_file, not secret_file", algs[k->alg]);
    return 0;
}

static int load_jwt(loader *x, const node *m) {
    static const char *const keys[] = {"issuer",      "audience", "issuer_audience_optional",
                                       "leeway_seconds", "roles_claim", "keys", NULL};
    dlg_config_jwt *j = &x->c->auth.jwt;
    node *v;
    int rc = want_map(x, m, "auth.jwt", keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, m, "issuer")) &&
        (rc = get_opt_text(x, v, "auth.jwt.issuer", TEXT_MAX_LEN, &j->issuer)) < 0)
        return rc;
    if ((v = get(x, m, "audience")) &&
        (rc = get_opt_text(x, v, "auth.jwt.audience", TEXT_MAX_LEN, &j->audience)) < 0)
        return rc;
    if ((v = get(x, m, "issuer_audience_optional")) &&
        (rc = get_bool(x, v, "auth.jwt.issuer_audience_optional",
                       &j->issuer_audience_optional)) < 0)
        return rc;
    if ((v = get(x, m, "leeway_seconds")) &&
        (rc = get_u32(x, v, "auth.jwt.leeway_seconds", 0, 86400, &j->leeway_seconds)) < 0)
        return rc;
    if ((v = get(x, m, "roles_claim"))) {
        if ((rc = get_text(x, v, "auth.jwt.roles_claim", NAME_MAX_LEN, &j->roles_claim)) < 0)
            return rc;
        if (!*j->roles_claim)
            return fail_at(x, v, "auth.jwt.roles_claim", "must not be empty");
    }
    if (!(v = get(x, m, "keys")))
        return 0;
    if ((rc = seq_alloc(x, v, "auth.jwt.keys", sizeof(*j->keys), (void **)&j->keys, &j->n_keys)) <
        0)
        return rc;
    for (size_t i = 0; i < j->n_keys; i++) {
        char p[KEYPATH_LEN];
        idxpath(p, "auth.jwt.keys", i);
        node *km = seq_at(x, v, i);
        if ((rc = load_jwt_key(x, km, p, &j->keys[i])) < 0)
            return rc;
        for (size_t k = 0; k < i && j->keys[i].kid; k++)
            if (j->keys[k].kid && !strcmp(j->keys[k].kid, j->keys[i].kid))
                return fail_at(x, km, p, "duplicate kid \"%s\" (also auth.jwt.keys[%zu], line %u)",
                               j->keys[i].kid, k, j->keys[k].line);
        /* A public key verifies tokens a third party mints for many
         * services: without iss and aud any of its tokens would do. */
        if (j->keys[i].alg != DLG_CFG_ALG_HS256 && !j->issuer_audience_optional &&
            (!j->issuer || !j->audience))
            return fail_at(x, km, p,
                           "an %s key needs auth.jwt.issuer and auth.jwt.audience (set "
                           "auth.jwt.issuer_audience_optional: true to opt out)",
                           j->keys[i].alg == DLG_CFG_ALG_RS256   ? "RS256"
                           : j->keys[i].alg == DLG_CFG_ALG_ES256 ? "ES256"
                                                                 : "EdDSA");
    }
    return 0;
}

static int load_client_cert(loader *x, const node *m) {
    static const char *const keys[] = {"user_from", "roles", NULL};
    static const char *const rkeys[] = {"match", "roles", NULL};
    static const char *const from[] = {"cn", "dns", "email", "uri", NULL};
    dlg_config_client_cert *cc = &x->c->auth.client_cert;
    node *v;
    int rc = want_map(x, m, "auth.client_cert", keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, m, "user_from"))) {
        /* "san" took the first DNS or email SAN: two names that differ only
         * in their type (email:admin, DNS:admin) were one user. */
        if (v->type == YAML_SCALAR_NODE && !strcmp(sval(v), "san"))
            return fail_at(x, v, "auth.client_cert.user_from",
                           "\"san\" is ambiguous (a DNS and an email name could be one user): "
                           "pick dns, email or uri");
        if ((rc = get_enum(x, v, "auth.client_cert.user_from", from, &cc->user_from)) < 0)
            return rc;
    }
    if (!(v = get(x, m, "roles")))
        return 0;
    if ((rc = seq_alloc(x, v, "auth.client_cert.roles", sizeof(*cc->roles), (void **)&cc->roles,
                        &cc->n_roles)) < 0)
        return rc;
    for (size_t i = 0; i < cc->n_roles; i++) {
        char p[KEYPATH_LEN], q[KEYPATH_LEN];
        dlg_config_cert_roles *r = &cc->roles[i];
        node *rm = seq_at(x, v, i), *f;
        idxpath(p, "auth.client_cert.roles", i);
        if ((rc = want_map(x, rm, p, rkeys)) < 0)
            return rc;
        r->line = (unsigned)rm->start_mark.line + 1;
        if (!(f = get(x, rm, "match")))
            return missing(x, rm, p, "match");
        keypath(q, p, "match");
        if ((rc = get_text(x, f, q, NAME_MAX_LEN, &r->match)) < 0)
            return rc;
        if (!*r->match)
            return fail_at(x, f, q, "must not be empty");
        if (!(f = get(x, rm, "roles")))
            return missing(x, rm, p, "roles");
        keypath(q, p, "roles");
        if ((rc = get_strv(x, f, q, K_GRANT, &r->roles)) < 0)
            return rc;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(cc->roles[k].match, r->match))
                return fail_at(x, rm, p, "match \"%s\" is already mapped at line %u", r->match,
                               cc->roles[k].line);
    }
    return 0;
}

static int load_auth(loader *x, const node *m) {
    static const char *const keys[] = {"anonymous", "jwt", "client_cert", NULL};
    node *v;
    int rc = want_map(x, m, "auth", keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, m, "anonymous")) &&
        (rc = get_bool(x, v, "auth.anonymous", &x->c->auth.anonymous)) < 0)
        return rc;
    if ((v = get(x, m, "jwt")) && (rc = load_jwt(x, v)) < 0)
        return rc;
    if ((v = get(x, m, "client_cert")) && (rc = load_client_cert(x, v)) < 0)
        return rc;
    return 0;
}

static int load_room_admin(loader *x, const node *m) {
    static const char *const keys[] = {"create", "delete", NULL};
    node *v;
    int rc = want_map(x, m, "room_admin", keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, m, "create")) &&
        (rc = get_strv(x, v, "room_admin.create", K_ROLE, &x->c->room_admin.create_roles)) < 0)
        return rc;
    if ((v = get(x, m, "delete")) &&
        (rc = get_strv(x, v, "room_admin.delete", K_ROLE, &x->c->room_admin.delete_roles)) < 0)
        return rc;
    return 0;
}

/* ---- rooms -------------------------------------------------------------- */

/* An event named by a per-event setting must be one the room declares;
 * "*" (when star_ok) means every event not listed on its own. */
static int check_room_event(loader *x, const node *n, const char *path, const dlg_config_room *r,
                            const char *ev, bool star_ok) {
    if (star_ok && !strcmp(ev, "*"))
        return 0;
    int rc = check_name(x, n, path, ev);
    if (rc < 0)
        return rc;
    if (!r->any_event && !strv_has(&r->events, ev))
        return fail_at(x, n, path, "event \"%s\" is not among the events of room \"%s\"", ev,
                       r->id);
    return 0;
}

/* Per-event lists (trigger_events, delivery, history) share this walk:
 * each entry is a mapping with an `event` key, which must be unique. */
typedef int (*entry_fn)(loader *x, const node *m, const char *path, dlg_config_room *r, size_t i);

static int load_entries(loader *x, const node *n, const char *path, dlg_config_room *r, size_t size,
                        void **v, size_t *cnt, entry_fn fn) {
    int rc = seq_alloc(x, n, path, size, v, cnt);
    for (size_t i = 0; rc == 0 && i < *cnt; i++) {
        char p[KEYPATH_LEN];
        idxpath(p, path, i);
        rc = fn(x, seq_at(x, n, i), p, r, i);
    }
    return rc;
}

static int entry_event(loader *x, const node *m, const char *path, const dlg_config_room *r,
                       bool star_ok, char **out) {
    char p[KEYPATH_LEN];
    node *v = get(x, m, "event");
    if (!v)
        return missing(x, m, path, "event");
    keypath(p, path, "event");
    int rc = get_text(x, v, p, NAME_MAX_LEN, out);
    return rc < 0 ? rc : check_room_event(x, v, p, r, *out, star_ok);
}

static int dup_event(loader *x, const node *m, const char *path, const char *ev, const char *prev,
                     unsigned prev_line) {
    if (strcmp(ev, prev) != 0)
        return 0;
    return fail_at(x, m, path, "event \"%s\" is already configured at line %u", ev, prev_line);
}

static int trigger_entry(loader *x, const node *m, const char *path, dlg_config_room *r, size_t i) {
    static const char *const keys[] = {"event", "roles", NULL};
    dlg_config_event_roles *e = &r->trigger_events[i];
    char p[KEYPATH_LEN];
    int rc = want_map(x, m, path, keys);
    if (rc < 0 || (rc = entry_event(x, m, path, r, false, &e->event)) < 0)
        return rc;
    e->line = (unsigned)m->start_mark.line + 1;
    node *v = get(x, m, "roles");
    if (!v)
        return missing(x, m, path, "roles");
    keypath(p, path, "roles");
    if ((rc = get_strv(x, v, p, K_ROLE, &e->roles)) < 0)
        return rc;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dup_event(x, m, path, e->event, r->trigger_events[k].event, r->trigger_events[k].line);
    return rc;
}

static int delivery_entry(loader *x, const node *m, const char *path, dlg_config_room *r,
                          size_t i) {
    static const char *const keys[] = {"event", "policy", NULL};
    static const char *const policies[] = {"stream", "latest", NULL};
    dlg_config_delivery *d = &r->delivery[i];
    char p[KEYPATH_LEN];
    int rc = want_map(x, m, path, keys);
    if (rc < 0 || (rc = entry_event(x, m, path, r, true, &d->event)) < 0)
        return rc;
    d->line = (unsigned)m->start_mark.line + 1;
    node *v = get(x, m, "policy");
    if (!v)
        return missing(x, m, path, "policy");
    keypath(p, path, "policy");
    if ((rc = get_enum(x, v, p, policies, &d->policy)) < 0)
        return rc;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dup_event(x, m, path, d->event, r->delivery[k].event, r->delivery[k].line);
    return rc;
}

static int history_entry(loader *x, const node *m, const char *path, dlg_config_room *r, size_t i) {
    static const char *const keys[] = {"event", "limit", "max_age_seconds", NULL};
    dlg_config_history *h = &r->history[i];
    char p[KEYPATH_LEN];
    int rc = want_map(x, m, path, keys);
    if (rc < 0 || (rc = entry_event(x, m, path, r, true, &h->event)) < 0)
        return rc;
    h->line = (unsigned)m->start_mark.line + 1;
    node *v = get(x, m, "limit");
    if (!v)
        return missing(x, m, path, "limit");
    keypath(p, path, "limit");
    if ((rc = get_u32(x, v, p, 1, 10000000, &h->limit)) < 0)
        return rc;
    if ((v = get(x, m, "max_age_seconds"))) {
        keypath(p, path, "max_age_seconds");
        if ((rc = get_u32(x, v, p, 0, UINT32_MAX, &h->max_age_seconds)) < 0)
            return rc;
    }
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dup_event(x, m, path, h->event, r->history[k].event, r->history[k].line);
    return rc;
}

static int load_rate_limit(loader *x, const node *m, const char *path, dlg_config_room *r) {
    static const char *const keys[] = {"per_second", "burst", NULL};
    char p[KEYPATH_LEN];
    node *v;
    int rc = want_map(x, m, path, keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, m, "per_second"))) {
        keypath(p, path, "per_second");
        if ((rc = get_u32(x, v, p, 0, 1000000, &r->rate_per_second)) < 0)
            return rc;
    }
    if ((v = get(x, m, "burst"))) {
        keypath(p, path, "burst");
        if ((rc = get_u32(x, v, p, 0, 1000000, &r->rate_burst)) < 0)
            return rc;
    }
    if (r->rate_per_second && !r->rate_burst)
        r->rate_burst = r->rate_per_second;
    return 0;
}

static int load_sync(loader *x, const node *v, const char *path, dlg_config_room *r) {
    char got[80];
    show(v, got, sizeof(got));
    if (v->type != YAML_SCALAR_NODE)
        return fail_at(x, v, path, "expected -1, 0, a count or true/false, got %s", got);
    const char *s = sval(v);
    int b = bool_word(s);
    uint64_t u;
    if (b >= 0)
        r->sync_history_on_join = b ? -1 : 0;
    else if (!strcmp(s, "-1"))
        r->sync_history_on_join = -1;
    else if (parse_u64(s, &u) && u <= 10000000)
        r->sync_history_on_join = (int32_t)u;
    else
        return fail_at(x, v, path,
                       "expected -1 (all kept), 0 (off), a count up to 10000000 "
                       "or true/false, got %s",
                       got);
    return 0;
}

static int load_room(loader *x, const node *m, const char *path, size_t idx) {
    static const char *const keys[] = {"id",
                                       "name",
                                       "description",
                                       "events",
                                       "default_subscriptions",
                                       "max_size",
                                       "join",
                                       "trigger",
                                       "trigger_events",
                                       "delivery",
                                       "rate_limit",
                                       "history",
                                       "sync_history_on_join",
                                       NULL};
    dlg_config_room *r = &x->c->rooms[idx];
    char p[KEYPATH_LEN];
    node *v;
    int rc = want_map(x, m, path, keys);
    if (rc < 0)
        return rc;
    r->line = (unsigned)m->start_mark.line + 1;
    if (!(v = get(x, m, "id")))
        return missing(x, m, path, "id");
    keypath(p, path, "id");
    if ((rc = get_text(x, v, p, NAME_MAX_LEN, &r->id)) < 0 || (rc = check_name(x, v, p, r->id)) < 0)
        return rc;
    for (size_t j = 0; j < idx; j++)
        if (!strcmp(x->c->rooms[j].id, r->id))
            return fail_at(x, v, p, "duplicate room id \"%s\" (first defined at line %u)", r->id,
                           x->c->rooms[j].line);
    if ((v = get(x, m, "name"))) {
        keypath(p, path, "name");
        if ((rc = get_opt_text(x, v, p, NAME_MAX_LEN, &r->name)) < 0)
            return rc;
    }
    if ((v = get(x, m, "description"))) {
        keypath(p, path, "description");
        if ((rc = get_opt_text(x, v, p, TEXT_MAX_LEN, &r->description)) < 0)
            return rc;
    }
    if ((v = get(x, m, "events"))) {
        keypath(p, path, "events");
        if ((rc = get_strv(x, v, p, K_EVENT, &r->events)) < 0)
            return rc;
        r->any_event = r->events.n == 1 && !strcmp(r->events.v[0], "*");
    }
    if ((v = get(x, m, "default_subscriptions"))) {
        keypath(p, path, "default_subscriptions");
        if ((rc = get_strv(x, v, p, K_EVENT, &r->default_subscriptions)) < 0)
            return rc;
        r->default_all =
            r->default_subscriptions.n == 1 && !strcmp(r->default_subscriptions.v[0], "*");
        for (size_t i = 0; !r->default_all && i < r->default_subscriptions.n; i++) {
            char q[KEYPATH_LEN];
            idxpath(q, p, i);
            if ((rc = check_room_event(x, seq_at(x, v, i), q, r, r->default_subscriptions.v[i],
                                       false)) < 0)
                return rc;
        }
    }
    if ((v = get(x, m, "max_size"))) {
        keypath(p, path, "max_size");
        if ((rc = get_u32(x, v, p, 0, UINT32_MAX, &r->max_size)) < 0)
            return rc;
    }
    if ((v = get(x, m, "join"))) {
        keypath(p, path, "join");
        if ((rc = get_strv(x, v, p, K_ROLE, &r->join)) < 0)
            return rc;
    }
    if ((v = get(x, m, "trigger"))) {
        keypath(p, path, "trigger");
        if ((rc = get_strv(x, v, p, K_ROLE, &r->trigger)) < 0)
            return rc;
    }
    if ((v = get(x, m, "trigger_events"))) {
        keypath(p, path, "trigger_events");
        if ((rc = load_entries(x, v, p, r, sizeof(*r->trigger_events), (void **)&r->trigger_events,
                               &r->n_trigger_events, trigger_entry)) < 0)
            return rc;
    }
    if ((v = get(x, m, "delivery"))) {
        keypath(p, path, "delivery");
        if ((rc = load_entries(x, v, p, r, sizeof(*r->delivery), (void **)&r->delivery,
                               &r->n_delivery, delivery_entry)) < 0)
            return rc;
    }
    if ((v = get(x, m, "rate_limit"))) {
        keypath(p, path, "rate_limit");
        if ((rc = load_rate_limit(x, v, p, r)) < 0)
            return rc;
    }
    if ((v = get(x, m, "history"))) {
        keypath(p, path, "history");
        if ((rc = load_entries(x, v, p, r, sizeof(*r->history), (void **)&r->history, &r->n_history,
                               history_entry)) < 0)
            return rc;
    }
    if ((v = get(x, m, "sync_history_on_join"))) {
        keypath(p, path, "sync_history_on_join");
        if ((rc = load_sync(x, v, p, r)) < 0)
            return rc;
    }
    return 0;
}

static int load_rooms(loader *x, const node *n) {
    dlg_config *c = x->c;
    int rc = seq_alloc(x, n, "rooms", sizeof(*c->rooms), (void **)&c->rooms, &c->n_rooms);
    for (size_t i = 0; rc == 0 && i < c->n_rooms; i++) {
        char p[KEYPATH_LEN];
        idxpath(p, "rooms", i);
        rc = load_room(x, seq_at(x, n, i), p, i);
    }
    return rc;
}

/* Every name in a list that refers to rooms must be one from `rooms`. */
static int check_room_refs(loader *x, const node *n, const char *path, const dlg_config_strv *ids) {
    for (size_t i = 0; i < ids->n; i++)
        if (!dlg_config_find_room(x->c, ids->v[i])) {
            char p[KEYPATH_LEN];
            idxpath(p, path, i);
            return fail_at(x, seq_at(x, n, i), p, "unknown room \"%s\" (not defined in rooms)",
                           ids->v[i]);
        }
    return 0;
}

static int load_auto_join(loader *x, const node *n) {
    static const char *const keys[] = {"role", "rooms", NULL};
    dlg_config *c = x->c;
    int rc = seq_alloc(x, n, "auto_join", sizeof(*c->auto_join), (void **)&c->auto_join,
                       &c->n_auto_join);
    for (size_t i = 0; rc == 0 && i < c->n_auto_join; i++) {
        char p[KEYPATH_LEN], q[KEYPATH_LEN];
        dlg_config_auto_join *a = &c->auto_join[i];
        node *m = seq_at(x, n, i), *v;
        idxpath(p, "auto_join", i);
        if ((rc = want_map(x, m, p, keys)) < 0)
            return rc;
        a->line = (unsigned)m->start_mark.line + 1;
        if (!(v = get(x, m, "role")))
            return missing(x, m, p, "role");
        keypath(q, p, "role");
        if ((rc = get_text(x, v, q, NAME_MAX_LEN, &a->role)) < 0)
            return rc;
        if (strcmp(a->role, "*") != 0 && (rc = check_role(x, v, q, a->role)) < 0)
            return rc;
        if (!(v = get(x, m, "rooms")))
            return missing(x, m, p, "rooms");
        keypath(q, p, "rooms");
        if ((rc = get_strv(x, v, q, K_NAME, &a->rooms)) < 0)
            return rc;
        rc = check_room_refs(x, v, q, &a->rooms);
    }
    return rc;
}

/* ---- metrics ------------------------------------------------------------ */

static int load_alert(loader *x, const node *m, const char *path, dlg_config_alert *a) {
    static const char *const keys[] = {"metric",           "op", "threshold", "severity", "message",
                                       "cooldown_seconds", NULL};
    static const char *const metrics[] = {"cpu", "memory", "requests", "errors", "latency", NULL};
    static const char *const ops[] = {">", ">=", "<", "<=", NULL};
    static const char *const sevs[] = {"low", "medium", "high", "critical", NULL};
    char p[KEYPATH_LEN];
    node *v;
    int rc = want_map(x, m, path, keys);
    if (rc < 0)
        return rc;
    a->line = (unsigned)m->start_mark.line + 1;
    a->cooldown_seconds = 60;
    static const char *const req[] = {"metric", "op", "threshold", "severity", "message"};
    for (size_t i = 0; i < 5; i++) {
        if (!(v = get(x, m, req[i])))
            return missing(x, m, path, req[i]);
        keypath(p, path, req[i]);
        switch (i) {
        case 0: rc = get_enum(x, v, p, metrics, &a->metric); break;
        case 1: rc = get_enum(x, v, p, ops, &a->op); break;
        case 2: rc = get_double(x, v, p, &a->threshold); break;
        case 3: rc = get_enum(x, v, p, sevs, &a->severity); break;
        default:
            /* AlertTriggered.message allows 1024 bytes once {value} is
             * filled in; leave room for the number. */
            rc = get_text(x, v, p, 1000, &a->message);
            if (rc == 0 && !*a->message)
                rc = fail_at(x, v, p, "must not be empty");
        }
        if (rc < 0)
            return rc;
    }
    if ((v = get(x, m, "cooldown_seconds"))) {
        keypath(p, path, "cooldown_seconds");
        if ((rc = get_u32(x, v, p, 0, 2592000, &a->cooldown_seconds)) < 0)
            return rc;
    }
    return 0;
}

static int load_metrics(loader *x, const node *m) {
    static const char *const keys[] = {"room", "interval_ms", "alerts", NULL};
    dlg_config_metrics *mt = &x->c->metrics;
    node *v;
    int rc = want_map(x, m, "metrics", keys);
    if (rc < 0)
        return rc;
    mt->enabled = true;
    mt->line = (unsigned)m->start_mark.line + 1;
    if (!(v = get(x, m, "room")))
        return missing(x, m, "metrics", "room");
    if ((rc = get_text(x, v, "metrics.room", NAME_MAX_LEN, &mt->room)) < 0 ||
        (rc = check_name(x, v, "metrics.room", mt->room)) < 0)
        return rc;
    const dlg_config_room *r = dlg_config_find_room(x->c, mt->room);
    if (!r)
        return fail_at(x, v, "metrics.room", "unknown room \"%s\" (not defined in rooms)",
                       mt->room);
    node *room_node = v;
    if ((v = get(x, m, "interval_ms")) &&
        (rc = get_u32(x, v, "metrics.interval_ms", 10, 3600000, &mt->interval_ms)) < 0)
        return rc;
    if (!(v = get(x, m, "alerts"))) {
        mt->alerts = calloc(1, sizeof(*mt->alerts));
        if (!mt->alerts)
            return DLG_ENOMEM;
        mt->n_alerts = 1;
        if ((rc = alert_default(&mt->alerts[0])) < 0)
            return rc;
    } else {
        if ((rc = seq_alloc(x, v, "metrics.alerts", sizeof(*mt->alerts), (void **)&mt->alerts,
                            &mt->n_alerts)) < 0)
            return rc;
        for (size_t i = 0; i < mt->n_alerts; i++) {
            char p[KEYPATH_LEN];
            idxpath(p, "metrics.alerts", i);
            if ((rc = load_alert(x, seq_at(x, v, i), p, &mt->alerts[i])) < 0)
                return rc;
        }
    }
    /* The source publishes these events into the room; a room that does not
     * declare them would refuse every subscription to its own metrics. */
    if (!r->any_event && !strv_has(&r->events, "metrics:update"))
        return fail_at(x, room_node, "metrics.room",
                       "room \"%s\" must list \"metrics:update\" in its events (or \"*\")", r->id);
    if (mt->n_alerts && !r->any_event && !strv_has(&r->events, "alert:triggered"))
        return fail_at(x, room_node, "metrics.room",
                       "room \"%s\" must list \"alert:triggered\" in its events (or \"*\") "
                       "for the alerts",
                       r->id);
    return 0;
}

/* ---- cluster ------------------------------------------------------------ */

/* A NATS server URL: the scheme says whether the link is TLS, and a typo
 * caught here is better than a connect error naming no config line. */
static int check_nats_url(loader *x, const node *n, const char *path, const char *s) {
    char got[80];
    show(n, got, sizeof(got));
    const char *rest = !strncmp(s, "nats://", 7) ? s + 7 : !strncmp(s, "tls://", 6) ? s + 6 : NULL;
    if (!rest || !*rest)
        return fail_at(x, n, path, "expected a URL like nats://127.0.0.1:4222 (or tls://...), got %s",
                       got);
    for (const unsigned char *p = (const unsigned char *)rest; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == ',')
            return fail_at(x, n, path, "a NATS URL must not contain blanks, commas or control "
                                       "characters: %s", got);
    return 0;
}

static int load_cluster_tls(loader *x, const node *m, dlg_config_cluster *cl) {
    static const char *const keys[] = {"ca", "cert", "key", NULL};
    node *v;
    int rc = want_map(x, m, "cluster.tls", keys);
    if (rc < 0)
        return rc;
    cl->tls = true;
    if ((v = get(x, m, "ca")) && (rc = get_path(x, v, "cluster.tls.ca", &cl->tls_ca)) < 0)
        return rc;
    if ((v = get(x, m, "cert")) && (rc = get_path(x, v, "cluster.tls.cert", &cl->tls_cert)) < 0)
        return rc;
    if ((v = get(x, m, "key")) && (rc = get_path(x, v, "cluster.tls.key", &cl->tls_key)) < 0)
        return rc;
    if (!cl->tls_cert != !cl->tls_key)
        return fail_at(x, m, "cluster.tls", "cert and key go together (a client certificate "
                                            "needs both)");
    return 0;
}

static int load_cluster_log(loader *x, const node *m, dlg_config_cluster *cl) {
    static const char *const keys[] = {"replicas", "max_events", "max_age", "storage", NULL};
    static const char *const storages[] = {"file", "memory", NULL};
    node *v;
    int rc = want_map(x, m, "cluster.log", keys);
    if (rc < 0)
        return rc;
    cl->log = true;
    cl->log_max_events = 100000;
    /* JetStream's own bound on replicas is 5. */
    if ((v = get(x, m, "replicas")) &&
        (rc = get_u32(x, v, "cluster.log.replicas", 1, 5, &cl->log_replicas)) < 0)
        return rc;
    if ((v = get(x, m, "max_events")) &&
        (rc = get_uint(x, v, "cluster.log.max_events", 1, 1ull << 40, &cl->log_max_events)) < 0)
        return rc;
    if ((v = get(x, m, "max_age")) &&
        (rc = get_u32(x, v, "cluster.log.max_age", 0, 10u * 365 * 86400, &cl->log_max_age_s)) < 0)
        return rc;
    if ((v = get(x, m, "storage")) &&
        (rc = get_enum(x, v, "cluster.log.storage", storages, &cl->log_memory)) < 0)
        return rc;
    return 0;
}

static int load_cluster(loader *x, const node *m) {
    static const char *const keys[] = {"node_id", "nats", "creds", "tls", "log", NULL};
    dlg_config_cluster *cl = &x->c->cluster;
    node *v;
    int rc = want_map(x, m, "cluster", keys);
    if (rc < 0)
        return rc;
    cl->enabled = true;
    cl->line = (unsigned)m->start_mark.line + 1;
    if (!(v = get(x, m, "node_id")))
        return missing(x, m, "cluster", "node_id");
    /* It travels in a NATS header and in log lines: a short plain name. */
    if ((rc = get_text(x, v, "cluster.node_id", 64, &cl->node_id)) < 0 ||
        (rc = check_name(x, v, "cluster.node_id", cl->node_id)) < 0)
        return rc;
    if (!(v = get(x, m, "nats")))
        return missing(x, m, "cluster", "nats");
    if ((rc = want(x, v, "cluster.nats", YAML_SEQUENCE_NODE)) < 0)
        return rc;
    size_t cnt = seq_len(v);
    if (!cnt)
        return fail_at(x, v, "cluster.nats", "expected at least one NATS server URL");
    if (!(cl->nats.v = calloc(cnt, sizeof(*cl->nats.v))))
        return DLG_ENOMEM;
    cl->nats.n = cnt;
    for (size_t i = 0; i < cnt; i++) {
        char p[KEYPATH_LEN];
        node *it = seq_at(x, v, i);
        idxpath(p, "cluster.nats", i);
        if ((rc = get_text(x, it, p, 1024, &cl->nats.v[i])) < 0 ||
            (rc = check_nats_url(x, it, p, cl->nats.v[i])) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cl->nats.v[j], cl->nats.v[i]))
                return fail_at(x, it, p, "duplicate entry \"%s\"", cl->nats.v[i]);
    }
    if ((v = get(x, m, "creds")) && (rc = get_path(x, v, "cluster.creds", &cl->creds)) < 0)
        return rc;
    if ((v = get(x, m, "tls")) && (rc = load_cluster_tls(x, v, cl)) < 0)
        return rc;
    if ((v = get(x, m, "log")) && (rc = load_cluster_log(x, v, cl)) < 0)
        return rc;
    return 0;
}

/* ---- http ------------------------------------------------------------- */

static int load_http(loader *x, const node *m) {
    static const char *const keys[] = {"web_root", "allowed_origins", NULL};
    dlg_config_http *h = &x->c->http;
    node *v;
    int rc = want_map(x, m, "http", keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, m, "web_root")) && (rc = get_path(x, v, "http.web_root", &h->web_root)) < 0)
        return rc;
    if ((v = get(x, m, "allowed_origins")) &&
        (rc = get_strv(x, v, "http.allowed_origins", K_ORIGIN, &h->allowed_origins)) < 0)
        return rc;
    return 0;
}

/* ---- the file ----------------------------------------------------------- */

static int load_root(loader *x, const node *root) {
    static const char *const keys[] = {"log_level", "listen",  "schemas",    "allow_unknown_fields",
                                       "limits",    "auth",    "room_admin", "rooms",
                                       "auto_join", "metrics", "store",      "store_path",
                                       "store_sync", "cluster", "io_uring", "send_threads",
                                       "tls_own_records", "http", NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    static const char *const stores[] = {"memory", "sqlite", NULL};
    static const char *const syncs[] = {"ack", "batch", NULL};
    dlg_config *c = x->c;
    node *v;
    int rc = want_map(x, root, "", keys);
    if (rc < 0)
        return rc;
    if ((v = get(x, root, "log_level")) &&
        (rc = get_enum(x, v, "log_level", levels, &c->log_level)) < 0)
        return rc;
    if ((v = get(x, root, "listen")) && (rc = load_listen(x, v)) < 0)
        return rc;
    if ((v = get(x, root, "schemas")) && (rc = get_strv(x, v, "schemas", K_PATH, &c->schemas)) < 0)
        return rc;
    if ((v = get(x, root, "allow_unknown_fields")) &&
        (rc = get_bool(x, v, "allow_unknown_fields", &c->allow_unknown_fields)) < 0)
        return rc;
    if ((v = get(x, root, "limits")) && (rc = load_limits(x, v)) < 0)
        return rc;
    if ((v = get(x, root, "auth")) && (rc = load_auth(x, v)) < 0)
        return rc;
    if ((v = get(x, root, "room_admin")) && (rc = load_room_admin(x, v)) < 0)
        return rc;
    /* rooms first whatever the key order: auto_join and metrics refer to them. */
    if ((v = get(x, root, "rooms")) && (rc = load_rooms(x, v)) < 0)
        return rc;
    if ((v = get(x, root, "auto_join")) && (rc = load_auto_join(x, v)) < 0)
        return rc;
    if ((v = get(x, root, "metrics")) && (rc = load_metrics(x, v)) < 0)
        return rc;
    node *store = get(x, root, "store");
    if (store && (rc = get_enum(x, store, "store", stores, &c->store)) < 0)
        return rc;
    /* store_path: "" is how the reference writes "unset". */
    if ((v = get(x, root, "store_path")) && !(v->type == YAML_SCALAR_NODE && !*sval(v)) &&
        (rc = get_path(x, v, "store_path", &c->store_path)) < 0)
        return rc;
    if (c->store == DLG_CFG_STORE_SQLITE && !c->store_path)
        return fail_at(x, store, "store", "sqlite needs store_path");
    if ((v = get(x, root, "store_sync")) &&
        (rc = get_enum(x, v, "store_sync", syncs, &c->store_sync)) < 0)
        return rc;
    if ((v = get(x, root, "cluster")) && (rc = load_cluster(x, v)) < 0)
        return rc;
    if ((v = get(x, root, "io_uring")) && (rc = get_bool(x, v, "io_uring", &c->io_uring)) < 0)
        return rc;
    if ((v = get(x, root, "tls_own_records")) &&
        (rc = get_bool(x, v, "tls_own_records", &c->tls_own_records)) < 0)
        return rc;
    if ((v = get(x, root, "send_threads")) &&
        (rc = get_u32(x, v, "send_threads", 0, DLG_CFG_SEND_THREADS_MAX, &c->send_threads)) < 0)
        return rc;
    if ((v = get(x, root, "http")) && (rc = load_http(x, v)) < 0)
        return rc;
    /* Two durable logs of one room would disagree after a failure; the
     * cluster log is the durable one, the rings are its cache. */
    if (c->cluster.log && c->store == DLG_CFG_STORE_SQLITE)
        return fail_at(x, store, "store", "sqlite cannot be combined with cluster.log: the "
                                          "JetStream stream is then each room's durable "
                                          "history (use store: memory)");
    return 0;
}

/* libyaml reports encoding errors by byte offset only; count the lines up
 * to it so that this message points at a line like every other one. */
static unsigned long line_of_offset(FILE *f, size_t off) {
    unsigned long line = 1;
    int ch;
    if (fseek(f, 0, SEEK_SET) != 0)
        return 0;
    for (size_t i = 0; i < off && (ch = getc(f)) != EOF; i++)
        line += ch == '\n';
    return line;
}

static int syntax_error(loader *x, const yaml_parser_t *p, FILE *f) {
    if (p->error == YAML_MEMORY_ERROR)
        return DLG_ENOMEM;
    if (!x->err || !x->errlen)
        return DLG_ECONFIG;
    const char *prob = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR) {
        snprintf(x->err, x->errlen, "%s:%lu: cannot read YAML: %s (byte %zu of the file)", x->file,
                 line_of_offset(f, p->problem_offset), prob, p->problem_offset);
    } else if (p->context) {
        snprintf(x->err, x->errlen,
                 "%s:%lu:%lu: YAML syntax error: %s (%s that starts at line %lu)", x->file,
                 (unsigned long)p->problem_mark.line + 1, (unsigned long)p->problem_mark.column + 1,
                 prob, p->context, (unsigned long)p->context_mark.line + 1);
    } else {
        snprintf(x->err, x->errlen, "%s:%lu:%lu: YAML syntax error: %s", x->file,
                 (unsigned long)p->problem_mark.line + 1, (unsigned long)p->problem_mark.column + 1,
                 prob);
    }
    return DLG_ECONFIG;
}

/* Parses the stream into doc, refusing a second document: a file that
 * holds two configurations is a mistake, not a choice of one. */
static int parse_file(loader *x, FILE *f, yaml_document_t *doc, bool *have_doc) {
    yaml_parser_t p;
    yaml_document_t extra;
    int rc = 0;
    if (!yaml_parser_initialize(&p))
        return DLG_ENOMEM;
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, doc)) {
        rc = syntax_error(x, &p, f);
        goto done;
    }
    *have_doc = true;
    if (!yaml_document_get_root_node(doc))
        goto done; /* empty stream: nothing after it either */
    if (!yaml_parser_load(&p, &extra)) {
        rc = syntax_error(x, &p, f);
        goto done;
    }
    if (yaml_document_get_root_node(&extra)) {
        x->doc = &extra;
        rc = fail_at(x, yaml_document_get_root_node(&extra), "",
                     "a second YAML document (after \"---\"); the file must hold one");
        x->doc = NULL;
    }
    yaml_document_delete(&extra);
done:
    yaml_parser_delete(&p);
    return rc;
}

int dlg_config_load(const char *path, dlg_config **out, char *err, size_t errlen) {
    loader x = {.file = path, .err = err, .errlen = errlen};
    yaml_document_t doc;
    bool have_doc = false;
    dlg_config *c = NULL;
    FILE *f = NULL;
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (!path || !out) {
        if (err && errlen)
            snprintf(err, errlen, "dlg_config_load: %s is NULL", path ? "out" : "path");
        return DLG_EINVAL;
    }
    const char *slash = strrchr(path, '/');
    x.dir = strndup(path, slash ? (size_t)(slash - path) + 1 : 0);
    c = calloc(1, sizeof(*c));
    if (!x.dir || !c || (rc = fill_defaults(c)) < 0 || !(c->path = strdup(path))) {
        rc = DLG_ENOMEM;
        goto fail;
    }
    x.c = c;
    f = fopen(path, "rb");
    struct stat st = {0};
    if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
        errno = EISDIR; /* fopen takes a directory; reading it fails */
    if (!f || S_ISDIR(st.st_mode)) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        rc = DLG_EIO;
        goto fail;
    }
    if ((rc = parse_file(&x, f, &doc, &have_doc)) < 0)
        goto fail;
    x.doc = &doc;
    node *root = yaml_document_get_root_node(&doc);
    if (root && !is_null(root) && (rc = load_root(&x, root)) < 0)
        goto fail;
    yaml_document_delete(&doc);
    fclose(f);
    free(x.dir);
    *out = c;
    return 0;
fail:
    if (have_doc)
        yaml_document_delete(&doc);
    if (f)
        fclose(f);
    dlg_config_free(c);
    free(x.dir);
    return rc;
}
