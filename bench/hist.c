/* hist.c: log-linear latency histogram (see hist.h). */
#include "hist.h"

#include <string.h>

void bench_hist_init(bench_hist *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v) {
    if (v < BENCH_HIST_EXACT)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);  /* >= 8 */
    unsigned octave = e - 8;
    if (octave >= BENCH_HIST_OCTAVES)
        return BENCH_HIST_N - 1;
    unsigned shift = e - 7;  /* keeps the top 8 bits: 128..255 */
    return BENCH_HIST_EXACT + octave * BENCH_HIST_SUB + (unsigned)((v >> shift) - BENCH_HIST_SUB);
}

/* Midpoint of bucket i. */
static uint64_t value_of(unsigned i) {
    if (i < BENCH_HIST_EXACT)
        return i;
    unsigned octave = (i - BENCH_HIST_EXACT) / BENCH_HIST_SUB;
    unsigned sub = (i - BENCH_HIST_EXACT) % BENCH_HIST_SUB;
    unsigned shift = octave + 1;
    uint64_t lo = (uint64_t)(BENCH_HIST_SUB + sub) << shift;
    return lo + ((1ull << shift) >> 1);
}

void bench_hist_add(bench_hist *h, uint64_t v) {
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src) {
    for (unsigned i = 0; i < BENCH_HIST_N; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->min < dst->min)
        dst->min = src->min;
}

uint64_t bench_hist_quantile(const bench_hist *h, double q) {
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q > 1)
        q = 1;
    /* Rank of the sample wanted, 1-based: the nearest-rank definition. */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_N; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            return v > h->max ? h->max : (v < h->min ? h->min : v);
        }
    }
    return h->max;
}
