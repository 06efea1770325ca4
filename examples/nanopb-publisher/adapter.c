/* adapter.c: connect, join and unsubscribe for the nanopb publisher, with
 * the settings from the environment (as dialoguectl reads them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

int nbp_adapter_connect(const char *room, dlg_client **out, char *err, size_t errlen) {
    const char *server = getenv("DIALOGUE_SERVER");
    const char *colon = server != NULL ? strrchr(server, ':') : NULL;
    char host[256];
    if (colon == NULL || colon == server || (size_t)(colon - server) >= sizeof(host)) {
        snprintf(err, errlen, "DIALOGUE_SERVER must be HOST:PORT, not '%s'",
                 server != NULL ? server : "");
        return DLG_EINVAL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - server), server);
    /* The client keeps its own copy of the options. */
    dlg_client_opts *o = NULL;
    dlg_client *c = NULL;
    int rc = dlg_client_opts_new(&o);
    if (rc == 0)
        rc = dlg_client_opts_set_host(o, host);
    if (rc == 0)
        rc = dlg_client_opts_set_port(o, (unsigned)strtoul(colon + 1, NULL, 10));
    if (rc == 0)
        rc = dlg_client_opts_set_ca_file(o, getenv("DIALOGUE_CA"));
    if (rc == 0)
        rc = dlg_client_opts_set_token(o, getenv("DIALOGUE_TOKEN"));
    if (rc == 0)
        rc = dlg_client_opts_set_client_name(o, "examples/nanopb-publisher");
    if (rc != 0)
        snprintf(err, errlen, "options: %s", dlg_client_strerror(rc));
    else
        rc = dlg_sync_connect(o, 10000, &c, err, errlen);
    dlg_client_opts_free(o);
    if (rc != 0)
        return rc;
    rc = dlg_sync_join(c, room, 5000, err, errlen);
    if (rc != 0)
        goto fail;
    rc = dlg_sync_unsubscribe(c, room, NULL, 0, 1, 5000, err, errlen);
    if (rc != 0)
        goto fail;
    *out = c;
    return 0;

fail:
    dlg_client_free(c);
    return rc;
}
