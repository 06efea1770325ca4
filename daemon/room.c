/* room.c: rooms, membership and the per-event subscriber index. */
#include "room.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "bus.h"
#include "conn.h"
#include "dlg_err.h"
#include "dlg_sorted.h"
#include "history.h"

static int plist_add(dlg_plist *l, dlg_member *m) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        dlg_member **nv = realloc(l->v, nc * sizeof(*nv));
        if (nv == NULL)
            return DLG_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = m;
    return 0;
}

/* Order is not kept: recipients are independent of each other. */
static int plist_del(dlg_plist *l, const dlg_member *m) {
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] == m) {
            l->v[i] = l->v[--l->n];
            return 1;
        }
    }
    return 0;
}

static int plist_has(const dlg_plist *l, const dlg_member *m) {
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == m)
            return 1;
    return 0;
}

const char *dlg_name_check(const char *name) {
    size_t n = strlen(name);
    if (n == 0)
        return "is empty";
    if (n > 255)
        return "is longer than 255 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == ':' ||
              ch == '-'))
            return "has a character outside [A-Za-z0-9_.:-]";
    }
    return NULL;
}

dlg_rooms *dlg_rooms_new(void) {
    return calloc(1, sizeof(dlg_rooms));
}

void dlg_strv_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void room_free(dlg_room *r) {
    free(r->id);
    free(r->name);
    free(r->description);
    dlg_strv_free(r->events, r->n_events);
    dlg_strv_free(r->default_subs, r->n_default_subs);
    dlg_strv_free(r->join_roles, r->n_join_roles);
    dlg_strv_free(r->trigger_roles, r->n_trigger_roles);
    for (size_t i = 0; i < r->n_trigger_events; i++) {
        free(r->trigger_events[i].event);
        dlg_strv_free(r->trigger_events[i].roles, r->trigger_events[i].n_roles);
    }
    free(r->trigger_events);
    free(r->creator);
    for (size_t i = 0; i < r->n_slots; i++) {
        free(r->slots[i]->name);
        free(r->slots[i]->subs.v);
        free(r->slots[i]);
    }
    free(r->slots);
    for (size_t i = 0; i < r->members.n; i++)
        free(r->members.v[i]);
    free(r->members.v);
    free(r->all_subs.v);
    free(r);
}

void dlg_rooms_free(dlg_rooms *rs) {
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++)
        room_free(rs->v[i]);
    free(rs->v);
    free(rs);
}

static const char *room_key(const void *elem) {
    return (*(dlg_room *const *)elem)->id;
}

/* Index of id in the sorted array, or where it would go (found = 0). */
static size_t rooms_pos(const dlg_rooms *rs, const char *id, int *found) {
    return dlg_sorted_pos(rs->v, rs->n, sizeof(*rs->v), room_key, id, found);
}

dlg_room *dlg_rooms_find(const dlg_rooms *rs, const char *id) {
    int found;
    size_t i = rooms_pos(rs, id, &found);
    return found ? rs->v[i] : NULL;
}

static dlg_evslot *slot_add(dlg_room *r, const char *name) {
    if (r->n_slots == r->cap_slots) {
        size_t nc = r->cap_slots ? r->cap_slots * 2 : 4;
        dlg_evslot **ns = realloc(r->slots, nc * sizeof(*ns));
        if (ns == NULL)
            return NULL;
        r->slots = ns;
        r->cap_slots = nc;
    }
    dlg_evslot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if ((s->name = strdup(name)) == NULL) {
        free(s);
        return NULL;
    }
    r->slots[r->n_slots++] = s;
    return s;
}

dlg_evslot *dlg_room_slot(const dlg_room *r, const char *event) {
    for (size_t i = 0; i < r->n_slots; i++)
        if (strcmp(r->slots[i]->name, event) == 0)
            return r->slots[i];
    return NULL;
}

int dlg_rooms_add(dlg_rooms *rs, const dlg_room_spec *spec, int dynamic, dlg_room **out,
                  char *err, size_t errlen) {
    const char *why;
    if ((why = dlg_name_check(spec->id)) != NULL) {
        snprintf(err, errlen, "room id \"%.64s\" %s", spec->id, why);
        return DLG_EINVAL;
    }
    int any = 0;
    for (size_t i = 0; i < spec->n_events; i++) {
        if (strcmp(spec->events[i], "*") == 0) {
            any = 1;
            continue;
        }
        if ((why = dlg_name_check(spec->events[i])) != NULL) {
            snprintf(err, errlen, "room %s: event name \"%.64s\" %s", spec->id,
                     spec->events[i], why);
            return DLG_EINVAL;
        }
    }
    int def_all = 0;
    for (size_t i = 0; i < spec->n_default_subs; i++) {
        const char *d = spec->default_subs[i];
        if (strcmp(d, "*") == 0) {
            def_all = 1;
            continue;
        }
        int ok = any;
        for (size_t j = 0; j < spec->n_events && !ok; j++)
            ok = strcmp(spec->events[j], d) == 0;
        if (!ok) {
            snprintf(err, errlen, "room %s: default subscription \"%.64s\" is not one of its events",
                     spec->id, d);
            return DLG_EINVAL;
        }
    }
    int found;
    size_t pos = rooms_pos(rs, spec->id, &found);
    if (found) {
        snprintf(err, errlen, "room %s already exists", spec->id);
        return DLG_EEXIST;
    }
    dlg_room *r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto fail;
    r->any_event = any;
    r->default_all = def_all;
    r->max_size = spec->max_size;
    r->dynamic = dynamic;
    r->creator_kind = spec->creator_kind;
    r->epoch = dlg_history_random_epoch(); /* memory history: new each time */
    if ((r->id = strdup(spec->id)) == NULL ||
        (r->name = strdup(spec->name ? spec->name : spec->id)) == NULL ||
        (r->description = strdup(spec->description ? spec->description : "")) == NULL ||
        (spec->creator && (r->creator = strdup(spec->creator)) == NULL))
        goto fail_room;
    /* Keep concrete names only; "*" is any_event / default_all. */
    r->events = calloc(spec->n_events ? spec->n_events : 1, sizeof(char *));
    r->default_subs = calloc(spec->n_default_subs ? spec->n_default_subs : 1, sizeof(char *));
    if (r->events == NULL || r->default_subs == NULL)
        goto fail_room;
    for (size_t i = 0; i < spec->n_events; i++) {
        if (strcmp(spec->events[i], "*") == 0)
            continue;
        if ((r->events[r->n_events] = strdup(spec->events[i])) == NULL)
            goto fail_room;
        r->n_events++;
        if (slot_add(r, spec->events[i]) == NULL)
            goto fail_room;
    }
    for (size_t i = 0; i < spec->n_default_subs; i++) {
        if (strcmp(spec->default_subs[i], "*") == 0)
            continue;
        if ((r->default_subs[r->n_default_subs] = strdup(spec->default_subs[i])) == NULL)
            goto fail_room;
        r->n_default_subs++;
    }
    if (rs->n == rs->cap) {
        size_t nc = rs->cap ? rs->cap * 2 : 8;
        dlg_room **nv = realloc(rs->v, nc * sizeof(*nv));
        if (nv == NULL)
            goto fail_room;
        rs->v = nv;
        rs->cap = nc;
    }
    memmove(rs->v + pos + 1, rs->v + pos, (rs->n - pos) * sizeof(*rs->v));
    rs->v[pos] = r;
    rs->n++;
    if (out)
        *out = r;
    return 0;

fail_room:
    room_free(r);
fail:
    snprintf(err, errlen, "out of memory creating room %s", spec->id);
    return DLG_ENOMEM;
}

int dlg_room_allows_event(const dlg_room *r, const char *event) {
    if (r->any_event)
        return 1;
    for (size_t i = 0; i < r->n_events; i++)
        if (strcmp(r->events[i], event) == 0)
            return 1;
    return 0;
}

dlg_member *dlg_room_member(const dlg_room *r, const dlg_conn *c) {
    /* Scan the connection's (short) membership list, not the room's. */
    for (size_t i = 0; i < c->n_members; i++)
        if (c->members[i]->room == r)
            return c->members[i];
    return NULL;
}

static void unsubscribe_everything(dlg_member *m) {
    dlg_room *r = m->room;
    if (m->all)
        plist_del(&r->all_subs, m);
    m->all = 0;
    for (size_t i = 0; i < r->n_slots; i++)
        plist_del(&r->slots[i]->subs, m);
}

int dlg_room_join(dlg_room *r, dlg_conn *c, dlg_member **out) {
    if (dlg_room_member(r, c))
        return DLG_EEXIST;
    if (r->max_size && r->members.n >= r->max_size)
        return DLG_EFULL;
    if (c->n_members == c->cap_members) {
        size_t nc = c->cap_members ? c->cap_members * 2 : 4;
        dlg_member **nv = realloc(c->members, nc * sizeof(*nv));
        if (nv == NULL)
            return DLG_ENOMEM;
        c->members = nv;
        c->cap_members = nc;
    }
    dlg_member *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return DLG_ENOMEM;
    m->conn = c;
    m->room = r;
    if (plist_add(&r->members, m) != 0) {
        free(m);
        return DLG_ENOMEM;
    }
    c->members[c->n_members++] = m;
    const char *bad = NULL;
    int rc = dlg_room_subscribe(m, r->default_subs, r->n_default_subs, r->default_all, &bad);
    if (rc != 0) {
        dlg_room_leave(r, c);
        return rc;
    }
    if (r->members.n == 1) /* first local member: events of other nodes */
        dlg_bus_room_changed(c->srv->bus, r);
    if (out)
        *out = m;
    return 0;
}

int dlg_room_leave(dlg_room *r, dlg_conn *c) {
    dlg_member *m = dlg_room_member(r, c);
    if (m == NULL)
        return DLG_ENOTFOUND;
    unsubscribe_everything(m);
    plist_del(&r->members, m);
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i] == m) {
            c->members[i] = c->members[--c->n_members];
            break;
        }
    }
    free(m);
    if (r->members.n == 0) /* last local member gone: drop the interest */
        dlg_bus_room_changed(c->srv->bus, r);
    return 0;
}

int dlg_room_subscribe(dlg_member *m, char *const *events, size_t n, int all,
                       const char **bad) {
    dlg_room *r = m->room;
    if (all) {
        if (m->all)
            return 0;
        /* An all-subscriber lives only in all_subs, so fan-out never sends
         * it the same event twice. */
        unsubscribe_everything(m);
        if (plist_add(&r->all_subs, m) != 0)
            return DLG_ENOMEM;
        m->all = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!r->any_event && !dlg_room_allows_event(r, events[i])) {
            *bad = events[i];
            return DLG_ENOTFOUND;
        }
        if (r->any_event && dlg_name_check(events[i]) != NULL) {
            *bad = events[i];
            return DLG_EINVAL;
        }
    }
    if (m->all)
        return 0; /* already receives everything */
    for (size_t i = 0; i < n; i++) {
        dlg_evslot *s = dlg_room_slot(r, events[i]);
        if (s == NULL && (s = slot_add(r, events[i])) == NULL)
            return DLG_ENOMEM;
        if (!plist_has(&s->subs, m) && plist_add(&s->subs, m) != 0)
            return DLG_ENOMEM;
    }
    return 0;
}

int dlg_room_unsubscribe(dlg_member *m, char *const *events, size_t n, int all,
                         const char **bad) {
    dlg_room *r = m->room;
    if (all) {
        unsubscribe_everything(m);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!r->any_event && !dlg_room_allows_event(r, events[i])) {
            *bad = events[i];
            return DLG_ENOTFOUND;
        }
    }
    if (m->all) {
        if (r->any_event) {
            *bad = n ? events[0] : "";
            return DLG_ESTATE;
        }
        /* "All but these": expand to the room's fixed list minus events. */
        unsubscribe_everything(m);
        for (size_t j = 0; j < r->n_events; j++) {
            int drop = 0;
            for (size_t i = 0; i < n && !drop; i++)
                drop = strcmp(r->events[j], events[i]) == 0;
            if (drop)
                continue;
            dlg_evslot *s = dlg_room_slot(r, r->events[j]);
            if (s && plist_add(&s->subs, m) != 0)
                return DLG_ENOMEM;
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        dlg_evslot *s = dlg_room_slot(r, events[i]);
        if (s)
            plist_del(&s->subs, m);
    }
    return 0;
}

int dlg_room_subscriptions(const dlg_member *m, char ***names, size_t *n) {
    const dlg_room *r = m->room;
    char **v = calloc(r->n_slots + 1, sizeof(*v));
    if (v == NULL)
        return DLG_ENOMEM;
    size_t k = 0;
    if (m->all) {
        v[k++] = "*";
    } else {
        for (size_t i = 0; i < r->n_slots; i++)
            if (plist_has(&r->slots[i]->subs, m))
                v[k++] = r->slots[i]->name;
    }
    *names = v;
    *n = k;
    return 0;
}

void dlg_rooms_conn_gone(dlg_rooms *rs, dlg_conn *c) {
    (void)rs;
    dlg_history_conn_gone(c->srv, c); /* its deferred Acks have nowhere to go */
    dlg_bus_conn_gone(c->srv->bus, c);
    while (c->n_members > 0)
        dlg_room_leave(c->members[0]->room, c);
}

void dlg_rooms_remove(dlg_rooms *rs, dlg_room *r, const char *reason) {
    Dialogue__V1__Left left = DIALOGUE__V1__LEFT__INIT;
    left.room = r->id;
    left.reason = (char *)reason;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_LEFT;
    f.left = &left;
    dlg_buf *b = NULL;
    if (r->members.n > 0 && dlg_frame_pack(&f.base, 0, &b) == 0) {
        for (size_t i = 0; i < r->members.n; i++)
            dlg_conn_send(r->members.v[i]->conn, b);
        dlg_buf_unref(b);
    }
    while (r->members.n > 0)
        dlg_room_leave(r, r->members.v[0]->conn);
    int found;
    size_t pos = rooms_pos(rs, r->id, &found);
    if (found) {
        memmove(rs->v + pos, rs->v + pos + 1, (rs->n - pos - 1) * sizeof(*rs->v));
        rs->n--;
    }
    room_free(r);
}
