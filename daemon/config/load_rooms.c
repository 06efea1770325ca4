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
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, "room_admin", keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "create")) &&
        (rc = dlg__cfg_strv(y, v, "room_admin.create", DLG_CFG_K_ROLE,
                            &dlg__cfg(y)->room_admin.create_roles)) < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "delete")) &&
        (rc = dlg__cfg_strv(y, v, "room_admin.delete", DLG_CFG_K_ROLE,
                            &dlg__cfg(y)->room_admin.delete_roles)) < 0)
        return rc;
    return 0;
}

/* ---- rooms -------------------------------------------------------------- */

/* An event named by a per-event setting must be one the room declares;
 * "*" (when star_ok) means every event not listed on its own. */
int dlg__cfg_check_room_event(dlg_yaml *y, const dlg_ynode *n, const char *path,
                              const dlg_config_room *r, const char *ev, bool star_ok) {
    if (star_ok && !strcmp(ev, "*"))
        return 0;
    int rc = dlg__cfg_check_name(y, n, path, ev);
    if (rc < 0)
        return rc;
    if (!r->any_event && !dlg__cfg_strv_has(&r->events, ev))
        return dlg__yaml_fail(y, n, path, "event \"%s\" is not among the events of room \"%s\"", ev,
                              r->id);
    return 0;
}

int dlg__cfg_room_entries(dlg_yaml *y, const dlg_ynode *n, const char *path, dlg_config_room *r,
                          size_t size, void **v, size_t *cnt, dlg_cfg_entry_fn fn) {
    int rc = dlg__yaml_seq_alloc(y, n, path, size, v, cnt);
    for (size_t i = 0; rc == 0 && i < *cnt; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, path, i);
        rc = fn(y, dlg__yaml_seq_at(y, n, i), p, r, i);
    }
    return rc;
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
    if (strcmp(ev, prev) != 0)
        return 0;
    return dlg__yaml_fail(y, m, path, "event \"%s\" is already configured at line %u", ev,
                          prev_line);
}

static int trigger_entry(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r,
                         size_t i) {
    static const char *const keys[] = {"event", "roles", NULL};
    dlg_config_event_roles *e = &r->trigger_events[i];
    char p[DLG_YAML_KEYPATH];
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0 || (rc = dlg__cfg_entry_event(y, m, path, r, false, &e->event)) < 0)
        return rc;
    e->line = (unsigned)m->start_mark.line + 1;
    dlg_ynode *v = dlg__yaml_get(y, m, "roles");
    if (!v)
        return dlg__yaml_missing(y, m, path, "roles");
    dlg__yaml_keypath(p, path, "roles");
    if ((rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_ROLE, &e->roles)) < 0)
        return rc;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dlg__cfg_dup_event(y, m, path, e->event, r->trigger_events[k].event,
                                r->trigger_events[k].line);
    return rc;
}

static int delivery_entry(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r,
                          size_t i) {
    static const char *const keys[] = {"event", "policy", NULL};
    static const char *const policies[] = {"stream", "latest", NULL};
    dlg_config_delivery *d = &r->delivery[i];
    char p[DLG_YAML_KEYPATH];
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0 || (rc = dlg__cfg_entry_event(y, m, path, r, true, &d->event)) < 0)
        return rc;
    d->line = (unsigned)m->start_mark.line + 1;
    dlg_ynode *v = dlg__yaml_get(y, m, "policy");
    if (!v)
        return dlg__yaml_missing(y, m, path, "policy");
    dlg__yaml_keypath(p, path, "policy");
    if ((rc = dlg__yaml_enum(y, v, p, policies, &d->policy)) < 0)
        return rc;
    for (size_t k = 0; k < i && rc == 0; k++)
        rc = dlg__cfg_dup_event(y, m, path, d->event, r->delivery[k].event, r->delivery[k].line);
    return rc;
}

static int load_rate_limit(dlg_yaml *y, const dlg_ynode *m, const char *path, dlg_config_room *r) {
    static const char *const keys[] = {"per_second", "burst", NULL};
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    if ((v = dlg__yaml_get(y, m, "per_second"))) {
        dlg__yaml_keypath(p, path, "per_second");
        if ((rc = dlg__yaml_u32(y, v, p, 0, 1000000, &r->rate_per_second)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "burst"))) {
        dlg__yaml_keypath(p, path, "burst");
        if ((rc = dlg__yaml_u32(y, v, p, 0, 1000000, &r->rate_burst)) < 0)
            return rc;
    }
    if (r->rate_per_second && !r->rate_burst)
        r->rate_burst = r->rate_per_second;
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
    dlg_config_room *r = &dlg__cfg(y)->rooms[idx];
    char p[DLG_YAML_KEYPATH];
    dlg_ynode *v;
    int rc = dlg__yaml_want_map(y, m, path, keys);
    if (rc < 0)
        return rc;
    r->line = (unsigned)m->start_mark.line + 1;
    if (!(v = dlg__yaml_get(y, m, "id")))
        return dlg__yaml_missing(y, m, path, "id");
    dlg__yaml_keypath(p, path, "id");
    if ((rc = dlg__yaml_text(y, v, p, DLG_CFG_NAME_MAX, &r->id)) < 0 ||
        (rc = dlg__cfg_check_name(y, v, p, r->id)) < 0)
        return rc;
    for (size_t j = 0; j < idx; j++)
        if (!strcmp(dlg__cfg(y)->rooms[j].id, r->id))
            return dlg__yaml_fail(y, v, p, "duplicate room id \"%s\" (first defined at line %u)",
                                  r->id, dlg__cfg(y)->rooms[j].line);
    if ((v = dlg__yaml_get(y, m, "name"))) {
        dlg__yaml_keypath(p, path, "name");
        if ((rc = dlg__yaml_opt_text(y, v, p, DLG_CFG_NAME_MAX, &r->name)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "description"))) {
        dlg__yaml_keypath(p, path, "description");
        if ((rc = dlg__yaml_opt_text(y, v, p, DLG_CFG_TEXT_MAX, &r->description)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "events"))) {
        dlg__yaml_keypath(p, path, "events");
        if ((rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_EVENT, &r->events)) < 0)
            return rc;
        r->any_event = r->events.n == 1 && !strcmp(r->events.v[0], "*");
    }
    if ((v = dlg__yaml_get(y, m, "default_subscriptions"))) {
        dlg__yaml_keypath(p, path, "default_subscriptions");
        if ((rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_EVENT, &r->default_subscriptions)) < 0)
            return rc;
        r->default_all =
            r->default_subscriptions.n == 1 && !strcmp(r->default_subscriptions.v[0], "*");
        for (size_t i = 0; !r->default_all && i < r->default_subscriptions.n; i++) {
            char q[DLG_YAML_KEYPATH];
            dlg__yaml_idxpath(q, p, i);
            if ((rc = dlg__cfg_check_room_event(y, dlg__yaml_seq_at(y, v, i), q, r,
                                                r->default_subscriptions.v[i], false)) < 0)
                return rc;
        }
    }
    if ((v = dlg__yaml_get(y, m, "max_size"))) {
        dlg__yaml_keypath(p, path, "max_size");
        if ((rc = dlg__yaml_u32(y, v, p, 0, UINT32_MAX, &r->max_size)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "join"))) {
        dlg__yaml_keypath(p, path, "join");
        if ((rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_ROLE, &r->join)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "trigger"))) {
        dlg__yaml_keypath(p, path, "trigger");
        if ((rc = dlg__cfg_strv(y, v, p, DLG_CFG_K_ROLE, &r->trigger)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "trigger_events"))) {
        dlg__yaml_keypath(p, path, "trigger_events");
        if ((rc = dlg__cfg_room_entries(y, v, p, r, sizeof(*r->trigger_events),
                                        (void **)&r->trigger_events, &r->n_trigger_events,
                                        trigger_entry)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "delivery"))) {
        dlg__yaml_keypath(p, path, "delivery");
        if ((rc = dlg__cfg_room_entries(y, v, p, r, sizeof(*r->delivery), (void **)&r->delivery,
                                        &r->n_delivery, delivery_entry)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "rate_limit"))) {
        dlg__yaml_keypath(p, path, "rate_limit");
        if ((rc = load_rate_limit(y, v, p, r)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "history"))) {
        dlg__yaml_keypath(p, path, "history");
        if ((rc = dlg__cfg_room_entries(y, v, p, r, sizeof(*r->history), (void **)&r->history,
                                        &r->n_history, dlg__cfg_history_entry)) < 0)
            return rc;
    }
    if ((v = dlg__yaml_get(y, m, "sync_history_on_join"))) {
        dlg__yaml_keypath(p, path, "sync_history_on_join");
        if ((rc = dlg__cfg_load_sync(y, v, p, r)) < 0)
            return rc;
    }
    return 0;
}

int dlg__cfg_load_rooms(dlg_yaml *y, const dlg_ynode *n) {
    dlg_config *c = dlg__cfg(y);
    int rc = dlg__yaml_seq_alloc(y, n, "rooms", sizeof(*c->rooms), (void **)&c->rooms, &c->n_rooms);
    for (size_t i = 0; rc == 0 && i < c->n_rooms; i++) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, "rooms", i);
        rc = load_room(y, dlg__yaml_seq_at(y, n, i), p, i);
    }
    return rc;
}

/* Every name in a list that refers to rooms must be one from `rooms`. */
static int check_room_refs(dlg_yaml *y, const dlg_ynode *n, const char *path,
                           const dlg_config_strv *ids) {
    for (size_t i = 0; i < ids->n; i++)
        if (!dlg_config_find_room(dlg__cfg(y), ids->v[i])) {
            char p[DLG_YAML_KEYPATH];
            dlg__yaml_idxpath(p, path, i);
            return dlg__yaml_fail(y, dlg__yaml_seq_at(y, n, i), p,
                                  "unknown room \"%s\" (not defined in rooms)", ids->v[i]);
        }
    return 0;
}

int dlg__cfg_load_auto_join(dlg_yaml *y, const dlg_ynode *n) {
    static const char *const keys[] = {"role", "rooms", NULL};
    dlg_config *c = dlg__cfg(y);
    int rc = dlg__yaml_seq_alloc(y, n, "auto_join", sizeof(*c->auto_join), (void **)&c->auto_join,
                                 &c->n_auto_join);
    for (size_t i = 0; rc == 0 && i < c->n_auto_join; i++) {
        char p[DLG_YAML_KEYPATH], q[DLG_YAML_KEYPATH];
        dlg_config_auto_join *a = &c->auto_join[i];
        dlg_ynode *m = dlg__yaml_seq_at(y, n, i), *v;
        dlg__yaml_idxpath(p, "auto_join", i);
        if ((rc = dlg__yaml_want_map(y, m, p, keys)) < 0)
            return rc;
        a->line = (unsigned)m->start_mark.line + 1;
        if (!(v = dlg__yaml_get(y, m, "role")))
            return dlg__yaml_missing(y, m, p, "role");
        dlg__yaml_keypath(q, p, "role");
        if ((rc = dlg__yaml_text(y, v, q, DLG_CFG_NAME_MAX, &a->role)) < 0)
            return rc;
        if (strcmp(a->role, "*") != 0 && (rc = dlg__cfg_check_role(y, v, q, a->role)) < 0)
            return rc;
        if (!(v = dlg__yaml_get(y, m, "rooms")))
            return dlg__yaml_missing(y, m, p, "rooms");
        dlg__yaml_keypath(q, p, "rooms");
        if ((rc = dlg__cfg_strv(y, v, q, DLG_CFG_K_NAME, &a->rooms)) < 0)
            return rc;
        rc = check_room_refs(y, v, q, &a->rooms);
    }
    return rc;
}
