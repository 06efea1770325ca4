/* server.c: server lifecycle: TLS context, listener, signals, the per-turn
 * flush, and orderly shutdown. */
#include "server.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "conn.h"
#include "dlg_alloc.h"
#include "fanout.h"
#include "dlg_err.h"
#include "room.h"
#include "access.h"
#include "metrics.h"
#include "ratelimit.h"
#include "jwt.h"
#include "jwtcache.h"
#include "logout.h"
#include "notify.h"
#include "history.h"
#include "bus.h"
#include "sendpool.h"
#include "tlsctx.h"
#include "uring.h"
#include "web.h"
#include "presence.h"

void dlg_server_opts_default(dlg_server_opts *o) {
    memset(o, 0, sizeof(*o));
    o->listen[0] = (dlg_listener_conf){.address = "127.0.0.1:3000"};
    o->n_listen = 1;
    o->max_frame = 1u << 20;
    o->max_connections = 10000;
    o->handshake_timeout_ms = 2000;
    o->pre_auth_max_bytes = 16384;
    o->pre_auth_max_connections = 1000;
    o->max_pending_bytes = 64u << 20;
    o->soft_pending_bytes = 8u << 20;
    o->soft_pending_ms = 30000;
    o->write_timeout_ms = 10000;
    o->heartbeat_ms = 30000;
    o->max_rooms_per_conn = 128;
    o->room_ops_per_sec = 50;
    o->room_ops_burst = 500;
    o->max_subscriptions = 1024;
    o->max_room_events = 10000;
    o->max_streams = 100;
    o->tls_own_records = 1;
    o->io_uring = 1;
}

/* Every listener's TLS context (tlsctx.h), logged. */
static int make_ssl_ctxs(dlg_server *s) {
    for (size_t i = 0; i < s->opts.n_listen; i++) {
        const dlg_listener_conf *l = &s->opts.listen[i];
        if (l->plaintext) {
            dlg_log_warn(&s->log, "listener %s is PLAINTEXT: no encryption, for benchmarks only",
                         l->address);
            continue;
        }
        char err[1024];
        int rc = dlg_tlsctx_new(l, s->opts.tls_own_records, &s->listeners[i].ssl_ctx, err,
                                sizeof(err));
        if (rc != 0) {
            dlg_log_error(&s->log, "TLS: listener %s: %s", l->address, err);
            return rc;
        }
        if (l->client_crl_file)
            dlg_log_info(&s->log, "TLS: listener %s checks client certificates against the "
                                  "CRLs of %s", l->address, l->client_crl_file);
    }
    dlg_log_info(&s->log, "TLS: records of established TLS 1.3 sessions: %s",
                 s->opts.tls_own_records ? "dialogue's own (tls_own_records: true)"
                                         : "OpenSSL's (tls_own_records: false)");
    return 0;
}

/* io_uring submission slots: one send per dirty connection per loop turn;
 * a turn with more dirty connections submits once per this many. */
#define DLG_URING_ENTRIES 1024

/* Connections come and go in bursts; after this many, trim. */
#define DLG_TRIM_CHURN 64

/* The send threads (sendpool.h). Like io_uring, best effort: without
 * them the loop thread flushes alone. */
static void start_send_threads(dlg_server *s) {
    if (s->uring != NULL) {
        dlg_log_info(&s->log, "send threads: 1 (io_uring sends from the loop thread)");
        return;
    }
    uint32_t n = s->opts.send_threads;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores < 1 ? 1 : cores > DLG_SEND_THREADS_MAX ? DLG_SEND_THREADS_MAX : (uint32_t)cores;
    }
    if (n > DLG_SEND_THREADS_MAX)
        n = DLG_SEND_THREADS_MAX;
    if (n > 1) {
        int rc = dlg_sendpool_new(n - 1, 2 * DLG_SCRATCH, &s->sendpool);
        if (rc != 0) {
            dlg_log_warn(&s->log, "send threads: cannot start %u helper(s) (%s); the loop "
                         "thread sends alone", n - 1, dlg_strerror(rc));
            n = 1;
        }
    }
    if (n == 1)
        dlg_log_info(&s->log, "send threads: 1 (the loop thread only)");
    else
        dlg_log_info(&s->log, "send threads: %u (the loop thread and %u helper%s)", n, n - 1,
                     n == 2 ? "" : "s");
}

static void on_sweep(uv_timer_t *t) {
    dlg_server *s = t->data;
    if (s->accept_errors != s->accept_errors_logged) {
        dlg_log_warn(&s->log, "accept failed %llu time(s) (file descriptor limit?)",
                     (unsigned long long)(s->accept_errors - s->accept_errors_logged));
        s->accept_errors_logged = s->accept_errors;
    }
    if (s->counters.pre_auth_evicted != s->pre_auth_evicted_logged) {
        dlg_log_warn(&s->log, "closed %llu connection(s) that had not finished Hello to make "
                     "room for new ones (pre_auth_max_connections %u, max_connections %u)",
                     (unsigned long long)(s->counters.pre_auth_evicted -
                                          s->pre_auth_evicted_logged),
                     s->opts.pre_auth_max_connections, s->opts.max_connections);
        s->pre_auth_evicted_logged = s->counters.pre_auth_evicted;
    }
    if (s->close_logs_dropped) {
        dlg_log_info(&s->log, "%llu more connection close(s) not logged (at most %d lines a "
                              "second)", (unsigned long long)s->close_logs_dropped,
                     DLG_CLOSE_LOGS_PER_SEC);
        s->close_logs_dropped = 0;
    }
    dlg_conn_sweep(s, uv_now(s->loop));
    dlg_ratelimit_expire(s->rates, dlg_now_ns());
    /* Handshakes and closed connections leave free chunks between live
     * ones; glibc only gives back the top of the heap by itself, so the
     * rest stays resident. Trimming walks the free lists (about 0.3 ms with
     * 10,000 idle TLS connections) and returns every free page in it. */
    if (s->heap_churn >= DLG_TRIM_CHURN) {
        s->heap_churn = 0;
        malloc_trim(0);
    }
}

/* From the loop, so that a loop stuck in one callback stops the pings and
 * systemd restarts the daemon. */
static void on_watchdog(uv_timer_t *t) {
    (void)t;
    dlg_notify("WATCHDOG=1");
}

static void on_check(uv_check_t *h) {
    dlg_conn_flush_all(h->data);
}

/* SIGUSR1: the log file was moved (logrotate): open it again. */
static void reopen_log(dlg_server *s) {
    char err[512];
    if (s->logout == NULL) {
        dlg_log_info(&s->log, "SIGUSR1: the log goes to stderr, no log_file to reopen");
        return;
    }
    if (dlg_logout_reopen(s->logout, err, sizeof(err)) != 0)
        dlg_log_error(&s->log, "SIGUSR1: cannot reopen the log: %s; still writing to the old "
                               "file", err);
    else
        dlg_log_info(&s->log, "SIGUSR1: log file %s reopened", s->logout->path);
}

static void on_signal(uv_signal_t *h, int signum) {
    dlg_server *s = h->data;
    if (signum == SIGUSR1) {
        reopen_log(s);
        return;
    }
    if (signum == SIGHUP) {
        if (s->reload_cb) {
            /* The reload runs here, to its end, between the two. */
            dlg_notify_reloading();
            s->reload_cb(s, s->reload_ud);
            dlg_notify("READY=1");
        }
        return;
    }
    dlg_log_info(&s->log, "received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    dlg_server_stop(s);
}

/* Closes the four signal handles dlg_server_start opened. */
static void close_signals(dlg_server *s) {
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    uv_close((uv_handle_t *)&s->sig_usr1, NULL);
}

/* Writes port to opts.port_file through a temporary file and a rename, so
 * a reader never sees it half written. 0 or DLG_EIO (logged). */
static int write_port_file(dlg_server *s, int port) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->opts.port_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        goto fail;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, s->opts.port_file) != 0)
        goto fail;
    return 0;
fail:
    dlg_log_error(&s->log, "cannot write port file %s: %s", s->opts.port_file, strerror(errno));
    return DLG_EIO;
}

/* The admin listener (opts.admin): its TLS context, then its socket. It
 * starts after the others so that /readyz never answers before them. */
static int start_admin(dlg_server *s) {
    char err[1024];
    int rc;
    s->admin = (dlg_listener){.srv = s, .conf = s->opts.admin, .fd = -1};
    s->admin.conf.admin = 1;
    s->admin_on = 1;
    if (!s->admin.conf.plaintext &&
        (rc = dlg_tlsctx_new(&s->admin.conf, 0, &s->admin.ssl_ctx, err, sizeof(err))) != 0) {
        dlg_log_error(&s->log, "TLS: admin listener %s: %s", s->admin.conf.address, err);
        return rc;
    }
    if ((rc = dlg_listener_start(&s->admin, err, sizeof(err))) != 0) {
        dlg_log_error(&s->log, "admin: %s", err);
        return rc;
    }
    dlg_log_info(&s->log, "admin listener on %s port %d (%s, %s): /metrics /healthz /readyz",
                 s->admin.conf.address, s->admin.port, s->admin.ssl_ctx ? "TLS" : "plaintext",
                 s->admin.conf.token ? "bearer token required" : "no token");
    return 0;
}

int dlg_server_start(dlg_server *s, uv_loop_t *loop) {
    int rc;
    s->loop = loop;
    s->rbuf = dlg_malloc(DLG_SCRATCH);
    /* One block: a send thread's scratch has the same layout (conn.c). */
    s->pbuf = dlg_malloc(2 * DLG_SCRATCH);
    s->wbuf = s->pbuf ? s->pbuf + DLG_SCRATCH : NULL;
    if (s->rooms == NULL)
        s->rooms = dlg_rooms_new();
    if (s->rates == NULL)
        s->rates = dlg_ratelimit_new();
    if (!s->rbuf || !s->pbuf || !s->rooms || !s->rates) {
        dlg_log_error(&s->log, "out of memory at start");
        rc = DLG_ENOMEM;
        goto fail;
    }
    if (s->n_hooks == 0) {
        /* The config rules are always the first table. */
        dlg_access_hooks(&s->hooks[0]);
        s->n_hooks = 1;
    }
    if (s->presence == NULL && (s->presence = dlg_presence_new(s)) == NULL)
        dlg_log_warn(&s->log, "presence: off (out of memory at start)");
    s->reserve_fd = dlg_listener_reserve_fd();
    s->reserve_open = s->reserve_fd >= 0;
    s->n_listeners = s->opts.n_listen;
    for (size_t i = 0; i < s->n_listeners; i++) {
        s->listeners[i].srv = s;
        s->listeners[i].conf = s->opts.listen[i];
        s->listeners[i].index = i;
        s->listeners[i].fd = -1;
    }
    if (s->opts.web_root != NULL && s->web == NULL) {
        char err[512];
        if ((rc = dlg_web_load(s->opts.web_root, &s->web, err, sizeof(err))) != 0) {
            dlg_log_error(&s->log, "http: %s", err);
            goto fail;
        }
        dlg_log_info(&s->log, "http: serving %zu file(s) of %s", s->web->n, s->opts.web_root);
    }
    if ((rc = make_ssl_ctxs(s)) != 0)
        goto fail_ssl;
    if ((rc = dlg_history_start(s->history)) != 0)
        goto fail_ssl;
    /* Before the listeners: a node that cannot reach its cluster must not
     * take clients it would cut off from the other nodes. */
    if ((rc = dlg_bus_start(s->bus)) != 0)
        goto fail_history;
    for (size_t i = 0; i < s->n_listeners; i++) {
        char err[512];
        if ((rc = dlg_listener_start(&s->listeners[i], err, sizeof(err))) != 0) {
            dlg_log_error(&s->log, "%s", err);
            goto fail_listener;
        }
    }
    /* Best effort: a kernel that refuses io_uring leaves the daemon
     * working, on write(). */
    if (s->opts.io_uring) {
        char why[256];
        int ur = dlg_uring_new(loop, &s->log, DLG_URING_ENTRIES, &s->uring, why, sizeof(why));
        if (ur != 0)
            dlg_log_warn(&s->log, "io_uring: cannot set up (%s); sending with write() instead",
                         why);
        else
            dlg_log_info(&s->log, "io_uring: on (%u submission slots)", DLG_URING_ENTRIES);
    }
    start_send_threads(s);
    s->admin.fd = -1;
    if (s->opts.admin.address != NULL && (rc = start_admin(s)) != 0)
        goto fail_senders;
    for (size_t i = 0; i < s->n_listeners; i++)
        dlg_log_info(&s->log, "listening on %s port %d (%s)", s->listeners[i].conf.address,
                     s->listeners[i].port, s->listeners[i].ssl_ctx ? "TLS" : "plaintext");
    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_term);
    s->sig_int.data = s->sig_term.data = s;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &s->sig_hup);
    s->sig_hup.data = s;
    uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
    uv_signal_init(loop, &s->sig_usr1);
    s->sig_usr1.data = s;
    uv_signal_start(&s->sig_usr1, on_signal, SIGUSR1);
    /* After everything that logs how the daemon sends and listens: whoever
     * waits for the port file then finds those lines in the log. After the
     * signal handlers too: a SIGTERM sent the moment the file appears (a
     * test's stop, a supervisor) must stop the daemon cleanly, not kill it
     * by the default action (seen: test_client_reconnect under ASan on a
     * busy host, exit by signal). Nothing after it can fail, so the
     * handles below need no unwinding. */
    if (s->opts.port_file && (rc = write_port_file(s, s->listeners[0].port)) != 0) {
        close_signals(s);
        goto fail_senders;
    }
    uv_check_init(loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, on_check);
    uv_idle_init(loop, &s->kick);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
    /* Twice per period, as sd_watchdog_enabled(3) advises. */
    uint64_t wd = dlg_notify_watchdog_usec();
    if (wd > 0) {
        uint64_t every = wd / 2000 ? wd / 2000 : 1;
        uv_timer_init(loop, &s->watchdog);
        uv_timer_start(&s->watchdog, on_watchdog, 0, every);
        s->watchdog_on = 1;
        dlg_log_info(&s->log, "systemd watchdog: every %llu ms (WatchdogSec %.3f s)",
                     (unsigned long long)every, (double)wd / 1e6);
    }
    return 0;

fail_senders:
    /* The pool's threads and the ring go with dlg_server_free; the ring's
     * handle must close on this loop first. */
    if (s->uring)
        dlg_uring_stop(s->uring);
fail_listener:
    for (size_t i = 0; i < s->n_listeners; i++)
        dlg_listener_stop(&s->listeners[i]);
    if (s->admin_on)
        dlg_listener_stop(&s->admin);
    uv_run(loop, UV_RUN_NOWAIT);
fail_history:
    dlg_bus_stop(s->bus);
    dlg_history_stop(s->history);
    uv_run(loop, UV_RUN_NOWAIT);
fail_ssl:
    for (size_t i = 0; i < s->n_listeners; i++)
        dlg_listener_free(&s->listeners[i]);
    if (s->admin_on)
        dlg_listener_free(&s->admin);
    s->admin_on = 0;
    /* Its timer is on the loop: the loop closes only once it is gone. */
    if (s->presence) {
        dlg_presence_close(s->presence);
        uv_run(loop, UV_RUN_NOWAIT);
        dlg_presence_free(s->presence);
        s->presence = NULL;
    }
fail:
    return rc;
}

void dlg_server_stop(dlg_server *s) {
    if (s->stopping)
        return;
    s->stopping = 1;
    dlg_notify("STOPPING=1");
    if (s->sendpool)
        dlg_log_info(&s->log, "send threads: %llu flush(es) shared; the helpers flushed %llu "
                     "connection(s)", (unsigned long long)s->send_turns,
                     (unsigned long long)dlg_sendpool_helped(s->sendpool));
    for (size_t i = 0; i < s->n_listeners; i++)
        dlg_listener_stop(&s->listeners[i]);
    if (s->admin_on)
        dlg_listener_stop(&s->admin);
    /* Close every connection: the Error and close_notify are written best
     * effort before the handles close (dlg_conn_close). */
    dlg_conn *c = s->conns;
    while (c) {
        dlg_conn *next = c->next;
        if (c->state == DLG_CONN_READY)
            dlg_conn_final_error(c, 14 /* UNAVAILABLE */, "server shutting down");
        dlg_conn_close(c, "server shutting down");
        c = next;
    }
    /* A connection closed while on the dirty list is freed only when a
     * flush takes it off (flush.c, unlist); the flush's check handle
     * closes below, so take them off now. */
    dlg_conn_flush_all(s);
    /* Every send was cancelled by the closes above; their completions
     * release the connections before the loop frees them. */
    if (s->uring)
        dlg_uring_stop(s->uring);
    if (s->metrics)
        dlg_metrics_stop(s->metrics);
    /* After the connections: their deferred Acks are forgotten, not sent. */
    dlg_history_stop(s->history);
    dlg_bus_stop(s->bus);
    uv_close((uv_handle_t *)&s->flush_check, NULL);
    uv_close((uv_handle_t *)&s->kick, NULL);
    dlg_presence_close(s->presence);
    uv_close((uv_handle_t *)&s->sweep, NULL);
    close_signals(s);
    if (s->watchdog_on)
        uv_close((uv_handle_t *)&s->watchdog, NULL);
}

void dlg_server_free(dlg_server *s) {
    dlg_rooms_free(s->rooms);
    s->rooms = NULL;
    dlg_ratelimit_free(s->rates);
    s->rates = NULL;
    dlg_history_free(s->history);
    s->history = NULL;
    dlg_bus_free(s->bus);
    s->bus = NULL;
    dlg_uring_free(s->uring);
    s->uring = NULL;
    dlg_schema_free(s->schema);
    s->schema = NULL;
    dlg_web_free(s->web);
    s->web = NULL;
    dlg_presence_free(s->presence);
    s->presence = NULL;
    dlg_jwt_verifier_free(s->jwt);
    s->jwt = NULL;
    dlg_jwt_cache_free(s->jwt_cache);
    s->jwt_cache = NULL;
    for (size_t i = 0; i < s->n_listeners; i++)
        dlg_listener_free(&s->listeners[i]);
    s->n_listeners = 0;
    if (s->admin_on)
        dlg_listener_free(&s->admin);
    s->admin_on = 0;
    if (s->reserve_open && s->reserve_fd >= 0)
        close(s->reserve_fd);
    s->reserve_open = 0;
    free(s->admin_token);
    s->admin_token = NULL;
    dlg_strv_free(s->create_roles, s->n_create_roles);
    dlg_strv_free(s->delete_roles, s->n_delete_roles);
    free(s->rbuf);
    free(s->pbuf);
    s->rbuf = s->pbuf = s->wbuf = NULL;
    dlg_sendpool_free(s->sendpool);
    s->sendpool = NULL;
    free(s->flush_v);
    s->flush_v = NULL;
    s->cap_flush_v = 0;
}
