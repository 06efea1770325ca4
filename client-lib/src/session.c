/* session.c: the protocol above one connection: Hello and Welcome, routing
 * server frames to requests and event handlers, answering heartbeats, and
 * the restore record (joined rooms and their subscriptions) replayed after
 * every reconnect. Positions and history batches are recover.c's; plain
 * event frames are decoded by evdec.c, everything else by protobuf-c. */
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "dlg_err.h"
#include "evdec.h"

/* ---- the restore record ---------------------------------------------------- */

dlg__room *dlg__room_find(dlg_client *c, const char *room) {
    for (size_t i = 0; i < c->n_rooms; i++)
        if (strcmp(c->rooms[i].room, room) == 0)
            return &c->rooms[i];
    return NULL;
}

int dlg__room_set(dlg_client *c, const char *room, char *const *subs,
                  size_t n_subs, dlg__room **out) {
    char **copy = NULL;
    if (room == NULL)
        return DLG_EINVAL;
    if (dlg__strv_dup((const char *const *)subs, n_subs, &copy) != 0)
        return DLG_ENOMEM;
    dlg__room *rm = dlg__room_find(c, room);
    if (rm == NULL) {
        if (c->n_rooms == c->cap_rooms) {
            size_t cap = c->cap_rooms ? c->cap_rooms * 2 : 8;
            dlg__room *n = dlg__realloc(c->rooms, cap * sizeof(*n));
            if (n == NULL)
                goto fail;
            c->rooms = n;
            c->cap_rooms = cap;
        }
        rm = &c->rooms[c->n_rooms];
        memset(rm, 0, sizeof(*rm));
        if ((rm->room = dlg__strdup(room)) == NULL)
            goto fail;
        c->n_rooms++;
    } else {
        dlg__strv_free(rm->subs, rm->n_subs);
    }
    rm->subs = copy;
    rm->n_subs = n_subs;
    if (out != NULL)
        *out = rm;
    return 0;
fail:
    dlg__strv_free(copy, n_subs);
    return DLG_ENOMEM;
}

void dlg__room_drop(dlg_client *c, const char *room) {
    dlg__room *rm = room ? dlg__room_find(c, room) : NULL;
    if (rm == NULL)
        return;
    dlg__free(rm->room);
    dlg__strv_free(rm->subs, rm->n_subs);
    size_t i = (size_t)(rm - c->rooms);
    memmove(rm, rm + 1, (c->n_rooms - i - 1) * sizeof(*rm));
    c->n_rooms--;
}

void dlg__rooms_free(dlg_client *c) {
    for (size_t i = 0; i < c->n_rooms; i++) {
        dlg__free(c->rooms[i].room);
        dlg__strv_free(c->rooms[i].subs, c->rooms[i].n_subs);
    }
    dlg__free(c->rooms);
    c->rooms = NULL;
    c->n_rooms = c->cap_rooms = 0;
}

/* ---- event handlers ------------------------------------------------------- */

int dlg__handler_add(dlg_client *c, dlg__handler *h) {
    if (c->n_handlers == c->cap_handlers) {
        size_t cap = c->cap_handlers ? c->cap_handlers * 2 : 8;
        dlg__handler *n = dlg__realloc(c->handlers, cap * sizeof(*n));
        if (n == NULL)
            return DLG_ENOMEM;
        c->handlers = n;
        c->cap_handlers = cap;
    }
    c->handlers[c->n_handlers++] = *h;
    return 0;
}

static void handlers_compact(dlg_client *c) {
    size_t j = 0;
    for (size_t i = 0; i < c->n_handlers; i++) {
        if (c->handlers[i].cb == NULL) {
            dlg__free(c->handlers[i].room);
            dlg__free(c->handlers[i].event);
        } else {
            c->handlers[j++] = c->handlers[i];
        }
    }
    c->n_handlers = j;
}

void dlg__handler_remove(dlg_client *c, dlg_event_cb cb, void *ud) {
    for (size_t i = 0; i < c->n_handlers; i++)
        if (c->handlers[i].cb == cb && c->handlers[i].ud == ud)
            c->handlers[i].cb = NULL;
    /* During a dispatch the table is being walked: compact after it. */
    if (c->dispatching == 0)
        handlers_compact(c);
}

void dlg__handlers_free(dlg_client *c) {
    for (size_t i = 0; i < c->n_handlers; i++) {
        dlg__free(c->handlers[i].room);
        dlg__free(c->handlers[i].event);
    }
    dlg__free(c->handlers);
    c->handlers = NULL;
    c->n_handlers = c->cap_handlers = 0;
}

void dlg__dispatch_event(dlg_client *c, const Dialogue__V1__Event *e) {
    if (!dlg__pos_accept(c, e)) {
        dlg_log_debug(&c->log, "dropping duplicate event %s seq %llu of room %s", e->event,
                      (unsigned long long)e->seq, e->room);
        return;
    }
    dlg_event ev = {
        .room = e->room, .event = e->event, .data = e->data.data,
        .len = e->data.len, .from = e->from, .ts_ms = e->ts_ms,
        .seq = e->seq, .epoch = e->epoch, .from_kind = (int)e->from_kind,
    };
    /* Handlers added during the dispatch wait for the next event. */
    size_t n = c->n_handlers;
    c->dispatching++;
    for (size_t i = 0; i < n && !c->freeing; i++) {
        dlg__handler h = c->handlers[i];
        if (h.cb == NULL || (h.room && strcmp(h.room, e->room) != 0) ||
            (h.event && strcmp(h.event, e->event) != 0))
            continue;
        c->cb_depth++;
        h.cb(c, h.ud, &ev);
        c->cb_depth--;
    }
    if (--c->dispatching == 0)
        handlers_compact(c);
    dlg__events_add(c, &ev);
}

/* ---- the batch callback ----------------------------------------------------- */

/* Copies n bytes (and a NUL when nul) to the arena, which has room;
 * returns their offset. */
static size_t arena_put(dlg_client *c, const void *p, size_t n, int nul) {
    size_t off = c->arena_len;
    if (n > 0)
        memcpy(c->batch_arena + off, p, n);
    if (nul)
        c->batch_arena[off + n] = '\0';
    c->arena_len += n + (nul ? 1 : 0);
    return off;
}

static void events_call(dlg_client *c, const dlg_event *evs, size_t n) {
    c->batch_busy = 1;
    c->cb_depth++;
    c->events_cb(c, c->events_ud, evs, n);
    c->cb_depth--;
    c->batch_busy = 0;
}

void dlg__events_add(dlg_client *c, const dlg_event *ev) {
    if (c->events_cb == NULL || c->freeing)
        return;
    if (c->batch_busy) {
        /* Only a callback that runs the loop itself gets here: the arena
         * is in use, so this one goes alone. */
        events_call(c, ev, 1);
        return;
    }
    if (c->n_batch == DLG_EVENTS_BATCH_MAX)
        dlg__events_flush(c);
    size_t lr = strlen(ev->room), le = strlen(ev->event), lf = strlen(ev->from);
    size_t need = lr + le + lf + 3 + ev->len;
    if (need > c->arena_cap - c->arena_len) {
        size_t cap = c->arena_cap ? c->arena_cap * 2 : 16 * 1024;
        while (cap - c->arena_len < need)
            cap *= 2;
        uint8_t *a = dlg__realloc(c->batch_arena, cap);
        if (a == NULL) {
            /* ev's views are valid now: it is not lost, only not batched. */
            dlg__events_flush(c);
            if (c->events_cb != NULL && !c->freeing)
                events_call(c, ev, 1);
            return;
        }
        c->batch_arena = a;
        c->arena_cap = cap;
    }
    dlg__bev *b = &c->batch[c->n_batch++];
    b->room = arena_put(c, ev->room, lr, 1);
    b->event = arena_put(c, ev->event, le, 1);
    b->from = arena_put(c, ev->from, lf, 1);
    b->data = arena_put(c, ev->data, ev->len, 0);
    b->len = ev->len;
    b->ts_ms = ev->ts_ms;
    b->seq = ev->seq;
    b->epoch = ev->epoch;
    b->from_kind = ev->from_kind;
}

void dlg__events_flush(dlg_client *c) {
    size_t n = c->n_batch;
    if (n == 0 || c->batch_busy)
        return;
    dlg_event evs[DLG_EVENTS_BATCH_MAX];
    const char *a = (const char *)c->batch_arena;
    for (size_t i = 0; i < n; i++) {
        const dlg__bev *b = &c->batch[i];
        evs[i] = (dlg_event){
            .room = a + b->room, .event = a + b->event, .from = a + b->from,
            .data = b->len > 0 ? c->batch_arena + b->data : NULL, .len = b->len,
            .ts_ms = b->ts_ms, .seq = b->seq, .epoch = b->epoch, .from_kind = b->from_kind,
        };
    }
    c->n_batch = 0;
    if (c->events_cb != NULL && !c->freeing)
        events_call(c, evs, n);
    c->arena_len = 0;
    /* A burst of large events should not pin a big arena. */
    if (c->arena_cap > 256 * 1024) {
        dlg__free(c->batch_arena);
        c->batch_arena = NULL;
        c->arena_cap = 0;
    }
}

/* ---- sending --------------------------------------------------------------- */

int dlg__session_send(dlg_client *c, dlg__req *r) {
    size_t body = r->frame->len - DLG_FRAME_HDR;
    if (c->server_max_frame != 0 && body > c->server_max_frame)
        return DLG_ETOOBIG;
    int rc = dlg__conn_queue(c, dlg_buf_ref(r->frame));
    if (rc != 0)
        return rc;
    if (r->owner == DLG__OWNER_USER)
        c->n_waiting--;
    r->sent = 1;
    /* The bytes now live in the output queue. */
    dlg_buf_unref(r->frame);
    r->frame = NULL;
    return 0;
}

static int send_frame(dlg_client *c, Dialogue__V1__ClientFrame *f) {
    dlg_buf *b = NULL;
    f->request_id = atomic_fetch_add_explicit(&c->next_id, 1, memory_order_relaxed);
    int rc = dlg_frame_pack(&f->base, 0, &b);
    if (rc != 0)
        return rc;
    return dlg__conn_queue(c, b);
}

int dlg__session_hello(dlg_client *c) {
    Dialogue__V1__Hello h = DIALOGUE__V1__HELLO__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    h.protocol_version = DLG_CLIENT_PROTOCOL_VERSION;
    h.token = c->o.token;
    h.client_name = c->o.client_name;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_HELLO;
    f.hello = &h;
    c->conn->phase = DLG__CONN_HELLO;
    int rc = send_frame(c, &f);
    if (rc == 0)
        c->conn->hello_id = f.request_id;
    return rc;
}

static void answer_ping(dlg_client *c, const Dialogue__V1__Ping *p) {
    Dialogue__V1__Pong m = DIALOGUE__V1__PONG__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.nonce = p->nonce;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_PONG;
    f.pong = &m;
    if (send_frame(c, &f) != 0)
        dlg_log_warn(&c->log, "out of memory answering a heartbeat");
}

void dlg__session_send_waiting(dlg_client *c) {
    for (dlg__req *r = c->reqs_head, *next; r != NULL; r = next) {
        next = r->next;
        if (r->sent)
            continue;
        int rc = dlg__session_send(c, r);
        if (rc == 0)
            continue;
        char msg[160];
        if (rc == DLG_ETOOBIG)
            snprintf(msg, sizeof(msg), "frame of %zu bytes is above the server's max_frame %u",
                     r->frame->len - DLG_FRAME_HDR, c->server_max_frame);
        else
            snprintf(msg, sizeof(msg), "out of memory queueing the request");
        dlg__req_unlink(c, r);
        dlg__req_complete_local(c, r, rc, msg);
        dlg__req_free(r);
        /* The callback may have closed the client. */
        if (c->conn == NULL || c->closing)
            return;
    }
}

/* ---- restore ---------------------------------------------------------------- */

static int strv_has(char *const *v, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

static void restore_send(dlg_client *c, dlg__req *r) {
    char what[160];
    dlg__req_describe(r, what, sizeof(what));
    dlg_log_debug(&c->log, "restore: %s", what);
    r->owner = DLG__OWNER_RESTORE;
    dlg__req_link(c, r);
    if (dlg__session_send(c, r) != 0) {
        dlg__req_unlink(c, r);
        dlg__req_free(r);
        dlg_log_warn(&c->log, "cannot send restore traffic");
    }
}

static void restore_subscription(dlg_client *c, int unsub, const char *room,
                                 const char *const *events, size_t n, int all) {
    dlg__req *r = NULL;
    if (dlg__build_subscription(c, unsub, room, events, n, all, &r) != 0) {
        dlg_log_warn(&c->log, "cannot build the resubscription of room %s", room);
        return;
    }
    restore_send(c, r);
}

/* Brings the server's subscriptions for rm (got) back to the recorded ones
 * (want); "*" stands for every event. */
static void resubscribe(dlg_client *c, const dlg__room *rm, char *const *got,
                        size_t n_got) {
    char *const *want = rm->subs;
    size_t n_want = rm->n_subs;
    int want_all = strv_has(want, n_want, "*");
    int got_all = strv_has(got, n_got, "*");
    if (want_all) {
        if (!got_all)
            restore_subscription(c, 0, rm->room, NULL, 0, 1);
        return;
    }
    if (got_all) {
        restore_subscription(c, 1, rm->room, NULL, 0, 1);
        if (n_want > 0)
            restore_subscription(c, 0, rm->room, (const char *const *)want, n_want, 0);
        return;
    }
    const char **diff = dlg__calloc(n_got + n_want + 1, sizeof(*diff));
    if (diff == NULL) {
        dlg_log_warn(&c->log, "out of memory restoring subscriptions of %s", rm->room);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_got; i++)
        if (!strv_has(want, n_want, got[i]))
            diff[n++] = got[i];
    if (n > 0)
        restore_subscription(c, 1, rm->room, diff, n, 0);
    n = 0;
    for (size_t i = 0; i < n_want; i++)
        if (!strv_has(got, n_got, want[i]))
            diff[n++] = want[i];
    if (n > 0)
        restore_subscription(c, 0, rm->room, diff, n, 0);
    dlg__free(diff);
}

void dlg__session_restore_reply(dlg_client *c, dlg__req *r,
                                const Dialogue__V1__ServerFrame *f) {
    dlg__room *rm = dlg__room_find(c, r->room);
    if (rm == NULL)
        return; /* left while the rejoin was in flight */
    if (f->msg_case == DIALOGUE__V1__SERVER_FRAME__MSG_ERROR) {
        const Dialogue__V1__Error *e = f->error;
        if (r->kind != DLG__REQ_JOIN) {
            dlg_log_warn(&c->log, "restoring subscriptions of %s: %s: %s", r->room,
                         dlg_status_name((int)e->code), e->message);
            return;
        }
        if (e->code == 6) /* ALREADY_EXISTS: joined after all */
            return;
        char reason[320];
        if (e->code == 14 && rm->rejoin_recover) {
            /* UNAVAILABLE: this node has not reached the position yet (a
             * cluster-log node behind the one we were on); nothing is lost,
             * so the room stays and another node (or this one, later) is
             * asked. The connection goes, as after a lost node. */
            snprintf(reason, sizeof(reason), "recovery of room %s refused: %s", r->room,
                     e->message);
            dlg_log_warn(&c->log, "%s; trying another server", reason);
            dlg__conn_fail(c, reason, 0);
            return;
        }
        snprintf(reason, sizeof(reason), "rejoin refused: %s: %s",
                 dlg_status_name((int)e->code), e->message);
        char *room = dlg__strdup(r->room);
        dlg__room_drop(c, r->room);
        dlg__notify_left(c, room ? room : r->room, reason);
        dlg__free(room);
        return;
    }
    if (r->kind == DLG__REQ_JOIN) {
        rm->in_restore = 0;
        dlg__pos_joined(c, rm, f->joined, r->id, 1, rm->rejoin_recover);
        resubscribe(c, rm, f->joined->subscriptions, f->joined->n_subscriptions);
    }
}

static void on_welcome(dlg_client *c, dlg__conn *conn, const Dialogue__V1__Welcome *w) {
    conn->phase = DLG__CONN_READY;
    conn->ready_at = uv_now(c->loop);
    uv_timer_stop(&c->conn_timer);
    c->attempt = 0;
    c->server_max_frame = w->max_frame;
    c->heartbeat_ms = w->heartbeat_ms;
    dlg__conn_watchdog(c);
    const char *name = dlg__server_now(c)->name;
    if (strcmp(name, conn->peer) == 0)
        dlg_log_info(&c->log, "connected to %s as %s (server %s)", name, w->client_id,
                     w->server_version);
    else
        dlg_log_info(&c->log, "connected to %s (%s) as %s (server %s)", name, conn->peer,
                     w->client_id, w->server_version);
    for (size_t i = 0; i < c->n_rooms; i++) {
        c->rooms[i].in_restore = 1;
        c->rooms[i].auto_joined = 0;
    }
    /* Rooms the server joined for us: record new ones, fix the
     * subscriptions of recorded ones. */
    for (size_t i = 0; i < w->n_auto_joined; i++) {
        const Dialogue__V1__Joined *j = w->auto_joined[i];
        dlg__room *rm = dlg__room_find(c, j->room);
        /* Its sync batch, if the room has one, carries the Hello's id. */
        if (rm == NULL) {
            if (dlg__room_set(c, j->room, j->subscriptions, j->n_subscriptions, &rm) != 0) {
                dlg_log_warn(&c->log, "out of memory recording room %s", j->room);
            } else {
                rm->auto_joined = 1;
                dlg__pos_joined(c, rm, j, conn->hello_id, 1, 0);
            }
            continue;
        }
        rm->in_restore = 0;
        rm->auto_joined = 1;
        dlg__pos_joined(c, rm, j, conn->hello_id, 1, 0);
        resubscribe(c, rm, j->subscriptions, j->n_subscriptions);
    }
    /* Index loop: a failed send does not change the table. */
    for (size_t i = 0; i < c->n_rooms; i++) {
        dlg__req *r = NULL;
        if (!c->rooms[i].in_restore)
            continue;
        if (dlg__build_rejoin(c, &c->rooms[i], &r) != 0) {
            dlg_log_warn(&c->log, "cannot build the rejoin of room %s", c->rooms[i].room);
            continue;
        }
        restore_send(c, r);
    }
    dlg__session_send_waiting(c);
    if (c->conn == conn && !c->closing)
        dlg__set_state(c, DLG_STATE_CONNECTED, NULL);
}

/* ---- incoming frames ----------------------------------------------------- */

static int before_welcome(dlg_client *c, dlg__conn *conn,
                          const Dialogue__V1__ServerFrame *f) {
    char reason[400];
    switch (f->msg_case) {
    case DIALOGUE__V1__SERVER_FRAME__MSG_WELCOME:
        on_welcome(c, conn, f->welcome);
        return 0;
    case DIALOGUE__V1__SERVER_FRAME__MSG_PING:
        answer_ping(c, f->ping);
        return 0;
    case DIALOGUE__V1__SERVER_FRAME__MSG_ERROR: {
        int code = (int)f->error->code;
        snprintf(reason, sizeof(reason), "server refused Hello: %s: %s",
                 dlg_status_name(code), f->error->message);
        /* Credentials or protocol version: another attempt cannot help. */
        int fatal = code == 16 || code == 7 || code == 9;
        dlg__conn_fail(c, reason, fatal);
        return 1;
    }
    default:
        snprintf(reason, sizeof(reason), "protocol error: server sent %s before Welcome",
                 dlg__server_case_name(f->msg_case));
        dlg__conn_fail(c, reason, 0);
        return 1;
    }
}

static int server_push(dlg_client *c, dlg__conn *conn,
                       const Dialogue__V1__ServerFrame *f) {
    switch (f->msg_case) {
    case DIALOGUE__V1__SERVER_FRAME__MSG_EVENT:
        dlg__dispatch_event(c, f->event);
        return 0;
    case DIALOGUE__V1__SERVER_FRAME__MSG_PING:
        answer_ping(c, f->ping);
        return 0;
    case DIALOGUE__V1__SERVER_FRAME__MSG_LEFT: {
        const Dialogue__V1__Left *l = f->left;
        if (dlg__room_find(c, l->room) == NULL)
            return 0;
        dlg__room_drop(c, l->room);
        dlg__notify_left(c, l->room, l->reason);
        return 0;
    }
    case DIALOGUE__V1__SERVER_FRAME__MSG_ERROR:
        /* Usually the last words before the server closes: keep it as the
         * disconnect reason. */
        snprintf(conn->server_error, sizeof(conn->server_error), "%s: %s",
                 dlg_status_name((int)f->error->code), f->error->message);
        dlg_log_warn(&c->log, "server error: %s", conn->server_error);
        return 0;
    case DIALOGUE__V1__SERVER_FRAME__MSG_GAP:
        dlg__pos_gap(c, f->gap);
        return 0;
    case DIALOGUE__V1__SERVER_FRAME__MSG_WELCOME:
        dlg__conn_fail(c, "protocol error: server sent a second Welcome", 0);
        return 1;
    default:
        dlg_log_debug(&c->log, "ignoring unsolicited %s", dlg__server_case_name(f->msg_case));
        return 0;
    }
}

/* One decoded frame, whichever decoder made it. Returns non-zero to stop. */
static int handle_frame(dlg_client *c, dlg__conn *conn, const Dialogue__V1__ServerFrame *f) {
    char reason[320];
    int stop = 0;
    if (conn->phase == DLG__CONN_HELLO) {
        stop = before_welcome(c, conn, f);
    } else if (dlg__pos_frame(c, f) || c->conn != conn) {
        /* A sync or recovery batch, delivered; or a callback run while
         * settling positions closed the connection. */
    } else if (f->request_id == 0) {
        stop = server_push(c, conn, f);
    } else {
        dlg__req *r = dlg__req_find(c, f->request_id);
        if (r == NULL || !r->sent) {
            /* A late answer to a request that already timed out. */
            dlg_log_debug(&c->log, "ignoring %s for unknown request %llu",
                          dlg__server_case_name(f->msg_case),
                          (unsigned long long)f->request_id);
        } else {
            dlg__req_unlink(c, r);
            int rc = dlg__req_complete_reply(c, r, f);
            if (rc == DLG_EPROTO && c->conn == conn) {
                char what[160];
                dlg__req_describe(r, what, sizeof(what));
                snprintf(reason, sizeof(reason), "protocol error: server answered %s with %s",
                         what, dlg__server_case_name(f->msg_case));
                dlg__conn_fail(c, reason, 0);
                stop = 1;
            }
            dlg__req_free(r);
        }
    }
    return stop;
}

int dlg__session_frame(dlg_client *c, const uint8_t *body, size_t len) {
    dlg__conn *conn = c->conn;
    int stop;
    dlg__event_view v;
    if (dlg__evdec(body, len, &v)) {
        /* The fast path for plain events (issue #7): no allocation, and the
         * frame handed on is the one protobuf-c would have made, so
         * positions, pending batches and dispatch run exactly as below.
         * data points into the receive buffer, which conn.c keeps until
         * the connection's close callback: past every event callback.
         * Nothing on the way writes through it; the cast only fits
         * protobuf-c's non-const field. */
        Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
        Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
        e.room = v.room;
        e.event = v.event;
        e.from = v.from;
        e.data.data = (uint8_t *)v.data;
        e.data.len = v.len;
        e.ts_ms = v.ts_ms;
        e.seq = v.seq;
        e.epoch = v.epoch;
        e.from_kind = (Dialogue__V1__IdentityKind)v.from_kind;
        f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
        f.event = &e;
        stop = handle_frame(c, conn, &f);
    } else {
        /* Anything but a plain event is acted on after the events before
         * it reached the batch callback. */
        dlg__events_flush(c);
        if (c->conn != conn || conn->phase == DLG__CONN_DEAD)
            return 1;
        Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(NULL, len, body);
        if (f == NULL) {
            char reason[320];
            snprintf(reason, sizeof(reason),
                     "protocol error: a %zu-byte frame from the server does not decode", len);
            dlg__conn_fail(c, reason, 0);
            return 1;
        }
        stop = handle_frame(c, conn, f);
        dialogue__v1__server_frame__free_unpacked(f, NULL);
    }
    return stop || c->conn != conn || conn->phase == DLG__CONN_DEAD;
}
