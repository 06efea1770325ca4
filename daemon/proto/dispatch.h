/* dispatch.h: decodes one ClientFrame and runs it for the connection's
 * state (Hello first, then requests). */
#ifndef DLG_DISPATCH_H
#define DLG_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Handles one frame body. Returns 0 to go on reading frames, non-zero when
 * the connection is closing and nothing more should be decoded. */
int dlg_dispatch_frame(dlg_conn *c, const uint8_t *body, size_t len);

/* Queues Ack{seq, recipients} answering request_id to c (also for Acks
 * sent later: a durable store's commit, the cluster log's answer). */
void dlg_dispatch_send_ack(dlg_conn *c, uint64_t request_id, uint64_t seq, uint32_t recipients);

#endif
