/* uring.h: the daemon's optional io_uring send path (config `io_uring`,
 * flag --io-uring). One ring per server: the per-turn flush (conn.c) queues
 * one send per dirty connection and submits them all with one
 * io_uring_enter; completions come back through an eventfd watched by the
 * libuv loop. Without it, sends are write() calls through libuv. */
#ifndef DLG_URING_H
#define DLG_URING_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dlg_log.h"

typedef struct dlg_uring dlg_uring;
typedef struct dlg_uring_send dlg_uring_send;

/* Called once per send, when it is over: res = s->len (every byte went
 * out: a short send is continued by the ring, in order, before this is
 * called) or a negative errno (-ECANCELED after dlg_uring_cancel, -EPIPE,
 * -ECONNRESET...). Runs inside dlg_uring_flush or the loop's eventfd
 * callback, never inside dlg_uring_queue or dlg_uring_cancel. The ring
 * frees s after the callback returns: the owner must not keep it. */
typedef void (*dlg_uring_send_cb)(dlg_uring_send *s, int res);

/* One send: len bytes to fd, and the buffer holding them (allocated with
 * the struct, so it stays valid until the completion whatever the caller
 * does meanwhile). */
struct dlg_uring_send {
    dlg_uring_send_cb cb;
    void *data;             /* the owner's (a connection) */
    int fd;
    unsigned canceled : 1;  /* dlg_uring_cancel was called: no more retries */
    unsigned cancel_out : 1;   /* private to uring.c: its cancel request is in the ring */
    unsigned called_back : 1;  /* private to uring.c: kept only for that request */
    size_t len;             /* bytes in bytes[] */
    size_t off;             /* bytes the kernel has taken so far */
    uint8_t bytes[];
};

/* Creates a ring of `entries` submission slots (1..32768, rounded up to a
 * power of two by the kernel) and watches its completions from loop. log
 * is borrowed (must outlive the ring). Returns 0 and *out, or DLG_EIO when the kernel refuses io_uring
 * (old kernel, seccomp, memlock limit, io_uring_disabled) and DLG_ENOMEM;
 * then err gets the call and the reason ("io_uring_queue_init(1024):
 * Operation not permitted") and nothing needs freeing. */
int dlg_uring_new(uv_loop_t *loop, const dlg_log *log, unsigned entries, dlg_uring **out,
                  char *err, size_t errlen);

/* A send of len bytes (1..INT_MAX), uninitialised: the caller fills
 * s->bytes, cb, data and fd. NULL when out of memory. Free it with free()
 * only if it was never passed to dlg_uring_queue successfully. */
dlg_uring_send *dlg_uring_send_new(size_t len);

/* Queues s (off must be 0). It goes to the kernel at the next
 * dlg_uring_flush, or earlier if the submission queue fills up. On success
 * the ring owns s until its callback has run. Returns 0, or DLG_EIO when no
 * submission slot could be had (s is then still the caller's). */
int dlg_uring_queue(dlg_uring *u, dlg_uring_send *s);

/* Submits every queued send with one io_uring_enter (more only when a
 * callback queued more), then runs the callbacks of the sends that
 * completed meanwhile. Callbacks may queue sends and cancel; what they
 * queue is submitted before this returns. A nested call does nothing. */
void dlg_uring_flush(dlg_uring *u);

/* Asks the kernel to give up s (a send the ring owns, whose callback has
 * not run) and shuts its socket down (SHUT_RDWR): for a caller that closes
 * the connection. Its callback still runs later, with -ECANCELED or
 * whatever the send had come to. Anything queued is submitted first, at
 * once: the caller may close the socket's descriptor right after this
 * returns, and a queued send must not find that number closed or reused.
 * Idempotent. */
void dlg_uring_cancel(dlg_uring *u, dlg_uring_send *s);

/* Waits (up to 2 s) for the callbacks of every send the ring still owns
 * (cancel them first), logs the ring's counters (sends, short sends
 * continued, failures, submits), then closes the eventfd watcher; the loop
 * must run once more for it to close. No callback runs after this. */
void dlg_uring_stop(dlg_uring *u);

/* Frees the ring, after dlg_uring_stop and after the loop closed the
 * watcher. Sends still owned (stop timed out) are left to the kernel, not
 * freed. NULL is ignored. */
void dlg_uring_free(dlg_uring *u);

#endif
