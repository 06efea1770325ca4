/* opts.c: client options (defaults, validation, the owned copy) and the TLS
 * client context built from them. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "client_int.h"
#include "dlg_err.h"

/* ---- the options object ---------------------------------------------------- */

int dlg_client_opts_new(dlg_client_opts **out) {
    if (out == NULL)
        return DLG_EINVAL;
    dlg_client_opts *o = dlg__calloc(1, sizeof(*o));
    if (o == NULL)
        return DLG_ENOMEM;
    o->v.reconnect = 1;
    o->v.backoff_min_ms = 100;
    o->v.backoff_max_ms = 30000;
    o->v.backoff_jitter = 0.2;
    o->v.connect_timeout_ms = 10000;
    o->v.request_timeout_ms = 10000;
    o->v.max_frame = DLG_FRAME_DEFAULT_MAX;
    o->v.offline_queue = 0;
    o->v.max_pending = 4096;
    o->v.log_level = -1;
    *out = o;
    return 0;
}

/* Frees a string option; a credential is wiped first so it does not stay
 * in freed memory. */
static void str_free(char *s, int secret) {
    if (s != NULL && secret)
        memset(s, 0, strlen(s));
    dlg__free(s);
}

/* Replaces *slot with a copy of v ("" and NULL clear it). On error *slot
 * is unchanged. */
static int str_set(dlg_client_opts *o, char **slot, const char *v, int secret) {
    char *copy = NULL;
    if (o == NULL)
        return DLG_EINVAL;
    if (v != NULL && v[0] != 0 && (copy = dlg__strdup(v)) == NULL)
        return DLG_ENOMEM;
    str_free(*slot, secret);
    *slot = copy;
    return 0;
}

void dlg_client_opts_free(dlg_client_opts *o) {
    if (o == NULL)
        return;
    dlg__free(o->host);
    dlg__free(o->servers);
    dlg__free(o->ca_file);
    dlg__free(o->cert_file);
    dlg__free(o->key_file);
    str_free(o->token, 1);
    dlg__free(o->client_name);
    dlg__free(o);
}

/* The accessors of one option: a string (copied; secret ones wiped when
 * dropped) or a plain value. */
#define OPT_STR(name, secret)                                                 \
    int dlg_client_opts_set_##name(dlg_client_opts *o, const char *v) {       \
        return str_set(o, o != NULL ? &o->name : NULL, v, secret);           \
    }                                                                         \
    const char *dlg_client_opts_get_##name(const dlg_client_opts *o) {        \
        return o->name;                                                       \
    }
#define OPT_VAL(name, type, field)                                            \
    int dlg_client_opts_set_##name(dlg_client_opts *o, type v) {             \
        if (o == NULL)                                                        \
            return DLG_EINVAL;                                                \
        o->field = v;                                                         \
        return 0;                                                             \
    }                                                                         \
    type dlg_client_opts_get_##name(const dlg_client_opts *o) {              \
        return o->field;                                                      \
    }

OPT_STR(host, 0)
OPT_STR(servers, 0)
OPT_STR(ca_file, 0)
OPT_STR(cert_file, 0)
OPT_STR(key_file, 0)
OPT_STR(token, 1)
OPT_STR(client_name, 0)
OPT_VAL(port, unsigned, port)
OPT_VAL(reconnect, int, v.reconnect)
OPT_VAL(backoff_min_ms, uint32_t, v.backoff_min_ms)
OPT_VAL(backoff_max_ms, uint32_t, v.backoff_max_ms)
OPT_VAL(backoff_jitter, double, v.backoff_jitter)
OPT_VAL(connect_timeout_ms, uint32_t, v.connect_timeout_ms)
OPT_VAL(request_timeout_ms, uint32_t, v.request_timeout_ms)
OPT_VAL(max_frame, uint32_t, v.max_frame)
OPT_VAL(offline_queue, uint32_t, v.offline_queue)
OPT_VAL(max_pending, uint32_t, v.max_pending)
OPT_VAL(log_level, int, v.log_level)

/* ---- the list of servers ------------------------------------------------- */

/* One entry of the servers option, as spans of the caller's string:
 * nothing is allocated until the whole list is known to be good. */
typedef struct entry {
    const char *text;   /* the entry without surrounding blanks */
    size_t len;
    const char *host;   /* without brackets */
    size_t host_len;
    unsigned port;
} entry;

static int is_blank(char ch) {
    return ch == ' ' || ch == '\t';
}

/* An IPv6 literal, optionally with a zone ("fe80::1%eth0"), as
 * getaddrinfo takes it. */
static int is_ipv6(const char *p, size_t n) {
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    const char *pct = memchr(p, '%', n);
    size_t addr_len = pct != NULL ? (size_t)(pct - p) : n;
    if (n > 253 || addr_len == 0 || addr_len >= sizeof(buf))
        return 0;
    if (pct != NULL) {
        if (pct + 1 == p + n)
            return 0;
        for (const char *z = pct + 1; z < p + n; z++)
            if (!(z[0] == '_' || z[0] == '-' || z[0] == '.' || (z[0] >= '0' && z[0] <= '9') ||
                  (z[0] >= 'a' && z[0] <= 'z') || (z[0] >= 'A' && z[0] <= 'Z')))
                return 0;
    }
    memcpy(buf, p, addr_len);
    buf[addr_len] = 0;
    return inet_pton(AF_INET6, buf, addr) == 1;
}

/* Parses entry number idx (from 1) held in e->text/e->len. */
static int parse_entry(size_t idx, entry *e, char *err, size_t errlen) {
    const char *s = e->text, *end = s + e->len, *colon;
    int n = (int)(e->len > 300 ? 300 : e->len);  /* quoted in messages */
    if (e->len == 0) {
        dlg_errf(err, errlen, "servers: entry %zu is empty", idx);
        return DLG_EINVAL;
    }
    if (s[0] == '[') {
        const char *close = memchr(s, ']', e->len);
        if (close == NULL || close + 1 == end || close[1] != ':') {
            dlg_errf(err, errlen, "servers: entry %zu \"%.*s\" is not HOST:PORT", idx, n, s);
            return DLG_EINVAL;
        }
        e->host = s + 1;
        e->host_len = (size_t)(close - s - 1);
        colon = close + 1;
        if (!is_ipv6(e->host, e->host_len)) {
            dlg_errf(err, errlen, "servers: entry %zu \"%.*s\": \"%.*s\" is not an IPv6 address",
                     idx, n, s, (int)e->host_len, e->host);
            return DLG_EINVAL;
        }
    } else {
        colon = memchr(s, ':', e->len);
        if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL) {
            /* Without brackets the port of an IPv6 literal is ambiguous. */
            dlg_errf(err, errlen,
                     "servers: entry %zu \"%.*s\" is not HOST:PORT (write an IPv6 address "
                     "as [ADDR]:PORT)", idx, n, s);
            return DLG_EINVAL;
        }
        if (colon == NULL || colon == s) {
            dlg_errf(err, errlen, "servers: entry %zu \"%.*s\" is not HOST:PORT", idx, n, s);
            return DLG_EINVAL;
        }
        e->host = s;
        e->host_len = (size_t)(colon - s);
        int bad = e->host_len > 253;
        for (const char *p = s; p < colon && !bad; p++)
            bad = strchr(" \t\r\n/[]", *p) != NULL;
        if (bad) {
            dlg_errf(err, errlen, "servers: entry %zu \"%.*s\": \"%.*s\" is not a host name "
                     "or address", idx, n, s, (int)(e->host_len > 253 ? 253 : e->host_len), s);
            return DLG_EINVAL;
        }
    }
    const char *digits = colon + 1;
    if (digits == end) {
        dlg_errf(err, errlen, "servers: entry %zu \"%.*s\" is not HOST:PORT (no port)", idx, n,
                 s);
        return DLG_EINVAL;
    }
    unsigned long port = 0;
    for (const char *p = digits; p < end; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            port = 0;
            break;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port == 0 || port > 65535) {
        dlg_errf(err, errlen, "servers: entry %zu \"%.*s\": port \"%.*s\" is not in 1..65535",
                 idx, n, s, (int)(end - digits > 20 ? 20 : end - digits), digits);
        return DLG_EINVAL;
    }
    e->port = (unsigned)port;
    return 0;
}

/* Splits and checks list into out (DLG_CLIENT_MAX_SERVERS entries). */
static int parse_servers(const char *list, entry *out, size_t *n_out, char *err,
                         size_t errlen) {
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    if (n > DLG_CLIENT_MAX_SERVERS) {
        dlg_errf(err, errlen, "servers: %zu entries, at most %d", n, DLG_CLIENT_MAX_SERVERS);
        return DLG_EINVAL;
    }
    const char *p = list;
    for (size_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        while (p < end && is_blank(*p))
            p++;
        while (end > p && is_blank(end[-1]))
            end--;
        out[i].text = p;
        out[i].len = (size_t)(end - p);
        int rc = parse_entry(i + 1, &out[i], err, errlen);
        if (rc != 0)
            return rc;
        p = comma != NULL ? comma + 1 : end;
    }
    *n_out = n;
    return 0;
}

static int has_servers(const dlg_client_opts *o) {
    return o->servers != NULL && o->servers[0] != 0;
}

/* host/port, when no list is given. */
static int check_host_port(const dlg_client_opts *o, char *err, size_t errlen) {
    if (o->host == NULL || o->host[0] == 0) {
        dlg_errf(err, errlen, "host: missing (set host and port, or servers)");
        return DLG_EINVAL;
    }
    if (strlen(o->host) > 253 || strpbrk(o->host, " \t\r\n/") != NULL) {
        dlg_errf(err, errlen, "host: \"%s\" is not a host name or address",
               o->host);
        return DLG_EINVAL;
    }
    if (o->port == 0 || o->port > 65535) {
        dlg_errf(err, errlen, "port: %u is not in 1..65535", o->port);
        return DLG_EINVAL;
    }
    return 0;
}

/* Fills list (DLG_CLIENT_MAX_SERVERS entries) from servers or host/port. */
static int check_servers(const dlg_client_opts *o, entry *list, size_t *n, char *err,
                         size_t errlen) {
    if (!has_servers(o)) {
        int rc = check_host_port(o, err, errlen);
        if (rc != 0)
            return rc;
        list[0].text = list[0].host = o->host;
        list[0].len = list[0].host_len = strlen(o->host);
        list[0].port = o->port;
        *n = 1;
        return 0;
    }
    if ((o->host != NULL && o->host[0] != 0) || o->port != 0) {
        /* Which one wins would be a guess: refuse the mix. */
        dlg_errf(err, errlen, "servers and %s are both set (servers replaces host and port: "
                 "leave those NULL and 0)", o->port != 0 && (o->host == NULL || !o->host[0])
                 ? "port" : "host");
        return DLG_EINVAL;
    }
    return parse_servers(o->servers, list, n, err, errlen);
}

/* ---- options ---------------------------------------------------------------- */

static int check(const dlg_client_opts *o, entry *list, size_t *n, char *err,
                 size_t errlen) {
    int rc = check_servers(o, list, n, err, errlen);
    if (rc != 0)
        return rc;
    if ((o->cert_file == NULL) != (o->key_file == NULL)) {
        dlg_errf(err, errlen, "%s is set but %s is not",
               o->cert_file ? "cert_file" : "key_file",
               o->cert_file ? "key_file" : "cert_file");
        return DLG_EINVAL;
    }
    if (!(o->v.backoff_jitter >= 0 && o->v.backoff_jitter <= 1)) {
        dlg_errf(err, errlen, "backoff_jitter: must be within 0..1");
        return DLG_EINVAL;
    }
    if (o->v.backoff_min_ms == 0 || o->v.backoff_min_ms > o->v.backoff_max_ms) {
        dlg_errf(err, errlen, "backoff_min_ms: must be 1..backoff_max_ms");
        return DLG_EINVAL;
    }
    if (o->v.connect_timeout_ms == 0 || o->v.request_timeout_ms == 0) {
        dlg_errf(err, errlen, "%s: must be above 0",
               o->v.connect_timeout_ms == 0 ? "connect_timeout_ms" : "request_timeout_ms");
        return DLG_EINVAL;
    }
    if (o->v.max_frame < 64) {
        dlg_errf(err, errlen, "max_frame: must be at least 64 bytes");
        return DLG_EINVAL;
    }
    if (o->v.max_pending == 0) {
        dlg_errf(err, errlen, "max_pending: must be above 0");
        return DLG_EINVAL;
    }
    if (o->v.log_level < -1 || o->v.log_level > DLG_LOG_DEBUG) {
        dlg_errf(err, errlen, "log_level: must be -1..3");
        return DLG_EINVAL;
    }
    return 0;
}

/* Names a file OpenSSL could not use; errno first, as it is clearer than
 * OpenSSL's "system library" for a missing file. */
static int file_err(const char *field, const char *path, char *err,
                    size_t errlen) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s %s: %s", field, path, strerror(errno));
        ERR_clear_error();
        return DLG_ETLS;
    }
    fclose(f);
    char why[200];
    dlg_tlsio_last_error(why, sizeof(why));
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s %s: %s", field, path, why);
    return DLG_ETLS;
}

int dlg__ssl_ctx_new(const dlg__opts *o, SSL_CTX **out, char *err,
                     size_t errlen) {
    /* Length-prefixed protocol list, as the ALPN extension carries it. */
    static const unsigned char alpn[] = "\x0a" DLG__ALPN;
    int rc = DLG_ETLS;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        dlg_errf(err, errlen, "cannot create a TLS context");
        return DLG_ENOMEM;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail_ctx;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            rc = file_err("ca_file", o->ca_file, err, errlen);
            goto fail_ctx_quiet;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        dlg_errf(err, errlen, "cannot load the system trust store");
        goto fail_ctx_quiet;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        goto fail_ctx;
    /* OpenSSL protects the records of a client's one connection: our own
     * record layer saves memory per connection, which matters to a server
     * holding thousands, not to a client holding one, and is code a client
     * need not trust. DIALOGUE_TLS_OWN_RECORDS=1 opts in (to compare the
     * two, or to exercise the layer against a daemon). */
    /* A reconnect offers the newest session ticket of its server: a
     * server with a ticket key (listen[].ticket_key) then skips the
     * certificate and its signature, and this client the chain check. */
    if (dlg_tlsio_ctx_resume(ctx) != 0)
        goto fail_ctx;
    const char *own = getenv("DIALOGUE_TLS_OWN_RECORDS");
    if (own != NULL && strcmp(own, "1") == 0 && dlg_tlsio_ctx_lean(ctx) != 0)
        goto fail_ctx;
    if (o->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            rc = file_err("cert_file", o->cert_file, err, errlen);
            goto fail_ctx_quiet;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            /* OpenSSL checks the pair while loading the key. */
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
                dlg_errf(err, errlen, "key_file %s does not match cert_file %s",
                       o->key_file, o->cert_file);
            else
                rc = file_err("key_file", o->key_file, err, errlen);
            goto fail_ctx_quiet;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            dlg_errf(err, errlen, "key_file %s does not match cert_file %s",
                   o->key_file, o->cert_file);
            goto fail_ctx_quiet;
        }
    }
    *out = ctx;
    return 0;

fail_ctx: {
    char why[200];
    dlg_tlsio_last_error(why, sizeof(why));
    dlg_errf(err, errlen, "TLS context setup failed: %s", why);
}
fail_ctx_quiet:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

void dlg__opts_free(dlg__opts *o) {
    for (size_t i = 0; i < o->n_servers; i++) {
        dlg__free(o->servers[i].host);
        dlg__free(o->servers[i].name);
    }
    dlg__free(o->ca_file);
    dlg__free(o->cert_file);
    dlg__free(o->key_file);
    str_free(o->token, 1);
    dlg__free(o->client_name);
    memset(o, 0, sizeof(*o));
}

int dlg__opts_copy(const dlg_client_opts *in, dlg__opts *o, char *err,
                   size_t errlen) {
    entry list[DLG_CLIENT_MAX_SERVERS];
    size_t n = 0;
    int rc = check(in, list, &n, err, errlen);
    if (rc != 0)
        return rc;
    memset(o, 0, sizeof(*o));
    o->v = in->v;
    for (size_t i = 0; i < n; i++) {
        dlg__server *sv = &o->servers[i];
        /* A colon in the host can only be an IPv6 literal: bracketed in
         * the name so the port stays readable. */
        int v6 = memchr(list[i].host, ':', list[i].host_len) != NULL;
        size_t cap = list[i].host_len + 10;
        o->n_servers = i + 1;
        sv->port = list[i].port;
        if ((sv->host = dlg__malloc(list[i].host_len + 1)) == NULL ||
            (sv->name = dlg__malloc(cap)) == NULL)
            goto fail_nomem;
        memcpy(sv->host, list[i].host, list[i].host_len);
        sv->host[list[i].host_len] = 0;
        snprintf(sv->name, cap, v6 ? "[%s]:%u" : "%s:%u", sv->host, sv->port);
    }
    if ((in->ca_file && (o->ca_file = dlg__strdup(in->ca_file)) == NULL) ||
        (in->cert_file && (o->cert_file = dlg__strdup(in->cert_file)) == NULL) ||
        (in->key_file && (o->key_file = dlg__strdup(in->key_file)) == NULL) ||
        (o->token = dlg__strdup(in->token ? in->token : "")) == NULL ||
        (o->client_name = dlg__strdup(in->client_name ? in->client_name
                                                      : "libdialogue-client")) == NULL)
        goto fail_nomem;
    return 0;

fail_nomem:
    dlg__opts_free(o);
    dlg_errf(err, errlen, "out of memory copying the options");
    return DLG_ENOMEM;
}

int dlg_client_opts_check(const dlg_client_opts *o, char *err, size_t errlen) {
    dlg__opts copy;
    SSL_CTX *ctx = NULL;
    if (o == NULL) {
        dlg_errf(err, errlen, "options: NULL");
        return DLG_EINVAL;
    }
    int rc = dlg__opts_copy(o, &copy, err, errlen);
    if (rc != 0)
        return rc;
    rc = dlg__ssl_ctx_new(&copy, &ctx, err, errlen);
    if (rc == 0)
        SSL_CTX_free(ctx);
    dlg__opts_free(&copy);
    return rc;
}
