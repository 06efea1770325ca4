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


/* The network layer's closing upcall (dlg_net_upcalls): tells the hooks
 * that c left each of its rooms and, past Welcome, disconnected, and drops
 * its memberships. */
void dlg_dispatch_closing(dlg_conn *c, const char *reason, int was_ready);

#endif
