/* uring.c: the io_uring send path (see uring.h): the ring, its eventfd
 * watcher in the libuv loop, submission, completion and cancellation of
 * sends. */
#include "uring.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

/* Counters since dlg_uring_new, logged at stop (tests read them there). */
typedef struct dlg_uring_stats {
    uint64_t sends;        /* dlg_uring_queue calls accepted */
    uint64_t continued;    /* short sends continued with the rest */
    uint64_t submits;      /* io_uring_enter calls that submitted */
    uint64_t failed;       /* sends whose callback got an error */
} dlg_uring_stats;

struct dlg_uring {
    struct io_uring ring;
    int efd;                 /* signalled by the kernel on completions */
    uv_poll_t poll;          /* watches efd */
    const dlg_log *log;
    uint64_t n_owned;        /* sends whose callback has not run */
    uint64_t n_held;         /* sends called back, kept for a cancel still out */
    int in_flush;
    int stopped;
    int submit_err_logged;
    dlg_uring_stats st;
};

static void on_eventfd(uv_poll_t *h, int status, int events);

static void on_failed_poll_closed(uv_handle_t *h) {
    dlg_uring *u = h->data;
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    free(u);
}

int dlg_uring_new(uv_loop_t *loop, const dlg_log *log, unsigned entries, dlg_uring **out,
                  char *err, size_t errlen) {
    int rc;
    dlg_uring *u = dlg_calloc(1, sizeof(*u));
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return DLG_ENOMEM;
    }
    u->log = log;
    rc = io_uring_queue_init(entries, &u->ring, 0);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_queue_init(%u): %s", entries, strerror(-rc));
        rc = DLG_EIO;
        goto fail;
    }
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        rc = DLG_EIO;
        goto fail_ring;
    }
    /* Every completion signals the eventfd, except while dlg_uring_flush
     * submits (it reaps those itself; see submit_quiet). The "async only"
     * registration would not do: a send that waited for a full socket
     * completes from task work, not from an io-wq worker, and would not
     * signal it. */
    if ((rc = io_uring_register_eventfd(&u->ring, u->efd)) < 0) {
        snprintf(err, errlen, "io_uring_register_eventfd: %s", strerror(-rc));
        rc = DLG_EIO;
        goto fail_efd;
    }
    if ((rc = uv_poll_init(loop, &u->poll, u->efd)) != 0) {
        snprintf(err, errlen, "uv_poll_init(eventfd): %s", uv_strerror(rc));
        rc = DLG_EIO;
        goto fail_efd;
    }
    u->poll.data = u;
    if ((rc = uv_poll_start(&u->poll, UV_READABLE, on_eventfd)) != 0) {
        snprintf(err, errlen, "uv_poll_start(eventfd): %s", uv_strerror(rc));
        /* The handle is the loop's now: the ring goes with it. */
        uv_close((uv_handle_t *)&u->poll, on_failed_poll_closed);
        return DLG_EIO;
    }
    *out = u;
    return 0;

fail_efd:
    close(u->efd);
fail_ring:
    io_uring_queue_exit(&u->ring);
fail:
    free(u);
    return rc;
}

dlg_uring_send *dlg_uring_send_new(size_t len) {
    if (len == 0 || len > INT_MAX)
        return NULL;
    dlg_uring_send *s = dlg_malloc(sizeof(*s) + len);
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->len = len;
    return s;
}

/* Submits what is queued with the eventfd muted: the completions the
 * kernel posts during this call (sends that fitted in the socket at once,
 * the usual case) are reaped by the caller right after, so waking the loop
 * for them would only cost an epoll_wait and a read. Completions that come
 * later (a socket that was full) find the eventfd on again. */
static int submit_quiet(dlg_uring *u) {
    int rc;
    io_uring_cq_eventfd_toggle(&u->ring, false);
    do
        rc = io_uring_submit(&u->ring);
    while (rc == -EINTR);
    io_uring_cq_eventfd_toggle(&u->ring, true);
    if (rc > 0)
        u->st.submits++;
    return rc;
}

/* Puts the rest of s ([off, len)) in a submission slot. */
static int queue_rest(dlg_uring *u, dlg_uring_send *s) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        /* The queue is full (more dirty connections than slots): submit
         * what it holds; their completions are reaped by the flush that
         * follows every caller of this. */
        submit_quiet(u);
        if ((sqe = io_uring_get_sqe(&u->ring)) == NULL)
            return DLG_EIO;
    }
    io_uring_prep_send(sqe, s->fd, s->bytes + s->off, s->len - s->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, s);
    return 0;
}

int dlg_uring_queue(dlg_uring *u, dlg_uring_send *s) {
    if (u->stopped)
        return DLG_EIO;
    int rc = queue_rest(u, s);
    if (rc != 0)
        return rc;
    u->n_owned++;
    u->st.sends++;
    return 0;
}

/* A cancel request names its send by address (user_data), tagged with bit 0
 * (malloc'd, so that bit is free) to tell the two kinds of completion
 * apart. s is kept until the request's own completion has been seen, so its
 * address cannot be reused by a new send that the request would then
 * cancel by mistake. */
#define CANCEL_TAG ((uintptr_t)1)

static void release(dlg_uring *u, dlg_uring_send *s) {
    if (s->cancel_out) {
        s->called_back = 1;
        u->n_held++;
        return;
    }
    free(s);
}

/* One completion of s: either continue a short send or finish s. */
static void complete(dlg_uring *u, dlg_uring_send *s, int res) {
    if (res > 0) {
        s->off += (size_t)res;
        if (s->off < s->len && !s->canceled) {
            /* A stream socket takes what fits; the rest goes next, before
             * anything later for this connection (its owner sends nothing
             * else while s is out). */
            u->st.continued++;
            if (queue_rest(u, s) == 0)
                return;
            res = -ENOBUFS;
        }
    } else if (res == 0) {
        res = -EPIPE; /* nothing taken from a non-empty send: do not spin */
    }
    int out = s->off == s->len ? (int)s->len : res < 0 ? res : -ECANCELED;
    if (out < 0)
        u->st.failed++;
    u->n_owned--;
    s->cb(s, out);
    release(u, s);
}

/* Runs the completions waiting in the ring; returns how many. */
static unsigned reap(dlg_uring *u) {
    struct io_uring_cqe *cqe;
    unsigned n = 0;
    while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        /* Seen before the callback: it may submit, and the slot is free. */
        io_uring_cqe_seen(&u->ring, cqe);
        n++;
        dlg_uring_send *s = (dlg_uring_send *)(ud & ~CANCEL_TAG);
        if (!(ud & CANCEL_TAG)) {
            complete(u, s, res);
        } else {
            /* The cancel request's own completion (found it or not). */
            s->cancel_out = 0;
            if (s->called_back) {
                u->n_held--;
                free(s);
            }
        }
    }
    return n;
}

void dlg_uring_flush(dlg_uring *u) {
    if (u->in_flush)
        return;
    u->in_flush = 1;
    /* Bounded: each round either sent bytes, parked a send on a full
     * socket, or failed; a kernel that keeps refusing is retried at the
     * next flush. */
    for (int round = 0; round < 64; round++) {
        if (io_uring_sq_ready(&u->ring) > 0) {
            int rc = submit_quiet(u);
            if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) {
                if (!u->submit_err_logged++)
                    dlg_log_error(u->log, "io_uring: submit failed: %s (sends wait for the "
                                          "next turn)", strerror(-rc));
                reap(u);
                break;
            }
        }
        unsigned n = reap(u);
        if (n == 0 && io_uring_sq_ready(&u->ring) == 0)
            break;
    }
    u->in_flush = 0;
}

void dlg_uring_cancel(dlg_uring *u, dlg_uring_send *s) {
    if (s->canceled)
        return;
    s->canceled = 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    if (sqe != NULL) {
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)s, 0);
        io_uring_sqe_set_data(sqe, (void *)((uintptr_t)s | CANCEL_TAG));
        s->cancel_out = 1;
    } else {
        /* The shutdown below still ends it; the owner stays allocated
         * until its callback. */
        dlg_log_error(u->log, "io_uring: no submission slot to cancel a send of %zu bytes",
                      s->len);
    }
    /* Not muted: this may run outside dlg_uring_flush, and the eventfd is
     * then what makes the loop reap the completions. */
    int rc;
    do
        rc = io_uring_submit(&u->ring);
    while (rc == -EINTR);
    if (rc > 0)
        u->st.submits++;
    /* The ring holds the socket, not only the caller's descriptor, and a
     * send that was just woken and is being retried is not found by the
     * cancel; it would park again and keep the socket open until the peer
     * reads. Shut down, the socket itself ends: the peer sees the close and
     * such a send fails. */
    shutdown(s->fd, SHUT_RDWR);
}

static void on_eventfd(uv_poll_t *h, int status, int events) {
    (void)status;
    (void)events;
    dlg_uring *u = h->data;
    uint64_t v;
    ssize_t n = read(u->efd, &v, sizeof(v)); /* EAGAIN: nothing to clear */
    (void)n;
    dlg_uring_flush(u);
}

void dlg_uring_stop(dlg_uring *u) {
    if (u->stopped)
        return;
    dlg_uring_flush(u);
    for (int i = 0; i < 20 && (u->n_owned > 0 || u->n_held > 0); i++) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
        dlg_uring_flush(u);
    }
    if (u->n_owned > 0 || u->n_held > 0)
        dlg_log_warn(u->log, "io_uring: %llu send(s) still in the kernel after 2 s at stop; "
                             "their buffers are left to it",
                     (unsigned long long)(u->n_owned + u->n_held));
    dlg_log_info(u->log, "io_uring: %llu sends (%llu continued after a short send, %llu "
                         "failed) in %llu submits",
                 (unsigned long long)u->st.sends, (unsigned long long)u->st.continued,
                 (unsigned long long)u->st.failed, (unsigned long long)u->st.submits);
    u->stopped = 1;
    uv_close((uv_handle_t *)&u->poll, NULL);
}

void dlg_uring_free(dlg_uring *u) {
    if (u == NULL)
        return;
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    free(u);
}
