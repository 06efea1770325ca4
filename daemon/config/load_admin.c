/* load_admin.c: the `admin` section: the address of the admin listener
 * (/metrics, /healthz, /readyz), its TLS files and its bearer token file.
 * Anything but loopback must have both TLS and a token: the metrics name
 * rooms and events, and readyz says what is down. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg__cfg_admin_free(dlg_config_admin *a) {
    free(a->listen);
    free(a->host);
    free(a->cert);
    free(a->key);
    free(a->token_file);
    memset(a, 0, sizeof(*a));
}

/* 127.0.0.0/8, ::1 and "localhost": what no other host can reach. */
static bool loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

int dlg__cfg_load_admin(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"listen", "cert", "key", "token_file", NULL};
    dlg_config_admin *a = &dlg__cfg(y)->admin;
    size_t mark = y->n_errors;
    dlg_ynode *v;
    dlg__cfg_admin_free(a);
    int rc = dlg__yaml_want_map(y, m, "admin", keys);
    if (rc < 0)
        return rc;
    a->enabled = true;
    a->line = (unsigned)m->start_mark.line + 1;
    a->port = 9090;
    if (!(a->listen = dlg_strdup("127.0.0.1:9090")) || !(a->host = dlg_strdup("127.0.0.1")))
        return DLG_ENOMEM;
    if ((v = dlg__yaml_get(y, m, "listen"))) {
        DLG_CFG_TRY(rc = dlg__yaml_text(y, v, "admin.listen", 300, &a->listen));
        if (rc == 0)
            DLG_CFG_TRY(dlg__cfg_hostport(y, v, "admin.listen", a->listen, &a->host, &a->port));
    }
    if ((v = dlg__yaml_get(y, m, "cert")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "admin.cert", &a->cert));
    if ((v = dlg__yaml_get(y, m, "key")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "admin.key", &a->key));
    if ((v = dlg__yaml_get(y, m, "token_file")))
        DLG_CFG_TRY(dlg__yaml_path(y, v, "admin.token_file", &a->token_file));
    if (y->n_errors > mark)
        return DLG_ECONFIG;
    if (!a->cert != !a->key)
        return dlg__yaml_fail(y, m, "admin", "missing \"%s\" (cert and key go together: TLS)",
                              a->cert ? "key" : "cert");
    if (!loopback(a->host) && (!a->cert || !a->token_file)) {
        v = dlg__yaml_get(y, m, "listen");
        return dlg__yaml_fail(y, v ? v : m, "admin.listen",
                              "%s is not a loopback address: the admin listener then needs TLS "
                              "(cert and key) and a bearer token (token_file)", a->listen);
    }
    return 0;
}
