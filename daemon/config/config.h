/* config.h: the daemon's configuration as loaded from a YAML file (or built
 * from defaults): the dlg_config struct, its loader and its validation. */
#ifndef DLG_CONFIG_H
#define DLG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Conventions for every struct below:
 * - All strings are owned by the dlg_config, NUL-terminated, and freed by
 *   dlg_config_free. An optional string that is absent (or empty) is NULL.
 * - Every array is `T *v; size_t n;` (v is NULL when n is 0).
 * - `line` fields give the 1-based line of the item in the file, 0 when the
 *   item was filled in by default; use them in messages that point back at
 *   the config (e.g. "schema file cannot be opened (dialogue.yaml:7)").
 * - Paths (cert, key, client_ca, schemas, secret_file, public_key_file,
 *   store_path, cluster.creds, cluster.tls.*) are stored resolved: a
 *   relative path in the file is joined to the config file's directory
 *   (lexically; nothing is opened or checked to exist). Absolute paths are
 *   kept as written.
 * - Role lists may hold "*": any client that got past Hello.
 * - Room ids and event names are 1..255 bytes of [A-Za-z0-9_.:-]. */

/* A list of owned strings. */
typedef struct dlg_config_strv {
    char **v;
    size_t n;
} dlg_config_strv;

/* Values of log_level; the same numbers as DLG_LOG_* in dlg_log.h. */
enum { DLG_CFG_LOG_ERROR, DLG_CFG_LOG_WARN, DLG_CFG_LOG_INFO, DLG_CFG_LOG_DEBUG };

/* Values of log_format. */
enum { DLG_CFG_LOG_TEXT, DLG_CFG_LOG_JSON };

/* auth.jwt.keys[].alg */
enum { DLG_CFG_ALG_HS256, DLG_CFG_ALG_RS256, DLG_CFG_ALG_ES256, DLG_CFG_ALG_EDDSA };

/* auth.client_cert.user_from: the subject CN, or the one subject
 * alternative name of a type (DNS, email or URI). */
enum { DLG_CFG_USER_FROM_CN, DLG_CFG_USER_FROM_DNS, DLG_CFG_USER_FROM_EMAIL,
       DLG_CFG_USER_FROM_URI };

/* rooms[].delivery[].policy; the same numbers as DLG_DELIVERY_* in room.h. */
enum { DLG_CFG_DELIVERY_STREAM, DLG_CFG_DELIVERY_LATEST };

/* metrics.alerts[].metric; the same order as DLG_METRIC_* in metrics.h. */
enum { DLG_CFG_METRIC_CPU, DLG_CFG_METRIC_MEMORY, DLG_CFG_METRIC_REQUESTS,
       DLG_CFG_METRIC_ERRORS, DLG_CFG_METRIC_LATENCY };

/* metrics.alerts[].op; the same order as DLG_OP_* in metrics.h. */
enum { DLG_CFG_OP_GT, DLG_CFG_OP_GE, DLG_CFG_OP_LT, DLG_CFG_OP_LE };

/* metrics.alerts[].severity; the dialogue.dashboard.Severity values. */
enum { DLG_CFG_SEV_LOW, DLG_CFG_SEV_MEDIUM, DLG_CFG_SEV_HIGH, DLG_CFG_SEV_CRITICAL };

/* store */
enum { DLG_CFG_STORE_MEMORY, DLG_CFG_STORE_SQLITE };

/* The most listeners (listen[]) one daemon serves. */
#define DLG_CFG_MAX_LISTENERS 16

/* listen[]: one listening socket. */
typedef struct dlg_config_listener {
    char *address;              /* as written, "host:port" [127.0.0.1:3000] */
    char *host;                 /* host part, IPv6 without brackets ("::1") */
    uint16_t port;              /* 0 = ephemeral */
    bool tls;                   /* [true]; false = plaintext (benchmarks only) */
    char *cert;                 /* PEM chain; required when tls, except for
                                   the default listener (NULL: take it from
                                   the command line) */
    char *key;                  /* PEM private key; same rule as cert */
    char *client_ca;            /* NULL = do not ask for client certificates */
    char *client_crl;           /* NULL = none: CRLs (a PEM file, or a folder of
                                   them) checked for the client certificate and
                                   every CA above it; needs client_ca */
    bool require_client_cert;   /* [false]; true needs client_ca */
    char *ticket_key;           /* NULL = no session tickets: 80 bytes that encrypt
                                   TLS 1.3 session tickets (resumption across
                                   restarts); not with client_ca */
    unsigned line;
} dlg_config_listener;

/* limits: caps that protect the daemon (see docs/config.md for ranges). */
typedef struct dlg_config_limits {
    uint32_t max_frame;             /* [1048576] bytes of one frame body */
    uint32_t max_connections;       /* [10000] */
    uint32_t handshake_timeout_ms;  /* [2000] TLS handshake + Hello */
    uint32_t pre_auth_max_bytes;    /* [16384] input accepted before Welcome */
    uint32_t pre_auth_max_connections; /* [1000] connections before Welcome */
    uint64_t max_pending_bytes;     /* [67108864] hard cap on queued output */
    uint64_t soft_pending_bytes;    /* [8388608] soft cap on queued output... */
    uint32_t soft_pending_seconds;  /* [30] ...held this long = slow consumer */
    uint32_t write_timeout_ms;      /* [10000] */
    uint32_t heartbeat_ms;          /* [30000] */
    uint32_t max_rooms_per_connection; /* [128] */
    uint32_t room_ops_per_second;   /* [50] Join/Leave/CreateRoom/DeleteRoom per
                                       identity; 0 = unlimited */
    uint32_t room_ops_burst;        /* [500]; 0 = room_ops_per_second */
    uint32_t max_subscriptions;     /* [1024] event names one member may subscribe to */
    uint32_t max_room_events;       /* [10000] distinct event names subscribed in
                                       one room that accepts any event */
    uint32_t max_streams_per_connection; /* [100] concurrent HTTP/2 streams (gRPC
                                       calls) on one connection */
} dlg_config_limits;

/* auth.jwt.keys[]: one key a token may be signed with. */
typedef struct dlg_config_jwt_key {
    char *kid;                  /* NULL = any token kid; else it must match */
    int alg;                    /* DLG_CFG_ALG_*; required */
    char *secret_file;          /* HS256 only (required there): raw secret */
    char *public_key_file;      /* RS256/ES256/EdDSA only (required): PEM */
    unsigned line;
} dlg_config_jwt_key;

typedef struct dlg_config_jwt {
    char *issuer;               /* NULL = iss not checked */
    char *audience;             /* NULL = a token carrying aud is refused */
    bool issuer_audience_optional; /* [false] with RS256/ES256/EdDSA keys, issuer
                                   and audience are required unless this is
                                   set (an explicit opt-out) */
    uint32_t leeway_seconds;    /* [30] clock skew allowed on exp/nbf/iat */
    char *roles_claim;          /* ["role"] claim holding a string or array */
    uint32_t cache_size;        /* [4096] verified tokens kept (0 = none); start only */
    dlg_config_jwt_key *keys;   /* [none] = token authentication off */
    size_t n_keys;
} dlg_config_jwt;

/* auth.client_cert.roles[]: roles granted to a certificate identity. */
typedef struct dlg_config_cert_roles {
    char *match;                /* the user name (CN or SAN) to match exactly */
    dlg_config_strv roles;      /* roles granted ("*" not allowed) */
    unsigned line;
} dlg_config_cert_roles;

typedef struct dlg_config_client_cert {
    int user_from;              /* [DLG_CFG_USER_FROM_CN] */
    dlg_config_cert_roles *roles; /* [none] */
    size_t n_roles;
} dlg_config_client_cert;

typedef struct dlg_config_auth {
    bool anonymous;             /* [false] allow clients without credentials */
    dlg_config_jwt jwt;
    dlg_config_client_cert client_cert;
} dlg_config_auth;

typedef struct dlg_config_room_admin {
    dlg_config_strv create_roles; /* key `create` [none]: roles that may
                                     create rooms at run time */
    dlg_config_strv delete_roles; /* key `delete` [none]: roles that may
                                     delete any dynamic room */
} dlg_config_room_admin;

/* rooms[].trigger_events[]: extra trigger roles for one event. */
typedef struct dlg_config_event_roles {
    char *event;                /* one of the room's events (not "*") */
    dlg_config_strv roles;
    unsigned line;
} dlg_config_event_roles;

/* rooms[].delivery[] */
typedef struct dlg_config_delivery {
    char *event;                /* an event of the room, or "*" = all others */
    int policy;                 /* DLG_CFG_DELIVERY_*; required */
    unsigned line;
} dlg_config_delivery;

/* rooms[].history[] */
typedef struct dlg_config_history {
    char *event;                /* an event of the room, or "*" = all others */
    uint32_t limit;             /* required: events kept per event type */
    uint32_t max_age_seconds;   /* [0] = no age limit */
    unsigned line;
} dlg_config_history;

/* rooms[]: a room that exists from start-up and cannot be deleted. */
typedef struct dlg_config_room {
    char *id;                   /* required, unique */
    char *name;                 /* NULL = none */
    char *description;          /* NULL = none */
    dlg_config_strv events;     /* [] = clients may not trigger; {"*"} = any */
    bool any_event;             /* events is exactly ["*"] */
    dlg_config_strv default_subscriptions; /* [] ; {"*"} = every event */
    bool default_all;           /* default_subscriptions is exactly ["*"] */
    uint32_t max_size;          /* [0] = unlimited members */
    dlg_config_strv join;       /* [none] roles that may join */
    dlg_config_strv trigger;    /* [none] roles that may trigger any event */
    dlg_config_event_roles *trigger_events; /* [none] */
    size_t n_trigger_events;
    dlg_config_delivery *delivery; /* [none]: every event is streamed */
    size_t n_delivery;
    uint32_t rate_per_second;   /* [0] = no rate limit (rate_limit.per_second) */
    uint32_t rate_burst;        /* [0]; filled with rate_per_second when that
                                   is set and burst is 0 or absent */
    dlg_config_history *history; /* [none] = no history kept */
    size_t n_history;
    int32_t sync_history_on_join; /* [0] = off, -1 = all kept, N = last N per
                                     event ("true" reads as -1, "false" as 0) */
    unsigned line;
} dlg_config_room;

/* auto_join[]: rooms a client with role joins right after Welcome. */
typedef struct dlg_config_auto_join {
    char *role;                 /* required ("*" = every client) */
    dlg_config_strv rooms;      /* ids of rooms from `rooms` */
    unsigned line;
} dlg_config_auto_join;

/* metrics.alerts[] */
typedef struct dlg_config_alert {
    int metric;                 /* DLG_CFG_METRIC_*; required */
    int op;                     /* DLG_CFG_OP_*; required */
    double threshold;           /* required, finite */
    int severity;               /* DLG_CFG_SEV_*; required */
    char *message;              /* required template; "{value}", "{metric}" */
    uint32_t cooldown_seconds;  /* [60] */
    unsigned line;
} dlg_config_alert;

/* metrics: the built-in metrics source; present only when `enabled`. */
typedef struct dlg_config_metrics {
    bool enabled;               /* the `metrics` key is present */
    char *room;                 /* required when enabled: a room from `rooms` */
    uint32_t interval_ms;       /* [1000] */
    dlg_config_alert *alerts;   /* [cpu > 90, high, "CPU usage critical:
                                   {value}%", cooldown 60]; `alerts: []` =
                                   none */
    size_t n_alerts;
    unsigned line;
} dlg_config_metrics;

/* cluster: several dialogued nodes sharing rooms through NATS
 * (docs/cluster.md); present only when `enabled`. */
typedef struct dlg_config_cluster {
    bool enabled;               /* the `cluster` key is present */
    char *node_id;              /* required: this node's name, unique in the
                                   cluster (1..64 bytes of [A-Za-z0-9_.:-]) */
    dlg_config_strv nats;       /* required, at least one: server URLs,
                                   nats://host:port or tls://host:port */
    char *creds;                /* NULL = none: NATS credentials file (user
                                   JWT + NKey seed; resolved path) */
    bool tls;                   /* the `tls` mapping is present: TLS to NATS */
    char *tls_ca;               /* tls.ca: CA to verify the servers; NULL =
                                   the system store (resolved path) */
    char *tls_cert;             /* tls.cert + tls.key: client certificate, */
    char *tls_key;              /* both or neither (resolved paths) */
    /* log: each room's events numbered and kept by a JetStream stream, so
     * seq, epoch and history are the same on every node (docs/cluster.md).
     * Absent = no log: each node numbers what it delivers. */
    bool log;                   /* the `log` mapping is present */
    uint32_t log_replicas;      /* log.replicas [0 = min(3, number of URLs)] */
    uint64_t log_max_events;    /* log.max_events: per room [100000] */
    uint32_t log_max_age_s;     /* log.max_age: seconds [0 = no age limit] */
    int log_memory;             /* log.storage: 0 file [default], 1 memory */
    unsigned line;
} dlg_config_cluster;

/* http: the web page and WebSocket sessions on the listeners (docs/websocket.md). */
typedef struct dlg_config_http {
    char *web_root;             /* [none] folder of the page's files (resolved); none =
                                   only the WebSocket endpoint is served */
    dlg_config_strv allowed_origins; /* [none] origins besides the page's own that may
                                   open a WebSocket ("https://host:port", or "*") */
} dlg_config_http;

/* admin: the listener of /metrics, /healthz and /readyz (docs/operations.md).
 * Absent = no admin listener. */
typedef struct dlg_config_admin {
    bool enabled;               /* the section is there */
    char *listen;               /* [127.0.0.1:9090] "host:port"; port 0 = any free port */
    char *host;                 /* host part of listen */
    uint16_t port;
    char *cert;                 /* PEM chain (resolved); with key: TLS */
    char *key;                  /* PEM private key (resolved) */
    char *token_file;           /* (resolved) one bearer token, required of every request */
    unsigned line;
} dlg_config_admin;

struct dlg_ypos;

typedef struct dlg_config {
    char *path;                 /* the file loaded; NULL for defaults */
    struct dlg_ypos *pos;       /* where each value was (dlg_config_where); only
                                   dlg_config_check records them */
    size_t n_pos;
    int log_level;              /* [DLG_CFG_LOG_INFO] */
    int log_format;             /* [DLG_CFG_LOG_TEXT] DLG_CFG_LOG_JSON: one object a line */
    char *log_file;             /* NULL = stderr: lines appended to this file, which
                                   SIGUSR1 opens again (resolved path) */
    dlg_config_listener *listen; /* [one: TLS on 127.0.0.1:3000, no cert] */
    size_t n_listen;
    dlg_config_strv schemas;    /* [none] descriptor set files (resolved) */
    bool allow_unknown_fields;  /* [false] */
    dlg_config_limits limits;
    dlg_config_auth auth;
    dlg_config_room_admin room_admin;
    dlg_config_room *rooms;     /* [none] */
    size_t n_rooms;
    dlg_config_auto_join *auto_join; /* [none] */
    size_t n_auto_join;
    dlg_config_metrics metrics;
    int store;                  /* [DLG_CFG_STORE_MEMORY] */
    char *store_path;           /* required when store is sqlite (resolved) */
    int store_sync;             /* [0 = ack] 1 = batch; the DLG_STORE_SYNC_* values */
    dlg_config_cluster cluster; /* [absent] = a single node */
    bool io_uring;              /* [true] send to clients through io_uring (falls back
                                   to write() when the kernel refuses it) */
    uint32_t send_threads;      /* [0 = one per online core] threads sharing the flush of
                                   one loop turn, the loop thread included; 1 = the loop
                                   thread alone (see docs/benchmarks.md) */
    bool tls_own_records;       /* [true] established TLS 1.3 sessions leave OpenSSL for
                                   dialogue's record layer (docs/config.md) */
    dlg_config_http http;
    dlg_config_admin admin;     /* [absent] = no admin listener */
} dlg_config;

/* The most send_threads accepted. */
#define DLG_CFG_SEND_THREADS_MAX 64

/* Builds a configuration holding only the defaults documented above (for a
 * daemon run with command-line flags only). *out is owned by the caller
 * (dlg_config_free). Returns 0, DLG_EINVAL (out is NULL) or DLG_ENOMEM; on
 * error *out is left unchanged. */
int dlg_config_new_default(dlg_config **out);

/* Loads and validates the YAML file at path. On success *out gets a new
 * configuration owned by the caller (dlg_config_free), defaults filled in for
 * every absent key. On error *out is left unchanged and err (if errlen > 0)
 * gets one line naming the file, the line and column, the key path and what
 * was expected, e.g.
 *   dialogue.yaml:12:15: rooms[0].max_size: expected an unsigned integer, got "ten"
 * Returns 0, DLG_EIO (file cannot be read), DLG_ECONFIG (YAML syntax error or
 * invalid content), DLG_EINVAL (path or out is NULL) or DLG_ENOMEM. */
int dlg_config_load(const char *path, dlg_config **out, char *err, size_t errlen);

/* One error of a configuration file. */
typedef struct dlg_config_error {
    char *path;                 /* the key path it is about ("rooms[0].events[1]"),
                                   "" for the file or its root */
    char *text;                 /* "file:line:col: path: what", as dlg_config_load
                                   would have put it in err */
} dlg_config_error;

/* Every error dlg_config_check found, in the order of the walk (the
 * sections in the order of config.h, each in file order). */
typedef struct dlg_config_errors {
    dlg_config_error *v;        /* owned: dlg_config_errors_free */
    size_t n;                   /* kept: the first 1000 */
    size_t total;               /* found */
} dlg_config_errors;

/* Like dlg_config_load, but goes on after an error to find every one:
 * each key and list entry is read whatever happened to the ones before
 * it, and a check across keys runs only when they all read well (so one
 * mistake is not reported twice). *errs gets the errors (zeroed first;
 * free with dlg_config_errors_free in every case). *out gets the
 * configuration as far as it could be read, with the position of every
 * value (dlg_config_where) -- for further checks of what it names (files,
 * keys), never to run a server with -- or NULL when the file could not be
 * opened or is not YAML. Returns 0 (no error), DLG_ECONFIG, DLG_EIO (the
 * file cannot be opened), DLG_EINVAL (a NULL argument) or DLG_ENOMEM (then
 * *out is NULL and errs empty). */
int dlg_config_check(const char *path, dlg_config **out, dlg_config_errors *errs);

void dlg_config_errors_free(dlg_config_errors *e);

/* Whether any error of e is about prefix or a key under it ("listen[0]"
 * covers "listen[0].cert", not "listen[01]"). */
bool dlg_config_errors_under(const dlg_config_errors *e, const char *prefix);

/* The 1-based line and column of the value at key path ("listen[0].cert",
 * "rooms[2]") in a configuration from dlg_config_check: 0, or
 * DLG_ENOTFOUND (never read, or not recorded: a configuration from
 * dlg_config_load has no positions), DLG_EINVAL. line and col may be NULL. */
int dlg_config_where(const dlg_config *c, const char *path, unsigned *line, unsigned *col);

/* Frees c and everything it owns. NULL is ignored. */
void dlg_config_free(dlg_config *c);

/* The room with exactly this id, or NULL. The pointer is valid as long as c. */
const dlg_config_room *dlg_config_find_room(const dlg_config *c, const char *id);

#endif
