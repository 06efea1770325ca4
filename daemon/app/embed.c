/* embed.c: the create/shutdown/destroy part of the public server API, for
 * programs that embed a dialogue server on their own loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "config.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "server.h"

/* The server and the config it borrows strings from, freed together. */
typedef struct embedded {
    dlg_server srv; /* first: a dlg_server * is an embedded * */
    dlg_config *cfg;
} embedded;

int dlg_server_create(uv_loop_t *loop, const char *config_path, const char *listen,
                      const char *port_file, dlg_server **out, char *err, size_t errlen) {
    embedded *e = dlg_calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return DLG_ENOMEM;
    }
    dlg_server *s = &e->srv;
    dlg_server_opts_default(&s->opts);
    s->log.level = DLG_LOG_INFO;
    s->log.prog = "dialogue-server";
    int rc = dlg_config_load(config_path, &e->cfg, err, errlen);
    if (rc != 0)
        goto fail;
    if ((rc = dlg_boot_apply(s, e->cfg, err, errlen)) != 0)
        goto fail_server;
    if (listen)
        s->opts.listen[0].address = listen;
    s->opts.port_file = port_file;
    if ((rc = dlg_server_start(s, loop)) != 0) {
        snprintf(err, errlen, "cannot start the server (see the log)");
        goto fail_server;
    }
    *out = s;
    return 0;
fail_server:
    dlg_server_free(s);
    dlg_config_free(e->cfg);
fail:
    free(e);
    return rc;
}

void dlg_server_shutdown(dlg_server *s) {
    dlg_server_stop(s);
}

void dlg_server_destroy(dlg_server *s) {
    if (s == NULL)
        return;
    embedded *e = (embedded *)s;
    dlg_server_free(s);
    dlg_config_free(e->cfg);
    free(e);
}
