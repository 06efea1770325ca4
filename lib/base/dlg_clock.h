/* dlg_clock.h: the two clocks every layer reads: a monotonic one for
 * intervals and latency, the wall clock for timestamps that leave the
 * process (event times, token expiry). */
#ifndef DLG_CLOCK_H
#define DLG_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t dlg_now_ns(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME, not time()'s coarse
 * clock, which can lag it by a tick). */
uint64_t dlg_wall_ms(void);

#endif
