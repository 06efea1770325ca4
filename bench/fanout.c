/* fanout.c: the fan-out workload: subscriber and publisher peers spread
 * over loop threads and over the servers, paced or windowed publishing,
 * latency recording (per server, and per event with --per-event), and the
 * main thread's phases (setup, run, stop) with the time bound. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "dlg_err.h"
#include "proc.h"

enum { PHASE_SETUP, PHASE_RUN, PHASE_STOP };

struct worker;

typedef struct sub {
    struct worker *w;
    bench_peer *peer;
    const bench_server *srv;
    uint32_t srv_index;    /* into bench_opts.servers */
    uint64_t got;          /* measured events */
    uint64_t warm_got;     /* warm-up events */
    uint64_t last_seq;
    int ready, dead, done, lost;
} sub;

typedef struct pub {
    struct worker *w;
    bench_peer *peer;
    const bench_server *srv;
    uint32_t srv_index;
    uint64_t warm;         /* the first `warm` messages are warm-up */
    uint64_t total;        /* warm-up + measured */
    uint64_t first_id;     /* --per-event: id of its first measured message */
    uint64_t sent, replied, acked, errors;
    uint64_t inflight;
    double rate;           /* msg/s; 0 = keep `window` in flight */
    int ready, dead, done, lost;
} pub;

typedef struct run run;

typedef struct worker {
    run *run;
    uv_loop_t loop;
    uv_async_t async;      /* main -> worker: the phase changed */
    uv_timer_t tick;       /* paced publishing */
    uv_thread_t thread;
    int loop_ok, thread_ok;
    sub *subs;
    size_t n_subs;
    pub *pubs;
    size_t n_pubs;
    size_t next_start;     /* peers started so far (connect pacing) */
    size_t connecting;
    int started, stopped;
    uint64_t t0_ns;
    uint8_t *payload;
    /* Results: written by this worker's thread only, read after the join. */
    bench_hist *hist;      /* latency per server (bench_opts.servers) */
    uint64_t delivered, warm_delivered, ooo;
    uint64_t published, acked, errors, full;
    uint64_t first_send_ns, last_recv_ns;
    /* --per-event (subscriber workers): ev_lat[id * n_subs + k] is the k-th
     * delivery of event id on this thread, ev_n[id] how many there are. */
    uint64_t *ev_lat;
    uint32_t *ev_n;
    uint64_t bad_ids;
    /* Deliveries (subscriber workers) or trigger replies (publisher
     * workers) so far: read by other threads for flow control and stall
     * detection. */
    atomic_uint_fast64_t progress;
} worker;

struct run {
    const bench_opts *o;
    uv_mutex_t mu;
    uv_cond_t cv;
    /* Guarded by mu; every change signals cv. */
    uint32_t ready, setup_failed, lost_subs, lost_pubs, subs_done, pubs_done;
    char error[512];
    atomic_int phase;
    worker *w;
    size_t n_w;
};

/* ---- reporting to the main thread ---------------------------------------- */

static void note(run *r, uint32_t *counter, const char *why) {
    uv_mutex_lock(&r->mu);
    if (counter)
        (*counter)++;
    if (why && r->error[0] == 0)
        snprintf(r->error, sizeof(r->error), "%.500s", why);
    uv_cond_signal(&r->cv);
    uv_mutex_unlock(&r->mu);
}

static size_t n_peers(const worker *w) {
    return w->n_subs + w->n_pubs;
}

static bench_peer *peer_at(worker *w, size_t i) {
    return i < w->n_subs ? w->subs[i].peer : w->pubs[i - w->n_subs].peer;
}

/* Starts connections up to the concurrency cap: a thousand handshakes at
 * once would only overflow the daemon's accept backlog. */
static void start_more(worker *w) {
    while (w->connecting < w->run->o->concurrency && w->next_start < n_peers(w)) {
        size_t i = w->next_start++;
        int rc = bench_peer_start(peer_at(w, i));
        if (rc != 0) {
            char why[200];
            snprintf(why, sizeof(why), "starting connection %zu: %s", i, dlg_strerror(rc));
            note(w->run, &w->run->setup_failed, why);
            continue;
        }
        w->connecting++;
    }
}

/* ---- subscribers ----------------------------------------------------------- */

static void sub_ready(void *ud) {
    sub *s = ud;
    s->ready = 1;
    s->w->connecting--;
    note(s->w->run, &s->w->run->ready, NULL);
    start_more(s->w);
}

static void sub_failed(void *ud, const char *why) {
    sub *s = ud;
    run *r = s->w->run;
    char msg[700];
    s->dead = 1;
    if (!s->ready) {
        s->w->connecting--;
        snprintf(msg, sizeof(msg), "subscriber on %s: setup: %s", s->srv->name, why);
        note(r, &r->setup_failed, msg);
        start_more(s->w);
        return;
    }
    snprintf(msg, sizeof(msg), "subscriber on %s: lost: %s", s->srv->name, why);
    s->lost = !s->done;
    note(r, s->done ? NULL : &r->lost_subs, msg);
}

static void sub_event(void *ud, const char *event, const uint8_t *data, size_t len,
                      uint64_t seq) {
    sub *s = ud;
    worker *w = s->w;
    const bench_opts *o = w->run->o;
    uint64_t now = bench_now_ns();
    if (seq <= s->last_seq)
        w->ooo++;
    else
        s->last_seq = seq;
    if (strcmp(event, o->event) != 0) {
        w->warm_delivered++;
        s->warm_got++;
    } else {
        uint64_t ts = now;
        if (len >= 8)
            memcpy(&ts, data, 8);
        uint64_t lat = now > ts ? now - ts : 0;
        bench_hist_add(&w->hist[s->srv_index], lat);
        if (o->per_event) {
            uint64_t id = UINT64_MAX;
            if (len >= 16)
                memcpy(&id, data + 8, 8);
            /* A second copy of one event on a connection would pass for
             * another subscriber's: the bound keeps it inside the row. */
            if (id < o->messages && w->ev_n[id] < w->n_subs)
                w->ev_lat[id * w->n_subs + w->ev_n[id]++] = lat;
            else
                w->bad_ids++;
        }
        w->delivered++;
        w->last_recv_ns = now;
        if (++s->got == o->messages && !s->done) {
            s->done = 1;
            note(w->run, &w->run->subs_done, NULL);
        }
    }
    atomic_store_explicit(&w->progress, w->delivered + w->warm_delivered,
                          memory_order_relaxed);
}

/* ---- publishers ------------------------------------------------------------ */

static void pub_finish(pub *p, const char *why) {
    if (p->done)
        return;
    p->done = 1;
    note(p->w->run, &p->w->run->pubs_done, why);
}

/* Sends the next message. 0, DLG_EFULL (wait for Acks) or a fatal code. */
static int pub_send_one(pub *p) {
    worker *w = p->w;
    const bench_opts *o = w->run->o;
    int measured = p->sent >= p->warm;
    uint64_t now = bench_now_ns();
    /* The payload is the send time and padding; the library copies it. */
    memcpy(w->payload, &now, 8);
    if (measured && o->per_event) {
        uint64_t id = p->first_id + (p->sent - p->warm);
        memcpy(w->payload + 8, &id, 8);
    }
    int rc = bench_peer_trigger(p->peer, measured ? o->event : o->warm_event, w->payload,
                                o->bytes);
    if (rc == DLG_EFULL) {
        w->full++;
        return rc;
    }
    if (rc != 0) {
        char why[600];
        snprintf(why, sizeof(why), "trigger %s in room %s on %s: %s", o->event, o->conn.room,
                 p->srv->name, dlg_strerror(rc));
        p->errors += p->total - p->sent;
        w->errors += p->total - p->sent;
        p->sent = p->total;
        pub_finish(p, why);
        return rc;
    }
    if (measured && (w->first_send_ns == 0 || now < w->first_send_ns))
        w->first_send_ns = now;
    p->sent++;
    p->inflight++;
    w->published++;
    return 0;
}

static uint64_t deliveries_so_far(run *r);

/* How many messages p may have sent by now at rate 0: its share of what
 * the average subscriber has received, plus the window. Without this
 * end-to-end limit the publisher outruns the subscribers and the daemon
 * rightly cuts them as slow consumers; with it, the run measures the rate
 * the whole path sustains. */
static uint64_t send_allowance(const pub *p) {
    run *r = p->w->run;
    const bench_opts *o = r->o;
    uint64_t per_sub = deliveries_so_far(r) / o->subs;
    return per_sub / o->pubs + o->window;
}

static void pub_fill(pub *p) {
    uint32_t window = p->w->run->o->window;
    uint64_t cap = send_allowance(p);
    while (!p->dead && p->inflight < window && p->sent < p->total && p->sent < cap)
        if (pub_send_one(p) != 0)
            break;
}

static void pub_acked(void *ud, int status, const char *msg) {
    pub *p = ud;
    worker *w = p->w;
    if (p->dead)
        return; /* pub_failed counted what the connection took with it */
    p->replied++;
    if (p->inflight > 0)
        p->inflight--;
    if (status == 0) {
        p->acked++;
        w->acked++;
    } else {
        char why[900];
        p->errors++;
        w->errors++;
        snprintf(why, sizeof(why), "trigger %s in room %s on %s refused: %s: %s",
                 w->run->o->event, w->run->o->conn.room, p->srv->name,
                 status > 0 ? dlg_status_name(status) : dlg_strerror(status), msg);
        note(w->run, NULL, why);
    }
    atomic_store_explicit(&w->progress, w->acked + w->errors, memory_order_relaxed);
    if (p->replied >= p->total) {
        pub_finish(p, NULL);
        return;
    }
    /* Refill in batches: one top-up per half window keeps the output
     * coalesced instead of one write per Ack. */
    if (p->rate == 0 && p->inflight <= w->run->o->window / 2)
        pub_fill(p);
}

static void pub_ready(void *ud) {
    pub *p = ud;
    p->ready = 1;
    p->w->connecting--;
    note(p->w->run, &p->w->run->ready, NULL);
    start_more(p->w);
}

static void pub_failed(void *ud, const char *why) {
    pub *p = ud;
    run *r = p->w->run;
    char msg[700];
    p->dead = 1;
    if (!p->ready) {
        p->w->connecting--;
        snprintf(msg, sizeof(msg), "publisher on %s: setup: %s", p->srv->name, why);
        note(r, &r->setup_failed, msg);
        start_more(p->w);
        return;
    }
    snprintf(msg, sizeof(msg), "publisher on %s: lost: %s", p->srv->name, why);
    if (!p->done) {
        p->lost = 1;
        note(r, &r->lost_pubs, msg);
    }
    /* What was not answered is lost with the connection. */
    p->errors += p->total - p->replied;
    p->w->errors += p->total - p->replied;
    pub_finish(p, NULL);
}

static void on_tick(uv_timer_t *t) {
    worker *w = t->data;
    uint64_t now = bench_now_ns();
    int busy = 0;
    for (size_t i = 0; i < w->n_pubs; i++) {
        pub *p = &w->pubs[i];
        if (p->dead || p->sent >= p->total)
            continue;
        busy = 1;
        if (p->rate == 0) {
            /* Subscribers on other threads made room since the last Ack. */
            pub_fill(p);
            continue;
        }
        /* Due by now, counting the first message at t0: a late tick
         * catches up, so the average rate holds. */
        uint64_t due = (uint64_t)((double)(now - w->t0_ns) * p->rate / 1e9) + 1;
        if (due > p->total)
            due = p->total;
        while (p->sent < due && !p->dead)
            if (pub_send_one(p) != 0)
                break;
    }
    if (!busy)
        uv_timer_stop(&w->tick);
}

/* ---- the worker thread ----------------------------------------------------- */

static const bench_peer_cbs sub_cbs = {
    .ready = sub_ready, .failed = sub_failed, .event = sub_event, .acked = NULL,
};

static void no_event(void *ud, const char *event, const uint8_t *data, size_t len,
                     uint64_t seq) {
    (void)ud, (void)event, (void)data, (void)len, (void)seq;
}

static const bench_peer_cbs pub_cbs = {
    .ready = pub_ready, .failed = pub_failed, .event = no_event, .acked = pub_acked,
};

static void on_closed(uv_handle_t *h) {
    (void)h;
}

static void worker_stop(worker *w) {
    w->stopped = 1;
    for (size_t i = 0; i < n_peers(w); i++)
        bench_peer_free(peer_at(w, i));
    for (size_t i = 0; i < w->n_subs; i++)
        w->subs[i].peer = NULL;
    for (size_t i = 0; i < w->n_pubs; i++)
        w->pubs[i].peer = NULL;
    uv_close((uv_handle_t *)&w->tick, on_closed);
    uv_close((uv_handle_t *)&w->async, on_closed);
}

static void on_async(uv_async_t *a) {
    worker *w = a->data;
    int phase = atomic_load(&w->run->phase);
    if (phase == PHASE_STOP && !w->stopped) {
        worker_stop(w);
        return;
    }
    if (phase != PHASE_RUN || w->started)
        return;
    w->started = 1;
    w->t0_ns = bench_now_ns();
    if (w->n_pubs == 0)
        return;
    if (w->run->o->rate == 0)
        for (size_t i = 0; i < w->n_pubs; i++)
            pub_fill(&w->pubs[i]);
    /* Paced sends, or (rate 0) refills when subscribers catch up. */
    uv_timer_start(&w->tick, on_tick, 0, 1);
}

static void worker_main(void *arg) {
    worker *w = arg;
    run *r = w->run;
    char err[512];
    /* Peers are created on this thread so their loop is never touched by
     * another; a failure is reported and the loop still waits for STOP. */
    for (size_t i = 0; i < n_peers(w); i++) {
        int is_sub = i < w->n_subs;
        void *ud = is_sub ? (void *)&w->subs[i] : (void *)&w->pubs[i - w->n_subs];
        bench_peer **slot = is_sub ? &w->subs[i].peer : &w->pubs[i - w->n_subs].peer;
        const bench_server *srv = is_sub ? w->subs[i].srv : w->pubs[i - w->n_subs].srv;
        int rc = bench_peer_new(&w->loop, &srv->conn, is_sub ? BENCH_ROLE_SUB : BENCH_ROLE_PUB,
                                is_sub ? &sub_cbs : &pub_cbs, ud, slot, err, sizeof(err));
        if (rc != 0) {
            /* Count every peer this worker cannot make, so setup ends. */
            for (size_t k = i; k < n_peers(w); k++)
                note(r, &r->setup_failed, err);
            w->n_subs = is_sub ? i : w->n_subs;
            w->n_pubs = is_sub ? 0 : i - w->n_subs;
            break;
        }
    }
    start_more(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* ---- the main thread ------------------------------------------------------- */

static void split(uint64_t total, size_t parts, size_t i, uint64_t *out) {
    *out = total / parts + (i < total % parts ? 1 : 0);
}

static void free_workers(run *r) {
    for (size_t i = 0; i < r->n_w; i++) {
        worker *w = &r->w[i];
        if (w->loop_ok && !w->thread_ok) {
            /* Never ran: close its handles here so the loop can close. */
            uv_close((uv_handle_t *)&w->async, on_closed);
            uv_close((uv_handle_t *)&w->tick, on_closed);
            uv_run(&w->loop, UV_RUN_DEFAULT);
        }
        if (w->loop_ok)
            uv_loop_close(&w->loop);
        free(w->subs);
        free(w->pubs);
        free(w->payload);
        free(w->hist);
        free(w->ev_lat);
        free(w->ev_n);
    }
    free(r->w);
}

static int make_workers(run *r) {
    const bench_opts *o = r->o;
    size_t nst = o->subs < o->sub_threads ? o->subs : o->sub_threads;
    size_t npt = o->pubs < o->pub_threads ? o->pubs : o->pub_threads;
    if (nst == 0 && o->subs > 0)
        nst = 1;
    if (npt == 0 && o->pubs > 0)
        npt = 1;
    r->n_w = nst + npt;
    r->w = calloc(r->n_w, sizeof(*r->w));
    if (r->w == NULL)
        return DLG_ENOMEM;
    size_t sub_index = 0, pub_index = 0;
    uint64_t next_id = 0;
    for (size_t i = 0; i < r->n_w; i++) {
        worker *w = &r->w[i];
        w->run = r;
        atomic_init(&w->progress, 0);
        if ((w->payload = calloc(1, o->bytes)) == NULL)
            return DLG_ENOMEM;
        uint64_t n;
        if (i < nst) {
            split(o->subs, nst, i, &n);
            w->n_subs = n;
            if ((w->subs = calloc(n ? n : 1, sizeof(*w->subs))) == NULL)
                return DLG_ENOMEM;
            /* Only subscriber workers record latency: one histogram per
             * server, so cross-node and local deliveries stay apart. */
            if ((w->hist = malloc(o->n_servers * sizeof(*w->hist))) == NULL)
                return DLG_ENOMEM;
            for (size_t k = 0; k < o->n_servers; k++)
                bench_hist_init(&w->hist[k]);
            if (o->per_event) {
                /* All of it now: nothing is allocated while events arrive. */
                w->ev_lat = malloc((size_t)o->messages * (n ? n : 1) * sizeof(*w->ev_lat));
                w->ev_n = calloc((size_t)o->messages, sizeof(*w->ev_n));
                if (w->ev_lat == NULL || w->ev_n == NULL)
                    return DLG_ENOMEM;
            }
            for (size_t k = 0; k < n; k++, sub_index++) {
                sub *s = &w->subs[k];
                s->w = w;
                s->srv_index = o->sub_srv[sub_index % o->n_sub_srv];
                s->srv = &o->servers[s->srv_index];
            }
        } else {
            split(o->pubs, npt, i - nst, &n);
            w->n_pubs = n;
            if ((w->pubs = calloc(n ? n : 1, sizeof(*w->pubs))) == NULL)
                return DLG_ENOMEM;
            for (size_t k = 0; k < n; k++, pub_index++) {
                pub *p = &w->pubs[k];
                uint64_t m, warm;
                split(o->messages, o->pubs, pub_index, &m);
                split(o->warmup, o->pubs, pub_index, &warm);
                p->w = w;
                p->srv_index = o->pub_srv[pub_index % o->n_pub_srv];
                p->srv = &o->servers[p->srv_index];
                p->warm = warm;
                p->total = warm + m;
                p->first_id = next_id;
                next_id += m;
                p->rate = o->rate / o->pubs;
                if (p->total == 0)
                    p->done = 1;
            }
        }
        if (uv_loop_init(&w->loop) != 0)
            return DLG_EINTERNAL;
        w->loop_ok = 1;
        uv_async_init(&w->loop, &w->async, on_async);
        uv_timer_init(&w->loop, &w->tick);
        w->async.data = w->tick.data = w;
    }
    return 0;
}

static uint64_t deliveries_so_far(run *r) {
    uint64_t n = 0;
    for (size_t i = 0; i < r->n_w; i++)
        if (r->w[i].n_subs > 0)
            n += atomic_load_explicit(&r->w[i].progress, memory_order_relaxed);
    return n;
}

/* Deliveries and trigger replies: anything that shows the run moving. */
static uint64_t activity(run *r) {
    uint64_t n = 0;
    for (size_t i = 0; i < r->n_w; i++)
        n += atomic_load_explicit(&r->w[i].progress, memory_order_relaxed);
    return n;
}

static void set_phase(run *r, int phase) {
    atomic_store(&r->phase, phase);
    for (size_t i = 0; i < r->n_w; i++)
        if (r->w[i].thread_ok)
            uv_async_send(&r->w[i].async);
}

/* Waits on the run's condition until deadline (ns, monotonic) or 50 ms,
 * whichever comes first. Called with mu held. */
static void wait_a_bit(run *r, uint64_t deadline) {
    uint64_t now = bench_now_ns();
    uint64_t step = 50000000ull;
    if (deadline > now && deadline - now < step)
        step = deadline - now;
    if (deadline > now)
        (void)uv_cond_timedwait(&r->cv, &r->mu, step);
}

/* Per server: what its subscribers and publishers did. The peers' own
 * counters are complete once their worker has been joined. */
static void collect_servers(run *r, bench_fanout_result *res) {
    for (size_t i = 0; i < r->n_w; i++) {
        worker *w = &r->w[i];
        for (size_t k = 0; k < w->n_subs; k++) {
            const sub *s = &w->subs[k];
            bench_fanout_server *fs = &res->server[s->srv_index];
            fs->subs++;
            fs->delivered += s->got;
            fs->warm_delivered += s->warm_got;
            fs->lost += s->lost ? 1 : 0;
        }
        for (size_t k = 0; k < w->n_pubs; k++) {
            const pub *p = &w->pubs[k];
            bench_fanout_server *fs = &res->server[p->srv_index];
            fs->pubs++;
            fs->published += p->sent;
            fs->acked += p->acked;
            fs->trigger_errors += p->errors;
            fs->lost += p->lost ? 1 : 0;
        }
        for (size_t k = 0; w->hist && k < r->o->n_servers; k++) {
            bench_hist_merge(&res->server[k].hist, &w->hist[k]);
            bench_hist_merge(&res->hist, &w->hist[k]);
        }
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank quantile q of sorted v[0..n), n > 0. */
static uint64_t rank_of(const uint64_t *v, size_t n, double q) {
    double r = q * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    return v[rank == 0 ? 0 : rank - 1];
}

static void over_events(uint64_t *v, size_t n, bench_over_events *out) {
    if (n == 0)
        return;
    qsort(v, n, sizeof(*v), cmp_u64);
    out->p50 = rank_of(v, n, 0.50);
    out->p99 = rank_of(v, n, 0.99);
    out->max = v[n - 1];
}

/* --per-event: each event's deliveries from every subscriber thread, their
 * last and median, then the spread of both over the events. 0 or
 * DLG_ENOMEM. */
static int collect_events(run *r, bench_fanout_result *res) {
    const bench_opts *o = r->o;
    uint64_t m = o->messages;
    uint64_t *all = malloc((size_t)(o->subs ? o->subs : 1) * sizeof(*all));
    uint64_t *lasts = malloc((size_t)m * sizeof(*lasts));
    uint64_t *medians = malloc((size_t)m * sizeof(*medians));
    res->events = calloc((size_t)m, sizeof(*res->events));
    if (all == NULL || lasts == NULL || medians == NULL || res->events == NULL) {
        free(all);
        free(lasts);
        free(medians);
        free(res->events);
        res->events = NULL;
        return DLG_ENOMEM;
    }
    res->n_events = m;
    size_t reached = 0;
    for (uint64_t id = 0; id < m; id++) {
        size_t n = 0;
        for (size_t i = 0; i < r->n_w; i++) {
            const worker *w = &r->w[i];
            if (w->ev_n == NULL)
                continue;
            memcpy(all + n, w->ev_lat + id * w->n_subs, w->ev_n[id] * sizeof(*all));
            n += w->ev_n[id];
        }
        bench_event_stat *e = &res->events[id];
        e->delivered = (uint32_t)n;
        if (n == 0)
            continue;
        qsort(all, n, sizeof(*all), cmp_u64);
        e->last_ns = all[n - 1];
        e->median_ns = rank_of(all, n, 0.50);
        lasts[reached] = e->last_ns;
        medians[reached] = e->median_ns;
        reached++;
        if (n == o->subs)
            res->events_complete++;
    }
    res->events_reached = reached;
    over_events(lasts, reached, &res->last);
    over_events(medians, reached, &res->median);
    for (size_t i = 0; i < r->n_w; i++)
        res->bad_event_ids += r->w[i].bad_ids;
    free(all);
    free(lasts);
    free(medians);
    return 0;
}

void bench_fanout_result_free(bench_fanout_result *r) {
    free(r->events);
    r->events = NULL;
}

static void collect(run *r, bench_fanout_result *res) {
    uint64_t first = 0;
    uint64_t last = 0;
    collect_servers(r, res);
    for (size_t i = 0; i < r->n_w; i++) {
        worker *w = &r->w[i];
        res->delivered += w->delivered;
        res->warm_delivered += w->warm_delivered;
        res->out_of_order += w->ooo;
        res->published += w->published;
        res->acked += w->acked;
        res->trigger_errors += w->errors;
        res->window_full += w->full;
        if (w->first_send_ns && (first == 0 || w->first_send_ns < first))
            first = w->first_send_ns;
        if (w->last_recv_ns > last)
            last = w->last_recv_ns;
    }
    res->span_s = first && last > first ? (double)(last - first) / 1e9 : 0;
}

int bench_fanout_run(const bench_opts *o, bench_fanout_result *res) {
    run r;
    int rc;
    memset(res, 0, sizeof(*res));
    bench_hist_init(&res->hist);
    for (size_t i = 0; i < BENCH_MAX_ENDPOINTS; i++)
        bench_hist_init(&res->server[i].hist);
    for (size_t i = 0; i < BENCH_MAX_SERVERS; i++)
        res->pid_cpu_s[i] = -1;
    res->daemon_cpu_s = -1;
    res->other_cpu_s = -1;
    res->expected = (uint64_t)o->subs * o->messages;
    memset(&r, 0, sizeof(r));
    r.o = o;
    atomic_init(&r.phase, PHASE_SETUP);
    /* Every peer is a socket: 10,000 subscribers need more than the usual
     * soft limit of 1024. */
    uint64_t want = (uint64_t)o->subs + o->pubs + 64, nofile = 0;
    if ((rc = bench_raise_nofile(want, &nofile)) != 0) {
        snprintf(res->error, sizeof(res->error), "%u subscribers and %u publishers need an "
                 "open-file limit of %llu, but the hard limit allows %llu (raise it: ulimit -Hn)",
                 o->subs, o->pubs, (unsigned long long)want, (unsigned long long)nofile);
        return rc;
    }
    if (uv_mutex_init(&r.mu) != 0 || uv_cond_init(&r.cv) != 0) {
        snprintf(res->error, sizeof(res->error), "cannot create a mutex");
        return DLG_EINTERNAL;
    }
    uint64_t t_begin = bench_now_ns();
    uint64_t deadline = t_begin + (uint64_t)(o->time_limit * 1e9);
    if ((rc = make_workers(&r)) != 0) {
        snprintf(res->error, sizeof(res->error), "setting up %zu worker threads: %s", r.n_w,
                 dlg_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < r.n_w; i++) {
        if (uv_thread_create(&r.w[i].thread, worker_main, &r.w[i]) != 0) {
            snprintf(res->error, sizeof(res->error), "cannot start worker thread %zu", i);
            rc = DLG_EINTERNAL;
            goto stop;
        }
        r.w[i].thread_ok = 1;
    }

    /* Setup: every peer connected, joined and subscribed, or a failure. */
    uint32_t peers = o->subs + o->pubs;
    uv_mutex_lock(&r.mu);
    while (r.ready + r.setup_failed < peers && bench_now_ns() < deadline)
        wait_a_bit(&r, deadline);
    uint32_t ready = r.ready, failed = r.setup_failed;
    uv_mutex_unlock(&r.mu);
    if (ready < peers) {
        if (failed > 0)
            snprintf(res->error, sizeof(res->error), "%u of %u connections failed to set up; "
                     "first: %.400s", failed, peers, r.error);
        else
            snprintf(res->error, sizeof(res->error), "only %u of %u connections were set up "
                     "within the time limit (%.0f s)", ready, peers, o->time_limit);
        res->timed_out = failed == 0;
        rc = DLG_ETIMEDOUT;
        if (failed > 0)
            rc = DLG_ECLOSED;
        goto stop;
    }

    /* Run: measure CPU around the publishing and its deliveries. */
    double d0[BENCH_MAX_SERVERS], d1[BENCH_MAX_SERVERS];
    (void)bench_daemons_cpu(o, d0);
    double h0 = -1, h1;
    if (bench_host_busy(&h0) != 0)
        h0 = -1;
    double b0 = bench_self_cpu();
    uint64_t t_start = bench_now_ns();
    set_phase(&r, PHASE_RUN);
    uint64_t last_progress = 0, last_change = t_start;
    /* A stall: nothing delivered or answered for drain_ms (plus two send
     * intervals when paced). Once every trigger is answered, it means what
     * has not arrived is lost; before that, that the daemon stopped. */
    uint64_t stall_ns = (uint64_t)o->drain_ms * 1000000ull;
    if (o->rate > 0)
        stall_ns += (uint64_t)(2e9 * o->pubs / o->rate);
    uv_mutex_lock(&r.mu);
    for (;;) {
        uint64_t now = bench_now_ns();
        int pubs_over = r.pubs_done >= o->pubs;
        if (pubs_over && r.subs_done + r.lost_subs >= o->subs)
            break;
        if (now >= deadline) {
            res->timed_out = 1;
            break;
        }
        uint64_t p = activity(&r);
        if (p != last_progress) {
            last_progress = p;
            last_change = now;
        } else if (now - last_change >= stall_ns) {
            res->drained = 1;
            if (!pubs_over && r.error[0] == 0)
                snprintf(r.error, sizeof(r.error), "nothing was delivered or answered for "
                         "%.1f s: stopped waiting", (double)stall_ns / 1e9);
            break;
        }
        wait_a_bit(&r, deadline);
    }
    res->lost_peers = r.lost_subs + r.lost_pubs;
    uv_mutex_unlock(&r.mu);
    uint64_t t_end = bench_now_ns();
    res->bench_cpu_s = bench_self_cpu() - b0;
    (void)bench_daemons_cpu(o, d1);
    double known = 0;
    res->daemon_cpu_s = o->n_pids > 0 ? 0 : -1;
    for (uint32_t i = 0; i < o->n_pids; i++) {
        res->pid_cpu_s[i] = d0[i] >= 0 && d1[i] >= 0 ? d1[i] - d0[i] : -1;
        if (res->pid_cpu_s[i] < 0)
            res->daemon_cpu_s = -1;
        else
            known += res->pid_cpu_s[i];
    }
    if (res->daemon_cpu_s >= 0)
        res->daemon_cpu_s = known;
    res->other_cpu_s = -1;
    if (h0 >= 0 && bench_host_busy(&h1) == 0) {
        /* What the daemons we could read used is not noise. */
        double other = h1 - h0 - res->bench_cpu_s - known;
        /* Tick rounding can make it slightly negative on a quiet host. */
        res->other_cpu_s = other > 0 ? other : 0;
    }
    res->elapsed_s = (double)(t_end - t_start) / 1e9;
    rc = 0;

stop:
    set_phase(&r, PHASE_STOP);
    for (size_t i = 0; i < r.n_w; i++)
        if (r.w[i].thread_ok)
            uv_thread_join(&r.w[i].thread);
    if (rc == 0) {
        collect(&r, res);
        if (r.o->per_event && collect_events(&r, res) != 0) {
            snprintf(res->error, sizeof(res->error), "out of memory for the per-event "
                     "statistics of %llu events", (unsigned long long)o->messages);
            rc = DLG_ENOMEM;
        }
        uv_mutex_lock(&r.mu);
        if (r.error[0] && res->error[0] == 0)
            snprintf(res->error, sizeof(res->error), "%s", r.error);
        uv_mutex_unlock(&r.mu);
    }
out:
    if (r.w)
        free_workers(&r);
    uv_cond_destroy(&r.cv);
    uv_mutex_destroy(&r.mu);
    return rc;
}
