/* presence.h: the system events "presence:join" and "presence:leave"
 * (protocol.proto, PresenceChange): who joined and left a room, gathered
 * for DLG_PRESENCE_WINDOW_MS and sent to the members that subscribed to
 * them by name. Node-local: not numbered, kept or forwarded. */
#ifndef DLG_PRESENCE_H
#define DLG_PRESENCE_H

#include "server.h"

#define DLG_PRESENCE_WINDOW_MS 500
#define DLG_PRESENCE_MAX_NAMES 100 /* listed per event; the rest are counted */

/* The member bits of dlg_member.presence. */
#define DLG_PRESENCE_JOIN 1u
#define DLG_PRESENCE_LEAVE 2u

/* The bit a system event name stands for, 0 when it is none;
 * DLG_PRESENCE_BAD for another name in the reserved "presence:" space. */
#define DLG_PRESENCE_BAD 4u
unsigned dlg_presence_bit(const char *event);

typedef struct dlg_presence dlg_presence;

/* A presence tracker for s (its timer on s->loop). NULL when out of
 * memory. Freed by dlg_presence_free, after its timer's handle closed
 * (dlg_presence_close). */
dlg_presence *dlg_presence_new(dlg_server *s);

/* c joined (joined != 0) or left room. Borrowed arguments: the name and
 * kind are copied; c->presence_gen is stamped with the current window. */
void dlg_presence_note(dlg_presence *p, const char *room, struct dlg_conn *c, int joined);

/* room is gone: its pending changes are dropped. */
void dlg_presence_room_gone(dlg_presence *p, const char *room);

/* Stops the timer and closes its handle (at server stop). */
void dlg_presence_close(dlg_presence *p);

/* Frees p (NULL is fine); its handle must be closed already. */
void dlg_presence_free(dlg_presence *p);

#endif
