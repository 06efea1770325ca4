/* notify.c: sd_notify for the service manager (see notify.h). */
#include "notify.h"

#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

void dlg_notify(const char *state) {
    (void)sd_notify(0, state);
}

void dlg_notify_reloading(void) {
    struct timespec ts;
    char msg[96];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    dlg_notify(msg);
}

uint64_t dlg_notify_watchdog_usec(void) {
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
