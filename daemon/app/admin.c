/* admin.c: what the admin listener answers (srv->up.admin, installed at
 * boot): /metrics in the Prometheus text exposition format 0.0.4, from the
 * counters the layers keep (server.h dlg_counters, the rooms, the history,
 * the bus); /healthz and /readyz. Everything here runs at scrape time on
 * the loop thread; the hot paths only increment counters. */
#include "admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "bus.h"
#include "conn.h"
#include "dlg_alloc.h"
#include "dlg_version.h"
#include "history.h"
#include "room.h"

/* The text being built: grows by doubling; on ENOMEM it stays failed. */
typedef struct text {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...) {
    for (int tries = 0; !t->failed && tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->p && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t ncap = t->cap ? t->cap : 16384;
        while (ncap - t->len <= (size_t)n)
            ncap *= 2;
        char *np = dlg_realloc(t->p, ncap);
        if (np == NULL) {
            t->failed = 1;
            return;
        }
        t->p = np;
        t->cap = ncap;
    }
}

/* The text as a buffer for the response (t is emptied); NULL on ENOMEM. */
static dlg_buf *text_buf(text *t) {
    dlg_buf *b = t->failed ? NULL : dlg_buf_new(t->len);
    if (b != NULL && t->len)
        memcpy(b->data, t->p, t->len);
    free(t->p);
    memset(t, 0, sizeof(*t));
    return b;
}

static void family(text *t, const char *name, const char *type, const char *help) {
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(text *t, const char *name, const char *help, uint64_t v) {
    family(t, name, "counter", help);
    put(t, "%s %" PRIu64 "\n", name, v);
}

static void gauge(text *t, const char *name, const char *help, double v) {
    family(t, name, "gauge", help);
    put(t, "%s %.17g\n", name, v);
}

static const char *const tr_names[DLG_TR_N] = {
    [DLG_TR_NONE] = "unknown", [DLG_TR_NATIVE] = "native", [DLG_TR_HTTP] = "http",
    [DLG_TR_WEBSOCKET] = "websocket", [DLG_TR_H2] = "h2", [DLG_TR_GRPC] = "grpc",
    [DLG_TR_ADMIN] = "admin",
};
static const char *const state_names[] = {"tls", "hello", "ready", "closing"};
static const char *const hsf_names[DLG_HSF_N] = {
    [DLG_HSF_TLS] = "tls", [DLG_HSF_TIMEOUT] = "timeout", [DLG_HSF_AUTH] = "auth",
    [DLG_HSF_BUDGET] = "pre_auth_budget", [DLG_HSF_EVICTED] = "evicted",
    [DLG_HSF_FULL] = "max_connections",
};
static const char *const authf_names[DLG_AUTHF_N] = {
    [DLG_AUTHF_NO_CREDENTIALS] = "no_credentials", [DLG_AUTHF_TOKEN] = "token",
    [DLG_AUTHF_EXPIRED] = "expired", [DLG_AUTHF_CERT] = "certificate",
    [DLG_AUTHF_VERSION] = "protocol_version",
};

/* The label a room is counted under: a room of the config by its id (room
 * ids are [A-Za-z0-9_.:-], nothing to escape), every room made at run
 * time as one, so that clients cannot grow the set of series. */
#define DYNAMIC_ROOMS "_dynamic"

static void connections(text *t, dlg_server *srv) {
    uint64_t n[DLG_TR_N][4] = {{0}};
    uint64_t pending = 0;
    for (dlg_conn *c = srv->conns; c != NULL; c = c->next) {
        int st = c->state >= 0 && c->state < 4 ? c->state : DLG_CONN_CLOSING;
        n[dlg_conn_transport(c)][st]++;
        pending += dlg_conn_pending(c);
    }
    n[DLG_TR_GRPC][DLG_CONN_READY] += srv->n_sessions_ready;
    n[DLG_TR_GRPC][DLG_CONN_HELLO] += srv->n_sessions - srv->n_sessions_ready;
    family(t, "dialogue_connections", "gauge",
           "Open connections by transport and state (a gRPC stream's session counts as one "
           "grpc connection, beside its h2 connection).");
    for (int k = 1; k < DLG_TR_N; k++)
        for (int s = 0; s < 4; s++) {
            /* Only the states a transport can be in: a grpc session has no TLS
             * handshake of its own. */
            if (k == DLG_TR_GRPC && (s == DLG_CONN_TLS || s == DLG_CONN_CLOSING))
                continue;
            put(t, "dialogue_connections{transport=\"%s\",state=\"%s\"} %" PRIu64 "\n",
                tr_names[k], state_names[s], n[k][s]);
        }
    put(t, "dialogue_connections{transport=\"unknown\",state=\"tls\"} %" PRIu64 "\n",
        n[DLG_TR_NONE][DLG_CONN_TLS]);
    put(t, "dialogue_connections{transport=\"unknown\",state=\"hello\"} %" PRIu64 "\n",
        n[DLG_TR_NONE][DLG_CONN_HELLO] + n[DLG_TR_NONE][DLG_CONN_READY]);
    put(t, "dialogue_connections{transport=\"unknown\",state=\"closing\"} %" PRIu64 "\n",
        n[DLG_TR_NONE][DLG_CONN_CLOSING]);
    gauge(t, "dialogue_pending_output_bytes",
          "Output queued for clients and not yet taken by their sockets, every connection.",
          (double)pending);
}

static void handshakes(text *t, const dlg_counters *k) {
    counter(t, "dialogue_connections_accepted_total", "Connections accepted.",
            k->conns_accepted);
    family(t, "dialogue_handshakes_total", "counter",
           "Sessions that got their Welcome, by transport.");
    for (int i = DLG_TR_NATIVE; i < DLG_TR_N; i++)
        if (i == DLG_TR_NATIVE || i == DLG_TR_WEBSOCKET || i == DLG_TR_GRPC)
            put(t, "dialogue_handshakes_total{transport=\"%s\"} %" PRIu64 "\n", tr_names[i],
                k->handshakes[i]);
    family(t, "dialogue_handshake_failures_total", "counter",
           "Connections that ended before Welcome, by reason.");
    for (int i = 0; i < DLG_HSF_N; i++)
        put(t, "dialogue_handshake_failures_total{reason=\"%s\"} %" PRIu64 "\n", hsf_names[i],
            k->hs_failed[i]);
    counter(t, "dialogue_token_cache_hits_total",
            "Hellos whose token had been verified before (auth.jwt.cache_size): no signature "
            "check.", k->token_cache_hits);
    family(t, "dialogue_auth_refusals_total", "counter", "Hellos refused, by reason.");
    for (int i = 0; i < DLG_AUTHF_N; i++)
        put(t, "dialogue_auth_refusals_total{reason=\"%s\"} %" PRIu64 "\n", authf_names[i],
            k->auth_refused[i]);
}

static void rooms(text *t, dlg_server *srv) {
    const dlg_rooms *rs = srv->rooms;
    uint64_t n_cfg = 0, n_dyn = 0, dyn_members = 0;
    uint64_t dyn_trig = rs ? rs->gone_triggers : 0, dyn_deliv = rs ? rs->gone_deliveries : 0;
    for (size_t i = 0; rs && i < rs->n; i++) {
        const dlg_room *r = rs->v[i];
        if (r->dynamic) {
            n_dyn++;
            dyn_members += r->members.n;
            dyn_trig += r->triggers;
            dyn_deliv += r->deliveries;
        } else {
            n_cfg++;
        }
    }
    family(t, "dialogue_rooms", "gauge", "Rooms, from the config file or made at run time.");
    put(t, "dialogue_rooms{kind=\"config\"} %" PRIu64 "\n", n_cfg);
    put(t, "dialogue_rooms{kind=\"dynamic\"} %" PRIu64 "\n", n_dyn);
    family(t, "dialogue_room_members", "gauge",
           "Members by room (rooms made at run time together as room=\"" DYNAMIC_ROOMS "\").");
    for (size_t i = 0; rs && i < rs->n; i++)
        if (!rs->v[i]->dynamic)
            put(t, "dialogue_room_members{room=\"%s\"} %zu\n", rs->v[i]->id,
                rs->v[i]->members.n);
    put(t, "dialogue_room_members{room=\"" DYNAMIC_ROOMS "\"} %" PRIu64 "\n", dyn_members);
    /* Per event name: the room's slots (declared, or subscribed to: bounded
     * by max_room_events); names nobody subscribed to as event="_other". */
    static const char *const fam[2] = {"dialogue_triggers_total", "dialogue_deliveries_total"};
    static const char *const help[2] = {
        "Events delivered on this node by room and event (rooms made at run time as "
        "room=\"" DYNAMIC_ROOMS "\", event=\"_all\"; names nobody subscribed to as "
        "event=\"_other\").",
        "Event frames queued to subscribers, by room and event (labels as "
        "dialogue_triggers_total).",
    };
    for (int w = 0; w < 2; w++) {
        family(t, fam[w], "counter", help[w]);
        for (size_t i = 0; rs && i < rs->n; i++) {
            const dlg_room *r = rs->v[i];
            if (r->dynamic)
                continue;
            uint64_t sum = 0;
            for (size_t k = 0; k < r->n_slots; k++) {
                const dlg_evslot *s = r->slots[k];
                uint64_t v = w ? s->deliveries : s->triggers;
                sum += v;
                put(t, "%s{room=\"%s\",event=\"%s\"} %" PRIu64 "\n", fam[w], r->id, s->name, v);
            }
            uint64_t all = w ? r->deliveries : r->triggers;
            put(t, "%s{room=\"%s\",event=\"_other\"} %" PRIu64 "\n", fam[w], r->id,
                all > sum ? all - sum : 0);
        }
        put(t, "%s{room=\"" DYNAMIC_ROOMS "\",event=\"_all\"} %" PRIu64 "\n", fam[w],
            w ? dyn_deliv : dyn_trig);
    }
}

static void traffic(text *t, const dlg_counters *k) {
    counter(t, "dialogue_frames_total", "Client frames handled.", k->frames_in);
    counter(t, "dialogue_frames_rejected_total", "Client frames answered with an Error.",
            k->frames_rejected);
    counter(t, "dialogue_received_bytes_total",
            "Bytes read from clients (after TLS: the transport's plaintext).", k->bytes_in);
    counter(t, "dialogue_sent_bytes_total",
            "Bytes written to clients (before TLS: the transport's plaintext).", k->bytes_out);
    counter(t, "dialogue_slow_consumer_cuts_total",
            "Connections cut for pending output over max_pending_bytes, or over "
            "soft_pending_bytes for soft_pending_seconds.", k->slow_consumers);
    counter(t, "dialogue_write_timeout_cuts_total",
            "Connections cut because their socket took nothing for write_timeout_ms.",
            k->write_timeouts);
    counter(t, "dialogue_conflated_total",
            "Queued \"latest\" events replaced by a newer one of the same name.", k->conflated);
}

static void history(text *t, dlg_server *srv) {
    dlg_history_metrics h;
    dlg_history_metrics_get(srv->history, &h);
    gauge(t, "dialogue_history_rooms", "Rooms that keep events.", (double)h.rooms);
    gauge(t, "dialogue_history_events", "Events kept in memory, every room.", (double)h.events);
    gauge(t, "dialogue_history_bytes", "Bytes of the events kept in memory.", (double)h.bytes);
    if (!h.store)
        return;
    gauge(t, "dialogue_store_open", "1 while the SQLite store's writer runs.", h.store_open);
    counter(t, "dialogue_store_written_total", "Events committed to the store.", h.written);
    counter(t, "dialogue_store_failed_total", "Events in store transactions that failed.",
            h.failed);
    counter(t, "dialogue_store_dropped_total", "Events the store refused (queue full).",
            h.dropped);
    counter(t, "dialogue_store_commits_total", "Store transactions committed.", h.batches);
    family(t, "dialogue_store_commit_seconds_total", "counter",
           "Time spent in committed store transactions (divide by "
           "dialogue_store_commits_total for the mean commit latency).");
    put(t, "dialogue_store_commit_seconds_total %.9f\n", (double)h.commit_ns / 1e9);
}

static void cluster(text *t, dlg_server *srv) {
    const dlg_bus *b = srv->bus;
    if (b == NULL)
        return; /* a single node: no cluster series */
    gauge(t, "dialogue_cluster_link_up", "1 while the link to the cluster is up.",
          b->started && !b->stopped);
    gauge(t, "dialogue_cluster_log_pending",
          "Triggers handed to the cluster log without an answer yet (lag).", (double)b->pend.n);
    gauge(t, "dialogue_cluster_interests", "Rooms this node receives events for.",
          (double)b->stats.interests);
    counter(t, "dialogue_cluster_published_total", "Events handed to other nodes.",
            b->stats.published);
    counter(t, "dialogue_cluster_publish_failed_total", "Events other nodes will not get.",
            b->stats.publish_failed);
    counter(t, "dialogue_cluster_received_total", "Events from other nodes.", b->stats.received);
    counter(t, "dialogue_cluster_dropped_total", "Events from other nodes not delivered.",
            b->stats.dropped);
    counter(t, "dialogue_cluster_gaps_total", "Times a room may have missed events.",
            b->stats.gaps);
}

static void fanout(text *t, const dlg_counters *k) {
    static const uint64_t bounds[DLG_FANOUT_BUCKETS] = DLG_FANOUT_BOUNDS_NS;
    family(t, "dialogue_fanout_latency_seconds", "histogram",
           "From a trigger received to the flush that submitted the writes of its deliveries.");
    uint64_t cum = 0;
    for (int i = 0; i < DLG_FANOUT_BUCKETS; i++) {
        cum += k->fanout_hist[i];
        put(t, "dialogue_fanout_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
            (double)bounds[i] / 1e9, cum);
    }
    cum += k->fanout_hist[DLG_FANOUT_BUCKETS];
    put(t, "dialogue_fanout_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    put(t, "dialogue_fanout_latency_seconds_sum %.9f\n", (double)k->fanout_hist_ns / 1e9);
    put(t, "dialogue_fanout_latency_seconds_count %" PRIu64 "\n", cum);
}

static int metrics(dlg_server *srv, text *t) {
    family(t, "dialogue_build_info", "gauge", "The daemon's version, as a label; always 1.");
    put(t, "dialogue_build_info{version=\"%s\"} 1\n", DLG_VERSION);
    connections(t, srv);
    handshakes(t, &srv->counters);
    /* OpenSSL counts the sessions each listener context resumed; a reload
     * adds the replaced context's count to the server's. */
    uint64_t resumed = srv->counters.tls_resumed;
    for (size_t i = 0; i < srv->n_listeners; i++)
        if (srv->listeners[i].ssl_ctx != NULL)
            resumed += (uint64_t)SSL_CTX_sess_hits(srv->listeners[i].ssl_ctx);
    counter(t, "dialogue_tls_resumed_total",
            "TLS handshakes that resumed a session from a ticket (listen[].ticket_key).",
            resumed);
    rooms(t, srv);
    traffic(t, &srv->counters);
    history(t, srv);
    cluster(t, srv);
    fanout(t, &srv->counters);
    return t->failed ? -1 : 0;
}

int dlg_admin_ready(dlg_server *srv, char *why, size_t len) {
    size_t used = 0;
    why[0] = '\0';
#define NOT_READY(...)                                                                     \
    do {                                                                                   \
        if (used < len)                                                                    \
            used += (size_t)snprintf(why + used, len - used, __VA_ARGS__);                 \
    } while (0)
    if (srv->stopping)
        NOT_READY("stopping\n");
    for (size_t i = 0; i < srv->n_listeners; i++)
        if (srv->listeners[i].fd < 0)
            NOT_READY("listener %s is not listening\n", srv->listeners[i].conf.address);
    dlg_history_metrics h;
    dlg_history_metrics_get(srv->history, &h);
    if (h.store && !h.store_open)
        NOT_READY("the history store is not open\n");
    if (srv->bus != NULL && (!srv->bus->started || srv->bus->stopped))
        NOT_READY("the cluster link is down\n");
#undef NOT_READY
    return why[0] ? 0 : 1;
}

dlg_buf *dlg_admin_answer(dlg_server *srv, const char *path, size_t len, int *status,
                          const char **ctype) {
    text t = {0};
    *ctype = "text/plain; charset=utf-8";
    *status = 200;
    if (len == 8 && memcmp(path, "/metrics", 8) == 0) {
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        metrics(srv, &t);
    } else if (len == 8 && memcmp(path, "/healthz", 8) == 0) {
        /* Answered from the loop thread: the loop runs. */
        put(&t, "ok\n");
    } else if (len == 7 && memcmp(path, "/readyz", 7) == 0) {
        char why[1024];
        if (dlg_admin_ready(srv, why, sizeof(why))) {
            put(&t, "ready\n");
        } else {
            *status = 503;
            put(&t, "not ready:\n%s", why);
        }
    } else {
        *status = 404;
        put(&t, "no such admin endpoint: /metrics, /healthz and /readyz are served\n");
    }
    return text_buf(&t);
}
