/* dashboard.h: `dialoguectl dashboard [ROOM]`, the live terminal view of the
 * Live Dashboard (metrics with sparklines, recent alerts, connection state).
 * When stdout is not a terminal it prints one JSON line per event instead. */
#ifndef DLG_CLI_DASHBOARD_H
#define DLG_CLI_DASHBOARD_H

#include "dialogue/client.h"

/* Runs the view until q, Ctrl-C or SIGTERM. opts is the connection (copied);
 * argv[0] is "dashboard", then [ROOM] [--count N] [--help]. Returns the
 * process exit status (0 on a clean quit). */
int dlg_cli_dashboard_main(const dlg_client_opts *opts, int argc, char **argv);

#endif
