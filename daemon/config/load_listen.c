/* load_listen.c: the `listen` section: the listening sockets, their
 * addresses, TLS files and client-certificate settings. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg__cfg_listeners_free(dlg_config_listener *l, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(l[i].address);
        free(l[i].host);
        free(l[i].cert);
        free(l[i].key);
        free(l[i].client_ca);
        free(l[i].client_crl);
        free(l[i].ticket_key);
    }
    free(l);
}

int dlg__cfg_listener_default(dlg_config_listener *l) {
    memset(l, 0, sizeof(*l));
    l->address = dlg_strdup("127.0.0.1:3000");
    l->host = dlg_strdup("127.0.0.1");
    if (!l->address || !l->host)
        return DLG_ENOMEM;
    l->port = 3000;
    l->tls = true;
    return 0;
}

static bool host_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-';
}

int dlg__cfg_hostport(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s,
                      char **host_out, uint16_t *port_out) {
    const char *hs = s, *he, *ps;
    char got[80];
    dlg__yaml_show(n, got, sizeof(got));
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return dlg__yaml_fail(y, n, path, "expected [IPv6 address]:port, got %s", got);
        hs = s + 1;
        he = rb;
        ps = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return dlg__yaml_fail(y, n, path, "expected host:port, got %s", got);
        if (memchr(s, ':', (size_t)(colon - s)))
            return dlg__yaml_fail(y, n, path,
                                  "an IPv6 address needs brackets, e.g. [::1]:3000; got %s", got);
        he = colon;
        ps = colon + 1;
    }
    size_t hl = (size_t)(he - hs);
    uint64_t port;
    if (!dlg__yaml_parse_u64(ps, &port) || port > 65535)
        return dlg__yaml_fail(y, n, path,
                              "expected a port from 0 to 65535 after the last ':', got %s", got);
    if (hl == 0 || hl > 253)
        return dlg__yaml_fail(y, n, path,
                              "expected host:port with a host name or IP address, got %s", got);
    char *host = dlg_strndup(hs, hl);
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
        return dlg__yaml_fail(y, n, path, "not an IP address or host name: %s", got);
    }
    free(*host_out);
    *host_out = host;
    *port_out = (uint16_t)port;
    return 0;
}

static int load_listener(dlg_yaml *y, const dlg_ynode *m, const char *path,
                         dlg_config_listener *l) {
    static const char *const keys[] = {
        "address", "tls", "cert", "key", "client_ca", "client_crl", "require_client_cert",
        "ticket_key", NULL};
    size_t mark = y->n_errors;
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    DLG_CFG_TRY(dlg__cfg_listener_default(l));
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    l->line = (unsigned)m->start_mark.line + 1;
    if ((v = dlg__yaml_get(y, m, "address"))) {
        dlg__yaml_keypath(p, path, "address");
        DLG_CFG_TRY(rc = dlg__yaml_text(y, v, p, 300, &l->address));
        if (rc == 0)
            DLG_CFG_TRY(dlg__cfg_hostport(y, v, p, l->address, &l->host, &l->port));
    }
    static const struct {
        const char *key;
        size_t off;
    } paths[] = {
        {"cert", offsetof(dlg_config_listener, cert)},
        {"key", offsetof(dlg_config_listener, key)},
        {"client_ca", offsetof(dlg_config_listener, client_ca)},
        {"client_crl", offsetof(dlg_config_listener, client_crl)},
        {"ticket_key", offsetof(dlg_config_listener, ticket_key)},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if ((v = dlg__yaml_get(y, m, paths[i].key))) {
            dlg__yaml_keypath(p, path, paths[i].key);
            DLG_CFG_TRY(dlg__yaml_path(y, v, p, (char **)((char *)l + paths[i].off)));
        }
    if ((v = dlg__yaml_get(y, m, "tls"))) {
        dlg__yaml_keypath(p, path, "tls");
        DLG_CFG_TRY(dlg__yaml_bool(y, v, p, &l->tls));
    }
    if ((v = dlg__yaml_get(y, m, "require_client_cert"))) {
        dlg__yaml_keypath(p, path, "require_client_cert");
        DLG_CFG_TRY(dlg__yaml_bool(y, v, p, &l->require_client_cert));
    }
    if (y->n_errors > mark)
        return DLG_ECONFIG;
    if (l->tls && !l->cert)
        return dlg__yaml_fail(y, m, path, "missing \"cert\" (required when tls is true)");
    if (l->tls && !l->key)
        return dlg__yaml_fail(y, m, path, "missing \"key\" (required when tls is true)");
    if (!l->tls && (l->client_ca || l->client_crl || l->require_client_cert))
        return dlg__yaml_fail(y, m, path,
                              "client certificates (client_ca, client_crl, "
                              "require_client_cert) need tls: true");
    if (l->require_client_cert && !l->client_ca)
        return dlg__yaml_fail(y, m, path, "require_client_cert is true but client_ca is missing");
    if (l->client_crl && !l->client_ca)
        return dlg__yaml_fail(y, m, path, "client_crl is set but client_ca is missing");
    if (l->ticket_key && !l->tls)
        return dlg__yaml_fail(y, m, path, "ticket_key needs tls: true");
    /* A resumed session skips the certificate check, and with it a CRL
     * or CA that changed since the first handshake. */
    if (l->ticket_key && l->client_ca)
        return dlg__yaml_fail(y, m, path,
                              "ticket_key cannot be used with client_ca (a resumed session "
                              "would skip the client certificate check)");
    return 0;
}

int dlg__cfg_load_listen(dlg_yaml *y, const dlg_ynode *n) {
    dlg_config *c = dlg__cfg(y);
    dlg__cfg_listeners_free(c->listen, c->n_listen);
    c->listen = NULL;
    c->n_listen = 0;
    int rc =
        dlg__yaml_seq_alloc(y, n, "listen", sizeof(*c->listen), (void **)&c->listen, &c->n_listen);
    if (rc < 0)
        return rc;
    if (!c->n_listen)
        return dlg__yaml_fail(y, n, "listen",
                              "expected at least one listener (or leave the key out)");
    if (c->n_listen > DLG_CFG_MAX_LISTENERS)
        return dlg__yaml_fail(y, n, "listen", "%zu listeners; at most %d are served", c->n_listen,
                              DLG_CFG_MAX_LISTENERS);
    size_t mark = y->n_errors;
    bool ok[DLG_CFG_MAX_LISTENERS];
    for (size_t i = 0; i < c->n_listen; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, "listen", i);
        dlg_config_listener *l = &c->listen[i];
        DLG_CFG_TRY(rc = load_listener(y, dlg__yaml_seq_at(y, n, i), p, l));
        ok[i] = rc == 0;
        for (size_t j = 0; ok[i] && j < i; j++)
            if (ok[j] && l->port && l->port == c->listen[j].port &&
                !strcmp(l->host, c->listen[j].host)) {
                dlg__yaml_fail(y, dlg__yaml_seq_at(y, n, i), p,
                               "address %s is already used by listen[%zu] (line %u)", l->address,
                               j, c->listen[j].line);
                break;
            }
    }
    return dlg__yaml_since(y, mark);
}
