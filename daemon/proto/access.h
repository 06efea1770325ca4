/* access.h: the config's access rules, installed as the first hook table.
 * Deny by default: a room with no rule lets nobody join or trigger. Roles
 * come only from the verified identity. "*" in a role list means any client
 * that got past Hello (anonymous ones too, when the config allows them). */
#ifndef DLG_ACCESS_H
#define DLG_ACCESS_H

#include "conn.h"
#include "room.h"

/* Fills h with the rule hooks (before_join, before_each); ud = NULL. */
void dlg_access_hooks(dlg_hooks *h);

/* 1 if the client may join r (and so read its members, history, events). */
int dlg_access_may_join(const dlg_room *r, const dlg_client_info *c);

/* 1 if the client may trigger event into r (membership checked elsewhere). */
int dlg_access_may_trigger(const dlg_room *r, const char *event, const dlg_client_info *c);

/* 1 if c may create rooms at run time. */
int dlg_access_may_create(const dlg_server *srv, const dlg_conn *c);

/* 1 if c may delete r: dynamic rooms only, by their creator or a
 * configured role. Rooms from the config file are never deleted by clients. */
int dlg_access_may_delete(const dlg_server *srv, const dlg_room *r, const dlg_conn *c);

/* After the rules changed (a reload): asks every hook table again whether
 * each member may still be in its room (dlg_hooks_before_join), and takes
 * out those that may not: Left{room, reason} is queued to them (request id
 * 0), on_left hooks run, and the membership goes, so no event, history or
 * member list reaches them any more. Returns how many memberships ended. */
size_t dlg_access_recheck(dlg_server *srv, const char *reason);

/* Joins c to the rooms its roles auto-join (config auto_join), through the
 * same hooks as a Join. Fills *joined with malloc'd Joined replies (free
 * with dlg_access_free_joined). 0 or DLG_ENOMEM. */
int dlg_access_auto_join(dlg_server *srv, dlg_conn *c, Dialogue__V1__Joined ***joined,
                         size_t *n);

void dlg_access_free_joined(Dialogue__V1__Joined **joined, size_t n);

#endif
