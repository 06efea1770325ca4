/* auth.c: Hello -> identity (see auth.h). */
#include "auth.h"

#include <stdio.h>
#include <string.h>

int dlg_auth_hello(dlg_server *srv, dlg_conn *c, const Dialogue__V1__Hello *h,
                   char *err, size_t errlen) {
    (void)c;
    if (h->token && h->token[0]) {
        snprintf(err, errlen, "token authentication is not configured on this server");
        return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
    }
    if (!srv->opts.allow_anonymous) {
        snprintf(err, errlen, "credentials required: send a token in Hello");
        return DIALOGUE__V1__STATUS__UNAUTHENTICATED;
    }
    return 0;
}
