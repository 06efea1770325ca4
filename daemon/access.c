/* access.c: role rules (see access.h). "*" in a role list means any client
 * that got past Hello, anonymous ones included when the config allows them. */
#include "access.h"

#include <string.h>

static int roles_match(char *const *roles, size_t n, const dlg_conn *c) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(roles[i], "*") == 0 || dlg_conn_has_role(c, roles[i]))
            return 1;
    }
    return 0;
}

int dlg_access_may_join(const dlg_server *srv, const dlg_room *r, const dlg_conn *c) {
    (void)srv;
    if (r->dynamic && r->creator && c->user_id && strcmp(r->creator, c->user_id) == 0)
        return 1;
    return roles_match(r->join_roles, r->n_join_roles, c);
}

int dlg_access_may_trigger(const dlg_server *srv, const dlg_room *r,
                           const char *event, const dlg_conn *c) {
    (void)srv;
    (void)event;
    if (r->dynamic && r->creator && c->user_id && strcmp(r->creator, c->user_id) == 0)
        return 1;
    return roles_match(r->trigger_roles, r->n_trigger_roles, c);
}

int dlg_access_may_create(const dlg_server *srv, const dlg_conn *c) {
    return roles_match(srv->create_roles, srv->n_create_roles, c);
}

int dlg_access_may_delete(const dlg_server *srv, const dlg_room *r, const dlg_conn *c) {
    if (!r->dynamic)
        return 0;
    if (r->creator && c->user_id && strcmp(r->creator, c->user_id) == 0)
        return 1;
    return roles_match(srv->delete_roles, srv->n_delete_roles, c);
}
