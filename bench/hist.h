/* hist.h: the bench's latency histogram: fixed size, no allocation while
 * recording, about 0.8% relative precision, mergeable across threads. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

/* Values below 256 ns get a bucket each; above, 128 buckets per power of
 * two up to 2^40 ns (about 18 minutes); larger values land in the last. */
#define BENCH_HIST_EXACT 256
#define BENCH_HIST_SUB 128
#define BENCH_HIST_OCTAVES 32
#define BENCH_HIST_N (BENCH_HIST_EXACT + BENCH_HIST_OCTAVES * BENCH_HIST_SUB)

typedef struct bench_hist {
    uint64_t count;
    uint64_t max;        /* exact */
    uint64_t min;        /* exact; UINT64_MAX while empty */
    uint64_t sum;        /* for the mean; wraps only after ~580 years of ns */
    uint64_t b[BENCH_HIST_N];
} bench_hist;

/* Empties h. */
void bench_hist_init(bench_hist *h);

/* Records one value (nanoseconds). */
void bench_hist_add(bench_hist *h, uint64_t v);

/* Adds every sample of src to dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

/* The value at quantile q (0..1): the midpoint of the bucket holding the
 * ceil(q * count)-th smallest sample, never above the exact maximum. 0 when
 * h is empty. */
uint64_t bench_hist_quantile(const bench_hist *h, double q);

#endif
