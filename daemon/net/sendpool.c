/* sendpool.c: the flush shared between the loop thread and helpers (see
 * sendpool.h). One job at a time: the loop thread opens it under the
 * mutex, everyone takes items through one atomic counter, and the loop
 * thread closes it and waits for the helpers still inside. */
#include "sendpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

typedef struct helper {
    dlg_sendpool *pool;
    pthread_t th;
    uint8_t *scratch;
    uint64_t taken; /* items this helper ran (read by the loop thread after a run) */
} helper;

struct dlg_sendpool {
    pthread_mutex_t mu;
    pthread_cond_t go;   /* a job opened, or quit */
    pthread_cond_t done; /* the last helper left a closed job */
    /* Under mu. */
    uint64_t gen;        /* number of the newest job */
    int open;            /* helpers may still enter job `gen` */
    unsigned active;     /* helpers inside a job */
    unsigned sleeping;   /* helpers waiting on go */
    int quit;
    /* The job: written under mu before it opens, read-only while open. */
    void **items;
    size_t n;
    dlg_sendpool_fn fn;
    void *ud;
    atomic_size_t next;  /* the next item nobody took yet */
    helper *h;
    unsigned n_helpers;
};

/* Takes items until none is left; returns how many this thread ran. */
static uint64_t take_all(dlg_sendpool *p, uint8_t *scratch) {
    uint64_t ran = 0;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n)
            return ran;
        p->fn(p->items[i], scratch, p->ud);
        ran++;
    }
}

static void *helper_main(void *arg) {
    helper *h = arg;
    dlg_sendpool *p = h->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* A job that closed before this helper woke is skipped: the loop
         * thread did its items. */
        while (!p->quit && !(p->open && p->gen != seen)) {
            p->sleeping++;
            pthread_cond_wait(&p->go, &p->mu);
            p->sleeping--;
        }
        if (p->quit)
            break;
        seen = p->gen;
        p->active++;
        pthread_mutex_unlock(&p->mu);
        uint64_t ran = take_all(p, h->scratch);
        pthread_mutex_lock(&p->mu);
        h->taken += ran;
        if (--p->active == 0 && !p->open)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_helpers(dlg_sendpool *p, unsigned started) {
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(p->h[i].th, NULL);
}

static void pool_release(dlg_sendpool *p) {
    for (unsigned i = 0; i < p->n_helpers; i++)
        free(p->h[i].scratch);
    free(p->h);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->go);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int dlg_sendpool_new(unsigned helpers, size_t scratch_len, dlg_sendpool **out) {
    if (helpers == 0 || helpers > 63 || scratch_len == 0 || out == NULL)
        return DLG_EINVAL;
    dlg_sendpool *p = dlg_calloc(1, sizeof(*p));
    if (p == NULL)
        return DLG_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    p->n_helpers = helpers;
    int rc = DLG_ENOMEM;
    if ((p->h = dlg_calloc(helpers, sizeof(*p->h))) == NULL)
        goto fail;
    for (unsigned i = 0; i < helpers; i++)
        if ((p->h[i].scratch = dlg_malloc(scratch_len)) == NULL)
            goto fail;
    unsigned started;
    for (started = 0; started < helpers; started++) {
        p->h[started].pool = p;
        if (pthread_create(&p->h[started].th, NULL, helper_main, &p->h[started]) != 0) {
            stop_helpers(p, started);
            rc = DLG_EIO;
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    pool_release(p);
    return rc;
}

void dlg_sendpool_run(dlg_sendpool *p, void **items, size_t n, dlg_sendpool_fn fn, void *ud,
                      uint8_t *scratch) {
    if (n == 0)
        return;
    pthread_mutex_lock(&p->mu);
    p->items = items;
    p->n = n;
    p->fn = fn;
    p->ud = ud;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->gen++;
    p->open = 1;
    /* No wake-up call when every helper is still busy leaving the last
     * job: they look for the next one before sleeping. */
    if (p->sleeping > 0)
        pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);

    take_all(p, scratch);

    pthread_mutex_lock(&p->mu);
    p->open = 0;
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

unsigned dlg_sendpool_helpers(const dlg_sendpool *p) {
    return p->n_helpers;
}

uint64_t dlg_sendpool_helped(dlg_sendpool *p) {
    uint64_t t = 0;
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->n_helpers; i++)
        t += p->h[i].taken;
    pthread_mutex_unlock(&p->mu);
    return t;
}

void dlg_sendpool_free(dlg_sendpool *p) {
    if (p == NULL)
        return;
    stop_helpers(p, p->n_helpers);
    pool_release(p);
}
