/* server.h: the daemon's top-level state (listeners, TLS context, the set
 * of connections, rooms, schemas, counters) and its lifecycle. Private to
 * daemon/; embedders use include/dialogue/server.h (later). */
#ifndef DLG_SERVER_H
#define DLG_SERVER_H

#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "dialogue/server.h"
#include "dlg_log.h"
#include "dlg_schema.h"
#include "listener.h"
#include "seam.h"

/* Listeners one daemon serves at most (config.h's DLG_CFG_MAX_LISTENERS). */
#define DLG_MAX_LISTENERS 16

struct dlg_conn;
struct dlg_rooms;
struct dlg_config;
struct dlg_metrics;
struct dlg_jwt_verifier;
struct dlg_history;
struct dlg_bus;
struct dlg_uring;
struct dlg_sendpool;
struct dlg_ratelimit;
struct dlg_logout;

/* What the network layer calls above it, set by the app (boot) before any
 * connection: it never names a module above it. */
typedef struct dlg_net_upcalls {
    /* A whole frame body arrived on c (read path); non-zero stops reading
     * this turn. */
    int (*frame)(struct dlg_conn *c, const uint8_t *body, size_t len);
    /* c is closing (once, before its handles close): what is above drops
     * its memberships and tells its hooks. was_ready = past Welcome. */
    void (*closing)(struct dlg_conn *c, const char *reason, int was_ready);
    /* A GET or HEAD of path (len bytes, no query) on the admin listener,
     * its token checked. Sets *status (200, 404, 503...) and *ctype (a
     * static string) and returns the body, owned by the caller; NULL only
     * when out of memory. NULL callback: every path is 404. */
    struct dlg_buf *(*admin)(struct dlg_server *srv, const char *path, size_t len, int *status,
                             const char **ctype);
} dlg_net_upcalls;

/* Everything the daemon needs, whether it came from flags or a config
 * file. Strings are borrowed: they must outlive the server. */
typedef struct dlg_server_opts {
    dlg_listener_conf listen[DLG_MAX_LISTENERS]; /* [one: TLS on 127.0.0.1:3000] */
    size_t n_listen;
    const char *port_file;       /* written with the first listener's port, or NULL */
    uint32_t max_frame;          /* [1 MiB] */
    uint32_t max_connections;    /* [10000] */
    uint32_t handshake_timeout_ms; /* [2000] TLS handshake + Hello */
    uint32_t pre_auth_max_bytes; /* [16384] input accepted before Welcome, and
                                    pending output allowed then */
    uint32_t pre_auth_max_connections; /* [1000] connections before Welcome (at most
                                    max_connections); the oldest makes room */
    uint64_t max_pending_bytes;  /* [64 MiB] queued output per connection */
    uint64_t soft_pending_bytes; /* [8 MiB] over this for soft_pending_ms = slow */
    uint32_t soft_pending_ms;    /* [30000] */
    uint32_t write_timeout_ms;   /* [10000] no byte taken by the socket this long
                                    while output waits = stuck reader, closed */
    uint32_t heartbeat_ms;       /* [30000] */
    uint32_t max_rooms_per_conn; /* [128] */
    uint32_t room_ops_per_sec;   /* [50] Join/Leave/CreateRoom/DeleteRoom per identity
                                    (ratelimit.h); 0 = unlimited */
    uint32_t room_ops_burst;     /* [500] */
    uint32_t max_subscriptions;  /* [1024] event names per member */
    uint32_t max_room_events;    /* [10000] distinct names subscribed in one "*" room */
    uint32_t max_streams;        /* [100] concurrent HTTP/2 streams (gRPC calls) per
                                    connection (h2.c) */
    int allow_anonymous;         /* [0] */
    int allow_unknown_fields;    /* [0] */
    int store_sync;              /* [0 = DLG_STORE_SYNC_ACK] store: sqlite durability
                                    (history.h, docs/history.md) */
    int io_uring;                /* [1] send through io_uring (uring.h); when the kernel
                                    refuses it, a warning and write() with send threads */
    uint32_t send_threads;       /* [0 = one per online core] threads that share a turn's
                                    flush, the loop thread included (sendpool.h); 1 = the
                                    loop thread alone; not used with io_uring */
    int tls_own_records;         /* [1] established TLS 1.3 sessions leave OpenSSL for
                                    dlg_tls13 (dlg_tlsio_ctx_lean); 0 = OpenSSL throughout */
    const char *web_root;        /* [NULL] the web page's folder (web.h), read at start
                                    and at each reload; NULL = no page */
    const char *const *allowed_origins; /* [none] origins besides the page's own that may
                                    open a WebSocket (borrowed from the config) */
    size_t n_allowed_origins;
    dlg_listener_conf admin;     /* [none: address NULL] the admin listener (admin.admin set) */
} dlg_server_opts;

/* The most send threads (send_threads) accepted. */
#define DLG_SEND_THREADS_MAX 64

/* Fills o with the documented defaults. */
void dlg_server_opts_default(dlg_server_opts *o);

/* The transports a connection is counted under (metrics): dlg_conn_transport. */
enum {
    DLG_TR_NONE,      /* the first bytes or ALPN have not chosen yet */
    DLG_TR_NATIVE,    /* dialogue/1 */
    DLG_TR_HTTP,      /* HTTP/1.1 before (or without) a WebSocket upgrade: the page */
    DLG_TR_WEBSOCKET,
    DLG_TR_H2,        /* an HTTP/2 connection (its gRPC calls are DLG_TR_GRPC) */
    DLG_TR_GRPC,      /* the session of one gRPC stream */
    DLG_TR_ADMIN,     /* the admin listener */
    DLG_TR_N
};

/* Why a connection ended before Welcome (metrics): counted where it happens. */
enum {
    DLG_HSF_TLS,      /* the TLS handshake failed */
    DLG_HSF_TIMEOUT,  /* no Hello within handshake_timeout_ms */
    DLG_HSF_AUTH,     /* Hello refused (auth_refusals says why) */
    DLG_HSF_BUDGET,   /* input or output over pre_auth_max_bytes */
    DLG_HSF_EVICTED,  /* closed to make room for newer ones (pre_auth_max_connections) */
    DLG_HSF_FULL,     /* max_connections reached */
    DLG_HSF_N
};

/* Why a Hello's credentials were refused (metrics; proto/auth.c). */
enum {
    DLG_AUTHF_NO_CREDENTIALS, /* none given and anonymous clients are not allowed */
    DLG_AUTHF_TOKEN,          /* the token did not verify (signature, claims, malformed) */
    DLG_AUTHF_EXPIRED,        /* the token has expired */
    DLG_AUTHF_CERT,           /* the client certificate was refused */
    DLG_AUTHF_VERSION,        /* a protocol version this server does not speak */
    DLG_AUTHF_N
};

/* The fan-out latency histogram's upper bounds in nanoseconds (trigger
 * received -> the flush that submitted its writes); one more bucket, +Inf. */
#define DLG_FANOUT_BUCKETS 14
#define DLG_FANOUT_BOUNDS_NS                                                                  \
    {50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000,           \
     50000000, 100000000, 250000000, 500000000, 1000000000}

typedef struct dlg_counters {
    uint64_t conns_accepted;
    uint64_t conns_refused;
    uint64_t frames_in;          /* frames handled */
    uint64_t frames_rejected;    /* answered with an Error */
    uint64_t slow_consumers;     /* cut for pending output over the cap */
    uint64_t write_timeouts;     /* cut because a write did not drain in time */
    uint64_t pre_auth_evicted;   /* closed before Hello to make room */
    uint64_t events_in;          /* triggers accepted */
    uint64_t deliveries;         /* event frames queued to recipients */
    uint64_t fanout_ns;          /* sum of trigger-receive to all-queued time */
    uint64_t handshakes[DLG_TR_N]; /* Welcomes sent, by transport */
    uint64_t hs_failed[DLG_HSF_N]; /* connections that ended before Welcome, by reason */
    uint64_t auth_refused[DLG_AUTHF_N];
    uint64_t token_cache_hits;   /* Hellos whose token was found verified (jwtcache.h) */
    uint64_t tls_resumed;        /* sessions resumed by listener contexts since replaced */
    uint64_t bytes_in;           /* plaintext read from clients (after TLS) */
    uint64_t bytes_out;          /* plaintext written to clients (before TLS) */
    uint64_t conflated;          /* "latest" frames replaced in a queue by a newer one */
    /* The fan-out latency histogram: per-bucket (not cumulative) counts,
     * the last one +Inf; an observation is one array increment. */
    uint64_t fanout_hist[DLG_FANOUT_BUCKETS + 1];
    uint64_t fanout_hist_ns;     /* sum of the observations */
} dlg_counters;

/* Records one fan-out latency of ns nanoseconds (loop thread). */
static inline void dlg_counters_fanout(dlg_counters *k, uint64_t ns) {
    static const uint64_t bounds[DLG_FANOUT_BUCKETS] = DLG_FANOUT_BOUNDS_NS;
    size_t i = 0;
    while (i < DLG_FANOUT_BUCKETS && ns > bounds[i])
        i++;
    k->fanout_hist[i]++;
    k->fanout_hist_ns += ns;
}

/* Triggers received whose writes the next flush submits: each one's
 * receive time, observed into the histogram once that flush is done. More
 * in one turn than this are observed when queued (dlg_fanout_emit). */
#define DLG_FANOUT_PENDING 256

typedef struct dlg_server {
    uv_loop_t *loop;
    dlg_log log;
    dlg_server_opts opts;
    dlg_net_upcalls up;          /* net -> the layers above (boot sets them) */
    dlg_keeper keeper;           /* core -> the history (boot installs it) */
    dlg_forwarder fwd;           /* core -> the cluster (boot installs it) */
    dlg_listener listeners[DLG_MAX_LISTENERS]; /* from opts.listen, at start */
    size_t n_listeners;
    int reserve_fd;              /* spent to shed connections when out of fds, */
    int reserve_open;            /* when this is set (a zeroed server has none) */
    int emfile_active;           /* accept is failing for want of descriptors */
    uint64_t emfile_refused;     /* connections shed in the current episode */
    uv_signal_t sig_int, sig_term, sig_hup, sig_usr1;
    /* SIGUSR1 opens it again (logrotate); NULL = the log is not a file. */
    struct dlg_logout *logout;
    /* Called on SIGHUP (config reload); NULL = SIGHUP is ignored. */
    void (*reload_cb)(struct dlg_server *srv, void *ud);
    void *reload_ud;
    uv_check_t flush_check;      /* flushes dirty connections once per loop turn */
    uv_idle_t kick;              /* active while output waits: poll must not block */
    uv_timer_t sweep;            /* once a second: write timeouts, soft caps */
    uv_timer_t watchdog;         /* WATCHDOG=1 to systemd, when it asks (notify.h) */
    int watchdog_on;
    /* Connections that finished their handshake or were freed since the
     * sweep last returned free heap pages to the kernel (malloc_trim). */
    uint32_t heap_churn;
    uint64_t close_log_sec;      /* connection-close lines: the second counted, */
    uint32_t close_logs;         /* the lines written in it, */
    uint64_t close_logs_dropped; /* and those left out (reported by the sweep) */
    uint64_t accept_errors;      /* EMFILE and friends; logged once a second */
    uint64_t accept_errors_logged;
    struct dlg_conn *conns;      /* all live connections (intrusive list) */
    uint32_t n_conns;
    uint32_t n_sessions;         /* sessions of gRPC streams (conn.h: parent), which are
                                    in none of the lists here; */
    uint32_t n_sessions_ready;   /* ...of those, past Welcome (metrics) */
    /* Connections admitted that have not finished Hello, oldest first
     * (conn.c); those over max_connections that are only told so after
     * TLS are counted apart. */
    struct dlg_conn *pre_head, *pre_tail;
    uint32_t n_pre_auth, n_refusing;
    uint64_t pre_auth_evicted_logged;
    uint64_t next_conn_id;
    struct dlg_conn *dirty;      /* connections with output to flush this turn */
    struct dlg_conn *doomed;     /* connections to close after the current fan-out */
    struct dlg_rooms *rooms;
    dlg_schema *schema;          /* may be NULL: no typed events loaded */
    struct dlg_web *web;         /* owned; the page's files (opts.web_root), NULL = none */
    struct dlg_presence *presence; /* owned; presence events (presence.h), NULL = off
                                    (out of memory at start, or no loop yet) */
    dlg_counters counters;
    uint64_t fanout_pend[DLG_FANOUT_PENDING]; /* see DLG_FANOUT_PENDING */
    uint32_t n_fanout_pend;
    dlg_listener admin;          /* opts.admin's listener; admin.fd < 0 = none */
    int admin_on;                /* admin was set up (must be stopped and freed) */
    char *admin_token;           /* owned: the admin token (from admin.token_file), which
                                    opts.admin.token points at; NULL = none */
    char **create_roles;         /* room_admin.create */
    size_t n_create_roles;
    char **delete_roles;         /* room_admin.delete */
    size_t n_delete_roles;
    const struct dlg_config *cfg; /* borrowed; NULL when run from flags only */
    struct dlg_metrics *metrics;  /* borrowed; stopped by dlg_server_stop */
    struct dlg_jwt_verifier *jwt; /* owned; NULL = token auth off */
    /* Tokens verified by jwt (proto/jwtcache.h), cleared whenever jwt is
     * replaced; owned; NULL = none (auth.jwt.cache_size 0). */
    struct dlg_jwt_cache *jwt_cache;
    struct dlg_history *history;  /* owned; NULL = no history kept */
    struct dlg_bus *bus;          /* owned; NULL = a single node (bus.h) */
    struct dlg_uring *uring;      /* owned; NULL = sends are write() calls (opts.io_uring
                                     off, or refused by the kernel) */
    struct dlg_sendpool *sendpool; /* owned; NULL = the loop thread flushes alone */
    struct dlg_ratelimit *rates; /* owned: rate-limit buckets per identity */
    struct dlg_conn **flush_v;   /* the connections of one shared flush */
    size_t cap_flush_v;
    uint64_t send_turns;         /* flushes shared with the send threads */
    dlg_hooks hooks[8];          /* [0] = the config rules (access.c), then embedders' */
    size_t n_hooks;
    int stopping;
    /* Scratch buffers, valid only inside one callback (single loop thread). */
    uint8_t *rbuf;               /* socket reads */
    uint8_t *pbuf;               /* decrypted plaintext / coalescing stage; followed by
                                    wbuf in one block (a send thread's scratch layout) */
    uint8_t *wbuf;               /* ciphertext taken from OpenSSL (= pbuf + DLG_SCRATCH) */
} dlg_server;

#define DLG_SCRATCH (64 * 1024)

/* Connection-close lines logged at most per second (conn.c). */
#define DLG_CLOSE_LOGS_PER_SEC 20

/* Initialises srv on loop: rooms, every listener (TLS context, bound and
 * listening), signal handlers. srv->opts must be set; srv->schema may be
 * set beforehand (ownership passes to srv). On error everything acquired is
 * released and a message naming the cause has been logged. */
int dlg_server_start(dlg_server *srv, uv_loop_t *loop);

/* Stops accepting, closes every connection (sending close_notify), and
 * closes the server's handles; uv_run returns once all are closed. Safe to
 * call twice. */
void dlg_server_stop(dlg_server *srv);

/* Frees what dlg_server_start allocated. Call after uv_run has returned. */
void dlg_server_free(dlg_server *srv);



#endif
