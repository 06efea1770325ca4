/* scale.c: the connection-scale run: N idle connections spread over loop
 * threads and over the servers, each thread with a cap on attempts in
 * flight; the time until the last Welcome, and the daemons' resident
 * memory before and after. */
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
    uint32_t srv_index;      /* into bench_opts.servers */
    /* Outcome, read after the join: connected, then maybe lost; or failed. */
    int ready, failed, lost;
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
            char why[400];
            snprintf(why, sizeof(why), "starting connection %zu to %s: %s", i,
                     w->s->o->servers[w->slots[i].srv_index].name, dlg_strerror(rc));
            w->slots[i].failed = 1;
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
    char msg[800];
    snprintf(msg, sizeof(msg), "connection to %s: %s", w->s->o->servers[sl->srv_index].name,
             why);
    if (sl->ready) {
        sl->lost = 1;
        note(w->s, &w->s->lost, msg);
        return;
    }
    sl->failed = 1;
    w->connecting--;
    note(w->s, &w->s->failed, msg);
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
        if (bench_peer_new(&w->loop, &w->s->o->servers[sl->srv_index].conn, BENCH_ROLE_IDLE,
                           &cbs, sl, &sl->peer, err, sizeof(err)) != 0)
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
    for (size_t i = 0; i < BENCH_MAX_SERVERS; i++)
        r->pid_cpu_s[i] = -1;
    s.n_w = o->conn_threads < o->connections ? o->conn_threads : o->connections;
    if ((s.w = calloc(s.n_w, sizeof(*s.w))) == NULL) {
        snprintf(r->error, sizeof(r->error), "out of memory for %zu threads", s.n_w);
        rc = DLG_ENOMEM;
        goto out;
    }
    size_t conn_index = 0;
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
        /* Round robin over the list, as the fan-out spreads subscribers. */
        for (size_t k = 0; k < w->n; k++, conn_index++) {
            w->slots[k].w = w;
            w->slots[k].srv_index = o->sub_srv[conn_index % o->n_sub_srv];
            r->server[w->slots[k].srv_index].wanted++;
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

    /* Connect: the clock, the daemons' CPU and memory around it. */
    double d0[BENCH_MAX_SERVERS], d1[BENCH_MAX_SERVERS];
    for (uint32_t i = 0; i < o->n_pids; i++)
        r->pid_have_rss[i] = bench_proc_rss_kib(o->daemon_pids[i],
                                                &r->pid_rss_before_kib[i]) == 0;
    (void)bench_daemons_cpu(o, d0);
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
    (void)bench_daemons_cpu(o, d1);
    double known = 0;
    r->daemon_cpu_s = o->n_pids > 0 ? 0 : -1;
    for (uint32_t i = 0; i < o->n_pids; i++) {
        r->pid_cpu_s[i] = d0[i] >= 0 && d1[i] >= 0 ? d1[i] - d0[i] : -1;
        if (r->pid_cpu_s[i] < 0)
            r->daemon_cpu_s = -1;
        else
            known += r->pid_cpu_s[i];
    }
    if (r->daemon_cpu_s >= 0)
        r->daemon_cpu_s = known;
    if (h0 >= 0 && bench_host_busy(&h1) == 0) {
        double other = h1 - h0 - r->bench_cpu_s - known;
        r->other_cpu_s = other > 0 ? other : 0;
    }
    sleep_ms(&s, SETTLE_MS, deadline);
    /* The totals only when every daemon could be read: a partial sum
     * would pass for the cost of all of them. */
    r->have_rss = o->n_pids > 0;
    for (uint32_t i = 0; i < o->n_pids; i++) {
        if (r->pid_have_rss[i] &&
            bench_proc_rss_kib(o->daemon_pids[i], &r->pid_rss_after_kib[i]) != 0)
            r->pid_have_rss[i] = 0;
        if (!r->pid_have_rss[i]) {
            r->have_rss = 0;
            continue;
        }
        r->rss_before_kib += r->pid_rss_before_kib[i];
        r->rss_after_kib += r->pid_rss_after_kib[i];
    }
    if (!r->have_rss)
        r->rss_before_kib = r->rss_after_kib = 0;
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
    /* Every worker is joined: the slots hold their final outcome. */
    for (size_t i = 0; i < s.n_w; i++) {
        for (size_t k = 0; k < s.w[i].n; k++) {
            const slot *sl = &s.w[i].slots[k];
            bench_scale_server *ss = &r->server[sl->srv_index];
            ss->connected += sl->ready ? 1 : 0;
            ss->failed += sl->failed ? 1 : 0;
            ss->lost += sl->lost ? 1 : 0;
        }
    }
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
