/* load_rooms.c: the `rooms` section (each room's events, roles, delivery
 * and rate limit; its history is load_history.c's), and the two sections
 * that name rooms or room roles: `room_admin` and `auto_join`. */
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_err.h"

static void room_free(dlg_config_room *r) {
    free(r->id);
    free(r->name);
    free(r->description);
    dlg__cfg_strv_free(&r->events);
    dlg__cfg_strv_free(&r->default_subscriptions);
    dlg__cfg_strv_free(&r->join);
    dlg__cfg_strv_free(&r->trigger);
    for (size_t i = 0; i < r->n_trigger_events; i++) {
        free(r->trigger_events[i].event);
        dlg__cfg_strv_free(&r->trigger_events[i].roles);
    }
    free(r->trigger_events);
    for (size_t i = 0; i < r->n_delivery; i++)
        free(r->delivery[i].event);
    free(r->delivery);
    for (size_t i = 0; i < r->n_history; i++)
        free(r->history[i].event);
    free(r->history);
}

void dlg__cfg_rooms_free(dlg_config *c) {
    for (size_t i = 0; i < c->n_rooms; i++)
        room_free(&c->rooms[i]);
    free(c->rooms);
    for (size_t i = 0; i < c->n_auto_join; i++) {
        free(c->auto_join[i].role);
        dlg__cfg_strv_free(&c->auto_join[i].rooms);
    }
    free(c->auto_join);
    dlg__cfg_strv_free(&c->room_admin.create_roles);
    dlg__cfg_strv_free(&c->room_admin.delete_roles);
}

int dlg__cfg_load_room_admin(dlg_yaml *y, const dlg_ynode *m) {
    static const char *const keys[] = {"create", "delete", NULL};
    size_t mark = y->n_errors;
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "room_admin", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "create")))
        DLG_CFG_TRY(dlg__cfg_strv(y, v, "room_admin.create", DLG_CFG_K_ROLE,
                                  &dlg__cfg(y)->room_admin.create_roles));
    if ((v = dlg__yaml_get(y, m, "delete")))
        DLG_CFG_TRY(dlg__cfg_strv(y, v, "room_admin.delete", DLG_CFG_K_ROLE,
                                  &dlg__cfg(y)->room_admin.delete_roles));
    return dlg__yaml_since(y, mark);
}

/* ---- rooms -------------------------------------------------------------- */

int dlg__cfg_check_room_event(dlg_yaml *y, const dlg_ynode *n, const char *path,
                              const dlg_config_room *r, const char *ev, bool star_ok) {
    if (star_ok && !strcmp(ev, "*"))
        return 0;
    int rc = dlg__cfg_check_name(y, n, path, ev);
    if (rc < 0)
        return rc;
    if (!r->any_event && !dlg__cfg_strv_has(&r->events, ev))
        return dlg__yaml_fail(y, n, path, "event \"%s\" is not among the events of room \"%s\"", ev,
                              r->id ? r->id : "?");
    return 0;
}

int dlg__cfg_room_entries(dlg_yaml *y, const dlg_ynode *n, const char *path, dlg_config_room *r,
                          size_t size, void **v, size_t *cnt, dlg_cfg_entry_fn fn) {
    size_t mark = y->n_errors;
    int rc = dlg__yaml_seq_alloc(y, n, path, size, v, cnt);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < *cnt; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, path, i);
        DLG_CFG_TRY(fn(y, dlg__yaml_seq_at(y, n, i), p, r, i));
    }
    return dlg__yaml_since(y, mark);
}

int dlg__cfg_entry_event(dlg_yaml *y, const dlg_ynode *m, const char *path,
                         const dlg_config_room *r, bool star_ok, char **out) {
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v = dlg__yaml_get(y, m, "event");
    if (!v)
        return dlg__yaml_missing(y, m, path, "event");
    dlg__yaml_keypath(p, path, "event");
    int rc = dlg__yaml_text(y, v, p, DLG_CFG_NAME_MAX, out);
    return rc < 0 ? rc : dlg__cfg_check_room_event(y, v, p, r, *out, star_ok);
}

int dlg__cfg_dup_event(dlg_yaml *y, const dlg_ynode *m, const char *path, const char *ev,
                       const char *prev, unsigned prev_line) {
    if (!ev || !prev || strcmp(ev, prev) != 0)
        return 0;
    return dlg__yaml_fail(y, m, path, "event \"%s\" is already configured at line %u", ev,
                          prev_line);
}

static int trigger_entry(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r,
                         size_t i) {
    static const char *const keys[] = {"event", "roles", NULL};
    size_t mark = y->n_errors;
    dlg_config_event_roles *e = &r->trigger_events[i];
    char p[DLG_YAML_KEYPATH];
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    DLG_CFG_TRY(dlg__cfg_entry_event(y, m, path, r, false, &e->event));
    e->line = (unsigned)m->start_mark.line + 1;
    dlg_ynode *v = dlg__yaml_get(y, m, "roles");
    if (!v) {
        dlg__yaml_missing(y, m, path, "roles");
    } else {
        dlg__yaml_keypath(p, path, "roles");
        DLG_CFG_TRY(dlg__cfg_strv(y, v, p, DLG_CFG_K_ROLE, &e->roles));
    }
    if (y->n_errors > mark)
        return DLG_ECONFIG;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dlg__cfg_dup_event(y, m, path, e->event, r->trigger_events[k].event,
                                r->trigger_events[k].line);
    return rc;
}

static int delivery_entry(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r,
                          size_t i) {
    static const char *const keys[] = {"event", "policy", NULL};
    static const char *const policies[] = {"stream", "latest", NULL};
    size_t mark = y->n_errors;
    dlg_config_delivery *d = &r->delivery[i];
    char p[DLG_YAML_KEYPATH];
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    DLG_CFG_TRY(dlg__cfg_entry_event(y, m, path, r, true, &d->event));
    d->line = (unsigned)m->start_mark.line + 1;
    dlg_ynode *v = dlg__yaml_get(y, m, "policy");
    if (!v) {
        dlg__yaml_missing(y, m, path, "policy");
    } else {
        dlg__yaml_keypath(p, path, "policy");
        DLG_CFG_TRY(dlg__yaml_enum(y, v, p, policies, &d->policy));
    }
    if (y->n_errors > mark)
        return DLG_ECONFIG;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dlg__cfg_dup_event(y, m, path, d->event, r->delivery[k].event, r->delivery[k].line);
    return rc;
}

static int load_rate_limit(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r) {
    static const char *const keys[] = {"per_second", "burst", NULL};
    size_t mark = y->n_errors;
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "per_second"))) {
        dlg__yaml_keypath(p, path, "per_second");
        DLG_CFG_TRY(dlg__yaml_u32(y, v, p, 0, 1000000, &r->rate_per_second));
    }
    if ((v = dlg__yaml_get(y, m, "burst"))) {
        dlg__yaml_keypath(p, path, "burst");
        DLG_CFG_TRY(dlg__yaml_u32(y, v, p, 0, 1000000, &r->rate_burst));
    }
    if (r->rate_per_second && !r->rate_burst)
        r->rate_burst = r->rate_per_second;
    return dlg__yaml_since(y, mark);
}

/* A room's id: read, checked, unique among the rooms before it. */
static int load_room_id(dlg_yaml *y, const dlg_ynode *m, const char *path, size_t idx) {
    dlg_config_room *r = &dlg__cfg(y)->rooms[idx];
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v = dlg__yaml_get(y, m, "id");
    if (!v)
        return dlg__yaml_missing(y, m, path, "id");
    dlg__yaml_keypath(p, path, "id");
    int rc = dlg__yaml_text(y, v, p, DLG_CFG_NAME_MAX, &r->id);
    if (rc < 0)
        return rc;
    if ((rc = dlg__cfg_check_name(y, v, p, r->id)) < 0)
        return rc;
    for (size_t j = 0; j < idx; j++) {
        const dlg_config_room *o = &dlg__cfg(y)->rooms[j];
        if (o->id && !strcmp(o->id, r->id))
            return dlg__yaml_fail(y, v, p, "duplicate room id \"%s\" (first defined at line %u)",
                                  r->id, o->line);
    }
    return 0;
}

static int load_room(dlg_yaml *y, const dlg_ynode *m, const char *path, size_t idx) {
    static const char *const keys[] = {"id",
                                       "name",
                                       "description",
                                       "events",
                                       "default_subscriptions",
                                       "max_size",
                                       "join",
                                       "trigger",
                                       "trigger_events",
                                       "delivery",
                                       "rate_limit",
                                       "history",
                                       "sync_history_on_join",
                                       NULL};
    size_t mark = y->n_errors;
    dlg_config_room *r = &dlg__cfg(y)->rooms[idx];
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    r->line = (unsigned)m->start_mark.line + 1;
    DLG_CFG_TRY(load_room_id(y, m, path, idx));
    if ((v = dlg__yaml_get(y, m, "name"))) {
        dlg__yaml_keypath(p, path, "name");
        DLG_CFG_TRY(dlg__yaml_opt_text(y, v, p, DLG_CFG_NAME_MAX, &r->name));
    }
    if ((v = dlg__yaml_get(y, m, "description"))) {
        dlg__yaml_keypath(p, path, "description");
        DLG_CFG_TRY(dlg__yaml_opt_text(y, v, p, DLG_CFG_TEXT_MAX, &r->description));
    }
    if ((v = dlg__yaml_get(y, m, "events"))) {
        dlg__yaml_keypath(p, path, "events");
        DLG_CFG_TRY(rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_EVENT, &r->events));
        r->any_event = r->events.n == 1 && !strcmp(r->events.v[0], "*");
        /* What names the room's events is not refused again for the list's
         * own mistake. */
        if (rc < 0)
            r->any_event = true;
    }
    if ((v = dlg__yaml_get(y, m, "default_subscriptions"))) {
        dlg__yaml_keypath(p, path, "default_subscriptions");
        DLG_CFG_TRY(rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_EVENT, &r->default_subscriptions));
        r->default_all =
            r->default_subscriptions.n == 1 && !strcmp(r->default_subscriptions.v[0], "*");
        for (size_t i = 0; rc == 0 && !r->default_all && i < r->default_subscriptions.n; i++) {
            char q[DLG_YAML_KEYPATH];
            dlg__yaml_idxpath(q, p, i);
            DLG_CFG_TRY(dlg__cfg_check_room_event(y, dlg__yaml_seq_at(y, v, i), q, r,
                                                  r->default_subscriptions.v[i], false));
        }
    }
    if ((v = dlg__yaml_get(y, m, "max_size"))) {
        dlg__yaml_keypath(p, path, "max_size");
        DLG_CFG_TRY(dlg__yaml_u32(y, v, p, 0, UINT32_MAX, &r->max_size));
    }
    if ((v = dlg__yaml_get(y, m, "join"))) {
        dlg__yaml_keypath(p, path, "join");
        DLG_CFG_TRY(dlg__cfg_strv(y, v, p, DLG_CFG_K_ROLE, &r->join));
    }
    if ((v = dlg__yaml_get(y, m, "trigger"))) {
        dlg__yaml_keypath(p, path, "trigger");
        DLG_CFG_TRY(dlg__cfg_strv(y, v, p, DLG_CFG_K_ROLE, &r->trigger));
    }
    if ((v = dlg__yaml_get(y, m, "trigger_events"))) {
        dlg__yaml_keypath(p, path, "trigger_events");
        DLG_CFG_TRY(dlg__cfg_room_entries(y, v, p, r, sizeof(*r->trigger_events),
                                          (void **)&r->trigger_events, &r->n_trigger_events,
                                          trigger_entry));
    }
    if ((v = dlg__yaml_get(y, m, "delivery"))) {
        dlg__yaml_keypath(p, path, "delivery");
        DLG_CFG_TRY(dlg__cfg_room_entries(y, v, p, r, sizeof(*r->delivery),
                                          (void **)&r->delivery, &r->n_delivery, delivery_entry));
    }
    if ((v = dlg__yaml_get(y, m, "rate_limit"))) {
        dlg__yaml_keypath(p, path, "rate_limit");
        DLG_CFG_TRY(load_rate_limit(y, v, p, r));
    }
    if ((v = dlg__yaml_get(y, m, "history"))) {
        dlg__yaml_keypath(p, path, "history");
        DLG_CFG_TRY(dlg__cfg_room_entries(y, v, p, r, sizeof(*r->history), (void **)&r->history,
                                          &r->n_history, dlg__cfg_history_entry));
    }
    if ((v = dlg__yaml_get(y, m, "sync_history_on_join"))) {
        dlg__yaml_keypath(p, path, "sync_history_on_join");
        DLG_CFG_TRY(dlg__cfg_load_sync(y, v, p, r));
    }
    return dlg__yaml_since(y, mark);
}

int dlg__cfg_load_rooms(dlg_yaml *y, const dlg_ynode *n) {
    size_t mark = y->n_errors;
    dlg_config *c = dlg__cfg(y);
    int rc = dlg__yaml_seq_alloc(y, n, "rooms", sizeof(*c->rooms), (void **)&c->rooms, &c->n_rooms);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < c->n_rooms; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, "rooms", i);
        DLG_CFG_TRY(load_room(y, dlg__yaml_seq_at(y, n, i), p, i));
    }
    return dlg__yaml_since(y, mark);
}

/* Every name in a list that refers to rooms must be one from `rooms`. */
static int check_room_refs(dlg_yaml *y, const dlg_ynode *n, const char *path,
                           const dlg_config_strv *ids) {
    size_t mark = y->n_errors;
    for (size_t i = 0; i < ids->n; i++)
        if (!dlg_config_find_room(dlg__cfg(y), ids->v[i])) {
            char p[DLG_YAML_KEYPATH];
            dlg__yaml_idxpath(p, path, i);
            dlg__yaml_fail(y, dlg__yaml_seq_at(y, n, i), p,
                           "unknown room \"%s\" (not defined in rooms)", ids->v[i]);
        }
    return dlg__yaml_since(y, mark);
}

static int load_auto_join_entry(dlg_yaml *y, const dlg_ynode *m, const char *p,
                                dlg_config_auto_join *a) {
    static const char *const keys[] = {"role", "rooms", NULL};
    size_t mark = y->n_errors;
    char q[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, p, keys);
    if (rc < 0)
        return rc;
    a->line = (unsigned)m->start_mark.line + 1;
    if (!(v = dlg__yaml_get(y, m, "role"))) {
        dlg__yaml_missing(y, m, p, "role");
    } else {
        dlg__yaml_keypath(q, p, "role");
        DLG_CFG_TRY(rc = dlg__yaml_text(y, v, q, DLG_CFG_NAME_MAX, &a->role));
        if (rc == 0 && strcmp(a->role, "*") != 0)
            dlg__cfg_check_role(y, v, q, a->role);
    }
    if (!(v = dlg__yaml_get(y, m, "rooms"))) {
        dlg__yaml_missing(y, m, p, "rooms");
    } else {
        dlg__yaml_keypath(q, p, "rooms");
        DLG_CFG_TRY(rc = dlg__cfg_strv(y, v, q, DLG_CFG_K_NAME, &a->rooms));
        if (rc == 0)
            DLG_CFG_TRY(check_room_refs(y, v, q, &a->rooms));
    }
    return dlg__yaml_since(y, mark);
}

int dlg__cfg_load_auto_join(dlg_yaml *y, const dlg_ynode *n) {
    size_t mark = y->n_errors;
    dlg_config *c = dlg__cfg(y);
    int rc = dlg__yaml_seq_alloc(y, n, "auto_join", sizeof(*c->auto_join), (void **)&c->auto_join,
                                 &c->n_auto_join);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < c->n_auto_join; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, "auto_join", i);
        DLG_CFG_TRY(load_auto_join_entry(y, dlg__yaml_seq_at(y, n, i), p, &c->auto_join[i]));
    }
    return dlg__yaml_since(y, mark);
}
