/* boot.c: config -> server state (see boot.h). */
#include "boot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <ctype.h>

#include "admin.h"
#include "dispatch.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "history.h"
#include "hooks.h"
#include "auth.h"
#include "bus.h"
#include "ratelimit.h"
#include "room.h"

/* The config's log_level is used as a dlg_log level as it is (here and in
 * main.c): checked, not trusted. */
_Static_assert((int)DLG_CFG_LOG_ERROR == (int)DLG_LOG_ERROR &&
                   (int)DLG_CFG_LOG_WARN == (int)DLG_LOG_WARN &&
                   (int)DLG_CFG_LOG_INFO == (int)DLG_LOG_INFO &&
                   (int)DLG_CFG_LOG_DEBUG == (int)DLG_LOG_DEBUG,
               "config log levels must be the dlg_log levels");

static int strv_copy(char ***out, size_t *n, const dlg_config_strv *in) {
    *out = dlg_calloc(in->n ? in->n : 1, sizeof(char *));
    if (*out == NULL)
        return DLG_ENOMEM;
    /* Counted as it goes: a partial copy is freed with the room. */
    for (*n = 0; *n < in->n; (*n)++)
        if (((*out)[*n] = dlg_strdup(in->v[*n])) == NULL)
            return DLG_ENOMEM;
    return 0;
}

int dlg_boot_check_events(const dlg_schema *sc, const dlg_config_room *cr, const char *cfgpath,
                          char *err, size_t errlen) {
    for (size_t i = 0; i < cr->events.n; i++) {
        const char *e = cr->events.v[i];
        if (strcmp(e, "*") != 0 && (sc == NULL || dlg_schema_event_find(sc, e) == NULL)) {
            snprintf(err, errlen, "%s:%u: rooms: room %s lists event %s, but no loaded schema "
                                  "defines it (add its descriptor set to `schemas`)",
                     cfgpath, cr->line, cr->id, e);
            return DLG_ECONFIG;
        }
    }
    return 0;
}

int dlg_boot_schema(const dlg_config *cfg, const char *const *extra, size_t n_extra,
                    const struct dlg_rooms *rooms, dlg_schema **out, char *err, size_t errlen) {
    const char *path = cfg->path ? cfg->path : "(defaults)";
    dlg_schema *sc = NULL;
    int rc = 0;
    *out = NULL;
    if (n_extra + cfg->schemas.n == 0)
        goto check;
    if ((rc = dlg_schema_new(&sc)) != 0) {
        snprintf(err, errlen, "out of memory loading schemas");
        return rc;
    }
    for (size_t i = 0; i < n_extra + cfg->schemas.n; i++) {
        const char *file = i < n_extra ? extra[i] : cfg->schemas.v[i - n_extra];
        char why[512];
        if ((rc = dlg_schema_load_file(sc, file, why, sizeof(why))) != 0) {
            snprintf(err, errlen, "%s: schemas: %s", path, why);
            goto fail;
        }
    }
check:
    for (size_t i = 0; i < cfg->n_rooms; i++)
        if ((rc = dlg_boot_check_events(sc, &cfg->rooms[i], path, err, errlen)) != 0)
            goto fail;
    /* Rooms the file no longer lists (and rooms made at run time) keep
     * their events: every typed one needs its schema still. */
    for (size_t i = 0; rooms && i < rooms->n; i++) {
        const dlg_room *r = rooms->v[i];
        for (size_t k = 0; !r->any_event && k < r->n_events; k++) {
            if (sc == NULL || dlg_schema_event_find(sc, r->events[k]) == NULL) {
                snprintf(err, errlen, "%s: schemas: room %s has event %s, which no schema "
                                      "of the new configuration defines", path, r->id,
                         r->events[k]);
                rc = DLG_ECONFIG;
                goto fail;
            }
        }
    }
    *out = sc;
    return 0;
fail:
    dlg_schema_free(sc);
    return rc ? rc : DLG_ECONFIG;
}

int dlg_boot_add_room(dlg_server *srv, const dlg_config_room *cr, const char *cfgpath,
                    char *err, size_t errlen) {
    int rc = dlg_boot_check_events(srv->schema, cr, cfgpath, err, errlen);
    if (rc != 0)
        return rc;
    dlg_room_spec spec = {
        .id = cr->id, .name = cr->name, .description = cr->description,
        .events = (const char *const *)cr->events.v, .n_events = cr->events.n,
        .default_subs = (const char *const *)cr->default_subscriptions.v,
        .n_default_subs = cr->default_subscriptions.n, .max_size = cr->max_size,
    };
    dlg_room *r = NULL;
    char why[256];
    rc = dlg_rooms_add(srv->rooms, &spec, 0, &r, why, sizeof(why));
    if (rc != 0) {
        snprintf(err, errlen, "%s:%u: %s", cfgpath, cr->line, why);
        return rc;
    }
    return dlg_boot_room_rules(r, cr, err, errlen);
}

int dlg_boot_room_rules(dlg_room *r, const dlg_config_room *cr, char *err, size_t errlen) {
    int rc;
    /* Replace whatever rules the room had (reload). */
    dlg_strv_free(r->join_roles, r->n_join_roles);
    dlg_strv_free(r->trigger_roles, r->n_trigger_roles);
    r->join_roles = r->trigger_roles = NULL;
    r->n_join_roles = r->n_trigger_roles = 0;
    for (size_t i = 0; i < r->n_trigger_events; i++) {
        free(r->trigger_events[i].event);
        dlg_strv_free(r->trigger_events[i].roles, r->trigger_events[i].n_roles);
    }
    free(r->trigger_events);
    r->trigger_events = NULL;
    r->n_trigger_events = 0;
    r->max_size = cr->max_size;
    r->rate_per_sec = cr->rate_per_second;
    r->rate_burst = cr->rate_burst;
    if ((rc = strv_copy(&r->join_roles, &r->n_join_roles, &cr->join)) != 0 ||
        (rc = strv_copy(&r->trigger_roles, &r->n_trigger_roles, &cr->trigger)) != 0)
        goto oom;
    if (cr->n_trigger_events) {
        r->trigger_events = dlg_calloc(cr->n_trigger_events, sizeof(*r->trigger_events));
        if (r->trigger_events == NULL)
            goto oom;
        for (size_t i = 0; i < cr->n_trigger_events; i++) {
            struct dlg_event_roles *te = &r->trigger_events[i];
            r->n_trigger_events++;
            if ((te->event = dlg_strdup(cr->trigger_events[i].event)) == NULL ||
                strv_copy(&te->roles, &te->n_roles, &cr->trigger_events[i].roles) != 0)
                goto oom;
        }
    }
    /* Delivery policy lives on the event's subscriber slot; a "*" rule
     * also covers slots made later (events of a "*" room). */
    r->default_delivery = DLG_DELIVERY_STREAM;
    for (size_t i = 0; i < cr->n_delivery; i++)
        if (strcmp(cr->delivery[i].event, "*") == 0)
            r->default_delivery = cr->delivery[i].policy;
    for (size_t k = 0; k < r->n_slots; k++)
        r->slots[k]->delivery = r->default_delivery;
    for (size_t i = 0; i < cr->n_delivery; i++) /* exact names win over "*" */
        if (strcmp(cr->delivery[i].event, "*") != 0) {
            /* A name the room does not list yet ("*" rooms) gets its slot
             * now, so the rule is there when its first subscriber comes. */
            dlg_evslot *s = dlg_room_slot_make(r, cr->delivery[i].event);
            if (s == NULL)
                goto oom;
            s->delivery = cr->delivery[i].policy;
        }
    return 0;
oom:
    snprintf(err, errlen, "out of memory setting up room %s", cr->id);
    return DLG_ENOMEM;
}

/* "host:port" or "[v6]:port" with a loopback host (127/8, ::1, localhost). */
static int addr_loopback(const char *a) {
    char host[256];
    const char *e = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
    const char *s = a[0] == '[' ? a + 1 : a;
    if (e == NULL || (size_t)(e - s) >= sizeof(host))
        return 0;
    memcpy(host, s, (size_t)(e - s));
    host[e - s] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int dlg_boot_read_token(const char *file, char **out, char *err, size_t errlen) {
    char buf[1024];
    *out = NULL;
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read token_file %s: %s", file, strerror(errno));
        return DLG_EIO;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n == sizeof(buf)) {
        snprintf(err, errlen, "token_file %s: %s", file,
                 bad ? "read error" : "longer than 1023 bytes");
        return DLG_EIO;
    }
    /* One line: surrounding blanks and the final newline are not the token. */
    size_t s = 0;
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    while (s < n && isspace((unsigned char)buf[s]))
        s++;
    for (size_t i = s; i < n; i++)
        if (!isgraph((unsigned char)buf[i])) {
            snprintf(err, errlen, "token_file %s: the token must be one word of visible "
                                  "characters", file);
            return DLG_ECONFIG;
        }
    if (n - s < 16) {
        snprintf(err, errlen, "token_file %s: the token is shorter than 16 characters", file);
        return DLG_ECONFIG;
    }
    if ((*out = dlg_strndup(buf + s, n - s)) == NULL) {
        snprintf(err, errlen, "out of memory reading %s", file);
        return DLG_ENOMEM;
    }
    return 0;
}

int dlg_boot_admin(dlg_server *srv, const dlg_config *cfg, const char *flag_addr, char *err,
                   size_t errlen) {
    const dlg_config_admin *a = &cfg->admin;
    const char *path = cfg->path ? cfg->path : "(defaults)";
    if (!a->enabled && flag_addr == NULL)
        return 0;
    const char *addr = flag_addr ? flag_addr : a->listen;
    if (!addr_loopback(addr) && (!a->cert || !a->token_file)) {
        snprintf(err, errlen, "--admin %s: not a loopback address: the admin listener then "
                              "needs TLS and a bearer token (admin.cert, admin.key and "
                              "admin.token_file in %s)", addr, path);
        return DLG_ECONFIG;
    }
    free(srv->admin_token);
    srv->admin_token = NULL;
    if (a->token_file != NULL) {
        char why[512];
        int rc = dlg_boot_read_token(a->token_file, &srv->admin_token, why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "%s:%u: admin: %s", path, a->line, why);
            return rc;
        }
    }
    srv->opts.admin = (dlg_listener_conf){
        .address = addr, .plaintext = a->cert == NULL, .cert_file = a->cert,
        .key_file = a->key, .admin = 1, .token = srv->admin_token,
    };
    return 0;
}

_Static_assert(DLG_CFG_MAX_LISTENERS == DLG_MAX_LISTENERS, "one limit");

void dlg_boot_listeners(dlg_server_opts *o, const dlg_config *cfg) {
    if (cfg->n_listen == 0)
        return;
    o->n_listen = cfg->n_listen < DLG_MAX_LISTENERS ? cfg->n_listen : DLG_MAX_LISTENERS;
    for (size_t i = 0; i < o->n_listen; i++) {
        const dlg_config_listener *l = &cfg->listen[i];
        /* The default listener may take its certificate from the command
         * line (cert and key NULL here). */
        o->listen[i] = (dlg_listener_conf){
            .address = l->address, .plaintext = !l->tls, .cert_file = l->cert,
            .key_file = l->key, .client_ca_file = l->client_ca,
            .client_crl_file = l->client_crl, .require_client_cert = l->require_client_cert,
            .ticket_key_file = l->ticket_key,
        };
    }
}

void dlg_boot_limits(dlg_server_opts *o, const dlg_config *cfg) {
    o->web_root = cfg->http.web_root;
    o->allowed_origins = (const char *const *)cfg->http.allowed_origins.v;
    o->n_allowed_origins = cfg->http.allowed_origins.n;
    o->max_frame = cfg->limits.max_frame;
    o->max_connections = cfg->limits.max_connections;
    o->handshake_timeout_ms = cfg->limits.handshake_timeout_ms;
    o->pre_auth_max_bytes = cfg->limits.pre_auth_max_bytes;
    o->pre_auth_max_connections = cfg->limits.pre_auth_max_connections;
    o->max_pending_bytes = cfg->limits.max_pending_bytes;
    o->soft_pending_bytes = cfg->limits.soft_pending_bytes;
    o->soft_pending_ms = cfg->limits.soft_pending_seconds * 1000u;
    o->write_timeout_ms = cfg->limits.write_timeout_ms;
    o->heartbeat_ms = cfg->limits.heartbeat_ms;
    o->max_rooms_per_conn = cfg->limits.max_rooms_per_connection;
    o->room_ops_per_sec = cfg->limits.room_ops_per_second;
    o->room_ops_burst = cfg->limits.room_ops_burst;
    o->max_subscriptions = cfg->limits.max_subscriptions;
    o->max_room_events = cfg->limits.max_room_events;
    o->max_streams = cfg->limits.max_streams_per_connection;
    o->allow_anonymous = cfg->auth.anonymous;
}

int dlg_boot_apply(dlg_server *srv, const dlg_config *cfg, char *err, size_t errlen) {
    const char *path = cfg->path ? cfg->path : "(defaults)";
    dlg_server_opts *o = &srv->opts;
    srv->cfg = cfg;
    /* The layers' seams: net calls the protocol, the core calls the history
     * and the cluster, through these (none of them names an upper one). */
    if (srv->up.frame == NULL)
        srv->up = (dlg_net_upcalls){.frame = dlg_dispatch_frame, .closing = dlg_dispatch_closing};
    if (srv->up.admin == NULL)
        srv->up.admin = dlg_admin_answer;
    dlg_history_keeper(srv, &srv->keeper);
    dlg_bus_forwarder(srv, &srv->fwd);
    srv->log.level = cfg->log_level;
    dlg_boot_listeners(o, cfg);
    dlg_boot_limits(o, cfg);
    o->store_sync = cfg->store_sync;
    o->allow_unknown_fields = cfg->allow_unknown_fields;
    o->io_uring = cfg->io_uring;
    _Static_assert(DLG_CFG_SEND_THREADS_MAX == DLG_SEND_THREADS_MAX, "one limit");
    o->send_threads = cfg->send_threads;
    o->tls_own_records = cfg->tls_own_records;

    int rc;
    if ((rc = dlg_auth_setup(srv, cfg, err, errlen)) != 0)
        return rc;
    if (cfg->schemas.n > 0) {
        if (srv->schema == NULL && (rc = dlg_schema_new(&srv->schema)) != 0)
            goto oom;
        for (size_t i = 0; i < cfg->schemas.n; i++) {
            char why[512];
            if ((rc = dlg_schema_load_file(srv->schema, cfg->schemas.v[i], why,
                                           sizeof(why))) != 0) {
                snprintf(err, errlen, "%s: schemas: %s", path, why);
                return rc;
            }
        }
    }
    if (srv->rooms == NULL && (srv->rooms = dlg_rooms_new()) == NULL)
        goto oom;
    if (srv->rates == NULL && (srv->rates = dlg_ratelimit_new()) == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->n_rooms; i++)
        if ((rc = dlg_boot_add_room(srv, &cfg->rooms[i], path, err, errlen)) != 0)
            return rc;
    /* After the rooms: a durable store sets their epochs and seqs. */
    if (srv->history == NULL && (rc = dlg_history_setup(srv, cfg, err, errlen)) != 0)
        return rc;
    /* Opened by dlg_server_start; created here so that a bad credentials
     * or TLS file is a config error, reported before anything listens. */
    if (cfg->cluster.enabled && srv->bus == NULL) {
        char why[512];
        if ((rc = dlg_bus_cluster_new(srv, &cfg->cluster, &srv->bus, why, sizeof(why))) != 0) {
            snprintf(err, errlen, "%s:%u: %s", path, cfg->cluster.line, why);
            return rc;
        }
    }
    if (strv_copy(&srv->create_roles, &srv->n_create_roles, &cfg->room_admin.create_roles) ||
        strv_copy(&srv->delete_roles, &srv->n_delete_roles, &cfg->room_admin.delete_roles))
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory applying %s", path);
    return DLG_ENOMEM;
}
