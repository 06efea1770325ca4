/* dlg_random.h: random numbers for identifiers that must differ from run
 * to run (history epochs), from the kernel's entropy source. */
#ifndef DLG_RANDOM_H
#define DLG_RANDOM_H

#include <stdint.h>

/* A random number in 1 .. 2^63 - 1 (fits a signed 64-bit column and is
 * never 0, which means "none"). Without an entropy source, time and pid
 * still make it differ from run to run. */
uint64_t dlg_random_epoch(void);

#endif
