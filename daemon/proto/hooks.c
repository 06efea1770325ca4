/* hooks.c: hook tables and the server API built on the daemon's modules. */
#include "presence.h"
#include "hooks.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "dlg_err.h"
#include "trigger.h"
#include "room.h"

void dlg_hooks_client_info(const dlg_conn *c, dlg_client_info *i) {
    i->client_id = c->client_id;
    i->user_id = c->user_id;
    i->roles = (const char *const *)c->roles;
    i->n_roles = c->n_roles;
    i->peer = c->peer;
    i->client_name = c->client_name;
    i->identity_kind = c->id_kind;
}

#define EACH(s, h) for (size_t k_ = 0; k_ < (s)->n_hooks && ((h) = &(s)->hooks[k_]); k_++)

void dlg_hooks_connected(dlg_server *s, const dlg_conn *c) {
    dlg_client_info i;
    dlg_hooks *h;
    dlg_hooks_client_info(c, &i);
    EACH(s, h) if (h->on_connected) h->on_connected(h->ud, s, &i);
}

void dlg_hooks_disconnected(dlg_server *s, const dlg_conn *c, const char *reason) {
    dlg_client_info i;
    dlg_hooks *h;
    dlg_hooks_client_info(c, &i);
    EACH(s, h) if (h->on_disconnected) h->on_disconnected(h->ud, s, &i, reason);
}

int dlg_hooks_before_join(dlg_server *s, const dlg_conn *c, const char *room, char *reason,
                          size_t len) {
    dlg_client_info i;
    dlg_hooks *h;
    dlg_hooks_client_info(c, &i);
    EACH(s, h) {
        if (h->before_join && h->before_join(h->ud, s, &i, room, reason, len) != 0)
            return DLG_EPERM;
    }
    return 0;
}

void dlg_hooks_joined(dlg_server *s, dlg_conn *c, const char *room) {
    dlg_client_info i;
    dlg_hooks *h;
    dlg_hooks_client_info(c, &i);
    EACH(s, h) if (h->on_joined) h->on_joined(h->ud, s, &i, room);
    dlg_presence_note(s->presence, room, c, 1);
}

void dlg_hooks_left(dlg_server *s, dlg_conn *c, const char *room, const char *reason) {
    dlg_client_info i;
    dlg_hooks *h;
    dlg_hooks_client_info(c, &i);
    EACH(s, h) if (h->on_left) h->on_left(h->ud, s, &i, room, reason);
    dlg_presence_note(s->presence, room, c, 0);
}

int dlg_hooks_before_each(dlg_server *s, const dlg_conn *c, dlg_event_info *ev,
                          uint8_t **owned, char *reason, size_t len) {
    dlg_client_info i;
    dlg_hooks *h;
    if (c)
        dlg_hooks_client_info(c, &i);
    EACH(s, h) {
        if (h->before_each == NULL)
            continue;
        uint8_t *nd = NULL;
        size_t nl = 0;
        if (h->before_each(h->ud, s, c ? &i : NULL, ev, &nd, &nl, reason, len) != 0) {
            free(nd);
            return DLG_EPERM;
        }
        if (nd) {
            free(*owned);
            *owned = nd;
            ev->data = nd;
            ev->len = nl;
        }
    }
    return 0;
}

void dlg_hooks_after_each(dlg_server *s, const dlg_event_info *ev, uint64_t seq,
                          uint32_t recipients) {
    dlg_hooks *h;
    EACH(s, h) if (h->after_each) h->after_each(h->ud, s, ev, seq, recipients);
}

void dlg_hooks_room_created(dlg_server *s, const char *room, const char *creator) {
    dlg_hooks *h;
    EACH(s, h) if (h->on_room_created) h->on_room_created(h->ud, s, room, creator);
}

void dlg_hooks_room_deleted(dlg_server *s, const char *room) {
    dlg_hooks *h;
    EACH(s, h) if (h->on_room_deleted) h->on_room_deleted(h->ud, s, room);
    dlg_presence_room_gone(s->presence, room);
}

/* ---- public server API ---------------------------------------------- */

int dlg_server_add_hooks(dlg_server *s, const dlg_hooks *h) {
    if (s->n_hooks == sizeof(s->hooks) / sizeof(s->hooks[0]))
        return DLG_EFULL;
    s->hooks[s->n_hooks++] = *h;
    return 0;
}

int dlg_server_trigger(dlg_server *s, const char *room, const char *event,
                       const uint8_t *data, size_t len, uint64_t *seq,
                       uint32_t *recipients, char *err, size_t errlen) {
    dlg_room *r = dlg_rooms_find(s->rooms, room);
    if (r == NULL) {
        snprintf(err, errlen, "room %s not found", room);
        return DLG_ENOTFOUND;
    }
    dlg_publish_result res;
    int rc = dlg_trigger(s, r, NULL, event, data, len, dlg_now_ns(), &res,
                                err, errlen);
    if (rc != 0)
        return rc;
    if (seq)
        *seq = res.seq;
    if (recipients)
        *recipients = res.recipients;
    return 0;
}

void dlg_server_each_room(dlg_server *s,
                          int (*fn)(void *ud, const char *room, size_t members), void *ud) {
    for (size_t i = 0; i < s->rooms->n; i++)
        if (fn(ud, s->rooms->v[i]->id, s->rooms->v[i]->members.n) != 0)
            return;
}

int dlg_server_each_member(dlg_server *s, const char *room,
                           int (*fn)(void *ud, const dlg_client_info *c), void *ud) {
    dlg_room *r = dlg_rooms_find(s->rooms, room);
    if (r == NULL)
        return DLG_ENOTFOUND;
    for (size_t i = 0; i < r->members.n; i++) {
        dlg_client_info info;
        dlg_hooks_client_info(r->members.v[i]->conn, &info);
        if (fn(ud, &info) != 0)
            break;
    }
    return 0;
}
