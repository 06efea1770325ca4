/* scale.c: the connection-scale run: N idle connections spread over loop
 * threads, each with a cap on attempts in flight; the time until the last
 * Welcome, and the daemon's resident memory before and after. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "dlg_err.h"
#include "proc.h"

/* Idle connections are Welcomed when the daemon has done its part; give
 * its allocator a moment before reading VmRSS. */
#define SETTLE_MS 500

struct scale;
struct sworker;

typedef struct slot {
    struct sworker *w;
    bench_peer *peer;
    int ready;
} slot;

typedef struct sworker {
    struct scale *s;
    uv_loop_t loop;
    uv_async_t async;        /* main -> worker: the phase changed */
    uv_thread_t thread;
    int loop_ok, thread_ok;
    slot *slots;
    size_t n, made, next, connecting;
    int started, stopped;
} sworker;

enum { SC_SETUP, SC_CONNECT, SC_STOP };

typedef struct scale {
    const bench_opts *o;
    uv_mutex_t mu;
    uv_cond_t cv;
    /* Guarded by mu; every change signals cv. */
    uint32_t workers_ready, connected, failed, lost;
    char error[512];
    atomic_int phase;
    sworker *w;
    size_t n_w;
} scale;

static void note(scale *s, uint32_t *counter, const char *why) {
    uv_mutex_lock(&s->mu);
    if (counter)
        (*counter)++;
    if (why && s->error[0] == 0)
        snprintf(s->error, sizeof(s->error), "%.500s", why);
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
}

static void start_more(sworker *w) {
    while (!w->stopped && w->connecting < w->s->o->concurrency && w->next < w->made) {
        size_t i = w->next++;
        int rc = bench_peer_start(w->slots[i].peer);
        if (rc != 0) {
            char why[200];
            snprintf(why, sizeof(why), "starting connection %zu: %s", i, dlg_strerror(rc));
            note(w->s, &w->s->failed, why);
            continue;
        }
        w->connecting++;
    }
}

static void peer_ready(void *ud) {
    slot *sl = ud;
    sl->ready = 1;
    sl->w->connecting--;
    note(sl->w->s, &sl->w->s->connected, NULL);
    start_more(sl->w);
}

static void peer_failed(void *ud, const char *why) {
    slot *sl = ud;
    sworker *w = sl->w;
    if (sl->ready) {
        note(w->s, &w->s->lost, why);
        return;
    }
    w->connecting--;
    note(w->s, &w->s->failed, why);
    start_more(w);
}

static void no_event(void *ud, const char *event, const uint8_t *data, size_t len,
                     uint64_t seq) {
    (void)ud, (void)event, (void)data, (void)len, (void)seq;
}

static void no_ack(void *ud, int status, const char *msg) {
    (void)ud, (void)status, (void)msg;
}

static const bench_peer_cbs cbs = {
    .ready = peer_ready, .failed = peer_failed, .event = no_event, .acked = no_ack,
};

static void on_closed(uv_handle_t *h) {
    (void)h;
}

static void on_async(uv_async_t *a) {
    sworker *w = a->data;
    int phase = atomic_load(&w->s->phase);
    if (phase == SC_CONNECT && !w->started) {
        w->started = 1;
        start_more(w);
        return;
    }
    if (phase != SC_STOP || w->stopped)
        return;
    w->stopped = 1;
    for (size_t i = 0; i < w->made; i++)
        bench_peer_free(w->slots[i].peer);
    uv_close((uv_handle_t *)&w->async, on_closed);
}

static void worker_main(void *arg) {
    sworker *w = arg;
    char err[512] = "";
    /* All clients exist before the clock starts: what is timed is the
     * connects, not this process setting up its TLS contexts. */
    for (; w->made < w->n; w->made++) {
        slot *sl = &w->slots[w->made];
        sl->w = w;
        if (bench_peer_new(&w->loop, &w->s->o->conn, BENCH_ROLE_IDLE, &cbs, sl, &sl->peer, err,
                           sizeof(err)) != 0)
            break;
    }
    note(w->s, &w->s->workers_ready, err[0] ? err : NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void set_phase(scale *s, int phase) {
    atomic_store(&s->phase, phase);
    for (size_t i = 0; i < s->n_w; i++)
        if (s->w[i].thread_ok)
            uv_async_send(&s->w[i].async);
}

/* Waits on cv until deadline (ns, monotonic), at most 20 ms; mu held. */
static void wait_a_bit(scale *s, uint64_t deadline) {
    uint64_t now = bench_now_ns();
    if (now < deadline)
        (void)uv_cond_timedwait(&s->cv, &s->mu, deadline - now < 20000000ull
                                                    ? deadline - now : 20000000ull);
}

static void sleep_ms(scale *s, uint64_t ms, uint64_t deadline) {
    uint64_t until = bench_now_ns() + ms * 1000000ull;
    if (until > deadline)
        until = deadline;
    uv_mutex_lock(&s->mu);
    while (bench_now_ns() < until)
        wait_a_bit(s, until);
    uv_mutex_unlock(&s->mu);
}

int bench_scale_run(const bench_opts *o, bench_scale_result *r) {
    scale s;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    memset(&s, 0, sizeof(s));
    r->wanted = o->connections;
    r->daemon_cpu_s = -1;
    r->other_cpu_s = -1;
    s.o = o;
    atomic_init(&s.phase, SC_SETUP);
    uint64_t deadline = bench_now_ns() + (uint64_t)(o->time_limit * 1e9);
    /* Each connection is a socket here; keep some room for the rest. */
    rc = bench_raise_nofile((uint64_t)o->connections + 64, &r->nofile);
    if (rc != 0) {
        snprintf(r->error, sizeof(r->error), "%u connections need an open-file limit of %llu, "
                 "but the hard limit allows %llu (raise it: ulimit -Hn)", o->connections,
                 (unsigned long long)o->connections + 64, (unsigned long long)r->nofile);
        return rc;
    }
    if (uv_mutex_init(&s.mu) != 0 || uv_cond_init(&s.cv) != 0) {
        snprintf(r->error, sizeof(r->error), "cannot create a mutex");
        return DLG_EINTERNAL;
    }
    s.n_w = o->conn_threads < o->connections ? o->conn_threads : o->connections;
    if ((s.w = calloc(s.n_w, sizeof(*s.w))) == NULL) {
        snprintf(r->error, sizeof(r->error), "out of memory for %zu threads", s.n_w);
        rc = DLG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < s.n_w; i++) {
        sworker *w = &s.w[i];
        w->s = &s;
        w->n = o->connections / s.n_w + (i < o->connections % s.n_w ? 1 : 0);
        if ((w->slots = calloc(w->n ? w->n : 1, sizeof(*w->slots))) == NULL ||
            uv_loop_init(&w->loop) != 0) {
            snprintf(r->error, sizeof(r->error), "cannot set up connection thread %zu", i);
            rc = DLG_ENOMEM;
            goto out;
        }
        w->loop_ok = 1;
        uv_async_init(&w->loop, &w->async, on_async);
        w->async.data = w;
    }
    for (size_t i = 0; i < s.n_w; i++) {
        if (uv_thread_create(&s.w[i].thread, worker_main, &s.w[i]) != 0) {
            snprintf(r->error, sizeof(r->error), "cannot start connection thread %zu", i);
            rc = DLG_EINTERNAL;
            goto stop;
        }
        s.w[i].thread_ok = 1;
    }

    /* Setup: every client created on its own thread. */
    uv_mutex_lock(&s.mu);
    while (s.workers_ready < s.n_w && bench_now_ns() < deadline)
        wait_a_bit(&s, deadline);
    int setup_ok = s.workers_ready == s.n_w && s.error[0] == 0;
    uv_mutex_unlock(&s.mu);
    if (!setup_ok) {
        snprintf(r->error, sizeof(r->error), "creating %u clients: %.400s", o->connections,
                 s.error[0] ? s.error : "time limit reached");
        rc = DLG_EINTERNAL;
        goto stop;
    }

    /* Connect: the clock, the daemon's CPU and memory around it. */
    double d0 = -1, d1;
    r->have_rss = o->daemon_pid > 0 &&
                  bench_proc_rss_kib(o->daemon_pid, &r->rss_before_kib) == 0;
    if (o->daemon_pid > 0 && bench_proc_cpu(o->daemon_pid, &d0) != 0)
        d0 = -1;
    double h0 = -1, h1;
    if (bench_host_busy(&h0) != 0)
        h0 = -1;
    double b0 = bench_self_cpu();
    uint64_t t0 = bench_now_ns();
    set_phase(&s, SC_CONNECT);
    uv_mutex_lock(&s.mu);
    while (s.connected + s.failed < o->connections && bench_now_ns() < deadline)
        wait_a_bit(&s, deadline);
    r->timed_out = s.connected + s.failed < o->connections;
    uv_mutex_unlock(&s.mu);
    r->connect_s = (double)(bench_now_ns() - t0) / 1e9;
    r->bench_cpu_s = bench_self_cpu() - b0;
    if (d0 >= 0 && bench_proc_cpu(o->daemon_pid, &d1) == 0)
        r->daemon_cpu_s = d1 - d0;
    if (h0 >= 0 && bench_host_busy(&h1) == 0) {
        double other = h1 - h0 - r->bench_cpu_s - (r->daemon_cpu_s > 0 ? r->daemon_cpu_s : 0);
        r->other_cpu_s = other > 0 ? other : 0;
    }
    sleep_ms(&s, SETTLE_MS, deadline);
    if (r->have_rss && bench_proc_rss_kib(o->daemon_pid, &r->rss_after_kib) != 0)
        r->have_rss = 0;
    sleep_ms(&s, o->hold_ms, deadline);
    rc = 0;

stop:
    set_phase(&s, SC_STOP);
    for (size_t i = 0; i < s.n_w; i++)
        if (s.w[i].thread_ok)
            uv_thread_join(&s.w[i].thread);
    uv_mutex_lock(&s.mu);
    r->connected = s.connected;
    r->failed = s.failed;
    r->lost = s.lost;
    if (s.error[0] && r->error[0] == 0)
        snprintf(r->error, sizeof(r->error), "%s", s.error);
    uv_mutex_unlock(&s.mu);
out:
    for (size_t i = 0; s.w && i < s.n_w; i++) {
        sworker *w = &s.w[i];
        if (w->loop_ok && !w->thread_ok) {
            uv_close((uv_handle_t *)&w->async, on_closed);
            uv_run(&w->loop, UV_RUN_DEFAULT);
        }
        if (w->loop_ok)
            uv_loop_close(&w->loop);
        free(w->slots);
    }
    free(s.w);
    uv_cond_destroy(&s.cv);
    uv_mutex_destroy(&s.mu);
    return rc;
}
