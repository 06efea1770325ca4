/* conn.h: one client connection: TCP handle, TLS session, the transport it
 * speaks (codec.h), identity, memberships, and the output queue that is
 * flushed once per loop turn (frames coalesced into few TLS records and few
 * writes). Its code is in four files: conn.c (lifecycle, limits, timers),
 * read.c (socket -> TLS -> codec -> srv->up.frame), outq.c (the queue) and
 * flush.c (queue -> codec framing -> TLS -> one of three senders). */
#ifndef DLG_CONN_H
#define DLG_CONN_H

#include <stdint.h>

#include <uv.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_buf.h"
#include "dlg_frame.h"
#include "dlg_stream.h"
#include "dlg_tlsio.h"
#include "server.h"

enum {
    DLG_CONN_TLS,     /* TLS handshake in progress */
    DLG_CONN_HELLO,   /* waiting for Hello */
    DLG_CONN_READY,   /* Welcome sent */
    DLG_CONN_CLOSING, /* handles closing; nothing more is read or queued */
};

struct dlg_member;
struct dlg_codec;

/* One queued frame: a reference to a shared buffer. */
typedef struct dlg_outq_item {
    dlg_buf *buf;
    uint32_t off;     /* bytes of buf already handed to TLS / the socket */
    uint8_t raw;      /* bytes for the transport itself (an HTTP response),
                         not a dialogue/1 frame its codec would reframe */
    const void *latest; /* conflation key (an event slot) for delivery: latest */
} dlg_outq_item;

/* Where the newest queued frame of one "latest" event type sits. */
typedef struct dlg_latest_pos {
    const void *key;
    uint64_t abs;     /* absolute queue position (q_pushed at enqueue) */
} dlg_latest_pos;

typedef struct dlg_conn {
    dlg_server *srv;
    struct dlg_listener *lis;    /* accepted on it; NULL in tests without sockets */
    /* A session that runs on a stream of another connection (one gRPC call
     * over HTTP/2, h2.c): that connection, which owns the socket, TLS and
     * every byte on the wire. Such a session has no socket of its own (st
     * is unused, handles_open counts its timer only), is in none of the
     * server's lists, and its output queue is drained by its parent's codec;
     * marking it dirty marks the parent. NULL for a connection with a socket. */
    struct dlg_conn *parent;
    /* The socket and its TLS session, the libuv and send-thread senders'
     * bytes in flight and spill (lib/stream/dlg_stream.h: shared with the
     * client library). inflight_bytes also counts the io_uring send. */
    dlg_stream st;
    uv_timer_t timer;            /* handshake deadline, then heartbeat */
    int state;
    int handles_open;            /* freed when this drops to 0 (handles, and an io_uring
                                    send in flight) */
    int missed_pongs;
    const struct dlg_codec *codec; /* the transport spoken over the stream; NULL until
                                      ALPN or the first bytes chose it */
    void *codec_st;              /* its state, owned by the codec */
    dlg_frame_dec dec;           /* dialogue/1's decoder; its max_frame is the frame
                                    limit for every codec (lower before Welcome) */
    uint64_t id;
    char client_id[24];
    char peer[64];
    char *client_name;
    uint64_t born_ms;            /* uv_now at accept */
    /* Verified identity: set once at Welcome, never from client claims. */
    char *user_id;               /* NULL = anonymous */
    int id_kind;                 /* Dialogue__V1__IdentityKind of user_id (ANONYMOUS
                                    until Welcome): names are compared with it */
    char **roles;
    size_t n_roles;
    int64_t session_deadline_ms; /* Unix ms the token's session ends (exp + leeway);
                                    0 = none */
    uint64_t expire_at;          /* the same in uv_now time, once ready; 0 = none */
    uint64_t ping_at;            /* uv_now of the next heartbeat check */
    uint64_t in_bytes;           /* total plaintext received */
    uint64_t in_at_tick;         /* in_bytes at the last heartbeat tick */
    uint64_t presence_gen;       /* proto/presence.c's window in which it last noted a
                                    join or leave (0 = never; windows count from 1) */
    /* Memberships (owned by rooms; this is an index). */
    struct dlg_member **members;
    size_t n_members, cap_members;
    /* Output queue: a ring of frame references. */
    dlg_outq_item *q;
    size_t q_head, q_len, q_cap;
    uint64_t q_bytes;            /* queued, not yet handed to TLS */
    uint64_t q_pushed, q_popped; /* absolute counters, for latest positions */
    dlg_latest_pos *latest;      /* one per latest-policy event type seen */
    size_t n_latest, cap_latest;
    uint64_t conflated;          /* frames replaced by a newer one */
    uint64_t out_staged;         /* plaintext staged since the last flush_done, which adds
                                    it to the server's bytes_out (loop thread) */
    uint64_t kids_pending;       /* with sessions on its streams (parent above): what their
                                    queues hold, as dlg_conn_pending counts it, so that the
                                    caps hold across all streams of the connection */
    /* With io_uring (uring.h): the one send the ring holds for this
     * connection, NULL = none. While it is out, later output waits in the
     * queue, and it holds one count of handles_open so the struct outlives
     * a close until its completion. */
    struct dlg_uring_send *usend;
    /* A flush on a send thread (sendpool.h) cannot call libuv: its result
     * waits here for the loop thread (the bytes in st.spill). */
    int flush_rc;
    uint64_t soft_since;         /* uv_now when pending went over the soft cap */
    unsigned in_dirty : 1;
    unsigned dirty_hold : 1;     /* closed while on the dirty list: the list holds one
                                    count of handles_open until the flush takes it off */
    unsigned close_after_flush : 1;
    unsigned refuse_full : 1;    /* over max_connections: told so after TLS */
    unsigned pre_linked : 1;     /* in the server's list of connections before Welcome */
    unsigned tls_compact : 1;    /* handshake done: free the TLS buffers once drained */
    unsigned in_doomed : 1;
    unsigned kids_dirty : 1;     /* a session on one of its streams has new output (outq.c
                                    sets it, its codec clears it when it looks) */
    /* Idle memory (see dlg_conn_sweep): bytes were read or written since
     * the last sweep; TLS data went through the ciphertext buffers since
     * they were last freed. */
    unsigned io_recent : 1;
    unsigned tls_bufs : 1;
    unsigned ready_counted : 1;  /* a stream's session, counted in srv->n_sessions_ready */
    int close_status;            /* wire Status to log for doomed conns */
    const char *close_reason;
    struct dlg_conn *dirty_next;
    struct dlg_conn *doomed_next;
    struct dlg_conn *prev, *next;
    struct dlg_conn *pre_prev, *pre_next; /* oldest first (srv->pre_head) */
} dlg_conn;

/* What one queued frame costs beside its bytes, as the output caps count
 * it: its queue entry (the ring grows by doubling, so up to two), and the
 * buffer's header and allocation. A flood of small replies to a reader
 * that never reads is cut at the cap in real memory, not in payload
 * bytes, which came to a sixth of it. */
#define DLG_OUTQ_ITEM_COST (2 * sizeof(dlg_outq_item) + sizeof(dlg_buf) + 16)


/* Takes fd, a connection accept4 just returned on listener l (the struct
 * owns it from here: it is closed on every refusal). Refusals (too many
 * connections, out of memory) are logged and counted. Connections that
 * have not finished Hello have a budget of their own
 * (pre_auth_max_connections, at most max_connections): when a new one
 * would pass it, or pass max_connections while some connections have not
 * finished Hello, the oldest of those is closed to make room, so that
 * half-open connections never keep out a client that finishes its
 * handshake. */
void dlg_conn_accept(struct dlg_listener *l, int fd);

/* Queues one more reference to b (the caller keeps its own). If the
 * connection's pending output passes the cap it is marked a slow consumer
 * and closed after the current fan-out; the frame is then dropped. */
void dlg_conn_send(dlg_conn *c, dlg_buf *b);

/* Like dlg_conn_send for an event whose delivery policy is "latest": if a
 * frame with the same key is still waiting in the queue (not started), it is
 * replaced by b instead of queueing both, so a slow reader gets the newest
 * value, not a backlog. */
void dlg_conn_send_latest(dlg_conn *c, dlg_buf *b, const void *key);

/* Queues bytes the transport itself sends (an HTTP response, a WebSocket
 * control frame): like dlg_conn_send, but its codec writes them as they
 * are. */
void dlg_conn_send_raw(dlg_conn *c, dlg_buf *b);

/* Writes Error{status, msg} straight to the socket, bypassing the queue,
 * when that is possible at a frame boundary (best effort: used just before
 * closing a connection that is being cut; with TLS the record goes out
 * from the dlg_conn_close that must follow, with close_notify). */
void dlg_conn_final_error(dlg_conn *c, int status, const char *msg);

/* Sends whatever is queued, then close_notify, then closes. Logs reason
 * (with the peer). If the output has not drained within write_timeout_ms
 * (handshake_timeout_ms before Welcome), the connection is closed anyway. */
void dlg_conn_close_after_flush(dlg_conn *c, const char *reason);

/* Closes at once (pending output is dropped; a TLS session past its
 * handshake says close_notify first when the socket takes it at once).
 * Idempotent. The struct is freed from the handles' close callbacks, never
 * here. */
void dlg_conn_close(dlg_conn *c, const char *reason);

/* Marks c to be closed after the current fan-out loop (safe while rooms
 * are being iterated). */
void dlg_conn_doom(dlg_conn *c, const char *reason);

/* Closes every doomed connection; called by the server after each fan-out
 * and once per loop turn. */
void dlg_conn_reap(dlg_server *srv);

/* Bytes c's pending output holds, as every per-connection cap counts them
 * (net/conn_int.h, dlg__conn_pending, has the inline form the fan-out path
 * uses). */
uint64_t dlg_conn_pending(const dlg_conn *c);

/* Once a second: closes connections whose writes have not drained within
 * write_timeout_ms (in any state), or whose pending output
 * (dlg_conn_pending) stayed over the soft cap for soft_pending_ms (slow
 * consumers). A connection that read and wrote
 * nothing since the previous sweep gives back what only traffic needs (its
 * empty output ring, its "latest" table, a kept frame buffer, the TLS
 * ciphertext buffers); they are allocated again by the next traffic.
 * now = uv_now. */
void dlg_conn_sweep(dlg_server *srv, uint64_t now);

/* Flushes every dirty connection (uv_check callback body). With io_uring
 * (srv->uring) each gets at most one send, and all of them go to the
 * kernel with one submit at the end. */
void dlg_conn_flush_all(dlg_server *srv);

/* Switches c's timer from the handshake deadline to heartbeats: c has
 * finished Hello, so it also leaves the count of connections before
 * Welcome. */
void dlg_conn_start_heartbeat(dlg_conn *c);

/* The transport c is counted under in the metrics (DLG_TR_*, server.h). */
int dlg_conn_transport(const dlg_conn *c);

/* 1 when c, an HTTP/1.1 connection, has upgraded to a WebSocket (its 101
 * may still be on its way). http.c. */
int dlg_http_upgraded(const dlg_conn *c);

/* The idle callback that only keeps the loop from blocking in poll. */
void dlg_conn_kick_noop(uv_idle_t *h);

/* The connection that owns c's socket and TLS session: c itself, or the
 * connection c's stream runs on. */
static inline dlg_conn *dlg_conn_root(dlg_conn *c) {
    return c->parent ? c->parent : c;
}

/* The name c is known by to other clients and rules: its verified user
 * id, or (anonymous) its client id. Borrowed from c. */
const char *dlg_conn_name(const dlg_conn *c);

/* 1 if the connection's verified identity has role. */
int dlg_conn_has_role(const dlg_conn *c, const char *role);

#endif
