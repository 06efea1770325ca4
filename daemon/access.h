/* access.h: who may do what. Deny by default: a room with no rule lets
 * nobody join or trigger. Roles come only from the verified identity. */
#ifndef DLG_ACCESS_H
#define DLG_ACCESS_H

#include "conn.h"
#include "room.h"

/* 1 if c may join r (and so read its members, history and events). */
int dlg_access_may_join(const dlg_server *srv, const dlg_room *r, const dlg_conn *c);

/* 1 if c may trigger event into r (membership is checked separately). */
int dlg_access_may_trigger(const dlg_server *srv, const dlg_room *r,
                           const char *event, const dlg_conn *c);

/* 1 if c may create rooms at run time. */
int dlg_access_may_create(const dlg_server *srv, const dlg_conn *c);

/* 1 if c may delete r: dynamic rooms only, by their creator or a
 * configured role. Rooms from the config file are never deleted by clients. */
int dlg_access_may_delete(const dlg_server *srv, const dlg_room *r, const dlg_conn *c);

#endif
