/* dispatch.c: the per-state frame dispatcher. Before Welcome only Hello is
 * accepted; any other frame, or Hello twice, is a protocol error that closes
 * the connection. Every request gets exactly one reply echoing request_id. */
#include "dispatch.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "auth.h"
#include "bus.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_pbcheck.h"
#include "trigger.h"
#include "history.h"
#include "hooks.h"
#include "jwt.h"
#include "presence.h"
#include "ratelimit.h"
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

/* Replies Joined with m's room state and subscriptions; history_follows
 * says a HistoryBatch answers the same request next. 0, or an error already
 * answered to the client. */
static int send_joined(dlg_conn *c, uint64_t rid, dlg_member *m, int history_follows) {
    Dialogue__V1__Joined jd = DIALOGUE__V1__JOINED__INIT;
    char **subs = NULL;
    if (dlg_room_joined(m, history_follows, &jd, &subs) != 0) {
        dlg_reply_error(c, rid, ST(INTERNAL), "out of memory");
        return DLG_ENOMEM;
    }
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(JOINED);
    f.joined = &jd;
    dlg_reply_frame(c, &f);
    free(subs);
    return 0;
}

/* Looks up a room the client names; replies with the error itself. */
static dlg_room *room_arg(dlg_conn *c, uint64_t rid, const char *id) {
    const char *why = dlg_name_check(id);
    if (why) {
        dlg_reply_error(c, rid, ST(INVALID_ARGUMENT), "room id \"%.64s\" %s", id, why);
        return NULL;
    }
    dlg_room *r = dlg_rooms_find(c->srv->rooms, id);
    if (r == NULL)
        dlg_reply_error(c, rid, ST(NOT_FOUND), "room %s not found", id);
    return r;
}

/* Takes one token from c's identity's bucket (ratelimit.h): budgets
 * belong to the identity, so leaving and joining again, or reconnecting,
 * does not refill them. 1 = go on; 0 = refused, and answered. */
static int rate_ok(dlg_conn *c, uint64_t rid, int what, const char *scope, uint32_t per_sec,
                   uint32_t burst, uint64_t now_ns) {
    if (per_sec == 0)
        return 1; /* no limit: nothing to look up (every Trigger of most rooms) */
    int ok = dlg_ratelimit_take(c->srv->rates, c->id_kind, dlg_conn_name(c), what, scope,
                                per_sec, burst, now_ns);
    if (ok == 1)
        return 1;
    if (ok < 0)
        dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "rate limiter has no room for %s: try again later",
                            dlg_conn_name(c));
    else if (what == DLG_RATE_TRIGGER)
        dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "rate limit: %u triggers per second in room %s", per_sec, scope);
    else
        dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "rate limit: %u room operations (Join, Leave, CreateRoom, "
                            "DeleteRoom) per second", per_sec);
    return 0;
}

/* The room-operations budget (limits.room_ops_*), shared by every
 * connection of one identity. */
static int room_op_ok(dlg_conn *c, uint64_t rid) {
    const dlg_server_opts *o = &c->srv->opts;
    return rate_ok(c, rid, DLG_RATE_ROOM_OPS, "", o->room_ops_per_sec, o->room_ops_burst,
                   dlg_now_ns());
}

/* ---- Hello ------------------------------------------------------------ */

static int do_hello(dlg_conn *c, uint64_t rid, Dialogue__V1__Hello *h) {
    dlg_server *s = c->srv;
    if (h->protocol_version != 1) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION),
                            "protocol version %u is not supported (this server speaks 1)",
                            h->protocol_version);
        s->counters.auth_refused[DLG_AUTHF_VERSION]++;
        s->counters.hs_failed[DLG_HSF_AUTH]++;
        dlg_conn_close_after_flush(c, "unsupported protocol version");
        return 1;
    }
    char err[256] = "";
    int status = dlg_auth_hello(s, c, h, err, sizeof(err));
    if (status != 0) {
        dlg_log_info(&s->log, "conn %s (%s): refused: %s: %s", c->client_id, c->peer,
                     dlg_status_name(status), err);
        dlg_reply_error(c, rid, status, "%s", err);
        s->counters.hs_failed[DLG_HSF_AUTH]++;
        dlg_conn_close_after_flush(c, "authentication failed");
        return 1;
    }
    if (h->client_name && h->client_name[0])
        c->client_name = dlg_strndup(h->client_name, 128);
    c->state = DLG_CONN_READY;
    dlg_conn_start_heartbeat(c);
    Dialogue__V1__Joined **aj = NULL;
    size_t n_aj = 0;
    dlg_access_auto_join(s, c, &aj, &n_aj);

    Dialogue__V1__Welcome w = DIALOGUE__V1__WELCOME__INIT;
    w.client_id = c->client_id;
    w.user_id = c->user_id ? c->user_id : "";
    w.server_version = "dialogued " DLG_VERSION;
    w.heartbeat_ms = s->opts.heartbeat_ms;
    w.roles = c->roles;
    w.n_roles = c->n_roles;
    w.max_frame = s->opts.max_frame;
    w.identity_kind = (Dialogue__V1__IdentityKind)c->id_kind;
    w.auto_joined = aj;
    w.n_auto_joined = n_aj;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(WELCOME);
    f.welcome = &w;
    dlg_reply_frame(c, &f);
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
    dlg_access_free_joined(aj, n_aj);
    dlg_log_info(&s->log, "conn %s (%s): welcome user=%s roles=%zu name=%s", c->client_id,
                 c->peer, c->user_id ? c->user_id : "(anonymous)", c->n_roles,
                 c->client_name ? c->client_name : "-");
    return 0;
}

/* ---- rooms ------------------------------------------------------------ */

/* A Join past its rate limit; also what a parked recovery Join re-runs
 * (bus.h), which must not be charged twice. */
static void join_now(dlg_conn *c, uint64_t rid, Dialogue__V1__Join *j) {
    dlg_room *r = room_arg(c, rid, j->room);
    if (r == NULL)
        return;
    /* A cluster-log node behind the client's position answers once it has
     * caught up, or refuses (UNAVAILABLE): never a false loss (bus.h). */
    if (dlg_bus_recover_wait(c->srv->bus, c, rid, r, j, join_now))
        return;
    char reason[256] = "";
    if (dlg_hooks_before_join(c->srv, c, r->id, reason, sizeof(reason)) != 0) {
        dlg_reply_error(c, rid, ST(PERMISSION_DENIED), "%s",
                            reason[0] ? reason : "may not join this room");
        return;
    }
    if (c->n_members >= c->srv->opts.max_rooms_per_conn && !dlg_room_member(r, c)) {
        dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "already in %zu rooms, the limit per connection", c->n_members);
        return;
    }
    dlg_member *m = NULL;
    int rc = dlg_room_join(r, c, &m);
    if (rc == DLG_EEXIST && j->recover) {
        /* Already a member (e.g. auto_join on this connection): a recovery
         * Join still gets its replay, for the member's current subscriptions. */
        m = dlg_room_member(r, c);
        if (send_joined(c, rid, m, dlg_history_join_follows(m, j)) == 0)
            dlg_history_on_join(c, rid, m, j);
        return;
    }
    if (rc == DLG_EEXIST) {
        dlg_reply_error(c, rid, ST(ALREADY_EXISTS), "already a member of room %s", r->id);
        return;
    }
    if (rc == DLG_EFULL) {
        dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED), "room %s is full", r->id);
        return;
    }
    if (rc != 0) {
        dlg_reply_error(c, rid, ST(INTERNAL), "cannot join room %s: %s", r->id,
                            dlg_strerror(rc));
        return;
    }
    if (send_joined(c, rid, m, dlg_history_join_follows(m, j)) != 0)
        return;
    /* Queued before any later event (one loop thread): no gap, no duplicate. */
    dlg_history_on_join(c, rid, m, j);
    dlg_hooks_joined(c->srv, c, r->id);
}

static void do_join(dlg_conn *c, uint64_t rid, Dialogue__V1__Join *j) {
    if (room_op_ok(c, rid))
        join_now(c, rid, j);
}

static void do_leave(dlg_conn *c, uint64_t rid, Dialogue__V1__Leave *l) {
    if (!room_op_ok(c, rid))
        return;
    dlg_room *r = room_arg(c, rid, l->room);
    if (r == NULL)
        return;
    if (dlg_room_leave(r, c) != 0) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    dlg_hooks_left(c->srv, c, r->id, "left");
    dlg_reply_left(c, rid, r->id, "left");
}

static void do_sub(dlg_conn *c, uint64_t rid, const char *room, char **events, size_t n,
                   int all, int unsub) {
    dlg_room *r = room_arg(c, rid, room);
    if (r == NULL)
        return;
    dlg_member *m = dlg_room_member(r, c);
    if (m == NULL) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    if (!all && n == 0) {
        dlg_reply_error(c, rid, ST(INVALID_ARGUMENT), "no events named (set all for every event)");
        return;
    }
    /* The system events (presence.h) are member bits, not subscriber
     * slots: named ones are taken out of the list here. */
    unsigned bits = 0;
    size_t kept = 0;
    char **named = n ? dlg_malloc(n * sizeof(*named)) : NULL; /* the frame's own list stays */
    if (n && named == NULL) {
        dlg_reply_error(c, rid, ST(INTERNAL), "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned b = dlg_presence_bit(events[i]);
        if (b == DLG_PRESENCE_BAD) {
            dlg_reply_error(c, rid, ST(NOT_FOUND), "room %s: no system event %.64s (there are "
                            "presence:join and presence:leave)", r->id, events[i]);
            free(named);
            return;
        }
        if (b)
            bits |= b;
        else
            named[kept++] = events[i];
    }
    const char *bad = NULL;
    const dlg_server_opts *o = &c->srv->opts;
    int room_full = 0;
    int rc = 0;
    if (all || kept > 0)
        rc = unsub ? dlg_room_unsubscribe(m, named, kept, all, &bad)
                   : dlg_room_subscribe(m, named, kept, all, o->max_subscriptions,
                                        o->max_room_events, &bad, &room_full);
    /* bad points into the frame's strings, not into named. */
    free(named);
    if (rc == DLG_EFULL) {
        if (!room_full)
            dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                                "room %s: at most %u event names per member "
                                "(limits.max_subscriptions); %zu held, \"%.64s\" is one too many "
                                "(or subscribe to all)", r->id, o->max_subscriptions,
                                dlg_member_subscriptions(m), bad);
        else
            dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                                "room %s: at most %u distinct event names may be subscribed "
                                "(limits.max_room_events); \"%.64s\" would be one more",
                                r->id, o->max_room_events, bad);
        return;
    }
    if (rc == DLG_ENOTFOUND) {
        dlg_reply_error(c, rid, ST(NOT_FOUND), "room %s has no event %.64s", r->id, bad);
        return;
    }
    if (rc == DLG_EINVAL) {
        dlg_reply_error(c, rid, ST(INVALID_ARGUMENT), "event name \"%.64s\" %s", bad,
                            dlg_name_check(bad));
        return;
    }
    if (rc == DLG_ESTATE) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION),
                            "room %s accepts any event: unsubscribe all before naming events",
                            r->id);
        return;
    }
    if (rc != 0) {
        dlg_reply_error(c, rid, ST(INTERNAL), "out of memory");
        return;
    }
    if (unsub)
        m->presence &= all ? 0u : ~bits;
    else
        m->presence |= bits;
    send_joined(c, rid, m, 0); /* the resulting subscription set */
}

static void do_trigger(dlg_conn *c, uint64_t rid, Dialogue__V1__Trigger *t, uint64_t recv_ns) {
    dlg_room *r = room_arg(c, rid, t->room);
    if (r == NULL)
        return;
    /* Membership first: a non-member learns nothing of the room's rules
     * (docs/protocol.md, "Which error wins"). */
    if (dlg_room_member(r, c) == NULL) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
        return;
    }
    const char *why = dlg_name_check(t->event);
    if (why) {
        dlg_reply_error(c, rid, ST(INVALID_ARGUMENT), "event name \"%.64s\" %s", t->event, why);
        return;
    }
    if (!rate_ok(c, rid, DLG_RATE_TRIGGER, r->id, r->rate_per_sec, r->rate_burst, recv_ns))
        return;
    /* Whether the room accepts the event is checked once, in the fan-out. */
    char err[512];
    dlg_publish_result res;
    if (dlg_trigger(c->srv, r, c, t->event, t->data.data, t->data.len, recv_ns, &res,
                           err, sizeof(err)) != 0) {
        dlg_reply_error(c, rid, res.status, "%s", err);
        return;
    }
    /* The cluster log numbers the event: the Ack waits for its answer. */
    if (res.ticket) {
        /* The answer always comes on a later loop turn, so the ticket is
         * still waiting here; were it not, the event was accepted with a
         * seq this node no longer knows. */
        if (dlg_bus_defer_ack(c->srv->bus, c, rid, res.ticket) != 0)
            dlg_reply_ack(c, rid, 0, 0);
        return;
    }
    if (!dlg_history_defer_ack(c->srv, c, rid, r, res.seq, res.recipients))
        dlg_reply_ack(c, rid, res.seq, res.recipients);
}

static void do_list(dlg_conn *c, uint64_t rid, Dialogue__V1__ListRooms *lr) {
    static char *star[] = {"*"};
    dlg_rooms *rs = c->srv->rooms;
    Dialogue__V1__RoomInfo *infos = dlg_calloc(rs->n ? rs->n : 1, sizeof(*infos));
    Dialogue__V1__RoomInfo **ptrs = dlg_calloc(rs->n ? rs->n : 1, sizeof(*ptrs));
    char ***ids = dlg_calloc(rs->n ? rs->n : 1, sizeof(*ids));
    Dialogue__V1__IdentityKind **kinds = dlg_calloc(rs->n ? rs->n : 1, sizeof(*kinds));
    if (!infos || !ptrs || !ids || !kinds) {
        dlg_reply_error(c, rid, ST(INTERNAL), "out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++) {
        dlg_room *r = rs->v[i];
        /* A refused join reveals nothing of the room, here neither: only
         * rooms the client is in or may join (every hook table agreeing)
         * are listed. */
        char why[64];
        if (dlg_room_member(r, c) == NULL &&
            dlg_hooks_before_join(c->srv, c, r->id, why, sizeof(why)) != 0)
            continue;
        Dialogue__V1__RoomInfo *ri = &infos[n];
        dialogue__v1__room_info__init(ri);
        ri->id = r->id;
        ri->name = r->name;
        ri->description = r->description;
        ri->events = r->any_event ? star : r->events;
        ri->n_events = r->any_event ? 1 : r->n_events;
        ri->default_subscriptions = r->default_all ? star : r->default_subs;
        ri->n_default_subscriptions = r->default_all ? 1 : r->n_default_subs;
        ri->max_size = r->max_size;
        ri->dynamic = r->dynamic;
        ptrs[n++] = ri;
        /* Counts and ids only when asked. */
        if (!lr->members)
            continue;
        ri->members = (uint32_t)r->members.n;
        if (r->members.n) {
            ids[i] = dlg_calloc(r->members.n, sizeof(char *));
            kinds[i] = dlg_calloc(r->members.n, sizeof(*kinds[i]));
            if (ids[i] && kinds[i]) {
                for (size_t k = 0; k < r->members.n; k++) {
                    dlg_conn *mc = r->members.v[k]->conn;
                    ids[i][k] = (char *)dlg_conn_name(mc);
                    kinds[i][k] = (Dialogue__V1__IdentityKind)mc->id_kind;
                }
                ri->member_ids = ids[i];
                ri->n_member_ids = r->members.n;
                ri->member_kinds = kinds[i];
                ri->n_member_kinds = r->members.n;
            }
        }
    }
    Dialogue__V1__Rooms rooms = DIALOGUE__V1__ROOMS__INIT;
    rooms.rooms = ptrs;
    rooms.n_rooms = n;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = SF(ROOMS);
    f.rooms = &rooms;
    dlg_reply_frame(c, &f);
out:
    for (size_t i = 0; i < rs->n; i++) {
        if (ids)
            free(ids[i]);
        if (kinds)
            free(kinds[i]);
    }
    free(ids);
    free(kinds);
    free(ptrs);
    free(infos);
}

static void do_schema(dlg_conn *c, uint64_t rid) {
    dlg_schema *sc = c->srv->schema;
    size_t ns = sc ? dlg_schema_set_count(sc) : 0;
    size_t ne = sc ? dlg_schema_event_count(sc) : 0;
    ProtobufCBinaryData *sets = dlg_calloc(ns ? ns : 1, sizeof(*sets));
    Dialogue__V1__EventType *evs = dlg_calloc(ne ? ne : 1, sizeof(*evs));
    Dialogue__V1__EventType **evp = dlg_calloc(ne ? ne : 1, sizeof(*evp));
    if (!sets || !evs || !evp) {
        dlg_reply_error(c, rid, ST(INTERNAL), "out of memory");
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
    dlg_reply_frame(c, &f);
out:
    free(sets);
    free(evs);
    free(evp);
}

static void do_create(dlg_conn *c, uint64_t rid, Dialogue__V1__CreateRoom *cr) {
    dlg_server *s = c->srv;
    if (!room_op_ok(c, rid))
        return;
    if (!dlg_access_may_create(s, c)) {
        dlg_reply_error(c, rid, ST(PERMISSION_DENIED), "may not create rooms");
        return;
    }
    /* Every field of a room kept in memory has a cap, and so has their number. */
    size_t n_dynamic = 0;
    for (size_t i = 0; i < s->rooms->n; i++)
        n_dynamic += s->rooms->v[i]->dynamic != 0;
    if (n_dynamic >= DLG_MAX_DYNAMIC_ROOMS) {
        dlg_reply_error(c, rid, ST(RESOURCE_EXHAUSTED),
                            "room %.64s: %d rooms created at run time is the limit", cr->room,
                            DLG_MAX_DYNAMIC_ROOMS);
        return;
    }
    if ((cr->name && strlen(cr->name) > 255) ||
        (cr->description && strlen(cr->description) > 1024) ||
        cr->n_events > 256 || cr->n_default_subscriptions > 256) {
        dlg_reply_error(c, rid, ST(INVALID_ARGUMENT),
                            "room %.64s: name over 255 bytes, description over 1024 bytes, or "
                            "more than 256 events or default subscriptions", cr->room);
        return;
    }
    /* Rules the creator hands out: only roles it holds itself, or "*". */
    static const char *const what[] = {"join", "trigger"};
    char *const *lists[] = {cr->join, cr->trigger};
    size_t counts[] = {cr->n_join, cr->n_trigger};
    for (int w = 0; w < 2; w++) {
        if (counts[w] > 64) {
            dlg_reply_error(c, rid, ST(INVALID_ARGUMENT),
                                "room %.64s: more than 64 %s roles", cr->room, what[w]);
            return;
        }
        for (size_t i = 0; i < counts[w]; i++) {
            const char *role = lists[w][i];
            if (strcmp(role, "*") == 0)
                continue;
            if (!dlg_jwt_name_valid(role, true)) {
                dlg_reply_error(c, rid, ST(INVALID_ARGUMENT),
                                    "room %.64s: %s role \"%.64s\" is not a valid role name",
                                    cr->room, what[w], role);
                return;
            }
            if (!dlg_conn_has_role(c, role)) {
                dlg_reply_error(c, rid, ST(PERMISSION_DENIED),
                                    "room %.64s: %s role \"%.64s\" is not one of yours (a "
                                    "creator may grant only roles it holds, or \"*\")",
                                    cr->room, what[w], role);
                return;
            }
        }
    }
    /* Typed rooms only name events the daemon has schemas for. */
    for (size_t i = 0; i < cr->n_events; i++) {
        const char *e = cr->events[i];
        if (strcmp(e, "*") != 0 && dlg_name_check(e) == NULL &&
            (s->schema == NULL || dlg_schema_event_find(s->schema, e) == NULL)) {
            dlg_reply_error(c, rid, ST(INVALID_ARGUMENT), "event %s has no schema loaded", e);
            return;
        }
    }
    dlg_room_spec spec = {
        .id = cr->room, .name = cr->name, .description = cr->description,
        .events = (const char *const *)cr->events, .n_events = cr->n_events,
        .default_subs = (const char *const *)cr->default_subscriptions,
        .n_default_subs = cr->n_default_subscriptions, .max_size = cr->max_size,
        .creator = dlg_conn_name(c), .creator_kind = c->id_kind,
        .join = (const char *const *)cr->join, .n_join = cr->n_join,
        .trigger = (const char *const *)cr->trigger, .n_trigger = cr->n_trigger,
    };
    char err[256];
    dlg_room *r = NULL;
    int rc = dlg_rooms_add(s->rooms, &spec, 1, &r, err, sizeof(err));
    if (rc != 0) {
        dlg_reply_error(c, rid, rc == DLG_EEXIST ? ST(ALREADY_EXISTS)
                                    : rc == DLG_EINVAL ? ST(INVALID_ARGUMENT) : ST(INTERNAL),
                            "%s", err);
        return;
    }
    dlg_log_info(&s->log, "room %s created by %s", r->id, r->creator);
    dlg_reply_ack(c, rid, 0, 0);
    dlg_hooks_room_created(s, r->id, r->creator);
}

static void do_delete(dlg_conn *c, uint64_t rid, Dialogue__V1__DeleteRoom *d) {
    if (!room_op_ok(c, rid))
        return;
    dlg_room *r = room_arg(c, rid, d->room);
    if (r == NULL)
        return;
    if (!dlg_access_may_delete(c->srv, r, c)) {
        dlg_reply_error(c, rid, ST(PERMISSION_DENIED),
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
    dlg_reply_ack(c, rid, 0, 0);
    dlg_hooks_room_deleted(c->srv, id);
}

/* Members only: a client refused at Join gets the same answer as any
 * non-member, so History reveals nothing of the room. */
static void do_history(dlg_conn *c, uint64_t rid, Dialogue__V1__History *h) {
    dlg_room *r = room_arg(c, rid, h->room);
    if (r == NULL)
        return;
    if (dlg_room_member(r, c) == NULL) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION), "not a member of room %s", r->id);
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
    dlg_reply_frame(c, &f);
}

/* What every request must pass before it is looked at: its strings (which
 * protobuf-c neither checks for UTF-8 nor keeps the length of, so a NUL
 * would cut a name short: "secret\0junk" read as "secret"), and its
 * request id (0 marks what the server sends on its own; a Pong answers the
 * server and gets no reply; a frame with no message, or one from a newer
 * protocol, is UNIMPLEMENTED whatever its id). 0 = go on; else answered,
 * and 1 = stop reading (before Welcome), -1 = read on. */
static int check_frame(dlg_conn *c, const Dialogue__V1__ClientFrame *f, const uint8_t *body,
                       size_t len) {
    char why[160];
    if (dlg_pb_check_strings(&dialogue__v1__client_frame__descriptor, body, len, why,
                             sizeof(why)) != 0) {
        dlg_reply_error(c, f->request_id, ST(INVALID_ARGUMENT), "%s", why);
    } else if (f->request_id == 0 && f->msg_case != CF(PONG) &&
               f->msg_case != DIALOGUE__V1__CLIENT_FRAME__MSG__NOT_SET) {
        dlg_reply_error(c, 0, ST(INVALID_ARGUMENT),
                            "%s with request_id 0: 0 is reserved for frames the server sends "
                            "on its own; number requests from 1", frame_name(f->msg_case));
    } else {
        return 0;
    }
    if (c->state == DLG_CONN_READY)
        return -1;
    dlg_conn_close_after_flush(c, "refused before Welcome");
    return 1;
}

int dlg_dispatch_frame(dlg_conn *c, const uint8_t *body, size_t len) {
    uint64_t recv_ns = dlg_now_ns();
    dlg_server *s = c->srv;
    s->counters.frames_in++;
    Dialogue__V1__ClientFrame *f = dialogue__v1__client_frame__unpack(NULL, len, body);
    if (f == NULL) {
        dlg_reply_error(c, 0, ST(INVALID_ARGUMENT), "malformed frame: not a ClientFrame");
        dlg_conn_close_after_flush(c, "malformed frame");
        return 1;
    }
    int stop = 0;
    uint64_t rid = f->request_id;
    if (c->state != DLG_CONN_READY && f->msg_case != CF(HELLO)) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION), "expected Hello first, got %s",
                            frame_name(f->msg_case));
        dlg_conn_close_after_flush(c, "frame before Hello");
        stop = 1;
        goto out;
    }
    if (c->state == DLG_CONN_READY && f->msg_case == CF(HELLO)) {
        dlg_reply_error(c, rid, ST(FAILED_PRECONDITION), "Hello was already received");
        dlg_conn_close_after_flush(c, "Hello twice");
        stop = 1;
        goto out;
    }
    int refused = check_frame(c, f, body, len);
    if (refused) {
        stop = refused > 0;
        goto out;
    }
    if (c->state != DLG_CONN_READY) {
        stop = do_hello(c, rid, f->hello);
        goto out;
    }
    switch (f->msg_case) {
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
        dlg_reply_error(c, rid, ST(UNIMPLEMENTED), "frame carries no known message");
        break;
    }
out:
    dialogue__v1__client_frame__free_unpacked(f, NULL);
    return stop;
}

void dlg_dispatch_closing(dlg_conn *c, const char *reason, int was_ready) {
    for (size_t i = 0; i < c->n_members; i++)
        dlg_hooks_left(c->srv, c, c->members[i]->room->id, "disconnected");
    dlg_rooms_conn_gone(c->srv->rooms, c);
    if (was_ready)
        dlg_hooks_disconnected(c->srv, c, reason);
}
