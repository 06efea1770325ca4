/* reply.h: the reply floor: every frame a layer above the network sends to
 * one connection (answers to requests, and what the server pushes: Left,
 * Error) is built and queued through here, so no layer reaches into
 * another's to answer a client. */
#ifndef DLG_REPLY_H
#define DLG_REPLY_H

#include <stdint.h>

#include "conn.h"

/* Packs and queues f. Returns 0 or a DLG_E* code (logged). */
int dlg_reply_frame(dlg_conn *c, Dialogue__V1__ServerFrame *f);

/* Queues Error{status, message} answering request_id (0: about no
 * request); the message is formatted printf-style, escaped so the frame
 * stays valid UTF-8 whatever the client sent, and logged at debug level. */
void dlg_reply_error(dlg_conn *c, uint64_t request_id, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Queues Ack{seq, recipients} answering request_id (also for Acks sent
 * later: a durable store's commit, the cluster log's answer). */
void dlg_reply_ack(dlg_conn *c, uint64_t request_id, uint64_t seq, uint32_t recipients);

/* Queues Left{room, reason} (request_id 0: the server's own doing). */
void dlg_reply_left(dlg_conn *c, uint64_t request_id, const char *room, const char *reason);

/* Packs Left{room, reason} once into *out (a reference the caller drops),
 * for sending to many members. 0 or a DLG_E* code. */
int dlg_reply_left_frame(const char *room, const char *reason, uint64_t request_id,
                         dlg_buf **out);

#endif
