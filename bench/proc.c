/* proc.c: /proc readers, rusage and rlimits for the bench (see proc.h). */
#include "proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "dlg_err.h"

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_proc_cpu(int pid, double *sec) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return DLG_ENOTFOUND;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return DLG_EIO;
    /* Walk the space-separated fields; no scanf: some counters before
     * utime can exceed an unsigned int on a long-running host. */
    unsigned long long ut = 0, st = 0;
    int field = 3, found = 0;
    char *save = NULL;
    for (char *t = strtok_r(p + 1, " ", &save); t != NULL && found < 2;
         t = strtok_r(NULL, " ", &save), field++) {
        if (field == 14)
            ut = strtoull(t, NULL, 10), found++;
        else if (field == 15)
            st = strtoull(t, NULL, 10), found++;
    }
    if (found != 2)
        return DLG_EIO;
    long hz = sysconf(_SC_CLK_TCK);
    *sec = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    return 0;
}

int bench_proc_rss_kib(int pid, uint64_t *kib) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return DLG_ENOTFOUND;
    int rc = DLG_EIO;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long v;
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
            *kib = v;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

int bench_host_busy(double *sec) {
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return DLG_EIO;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return DLG_EIO;
    /* user nice system idle iowait irq softirq steal: all but 3 and 4. */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    long hz = sysconf(_SC_CLK_TCK);
    *sec = (double)busy / (double)(hz > 0 ? hz : 100);
    return 0;
}

double bench_self_cpu(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int bench_raise_nofile(uint64_t want, uint64_t *got) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return DLG_EIO;
    if (rl.rlim_cur < want) {
        rlim_t to = want;
        if (rl.rlim_max != RLIM_INFINITY && to > rl.rlim_max)
            to = rl.rlim_max;
        rl.rlim_cur = to;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return DLG_EIO;
    }
    *got = rl.rlim_cur;
    return rl.rlim_cur < want ? DLG_EFULL : 0;
}
