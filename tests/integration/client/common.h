/* common.h: the config and small recorders shared by the client's
 * integration suites. */
#ifndef DLG_CLIENT_ITEST_COMMON_H
#define DLG_CLIENT_ITEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dialogue/client.h"
#include "harness.h"

/* lobby: open to all; closed: nobody may join; dynamic rooms by anyone. */
#define DLGT_CONFIG                                                       \
    "listen:\n"                                                           \
    "  - address: 127.0.0.1:0\n"                                          \
    "    cert: {certs}/server.crt\n"                                      \
    "    key: {certs}/server.key\n"                                       \
    "schemas: [{share}/dashboard.pb]\n"                                   \
    "auth:\n"                                                             \
    "  anonymous: true\n"                                                 \
    "room_admin:\n"                                                       \
    "  create: [\"*\"]\n"                                                 \
    "  delete: [\"*\"]\n"                                                 \
    "rooms:\n"                                                            \
    "  - id: lobby\n"                                                     \
    "    name: Lobby\n"                                                   \
    "    description: where everyone meets\n"                             \
    "    events: [metrics:update, alert:triggered]\n"                     \
    "    default_subscriptions: [metrics:update]\n"                       \
    "    join: [\"*\"]\n"                                                 \
    "    trigger: [\"*\"]\n"                                              \
    "  - id: closed\n"                                                    \
    "    events: [metrics:update]\n"

/* One request's outcome. */
typedef struct dlgt_reply {
    int done;
    int status;
    char msg[512];
    uint64_t u64;           /* ack seq, ping rtt */
    uint32_t recipients;
    char subs[512];         /* joined: subscriptions joined by ',' */
    int n_rooms;
    char rooms[512];        /* list_rooms: ids joined by ',' */
    int n_sets, n_events;
    char events[512];       /* get_schema: name=type joined by ',' */
} dlgt_reply;

static inline void dlgt_join_strs(char *out, size_t cap, const char *const *v, size_t n) {
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "," : "", v[i]);
    }
}

/* A reply callback for every kind; ud is a dlgt_reply, kind told by kind. */
enum { DLGT_R_PLAIN, DLGT_R_JOINED, DLGT_R_ACK, DLGT_R_ROOMS, DLGT_R_SCHEMA, DLGT_R_PING };

typedef struct dlgt_call {
    dlgt_reply r;
    int kind;
} dlgt_call;

static inline void dlgt_on_reply(dlg_client *c, void *ud, int status, const char *message,
                                 const void *reply) {
    dlgt_call *k = ud;
    (void)c;
    k->r.status = status;
    snprintf(k->r.msg, sizeof(k->r.msg), "%s", message);
    if (status == 0 && reply != NULL) {
        switch (k->kind) {
        case DLGT_R_JOINED: {
            const dlg_joined *j = reply;
            dlgt_join_strs(k->r.subs, sizeof(k->r.subs), j->subscriptions, j->n_subscriptions);
            k->r.u64 = j->seq;
            break;
        }
        case DLGT_R_ACK:
            k->r.u64 = ((const dlg_ack *)reply)->seq;
            k->r.recipients = ((const dlg_ack *)reply)->recipients;
            break;
        case DLGT_R_ROOMS: {
            const dlg_room_list *l = reply;
            k->r.n_rooms = (int)l->n_rooms;
            k->r.rooms[0] = 0;
            for (size_t i = 0; i < l->n_rooms; i++) {
                size_t n = strlen(k->r.rooms);
                snprintf(k->r.rooms + n, sizeof(k->r.rooms) - n, "%s%s(%s;%zu)", i ? "," : "",
                         l->rooms[i].id, l->rooms[i].name, l->rooms[i].n_events);
            }
            break;
        }
        case DLGT_R_SCHEMA: {
            const dlg_schema_info *s = reply;
            k->r.n_sets = (int)s->n_sets;
            k->r.n_events = (int)s->n_events;
            k->r.events[0] = 0;
            for (size_t i = 0; i < s->n_events; i++) {
                size_t n = strlen(k->r.events);
                snprintf(k->r.events + n, sizeof(k->r.events) - n, "%s%s=%s", i ? "," : "",
                         s->events[i].name, s->events[i].message_type);
            }
            break;
        }
        case DLGT_R_PING:
            k->r.u64 = *(const uint64_t *)reply;
            break;
        }
    }
    k->r.done = 1;
}

/* State recorder: the sequence of states as letters (i c C d X). */
typedef struct dlgt_states {
    char seq[64];
    int n;
    int connected;      /* times CONNECTED was reported */
    int disconnected;
    int closed;
    char reason[512];
} dlgt_states;

static inline void dlgt_on_state(dlg_client *c, void *ud, dlg_client_state_t st,
                                 const char *reason) {
    static const char letters[] = "icCdX";
    dlgt_states *s = ud;
    (void)c;
    if (s->n < (int)sizeof(s->seq) - 1)
        s->seq[s->n++] = letters[st];
    if (st == DLG_STATE_CONNECTED)
        s->connected++;
    if (st == DLG_STATE_DISCONNECTED) {
        s->disconnected++;
        snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
    }
    if (st == DLG_STATE_CLOSED)
        s->closed++;
}

#endif
