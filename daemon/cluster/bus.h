/* bus.h: the seam between room routing and the other nodes of a cluster.
 * Fan-out delivers to local members, then hands the encoded Event to the
 * bus; the bus carries it to other nodes, which deliver it to theirs. */
#ifndef DLG_BUS_H
#define DLG_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_buf.h"
#include "dlg_vec.h"
#include "seam.h"

struct dlg_server;
struct dlg_room;
struct dlg_conn;
struct dlg_config_cluster;

typedef struct dlg_bus dlg_bus;

/* What a bus has done since it started (read on the loop thread). */
typedef struct dlg_bus_stats {
    uint64_t published;       /* events handed to other nodes */
    uint64_t publish_failed;  /* events other nodes will not get (logged) */
    uint64_t received;        /* events from other nodes */
    uint64_t relayed;         /* ...of those, delivered here (a room with
                                 local members or history) */
    uint64_t deliveries;      /* event frames queued to local members by relay */
    uint64_t dropped;         /* received but not delivered: malformed, unknown
                                 room or event, own node id, inbox full */
    uint64_t duplicates;      /* cluster log: an event already delivered
                                 (seq not above the room's), not again */
    uint64_t log_failed;      /* cluster log: triggers the log refused or did
                                 not answer (the sender got an Error) */
    uint64_t gaps;            /* without the log: times a room may have
                                 missed events (link lost, events dropped);
                                 its members got a Gap frame each time */
    uint32_t interests;       /* rooms this node receives events for now */
} dlg_bus_stats;

/* An implementation. Every function runs on the server's loop thread. */
typedef struct dlg_bus_ops {
    const char *name;                  /* "local", "nats" (log lines) */
    int (*start)(dlg_bus *b);          /* may be NULL */
    void (*publish)(dlg_bus *b, const struct dlg_room *r, const char *event, dlg_buf *frame);
    /* on = 1: start receiving room's events, *handle may be set (0, or a
     * DLG_E* code, logged: the next membership change retries); on = 0:
     * stop, and release *handle. */
    int (*interest)(dlg_bus *b, const char *room, int on, void **handle);
    /* Cluster log (may be NULL: none). log_room: 1 when room's events go
     * through the log. log_publish: hands frame (seq 0) to room's log; the
     * answer comes later through dlg__bus_ack_done(ticket). Returns 0 or a
     * DLG_E* code with err set (then no answer comes). */
    int (*log_room)(const dlg_bus *b, const char *room);
    int (*log_publish)(dlg_bus *b, const struct dlg_room *r, const char *event,
                       dlg_buf *frame, uint64_t ticket, char *err, size_t errlen);
    void (*stop)(dlg_bus *b);          /* may be NULL */
    void (*free)(dlg_bus *b);
} dlg_bus_ops;

/* A room this node receives events for. */
/* Where another node's events of a room stand, as this node received
 * them: its run (random per start) and the last of its numbers (the
 * room's fwd_seq there). A jump is events lost on the way. */
typedef struct dlg_bus_origin {
    char node[65];                     /* cluster.node_id: at most 64 bytes */
    uint64_t run;
    uint64_t last;
} dlg_bus_origin;

/* The most nodes whose numbering one room follows (more are not checked). */
#define DLG_BUS_ORIGINS_MAX 64

typedef struct dlg_bus_room {
    char *id;
    void *handle;                      /* the implementation's (a NATS
                                          subscription) */
    dlg_bus_origin *origins;           /* n_origins, for the gap check */
    size_t n_origins, cap_origins;
} dlg_bus_room;

/* Notes event n of run `run` from node `origin` in room br (the room this
 * node has interest in): returns how many events of that node were
 * skipped since the last one noted (0 when none, or when the node is new
 * or started again). DLG_ENOMEM leaves the node untracked (returns 0). */
uint64_t dlg__bus_origin_note(dlg_bus_room *br, const char *origin, uint64_t run, uint64_t n);

/* Forgets where every node stands in every room (after this node's own
 * link was down: that gap is reported already). */
void dlg__bus_origins_reset(dlg_bus *b);

/* A trigger handed to the cluster log, waiting for its answer. */
typedef struct dlg_bus_pending {
    struct dlg_conn *c;                /* who gets the Ack; NULL = nobody
                                          (the server's own events, or the
                                          sender left) */
    uint64_t request_id;
    int done;                          /* answered out of order */
} dlg_bus_pending;

/* A recovery Join parked until this node's log reaches the client's
 * position (dlg_bus_recover_wait). */
typedef struct dlg_bus_waiter {
    struct dlg_conn *c;                /* NULL: the connection went away */
    uint64_t request_id;
    char *room;
    uint64_t epoch, since_seq;
    uint64_t deadline_ms;              /* uv_now of the loop */
} dlg_bus_waiter;

/* Re-runs a parked Join (dispatch's own Join handler). */
typedef void (*dlg_bus_join_fn)(struct dlg_conn *c, uint64_t request_id,
                                Dialogue__V1__Join *j);

/* The part every implementation starts with. */
struct dlg_bus {
    const dlg_bus_ops *ops;
    struct dlg_server *srv;            /* borrowed */
    dlg_bus_stats stats;
    dlg_bus_room *rooms;               /* interest on, sorted by id */
    size_t n_rooms, cap_rooms;
    int started, stopped;
    /* The implementation follows every configured room for the whole run
     * (the cluster log: each node keeps the whole history), so membership
     * changes take no interest. */
    int follow_all;
    /* Triggers in the log without an answer (dlg_bus_pending): tickets
     * pend_first .. pend_first + pend.n - 1, oldest first. */
    dlg_fifo pend;
    uint64_t pend_first;
    /* Recovery Joins waiting for the log, oldest (earliest deadline) first;
     * the timer answers them (resumed or refused) on a later loop turn. */
    dlg_bus_waiter *waiters;
    size_t n_waiters, cap_waiters;
    dlg_bus_join_fn resume;
    uv_timer_t wait_timer;
    int wait_timer_open;
};

/* ---- the seam: what the daemon calls ---------------------------------- */

/* A NULL bus everywhere below is a single node: nothing leaves the process
 * and nothing arrives, so a daemon without `cluster` pays nothing. */

/* Creates the bus configured by cc (a NATS connection, not yet opened) for
 * srv. Checks what can be checked before connecting: credentials and TLS
 * files are loaded here. Returns 0, DLG_ECONFIG (err names the setting at
 * fault), DLG_EINTERNAL (this build has no NATS support) or DLG_ENOMEM;
 * *out is owned by the caller (dlg_bus_free). */
int dlg_bus_cluster_new(struct dlg_server *srv, const struct dlg_config_cluster *cc,
                        dlg_bus **out, char *err, size_t errlen);

/* Opens the bus on srv->loop (NATS: connects, blocking for at most a few
 * seconds per server) and takes interest in every room that already has
 * local members or keeps history. Returns 0 or a DLG_E* code, logged with
 * what failed (the servers tried). On error the bus is left stopped and
 * must still be freed. */
int dlg_bus_start(dlg_bus *b);

/* Hands an event just delivered locally to the other nodes: frame is the
 * fan-out frame (header + ServerFrame{event}) of an event of room r; the
 * bus takes what references it needs. Never fails the caller: an event the
 * other nodes cannot get is counted and logged (rate limited). */
void dlg_bus_publish(dlg_bus *b, const struct dlg_room *r, const char *event, dlg_buf *frame);

/* 1 when events of room r are numbered by the cluster log (a bus with a
 * `log`, and r one of the configured rooms), so that dlg_fanout_publish
 * hands them to dlg_bus_log_publish instead of delivering them itself. */
int dlg_bus_log_room(const dlg_bus *b, const struct dlg_room *r);

/* Hands an event of room r (frame: the fan-out frame with seq 0) to the
 * cluster log; every node, this one too, delivers it when the log sends it
 * back numbered. *ticket identifies the trigger for dlg_bus_defer_ack.
 * Returns 0, or DLG_EIO / DLG_ENOMEM with err saying why (not connected,
 * too many triggers waiting): the event is then not published at all. */
int dlg_bus_log_publish(dlg_bus *b, const struct dlg_room *r, const char *event,
                        dlg_buf *frame, uint64_t *ticket, char *err, size_t errlen);

/* The Ack of trigger `ticket` goes to c for request_id once the log has
 * answered: Ack{seq = the log's seq} or Error UNAVAILABLE. Returns 0, or
 * DLG_ENOTFOUND when the ticket is no longer waiting. */
int dlg_bus_defer_ack(dlg_bus *b, struct dlg_conn *c, uint64_t request_id, uint64_t ticket);

/* How long a recovery Join waits for a node's log to reach the client's
 * position before it is refused with UNAVAILABLE, and how many may wait. */
#define DLG_BUS_RECOVER_WAIT_MS 5000
#define DLG_BUS_RECOVER_WAITERS 4096

/* A Join{recover} of c for room r, with the client ahead of this node:
 * the same epoch (the cluster log's numbering, shared by every node) and a
 * since_seq above the last seq this node has delivered in r. That client
 * saw events on another node which this one has not received yet, not
 * events that were lost: the Join is parked and answered by calling
 * resume(c, request_id, join) once r's seq reaches since_seq, or with
 * Error{UNAVAILABLE} after DLG_BUS_RECOVER_WAIT_MS (the client tries
 * another node), always from a later loop turn. Returns 1 when parked (or
 * refused at once: too many waiting, out of memory), 0 when the Join is
 * for the caller to answer now (not a log room, not ahead, NULL b). */
int dlg_bus_recover_wait(dlg_bus *b, struct dlg_conn *c, uint64_t request_id,
                         const struct dlg_room *r, const Dialogue__V1__Join *j,
                         dlg_bus_join_fn resume);

/* c is closing: its waiting Acks and Joins have nowhere to go. NULL b is
 * ignored. */
void dlg_bus_conn_gone(dlg_bus *b, struct dlg_conn *c);

/* The core's forwarder (seam.h) for srv: each call goes to srv->bus as it
 * is then (NULL: a single node). */
void dlg_bus_forwarder(struct dlg_server *srv, dlg_forwarder *out);

/* Re-reads whether this node wants room r's events from other nodes (it
 * does while r has local members or keeps history) and subscribes or
 * unsubscribes when that changed. Called by room.c on the first join and
 * the last leave; cheap when nothing changed. */
void dlg_bus_room_changed(dlg_bus *b, const struct dlg_room *r);

/* Closes the bus: no more publishing or receiving; handles are closed on
 * the loop (it must run once more). Later calls of the seam are ignored.
 * Safe to call twice or when not started. */
void dlg_bus_stop(dlg_bus *b);

/* Frees b after its loop has returned. NULL is ignored. */
void dlg_bus_free(dlg_bus *b);

/* Writes one log line with b's counters (on stop, and for tests). */
void dlg_bus_log_stats(const dlg_bus *b);

/* ---- the in-process implementation ------------------------------------ */

/* A hub joins the buses of several servers running on one loop thread in
 * one process (tests, embedders running two servers): what one publishes,
 * every other one with interest in the room gets, synchronously, through
 * the same dlg_bus_relay path a NATS message takes. A hub of one server is
 * a single node. The hub must outlive its buses. */
typedef struct dlg_bus_hub dlg_bus_hub;

/* NULL on ENOMEM. */
dlg_bus_hub *dlg_bus_hub_new(void);

/* Frees the hub; every bus on it must be freed first. NULL is ignored. */
void dlg_bus_hub_free(dlg_bus_hub *h);

/* Creates srv's bus on hub h. Returns 0 or DLG_ENOMEM; *out is owned by the
 * caller (dlg_bus_free), who sets srv->bus = *out. */
int dlg_bus_local_new(struct dlg_server *srv, dlg_bus_hub *h, dlg_bus **out);

/* ---- for implementations ---------------------------------------------- */

/* The NATS subject of a room: "dialogue.room." + the id with '.' written
 * "%2E" and ':' written "%3A". Room ids never hold '%', so the mapping is
 * one-to-one, and one id is always exactly one subject token (a '.' would
 * split it, and "a..b" is not a valid subject). Returns the length, or
 * DLG_ETOOBIG when out (outlen bytes, NUL included) is too small. */
int dlg_bus_subject(const char *room, char *out, size_t outlen);

/* The inverse: the room id of a subject made by dlg_bus_subject. Returns
 * the length, DLG_EINVAL for any other subject (wrong prefix, a bad
 * escape, a character outside room ids) or DLG_ETOOBIG. */
int dlg_bus_subject_room(const char *subject, char *out, size_t outlen);

/* Delivers one event that another node accepted: frame[0..len) is the
 * origin's fan-out frame, room the room named by its subject (NULL = do
 * not check). The event gets this node's next seq and epoch for its room
 * (each node numbers what it delivers, so a member's (epoch, seq) stays one
 * gap-free lineage), is queued to the local subscribers and kept in the
 * room's history. Returns 0 (*recipients set; 0 when the room has no
 * interest here), DLG_EPROTO (not an Event frame, or its room differs from
 * the subject's), DLG_ENOTFOUND (no such room or event here: the nodes'
 * configs differ) or DLG_ENOMEM; err names the room and event. Counts
 * into b->stats when b is not NULL. */
int dlg_bus_relay(struct dlg_server *srv, dlg_bus *b, const char *room, const uint8_t *frame,
                  size_t len, uint32_t *recipients, char *err, size_t errlen);

/* dlg_bus_relay for an event the cluster log numbered: seq and epoch are
 * the log's (the same on every node). An event at or below the room's seq
 * was delivered already and is counted as a duplicate (returns 0, nothing
 * delivered). Used by the log's implementation only. */
int dlg__bus_relay_at(struct dlg_server *srv, dlg_bus *b, const char *room, const uint8_t *frame,
                      size_t len, uint64_t seq, uint64_t epoch, uint32_t *recipients, char *err,
                      size_t errlen);

/* The log answered trigger `ticket`: seq on success, else err (not NULL)
 * says why. Sends the deferred Ack or Error. Loop thread. */
void dlg__bus_ack_done(dlg_bus *b, uint64_t ticket, uint64_t seq, const char *err);

/* Without the cluster log: this node may have missed events of other
 * nodes in room (NULL = every room it has interest in), for the reason
 * why (its NATS link was lost, their events were dropped here). Each such
 * room notes the gap in its history (a recovery from before it is
 * incomplete) and its members get one Gap frame; logged once. Loop
 * thread. */
void dlg__bus_gap(dlg_bus *b, const char *room, const char *why);

/* b's entry for room, or NULL when this node has no interest in it. The
 * pointer is valid until the next interest change. */
dlg_bus_room *dlg__bus_find(const dlg_bus *b, const char *room);

/* The NATS implementation (bus_nats.c). Same contract as
 * dlg_bus_cluster_new. */
int dlg__bus_nats_new(struct dlg_server *srv, const struct dlg_config_cluster *cc,
                      dlg_bus **out, char *err, size_t errlen);

#endif
