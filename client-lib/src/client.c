/* client.c: the client handle: creation, the loop-mode/thread-mode command
 * path, connection state, the request list with its timeouts, close and
 * free. Protocol handling is in session.c, socket and TLS in conn.c. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "dlg_err.h"

static void on_handle_closed(uv_handle_t *h);

/* ---- helpers ------------------------------------------------------------- */

const char *dlg_client_strerror(int err) {
    return dlg_strerror(err);
}

const char *dlg_client_status_name(int status) {
    return dlg_status_name(status);
}

const char *dlg_from_kind_name(int kind) {
    switch (kind) {
    case DLG_FROM_SERVER: return "server";
    case DLG_FROM_TOKEN: return "token";
    case DLG_FROM_CERTIFICATE: return "certificate";
    case DLG_FROM_ANONYMOUS: return "anonymous";
    default: return "unknown";
    }
}

int dlg_client_status_err(int status) {
    return dlg_err_from_status(status);
}

/* DLG_VERSION: the top-level VERSION file, through the header the build
 * generates from it (mk/version-h.sh). */
const char *dlg_client_version(void) {
    return DLG_VERSION;
}

const char *dlg_client_state_name(dlg_client_state_t st) {
    switch (st) {
    case DLG_STATE_IDLE: return "idle";
    case DLG_STATE_CONNECTING: return "connecting";
    case DLG_STATE_CONNECTED: return "connected";
    case DLG_STATE_DISCONNECTED: return "disconnected";
    case DLG_STATE_CLOSED: return "closed";
    }
    return "unknown";
}

dlg_client_state_t dlg_client_state(const dlg_client *c) {
    return (dlg_client_state_t)atomic_load(&((dlg_client *)c)->pub_state);
}

/* ---- servers ---------------------------------------------------------------- */

const dlg__server *dlg__server_now(const dlg_client *c) {
    return &c->o.servers[c->srv];
}

/* The names are fixed from construction to free; only the index moves, and
 * it is published atomically, so any thread may read a name. */
static const char *server_name_pub(const dlg_client *c) {
    size_t i = atomic_load(&((dlg_client *)c)->pub_srv);
    return c->o.servers[i < c->o.n_servers ? i : 0].name;
}

void dlg__servers_desc(const dlg_client *c, char *buf, size_t len) {
    if (c->o.n_servers == 1)
        snprintf(buf, len, "%s", c->o.servers[0].name);
    else
        snprintf(buf, len, "any of the %zu servers (last tried %s)", c->o.n_servers,
                 server_name_pub(c));
}

int dlg_client_server(const dlg_client *c, char *buf, size_t len) {
    if (c == NULL || buf == NULL || len == 0)
        return DLG_EINVAL;
    const char *name = server_name_pub(c);
    size_t n = strlen(name);
    if (n >= len) {
        memcpy(buf, name, len - 1);
        buf[len - 1] = 0;
        return DLG_ETOOBIG;
    }
    memcpy(buf, name, n + 1);
    return 0;
}

int dlg_client_auto_joined(const dlg_client *c, const char *room) {
    if (c == NULL || room == NULL)
        return DLG_EINVAL;
    if (c->state != DLG_STATE_CONNECTED)
        return 0;
    /* dlg__room_find only reads. */
    const dlg__room *rm = dlg__room_find((dlg_client *)c, room);
    return rm != NULL && rm->auto_joined;
}

/* ---- state ---------------------------------------------------------------- */

void dlg__set_state(dlg_client *c, int st, const char *reason) {
    c->state = st;
    uv_mutex_lock(&c->mu);
    /* CLOSED is final: a thread-mode dlg_client_close publishes it before
     * the library thread gets there, and nothing may overwrite it. */
    int cur = atomic_load(&c->pub_state);
    while (cur != DLG_STATE_CLOSED && !atomic_compare_exchange_weak(&c->pub_state, &cur, st))
        ;
    if (reason != NULL)
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    c->state_gen++;
    uv_cond_broadcast(&c->cv);
    uv_mutex_unlock(&c->mu);
    if (reason != NULL)
        dlg_log_info(&c->log, "%s: %s", dlg_client_state_name(st), reason);
    else
        dlg_log_debug(&c->log, "%s", dlg_client_state_name(st));
    if (c->state_cb != NULL && !c->freeing) {
        c->cb_depth++;
        c->state_cb(c, c->state_ud, (dlg_client_state_t)st, reason);
        c->cb_depth--;
    }
}

void dlg__notify_left(dlg_client *c, const char *room, const char *reason) {
    if (c->left_cb != NULL && !c->freeing) {
        c->cb_depth++;
        c->left_cb(c, c->left_ud, room, reason ? reason : "");
        c->cb_depth--;
    }
}

/* ---- the request list ------------------------------------------------------ */

static void on_req_timer(uv_timer_t *t);

void dlg__req_timer_arm(dlg_client *c, uint64_t deadline) {
    if (c->closing || (c->req_timer_due != 0 && c->req_timer_due <= deadline))
        return;
    uint64_t now = uv_now(c->loop);
    c->req_timer_due = deadline;
    uv_timer_start(&c->req_timer, on_req_timer, deadline > now ? deadline - now : 0, 0);
}

void dlg__req_link(dlg_client *c, dlg__req *r) {
    r->prev = c->reqs_tail;
    r->next = NULL;
    if (c->reqs_tail != NULL)
        c->reqs_tail->next = r;
    else
        c->reqs_head = r;
    c->reqs_tail = r;
    c->n_reqs++;
    if (!r->sent && r->owner == DLG__OWNER_USER)
        c->n_waiting++;
    r->deadline = uv_now(c->loop) + r->timeout_ms;
    dlg__req_timer_arm(c, r->deadline);
}

void dlg__req_unlink(dlg_client *c, dlg__req *r) {
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs_head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        c->reqs_tail = r->prev;
    r->prev = r->next = NULL;
    c->n_reqs--;
    if (!r->sent && r->owner == DLG__OWNER_USER)
        c->n_waiting--;
}

dlg__req *dlg__req_find(dlg_client *c, uint64_t id) {
    /* Replies mostly come in request order, so the match is near the head. */
    for (dlg__req *r = c->reqs_head; r != NULL; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void on_req_timer(uv_timer_t *t) {
    dlg_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    dlg__req *expired = NULL, **tail = &expired;
    int restore_lost = 0;
    c->req_timer_due = 0;
    /* Unlink first: callbacks may add or complete requests. */
    for (dlg__req *r = c->reqs_head, *next; r != NULL; r = next) {
        next = r->next;
        if (r->deadline > now)
            continue;
        dlg__req_unlink(c, r);
        *tail = r;
        tail = &r->next;
    }
    for (dlg__req *r = expired, *next; r != NULL; r = next) {
        char what[160], msg[256];
        next = r->next;
        dlg__req_describe(r, what, sizeof(what));
        snprintf(msg, sizeof(msg), "%s: no reply within %u ms", what, r->timeout_ms);
        if (r->owner == DLG__OWNER_RESTORE)
            restore_lost = 1;
        dlg__req_complete_local(c, r, DLG_ETIMEDOUT, msg);
        dlg__req_free(r);
    }
    if (restore_lost && c->conn != NULL && !c->closing)
        /* The server ignores its restore traffic: start over. */
        dlg__conn_fail(c, "server did not answer the rejoin after reconnect", 0);
    uint64_t min = 0;
    for (dlg__req *r = c->reqs_head; r != NULL; r = r->next)
        if (min == 0 || r->deadline < min)
            min = r->deadline;
    if (min != 0)
        dlg__req_timer_arm(c, min);
}

/* ---- commands ------------------------------------------------------------- */

static void refuse(dlg_client *c, dlg__req *r, int rc, const char *why) {
    dlg__req_complete_local(c, r, rc, why);
    dlg__req_free(r);
}

/* Returns a refusal when from_api, else reports it through the callback. */
static int submit_loop(dlg_client *c, dlg__req *r, int from_api) {
    char why[400];
    int rc;
    if (c->freeing) {
        dlg__req_free(r);
        return DLG_ESTATE;
    }
    if (c->closing) {
        rc = DLG_ESTATE;
        snprintf(why, sizeof(why), "client is closed");
        goto refused;
    }
    if (c->n_reqs >= c->o.v.max_pending) {
        rc = DLG_EFULL;
        snprintf(why, sizeof(why), "%u requests already waiting (max_pending)",
                 c->o.v.max_pending);
        goto refused;
    }
    if (c->state != DLG_STATE_CONNECTED && c->state != DLG_STATE_CONNECTING &&
        c->n_waiting >= c->o.v.offline_queue) {
        rc = DLG_ECLOSED;
        char where[DLG_CLIENT_SERVER_MAX + 64];
        dlg__servers_desc(c, where, sizeof(where));
        snprintf(why, sizeof(why), "not connected to %s%s", where,
                 c->o.v.offline_queue ? " and the offline queue is full" : "");
        goto refused;
    }
    dlg__req_link(c, r);
    if (c->state == DLG_STATE_CONNECTED && c->conn != NULL &&
        c->conn->phase == DLG__CONN_READY) {
        rc = dlg__session_send(c, r);
        if (rc != 0) {
            dlg__req_unlink(c, r);
            if (rc == DLG_ETOOBIG)
                snprintf(why, sizeof(why), "frame of %zu bytes is above the server's max_frame %u",
                         r->frame->len - DLG_FRAME_HDR, c->server_max_frame);
            else
                snprintf(why, sizeof(why), "out of memory queueing the request");
            goto refused;
        }
    }
    return 0;
refused:
    if (from_api) {
        dlg__req_free(r);
        return rc;
    }
    refuse(c, r, rc, why);
    return 0;
}

static void on_retry(uv_timer_t *t) {
    dlg_client *c = t->data;
    if (c->closing || c->conn != NULL)
        return;
    /* Round robin: the first attempt takes the first entry, every later
     * one the next, whether the last one failed or was lost. Chosen before
     * CONNECTING is reported, so dlg_client_server already names it in
     * the state callback. */
    if (c->tried)
        c->srv = (c->srv + 1) % c->o.n_servers;
    c->tried = 1;
    atomic_store(&c->pub_srv, c->srv);
    if (c->pass_left > 0)
        c->pass_left--;
    dlg__set_state(c, DLG_STATE_CONNECTING, NULL);
    /* The state callback may have closed the client. */
    if (!c->closing && c->conn == NULL && c->state == DLG_STATE_CONNECTING)
        dlg__conn_start(c);
}

void dlg__schedule_retry(dlg_client *c, uint64_t delay_ms) {
    if (!c->closing)
        uv_timer_start(&c->retry_timer, on_retry, delay_ms, 0);
}

static int do_connect(dlg_client *c) {
    if (c->closing)
        return DLG_ESTATE;
    if (c->state != DLG_STATE_IDLE && c->state != DLG_STATE_DISCONNECTED)
        return DLG_ESTATE;
    if (c->conn != NULL)
        return DLG_ESTATE;
    c->no_retry = 0;
    /* With reconnect off, this call tries each server once at most. */
    c->pass_left = c->o.n_servers;
    /* CONNECTING from now on, so requests made right after this call wait
     * for the attempt; the callback comes through a timer, from the loop,
     * never from inside dlg_client_connect. */
    c->state = DLG_STATE_CONNECTING;
    uv_mutex_lock(&c->mu);
    c->final_failure = 0;
    atomic_store(&c->pub_state, DLG_STATE_CONNECTING);
    uv_mutex_unlock(&c->mu);
    uv_timer_start(&c->retry_timer, on_retry, 0, 0);
    return 0;
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
}

static void close_all(dlg_client *c, int notify) {
    c->closing = 1;
    atomic_store(&c->pub_state, DLG_STATE_CLOSED);
    dlg__conn_abort(c, notify);
    close_handle((uv_handle_t *)&c->retry_timer);
    close_handle((uv_handle_t *)&c->conn_timer);
    close_handle((uv_handle_t *)&c->req_timer);
    close_handle((uv_handle_t *)&c->hb_timer);
    close_handle((uv_handle_t *)&c->flush);
}

static int do_close(dlg_client *c, dlg_close_cb cb, void *ud) {
    if (c->closing)
        return DLG_ESTATE;
    c->close_cb = cb;
    c->close_ud = ud;
    close_all(c, 1);
    /* Completions and the CLOSED report come from dlg__maybe_finalize, once
     * every handle is closed: never from inside dlg_client_close. */
    return 0;
}

static void free_memory(dlg_client *c);

void dlg__maybe_finalize(dlg_client *c) {
    if (!c->closing || c->open_handles > 0 || c->live_conns > 0)
        return;
    if (c->freeing) {
        /* Thread mode frees from dlg_client_free after the join. */
        if (!c->threaded)
            free_memory(c);
        return;
    }
    if (c->state == DLG_STATE_CLOSED)
        return;
    dlg__req *list = c->reqs_head;
    c->reqs_head = c->reqs_tail = NULL;
    c->n_reqs = 0;
    c->n_waiting = 0;
    for (dlg__req *r = list, *next; r != NULL; r = next) {
        next = r->next;
        dlg__req_complete_local(c, r, DLG_ECLOSED, "client closed");
        dlg__req_free(r);
    }
    dlg__set_state(c, DLG_STATE_CLOSED, NULL);
    if (c->close_cb != NULL && !c->freeing) {
        c->cb_depth++;
        c->close_cb(c, c->close_ud);
        c->cb_depth--;
    }
}

static void on_handle_closed(uv_handle_t *h) {
    dlg_client *c = h->data;
    c->open_handles--;
    dlg__maybe_finalize(c);
}

static void run_cmd(dlg_client *c, dlg__cmd *cmd);

static void on_async(uv_async_t *a) {
    dlg_client *c = a->data;
    uv_mutex_lock(&c->mu);
    dlg__cmd *list = c->cmd_head;
    c->cmd_head = c->cmd_tail = NULL;
    uv_mutex_unlock(&c->mu);
    for (dlg__cmd *cmd = list, *next; cmd != NULL; cmd = next) {
        next = cmd->next;
        run_cmd(c, cmd);
    }
}

static void cmd_free(dlg__cmd *cmd) {
    dlg__req_free(cmd->req);
    dlg__free(cmd->h.room);
    dlg__free(cmd->h.event);
    dlg__free(cmd);
}

/* Runs one command on the loop thread; returns what a loop-mode API call
 * reports. */
static int run_cmd_rc(dlg_client *c, dlg__cmd *cmd, int from_api) {
    int rc = 0;
    if (c->freeing && cmd->op != DLG__CMD_STOP) {
        cmd_free(cmd);
        return DLG_ESTATE;
    }
    switch (cmd->op) {
    case DLG__CMD_REQ:
        rc = submit_loop(c, cmd->req, from_api);
        cmd->req = NULL;
        break;
    case DLG__CMD_CONNECT:
        rc = do_connect(c);
        break;
    case DLG__CMD_CLOSE:
        rc = do_close(c, (dlg_close_cb)(uintptr_t)cmd->cb, cmd->ud);
        break;
    case DLG__CMD_ON_EVENT:
        if (c->closing) {
            rc = DLG_ESTATE;
            break;
        }
        rc = dlg__handler_add(c, &cmd->h);
        if (rc == 0)
            cmd->h.room = cmd->h.event = NULL; /* now owned by the table */
        break;
    case DLG__CMD_OFF_EVENT:
        dlg__handler_remove(c, cmd->h.cb, cmd->h.ud);
        break;
    case DLG__CMD_ON_STATE:
        c->state_cb = (dlg_state_cb)(uintptr_t)cmd->cb;
        c->state_ud = cmd->ud;
        break;
    case DLG__CMD_ON_LEFT:
        c->left_cb = (dlg_left_cb)(uintptr_t)cmd->cb;
        c->left_ud = cmd->ud;
        break;
    case DLG__CMD_ON_GAP:
        c->gap_cb = (dlg_gap_cb)(uintptr_t)cmd->cb;
        c->gap_ud = cmd->ud;
        break;
    case DLG__CMD_ON_EVENTS:
        c->events_cb = (dlg_events_cb)(uintptr_t)cmd->cb;
        c->events_ud = cmd->ud;
        break;
    case DLG__CMD_STOP:
        c->freeing = 1;
        close_all(c, 0);
        close_handle((uv_handle_t *)&c->async);
        break;
    }
    cmd_free(cmd);
    return rc;
}

static void run_cmd(dlg_client *c, dlg__cmd *cmd) {
    (void)run_cmd_rc(c, cmd, 0);
}

int dlg__exec(dlg_client *c, dlg__cmd *cmd) {
    if (!c->threaded)
        return run_cmd_rc(c, cmd, 1);
    cmd->next = NULL;
    uv_mutex_lock(&c->mu);
    if (c->cmd_tail != NULL)
        c->cmd_tail->next = cmd;
    else
        c->cmd_head = cmd;
    c->cmd_tail = cmd;
    uv_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
    return 0;
}

static dlg__cmd *cmd_new(int op) {
    dlg__cmd *cmd = dlg__calloc(1, sizeof(*cmd));
    if (cmd != NULL)
        cmd->op = op;
    return cmd;
}

/* Thread mode checks what it can on the calling thread, so the common
 * refusals are immediate errors in both modes. */
static int precheck(dlg_client *c) {
    int st = atomic_load(&c->pub_state);
    return st == DLG_STATE_CLOSED ? DLG_ESTATE : 0;
}

int dlg__submit(dlg_client *c, dlg__req *r) {
    int rc = precheck(c);
    if (rc == 0 && c->threaded) {
        int st = atomic_load(&c->pub_state);
        /* Racy by nature: a request that slips through is refused on the
         * library thread through its callback. */
        if (st != DLG_STATE_CONNECTED && st != DLG_STATE_CONNECTING &&
            c->o.v.offline_queue == 0)
            rc = DLG_ECLOSED;
    }
    dlg__cmd *cmd = rc == 0 ? cmd_new(DLG__CMD_REQ) : NULL;
    if (cmd == NULL) {
        dlg__req_free(r);
        return rc ? rc : DLG_ENOMEM;
    }
    cmd->req = r;
    return dlg__exec(c, cmd);
}

static int simple_cmd(dlg_client *c, int op, void *cb, void *ud) {
    if (c == NULL)
        return DLG_EINVAL;
    int rc = precheck(c);
    if (rc != 0)
        return rc;
    dlg__cmd *cmd = cmd_new(op);
    if (cmd == NULL)
        return DLG_ENOMEM;
    cmd->cb = cb;
    cmd->ud = ud;
    return dlg__exec(c, cmd);
}

int dlg_client_connect(dlg_client *c) {
    if (c != NULL && c->threaded) {
        int st = atomic_load(&c->pub_state);
        if (st != DLG_STATE_IDLE && st != DLG_STATE_DISCONNECTED)
            return DLG_ESTATE;
        /* Publish CONNECTING now so requests made right after this call
         * are queued for the attempt rather than refused. A CAS, so a state
         * the library thread stored meanwhile is not overwritten. */
        (void)atomic_compare_exchange_strong(&c->pub_state, &st, DLG_STATE_CONNECTING);
    }
    return simple_cmd(c, DLG__CMD_CONNECT, NULL, NULL);
}

int dlg_client_close(dlg_client *c, dlg_close_cb cb, void *ud) {
    if (c == NULL)
        return DLG_EINVAL;
    if (c->threaded) {
        /* Published at once, so calls made after this one see CLOSED. */
        int st = atomic_exchange(&c->pub_state, DLG_STATE_CLOSED);
        if (st == DLG_STATE_CLOSED)
            return DLG_ESTATE;
        dlg__cmd *cmd = cmd_new(DLG__CMD_CLOSE);
        if (cmd == NULL) {
            atomic_store(&c->pub_state, st);
            return DLG_ENOMEM;
        }
        cmd->cb = (void *)(uintptr_t)cb;
        cmd->ud = ud;
        return dlg__exec(c, cmd);
    }
    return simple_cmd(c, DLG__CMD_CLOSE, (void *)(uintptr_t)cb, ud);
}

int dlg_client_on_state(dlg_client *c, dlg_state_cb cb, void *ud) {
    return simple_cmd(c, DLG__CMD_ON_STATE, (void *)(uintptr_t)cb, ud);
}

int dlg_client_on_left(dlg_client *c, dlg_left_cb cb, void *ud) {
    return simple_cmd(c, DLG__CMD_ON_LEFT, (void *)(uintptr_t)cb, ud);
}

int dlg_client_on_gap(dlg_client *c, dlg_gap_cb cb, void *ud) {
    return simple_cmd(c, DLG__CMD_ON_GAP, (void *)(uintptr_t)cb, ud);
}

int dlg_client_on_events(dlg_client *c, dlg_events_cb cb, void *ud) {
    return simple_cmd(c, DLG__CMD_ON_EVENTS, (void *)(uintptr_t)cb, ud);
}

int dlg_client_on_event(dlg_client *c, const char *room, const char *event,
                        dlg_event_cb cb, void *ud) {
    if (c == NULL || cb == NULL)
        return DLG_EINVAL;
    int rc = precheck(c);
    if (rc != 0)
        return rc;
    dlg__cmd *cmd = cmd_new(DLG__CMD_ON_EVENT);
    if (cmd == NULL)
        return DLG_ENOMEM;
    cmd->h.cb = cb;
    cmd->h.ud = ud;
    if ((room != NULL && (cmd->h.room = dlg__strdup(room)) == NULL) ||
        (event != NULL && (cmd->h.event = dlg__strdup(event)) == NULL)) {
        cmd_free(cmd);
        return DLG_ENOMEM;
    }
    return dlg__exec(c, cmd);
}

int dlg_client_off_event(dlg_client *c, dlg_event_cb cb, void *ud) {
    if (c == NULL)
        return DLG_EINVAL;
    int rc = precheck(c);
    if (rc != 0)
        return rc;
    dlg__cmd *cmd = cmd_new(DLG__CMD_OFF_EVENT);
    if (cmd == NULL)
        return DLG_ENOMEM;
    cmd->h.cb = cb;
    cmd->h.ud = ud;
    return dlg__exec(c, cmd);
}

/* ---- creation and release -------------------------------------------------- */

static void thread_main(void *arg) {
    dlg_client *c = arg;
    sigset_t pipe;
    /* A write to a socket the server closed raises SIGPIPE in the writing
     * thread, which would kill the whole process. Blocked here, the write
     * fails with EPIPE and the connection is torn down like any other. */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uv_run(c->loop, UV_RUN_DEFAULT);
}

static void free_memory(dlg_client *c) {
    for (dlg__req *r = c->reqs_head, *next; r != NULL; r = next) {
        next = r->next;
        dlg__req_free(r);
    }
    for (dlg__cmd *cmd = c->cmd_head, *next; cmd != NULL; cmd = next) {
        next = cmd->next;
        cmd_free(cmd);
    }
    for (size_t i = 0; i < c->n_out; i++)
        dlg_buf_unref(c->out[i]);
    dlg__free(c->out);
    dlg__free(c->stage);
    dlg__free(c->batch_arena);
    dlg__handlers_free(c);
    dlg__rooms_free(c);
    SSL_CTX_free(c->ssl_ctx);
    dlg__opts_free(&c->o);
    uv_cond_destroy(&c->cv);
    uv_mutex_destroy(&c->mu);
    dlg__free(c);
}

static int client_new(uv_loop_t *loop, const dlg_client_opts *opts,
                      int threaded, dlg_client **out) {
    int rc;
    if (opts == NULL || out == NULL || (!threaded && loop == NULL))
        return DLG_EINVAL;
    dlg_client *c = dlg__calloc(1, sizeof(*c));
    if (c == NULL)
        return DLG_ENOMEM;
    if ((rc = dlg__opts_copy(opts, &c->o, NULL, 0)) != 0)
        goto fail_c;
    if ((rc = dlg__ssl_ctx_new(&c->o, &c->ssl_ctx, NULL, 0)) != 0)
        goto fail_opts;
    rc = DLG_EINTERNAL;
    if (uv_mutex_init(&c->mu) != 0)
        goto fail_ctx;
    if (uv_cond_init(&c->cv) != 0)
        goto fail_mu;
    c->threaded = threaded;
    if (threaded) {
        if (uv_loop_init(&c->own_loop) != 0)
            goto fail_cv;
        c->loop = &c->own_loop;
        if (uv_async_init(c->loop, &c->async, on_async) != 0)
            goto fail_loop;
        c->async.data = c;
    } else {
        c->loop = loop;
    }
    c->log.level = c->o.v.log_level;
    c->log.prog = "libdialogue-client";
    atomic_init(&c->pub_state, DLG_STATE_IDLE);
    atomic_init(&c->next_id, 1);
    atomic_init(&c->pub_srv, 0);
    c->state = DLG_STATE_IDLE;
    c->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)c) | 1;
    /* Timer and prepare initialisation cannot fail on Linux. */
    uv_timer_init(c->loop, &c->retry_timer);
    uv_timer_init(c->loop, &c->conn_timer);
    uv_timer_init(c->loop, &c->req_timer);
    uv_timer_init(c->loop, &c->hb_timer);
    uv_prepare_init(c->loop, &c->flush);
    c->retry_timer.data = c->conn_timer.data = c->req_timer.data = c;
    c->hb_timer.data = c->flush.data = c;
    c->open_handles = 5;
    if (threaded && uv_thread_create(&c->thread, thread_main, c) != 0) {
        /* Unwind the handles on the private loop from this thread. */
        c->freeing = 1;
        close_all(c, 0);
        close_handle((uv_handle_t *)&c->async);
        uv_run(c->loop, UV_RUN_DEFAULT);
        uv_loop_close(c->loop);
        free_memory(c);
        return DLG_EINTERNAL;
    }
    *out = c;
    return 0;

fail_loop:
    uv_loop_close(&c->own_loop);
fail_cv:
    uv_cond_destroy(&c->cv);
fail_mu:
    uv_mutex_destroy(&c->mu);
fail_ctx:
    SSL_CTX_free(c->ssl_ctx);
fail_opts:
    dlg__opts_free(&c->o);
fail_c:
    dlg__free(c);
    return rc;
}

int dlg_client_new(uv_loop_t *loop, const dlg_client_opts *opts, dlg_client **out) {
    return client_new(loop, opts, 0, out);
}

int dlg_client_new_threaded(const dlg_client_opts *opts, dlg_client **out) {
    return client_new(NULL, opts, 1, out);
}

void dlg_client_free(dlg_client *c) {
    if (c == NULL)
        return;
    if (!c->threaded) {
        if (c->cb_depth > 0) {
            /* Our caller would return into freed memory. */
            fprintf(stderr, "libdialogue-client: dlg_client_free called from "
                            "inside one of the client's callbacks\n");
            abort();
        }
        if (c->freeing)
            return;
        c->freeing = 1;
        if (c->open_handles == 0 && c->live_conns == 0) {
            free_memory(c);
            return;
        }
        close_all(c, 0);
        dlg__maybe_finalize(c);
        return;
    }
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &c->thread)) {
        /* Joining our own thread would hang forever; this is a caller bug. */
        fprintf(stderr, "libdialogue-client: dlg_client_free called on the "
                        "client's own library thread (from a callback)\n");
        abort();
    }
    dlg__cmd *cmd = cmd_new(DLG__CMD_STOP);
    if (cmd == NULL) {
        /* Out of memory for the last command: the thread cannot be told to
         * stop, so leak rather than free memory it still uses. */
        fprintf(stderr, "libdialogue-client: out of memory stopping a client\n");
        return;
    }
    dlg__exec(c, cmd);
    uv_thread_join(&c->thread);
    uv_loop_close(&c->own_loop);
    free_memory(c);
}
