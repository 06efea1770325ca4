/* dlg_random.c: random identifiers (see dlg_random.h). */
#include "dlg_random.h"

#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

uint64_t dlg_random_epoch(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x)) {
        /* No entropy source: time and pid still differ from run to run. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)getpid();
    }
    x >>= 1;
    return x ? x : 1;
}
