/* boot.h: turns a loaded dlg_config into a running server's state: options,
 * schemas, rooms with their rules, the metrics source. Also the auto_join
 * rules applied when a client is welcomed. */
#ifndef DLG_BOOT_H
#define DLG_BOOT_H

#include <stddef.h>

#include "config.h"
#include "conn.h"
#include "server.h"

struct dlg_room;

/* Copies cfg's settings into srv->opts (strings borrowed from cfg, which
 * must outlive srv), loads the schemas, creates the rooms and their rules.
 * Every room event must have a loaded schema. Returns 0 or a DLG_E* code
 * with err naming the file, room or event at fault. */
int dlg_boot_apply(dlg_server *srv, const dlg_config *cfg, char *err, size_t errlen);

/* Sets srv->opts.admin from cfg's admin section, its address replaced by
 * flag_addr (--admin) when not NULL; reads the token file into
 * srv->admin_token. Nothing when neither is there. A non-loopback address
 * without TLS and a token is refused. Returns 0 or a DLG_E* code with err
 * naming the file:line or the flag. Call once, at start (not on reload). */
int dlg_boot_admin(dlg_server *srv, const dlg_config *cfg, const char *flag_addr, char *err,
                   size_t errlen);

/* Reads a bearer token file: one word of at least 16 visible characters,
 * blanks around it ignored. *out is malloc'd. 0 or DLG_EIO / DLG_ECONFIG /
 * DLG_ENOMEM with err naming the file. */
int dlg_boot_read_token(const char *file, char **out, char *err, size_t errlen);

/* Copies cfg's listeners (address, TLS or plaintext, certificate, key,
 * client CA, CRLs, require_client_cert) into o->listen; strings are
 * borrowed from cfg. */
void dlg_boot_listeners(dlg_server_opts *o, const dlg_config *cfg);

/* Copies cfg's limits (and auth.anonymous) into o. */
void dlg_boot_limits(dlg_server_opts *o, const dlg_config *cfg);

/* Checks that every event cr lists (but "*") has a schema in sc (may be
 * NULL: none loaded). 0 or DLG_ECONFIG with err naming the file, line, room
 * and event. */
int dlg_boot_check_events(const dlg_schema *sc, const dlg_config_room *cr, const char *cfgpath,
                          char *err, size_t errlen);

struct dlg_rooms;

/* Loads a new schema registry from the n_extra files of extra (--schema)
 * and cfg's schemas, and checks it against cfg's rooms and every typed
 * room of rooms (may be NULL): a reload may not take away an event a room
 * has. *out (NULL when no file is named) is owned by the caller. 0, or a
 * DLG_E* code with err naming the file, room or event; *out is then NULL. */
int dlg_boot_schema(const dlg_config *cfg, const char *const *extra, size_t n_extra,
                    const struct dlg_rooms *rooms, dlg_schema **out, char *err,
                    size_t errlen);

/* Adds room cr from the config (events must have loaded schemas) with its
 * rules. err names the config line on failure. */
int dlg_boot_add_room(dlg_server *srv, const dlg_config_room *cr, const char *cfgpath,
                      char *err, size_t errlen);

/* (Re)applies cr's access rules, rate limit, max_size and delivery policy
 * to r, replacing the old ones. */
int dlg_boot_room_rules(struct dlg_room *r, const dlg_config_room *cr, char *err,
                        size_t errlen);


#endif
