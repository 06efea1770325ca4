/* bus_nats_int.h: what bus_nats.c (the connection, the inbox, the room
 * subjects) and bus_log.c (the JetStream room log) share. Private. */
#ifndef DLG_BUS_NATS_INT_H
#define DLG_BUS_NATS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>
#include <uv.h>

#include "bus.h"

/* Threading, as libnats 3.4 with its libuv adapter does it:
 * - socket reads and writes run on the loop thread (the adapter polls the
 *   socket with uv_poll and calls natsConnection_Process*Event);
 * - message callbacks run on the library's delivery threads (one shared
 *   pool here, UseGlobalMessageDelivery), connection callbacks
 *   (disconnected, reconnected, closed, errors) on its callback thread, and
 *   reconnecting on a thread of its own, which re-attaches the new socket
 *   to the loop through the adapter's uv_async;
 * - so every callback only touches the inbox, under its mutex, and wakes
 *   the loop with uv_async_send; rooms and connections are only ever
 *   touched by the loop thread;
 * - a request/reply call (the JetStream API) made on the loop thread would
 *   wait for a reply only that thread can read: bus_log.c makes them on a
 *   thread of its own. */

#define HDR_NODE "Dialogue-Node"
/* "RUN-N": this start of the node (hex) and the room's fwd_seq (decimal). */
#define HDR_SEQ "Dialogue-Seq"
/* What may wait for the loop; past it a message is dropped and counted
 * (the loop is the bottleneck then, not NATS). */
#define INBOX_MAX_MSGS 65536
#define INBOX_MAX_BYTES (64u << 20)
/* Room ids are at most 255 bytes, each escaped to at most 3. */
#define SUBJECT_MAX (16 + 3 * 255 + 1)
#define LOG_EVERY_MS 10000

/* A room event (msg), or the log's answer to a trigger (msg NULL). */
typedef struct inbox_item {
    struct inbox_item *next;
    natsMsg *msg;
    const void *sub;          /* the subscription it came on (identity only) */
    size_t bytes;
    uint64_t ticket, seq;     /* answer: the trigger, the log's seq */
    char *error;              /* answer: NULL = stored, else why not (owned) */
    int link;                 /* a LINK_* event instead (in order with the
                                 messages around it), 0 = none */
} inbox_item;

/* What happened to the connection or a subscription, queued in order with
 * the messages (inbox_item.link). */
enum { LINK_LOST = 1, LINK_BACK, LINK_SLOW };

/* Shared with the NATS threads, so it lives until the last of them is
 * done with it: one reference for the bus, one for the connection (given
 * back by its closed callback, the last one it makes) and one per
 * subscription (given back by its on-complete callback). */
typedef struct inbox {
    uv_mutex_t mu;
    int refs;
    int closing;              /* set by stop: the async handle may be gone */
    uv_async_t *async;        /* the bus's; used only while !closing */
    inbox_item *head, *tail;
    size_t n, bytes;
    uint64_t overflow;        /* dropped because the inbox was full */
    uint32_t disconnects, reconnects;
    char error[256];          /* last asynchronous error, "" = none */
    int hold;                 /* the loop leaves room events queued (the
                                 log is being set up) */
} inbox;

enum { LOG_PUBLISH, LOG_RELAY, LOG_SELF, LOG_OVERFLOW, LOG_RESYNC, LOG_N };

struct nats_log;

typedef struct nats_bus {
    dlg_bus base;             /* first: a dlg_bus * is a nats_bus * */
    char *node_id;
    char servers[512];        /* the configured URLs, for messages */
    natsOptions *opts;
    natsConnection *nc;
    uv_async_t async;
    int async_open;
    inbox *ib;
    uint64_t logged_ms[LOG_N];   /* rate limit of repeated warnings */
    uint64_t unlogged[LOG_N];
    struct nats_log *log;        /* the JetStream room log; NULL = none */
    uint64_t link_lost_ms;       /* when LINK_LOST was seen, 0 = linked */
    uint64_t run;                /* random per start: HDR_SEQ's first half */
} nats_bus;

/* Inbox references (see struct inbox). Any thread. */
void dlg__nats_inbox_ref(inbox *ib);
void dlg__nats_inbox_unref(inbox *ib);

/* Appends it (the inbox owns it from here) and wakes the loop; when the
 * inbox is full or closing it is freed and counted as an overflow
 * instead. Any thread. */
void dlg__nats_inbox_push(inbox *ib, inbox_item *it);

/* Frees an item and what it holds. */
void dlg__nats_item_free(inbox_item *it);

/* The subscription callback: queues msg for the loop. closure = inbox. */
void dlg__nats_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);
void dlg__nats_on_sub_complete(void *closure);

/* A warning, at most one line per kind per LOG_EVERY_MS. Loop thread. */
void dlg__nats_warn(nats_bus *nb, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the log (bus_log.c) ------------------------------------------------ */

struct dlg_config_cluster;

/* Prepares the log configured by cc; nothing is contacted yet. 0 or
 * DLG_ENOMEM. */
int dlg__nats_log_new(nats_bus *nb, const struct dlg_config_cluster *cc);

/* Once connected: makes sure every configured room has its stream,
 * subscribes to each from where its history needs, and runs the loop until
 * those events are in (bounded). The rooms' seq and epoch become the log's.
 * Returns 0 or DLG_EIO (logged). */
int dlg__nats_log_start(nats_bus *nb);

/* A message of a log subscription (it->msg, it->sub), on the loop; room is
 * its subject's. Returns 1 when it keeps the item for later (it is then
 * its owner), 0 when done with it. */
int dlg__nats_log_msg(nats_bus *nb, inbox_item *it, const char *room);

/* A trigger the stream had no leader for (it->msg, it->ticket): sent again
 * shortly, or refused when the node stops. Takes it. */
void dlg__nats_log_retry(nats_bus *nb, inbox_item *it);

/* libnats reported missed heartbeats or a timeout on subscription sub: if
 * it is a room's, a new one is made from the first event the room lacks. */
void dlg__nats_log_stalled(nats_bus *nb, const void *sub);

/* Drops the triggers waiting to be sent again and closes the log's handle
 * (the loop must run once more before dlg__nats_log_free). */
void dlg__nats_log_stop(nats_bus *nb);

/* bus ops (bus.h). */
int dlg__nats_log_room(const dlg_bus *b, const char *room);
int dlg__nats_log_publish(dlg_bus *b, const struct dlg_room *r, const char *event,
                          dlg_buf *frame, uint64_t ticket, char *err, size_t errlen);

/* Frees the log, after the connection is closed. NULL is ignored. */
void dlg__nats_log_free(struct nats_log *lg);

#endif
