/* access.c: role rules as hooks (see access.h). */
#include "access.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "history.h"

#include "auth.h"
#include "dlg_alloc.h"
#include "hooks.h"

static int has_role(const dlg_client_info *c, const char *role) {
    for (size_t i = 0; i < c->n_roles; i++)
        if (strcmp(c->roles[i], role) == 0)
            return 1;
    return 0;
}

static int roles_match(char *const *roles, size_t n, const dlg_client_info *c) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(roles[i], "*") == 0 || has_role(c, roles[i]))
            return 1;
    return 0;
}

static int is_creator(const dlg_room *r, const dlg_client_info *c) {
    const char *who = c->user_id ? c->user_id : c->client_id;
    return r->dynamic && dlg_auth_same(r->creator_kind, r->creator, c->identity_kind, who);
}

int dlg_access_may_join(const dlg_room *r, const dlg_client_info *c) {
    return is_creator(r, c) || roles_match(r->join_roles, r->n_join_roles, c);
}

int dlg_access_may_trigger(const dlg_room *r, const char *event, const dlg_client_info *c) {
    if (is_creator(r, c) || roles_match(r->trigger_roles, r->n_trigger_roles, c))
        return 1;
    for (size_t i = 0; i < r->n_trigger_events; i++)
        if (strcmp(r->trigger_events[i].event, event) == 0 &&
            roles_match(r->trigger_events[i].roles, r->trigger_events[i].n_roles, c))
            return 1;
    return 0;
}

int dlg_access_may_create(const dlg_server *srv, const dlg_conn *c) {
    dlg_client_info i;
    dlg_hooks_client_info(c, &i);
    return roles_match(srv->create_roles, srv->n_create_roles, &i);
}

int dlg_access_may_delete(const dlg_server *srv, const dlg_room *r, const dlg_conn *c) {
    dlg_client_info i;
    dlg_hooks_client_info(c, &i);
    if (!r->dynamic)
        return 0;
    return is_creator(r, &i) || roles_match(srv->delete_roles, srv->n_delete_roles, &i);
}

static int hook_before_join(void *ud, dlg_server *s, const dlg_client_info *c,
                            const char *room, char *reason, size_t len) {
    (void)ud;
    dlg_room *r = dlg_rooms_find(s->rooms, room);
    if (r && dlg_access_may_join(r, c))
        return 0;
    snprintf(reason, len, "may not join room %s", room);
    return 1;
}

static int hook_before_each(void *ud, dlg_server *s, const dlg_client_info *c,
                            const dlg_event_info *ev, uint8_t **nd, size_t *nl,
                            char *reason, size_t len) {
    (void)ud;
    (void)nd;
    (void)nl;
    if (c == NULL)
        return 0; /* the server's own triggers */
    dlg_room *r = dlg_rooms_find(s->rooms, ev->room);
    if (r && dlg_access_may_trigger(r, ev->event, c))
        return 0;
    snprintf(reason, len, "may not trigger %s in room %s", ev->event, ev->room);
    return 1;
}

void dlg_access_hooks(dlg_hooks *h) {
    memset(h, 0, sizeof(*h));
    h->before_join = hook_before_join;
    h->before_each = hook_before_each;
}

size_t dlg_access_recheck(dlg_server *srv, const char *reason) {
    size_t cut = 0;
    for (size_t i = 0; i < srv->rooms->n; i++) {
        dlg_room *r = srv->rooms->v[i];
        /* Backwards: a leave moves the last member into the hole. */
        for (size_t k = r->members.n; k-- > 0;) {
            dlg_conn *c = r->members.v[k]->conn;
            char why[256] = "";
            if (dlg_hooks_before_join(srv, c, r->id, why, sizeof(why)) == 0)
                continue;
            dlg_reply_left(c, 0, r->id, reason);
            dlg_log_info(&srv->log, "conn %s (%s): removed from room %s: %s (%s)", c->client_id,
                         c->peer, r->id, reason, why);
            dlg_hooks_left(srv, c, r->id, reason);
            dlg_room_leave(r, c);
            cut++;
        }
    }
    return cut;
}

void dlg_access_free_joined(Dialogue__V1__Joined **joined, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(joined[i]->subscriptions);
        free(joined[i]);
    }
    free(joined);
}

int dlg_access_auto_join(dlg_server *srv, dlg_conn *c, Dialogue__V1__Joined ***joined,
                       size_t *n) {
    *joined = NULL;
    *n = 0;
    const dlg_config *cfg = srv->cfg;
    if (cfg == NULL || cfg->n_auto_join == 0)
        return 0;
    Dialogue__V1__Joined **out = dlg_calloc(c->srv->opts.max_rooms_per_conn + 1, sizeof(*out));
    if (out == NULL)
        return DLG_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_auto_join; i++) {
        const dlg_config_auto_join *aj = &cfg->auto_join[i];
        if (strcmp(aj->role, "*") != 0 && !dlg_conn_has_role(c, aj->role))
            continue;
        for (size_t j = 0; j < aj->rooms.n; j++) {
            dlg_room *r = dlg_rooms_find(srv->rooms, aj->rooms.v[j]);
            if (r == NULL || dlg_room_member(r, c) ||
                c->n_members >= srv->opts.max_rooms_per_conn)
                continue;
            char reason[256] = "";
            if (dlg_hooks_before_join(srv, c, r->id, reason, sizeof(reason)) != 0) {
                dlg_log_warn(&srv->log, "conn %s: auto_join %s refused: %s", c->client_id,
                             r->id, reason);
                continue;
            }
            dlg_member *m = NULL;
            if (dlg_room_join(r, c, &m) != 0)
                continue;
            Dialogue__V1__Joined *jd = dlg_calloc(1, sizeof(*jd));
            if (jd == NULL)
                break;
            dialogue__v1__joined__init(jd);
            char **subs = NULL;
            if (dlg_room_joined(m, dlg_history_join_follows(m, NULL), jd, &subs) != 0) {
                free(jd);
                break;
            }
            out[k++] = jd;
        }
    }
    *joined = out;
    *n = k;
    return 0;
}
