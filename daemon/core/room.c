/* room.c: rooms, membership and the per-event subscriber index. */
#include "room.h"
#include "dlg_random.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "conn.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_sorted.h"
#include "dlg_vec.h"
#include "reply.h"

static int plist_grow(dlg_plist *l) {
    return DLG_GROW(l->v, l->cap, l->n + 1);
}

/* ---- a member's subscriptions: sorted by slot address ------------------ */

/* Index of slot in m->subs, or where it would go (*found = 0). */
static size_t msub_pos(const dlg_member *m, const dlg_evslot *slot, int *found) {
    size_t lo = 0, hi = m->n_subs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->subs[mid].slot < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n_subs && m->subs[lo].slot == slot;
    return lo;
}

static dlg_msub *msub_find(const dlg_member *m, const dlg_evslot *slot) {
    int found;
    size_t i = msub_pos(m, slot, &found);
    return found ? &m->subs[i] : NULL;
}

/* Adds m to slot's subscribers (and slot to m's list). m must not be
 * there yet. 0 or DLG_ENOMEM (nothing changed). */
static int slot_sub_add(dlg_evslot *slot, dlg_member *m) {
    if (plist_grow(&slot->subs) != 0)
        return DLG_ENOMEM;
    if (DLG_GROW(m->subs, m->cap_subs, m->n_subs + 1) != 0)
        return DLG_ENOMEM;
    int found;
    size_t i = msub_pos(m, slot, &found);
    memmove(m->subs + i + 1, m->subs + i, (m->n_subs - i) * sizeof(*m->subs));
    m->subs[i] = (dlg_msub){.slot = slot, .pos = slot->subs.n};
    m->n_subs++;
    slot->subs.v[slot->subs.n++] = m;
    return 0;
}

/* Takes m out of sub->slot's subscribers in O(log n): the last subscriber
 * moves into its place (recipients are independent, so order does not
 * matter) and learns its new position. m's own list is left to the caller. */
static void slot_sub_cut(dlg_member *m, const dlg_msub *sub) {
    dlg_plist *l = &sub->slot->subs;
    dlg_member *last = l->v[--l->n];
    if (last != m) {
        l->v[sub->pos] = last;
        msub_find(last, sub->slot)->pos = sub->pos;
    }
}

static void slot_sub_del(dlg_member *m, dlg_evslot *slot) {
    int found;
    size_t i = msub_pos(m, slot, &found);
    if (!found)
        return;
    slot_sub_cut(m, &m->subs[i]);
    memmove(m->subs + i, m->subs + i + 1, (m->n_subs - i - 1) * sizeof(*m->subs));
    m->n_subs--;
}

/* room->members and room->all_subs keep each member's index in it. */
static int list_add(dlg_plist *l, dlg_member *m, size_t *pos) {
    if (plist_grow(l) != 0)
        return DLG_ENOMEM;
    *pos = l->n;
    l->v[l->n++] = m;
    return 0;
}

static void members_del(dlg_room *r, dlg_member *m) {
    dlg_member *last = r->members.v[--r->members.n];
    r->members.v[m->pos_members] = last;
    last->pos_members = m->pos_members;
}

static void all_del(dlg_room *r, dlg_member *m) {
    dlg_member *last = r->all_subs.v[--r->all_subs.n];
    r->all_subs.v[m->pos_all] = last;
    last->pos_all = m->pos_all;
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
    return dlg_calloc(1, sizeof(dlg_rooms));
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
    free(r->by_name);
    for (size_t i = 0; i < r->members.n; i++) {
        free(r->members.v[i]->subs);
        free(r->members.v[i]);
    }
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

static const char *slot_key(const void *elem) {
    return (*(dlg_evslot *const *)elem)->name;
}

/* Adds the slot for name (which has none yet): NULL when out of memory. */
static dlg_evslot *slot_add(dlg_room *r, const char *name) {
    if (r->n_slots == r->cap_slots) {
        size_t nc = r->cap_slots ? r->cap_slots * 2 : 4;
        dlg_evslot **ns = dlg_realloc(r->slots, nc * sizeof(*ns));
        if (ns == NULL)
            return NULL;
        r->slots = ns;
        dlg_evslot **nb = dlg_realloc(r->by_name, nc * sizeof(*nb));
        if (nb == NULL)
            return NULL; /* slots grew: harmless, cap_slots still says the smaller */
        r->by_name = nb;
        r->cap_slots = nc;
    }
    dlg_evslot *s = dlg_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if ((s->name = dlg_strdup(name)) == NULL) {
        free(s);
        return NULL;
    }
    s->delivery = r->default_delivery;
    s->ord = (uint32_t)r->n_slots;
    int found;
    size_t pos = dlg_sorted_pos(r->by_name, r->n_slots, sizeof(*r->by_name), slot_key, name,
                                &found);
    memmove(r->by_name + pos + 1, r->by_name + pos, (r->n_slots - pos) * sizeof(*r->by_name));
    r->by_name[pos] = s;
    r->slots[r->n_slots++] = s;
    return s;
}

dlg_evslot *dlg_room_slot(const dlg_room *r, const char *event) {
    int found;
    size_t i = dlg_sorted_pos(r->by_name, r->n_slots, sizeof(*r->by_name), slot_key, event,
                              &found);
    return found ? r->by_name[i] : NULL;
}

dlg_evslot *dlg_room_slot_make(dlg_room *r, const char *event) {
    dlg_evslot *s = dlg_room_slot(r, event);
    return s ? s : slot_add(r, event);
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
    dlg_room *r = dlg_calloc(1, sizeof(*r));
    if (r == NULL)
        goto fail;
    r->any_event = any;
    r->default_all = def_all;
    r->max_size = spec->max_size;
    r->dynamic = dynamic;
    r->creator_kind = spec->creator_kind;
    r->epoch = dlg_random_epoch(); /* memory history: new each time */
    if ((r->id = dlg_strdup(spec->id)) == NULL ||
        (r->name = dlg_strdup(spec->name ? spec->name : spec->id)) == NULL ||
        (r->description = dlg_strdup(spec->description ? spec->description : "")) == NULL ||
        (spec->creator && (r->creator = dlg_strdup(spec->creator)) == NULL))
        goto fail_room;
    r->join_roles = dlg_calloc(spec->n_join + 1, sizeof(char *));
    r->trigger_roles = dlg_calloc(spec->n_trigger + 1, sizeof(char *));
    if (r->join_roles == NULL || r->trigger_roles == NULL)
        goto fail_room;
    for (; r->n_join_roles < spec->n_join; r->n_join_roles++)
        if ((r->join_roles[r->n_join_roles] = dlg_strdup(spec->join[r->n_join_roles])) == NULL)
            goto fail_room;
    for (; r->n_trigger_roles < spec->n_trigger; r->n_trigger_roles++)
        if ((r->trigger_roles[r->n_trigger_roles] = dlg_strdup(spec->trigger[r->n_trigger_roles])) ==
            NULL)
            goto fail_room;
    /* Keep concrete names only; "*" is any_event / default_all. */
    r->events = dlg_calloc(spec->n_events ? spec->n_events : 1, sizeof(char *));
    r->default_subs = dlg_calloc(spec->n_default_subs ? spec->n_default_subs : 1, sizeof(char *));
    if (r->events == NULL || r->default_subs == NULL)
        goto fail_room;
    for (size_t i = 0; i < spec->n_events; i++) {
        if (strcmp(spec->events[i], "*") == 0)
            continue;
        if ((r->events[r->n_events] = dlg_strdup(spec->events[i])) == NULL)
            goto fail_room;
        r->n_events++;
        if (slot_add(r, spec->events[i]) == NULL)
            goto fail_room;
    }
    for (size_t i = 0; i < spec->n_default_subs; i++) {
        if (strcmp(spec->default_subs[i], "*") == 0)
            continue;
        if ((r->default_subs[r->n_default_subs] = dlg_strdup(spec->default_subs[i])) == NULL)
            goto fail_room;
        r->n_default_subs++;
    }
    if (DLG_GROW(rs->v, rs->cap, rs->n + 1) != 0)
        goto fail_room;
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

static void room_changed(const dlg_server *s, const dlg_room *r) {
    if (s->fwd.room_changed)
        s->fwd.room_changed(s->fwd.ud, r);
}

static void unsubscribe_everything(dlg_member *m) {
    if (m->all)
        all_del(m->room, m);
    m->all = 0;
    for (size_t i = 0; i < m->n_subs; i++)
        slot_sub_cut(m, &m->subs[i]);
    m->n_subs = 0;
}

int dlg_room_join(dlg_room *r, dlg_conn *c, dlg_member **out) {
    if (dlg_room_member(r, c))
        return DLG_EEXIST;
    if (r->max_size && r->members.n >= r->max_size)
        return DLG_EFULL;
    if (DLG_GROW(c->members, c->cap_members, c->n_members + 1) != 0)
        return DLG_ENOMEM;
    dlg_member *m = dlg_calloc(1, sizeof(*m));
    if (m == NULL)
        return DLG_ENOMEM;
    m->conn = c;
    m->room = r;
    if (list_add(&r->members, m, &m->pos_members) != 0) {
        free(m);
        return DLG_ENOMEM;
    }
    c->members[c->n_members++] = m;
    const char *bad = NULL;
    int room_full = 0;
    /* The room's own defaults: no per-member cap applies to them. */
    int rc = dlg_room_subscribe(m, r->default_subs, r->n_default_subs, r->default_all, 0, 0,
                                &bad, &room_full);
    if (rc != 0) {
        dlg_room_leave(r, c);
        return rc;
    }
    if (r->members.n == 1) /* first local member: events of other nodes */
        room_changed(c->srv, r);
    if (out)
        *out = m;
    return 0;
}

int dlg_room_leave(dlg_room *r, dlg_conn *c) {
    dlg_member *m = dlg_room_member(r, c);
    if (m == NULL)
        return DLG_ENOTFOUND;
    unsubscribe_everything(m);
    members_del(r, m);
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i] == m) {
            c->members[i] = c->members[--c->n_members];
            break;
        }
    }
    free(m->subs);
    free(m);
    if (r->members.n == 0) /* last local member gone: drop the interest */
        room_changed(c->srv, r);
    return 0;
}

size_t dlg_member_subscriptions(const dlg_member *m) {
    return m->n_subs;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dlg_room_subscribe(dlg_member *m, char *const *events, size_t n, int all, size_t max_subs,
                       size_t max_room_events, const char **bad, int *room_full) {
    dlg_room *r = m->room;
    if (all) {
        if (m->all)
            return 0;
        /* An all-subscriber lives only in all_subs, so fan-out never sends
         * it the same event twice. */
        if (plist_grow(&r->all_subs) != 0)
            return DLG_ENOMEM;
        unsubscribe_everything(m);
        list_add(&r->all_subs, m, &m->pos_all); /* cannot fail: grown above */
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
    if (m->all || n == 0)
        return 0; /* already receives everything */
    /* Sorted, so a name given twice counts once below. */
    char **v = dlg_malloc(n * sizeof(*v));
    if (v == NULL)
        return DLG_ENOMEM;
    memcpy(v, events, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_str);
    /* The caps first: all or nothing. */
    size_t new_subs = 0, new_slots = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue;
        dlg_evslot *s = dlg_room_slot(r, v[i]);
        new_slots += s == NULL;
        if (s == NULL || msub_find(m, s) == NULL) {
            new_subs++;
            int over_room = max_room_events && r->n_slots + new_slots > max_room_events;
            if (over_room || (max_subs && m->n_subs + new_subs > max_subs)) {
                *bad = v[i];
                *room_full = over_room;
                free(v);
                return DLG_EFULL;
            }
        }
    }
    int rc = 0;
    size_t n_before = m->n_subs;
    dlg_msub *before = n_before ? dlg_malloc(n_before * sizeof(*before)) : NULL;
    if (n_before && before == NULL) {
        free(v);
        return DLG_ENOMEM;
    }
    if (before)
        memcpy(before, m->subs, n_before * sizeof(*before));
    for (size_t i = 0; i < n && rc == 0; i++) {
        dlg_evslot *s = dlg_room_slot(r, v[i]);
        if (s == NULL && (s = slot_add(r, v[i])) == NULL)
            rc = DLG_ENOMEM;
        else if (msub_find(m, s) == NULL)
            rc = slot_sub_add(s, m);
    }
    if (rc != 0) {
        /* Out of memory half way: take back what this call added (new
         * slots stay, empty, as any slot may). */
        for (size_t i = 0; i < n; i++) {
            dlg_evslot *s = dlg_room_slot(r, v[i]);
            int had = 0;
            for (size_t k = 0; s && k < n_before && !had; k++)
                had = before[k].slot == s;
            if (s && !had)
                slot_sub_del(m, s);
        }
    }
    free(before);
    free(v);
    return rc;
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
            if (s && slot_sub_add(s, m) != 0)
                return DLG_ENOMEM;
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        dlg_evslot *s = dlg_room_slot(r, events[i]);
        if (s)
            slot_sub_del(m, s);
    }
    return 0;
}

int dlg_room_joined(const dlg_member *m, int history_follows, Dialogue__V1__Joined *j,
                    char ***subs) {
    size_t n = 0;
    int rc = dlg_room_subscriptions(m, subs, &n);
    if (rc != 0)
        return rc;
    const dlg_room *r = m->room;
    j->room = r->id;
    j->name = r->name;
    j->subscriptions = *subs;
    j->n_subscriptions = n;
    j->epoch = r->epoch;
    j->seq = r->seq;
    j->members = (uint32_t)r->members.n;
    j->history_follows = history_follows;
    return 0;
}

static int cmp_ord(const void *a, const void *b) {
    uint32_t x = (*(dlg_evslot *const *)a)->ord, y = (*(dlg_evslot *const *)b)->ord;
    return x < y ? -1 : x > y;
}

int dlg_room_subscriptions(const dlg_member *m, char ***names, size_t *n) {
    char **v = dlg_calloc(m->n_subs + 3, sizeof(*v));
    dlg_evslot **sl = dlg_calloc(m->n_subs + 1, sizeof(*sl));
    if (v == NULL || sl == NULL) {
        free(v);
        free(sl);
        return DLG_ENOMEM;
    }
    size_t k = 0;
    if (m->all) {
        v[k++] = "*";
    } else {
        for (size_t i = 0; i < m->n_subs; i++)
            sl[i] = m->subs[i].slot;
        qsort(sl, m->n_subs, sizeof(*sl), cmp_ord);
        for (; k < m->n_subs; k++)
            v[k] = sl[k]->name;
    }
    /* The system events a member named (the bits of dlg_member.presence). */
    if (m->presence & 1u)
        v[k++] = "presence:join";
    if (m->presence & 2u)
        v[k++] = "presence:leave";
    free(sl);
    *names = v;
    *n = k;
    return 0;
}

void dlg_rooms_conn_gone(dlg_rooms *rs, dlg_conn *c) {
    (void)rs;
    const dlg_server *s = c->srv;
    /* Its deferred Acks (and parked Joins) have nowhere to go. */
    if (s->keeper.conn_gone)
        s->keeper.conn_gone(s->keeper.ud, c);
    if (s->fwd.conn_gone)
        s->fwd.conn_gone(s->fwd.ud, c);
    while (c->n_members > 0)
        dlg_room_leave(c->members[0]->room, c);
}

void dlg_rooms_remove(dlg_rooms *rs, dlg_room *r, const char *reason) {
    dlg_buf *b = NULL;
    if (r->members.n > 0 && dlg_reply_left_frame(r->id, reason, 0, &b) == 0) {
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
    rs->gone_triggers += r->triggers;
    rs->gone_deliveries += r->deliveries;
    room_free(r);
}
