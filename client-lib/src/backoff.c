/* backoff.c: reconnect delays (exponential with jitter) and the per-client
 * random generator behind the jitter. Pure functions, unit tested alone. */
#include "client_int.h"

uint64_t dlg__rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

uint64_t dlg__backoff_ms(uint32_t min, uint32_t max, double jitter,
                         unsigned attempt, uint64_t *rng) {
    if (min == 0)
        min = 1;
    if (max < min)
        max = min;
    uint64_t d = min;
    /* Doubling stops at max, so a huge attempt count cannot overflow. */
    for (unsigned i = 0; i < attempt && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    if (jitter > 0) {
        if (jitter > 1)
            jitter = 1;
        /* 53 random bits as a fraction in [0, 1). */
        double f = (double)(dlg__rand(rng) >> 11) / (double)(1ull << 53);
        uint64_t cut = (uint64_t)((double)d * jitter * f);
        d -= cut;
    }
    return d ? d : 1;
}
