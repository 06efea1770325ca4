/* storm.c: the reconnect storm (issue 23 item 3, --storm): N dashboard-like
 * TLS clients over libdialogue-client (auto-reconnect, recovery) in one room
 * that keeps history, a publisher of numbered events at a steady rate, and a
 * daemon restart made by the caller (bench/run.sh) while they run. Measures
 * the time from the new daemon's start until every client is back, rejoined
 * and recovered, the new daemon's CPU until then, and, per client, every
 * event missing or received twice over the whole run. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "dialogue/client.h"
#include "dlg_err.h"
#include "proc.h"

enum { ST_SETUP, ST_CONNECT, ST_PUBLISH, ST_QUIET, ST_STOP };

struct storm;
struct sworker;

typedef struct ssub {
    struct sworker *w;
    dlg_client *c;
    uint8_t *seen;           /* bit per event id: received */
    uint64_t got, dups, bad_ids, ooo, last_seq, epoch;
    uint64_t gaps, left, drops; /* gap and left callbacks; DISCONNECTED reports */
    uint64_t t_back;         /* bench_now_ns() of the last recovery's Pong */
    uint32_t reconnects;     /* CONNECTED after the first */
    int joined;              /* the first Join was answered */
    int up_once;             /* CONNECTED at least once */
    int down;                /* lost its connection, not back yet */
    int went_down;           /* lost it at least once after the setup */
} ssub;

typedef struct sworker {
    struct storm *s;
    uv_loop_t loop;
    uv_async_t async;        /* main -> worker: the phase changed */
    uv_timer_t tick;         /* the publisher's pace (worker 0 only) */
    uv_thread_t thread;
    int loop_ok, thread_ok, tick_ok;
    ssub *subs;
    size_t n, made, next, connecting;
    int started, stopped;
    /* Worker 0 also runs the publisher. */
    dlg_client *pub;
    int pub_ready, pub_up;
    uint64_t pub_next;       /* next event id */
    uint64_t pub_t0, pub_sent_at_t0;
    uint8_t *payload;
} sworker;

typedef struct storm {
    const bench_opts *o;
    uv_mutex_t mu;
    uv_cond_t cv;
    /* Guarded by mu; every change signals cv. */
    uint32_t made, joined, failed, down, went_down, back_after;
    uint64_t last_back_ns;   /* newest return of a client that went down */
    uint64_t first_welcome_ns; /* first CONNECTED after a loss */
    char error[512];
    atomic_int phase;
    sworker *w;
    size_t n_w;
    /* The publisher's record (worker 0 writes, main reads after the join). */
    uint8_t *sent, *acked;
    uint64_t n_ids;          /* bitmap size in ids */
    atomic_uint_fast64_t published, n_acked, refused, skipped;
} storm;

static void note(storm *s, uint32_t *counter, const char *why) {
    uv_mutex_lock(&s->mu);
    if (counter)
        (*counter)++;
    if (why && s->error[0] == 0)
        snprintf(s->error, sizeof(s->error), "%.500s", why);
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
}

static int bit_get(const uint8_t *b, uint64_t i) {
    return b[i >> 3] >> (i & 7) & 1;
}

static void bit_set(uint8_t *b, uint64_t i) {
    b[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* ---- subscribers ----------------------------------------------------------- */

static void start_more(sworker *w);

static void on_pong(dlg_client *c, void *ud, int status, const char *msg, const void *reply) {
    ssub *u = ud;
    storm *s = u->w->s;
    (void)c, (void)msg, (void)reply;
    if (status != 0 || !u->down)
        return; /* lost again before the answer: the next Welcome asks again */
    /* The rejoin with recovery went out before this Ping on the same
     * connection: its Joined and HistoryBatch came first. */
    u->down = 0;
    u->t_back = bench_now_ns();
    uv_mutex_lock(&s->mu);
    s->down--;
    s->back_after++;
    if (u->t_back > s->last_back_ns)
        s->last_back_ns = u->t_back;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
}

static void on_joined(dlg_client *c, void *ud, int status, const char *msg, const void *reply) {
    ssub *u = ud;
    (void)c, (void)reply;
    if (status != 0) {
        char why[600];
        snprintf(why, sizeof(why), "join room %s: %s: %s", u->w->s->o->conn.room,
                 status > 0 ? dlg_client_status_name(status) : dlg_client_strerror(status), msg);
        note(u->w->s, &u->w->s->failed, why);
        return;
    }
    u->joined = 1;
    note(u->w->s, &u->w->s->joined, NULL);
}

static void sub_state(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    ssub *u = ud;
    sworker *w = u->w;
    storm *s = w->s;
    (void)reason;
    if (st == DLG_STATE_DISCONNECTED) {
        u->drops++;
        if (u->joined && !u->down) {
            u->down = 1;
            uv_mutex_lock(&s->mu);
            s->down++;
            if (!u->went_down) {
                u->went_down = 1;
                s->went_down++;
            }
            uv_cond_signal(&s->cv);
            uv_mutex_unlock(&s->mu);
        }
        return;
    }
    if (st != DLG_STATE_CONNECTED)
        return;
    if (!u->up_once) {
        u->up_once = 1;
        w->connecting--;
        start_more(w);
        int rc = dlg_client_join(c, s->o->conn.room, on_joined, u);
        if (rc != 0) {
            char why[300];
            snprintf(why, sizeof(why), "join room %s: %s", s->o->conn.room,
                     dlg_client_strerror(rc));
            note(s, &s->failed, why);
        }
        return;
    }
    u->reconnects++;
    uv_mutex_lock(&s->mu);
    if (s->first_welcome_ns == 0)
        s->first_welcome_ns = bench_now_ns();
    uv_mutex_unlock(&s->mu);
    if (u->down && dlg_client_ping(c, on_pong, u) != 0)
        note(s, NULL, "a ping after a reconnect was refused");
}

static void sub_event(dlg_client *c, void *ud, const dlg_event *ev) {
    ssub *u = ud;
    (void)c;
    uint64_t id = UINT64_MAX;
    if (ev->len >= 8)
        memcpy(&id, ev->data, 8);
    if (u->epoch == ev->epoch && ev->seq <= u->last_seq)
        u->ooo++;
    u->epoch = ev->epoch;
    u->last_seq = ev->seq;
    if (id >= u->w->s->n_ids) {
        u->bad_ids++;
        return;
    }
    if (bit_get(u->seen, id)) {
        u->dups++;
        return;
    }
    bit_set(u->seen, id);
    u->got++;
}

static void sub_gap(dlg_client *c, void *ud, const dlg_gap *gap) {
    ssub *u = ud;
    char why[600];
    (void)c;
    u->gaps++;
    snprintf(why, sizeof(why), "gap: %s", gap->reason);
    note(u->w->s, NULL, why);
}

static void sub_left(dlg_client *c, void *ud, const char *room, const char *reason) {
    ssub *u = ud;
    char why[600];
    (void)c;
    u->left++;
    snprintf(why, sizeof(why), "left room %s: %s", room, reason);
    note(u->w->s, NULL, why);
}

static void start_more(sworker *w) {
    while (!w->stopped && w->connecting < w->s->o->concurrency && w->next < w->made) {
        size_t i = w->next++;
        int rc = dlg_client_connect(w->subs[i].c);
        if (rc != 0) {
            char why[200];
            snprintf(why, sizeof(why), "connecting client %zu: %s", i, dlg_strerror(rc));
            note(w->s, &w->s->failed, why);
            continue;
        }
        w->connecting++;
    }
}

/* ---- the publisher (worker 0) ---------------------------------------------- */

typedef struct pending {
    sworker *w;
    uint64_t id;
} pending;

static void pub_done(dlg_client *c, void *ud, int status, const char *msg, const void *reply) {
    pending *p = ud;
    storm *s = p->w->s;
    (void)c, (void)msg, (void)reply;
    if (status == 0) {
        bit_set(s->acked, p->id);
        atomic_fetch_add(&s->n_acked, 1);
    } else {
        atomic_fetch_add(&s->refused, 1);
    }
    free(p);
}

static void pub_joined(dlg_client *c, void *ud, int status, const char *msg, const void *r) {
    sworker *w = ud;
    (void)r;
    if (status != 0) {
        char why[600];
        snprintf(why, sizeof(why), "publisher: join room %s: %s: %s", w->s->o->conn.room,
                 status > 0 ? dlg_client_status_name(status) : dlg_client_strerror(status), msg);
        note(w->s, &w->s->failed, why);
        return;
    }
    /* It publishes and receives nothing: the restore record keeps that. */
    if (dlg_client_unsubscribe(c, w->s->o->conn.room, NULL, 0, 1, NULL, NULL) != 0)
        note(w->s, &w->s->failed, "publisher: unsubscribe refused");
    w->pub_ready = 1;
    note(w->s, &w->s->joined, NULL);
}

static void pub_state_cb(dlg_client *c, void *ud, dlg_client_state_t st, const char *reason) {
    sworker *w = ud;
    (void)reason;
    if (st == DLG_STATE_DISCONNECTED)
        w->pub_up = 0;
    if (st != DLG_STATE_CONNECTED)
        return;
    w->pub_up = 1;
    if (w->pub_ready)
        return;
    int rc = dlg_client_join(c, w->s->o->conn.room, pub_joined, w);
    if (rc != 0)
        note(w->s, &w->s->failed, "publisher: join refused locally");
}

/* Sends the events due by now at the configured rate; while the publisher
 * is disconnected the due ones are skipped (counted), not queued. */
static void on_tick(uv_timer_t *t) {
    sworker *w = t->data;
    storm *s = w->s;
    const bench_opts *o = s->o;
    if (atomic_load(&s->phase) != ST_PUBLISH)
        return;
    uint64_t now = bench_now_ns();
    if (w->pub_t0 == 0) {
        w->pub_t0 = now;
        w->pub_sent_at_t0 = w->pub_next;
    }
    uint64_t due = w->pub_sent_at_t0 + (uint64_t)((double)(now - w->pub_t0) / 1e9 * o->rate);
    while (w->pub_next < due && w->pub_next < s->n_ids) {
        uint64_t id = w->pub_next++;
        if (!w->pub_up) {
            atomic_fetch_add(&s->skipped, 1);
            continue;
        }
        memcpy(w->payload, &id, 8);
        memcpy(w->payload + 8, &now, 8);
        pending *p = malloc(sizeof(*p));
        if (p == NULL) {
            atomic_fetch_add(&s->skipped, 1);
            continue;
        }
        p->w = w;
        p->id = id;
        int rc = dlg_client_trigger(w->pub, o->conn.room, o->event, w->payload, o->bytes,
                                    pub_done, p);
        if (rc != 0) {
            free(p);
            atomic_fetch_add(&s->skipped, 1);
            continue;
        }
        bit_set(s->sent, id);
        atomic_fetch_add(&s->published, 1);
    }
}

/* ---- worker threads -------------------------------------------------------- */

static void on_closed(uv_handle_t *h) {
    (void)h;
}

static void on_async(uv_async_t *a) {
    sworker *w = a->data;
    int phase = atomic_load(&w->s->phase);
    if (phase >= ST_CONNECT && !w->started) {
        w->started = 1;
        if (w->pub != NULL && dlg_client_connect(w->pub) != 0)
            note(w->s, &w->s->failed, "publisher: connect refused");
        start_more(w);
    }
    if (phase == ST_PUBLISH && w->tick_ok && !uv_is_active((uv_handle_t *)&w->tick)) {
        /* Ticks of 10 ms at most; each sends what is due. */
        uint64_t every = w->s->o->rate >= 100 ? 10 : (uint64_t)(1000 / w->s->o->rate);
        uv_timer_start(&w->tick, on_tick, 0, every ? every : 1);
    }
    if (phase == ST_QUIET && w->tick_ok)
        uv_timer_stop(&w->tick);
    if (phase != ST_STOP || w->stopped)
        return;
    w->stopped = 1;
    for (size_t i = 0; i < w->made; i++)
        dlg_client_free(w->subs[i].c);
    dlg_client_free(w->pub);
    w->pub = NULL;
    if (w->tick_ok)
        uv_close((uv_handle_t *)&w->tick, on_closed);
    uv_close((uv_handle_t *)&w->async, on_closed);
}

/* One client with the library's defaults for reconnects (a dashboard does
 * not tune them); NULL with err set on failure. */
static dlg_client *client_make(sworker *w, const char *name, char *err, size_t errlen) {
    const bench_opts *o = w->s->o;
    const bench_server *sv = &o->servers[o->sub_srv[0]];
    dlg_client_opts *co = NULL;
    dlg_client *c = NULL;
    int rc;
    if ((rc = dlg_client_opts_new(&co)) != 0 ||
        (rc = dlg_client_opts_set_host(co, sv->host)) != 0 ||
        (rc = dlg_client_opts_set_port(co, sv->conn.port)) != 0 ||
        (rc = dlg_client_opts_set_ca_file(co, o->conn.ca)) != 0 ||
        (rc = dlg_client_opts_set_token(co, o->conn.token)) != 0 ||
        (rc = dlg_client_opts_set_client_name(co, name)) != 0 ||
        (rc = dlg_client_opts_set_connect_timeout_ms(co, o->conn.connect_timeout_ms)) != 0 ||
        (rc = dlg_client_new(&w->loop, co, &c)) != 0) {
        char why[256] = "";
        if (co != NULL)
            dlg_client_opts_check(co, why, sizeof(why));
        snprintf(err, errlen, "client for %s: %s", sv->name,
                 why[0] ? why : dlg_client_strerror(rc));
        c = NULL;
    }
    dlg_client_opts_free(co);
    return c;
}

static void worker_main(void *arg) {
    sworker *w = arg;
    storm *s = w->s;
    char err[512] = "";
    /* Every client exists before anything is timed: this process building
     * its TLS contexts is not the daemon's cost. */
    for (; w->made < w->n; w->made++) {
        ssub *u = &w->subs[w->made];
        u->w = w;
        if ((u->c = client_make(w, "dialogue-bench storm", err, sizeof(err))) == NULL)
            break;
        if (dlg_client_on_state(u->c, sub_state, u) != 0 ||
            dlg_client_on_event(u->c, s->o->conn.room, NULL, sub_event, u) != 0 ||
            dlg_client_on_gap(u->c, sub_gap, u) != 0 ||
            dlg_client_on_left(u->c, sub_left, u) != 0) {
            snprintf(err, sizeof(err), "setting the callbacks of client %zu", w->made);
            dlg_client_free(u->c);
            u->c = NULL;
            break;
        }
    }
    if (err[0] == 0 && w->payload != NULL) {
        if ((w->pub = client_make(w, "dialogue-bench storm publisher", err, sizeof(err))) !=
                NULL &&
            dlg_client_on_state(w->pub, pub_state_cb, w) != 0)
            snprintf(err, sizeof(err), "setting the publisher's state callback");
    }
    uv_mutex_lock(&s->mu);
    s->made++;
    if (err[0] && s->error[0] == 0)
        snprintf(s->error, sizeof(s->error), "%s", err);
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void set_phase(storm *s, int phase) {
    atomic_store(&s->phase, phase);
    for (size_t i = 0; i < s->n_w; i++)
        if (s->w[i].thread_ok)
            uv_async_send(&s->w[i].async);
}

/* Waits on cv until deadline (ns, monotonic), at most 20 ms; mu held. */
static void wait_a_bit(storm *s, uint64_t deadline) {
    uint64_t now = bench_now_ns();
    if (now < deadline)
        (void)uv_cond_timedwait(&s->cv, &s->mu, deadline - now < 20000000ull
                                                    ? deadline - now : 20000000ull);
}

/* The pid in file (one decimal number), or 0. */
static int read_pid(const char *file) {
    FILE *f = fopen(file, "r");
    int pid = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* When process pid started, on bench_now_ns()'s clock (ns), from field 22
 * of /proc/PID/stat (clock ticks since boot); 0 when unknown. */
static uint64_t proc_start_ns(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    unsigned long long ticks = 0;
    int field = 3;
    char *save = NULL;
    for (char *t = strtok_r(p + 1, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        if (field++ == 22) {
            ticks = strtoull(t, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    struct timespec boot;
    clock_gettime(CLOCK_BOOTTIME, &boot);
    uint64_t boot_ns = (uint64_t)boot.tv_sec * 1000000000ull + (uint64_t)boot.tv_nsec;
    uint64_t mono_ns = bench_now_ns();
    uint64_t start_boot = ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
    /* CLOCK_BOOTTIME runs ahead of CLOCK_MONOTONIC by the time suspended. */
    uint64_t off = boot_ns > mono_ns ? boot_ns - mono_ns : 0;
    return start_boot > off ? start_boot - off : 0;
}

static void sleep_until(storm *s, uint64_t until) {
    uv_mutex_lock(&s->mu);
    while (bench_now_ns() < until)
        wait_a_bit(s, until);
    uv_mutex_unlock(&s->mu);
}

int bench_storm_run(const bench_opts *o, bench_storm_result *r) {
    storm s;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    memset(&s, 0, sizeof(s));
    r->clients = o->subs;
    r->daemon_cpu_s = -1;
    r->old_pid = r->new_pid = 0;
    s.o = o;
    atomic_init(&s.phase, ST_SETUP);
    uint64_t t_begin = bench_now_ns();
    uint64_t deadline = t_begin + (uint64_t)(o->time_limit * 1e9);
    /* Room for every id the publisher can send in the time limit. */
    s.n_ids = (uint64_t)(o->rate * o->time_limit) + 16;
    if ((rc = bench_raise_nofile((uint64_t)o->subs + 64, &r->nofile)) != 0) {
        snprintf(r->error, sizeof(r->error), "%u clients need an open-file limit of %llu, but "
                 "the hard limit allows %llu (raise it: ulimit -Hn)", o->subs,
                 (unsigned long long)o->subs + 64, (unsigned long long)r->nofile);
        return rc;
    }
    if (uv_mutex_init(&s.mu) != 0 || uv_cond_init(&s.cv) != 0) {
        snprintf(r->error, sizeof(r->error), "cannot create a mutex");
        return DLG_EINTERNAL;
    }
    s.sent = calloc(s.n_ids / 8 + 1, 1);
    s.acked = calloc(s.n_ids / 8 + 1, 1);
    s.n_w = o->sub_threads < o->subs ? o->sub_threads : o->subs;
    s.w = calloc(s.n_w, sizeof(*s.w));
    if (s.sent == NULL || s.acked == NULL || s.w == NULL) {
        snprintf(r->error, sizeof(r->error), "out of memory");
        rc = DLG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < s.n_w; i++) {
        sworker *w = &s.w[i];
        w->s = &s;
        w->n = o->subs / s.n_w + (i < o->subs % s.n_w ? 1 : 0);
        if ((w->subs = calloc(w->n ? w->n : 1, sizeof(*w->subs))) == NULL ||
            uv_loop_init(&w->loop) != 0) {
            snprintf(r->error, sizeof(r->error), "cannot set up client thread %zu", i);
            rc = DLG_ENOMEM;
            goto out;
        }
        w->loop_ok = 1;
        for (size_t k = 0; k < w->n; k++)
            if ((w->subs[k].seen = calloc(s.n_ids / 8 + 1, 1)) == NULL) {
                snprintf(r->error, sizeof(r->error), "out of memory for the event records");
                rc = DLG_ENOMEM;
                goto out;
            }
        uv_async_init(&w->loop, &w->async, on_async);
        w->async.data = w;
        if (i == 0) {
            if ((w->payload = calloc(o->bytes, 1)) == NULL) {
                snprintf(r->error, sizeof(r->error), "out of memory for the payload");
                rc = DLG_ENOMEM;
                goto out;
            }
            uv_timer_init(&w->loop, &w->tick);
            w->tick.data = w;
            w->tick_ok = 1;
        }
    }
    for (size_t i = 0; i < s.n_w; i++) {
        if (uv_thread_create(&s.w[i].thread, worker_main, &s.w[i]) != 0) {
            snprintf(r->error, sizeof(r->error), "cannot start client thread %zu", i);
            rc = DLG_EINTERNAL;
            goto stop;
        }
        s.w[i].thread_ok = 1;
    }

    /* Setup: every client made, then connected and joined (not timed). */
    uv_mutex_lock(&s.mu);
    while (s.made < s.n_w && s.error[0] == 0 && bench_now_ns() < deadline)
        wait_a_bit(&s, deadline);
    int ok = s.made == s.n_w && s.error[0] == 0;
    uv_mutex_unlock(&s.mu);
    if (!ok) {
        snprintf(r->error, sizeof(r->error), "creating %u clients: %.400s", o->subs,
                 s.error[0] ? s.error : "time limit reached");
        rc = DLG_EINTERNAL;
        goto stop;
    }
    r->setup_s = (double)(bench_now_ns() - t_begin) / 1e9;
    uint64_t t_conn = bench_now_ns();
    set_phase(&s, ST_CONNECT);
    uv_mutex_lock(&s.mu);
    while (s.joined < o->subs + 1 && s.failed == 0 && bench_now_ns() < deadline)
        wait_a_bit(&s, deadline);
    ok = s.joined == o->subs + 1 && s.failed == 0;
    uv_mutex_unlock(&s.mu);
    r->connect_s = (double)(bench_now_ns() - t_conn) / 1e9;
    if (!ok) {
        snprintf(r->error, sizeof(r->error), "connecting and joining %u clients: %.400s",
                 o->subs, s.error[0] ? s.error : "time limit reached");
        r->timed_out = bench_now_ns() >= deadline;
        goto stop;
    }

    /* Publish; once events flow, ask for the restart (the ready file). */
    r->old_pid = o->storm_pid_file ? read_pid(o->storm_pid_file) : 0;
    set_phase(&s, ST_PUBLISH);
    sleep_until(&s, bench_now_ns() + (uint64_t)o->storm_warm_ms * 1000000ull < deadline
                        ? bench_now_ns() + (uint64_t)o->storm_warm_ms * 1000000ull : deadline);
    if (o->storm_ready_file) {
        int fd = open(o->storm_ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(r->error, sizeof(r->error), "cannot create the ready file %s",
                     o->storm_ready_file);
            rc = DLG_EIO;
            goto stop;
        }
        close(fd);
    }
    uint64_t t_ready = bench_now_ns();

    /* The storm: every client lost, a new daemon, every client back. */
    uv_mutex_lock(&s.mu);
    for (;;) {
        if (bench_now_ns() >= deadline)
            break;
        int pid = o->storm_pid_file ? read_pid(o->storm_pid_file) : 0;
        if (pid > 0 && pid != r->old_pid && r->new_pid == 0) {
            r->new_pid = pid;
            r->new_start_ns = proc_start_ns(pid);
            /* The caller writes the pid once the daemon listens: what it
             * used so far is its start (config, store), not the storm. */
            double cpu;
            if (bench_proc_cpu(pid, &cpu) == 0)
                r->daemon_start_cpu_s = cpu;
        }
        if (s.went_down == o->subs && s.down == 0 && r->new_pid != 0)
            break;
        wait_a_bit(&s, deadline);
    }
    int all_back = s.went_down == o->subs && s.down == 0 && r->new_pid != 0;
    uint64_t last_back = s.last_back_ns, first_welcome = s.first_welcome_ns;
    r->went_down = s.went_down;
    r->back = s.back_after;
    uv_mutex_unlock(&s.mu);
    r->all_back = all_back;
    if (r->new_pid > 0) {
        double cpu;
        if (bench_proc_cpu(r->new_pid, &cpu) == 0)
            r->daemon_cpu_s = cpu;
    }
    if (all_back && r->new_start_ns > 0) {
        r->back_s = last_back > r->new_start_ns ? (double)(last_back - r->new_start_ns) / 1e9 : 0;
        r->first_welcome_s = first_welcome > r->new_start_ns
                                 ? (double)(first_welcome - r->new_start_ns) / 1e9 : 0;
    }
    r->storm_s = (double)(bench_now_ns() - t_ready) / 1e9;
    if (!all_back) {
        r->timed_out = 1;
        goto quiet;
    }

    /* A tail of live events, then quiet, then the drain: every acked
     * event reaches every client, or nothing arrives for drain_ms. */
    {
        uint64_t tail = bench_now_ns() + (uint64_t)o->storm_tail_ms * 1000000ull;
        sleep_until(&s, tail < deadline ? tail : deadline);
    }
quiet:
    set_phase(&s, ST_QUIET);
    {
        uint64_t until = bench_now_ns() + (uint64_t)o->drain_ms * 1000000ull;
        sleep_until(&s, until < deadline ? until : deadline);
    }
    rc = 0;

stop:
    set_phase(&s, ST_STOP);
    for (size_t i = 0; i < s.n_w; i++)
        if (s.w[i].thread_ok)
            uv_thread_join(&s.w[i].thread);
    if (s.error[0] && r->error[0] == 0)
        snprintf(r->error, sizeof(r->error), "%s", s.error);
    /* Every worker is joined: count. What some client received was
     * published, Acked or not (the Ack can be lost with the connection);
     * so is what was Acked. Each client must have all of it, once. */
    r->published = atomic_load(&s.published);
    r->acked = atomic_load(&s.n_acked);
    r->refused = atomic_load(&s.refused);
    r->skipped = atomic_load(&s.skipped);
    if (rc == 0 && s.w != NULL) {
        uint8_t *expect = calloc(s.n_ids / 8 + 1, 1);
        if (expect == NULL) {
            snprintf(r->error, sizeof(r->error), "out of memory counting");
            rc = DLG_ENOMEM;
            goto out;
        }
        for (uint64_t b = 0; b < s.n_ids / 8 + 1; b++)
            expect[b] = s.acked[b];
        for (size_t i = 0; i < s.n_w; i++)
            for (size_t k = 0; k < s.w[i].n; k++)
                for (uint64_t b = 0; b < s.n_ids / 8 + 1; b++)
                    expect[b] |= s.w[i].subs[k].seen[b];
        for (uint64_t id = 0; id < s.n_ids; id++) {
            if (!bit_get(expect, id))
                continue;
            r->expected_events++;
            if (!bit_get(s.acked, id))
                r->unacked_delivered++;
            if (!bit_get(s.sent, id))
                r->bad_ids++; /* received, never sent */
        }
        for (size_t i = 0; i < s.n_w; i++) {
            for (size_t k = 0; k < s.w[i].n; k++) {
                const ssub *u = &s.w[i].subs[k];
                uint64_t miss = r->expected_events - u->got;
                r->missing += miss;
                r->clients_missing += miss > 0;
                r->duplicates += u->dups;
                r->clients_dup += u->dups > 0;
                r->out_of_order += u->ooo;
                r->gaps += u->gaps;
                r->left += u->left;
                r->bad_ids += u->bad_ids;
                r->delivered += u->got;
                r->failed_attempts += u->drops > 0 ? u->drops - 1 : 0;
                if (u->reconnects > r->max_reconnects)
                    r->max_reconnects = u->reconnects;
            }
        }
        free(expect);
    }
out:
    for (size_t i = 0; s.w && i < s.n_w; i++) {
        sworker *w = &s.w[i];
        if (w->loop_ok && !w->thread_ok) {
            uv_close((uv_handle_t *)&w->async, on_closed);
            if (w->tick_ok)
                uv_close((uv_handle_t *)&w->tick, on_closed);
            uv_run(&w->loop, UV_RUN_DEFAULT);
        }
        if (w->loop_ok) {
            /* dlg_client_free releases from close callbacks: one more run. */
            uv_run(&w->loop, UV_RUN_DEFAULT);
            uv_loop_close(&w->loop);
        }
        for (size_t k = 0; w->subs && k < w->n; k++)
            free(w->subs[k].seen);
        free(w->subs);
        free(w->payload);
    }
    free(s.w);
    free(s.sent);
    free(s.acked);
    uv_cond_destroy(&s.cv);
    uv_mutex_destroy(&s.mu);
    return rc;
}

void bench_report_storm(const bench_opts *o, const bench_storm_result *r, int json) {
    double storm_cpu = r->daemon_cpu_s - r->daemon_start_cpu_s;
    double per = r->daemon_cpu_s >= 0 && r->back > 0 ? storm_cpu * 1e6 / r->back : -1;
    if (json) {
        printf("{\"mode\":\"storm\",\"clients\":%u,\"rate\":%g,\"bytes\":%u,"
               "\"setup_s\":%.3f,\"connect_s\":%.3f,\"old_pid\":%d,\"new_pid\":%d,"
               "\"went_down\":%u,\"back\":%u,\"all_back\":%s,\"back_s\":%.3f,"
               "\"first_welcome_s\":%.3f,\"storm_s\":%.3f,",
               r->clients, o->rate, o->bytes, r->setup_s, r->connect_s, r->old_pid, r->new_pid,
               r->went_down, r->back, r->all_back ? "true" : "false", r->back_s,
               r->first_welcome_s, r->storm_s);
        if (r->daemon_cpu_s >= 0)
            printf("\"daemon_cpu_s\":%.3f,\"daemon_start_cpu_s\":%.3f,"
                   "\"daemon_cpu_us_per_client\":%.1f,", r->daemon_cpu_s, r->daemon_start_cpu_s,
                   per);
        else
            printf("\"daemon_cpu_s\":null,\"daemon_start_cpu_s\":null,"
                   "\"daemon_cpu_us_per_client\":null,");
        printf("\"published\":%llu,\"acked\":%llu,\"refused\":%llu,\"skipped\":%llu,"
               "\"expected_events\":%llu,\"unacked_delivered\":%llu,\"delivered\":%llu,"
               "\"missing\":%llu,\"clients_missing\":%llu,\"duplicates\":%llu,"
               "\"clients_dup\":%llu,\"out_of_order\":%llu,\"gaps\":%llu,\"left\":%llu,"
               "\"bad_ids\":%llu,\"failed_attempts\":%llu,\"max_reconnects\":%u,"
               "\"timed_out\":%s,\"error\":\"",
               (unsigned long long)r->published, (unsigned long long)r->acked,
               (unsigned long long)r->refused, (unsigned long long)r->skipped,
               (unsigned long long)r->expected_events, (unsigned long long)r->unacked_delivered,
               (unsigned long long)r->delivered, (unsigned long long)r->missing,
               (unsigned long long)r->clients_missing, (unsigned long long)r->duplicates,
               (unsigned long long)r->clients_dup, (unsigned long long)r->out_of_order,
               (unsigned long long)r->gaps, (unsigned long long)r->left,
               (unsigned long long)r->bad_ids, (unsigned long long)r->failed_attempts,
               r->max_reconnects, r->timed_out ? "true" : "false");
        for (const char *p = r->error; *p; p++) {
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if ((unsigned char)*p < 0x20)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
        printf("\"}\n");
        return;
    }
    printf("dialogue-bench: reconnect storm, %u TLS clients, %g events/s of %u bytes\n",
           r->clients, o->rate, o->bytes);
    printf("setup          clients made in %.3f s, connected and joined in %.3f s\n",
           r->setup_s, r->connect_s);
    printf("restart        daemon pid %d -> %d; %u clients lost their connection, %u came "
           "back\n", r->old_pid, r->new_pid, r->went_down, r->back);
    if (r->all_back)
        printf("back           every client rejoined and recovered %.3f s after the new "
               "daemon started (first Welcome after %.3f s)\n", r->back_s, r->first_welcome_s);
    else
        printf("back           NOT every client came back within the time limit\n");
    if (r->daemon_cpu_s >= 0)
        printf("daemon CPU     %.3f s from its start until then: %.3f s to start listening, "
               "%.0f us per client after that\n", r->daemon_cpu_s, r->daemon_start_cpu_s, per);
    printf("events         %llu published, %llu acked, %llu refused or lost, %llu skipped "
           "while down; %llu expected per client (%llu delivered without an Ack)\n",
           (unsigned long long)r->published, (unsigned long long)r->acked,
           (unsigned long long)r->refused, (unsigned long long)r->skipped,
           (unsigned long long)r->expected_events, (unsigned long long)r->unacked_delivered);
    printf("missing        %llu (in %llu clients); duplicates %llu (in %llu clients); out of "
           "order %llu; gaps %llu; rooms left %llu; bad ids %llu\n",
           (unsigned long long)r->missing, (unsigned long long)r->clients_missing,
           (unsigned long long)r->duplicates, (unsigned long long)r->clients_dup,
           (unsigned long long)r->out_of_order, (unsigned long long)r->gaps,
           (unsigned long long)r->left, (unsigned long long)r->bad_ids);
    printf("attempts       %llu failed connection attempts in all; at most %u reconnects for "
           "one client\n", (unsigned long long)r->failed_attempts, r->max_reconnects);
    if (r->timed_out)
        printf("stopped by the time limit (%.0f s)\n", o->time_limit);
    if (r->error[0])
        printf("first problem: %s\n", r->error);
}
