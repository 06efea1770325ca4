/* proc.h: what the bench reads about processes: CPU time and resident
 * memory of the daemon from /proc, its own CPU time, the clock, and the
 * open-file limit. */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds (the clock publishers stamp payloads with). */
uint64_t bench_now_ns(void);

/* User + system CPU seconds of process pid, from /proc/PID/stat (clock-tick
 * resolution, usually 10 ms). 0, or DLG_ENOTFOUND when the process is gone
 * or DLG_EIO when the file does not parse; *sec is then untouched. */
int bench_proc_cpu(int pid, double *sec);

/* Resident set size of pid in KiB (VmRSS from /proc/PID/status). Errors as
 * bench_proc_cpu. */
int bench_proc_rss_kib(int pid, uint64_t *kib);

/* CPU seconds the whole host has been busy since boot (all CPUs, from the
 * first line of /proc/stat: everything but idle and iowait). Subtracting the
 * daemon's and the bench's own time from a difference of two readings gives
 * what other processes took during a run: the noise in its numbers.
 * 0 or DLG_EIO. */
int bench_host_busy(double *sec);

/* User + system CPU seconds of this process so far, all threads. */
double bench_self_cpu(void);

/* Raises the soft RLIMIT_NOFILE to at least want (up to the hard limit).
 * *got receives the soft limit in force afterwards. 0, or DLG_EFULL when it
 * is still below want (the hard limit is lower), or DLG_EIO. */
int bench_raise_nofile(uint64_t want, uint64_t *got);

#endif
