/* hooks.h: runs the installed hook tables in order. Refusals stop at the
 * first table that refuses; notifications go to every table. The config
 * rules are table 0, so an embedder's hooks can only narrow access, never
 * widen it. */
#ifndef DLG_HOOKS_H
#define DLG_HOOKS_H

#include "conn.h"

/* Fills info from c (pointers borrowed from c). */
void dlg_hooks_client_info(const dlg_conn *c, dlg_client_info *info);

void dlg_hooks_connected(dlg_server *s, const dlg_conn *c);
void dlg_hooks_disconnected(dlg_server *s, const dlg_conn *c, const char *reason);
/* 0 = allowed; else refused with reason filled. */
int dlg_hooks_before_join(dlg_server *s, const dlg_conn *c, const char *room, char *reason,
                          size_t len);
void dlg_hooks_joined(dlg_server *s, dlg_conn *c, const char *room);
void dlg_hooks_left(dlg_server *s, dlg_conn *c, const char *room, const char *reason);
/* c NULL for server triggers. On success ev->data and ev->len may have been replaced
 * by a rewrite; *owned then holds the buffer to free after delivery. */
int dlg_hooks_before_each(dlg_server *s, const dlg_conn *c, dlg_event_info *ev,
                          uint8_t **owned, char *reason, size_t len);
void dlg_hooks_after_each(dlg_server *s, const dlg_event_info *ev, uint64_t seq,
                          uint32_t recipients);
void dlg_hooks_room_created(dlg_server *s, const char *room, const char *creator);
void dlg_hooks_room_deleted(dlg_server *s, const char *room);

#endif
