/* dialogue/server.h: the C server API. dialogued is built on it, and a
 * program can embed a dialogue server the same way: create rooms, trigger
 * events as "system", walk rooms and members, and hook into the life of
 * connections and events (the C form of dialogue-ts hooks).
 *
 * Threading: every function here and every hook runs on the server's loop
 * thread. Call them from that thread only (for example from a uv_timer or
 * uv_async callback on the same loop). */
#ifndef DIALOGUE_SERVER_H
#define DIALOGUE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dlg_server dlg_server;
struct uv_loop_s;

/* Creates and starts a server on loop from a YAML config file (the format
 * of dialogued --config). listen (may be NULL) overrides the first
 * listener's "host:port"; port_file (may be NULL) receives the bound port.
 * The built-in metrics source is not started (dialogued does that). On
 * success *out is owned by the caller: stop it with dlg_server_shutdown, run
 * the loop until it returns, then dlg_server_destroy. Returns 0 or a
 * negative DLG_E* code with err naming the file, line or resource. */
int dlg_server_create(struct uv_loop_s *loop, const char *config_path, const char *listen,
                      const char *port_file, dlg_server **out, char *err, size_t errlen);

/* Stops accepting and closes every connection and handle (idempotent). */
void dlg_server_shutdown(dlg_server *s);

/* Frees a server after dlg_server_shutdown and after its loop has run out. */
void dlg_server_destroy(dlg_server *s);

/* A connected client as hooks see it. Valid only during the hook call. */
typedef struct dlg_client_info {
    const char *client_id;          /* "c17", unique per connection */
    const char *user_id;            /* verified identity; NULL = anonymous */
    const char *const *roles;       /* verified roles */
    size_t n_roles;
    const char *peer;               /* "127.0.0.1:51234" */
    const char *client_name;        /* informational; may be NULL */
    int identity_kind;              /* dialogue.v1.IdentityKind of user_id: 2 token,
                                       3 certificate, 4 anonymous (user_id NULL) */
} dlg_client_info;

/* An event as hooks see it. data is valid only during the call. */
typedef struct dlg_event_info {
    const char *room;
    const char *event;
    const uint8_t *data;
    size_t len;
    const char *from;               /* the sender's name, "system" for the server */
    int from_kind;                  /* dialogue.v1.IdentityKind of from: 1 server, 2
                                       token, 3 certificate, 4 anonymous */
} dlg_event_info;

/* Hooks. Any may be NULL. A hook that refuses writes a reason (at most
 * reason_len bytes, sent to the client) and returns non-zero. Hooks must not
 * close connections or delete rooms from inside the call.
 *
 * Order for one client: on_connected (after Welcome) -> before_join ->
 * on_joined ... -> on_left -> on_disconnected. For one trigger: before_each
 * (may refuse or rewrite) -> validation -> delivery -> after_each (with the
 * recipient count). Rooms: on_room_created / on_room_deleted. */
typedef struct dlg_hooks {
    void *ud;                       /* passed back to every hook */
    void (*on_connected)(void *ud, dlg_server *s, const dlg_client_info *c);
    void (*on_disconnected)(void *ud, dlg_server *s, const dlg_client_info *c,
                            const char *reason);
    int (*before_join)(void *ud, dlg_server *s, const dlg_client_info *c,
                       const char *room, char *reason, size_t reason_len);
    void (*on_joined)(void *ud, dlg_server *s, const dlg_client_info *c, const char *room);
    void (*on_left)(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                    const char *reason);
    /* c is NULL for server triggers. To rewrite the payload, set *new_data
     * to a malloc'd buffer (the server frees it) and *new_len. */
    int (*before_each)(void *ud, dlg_server *s, const dlg_client_info *c,
                       const dlg_event_info *ev, uint8_t **new_data, size_t *new_len,
                       char *reason, size_t reason_len);
    void (*after_each)(void *ud, dlg_server *s, const dlg_event_info *ev, uint64_t seq,
                       uint32_t recipients);
    /* creator: the creating client's name (user id, or client id when
     * anonymous). */
    void (*on_room_created)(void *ud, dlg_server *s, const char *room, const char *creator);
    void (*on_room_deleted)(void *ud, dlg_server *s, const char *room);
} dlg_hooks;

/* Adds a hook table (copied), consulted after the ones before it; the
 * daemon's config rules are the first. Refusing hooks can only narrow what
 * the rules allow. At most 8 tables: DLG_EFULL (-15) past that. */
int dlg_server_add_hooks(dlg_server *s, const dlg_hooks *h);

/* Triggers an event from the server (from = "system") with the same
 * validation as a client trigger. Returns 0 and the sequence number and
 * recipient count, or a negative DLG_E* code with err naming the problem.
 * With a cluster log (docs/cluster.md) the log numbers the event later:
 * the sequence number and recipient count are then 0. */
int dlg_server_trigger(dlg_server *s, const char *room, const char *event,
                       const uint8_t *data, size_t len, uint64_t *seq,
                       uint32_t *recipients, char *err, size_t errlen);

/* Calls fn for every room (in id order); stop early by returning non-zero. */
void dlg_server_each_room(dlg_server *s,
                          int (*fn)(void *ud, const char *room, size_t members), void *ud);

/* Calls fn for every member of room; DLG_ENOTFOUND if there is no such room. */
int dlg_server_each_member(dlg_server *s, const char *room,
                           int (*fn)(void *ud, const dlg_client_info *c), void *ud);

#ifdef __cplusplus
}
#endif
#endif
