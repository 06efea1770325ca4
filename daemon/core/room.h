/* room.h: rooms, their members and the per-event subscriber index that
 * makes a fan-out cost proportional to its recipients. Single loop thread. */
#ifndef DLG_ROOM_H
#define DLG_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dialogue/v1/protocol.pb-c.h"

struct dlg_conn;

/* A slot's delivery policy: the values of the config's rooms[].delivery[]
 * policy, named here for the core (boot copies the config's int as is). */
enum {
    DLG_DELIVERY_STREAM = DLG_CFG_DELIVERY_STREAM,
    DLG_DELIVERY_LATEST = DLG_CFG_DELIVERY_LATEST,
};

struct dlg_evslot;

/* One of a member's subscriptions: the slot, and where the member sits in
 * the slot's subscriber list (so leaving is O(1), not a scan). */
typedef struct dlg_msub {
    struct dlg_evslot *slot;
    size_t pos;
} dlg_msub;

typedef struct dlg_member {
    struct dlg_conn *conn;
    struct dlg_room *room;
    int all;                      /* subscribed to every event type */
    size_t pos_members;           /* index in room->members.v */
    size_t pos_all;               /* index in room->all_subs.v while all */
    dlg_msub *subs;               /* sorted by slot address: O(log n) lookups */
    size_t n_subs, cap_subs;
    unsigned presence;            /* system events subscribed to by name (proto's
                                     presence.h: 1 presence:join, 2 presence:leave);
                                     never through all */
} dlg_member;

typedef struct dlg_plist {        /* a growable array of members */
    dlg_member **v;
    size_t n, cap;
} dlg_plist;

typedef struct dlg_evslot {       /* subscribers of one event type */
    char *name;
    int delivery;                 /* DLG_DELIVERY_* */
    uint32_t ord;                 /* index in room->slots (creation order) */
    dlg_plist subs;
    uint64_t triggers;            /* events of this name delivered here (metrics) */
    uint64_t deliveries;          /* frames queued for them */
} dlg_evslot;

/* What a room is made from: config file or CreateRoom. Borrowed strings. */
typedef struct dlg_room_spec {
    const char *id;
    const char *name;
    const char *description;
    const char *const *events;    /* NULL/0 = clients may not trigger; {"*"} = any */
    size_t n_events;
    const char *const *default_subs; /* {"*"} = all */
    size_t n_default_subs;
    uint32_t max_size;            /* 0 = unlimited */
    const char *creator;          /* dynamic rooms: the creator's name... */
    int creator_kind;             /* ...and its Dialogue__V1__IdentityKind */
    const char *const *join;      /* roles that may join ("*" = anyone); none = */
    size_t n_join;                /* nobody but a dynamic room's creator */
    const char *const *trigger;   /* roles that may trigger any event */
    size_t n_trigger;
} dlg_room_spec;

typedef struct dlg_room {
    char *id, *name, *description;
    char **events;                /* allowed event names (not "*") */
    size_t n_events;
    int any_event;                /* events: ["*"] */
    char **default_subs;
    size_t n_default_subs;
    int default_all;
    uint32_t max_size;
    uint32_t rate_per_sec;        /* trigger rate per identity (ratelimit.h);
                                     0 = unlimited */
    uint32_t rate_burst;
    int dynamic;                  /* created at run time (deletable) */
    char *creator;                /* name of the creator, dynamic rooms... */
    int creator_kind;             /* ...and its kind (auth.h: dlg_auth_same) */
    /* Access rules (issue: identity and access); NULL lists = nobody. */
    char **join_roles;
    size_t n_join_roles;
    char **trigger_roles;
    size_t n_trigger_roles;
    struct dlg_event_roles {      /* per-event trigger roles, added to the above */
        char *event;
        char **roles;
        size_t n_roles;
    } *trigger_events;
    size_t n_trigger_events;
    dlg_plist members;
    dlg_evslot **slots;           /* one per event type seen or declared, in
                                     creation order; each allocated alone so
                                     its address is a stable key (conflation);
                                     never freed before the room */
    dlg_evslot **by_name;         /* the same slots sorted by name */
    size_t n_slots, cap_slots;
    int default_delivery;         /* DLG_DELIVERY_* of slots made at run time
                                     (a "*" delivery rule) */
    dlg_plist all_subs;           /* members subscribed to every event */
    uint64_t seq;                 /* last sequence number assigned */
    uint64_t fwd_seq;             /* events of this room handed to the other
                                     nodes (the forwarder's publish): they
                                     number them to find what they missed */
    uint64_t triggers;            /* events delivered here, every name (metrics: those of
                                     names without a slot are the rest of the slots' sum) */
    uint64_t deliveries;          /* frames queued for them */
    uint64_t epoch;               /* random; changes when history is lost */
    struct dlg_hroom *hist;       /* kept events (history.h); NULL = none.
                                     Owned by the server's dlg_history */
} dlg_room;

typedef struct dlg_rooms {
    dlg_room **v;                 /* sorted by id for bsearch */
    size_t n, cap;
    /* Triggers and deliveries of the rooms removed so far: the metrics'
     * counters of rooms made at run time never go down. */
    uint64_t gone_triggers, gone_deliveries;
} dlg_rooms;

/* Frees n strings and the array (both may be NULL/0). */
void dlg_strv_free(char **v, size_t n);

/* Creates an empty registry (free with dlg_rooms_free). NULL on ENOMEM. */
dlg_rooms *dlg_rooms_new(void);

/* Frees every room. Members must already be gone (connections closed). */
void dlg_rooms_free(dlg_rooms *rs);

/* Looks a room up by exact id; NULL when there is none. */
dlg_room *dlg_rooms_find(const dlg_rooms *rs, const char *id);

/* Checks a room id or event name: 1..255 bytes of [A-Za-z0-9_.:-]. Returns
 * NULL when valid, else a static description of what is wrong. */
const char *dlg_name_check(const char *name);

/* Adds a room built from spec (strings copied); dynamic = created at run
 * time (spec->creator then names who). Returns 0, DLG_EEXIST, DLG_EINVAL
 * (err says which name is bad) or DLG_ENOMEM; on error nothing is added.
 * *out (may be NULL) gets the room. */
int dlg_rooms_add(dlg_rooms *rs, const dlg_room_spec *spec, int dynamic, dlg_room **out,
                  char *err, size_t errlen);

/* Removes and frees room r. Every member gets Left{reason} queued first. */
void dlg_rooms_remove(dlg_rooms *rs, dlg_room *r, const char *reason);

/* 1 if the room accepts triggers of event name. */
int dlg_room_allows_event(const dlg_room *r, const char *event);

/* The member record of conn in r, or NULL. */
dlg_member *dlg_room_member(const dlg_room *r, const struct dlg_conn *c);

/* Adds conn to r with the room's default subscriptions. DLG_EFULL when
 * max_size is reached, DLG_EEXIST when already a member. */
int dlg_room_join(dlg_room *r, struct dlg_conn *c, dlg_member **out);

/* Removes conn from r (no frame is sent). DLG_ENOTFOUND if not a member. */
int dlg_room_leave(dlg_room *r, struct dlg_conn *c);

/* Subscribes m to the named events (or all). Unknown event names in a
 * room with a fixed list give DLG_ENOTFOUND and *bad names the first.
 * Subscriptions are capped: m may hold at most max_subs named events and
 * the room at most max_room_events distinct names (0 = no cap); past either
 * nothing changes and DLG_EFULL is returned (*bad = the first name that did
 * not fit, *room_full = 1 when the room's cap was the one). All or nothing: on any
 * error m's subscriptions are as before. Cost O(n log n) in the names given
 * plus O(log) per name in the room's and m's sizes. */
int dlg_room_subscribe(dlg_member *m, char *const *events, size_t n, int all, size_t max_subs,
                       size_t max_room_events, const char **bad, int *room_full);

/* How many named events m is subscribed to (0 when it has all). */
size_t dlg_member_subscriptions(const dlg_member *m);

/* Inverse of subscribe. */
int dlg_room_unsubscribe(dlg_member *m, char *const *events, size_t n, int all,
                         const char **bad);

/* Writes the names m is subscribed to: "*" alone for all, else in the
 * order the room first saw them. The array is malloc'd (names borrowed
 * from the room); caller frees the array only. */
int dlg_room_subscriptions(const dlg_member *m, char ***names, size_t *n);

/* Fills j (initialised by the caller) with m's room and subscriptions:
 * the Joined reply of a Join, Subscribe or auto_join. *subs is malloc'd
 * (free it after packing; names borrowed from the room). 0 or DLG_ENOMEM. */
int dlg_room_joined(const dlg_member *m, int history_follows, Dialogue__V1__Joined *j,
                    char ***subs);

/* The subscriber slot for event (NULL when nobody ever subscribed);
 * O(log n) in the room's slots. */
dlg_evslot *dlg_room_slot(const dlg_room *r, const char *event);

/* The slot for event, made (with the room's default delivery) when there
 * is none yet; NULL when out of memory. event must be a valid name. */
dlg_evslot *dlg_room_slot_make(dlg_room *r, const char *event);

/* Drops every membership of conn (on disconnect). */
void dlg_rooms_conn_gone(dlg_rooms *rs, struct dlg_conn *c);

#endif
