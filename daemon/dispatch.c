/* dispatch.c: the per-state frame dispatcher. Before Welcome only Hello is
 * accepted; any other frame, or Hello twice, is a protocol error that closes
 * the connection. Every request gets exactly one reply echoing request_id. */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "auth.h"
#include "bus.h"
#include "dlg_err.h"
#include "fanout.h"
#include "history.h"
#include "hooks.h"
#include "boot.h"
#include "room.h"

#define ST(x) DIALOGUE__V1__STATUS__##x

/* Rooms a client may create at run time, all clients together. */
#define DLG_MAX_DYNAMIC_ROOMS 10000
#define SF(x) DIALOGUE__V1__SERVER_FRAME__MSG_##x
#define CF(x) DIALOGUE__V1__CLIENT_FRAME__MSG_##x

static const char *frame_name(int c) {
    switch (c) {
    case CF(HELLO): return "Hello";
    case CF(JOIN): return "Join";
    case CF(LEAVE): return "Leave";
    case CF(SUBSCRIBE): return "Subscribe";
    case CF(UNSUBSCRIBE): return "Unsubscribe";
    case CF(TRIGGER): return "Trigger";
    case CF(LIST_ROOMS): return "ListRooms";
    case CF(HISTORY): return "History";
    case CF(PING): return "Ping";
    case CF(GET_SCHEMA): return "GetSchema";
    case CF(CREATE_ROOM): return "CreateRoom";
    case CF(DELETE_ROOM): return "DeleteRoom";
    case CF(PONG): return "Pong";
    }
    return "unknown frame";
}

void dlg_dispatch_send_ack(dlg_conn *c, uint64_t rid, uint64_t seq, uint32_t recipients) {
    Dialogue__V1__Ack a = DIALOGUE__V1__ACK__INIT;
    a.seq = seq;
    a.recipients = recipients;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(ACK);
    f.ack = &a;
    dlg_conn_send_frame(c, &f);
}

/* Fills a Joined reply for member m; *subs must be freed by the caller. */
static int fill_joined(Dialogue__V1__Joined *j, dlg_member *m, char ***subs) {
    size_t n = 0;
    int rc = dlg_room_subscriptions(m, subs, &n);
    if (rc != 0)
        return rc;
    j->room = m->room->id;
    j->subscriptions = *subs;
    j->n_subscriptions = n;
    j->epoch = m->room->epoch;
    j->seq = m->room->seq;
    j->members = (uint32_t)m->room->members.n;
    return 0;
}

/* Replies Joined with m's room state and subscriptions. 0, or an error
 * already answered to the client. */
static int send_joined(dlg_conn *c, uint64_t rid, dlg_member *m) {
    Dialogue__V1__Joined jd = DIALOGUE__V1__JOINED__INIT;
    char **subs = NULL;
    if (fill_joined(&jd, m, &subs) != 0) {
        dlg_conn_send_error(c, rid, ST(INTERNAL), "out of memory");
        return DLG_ENOMEM;
    }
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(JOINED);
    f.joined = &jd;
    dlg_conn_send_frame(c, &f);
    free(subs);
    return 0;
}

/* Looks up a room the client names; replies with the error itself. */
static dlg_room *room_arg(dlg_conn *c, uint64_t rid, const char *id) {
    const char *why = dlg_name_check(id);
    if (why) {
        dlg_conn_send_error(c, rid, ST(INVALID_ARGUMENT), "room id \"%.64s\" %s", id, why);
        return NULL;
    }
    dlg_room *r = dlg_rooms_find(c->srv->rooms, id);
    if (r == NULL)
        dlg_conn_send_error(c, rid, ST(NOT_FOUND), "room %s not found", id);
    return r;
}

/* ---- Hello ------------------------------------------------------------ */

static int do_hello(dlg_conn *c, uint64_t rid, Dialogue__V1__Hello *h) {
    dlg_server *s = c->srv;
    if (h->protocol_version != 1) {
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION),
                            "protocol version %u is not supported (this server speaks 1)",
                            h->protocol_version);
        dlg_conn_close_after_flush(c, "unsupported protocol version");
        return 1;
    }
    char err[256] = "";
    int status = dlg_auth_hello(s, c, h, err, sizeof(err));
    if (status != 0) {
        dlg_log_info(&s->log, "conn %s (%s): refused: %s: %s", c->client_id, c->peer,
                     dlg_status_name(status), err);
        dlg_conn_send_error(c, rid, status, "%s", err);
        dlg_conn_close_after_flush(c, "authentication failed");
        return 1;
    }
    if (h->client_name && h->client_name[0])
        c->client_name = strndup(h->client_name, 128);
    c->state = DLG_CONN_READY;
    dlg_conn_start_heartbeat(c);
    Dialogue__V1__Joined **aj = NULL;
    size_t n_aj = 0;
    dlg_boot_auto_join(s, c, &aj, &n_aj);

    Dialogue__V1__Welcome w = DIALOGUE__V1__WELCOME__INIT;
    w.client_id = c->client_id;
    w.user_id = c->user_id ? c->user_id : "";
    w.server_version = "dialogued " DLG_VERSION;
    w.heartbeat_ms = s->opts.heartbeat_ms;
    w.roles = c->roles;
    w.n_roles = c->n_roles;
    w.max_frame = s->opts.max_frame;
    w.auto_joined = aj;
    w.n_auto_joined = n_aj;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(WELCOME);
    f.welcome = &w;
    dlg_conn_send_frame(c, &f);
    /* Before any hook can trigger: nothing may come between batch and live. */
    for (size_t i = 0; i < n_aj; i++) {
        dlg_room *ar = dlg_rooms_find(s->rooms, aj[i]->room);
        dlg_member *am = ar ? dlg_room_member(ar, c) : NULL;
        if (am)
            dlg_history_on_join(c, rid, am, NULL);
    }
    dlg_hooks_connected(s, c);
    for (size_t i = 0; i < n_aj; i++)
        dlg_hooks_joined(s, c, aj[i]->room);
    dlg_boot_free_joined(aj, n_aj);
    dlg_log_info(&s->log, "conn %s (%s): welcome user=%s roles=%zu name=%s", c->client_id,
                 c->peer, c->user_id ? c->user_id : "(anonymous)", c->n_roles,
                 c->client_name ? c->client_name : "-");
    return 0;
}

/* ---- rooms ------------------------------------------------------------ */

static void do_join(dlg_conn *c, uint64_t rid, Dialogue__V1__Join *j) {
    dlg_room *r = room_arg(c, rid, j->room);
    if (r == NULL)
        return;
    /* A cluster-log node behind the client's position answers once it has
     * caught up, or refuses (UNAVAILABLE): never a false loss (bus.h). */
    if (dlg_bus_recover_wait(c->srv->bus, c, rid, r, j, do_join))
        return;
    char reason[256] = "";
    if (dlg_hooks_before_join(c->srv, c, r->id, reason, sizeof(reason)) != 0) {
        dlg_conn_send_error(c, rid, ST(PERMISSION_DENIED), "%s",
                            reason[0] ? reason : "may not join this room");
        return;
    }
    if (c->n_members >= c->srv->opts.max_rooms_per_conn && !dlg_room_member(r, c)) {
        dlg_conn_send_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "already in %zu rooms, the limit per connection", c->n_members);
        return;
    }
    dlg_member *m = NULL;
    int rc = dlg_room_join(r, c, &m);
    if (rc == DLG_EEXIST && j->recover) {
        /* Already a member (e.g. auto_join on this connection): a recovery
         * Join still gets its replay, for the member's current subscriptions. */
        m = dlg_room_member(r, c);
        if (send_joined(c, rid, m) == 0)
            dlg_history_on_join(c, rid, m, j);
        return;
    }
    if (rc == DLG_EEXIST) {
        dlg_conn_send_error(c, rid, ST(ALREADY_EXISTS), "already a member of room %s", r->id);
        return;
    }
    if (rc == DLG_EFULL) {
        dlg_conn_send_error(c, rid, ST(RESOURCE_EXHAUSTED), "room %s is full", r->id);
        return;
    }
    if (rc != 0) {
        dlg_conn_send_error(c, rid, ST(INTERNAL), "cannot join room %s: %s", r->id,
                            dlg_strerror(rc));
        return;
    }
    if (send_joined(c, rid, m) != 0)
        return;
    /* Queued before any later event (one loop thread): no gap, no duplicate. */
    dlg_history_on_join(c, rid, m, j);
    dlg_hooks_joined(c->srv, c, r->id);
}

static void do_leave(dlg_conn *c, uint64_t rid, Dialogue__V1__Leave *l) {
    dlg_room *r = room_arg(c, rid, l->room);
    if (r == NULL)
        return;
    if (dlg_room_leave(r, c) != 0) {
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    dlg_hooks_left(c->srv, c, r->id, "left");
    Dialogue__V1__Left left = DIALOGUE__V1__LEFT__INIT;
    left.room = r->id;
    left.reason = "left";
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(LEFT);
    f.left = &left;
    dlg_conn_send_frame(c, &f);
}

static void do_sub(dlg_conn *c, uint64_t rid, const char *room, char **events, size_t n,
                   int all, int unsub) {
    dlg_room *r = room_arg(c, rid, room);
    if (r == NULL)
        return;
    dlg_member *m = dlg_room_member(r, c);
    if (m == NULL) {
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    if (!all && n == 0) {
        dlg_conn_send_error(c, rid, ST(INVALID_ARGUMENT), "no events named (set all for every event)");
        return;
    }
    const char *bad = NULL;
    int rc = unsub ? dlg_room_unsubscribe(m, events, n, all, &bad)
                   : dlg_room_subscribe(m, events, n, all, &bad);
    if (rc == DLG_ENOTFOUND) {
        dlg_conn_send_error(c, rid, ST(NOT_FOUND), "room %s has no event %.64s", r->id, bad);
        return;
    }
    if (rc == DLG_EINVAL) {
        dlg_conn_send_error(c, rid, ST(INVALID_ARGUMENT), "event name \"%.64s\" %s", bad,
                            dlg_name_check(bad));
        return;
    }
    if (rc == DLG_ESTATE) {
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION),
                            "room %s accepts any event: unsubscribe all before naming events",
                            r->id);
        return;
    }
    if (rc != 0) {
        dlg_conn_send_error(c, rid, ST(INTERNAL), "out of memory");
        return;
    }
    send_joined(c, rid, m); /* the resulting subscription set */
}

static void do_trigger(dlg_conn *c, uint64_t rid, Dialogue__V1__Trigger *t, uint64_t recv_ns) {
    dlg_room *r = room_arg(c, rid, t->room);
    if (r == NULL)
        return;
    const char *why = dlg_name_check(t->event);
    if (why) {
        dlg_conn_send_error(c, rid, ST(INVALID_ARGUMENT), "event name \"%.64s\" %s", t->event, why);
        return;
    }
    dlg_member *me = dlg_room_member(r, c);
    if (me == NULL) {
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    if (!dlg_member_take_token(me, recv_ns)) {
        dlg_conn_send_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "rate limit: %u triggers per second in room %s", r->rate_per_sec,
                            r->id);
        return;
    }
    /* Whether the room accepts the event is checked once, in the fan-out. */
    char err[512];
    dlg_publish_result res;
    /* Anonymous senders are named by their connection id. */
    const char *from = c->user_id ? c->user_id : c->client_id;
    if (dlg_fanout_publish(c->srv, r, c, t->event, t->data.data, t->data.len, from, recv_ns,
                           &res, err, sizeof(err)) != 0) {
        dlg_conn_send_error(c, rid, res.status, "%s", err);
        return;
    }
    /* The cluster log numbers the event: the Ack waits for its answer. */
    if (res.ticket) {
        /* The answer always comes on a later loop turn, so the ticket is
         * still waiting here; were it not, the event was accepted with a
         * seq this node no longer knows. */
        if (dlg_bus_defer_ack(c->srv->bus, c, rid, res.ticket) != 0)
            dlg_dispatch_send_ack(c, rid, 0, 0);
        return;
    }
    if (!dlg_history_defer_ack(c->srv, c, rid, r, res.seq, res.recipients))
        dlg_dispatch_send_ack(c, rid, res.seq, res.recipients);
}

static void do_list(dlg_conn *c, uint64_t rid, Dialogue__V1__ListRooms *lr) {
    static char *star[] = {"*"};
    dlg_rooms *rs = c->srv->rooms;
    Dialogue__V1__RoomInfo *infos = calloc(rs->n ? rs->n : 1, sizeof(*infos));
    Dialogue__V1__RoomInfo **ptrs = calloc(rs->n ? rs->n : 1, sizeof(*ptrs));
    char ***ids = calloc(rs->n ? rs->n : 1, sizeof(*ids));
    if (!infos || !ptrs || !ids) {
        dlg_conn_send_error(c, rid, ST(INTERNAL), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < rs->n; i++) {
        dlg_room *r = rs->v[i];
        Dialogue__V1__RoomInfo *ri = &infos[i];
        dialogue__v1__room_info__init(ri);
        ri->id = r->id;
        ri->name = r->name;
        ri->description = r->description;
        ri->events = r->any_event ? star : r->events;
        ri->n_events = r->any_event ? 1 : r->n_events;
        ri->members = (uint32_t)r->members.n;
        ri->max_size = r->max_size;
        ri->dynamic = r->dynamic;
        /* Member ids only to those who may join: a list reveals nothing
         * of a room the client may not read. */
        dlg_client_info me;
        dlg_hooks_client_info(c, &me);
        if (lr->members && dlg_access_may_join(r, &me) && r->members.n) {
            ids[i] = calloc(r->members.n, sizeof(char *));
            if (ids[i]) {
                for (size_t k = 0; k < r->members.n; k++) {
                    dlg_conn *mc = r->members.v[k]->conn;
                    ids[i][k] = mc->user_id ? mc->user_id : mc->client_id;
                }
                ri->member_ids = ids[i];
                ri->n_member_ids = r->members.n;
            }
        }
        ptrs[i] = ri;
    }
    Dialogue__V1__Rooms rooms = DIALOGUE__V1__ROOMS__INIT;
    rooms.rooms = ptrs;
    rooms.n_rooms = rs->n;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(ROOMS);
    f.rooms = &rooms;
    dlg_conn_send_frame(c, &f);
out:
    if (ids)
        for (size_t i = 0; i < rs->n; i++)
            free(ids[i]);
    free(ids);
    free(ptrs);
    free(infos);
}

static void do_schema(dlg_conn *c, uint64_t rid) {
    dlg_schema *sc = c->srv->schema;
    size_t ns = sc ? dlg_schema_set_count(sc) : 0;
    size_t ne = sc ? dlg_schema_event_count(sc) : 0;
    ProtobufCBinaryData *sets = calloc(ns ? ns : 1, sizeof(*sets));
    Dialogue__V1__EventType *evs = calloc(ne ? ne : 1, sizeof(*evs));
    Dialogue__V1__EventType **evp = calloc(ne ? ne : 1, sizeof(*evp));
    if (!sets || !evs || !evp) {
        dlg_conn_send_error(c, rid, ST(INTERNAL), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ns; i++) {
        const uint8_t *d;
        dlg_schema_set_at(sc, i, &d, &sets[i].len);
        sets[i].data = (uint8_t *)d;
    }
    for (size_t i = 0; i < ne; i++) {
        const dlg_schema_event *e = dlg_schema_event_at(sc, i);
        dialogue__v1__event_type__init(&evs[i]);
        evs[i].name = e->name;
        evs[i].message_type = e->msg->full_name;
        evp[i] = &evs[i];
    }
    Dialogue__V1__Schema sch = DIALOGUE__V1__SCHEMA__INIT;
    sch.descriptor_sets = sets;
    sch.n_descriptor_sets = ns;
    sch.events = evp;
    sch.n_events = ne;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(SCHEMA);
    f.schema = &sch;
    dlg_conn_send_frame(c, &f);
out:
    free(sets);
    free(evs);
    free(evp);
}

static void do_create(dlg_conn *c, uint64_t rid, Dialogue__V1__CreateRoom *cr) {
    dlg_server *s = c->srv;
    if (!dlg_access_may_create(s, c)) {
        dlg_conn_send_error(c, rid, ST(PERMISSION_DENIED), "may not create rooms");
        return;
    }
    /* Every field of a room kept in memory has a cap, and so has their number. */
    size_t n_dynamic = 0;
    for (size_t i = 0; i < s->rooms->n; i++)
        n_dynamic += s->rooms->v[i]->dynamic != 0;
    if (n_dynamic >= DLG_MAX_DYNAMIC_ROOMS) {
        dlg_conn_send_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "room %.64s: %d rooms created at run time is the limit", cr->room,
                            DLG_MAX_DYNAMIC_ROOMS);
        return;
    }
    if ((cr->name && strlen(cr->name) > 255) ||
        (cr->description && strlen(cr->description) > 1024) ||
        cr->n_events > 256 || cr->n_default_subscriptions > 256) {
        dlg_conn_send_error(c, rid, ST(INVALID_ARGUMENT),
                            "room %.64s: name over 255 bytes, description over 1024 bytes, or "
                            "more than 256 events or default subscriptions", cr->room);
        return;
    }
    /* Typed rooms only name events the daemon has schemas for. */
    for (size_t i = 0; i < cr->n_events; i++) {
        const char *e = cr->events[i];
        if (strcmp(e, "*") != 0 && dlg_name_check(e) == NULL &&
            (s->schema == NULL || dlg_schema_event_find(s->schema, e) == NULL)) {
            dlg_conn_send_error(c, rid, ST(INVALID_ARGUMENT), "event %s has no schema loaded", e);
            return;
        }
    }
    dlg_room_spec spec = {
        .id = cr->room, .name = cr->name, .description = cr->description,
        .events = (const char *const *)cr->events, .n_events = cr->n_events,
        .default_subs = (const char *const *)cr->default_subscriptions,
        .n_default_subs = cr->n_default_subscriptions, .max_size = cr->max_size,
    };
    char err[256];
    dlg_room *r = NULL;
    int rc = dlg_rooms_add(s->rooms, &spec, 1, c->user_id ? c->user_id : c->client_id, &r,
                           err, sizeof(err));
    if (rc != 0) {
        dlg_conn_send_error(c, rid, rc == DLG_EEXIST ? ST(ALREADY_EXISTS)
                                    : rc == DLG_EINVAL ? ST(INVALID_ARGUMENT) : ST(INTERNAL),
                            "%s", err);
        return;
    }
    dlg_log_info(&s->log, "room %s created by %s", r->id, r->creator);
    dlg_dispatch_send_ack(c, rid, 0, 0);
    dlg_hooks_room_created(s, r->id, r->creator);
}

static void do_delete(dlg_conn *c, uint64_t rid, Dialogue__V1__DeleteRoom *d) {
    dlg_room *r = room_arg(c, rid, d->room);
    if (r == NULL)
        return;
    if (!dlg_access_may_delete(c->srv, r, c)) {
        dlg_conn_send_error(c, rid, ST(PERMISSION_DENIED),
                            r->dynamic ? "may not delete room %s"
                                       : "room %s comes from the config file and cannot be deleted",
                            r->id);
        return;
    }
    dlg_log_info(&c->srv->log, "room %s deleted by %s", r->id,
                 c->user_id ? c->user_id : c->client_id);
    char id[256];
    snprintf(id, sizeof(id), "%s", r->id);
    for (size_t i = 0; i < r->members.n; i++)
        dlg_hooks_left(c->srv, r->members.v[i]->conn, id, "room deleted");
    dlg_rooms_remove(c->srv->rooms, r, "room deleted");
    dlg_dispatch_send_ack(c, rid, 0, 0);
    dlg_hooks_room_deleted(c->srv, id);
}

/* Members only: a client refused at Join gets the same answer as any
 * non-member, so History reveals nothing of the room. */
static void do_history(dlg_conn *c, uint64_t rid, Dialogue__V1__History *h) {
    dlg_room *r = room_arg(c, rid, h->room);
    if (r == NULL)
        return;
    if (dlg_room_member(r, c) == NULL) {
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    dlg_history_request(c, rid, r, h);
}

static void do_ping(dlg_conn *c, uint64_t rid, Dialogue__V1__Ping *p) {
    Dialogue__V1__Pong pong = DIALOGUE__V1__PONG__INIT;
    pong.nonce = p->nonce;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(PONG);
    f.pong = &pong;
    dlg_conn_send_frame(c, &f);
}

int dlg_dispatch_frame(dlg_conn *c, const uint8_t *body, size_t len) {
    uint64_t recv_ns = dlg_now_ns();
    dlg_server *s = c->srv;
    s->counters.frames_in++;
    Dialogue__V1__ClientFrame *f = dialogue__v1__client_frame__unpack(NULL, len, body);
    if (f == NULL) {
        dlg_conn_send_error(c, 0, ST(INVALID_ARGUMENT), "malformed frame: not a ClientFrame");
        dlg_conn_close_after_flush(c, "malformed frame");
        return 1;
    }
    int stop = 0;
    uint64_t rid = f->request_id;
    if (c->state != DLG_CONN_READY) {
        if (f->msg_case != CF(HELLO)) {
            dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION), "expected Hello first, got %s",
                                frame_name(f->msg_case));
            dlg_conn_close_after_flush(c, "frame before Hello");
            stop = 1;
        } else {
            stop = do_hello(c, rid, f->hello);
        }
        goto out;
    }
    switch (f->msg_case) {
    case CF(HELLO):
        dlg_conn_send_error(c, rid, ST(FAILED_PRECONDITION), "Hello was already received");
        dlg_conn_close_after_flush(c, "Hello twice");
        stop = 1;
        break;
    case CF(JOIN): do_join(c, rid, f->join); break;
    case CF(LEAVE): do_leave(c, rid, f->leave); break;
    case CF(SUBSCRIBE):
        do_sub(c, rid, f->subscribe->room, f->subscribe->events, f->subscribe->n_events,
               f->subscribe->all, 0);
        break;
    case CF(UNSUBSCRIBE):
        do_sub(c, rid, f->unsubscribe->room, f->unsubscribe->events,
               f->unsubscribe->n_events, f->unsubscribe->all, 1);
        break;
    case CF(TRIGGER): do_trigger(c, rid, f->trigger, recv_ns); break;
    case CF(LIST_ROOMS): do_list(c, rid, f->list_rooms); break;
    case CF(PING): do_ping(c, rid, f->ping); break;
    case CF(GET_SCHEMA): do_schema(c, rid); break;
    case CF(CREATE_ROOM): do_create(c, rid, f->create_room); break;
    case CF(DELETE_ROOM): do_delete(c, rid, f->delete_room); break;
    case CF(PONG):
        break; /* heartbeat answer: receiving it is all that counts */
    case CF(HISTORY): do_history(c, rid, f->history); break;
    default:
        /* An empty frame, or a message type from a newer protocol. */
        dlg_conn_send_error(c, rid, ST(UNIMPLEMENTED), "frame carries no known message");
        break;
    }
out:
    dialogue__v1__client_frame__free_unpacked(f, NULL);
    return stop;
}
