/* check.h: `dialogued --check-config` (-t): everything a start would load
 * from the configuration and the command line, loaded, checked and thrown
 * away, with every error (not just the first) reported at its
 * file:line:col. Nothing listens, no store is opened, no cluster link is
 * made. */
#ifndef DLG_CHECK_H
#define DLG_CHECK_H

#include <stddef.h>
#include <stdio.h>

/* What the command line adds to (or puts over) the file. Borrowed. */
typedef struct dlg_check_opts {
    const char *config;                /* --config FILE; NULL = defaults only */
    const char *const *schemas;        /* --schema files */
    size_t n_schemas;
    const char *cert, *key;            /* --cert, --key: the first listener's */
    int plaintext;                     /* --plaintext: the first listener's */
    int tls_own_records;               /* as the daemon would start: -1 = the file's */
    const char *log_file;              /* --log-file */
    const char *web_root;              /* --web-root */
    const char *admin;                 /* --admin HOST:PORT */
} dlg_check_opts;

/* Checks the configuration of o: the YAML (every key, dlg_config_check),
 * then what it names: each listener's certificate chain, key (and that
 * they match), client CA and CRLs; each JWT key file; each schema file and
 * every room event against them; each room's rules and history as the
 * daemon builds them; the store's file or folder (read-only); the log
 * file or its folder (nothing is created); the web page's folder (read as
 * the daemon reads it, within its limits); the cluster's credentials and
 * TLS files. What the file could not read is not looked at
 * further (so one mistake is not reported twice). Each error is one line on
 * out, "file:line:col: key.path: what" (a key that is not in the file, or
 * a command-line flag, has no position). Returns the number of errors (0 =
 * the daemon would start with it), or DLG_ENOMEM. */
int dlg_check_config(const dlg_check_opts *o, FILE *out);

#endif
