/* config_int.h: what the files of the config module share: the checks on
 * names, roles and string lists every section uses, and each section's
 * loader (load_*.c) and freer. config.c walks the root and calls them.
 * Not for use outside daemon/config. */
#ifndef DLG_CONFIG_INT_H
#define DLG_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "dlg_err.h"
#include "yamlread.h"

#define DLG_CFG_NAME_MAX 255      /* room ids, event names, roles, kids */
#define DLG_CFG_TEXT_MAX 4096     /* descriptions, issuer, audience */
#define DLG_CFG_BYTES_CAP (1ull << 40)

/* How every loader here walks (yamlread.h): an error is recorded where it
 * is found and the walk goes on to the next key or entry, so that one run
 * reports every mistake; only running out of memory stops it. A loader
 * returns DLG_ECONFIG when its item had an error (dlg__yaml_since), and
 * runs the checks across its keys only when each key read well. */
#define DLG_CFG_TRY(expr)                                                                          \
    do {                                                                                           \
        if ((expr) == DLG_ENOMEM)                                                                  \
            return DLG_ENOMEM;                                                                     \
    } while (0)

/* The configuration being filled: the reader's ud. */
static inline dlg_config *dlg__cfg(dlg_yaml *y) {
    return y->ud;
}

/* ---- names.c: names, roles, lists of strings ------------------------- */

/* Kinds of string lists: room ids; event names or "*" alone; roles or
 * "*"; roles without "*" (what may be granted); file paths; web origins
 * (scheme://host[:port]) or "*". */
enum {
    DLG_CFG_K_NAME,
    DLG_CFG_K_EVENT,
    DLG_CFG_K_ROLE,
    DLG_CFG_K_GRANT,
    DLG_CFG_K_PATH,
    DLG_CFG_K_ORIGIN
};

/* Room ids and event names: 1..255 bytes of [A-Za-z0-9_.:-]. */
int dlg__cfg_check_name(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s);

/* Roles: visible text, no blanks or control bytes. */
int dlg__cfg_check_role(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s);

/* A list of distinct strings of one kind into *out (freed first). On error
 * *out holds what was read so far (freeable). */
int dlg__cfg_strv(dlg_yaml *y, const dlg_ynode *n, const char *path, int kind,
                  dlg_config_strv *out);

bool dlg__cfg_strv_has(const dlg_config_strv *v, const char *s);
void dlg__cfg_strv_free(dlg_config_strv *v);

/* ---- load_listen.c: listen[] ------------------------------------------ */

/* The default listener: TLS on 127.0.0.1:3000, no certificate. */
int dlg__cfg_listener_default(dlg_config_listener *l);
void dlg__cfg_listeners_free(dlg_config_listener *l, size_t n);
int dlg__cfg_load_listen(dlg_yaml *y, const dlg_ynode *n);
/* Splits s ("host:port", "[v6]:port") into *host_out (replaced, owned) and
 * *port_out; an error is recorded at n under path. */
int dlg__cfg_hostport(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s,
                      char **host_out, uint16_t *port_out);

/* ---- load_admin.c ---------------------------------------------------- */
void dlg__cfg_admin_free(dlg_config_admin *a);
int dlg__cfg_load_admin(dlg_yaml *y, const dlg_ynode *m);

/* ---- load_limits.c: limits -------------------------------------------- */

/* The documented defaults of every limit. */
void dlg__cfg_limits_default(dlg_config_limits *l);
int dlg__cfg_load_limits(dlg_yaml *y, const dlg_ynode *m);

/* ---- load_auth.c: auth (jwt, client_cert, anonymous) ------------------- */

void dlg__cfg_auth_free(dlg_config_auth *a);
int dlg__cfg_load_auth(dlg_yaml *y, const dlg_ynode *m);

/* ---- load_rooms.c: rooms, room_admin, auto_join ------------------------ */

/* An event named by a per-event setting must be one the room declares;
 * "*" (when star_ok) means every event not listed on its own. */
int dlg__cfg_check_room_event(dlg_yaml *y, const dlg_ynode *n, const char *path,
                              const dlg_config_room *r, const char *ev, bool star_ok);

/* Per-event lists of a room (trigger_events, delivery, history) share one
 * walk: each entry is a mapping with an `event` key, which must be unique.
 * fn loads entry i (a mapping at path) of room r. */
typedef int (*dlg_cfg_entry_fn)(dlg_yaml *y, const dlg_ynode *m, const char *path,
                                dlg_config_room *r, size_t i);
int dlg__cfg_room_entries(dlg_yaml *y, const dlg_ynode *n, const char *path, dlg_config_room *r,
                          size_t size, void **v, size_t *cnt, dlg_cfg_entry_fn fn);

/* The `event` key of entry m into *out, checked against room r. */
int dlg__cfg_entry_event(dlg_yaml *y, const dlg_ynode *m, const char *path,
                         const dlg_config_room *r, bool star_ok, char **out);

/* An error when ev is prev (configured already at prev_line). */
int dlg__cfg_dup_event(dlg_yaml *y, const dlg_ynode *m, const char *path, const char *ev,
                       const char *prev, unsigned prev_line);

void dlg__cfg_rooms_free(dlg_config *c);
int dlg__cfg_load_room_admin(dlg_yaml *y, const dlg_ynode *m);
int dlg__cfg_load_rooms(dlg_yaml *y, const dlg_ynode *n);
int dlg__cfg_load_auto_join(dlg_yaml *y, const dlg_ynode *n);

/* ---- load_history.c: rooms[].history, sync_history_on_join, store ----- */

int dlg__cfg_history_entry(dlg_yaml *y, const dlg_ynode *m, const char *path,
                           dlg_config_room *r, size_t i);
int dlg__cfg_load_sync(dlg_yaml *y, const dlg_ynode *v, const char *path, dlg_config_room *r);

/* store, store_path and store_sync, from the root mapping. */
int dlg__cfg_load_store(dlg_yaml *y, const dlg_ynode *root);

/* The store checks that need the whole file (cluster.log). */
int dlg__cfg_check_store(dlg_yaml *y, const dlg_ynode *root);

/* ---- load_metrics.c: metrics ------------------------------------------- */

void dlg__cfg_metrics_free(dlg_config_metrics *m);
int dlg__cfg_load_metrics(dlg_yaml *y, const dlg_ynode *m);

/* ---- load_cluster.c: cluster ------------------------------------------- */

void dlg__cfg_cluster_free(dlg_config_cluster *cl);
int dlg__cfg_load_cluster(dlg_yaml *y, const dlg_ynode *m);

#endif
