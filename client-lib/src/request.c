/* request.c: the request API. Builds and packs each request's ClientFrame on
 * the calling thread, and turns server replies into the typed views handed
 * to completion callbacks (updating the restore record on the way). */
#include <stdio.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "client_int.h"
#include "dlg_err.h"

static const char *const kind_names[] = {
    [DLG__REQ_JOIN] = "join",
    [DLG__REQ_LEAVE] = "leave",
    [DLG__REQ_SUBSCRIBE] = "subscribe",
    [DLG__REQ_UNSUBSCRIBE] = "unsubscribe",
    [DLG__REQ_TRIGGER] = "trigger",
    [DLG__REQ_LIST_ROOMS] = "list_rooms",
    [DLG__REQ_GET_SCHEMA] = "get_schema",
    [DLG__REQ_PING] = "ping",
    [DLG__REQ_CREATE_ROOM] = "create_room",
    [DLG__REQ_DELETE_ROOM] = "delete_room",
    [DLG__REQ_HISTORY] = "history",
};

static const char *server_case_name(int c) {
    switch (c) {
    case DIALOGUE__V1__SERVER_FRAME__MSG_WELCOME: return "Welcome";
    case DIALOGUE__V1__SERVER_FRAME__MSG_JOINED: return "Joined";
    case DIALOGUE__V1__SERVER_FRAME__MSG_LEFT: return "Left";
    case DIALOGUE__V1__SERVER_FRAME__MSG_EVENT: return "Event";
    case DIALOGUE__V1__SERVER_FRAME__MSG_ACK: return "Ack";
    case DIALOGUE__V1__SERVER_FRAME__MSG_ERROR: return "Error";
    case DIALOGUE__V1__SERVER_FRAME__MSG_ROOMS: return "Rooms";
    case DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH: return "HistoryBatch";
    case DIALOGUE__V1__SERVER_FRAME__MSG_PONG: return "Pong";
    case DIALOGUE__V1__SERVER_FRAME__MSG_SCHEMA: return "Schema";
    case DIALOGUE__V1__SERVER_FRAME__MSG_PING: return "Ping";
    case DIALOGUE__V1__SERVER_FRAME__MSG_GAP: return "Gap";
    default: return "an empty frame";
    }
}

void dlg__req_describe(const dlg__req *r, char *buf, size_t len) {
    const char *k = r->kind > 0 && r->kind <= DLG__REQ_HISTORY
                        ? kind_names[r->kind] : "request";
    if (r->room != NULL)
        snprintf(buf, len, "%s %s (request %llu)", k, r->room,
                 (unsigned long long)r->id);
    else
        snprintf(buf, len, "%s (request %llu)", k, (unsigned long long)r->id);
}

int dlg__req_new(dlg_client *c, int kind, Dialogue__V1__ClientFrame *f,
                 const char *room, dlg__req **out) {
    dlg__req *r = dlg__calloc(1, sizeof(*r));
    if (r == NULL)
        return DLG_ENOMEM;
    r->kind = kind;
    r->timeout_ms = c->o.v.request_timeout_ms;
    r->t0_ns = uv_hrtime();
    if (room != NULL && (r->room = dlg__strdup(room)) == NULL)
        goto fail;
    r->id = atomic_fetch_add_explicit(&c->next_id, 1, memory_order_relaxed);
    f->request_id = r->id;
    int rc = dlg_frame_pack(&f->base, 0, &r->frame);
    if (rc != 0) {
        dlg__free(r->room);
        dlg__free(r);
        return rc;
    }
    *out = r;
    return 0;
fail:
    dlg__free(r);
    return DLG_ENOMEM;
}

void dlg__req_free(dlg__req *r) {
    if (r == NULL)
        return;
    dlg_buf_unref(r->frame);
    dlg__free(r->room);
    dlg__free(r);
}

/* ---- completion ---------------------------------------------------------- */

static void call_user(dlg_client *c, dlg__req *r, int status, const char *msg,
                      const void *reply) {
    if (c->freeing || r->cb == NULL)
        return;
    c->cb_depth++;
    r->cb(c, r->ud, status, msg ? msg : "", reply);
    c->cb_depth--;
}

void dlg__req_complete_local(dlg_client *c, dlg__req *r, int status,
                             const char *message) {
    if (r->owner == DLG__OWNER_USER)
        call_user(c, r, status, message, NULL);
}

static void joined_view(const Dialogue__V1__Joined *j, dlg_joined *v) {
    v->room = j->room;
    v->subscriptions = (const char *const *)j->subscriptions;
    v->n_subscriptions = j->n_subscriptions;
    v->epoch = j->epoch;
    v->seq = j->seq;
    v->members = j->members;
}

static void complete_rooms(dlg_client *c, dlg__req *r,
                           const Dialogue__V1__Rooms *rooms) {
    dlg_room_list list = {NULL, 0};
    dlg_room_info *info = NULL;
    if (rooms->n_rooms > 0) {
        info = dlg__calloc(rooms->n_rooms, sizeof(*info));
        if (info == NULL) {
            call_user(c, r, DLG_ENOMEM, "out of memory for the room list", NULL);
            return;
        }
    }
    for (size_t i = 0; i < rooms->n_rooms; i++) {
        const Dialogue__V1__RoomInfo *ri = rooms->rooms[i];
        info[i].id = ri->id;
        info[i].name = ri->name;
        info[i].description = ri->description;
        info[i].events = (const char *const *)ri->events;
        info[i].n_events = ri->n_events;
        info[i].members = ri->members;
        info[i].max_size = ri->max_size;
        info[i].dynamic = ri->dynamic;
        info[i].member_ids = (const char *const *)ri->member_ids;
        info[i].n_member_ids = ri->n_member_ids;
    }
    list.rooms = info;
    list.n_rooms = rooms->n_rooms;
    call_user(c, r, 0, "", &list);
    dlg__free(info);
}

static void complete_schema(dlg_client *c, dlg__req *r,
                            const Dialogue__V1__Schema *s) {
    dlg_schema_info v = {NULL, 0, NULL, 0};
    dlg_bytes *sets = NULL;
    dlg_event_type *evs = NULL;
    if (s->n_descriptor_sets > 0 &&
        (sets = dlg__calloc(s->n_descriptor_sets, sizeof(*sets))) == NULL)
        goto oom;
    if (s->n_events > 0 && (evs = dlg__calloc(s->n_events, sizeof(*evs))) == NULL)
        goto oom;
    for (size_t i = 0; i < s->n_descriptor_sets; i++) {
        sets[i].data = s->descriptor_sets[i].data;
        sets[i].len = s->descriptor_sets[i].len;
    }
    for (size_t i = 0; i < s->n_events; i++) {
        evs[i].name = s->events[i]->name;
        evs[i].message_type = s->events[i]->message_type;
    }
    v.sets = sets;
    v.n_sets = s->n_descriptor_sets;
    v.events = evs;
    v.n_events = s->n_events;
    call_user(c, r, 0, "", &v);
    dlg__free(sets);
    dlg__free(evs);
    return;
oom:
    dlg__free(sets);
    call_user(c, r, DLG_ENOMEM, "out of memory for the schema reply", NULL);
}

static void complete_history(dlg_client *c, dlg__req *r,
                             const Dialogue__V1__HistoryBatch *b) {
    dlg_history_reply v = {b->room, NULL, b->n_events, b->complete, b->epoch};
    dlg_event *evs = NULL;
    /* n_events comes from a frame already capped at max_frame, so this
     * allocation is bounded by what the server could send. */
    if (b->n_events > 0 && (evs = dlg__calloc(b->n_events, sizeof(*evs))) == NULL) {
        call_user(c, r, DLG_ENOMEM, "out of memory for the history reply", NULL);
        return;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const Dialogue__V1__Event *e = b->events[i];
        evs[i] = (dlg_event){
            .room = e->room, .event = e->event, .data = e->data.data, .len = e->data.len,
            .from = e->from, .ts_ms = e->ts_ms, .seq = e->seq, .epoch = e->epoch,
            .from_kind = (int)e->from_kind,
        };
    }
    v.events = evs;
    call_user(c, r, 0, "", &v);
    dlg__free(evs);
}

/* Which server messages answer which request (docs/protocol.md); Error
 * answers any of them. */
static int reply_fits(int kind, int mc) {
    switch (kind) {
    case DLG__REQ_JOIN:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_JOINED;
    case DLG__REQ_LEAVE:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_LEFT ||
               mc == DIALOGUE__V1__SERVER_FRAME__MSG_ACK;
    case DLG__REQ_SUBSCRIBE:
    case DLG__REQ_UNSUBSCRIBE:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_JOINED;
    case DLG__REQ_TRIGGER:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_ACK;
    case DLG__REQ_LIST_ROOMS:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_ROOMS;
    case DLG__REQ_GET_SCHEMA:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_SCHEMA;
    case DLG__REQ_PING:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_PONG;
    case DLG__REQ_CREATE_ROOM:
    case DLG__REQ_DELETE_ROOM:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_ACK;
    case DLG__REQ_HISTORY:
        return mc == DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH;
    }
    return 0;
}

int dlg__req_complete_reply(dlg_client *c, dlg__req *r,
                            const Dialogue__V1__ServerFrame *f) {
    char what[160], msg[512];
    int mc = f->msg_case;
    if (mc != DIALOGUE__V1__SERVER_FRAME__MSG_ERROR && !reply_fits(r->kind, mc)) {
        dlg__req_describe(r, what, sizeof(what));
        snprintf(msg, sizeof(msg), "server answered %s with %s", what,
                 server_case_name(mc));
        if (r->owner == DLG__OWNER_USER)
            call_user(c, r, DLG_EPROTO, msg, NULL);
        return DLG_EPROTO;
    }
    if (r->owner == DLG__OWNER_RESTORE) {
        dlg__session_restore_reply(c, r, f);
        return 0;
    }
    if (mc == DIALOGUE__V1__SERVER_FRAME__MSG_ERROR) {
        const Dialogue__V1__Error *e = f->error;
        /* An Error claiming OK is nonsense; report it as UNKNOWN rather than
         * as a success without a reply. */
        int st = e->code > 0 ? (int)e->code : 2;
        call_user(c, r, st, e->message, NULL);
        return 0;
    }
    switch (r->kind) {
    case DLG__REQ_JOIN:
    case DLG__REQ_SUBSCRIBE:
    case DLG__REQ_UNSUBSCRIBE: {
        const Dialogue__V1__Joined *j = f->joined;
        dlg_joined v;
        dlg__room *rm = NULL;
        /* The record follows what the server confirmed, so a reconnect
         * restores exactly this; a failed record update only weakens the
         * restore, it does not fail the request. */
        if (dlg__room_set(c, r->room, j->subscriptions, j->n_subscriptions, &rm) != 0)
            dlg_log_warn(&c->log, "out of memory recording room %s", r->room);
        else
            dlg__pos_joined(c, rm, j, r->id, r->kind == DLG__REQ_JOIN, 0);
        joined_view(j, &v);
        call_user(c, r, 0, "", &v);
        break;
    }
    case DLG__REQ_LEAVE:
        dlg__room_drop(c, r->room);
        call_user(c, r, 0, "", NULL);
        break;
    case DLG__REQ_TRIGGER: {
        dlg_ack a = {f->ack->seq, f->ack->recipients};
        call_user(c, r, 0, "", &a);
        break;
    }
    case DLG__REQ_LIST_ROOMS:
        complete_rooms(c, r, f->rooms);
        break;
    case DLG__REQ_GET_SCHEMA:
        complete_schema(c, r, f->schema);
        break;
    case DLG__REQ_PING: {
        uint64_t rtt = uv_hrtime() - r->t0_ns;
        call_user(c, r, 0, "", &rtt);
        break;
    }
    case DLG__REQ_HISTORY:
        complete_history(c, r, f->history_batch);
        break;
    default:
        call_user(c, r, 0, "", NULL);
        break;
    }
    return 0;
}

const char *dlg__server_case_name(int mc) {
    return server_case_name(mc);
}

/* ---- the public request functions --------------------------------------- */

static int build_submit(dlg_client *c, int kind, Dialogue__V1__ClientFrame *f,
                        const char *room, dlg_reply_cb cb, void *ud) {
    dlg__req *r = NULL;
    int rc = dlg__req_new(c, kind, f, room, &r);
    if (rc != 0)
        return rc;
    r->cb = cb;
    r->ud = ud;
    return dlg__submit(c, r);
}

static int bad_name(const char *s) {
    return s == NULL || s[0] == 0;
}

int dlg__build_join(dlg_client *c, const char *room, dlg__req **out) {
    Dialogue__V1__Join m = DIALOGUE__V1__JOIN__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)room;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN;
    f.join = &m;
    return dlg__req_new(c, DLG__REQ_JOIN, &f, room, out);
}

int dlg_client_join(dlg_client *c, const char *room, dlg_reply_cb cb, void *ud) {
    dlg__req *r = NULL;
    if (c == NULL || bad_name(room))
        return DLG_EINVAL;
    int rc = dlg__build_join(c, room, &r);
    if (rc != 0)
        return rc;
    r->cb = cb;
    r->ud = ud;
    return dlg__submit(c, r);
}

int dlg_client_leave(dlg_client *c, const char *room, dlg_reply_cb cb, void *ud) {
    if (c == NULL || bad_name(room))
        return DLG_EINVAL;
    Dialogue__V1__Leave m = DIALOGUE__V1__LEAVE__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)room;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_LEAVE;
    f.leave = &m;
    return build_submit(c, DLG__REQ_LEAVE, &f, room, cb, ud);
}

int dlg__build_subscription(dlg_client *c, int unsub, const char *room,
                            const char *const *events, size_t n, int all,
                            dlg__req **out) {
    Dialogue__V1__Subscribe m = DIALOGUE__V1__SUBSCRIBE__INIT;
    Dialogue__V1__Unsubscribe u = DIALOGUE__V1__UNSUBSCRIBE__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    if (!all && n == 0)
        return DLG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (bad_name(events[i]))
            return DLG_EINVAL;
    if (unsub) {
        u.room = (char *)room;
        u.events = (char **)events;
        u.n_events = n;
        u.all = all != 0;
        f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_UNSUBSCRIBE;
        f.unsubscribe = &u;
    } else {
        m.room = (char *)room;
        m.events = (char **)events;
        m.n_events = n;
        m.all = all != 0;
        f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_SUBSCRIBE;
        f.subscribe = &m;
    }
    return dlg__req_new(c, unsub ? DLG__REQ_UNSUBSCRIBE : DLG__REQ_SUBSCRIBE,
                        &f, room, out);
}

static int subscription(dlg_client *c, int unsub, const char *room,
                        const char *const *events, size_t n, int all,
                        dlg_reply_cb cb, void *ud) {
    dlg__req *r = NULL;
    if (c == NULL || bad_name(room) || (n > 0 && events == NULL))
        return DLG_EINVAL;
    int rc = dlg__build_subscription(c, unsub, room, events, n, all, &r);
    if (rc != 0)
        return rc;
    r->cb = cb;
    r->ud = ud;
    return dlg__submit(c, r);
}

int dlg_client_subscribe(dlg_client *c, const char *room,
                         const char *const *events, size_t n, int all,
                         dlg_reply_cb cb, void *ud) {
    return subscription(c, 0, room, events, n, all, cb, ud);
}

int dlg_client_unsubscribe(dlg_client *c, const char *room,
                           const char *const *events, size_t n, int all,
                           dlg_reply_cb cb, void *ud) {
    return subscription(c, 1, room, events, n, all, cb, ud);
}

int dlg__build_trigger(dlg_client *c, const char *room, const char *event,
                       const void *data, size_t len, dlg__req **out) {
    if (bad_name(room) || bad_name(event) || (len > 0 && data == NULL))
        return DLG_EINVAL;
    Dialogue__V1__Trigger m = DIALOGUE__V1__TRIGGER__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)room;
    m.event = (char *)event;
    m.data.data = (uint8_t *)data;
    m.data.len = len;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_TRIGGER;
    f.trigger = &m;
    return dlg__req_new(c, DLG__REQ_TRIGGER, &f, room, out);
}

int dlg_client_trigger(dlg_client *c, const char *room, const char *event,
                       const void *data, size_t len, dlg_reply_cb cb, void *ud) {
    dlg__req *r = NULL;
    if (c == NULL)
        return DLG_EINVAL;
    int rc = dlg__build_trigger(c, room, event, data, len, &r);
    if (rc != 0)
        return rc;
    r->cb = cb;
    r->ud = ud;
    return dlg__submit(c, r);
}

int dlg_client_trigger_msg(dlg_client *c, const char *room, const char *event,
                           const struct ProtobufCMessage *msg, dlg_reply_cb cb,
                           void *ud) {
    if (c == NULL || msg == NULL)
        return DLG_EINVAL;
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > UINT32_MAX)
        return DLG_ETOOBIG;
    uint8_t *buf = dlg__malloc(n);
    if (buf == NULL)
        return DLG_ENOMEM;
    if (protobuf_c_message_pack(msg, buf) != n) {
        dlg__free(buf);
        return DLG_EINTERNAL;
    }
    int rc = dlg_client_trigger(c, room, event, buf, n, cb, ud);
    dlg__free(buf);
    return rc;
}

int dlg_client_list_rooms(dlg_client *c, int members, dlg_reply_cb cb, void *ud) {
    if (c == NULL)
        return DLG_EINVAL;
    Dialogue__V1__ListRooms m = DIALOGUE__V1__LIST_ROOMS__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.members = members != 0;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_LIST_ROOMS;
    f.list_rooms = &m;
    return build_submit(c, DLG__REQ_LIST_ROOMS, &f, NULL, cb, ud);
}

int dlg_client_get_schema(dlg_client *c, dlg_reply_cb cb, void *ud) {
    if (c == NULL)
        return DLG_EINVAL;
    Dialogue__V1__GetSchema m = DIALOGUE__V1__GET_SCHEMA__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_GET_SCHEMA;
    f.get_schema = &m;
    return build_submit(c, DLG__REQ_GET_SCHEMA, &f, NULL, cb, ud);
}

int dlg__build_ping(dlg_client *c, dlg__req **out) {
    Dialogue__V1__Ping m = DIALOGUE__V1__PING__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.nonce = uv_hrtime();
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_PING;
    f.ping = &m;
    return dlg__req_new(c, DLG__REQ_PING, &f, NULL, out);
}

int dlg_client_ping(dlg_client *c, dlg_reply_cb cb, void *ud) {
    dlg__req *r = NULL;
    if (c == NULL)
        return DLG_EINVAL;
    int rc = dlg__build_ping(c, &r);
    if (rc != 0)
        return rc;
    r->cb = cb;
    r->ud = ud;
    return dlg__submit(c, r);
}

int dlg_client_create_room(dlg_client *c, const dlg_room_spec *spec,
                           dlg_reply_cb cb, void *ud) {
    if (c == NULL || spec == NULL || bad_name(spec->room) ||
        (spec->n_events > 0 && spec->events == NULL) ||
        (spec->n_default_subscriptions > 0 && spec->default_subscriptions == NULL))
        return DLG_EINVAL;
    Dialogue__V1__CreateRoom m = DIALOGUE__V1__CREATE_ROOM__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)spec->room;
    if (spec->name != NULL)
        m.name = (char *)spec->name;
    if (spec->description != NULL)
        m.description = (char *)spec->description;
    m.events = (char **)spec->events;
    m.n_events = spec->n_events;
    m.default_subscriptions = (char **)spec->default_subscriptions;
    m.n_default_subscriptions = spec->n_default_subscriptions;
    m.max_size = spec->max_size;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_CREATE_ROOM;
    f.create_room = &m;
    return build_submit(c, DLG__REQ_CREATE_ROOM, &f, spec->room, cb, ud);
}

int dlg_client_delete_room(dlg_client *c, const char *room, dlg_reply_cb cb,
                           void *ud) {
    if (c == NULL || bad_name(room))
        return DLG_EINVAL;
    Dialogue__V1__DeleteRoom m = DIALOGUE__V1__DELETE_ROOM__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)room;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_DELETE_ROOM;
    f.delete_room = &m;
    return build_submit(c, DLG__REQ_DELETE_ROOM, &f, room, cb, ud);
}

int dlg__build_history(dlg_client *c, const char *room, const char *event, uint32_t start,
                       uint32_t limit, int by_seq, uint64_t since_seq, dlg__req **out) {
    if (bad_name(room))
        return DLG_EINVAL;
    Dialogue__V1__History m = DIALOGUE__V1__HISTORY__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = (char *)room;
    if (event != NULL)
        m.event = (char *)event;
    m.start = start;
    m.limit = limit;
    m.by_seq = by_seq != 0;
    m.since_seq = since_seq;
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_HISTORY;
    f.history = &m;
    return dlg__req_new(c, DLG__REQ_HISTORY, &f, room, out);
}

int dlg_client_history(dlg_client *c, const char *room, const char *event, uint32_t start,
                       uint32_t limit, int by_seq, uint64_t since_seq, dlg_reply_cb cb,
                       void *ud) {
    dlg__req *r = NULL;
    if (c == NULL)
        return DLG_EINVAL;
    int rc = dlg__build_history(c, room, event, start, limit, by_seq, since_seq, &r);
    if (rc != 0)
        return rc;
    r->cb = cb;
    r->ud = ud;
    return dlg__submit(c, r);
}
