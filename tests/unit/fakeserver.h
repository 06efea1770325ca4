/* fakeserver.h: a server with the protocol layer wired in and nothing
 * listening (test_access, test_dispatch): small limits, dispatch as the net
 * layer's upcall, rooms, rate buckets and the config rules as the first
 * hook table. Header-only, like fakeconn.h. */
#ifndef DLG_TEST_FAKESERVER_H
#define DLG_TEST_FAKESERVER_H

#include <uv.h>

#include "access.h"
#include "conn.h"
#include "dispatch.h"
#include "dlg_err.h"
#include "ratelimit.h"
#include "room.h"

/* Fills a zeroed s on loop (already initialised). 0, or DLG_ENOMEM. */
static inline int fake_server_init(dlg_server *s, uv_loop_t *loop) {
    s->loop = loop;
    s->log.level = DLG_LOG_ERROR;
    s->opts.max_frame = 4096;
    s->opts.max_connections = 10;
    s->opts.handshake_timeout_ms = 5000;
    s->opts.pre_auth_max_bytes = 4096;
    s->opts.max_pending_bytes = 1 << 20;
    s->opts.soft_pending_bytes = 1 << 20;
    s->opts.write_timeout_ms = 10000;
    s->opts.max_rooms_per_conn = 4;
    s->opts.max_subscriptions = 16;
    s->up.frame = dlg_dispatch_frame;
    s->up.closing = dlg_dispatch_closing;
    uv_idle_init(loop, &s->kick);
    if ((s->rooms = dlg_rooms_new()) == NULL || (s->rates = dlg_ratelimit_new()) == NULL)
        return DLG_ENOMEM;
    dlg_access_hooks(&s->hooks[0]);
    s->n_hooks = 1;
    return 0;
}

#endif
