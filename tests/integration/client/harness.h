/* harness.h: runs a real dialogued for the client's integration tests: a
 * mkdtemp folder with dev certificates and a config, the daemon on
 * 127.0.0.1 (port 0 or a given port) with --port-file, a per-test timeout,
 * and helpers that run a loop until a condition holds or a deadline passes. */
#ifndef DLG_CLIENT_HARNESS_H
#define DLG_CLIENT_HARNESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

typedef struct dlgt_daemon {
    char dir[256];        /* the mkdtemp folder (removed at teardown) */
    char certs[320];      /* dir/certs: ca.crt, server.crt/.key, client-*.crt/.key */
    char config[320];
    char port_file[320];
    char log[320];
    pid_t pid;            /* 0 when not running */
    unsigned port;
} dlgt_daemon;

/* The daemon binary: $DLG_DAEMON, else <build dir>/bin/dialogued, else
 * build/bin/dialogued. NULL when none exists (the test skips). */
const char *dlgt_daemon_path(void);

/* Makes the folder, the certificates and the config (config_yaml with
 * {certs} and {share} replaced; NULL = no config file, anonymous flags).
 * 0 or -1 with a message on stderr. */
int dlgt_setup(dlgt_daemon *d, const char *config_yaml);

/* Makes d present the certificates of from (copied over d's own), so one
 * CA file verifies both daemons, as for the nodes of one cluster. Call
 * after both dlgt_setup, before dlgt_start. 0 or -1. */
int dlgt_share_certs(dlgt_daemon *d, const dlgt_daemon *from);

/* Starts the daemon on port (0 = any free port) and waits up to 10 s for
 * the port file. 0 or -1 (the daemon's log is printed). */
int dlgt_start(dlgt_daemon *d, unsigned port);

/* SIGTERM, then SIGKILL after 5 s. Returns the exit status or -1. */
int dlgt_stop(dlgt_daemon *d);

/* SIGKILL: the daemon vanishes without closing anything. */
void dlgt_kill(dlgt_daemon *d);

/* Stops the daemon if running and removes the folder. */
void dlgt_teardown(dlgt_daemon *d);

/* Arms the per-test timeout: after seconds the daemon is killed and the
 * process exits with status 1 and a message naming the test. 0 disarms. */
void dlgt_timeout(unsigned seconds, const char *test);

/* Prints the daemon's log to stderr (for failures). */
void dlgt_dump_log(const dlgt_daemon *d);

/* Runs loop until *flag becomes non-zero or timeout_ms passes (a guard
 * timer, so this never hangs). 0 when the flag was set, -1 on timeout. */
int dlgt_run_until(uv_loop_t *loop, const volatile int *flag, unsigned timeout_ms);

/* Sleeps on the calling thread until *counter >= want (checked every 5 ms)
 * or timeout_ms passes; for thread-mode tests. 0 or -1. */
int dlgt_wait_count(atomic_int *counter, int want, unsigned timeout_ms);

#endif
