/* notify.h: what the service manager is told (systemd's sd_notify, through
 * libsystemd): READY=1 once the daemon serves, RELOADING=1 and READY=1
 * around a SIGHUP reload, STOPPING=1, and WATCHDOG=1 from the loop while
 * the manager asks for it (WATCHDOG_USEC). Without NOTIFY_SOCKET in the
 * environment every call here does nothing. */
#ifndef DLG_NOTIFY_H
#define DLG_NOTIFY_H

#include <stdint.h>

/* Sends state (newline-separated "KEY=value" lines) to the service manager;
 * failures are ignored (a daemon does not stop because nobody listens). */
void dlg_notify(const char *state);

/* RELOADING=1 with the CLOCK_MONOTONIC time systemd asks to come with it. */
void dlg_notify_reloading(void);

/* The watchdog period the manager asked for (WATCHDOG_USEC, for this
 * process when WATCHDOG_PID is set) in microseconds, or 0 when none. */
uint64_t dlg_notify_watchdog_usec(void);

#endif
