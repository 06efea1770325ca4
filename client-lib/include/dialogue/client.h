/* dialogue/client.h: libdialogue-client, the C client of the dialogue event
 * server. One TLS connection per handle, requests with completion callbacks,
 * event delivery (history batches included, each event once), reconnect with
 * state restore and recovery of missed events (to the same server, or the
 * next of a list of servers), and a blocking convenience API.
 *
 * Two ways to run a client:
 *  - loop mode (dlg_client_new): the client lives on a uv_loop_t you run.
 *    Every function must then be called on that loop's thread, and every
 *    callback runs there. As in any libuv program, ignore or block SIGPIPE
 *    in that thread: a write to a socket the server closed raises it.
 *  - thread mode (dlg_client_new_threaded): the library runs its own loop on
 *    a background thread (the "library thread"). Functions may be called from
 *    any thread; calls are queued to the library thread in call order, and
 *    every callback runs on the library thread (which blocks SIGPIPE).
 *
 * Callbacks are never called from inside the function call that caused them:
 * a completion, a state change or an event always comes from a later loop
 * turn. Strings and arrays handed to callbacks are valid during the callback
 * only; copy what you keep.
 *
 * Errors: functions return 0 or a negative DLG_E* code (dlg_errno.h);
 * dlg_client_strerror() gives the text.
 *
 * ABI: libdialogue-client.so.2 exports exactly the functions declared in
 * this header, each at symbol version DIALOGUE_CLIENT_2; every type a
 * program allocates itself is a plain view (dlg_event, dlg_room_spec, ...),
 * options and handles are opaque. */
#ifndef DIALOGUE_CLIENT_H
#define DIALOGUE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dlg_errno.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API; the library is built with -fvisibility=hidden. */
#define DLG_EXPORT __attribute__((visibility("default")))

/* The wire protocol version this library speaks (Hello.protocol_version). */
#define DLG_CLIENT_PROTOCOL_VERSION 1

struct ProtobufCMessage;

/* Opaque client handle. */
typedef struct dlg_client dlg_client;

/* ---- options ------------------------------------------------------------ */

/* Connection options: an opaque object (its layout is the library's, so it
 * can grow without breaking programs built against an older release).
 * Create it with dlg_client_opts_new (every option at its default, shown in
 * brackets below), change what you need with the dlg_client_opts_set_*
 * functions, hand it to dlg_client_new* or dlg_sync_connect, free it with
 * dlg_client_opts_free. dlg_client_new* copies every option, so the object
 * may be freed, changed or reused as soon as it returns.
 *
 * Setters copy strings; NULL (or "") puts a string option back to its
 * default. They do not validate: dlg_client_opts_check and dlg_client_new*
 * do, naming the option at fault. Each setter returns 0, DLG_EINVAL when o
 * is NULL, or DLG_ENOMEM (the option is then unchanged). Getters take a
 * non-NULL o and return the option as set (a string option set to "" reads
 * back as NULL); a string stays valid until that option is set again or o
 * is freed. An object is not thread-safe: set it up on one thread. */
typedef struct dlg_client_opts dlg_client_opts;

/* Most entries in the servers option. */
#define DLG_CLIENT_MAX_SERVERS 16

/* A new options object with the defaults (host NULL, port 0, servers NULL).
 * 0 and the object in *out, or DLG_EINVAL (out NULL) or DLG_ENOMEM. */
DLG_EXPORT int dlg_client_opts_new(dlg_client_opts **out);

/* Releases o and its strings (the token is wiped first). NULL is ignored. */
DLG_EXPORT void dlg_client_opts_free(dlg_client_opts *o);

/* Server host name or IP literal (required unless servers is set). It is
 * also the name the server certificate must match: a DNS SAN for a name,
 * an IP SAN for an IP literal. */
DLG_EXPORT int dlg_client_opts_set_host(dlg_client_opts *o, const char *host);
DLG_EXPORT const char *dlg_client_opts_get_host(const dlg_client_opts *o);

/* Server TCP port (1..65535; required unless servers is set; 0 = unset). */
DLG_EXPORT int dlg_client_opts_set_port(dlg_client_opts *o, unsigned port);
DLG_EXPORT unsigned dlg_client_opts_get_port(const dlg_client_opts *o);

/* A list of servers, in place of host and port [NULL]: comma-separated
 * "HOST:PORT" entries, at most DLG_CLIENT_MAX_SERVERS, IPv6 literals in
 * brackets ("[::1]:3000"), blanks around an entry ignored, e.g.
 * "node1.example:3000, node2.example:3000". NULL or "" = use host and
 * port; when set, host must be NULL and port 0. Each HOST is the name
 * that server's certificate must match, as host above. Every entry is
 * validated; an error names it, counting from 1 ("servers: entry 2
 * \"foo\" is not HOST:PORT").
 *
 * The first attempt goes to the first entry; every later attempt (after
 * a failed attempt or a lost connection) to the next one, round robin.
 * Delays: after losing a connection that was up (Welcome received) for
 * at least backoff_min_ms, the attempt on the next server starts at
 * once; otherwise, and after every failed attempt, the usual backoff
 * applies (doubling per failed attempt since the last Welcome), so a
 * cluster that is down is not hammered. With reconnect off,
 * dlg_client_connect makes one pass: each entry is tried at most once,
 * and a lost connection is not retried. dlg_client_server() tells which
 * entry the client is on. */
DLG_EXPORT int dlg_client_opts_set_servers(dlg_client_opts *o, const char *servers);
DLG_EXPORT const char *dlg_client_opts_get_servers(const dlg_client_opts *o);

/* PEM file of the CA(s) that sign the server certificate; NULL = the
 * system trust store [NULL]. Verification is never skipped. */
DLG_EXPORT int dlg_client_opts_set_ca_file(dlg_client_opts *o, const char *path);
DLG_EXPORT const char *dlg_client_opts_get_ca_file(const dlg_client_opts *o);

/* Client certificate chain and key (PEM) for mutual TLS; both or neither
 * [NULL]. */
DLG_EXPORT int dlg_client_opts_set_cert_file(dlg_client_opts *o, const char *path);
DLG_EXPORT const char *dlg_client_opts_get_cert_file(const dlg_client_opts *o);
DLG_EXPORT int dlg_client_opts_set_key_file(dlg_client_opts *o, const char *path);
DLG_EXPORT const char *dlg_client_opts_get_key_file(const dlg_client_opts *o);

/* JWT sent in Hello; NULL or "" = anonymous [NULL]. Never logged; wiped
 * from memory when replaced or freed. */
DLG_EXPORT int dlg_client_opts_set_token(dlg_client_opts *o, const char *token);
DLG_EXPORT const char *dlg_client_opts_get_token(const dlg_client_opts *o);

/* Free text shown in server logs; NULL = "libdialogue-client" [NULL]. */
DLG_EXPORT int dlg_client_opts_set_client_name(dlg_client_opts *o, const char *name);
DLG_EXPORT const char *dlg_client_opts_get_client_name(const dlg_client_opts *o);

/* Reconnect after a lost connection or failed attempt [1] (with a list of
 * servers, see servers above for what 0 means). A Hello refused with
 * UNAUTHENTICATED, PERMISSION_DENIED or FAILED_PRECONDITION stops
 * reconnecting whatever this says: retrying cannot help. */
DLG_EXPORT int dlg_client_opts_set_reconnect(dlg_client_opts *o, int on);
DLG_EXPORT int dlg_client_opts_get_reconnect(const dlg_client_opts *o);

/* Reconnect delay: backoff_min_ms doubled per failed attempt up to
 * backoff_max_ms [100, 30000], then reduced by a random fraction of up to
 * backoff_jitter (0..1) [0.2] so many clients do not retry in step. */
DLG_EXPORT int dlg_client_opts_set_backoff_min_ms(dlg_client_opts *o, uint32_t ms);
DLG_EXPORT uint32_t dlg_client_opts_get_backoff_min_ms(const dlg_client_opts *o);
DLG_EXPORT int dlg_client_opts_set_backoff_max_ms(dlg_client_opts *o, uint32_t ms);
DLG_EXPORT uint32_t dlg_client_opts_get_backoff_max_ms(const dlg_client_opts *o);
DLG_EXPORT int dlg_client_opts_set_backoff_jitter(dlg_client_opts *o, double jitter);
DLG_EXPORT double dlg_client_opts_get_backoff_jitter(const dlg_client_opts *o);

/* Limit for one connection attempt: resolve, TCP connect, TLS handshake
 * and Welcome [10000]. */
DLG_EXPORT int dlg_client_opts_set_connect_timeout_ms(dlg_client_opts *o, uint32_t ms);
DLG_EXPORT uint32_t dlg_client_opts_get_connect_timeout_ms(const dlg_client_opts *o);

/* Limit for a request, from the call to its reply, time spent queued
 * included [10000]. */
DLG_EXPORT int dlg_client_opts_set_request_timeout_ms(dlg_client_opts *o, uint32_t ms);
DLG_EXPORT uint32_t dlg_client_opts_get_request_timeout_ms(const dlg_client_opts *o);

/* Largest frame accepted from the server, at least 64 [1 MiB]. A bigger one
 * closes the connection (the disconnect reason says so). */
DLG_EXPORT int dlg_client_opts_set_max_frame(dlg_client_opts *o, uint32_t bytes);
DLG_EXPORT uint32_t dlg_client_opts_get_max_frame(const dlg_client_opts *o);

/* Requests that may wait while the client is disconnected (between
 * attempts, or before dlg_client_connect) and are sent after the next
 * Welcome [0]. With 0 such requests fail at once with DLG_ECLOSED.
 * Requests made during a connection attempt always wait for it; if it
 * fails they complete with DLG_ECLOSED unless they fit in this queue. */
DLG_EXPORT int dlg_client_opts_set_offline_queue(dlg_client_opts *o, uint32_t n);
DLG_EXPORT uint32_t dlg_client_opts_get_offline_queue(const dlg_client_opts *o);

/* Cap on requests not yet answered (queued or in flight) [4096]. Over it
 * a request fails with DLG_EFULL. */
DLG_EXPORT int dlg_client_opts_set_max_pending(dlg_client_opts *o, uint32_t n);
DLG_EXPORT uint32_t dlg_client_opts_get_max_pending(const dlg_client_opts *o);

/* Library diagnostics to stderr: -1 = none [-1], 0 = errors, 1 = warnings
 * too, 2 = info too, 3 = debug too. */
DLG_EXPORT int dlg_client_opts_set_log_level(dlg_client_opts *o, int level);
DLG_EXPORT int dlg_client_opts_get_log_level(const dlg_client_opts *o);

/* Checks o as dlg_client_new would, loading the CA, certificate and key
 * files. Returns 0 or DLG_EINVAL/DLG_ETLS/DLG_ENOMEM with a message naming
 * the offending option, servers entry or file in err (may be NULL). */
DLG_EXPORT int dlg_client_opts_check(const dlg_client_opts *o, char *err,
                                     size_t errlen);

/* ---- lifecycle ---------------------------------------------------------- */

/* Connection state, reported by the state callback and dlg_client_state(). */
typedef enum dlg_client_state_t {
    DLG_STATE_IDLE = 0,      /* created, dlg_client_connect not called yet */
    DLG_STATE_CONNECTING,    /* an attempt is in progress */
    DLG_STATE_CONNECTED,     /* Welcome received; requests flow */
    DLG_STATE_DISCONNECTED,  /* lost or failed; a retry may be scheduled */
    DLG_STATE_CLOSED         /* dlg_client_close called; final */
} dlg_client_state_t;

/* Creates a loop-mode client on loop (which the caller runs and keeps alive
 * until the client is freed and the loop has run once more). Nothing is
 * sent before dlg_client_connect. Returns 0 and the handle in *out, or
 * DLG_EINVAL/DLG_ETLS/DLG_ENOMEM (use dlg_client_opts_check for the text);
 * on error *out is untouched. */
DLG_EXPORT int dlg_client_new(uv_loop_t *loop, const dlg_client_opts *opts,
                              dlg_client **out);

/* Creates a thread-mode client: starts the library thread with a private
 * loop. Errors as dlg_client_new (plus DLG_EINTERNAL if the thread cannot
 * be started). */
DLG_EXPORT int dlg_client_new_threaded(const dlg_client_opts *opts,
                                       dlg_client **out);

/* Starts connecting (asynchronously; watch the state callback). Valid in
 * IDLE and DISCONNECTED state; in DISCONNECTED it cancels a scheduled retry
 * and tries at once (with a list of servers, the next one). Returns 0,
 * DLG_ESTATE when connecting, connected or closed (thread mode: the state
 * seen by the calling thread). */
DLG_EXPORT int dlg_client_connect(dlg_client *c);

/* Called once the client is fully closed. */
typedef void (*dlg_close_cb)(dlg_client *c, void *ud);

/* Closes the connection for good: no more reconnects, requests not yet
 * answered complete with DLG_ECLOSED, then the state callback reports
 * CLOSED, then cb (may be NULL) runs. The handle stays allocated until
 * dlg_client_free. Returns 0 or DLG_ESTATE when already closing. */
DLG_EXPORT int dlg_client_close(dlg_client *c, dlg_close_cb cb, void *ud);

/* Releases the client. No callback of any kind is called once free has
 * started; requests not yet answered are dropped silently.
 *  - Never call it from inside one of this client's callbacks (the close
 *    callback included): call it after uv_run returns, from another handle's
 *    callback, or (thread mode) from any thread but the library thread.
 *  - Loop mode: the memory is released from libuv close callbacks, so run
 *    the loop again afterwards (uv_run returns once it is done).
 *  - Thread mode: stops and joins the library thread before returning.
 * NULL is ignored. */
DLG_EXPORT void dlg_client_free(dlg_client *c);

/* Current state. Any thread; in thread mode the value may be stale by the
 * time it is used. */
DLG_EXPORT dlg_client_state_t dlg_client_state(const dlg_client *c);

/* Name of a state ("connected"); static storage. */
DLG_EXPORT const char *dlg_client_state_name(dlg_client_state_t st);

/* Room for any server name dlg_client_server writes, NUL included. */
#define DLG_CLIENT_SERVER_MAX 264

/* Copies into buf (len bytes, NUL-terminated) the "HOST:PORT" of the server
 * of the current or last connection attempt ("[::1]:3000" for IPv6): the
 * server the client is connected to in CONNECTED state, the one it is
 * trying from the CONNECTING state callback on, the one it lost or failed
 * in DISCONNECTED; before the first attempt, the first entry. It is the
 * entry as configured (host and port, or the servers entry without its
 * blanks), not the address it resolved to.
 * Any thread, any time before dlg_client_free, also inside callbacks; a
 * copy, because in thread mode the library thread may move on to another
 * server at any moment (the value may then be stale by the time it is
 * used; inside the state callback it matches the state reported).
 * Returns 0; DLG_EINVAL when c or buf is NULL or len is 0; DLG_ETOOBIG when
 * the name did not fit (buf then holds as much as fits, NUL-terminated).
 * A buffer of DLG_CLIENT_SERVER_MAX bytes always fits. */
DLG_EXPORT int dlg_client_server(const dlg_client *c, char *buf, size_t len);

/* Whether the server joined this client to room by itself when the current
 * connection began (its auto_join rules: the rooms of Welcome.auto_joined).
 * Such a room is a membership already, with its default subscriptions and,
 * if the room syncs on join, its kept events delivered to the event
 * callbacks like any Join's; a Join for it would be refused with
 * ALREADY_EXISTS, so join only where this says 0. Returns 1 or 0 (0 too
 * when not CONNECTED, or once the room was left), DLG_EINVAL when c or room
 * is NULL.
 * Loop thread only: in loop mode call it on the loop's thread (from the
 * CONNECTED state callback on, it speaks of that connection); in thread
 * mode only inside one of this client's callbacks. */
DLG_EXPORT int dlg_client_auto_joined(const dlg_client *c, const char *room);

/* ---- callbacks ---------------------------------------------------------- */

/* State changes. reason is NULL except for DISCONNECTED, where it says what
 * happened ("connect to 127.0.0.1:3000: connection refused"). With a list
 * of servers the reason always names the server it concerns: when the text
 * does not already contain it, " (server HOST:PORT)" is appended. */
typedef void (*dlg_state_cb)(dlg_client *c, void *ud, dlg_client_state_t st,
                             const char *reason);

/* Sets the state callback (replacing any earlier one; NULL removes it).
 * Like every call in thread mode it is queued: set it before
 * dlg_client_connect so no change is missed. 0 or DLG_ESTATE when closed. */
DLG_EXPORT int dlg_client_on_state(dlg_client *c, dlg_state_cb cb, void *ud);

/* The server removed the client from room (reason from the server: room
 * deleted, kicked), or a rejoin after reconnect was refused (reason holds
 * "STATUS: message"). The room is dropped from the restore record.
 * Exception: a recovery rejoin refused with UNAVAILABLE (a cluster node
 * that has not reached the client's position yet) keeps the room and
 * fails the connection, so the next server of the list is asked. */
typedef void (*dlg_left_cb)(dlg_client *c, void *ud, const char *room,
                            const char *reason);

/* Sets the left callback (replacing any earlier one). 0 or DLG_ESTATE. */
DLG_EXPORT int dlg_client_on_left(dlg_client *c, dlg_left_cb cb, void *ud);

/* An event as delivered: a view valid during the callback only. */
typedef struct dlg_event {
    const char *room;
    const char *event;
    const uint8_t *data;  /* the event's protobuf message, encoded */
    size_t len;
    const char *from;     /* sender's name: see from_kind */
    uint64_t ts_ms;       /* server time of acceptance, ms since the epoch */
    uint64_t seq;         /* per-room sequence number */
    uint64_t epoch;       /* the room's history epoch */
    int from_kind;        /* what from names (dialogue.v1.IdentityKind): DLG_FROM_SERVER
                             ("system"), DLG_FROM_TOKEN, DLG_FROM_CERTIFICATE or
                             DLG_FROM_ANONYMOUS; 0 from a server that does not say.
                             Compare kind and name: a token's sub may read "system" */
} dlg_event;

/* The values of dlg_event.from_kind (dialogue.v1.IdentityKind). */
enum { DLG_FROM_SERVER = 1, DLG_FROM_TOKEN = 2, DLG_FROM_CERTIFICATE = 3, DLG_FROM_ANONYMOUS = 4 };

typedef void (*dlg_event_cb)(dlg_client *c, void *ud, const dlg_event *ev);

/* Registers cb for events of room (NULL = every room) named event (NULL =
 * every event). Several registrations may match one event; each is called,
 * in registration order. Strings are copied. This only routes events the
 * server sends: join and subscribe decide which it sends.
 * Returns 0, DLG_ENOMEM, DLG_EINVAL (cb NULL) or DLG_ESTATE (closed). */
DLG_EXPORT int dlg_client_on_event(dlg_client *c, const char *room,
                                   const char *event, dlg_event_cb cb,
                                   void *ud);

/* Removes every registration with this cb and ud. Safe inside an event
 * callback. 0 or DLG_ESTATE. */
DLG_EXPORT int dlg_client_off_event(dlg_client *c, dlg_event_cb cb, void *ud);

/* Events that arrived together: evs[0..n), in the order the server sent
 * them, n >= 1. Views valid during the callback only. */
typedef void (*dlg_events_cb)(dlg_client *c, void *ud, const dlg_event *evs, size_t n);

/* The most events one call of a dlg_events_cb gets. */
#define DLG_EVENTS_BATCH_MAX 64

/* Sets the batch callback (replacing any earlier one; cb NULL removes it).
 * It gets every event the client delivers, of any room and name (the
 * duplicates that recovery drops are not delivered), several per call:
 * the events that one read from the socket brought (at most
 * DLG_EVENTS_BATCH_MAX per call), so a service that handles a burst as a
 * whole (one database transaction, one screen update) is called once per
 * burst rather than once per event. Each call comes after the
 * dlg_client_on_event handlers of its events ran, and before the client
 * acts on anything else the server sent after them (a reply, a Left, a
 * Gap, the connection's end). Costs a copy of each event while set.
 * Added in 2.1. 0, DLG_EINVAL (c NULL) or DLG_ESTATE (closed). */
DLG_EXPORT int dlg_client_on_events(dlg_client *c, dlg_events_cb cb, void *ud);

/* ---- positions, recovery and gaps --------------------------------------- */
/* Per joined room the client keeps its position: the room's epoch and the
 * seq of the newest event delivered (or, if later, the seq the server gave
 * in its last Joined reply for the room). Events are delivered once per
 * position: an event of the same epoch whose seq is not above the position
 * is dropped before any callback sees it. HistoryBatch frames the server
 * sends by itself (sync on join after a Joined or Welcome, recovery after a
 * rejoin) are delivered to the event callbacks like live events, oldest
 * first, with their own seq and epoch, before any later live event.
 *
 * After a reconnect every recorded room the server did not join by itself
 * is rejoined with Join{recover, epoch, since_seq = position}: the server
 * replays what the client missed, then live events follow, so each event
 * arrives exactly once and in order. The server replays for the room's
 * default subscriptions (a Join carries no others): replayed events of
 * types this client had unsubscribed from are dropped, and types it had
 * added beyond the defaults are not replayed. Rooms the server joins at Hello
 * (auto_join) cannot be rejoined that way; there the room's sync-on-join
 * batch is the catch-up (duplicates dropped as above), and only an epoch
 * change is detected as a gap. Event types the room keeps no history for
 * are live only: what was sent during a disconnect is gone, and that is not
 * reported. */

/* Events the client will never get: reported by the gap callback. */
typedef struct dlg_gap {
    const char *room;
    /* Names the room and what happened, e.g. "room feed: epoch changed from
     * 5 to 9 (the server lost its history); events after seq 120 are lost". */
    const char *reason;
    int epoch_changed;    /* 1: the room's history restarted (new epoch) */
    uint64_t old_epoch;   /* the client's position before the gap ... */
    uint64_t since_seq;   /* ... (events after since_seq may be lost) */
    uint64_t epoch;       /* the room's epoch now */
} dlg_gap;

/* Called when recovery after a reconnect cannot give every missed event of
 * room: the server answered the rejoin with HistoryBatch{complete=false}
 * (epoch changed, events already evicted, the client ahead of the server,
 * or too many for one frame), or an auto-joined room came back with another
 * epoch. It runs before the events that could be recovered are delivered,
 * so a view can be reset and rebuilt from them (what the server still
 * keeps, oldest first). The position then moves to the new epoch.
 * Also called, while connected, when the server pushes a Gap frame: a
 * cluster node without the cluster log lost its link to the other nodes
 * and events published elsewhere meanwhile may be missing after seq
 * since_seq (epoch_changed 0, epoch unchanged; the reason quotes the
 * server). It runs between the events before and after the hole; the
 * position is unchanged (the numbering goes on without a jump). */
typedef void (*dlg_gap_cb)(dlg_client *c, void *ud, const dlg_gap *gap);

/* Sets the gap callback (replacing any earlier one; NULL removes it). Set
 * it before dlg_client_connect. 0, DLG_EINVAL (c NULL) or DLG_ESTATE. */
DLG_EXPORT int dlg_client_on_gap(dlg_client *c, dlg_gap_cb cb, void *ud);

/* ---- requests ----------------------------------------------------------- */

/* Completion of a request; called exactly once per accepted request.
 *   status  0 = success; > 0 = the dialogue.v1.Status of the server's Error
 *           (7 = PERMISSION_DENIED; dlg_client_status_name gives the name);
 *           < 0 = a local DLG_E* code: DLG_ETIMEDOUT (no reply in time),
 *           DLG_ECLOSED (connection lost or client closed before the reply;
 *           a trigger may or may not have been applied), DLG_EPROTO (the
 *           server answered with the wrong message), DLG_ETOOBIG (frame above
 *           the server's max_frame), DLG_EFULL (max_pending reached).
 *   message "" on success, else the server's message or a local explanation.
 *   reply   on success, the typed reply named by each request (or NULL).
 * Everything is valid during the callback only.
 *
 * Request functions return 0 when the request was accepted (cb will be
 * called), or an error without calling cb: DLG_EINVAL (bad argument),
 * DLG_ENOMEM, DLG_ESTATE (client closed), DLG_ECLOSED (disconnected and no
 * room in the offline queue), DLG_EFULL (max_pending reached), DLG_ETOOBIG
 * (above the server's max_frame). In thread mode only what the calling
 * thread can see is returned (bad arguments, closed, disconnected); a
 * refusal found on the library thread (DLG_EFULL, DLG_ETOOBIG, or a state
 * that changed meanwhile) completes the request through cb instead. cb may
 * be NULL when the outcome does not matter. */
typedef void (*dlg_reply_cb)(dlg_client *c, void *ud, int status,
                             const char *message, const void *reply);

/* Reply of join, subscribe and unsubscribe: the room's state for this client. */
typedef struct dlg_joined {
    const char *room;
    const char *const *subscriptions;  /* "*" = every event */
    size_t n_subscriptions;
    uint64_t epoch;
    uint64_t seq;       /* last sequence number assigned in the room */
    uint32_t members;
} dlg_joined;

/* Reply of trigger and trigger_msg. */
typedef struct dlg_ack {
    uint64_t seq;          /* the event's sequence number */
    uint32_t recipients;   /* members it was queued to */
} dlg_ack;

typedef struct dlg_room_info {
    const char *id;
    const char *name;
    const char *description;
    const char *const *events;
    size_t n_events;
    uint32_t members;
    uint32_t max_size;
    int dynamic;                     /* created at run time */
    const char *const *member_ids;   /* only when asked for and allowed */
    size_t n_member_ids;
} dlg_room_info;

/* Reply of list_rooms. */
typedef struct dlg_room_list {
    const dlg_room_info *rooms;
    size_t n_rooms;
} dlg_room_list;

typedef struct dlg_event_type {
    const char *name;          /* "metrics:update" */
    const char *message_type;  /* "dialogue.dashboard.MetricsUpdate" */
} dlg_event_type;

typedef struct dlg_bytes {
    const uint8_t *data;
    size_t len;
} dlg_bytes;

/* Reply of get_schema: serialised google.protobuf.FileDescriptorSets (parse
 * them with protobuf-c's google/protobuf/descriptor.proto code, or any
 * protobuf library) and the event names they define. */
typedef struct dlg_schema_info {
    const dlg_bytes *sets;
    size_t n_sets;
    const dlg_event_type *events;
    size_t n_events;
} dlg_schema_info;

/* Joins room; reply: const dlg_joined * (the room's default subscriptions
 * applied). If the room syncs history on join, its kept events follow as
 * ordinary events, after this reply and before live ones. The room is
 * recorded and rejoined after a reconnect (with recovery, see above). */
DLG_EXPORT int dlg_client_join(dlg_client *c, const char *room,
                               dlg_reply_cb cb, void *ud);

/* Leaves room; reply NULL. The room is dropped from the restore record. */
DLG_EXPORT int dlg_client_leave(dlg_client *c, const char *room,
                                dlg_reply_cb cb, void *ud);

/* Subscribes to n events (all = every event type; events may then be NULL)
 * of a joined room; reply: const dlg_joined * with the resulting
 * subscriptions, which are recorded and restored after a reconnect. */
DLG_EXPORT int dlg_client_subscribe(dlg_client *c, const char *room,
                                    const char *const *events, size_t n,
                                    int all, dlg_reply_cb cb, void *ud);

/* The reverse of dlg_client_subscribe; same reply. */
DLG_EXPORT int dlg_client_unsubscribe(dlg_client *c, const char *room,
                                      const char *const *events, size_t n,
                                      int all, dlg_reply_cb cb, void *ud);

/* Publishes event into room with data (len bytes, the encoded protobuf
 * message of the event; copied). Reply: const dlg_ack *. A trigger lost to
 * a disconnect is not resent (at most once). */
DLG_EXPORT int dlg_client_trigger(dlg_client *c, const char *room,
                                  const char *event, const void *data,
                                  size_t len, dlg_reply_cb cb, void *ud);

/* As dlg_client_trigger, packing msg (a protobuf-c message) first. */
DLG_EXPORT int dlg_client_trigger_msg(dlg_client *c, const char *room,
                                      const char *event,
                                      const struct ProtobufCMessage *msg,
                                      dlg_reply_cb cb, void *ud);

/* Lists rooms (with member ids where allowed when members is set); reply:
 * const dlg_room_list *. */
DLG_EXPORT int dlg_client_list_rooms(dlg_client *c, int members,
                                     dlg_reply_cb cb, void *ud);

/* Fetches the server's event schemas; reply: const dlg_schema_info *. */
DLG_EXPORT int dlg_client_get_schema(dlg_client *c, dlg_reply_cb cb, void *ud);

/* Round trip; reply: const uint64_t * holding the time in ns from the call
 * to the Pong (queueing included). */
DLG_EXPORT int dlg_client_ping(dlg_client *c, dlg_reply_cb cb, void *ud);

/* A room to create at run time (CreateRoom). */
typedef struct dlg_room_spec {
    const char *room;                /* id (required) */
    const char *name;                /* may be NULL */
    const char *description;         /* may be NULL */
    const char *const *events;       /* accepted event types */
    size_t n_events;
    const char *const *default_subscriptions;
    size_t n_default_subscriptions;
    uint32_t max_size;               /* 0 = server default */
} dlg_room_spec;

/* Reply of history: the events, oldest first, as views valid during the
 * callback only. */
typedef struct dlg_history_reply {
    const char *room;
    const dlg_event *events;
    size_t n_events;
    /* 0 when an event in the asked range is no longer kept (limit, max age),
     * is damaged in the server's store (never served), or the reply was cut
     * at the server's max_frame. Stopping at limit is paging, not loss:
     * complete stays 1. */
    int complete;
    uint64_t epoch;       /* the room's current epoch */
} dlg_history_reply;

/* Reads the events room keeps (History; members only: join first, else the
 * server answers FAILED_PRECONDITION). event NULL or "" = every kept type.
 *  - by_seq 0: newest first by index, as dialogue-ts getHistory: skip start
 *    events, take limit; the reply still lists them oldest first.
 *  - by_seq 1: every kept event with seq > since_seq, oldest first, at most
 *    limit (start ignored).
 * limit 0 (or above 1000) means the server's cap of 1000. To page by seq,
 * ask again with since_seq = the last seq received until a reply is empty;
 * by index, raise start by the number received. Reply: const
 * dlg_history_reply *. The events are a reply, not deliveries: event callbacks do not see them
 * and the room's position does not move. */
DLG_EXPORT int dlg_client_history(dlg_client *c, const char *room,
                                  const char *event, uint32_t start,
                                  uint32_t limit, int by_seq,
                                  uint64_t since_seq, dlg_reply_cb cb,
                                  void *ud);

/* Creates a room (needs a room_admin.create role); reply NULL. */
DLG_EXPORT int dlg_client_create_room(dlg_client *c, const dlg_room_spec *spec,
                                      dlg_reply_cb cb, void *ud);

/* Deletes a dynamic room; reply NULL. */
DLG_EXPORT int dlg_client_delete_room(dlg_client *c, const char *room,
                                      dlg_reply_cb cb, void *ud);

/* ---- blocking convenience ----------------------------------------------- */
/* For simple programs. They need a thread-mode client and must not be called
 * on its library thread (DLG_ESTATE otherwise). Each waits at most
 * timeout_ms (0 = the client's request timeout) and returns 0 or a negative
 * DLG_E* code; a server refusal is mapped to the nearest code (see
 * dlg_client_status_err) and err (may be NULL) receives "STATUS: message"
 * or a local explanation. Example:
 *
 *   dlg_client_opts *o = NULL;
 *   dlg_client *c = NULL; char err[256] = ""; uint64_t seq;
 *   int rc = dlg_client_opts_new(&o);
 *   if (rc == 0) rc = dlg_client_opts_set_host(o, "127.0.0.1");
 *   if (rc == 0) rc = dlg_client_opts_set_port(o, 3000);
 *   if (rc == 0) rc = dlg_client_opts_set_ca_file(o, "ca.crt");
 *   if (rc == 0) rc = dlg_sync_connect(o, 5000, &c, err, sizeof err);
 *   dlg_client_opts_free(o);
 *   if (rc == 0) rc = dlg_sync_join(c, "dashboard", 5000, err, sizeof err);
 *   if (rc == 0) rc = dlg_sync_trigger(c, "dashboard", "metrics:update",
 *                                      buf, len, 5000, &seq, err, sizeof err);
 *   dlg_client_free(c);
 */

/* Creates a thread-mode client, connects and waits until CONNECTED. On
 * failure nothing is left behind (*out untouched) and err says why:
 * DLG_ETIMEDOUT, or the error of a refused Hello or of a failed attempt
 * when reconnect is off. */
DLG_EXPORT int dlg_sync_connect(const dlg_client_opts *opts, uint32_t timeout_ms,
                                dlg_client **out, char *err, size_t errlen);

DLG_EXPORT int dlg_sync_join(dlg_client *c, const char *room,
                             uint32_t timeout_ms, char *err, size_t errlen);

DLG_EXPORT int dlg_sync_leave(dlg_client *c, const char *room,
                              uint32_t timeout_ms, char *err, size_t errlen);

DLG_EXPORT int dlg_sync_subscribe(dlg_client *c, const char *room,
                                  const char *const *events, size_t n, int all,
                                  uint32_t timeout_ms, char *err, size_t errlen);

DLG_EXPORT int dlg_sync_unsubscribe(dlg_client *c, const char *room,
                                    const char *const *events, size_t n, int all,
                                    uint32_t timeout_ms, char *err, size_t errlen);

/* Waits for the Ack; *seq (may be NULL) gets the event's sequence number. */
DLG_EXPORT int dlg_sync_trigger(dlg_client *c, const char *room,
                                const char *event, const void *data,
                                size_t len, uint32_t timeout_ms, uint64_t *seq,
                                char *err, size_t errlen);

/* *rtt_ns (may be NULL) gets the round-trip time. */
DLG_EXPORT int dlg_sync_ping(dlg_client *c, uint32_t timeout_ms,
                             uint64_t *rtt_ns, char *err, size_t errlen);

/* dlg_client_history, waiting for the reply. On success *out holds a copy
 * the caller owns (every string and payload inside it too): release it with
 * dlg_history_reply_free. On error *out is untouched. */
DLG_EXPORT int dlg_sync_history(dlg_client *c, const char *room,
                                const char *event, uint32_t start,
                                uint32_t limit, int by_seq, uint64_t since_seq,
                                uint32_t timeout_ms, dlg_history_reply **out,
                                char *err, size_t errlen);

/* Frees a dlg_history_reply from dlg_sync_history. NULL is ignored. */
DLG_EXPORT void dlg_history_reply_free(dlg_history_reply *h);

/* ---- helpers ------------------------------------------------------------ */

/* Text for a DLG_E* code; static storage. */
DLG_EXPORT const char *dlg_client_strerror(int err);

/* gRPC name of a dialogue.v1.Status ("PERMISSION_DENIED"); static storage. */
DLG_EXPORT const char *dlg_client_status_name(int status);

/* "server", "token", "certificate" or "anonymous" for a DLG_FROM_* value
 * (dlg_event.from_kind), "unknown" for anything else; static storage. */
DLG_EXPORT const char *dlg_from_kind_name(int kind);

/* The DLG_E* code closest to a dialogue.v1.Status (NOT_FOUND -> DLG_ENOTFOUND,
 * PERMISSION_DENIED -> DLG_EPERM, ...); 0 for OK. A negative input (already
 * a DLG_E* code) is returned as is. */
DLG_EXPORT int dlg_client_status_err(int status);

/* The release this library belongs to, "MAJOR.MINOR.PATCH" (the same
 * number dialogued and dialoguectl of the release report; the SONAME's
 * number is the ABI's, not this); static storage. */
DLG_EXPORT const char *dlg_client_version(void);

#ifdef __cplusplus
}
#endif

#endif
