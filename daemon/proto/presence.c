/* presence.c: gathering and sending presence changes (see presence.h). */
#include "presence.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dlg_alloc.h"
#include "dlg_clock.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "room.h"

/* One session that joined or left, waiting for the window to end. */
typedef struct change {
    char *name;
    int kind;
    uint64_t conn_id; /* the session: a join and a leave of it cancel out */
    int joined;
} change;

typedef struct pending {
    char *room;
    change *v;
    size_t n, cap;
} pending;

struct dlg_presence {
    dlg_server *srv;
    uv_timer_t timer;
    pending *rooms;
    size_t n, cap;
    int armed;
    /* The window's number: a connection stamped with it (presence_gen)
     * noted a change in this window, so it may have one to cancel. */
    uint64_t gen;
};

unsigned dlg_presence_bit(const char *event) {
    if (strncmp(event, "presence:", 9) != 0)
        return 0;
    if (strcmp(event + 9, "join") == 0)
        return DLG_PRESENCE_JOIN;
    if (strcmp(event + 9, "leave") == 0)
        return DLG_PRESENCE_LEAVE;
    return DLG_PRESENCE_BAD;
}

static void pending_clear(pending *pd) {
    for (size_t i = 0; i < pd->n; i++)
        free(pd->v[i].name);
    free(pd->v);
    free(pd->room);
}

/* Sends one kind of r's changes to the members that asked for it. */
static void send_kind(dlg_presence *p, dlg_room *r, const pending *pd, int joined) {
    size_t n = 0, listed = 0;
    for (size_t i = 0; i < pd->n; i++)
        n += pd->v[i].joined == joined;
    if (n == 0)
        return;
    char **names = dlg_calloc(n, sizeof(*names));
    Dialogue__V1__IdentityKind *kinds = dlg_calloc(n, sizeof(*kinds));
    uint8_t *data = NULL;
    dlg_buf *frame = NULL;
    if (names == NULL || kinds == NULL)
        goto out;
    for (size_t i = 0; i < pd->n && listed < DLG_PRESENCE_MAX_NAMES; i++)
        if (pd->v[i].joined == joined) {
            names[listed] = pd->v[i].name;
            kinds[listed++] = (Dialogue__V1__IdentityKind)pd->v[i].kind;
        }
    Dialogue__V1__PresenceChange pc = DIALOGUE__V1__PRESENCE_CHANGE__INIT;
    pc.members = names;
    pc.n_members = listed;
    pc.kinds = kinds;
    pc.n_kinds = listed;
    pc.count = (uint32_t)r->members.n;
    pc.more = (uint32_t)(n - listed);
    size_t len = dialogue__v1__presence_change__get_packed_size(&pc);
    if ((data = dlg_malloc(len ? len : 1)) == NULL)
        goto out;
    dialogue__v1__presence_change__pack(&pc, data);
    Dialogue__V1__Event ev = DIALOGUE__V1__EVENT__INIT;
    ev.room = r->id;
    ev.event = joined ? "presence:join" : "presence:leave";
    ev.data.data = data;
    ev.data.len = len;
    ev.from = "system";
    ev.from_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_SERVER;
    ev.ts_ms = dlg_wall_ms();
    ev.epoch = r->epoch;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
    f.event = &ev;
    if (dlg_frame_pack(&f.base, 0, &frame) != 0)
        goto out;
    unsigned bit = joined ? DLG_PRESENCE_JOIN : DLG_PRESENCE_LEAVE;
    for (size_t i = 0; i < r->members.n; i++)
        if (r->members.v[i]->presence & bit)
            dlg_conn_send(r->members.v[i]->conn, frame);
out:
    if (frame == NULL && names != NULL)
        dlg_log_warn(&p->srv->log, "room %s: presence event dropped (out of memory)", r->id);
    dlg_buf_unref(frame);
    free(data);
    free(names);
    free(kinds);
}

static void on_window(uv_timer_t *t) {
    dlg_presence *p = t->data;
    p->armed = 0;
    p->gen++; /* changes noted from here on are the next window's */
    /* Taken first: sending may end connections (a slow consumer), whose
     * leaves start the next window. */
    pending *rooms = p->rooms;
    size_t n = p->n;
    p->rooms = NULL;
    p->n = p->cap = 0;
    for (size_t i = 0; i < n; i++) {
        dlg_room *r = dlg_rooms_find(p->srv->rooms, rooms[i].room);
        if (r != NULL) {
            send_kind(p, r, &rooms[i], 1);
            send_kind(p, r, &rooms[i], 0);
        }
        pending_clear(&rooms[i]);
    }
    free(rooms);
    dlg_conn_reap(p->srv);
}

dlg_presence *dlg_presence_new(dlg_server *s) {
    dlg_presence *p = dlg_calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->srv = s;
    p->gen = 1; /* a connection that never noted a change has 0 */
    uv_timer_init(s->loop, &p->timer);
    p->timer.data = p;
    return p;
}

static pending *room_pending(dlg_presence *p, const char *room, int make) {
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->rooms[i].room, room) == 0)
            return &p->rooms[i];
    if (!make)
        return NULL;
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 4;
        pending *nv = dlg_realloc(p->rooms, nc * sizeof(*nv));
        if (nv == NULL)
            return NULL;
        p->rooms = nv;
        p->cap = nc;
    }
    pending *pd = &p->rooms[p->n];
    memset(pd, 0, sizeof(*pd));
    if ((pd->room = dlg_strdup(room)) == NULL)
        return NULL;
    p->n++;
    return pd;
}

void dlg_presence_note(dlg_presence *p, const char *room, dlg_conn *c, int joined) {
    if (p == NULL)
        return;
    pending *pd = room_pending(p, room, 1);
    if (pd == NULL)
        goto oom;
    /* A session that came and went within the window changes nothing.
     * Only one that noted a change in this window can have one to cancel:
     * N first joins in one window (a reconnect storm) cost N, not N^2/2
     * comparisons. */
    if (c->presence_gen == p->gen)
        for (size_t i = 0; i < pd->n; i++)
            if (pd->v[i].conn_id == c->id && pd->v[i].joined != joined) {
                free(pd->v[i].name);
                pd->v[i] = pd->v[--pd->n];
                return;
            }
    if (pd->n == pd->cap) {
        size_t nc = pd->cap ? 2 * pd->cap : 8;
        change *nv = dlg_realloc(pd->v, nc * sizeof(*nv));
        if (nv == NULL)
            goto oom;
        pd->v = nv;
        pd->cap = nc;
    }
    change *ch = &pd->v[pd->n];
    if ((ch->name = dlg_strdup(dlg_conn_name(c))) == NULL)
        goto oom;
    ch->kind = c->id_kind;
    ch->conn_id = c->id;
    ch->joined = joined;
    pd->n++;
    c->presence_gen = p->gen;
    if (!p->armed) {
        p->armed = 1;
        uv_timer_start(&p->timer, on_window, DLG_PRESENCE_WINDOW_MS, 0);
    }
    return;
oom:
    dlg_log_warn(&p->srv->log, "room %s: a presence change was dropped (out of memory)", room);
}

void dlg_presence_room_gone(dlg_presence *p, const char *room) {
    pending *pd = p ? room_pending(p, room, 0) : NULL;
    if (pd == NULL)
        return;
    pending_clear(pd);
    *pd = p->rooms[--p->n];
}

void dlg_presence_close(dlg_presence *p) {
    if (p == NULL)
        return;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, NULL);
}

void dlg_presence_free(dlg_presence *p) {
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        pending_clear(&p->rooms[i]);
    free(p->rooms);
    free(p);
}
