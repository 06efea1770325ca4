/* ws.h: one WebSocket session (RFC 6455) over a connection, after the
 * HTTP upgrade (http.c): each binary message carries one ClientFrame or
 * ServerFrame, without dialogue/1's 5-byte prefix. Framing, masking,
 * fragments, ping/pong and the close handshake are libwslay's; this
 * module ties them to the connection: messages up to srv->up.frame,
 * queued frames down as messages, and a session that ends with an Error
 * ends with close code 4000 + its Status. */
#ifndef DLG_WS_H
#define DLG_WS_H

#include <stddef.h>
#include <stdint.h>

struct dlg_conn;
typedef struct dlg_ws dlg_ws;

/* A session for c. NULL when out of memory. Freed with dlg_ws_free. */
dlg_ws *dlg_ws_new(struct dlg_conn *c);

void dlg_ws_free(dlg_ws *w);

/* The peer's bytes; whole messages go to srv->up.frame. 0 = read on,
 * non-zero = the connection reads no more. */
int dlg_ws_feed(dlg_ws *w, const uint8_t *data, size_t len);

/* Up to cap bytes of output (the queue's frames as messages, pongs, the
 * close) to dst; returns how many. */
size_t dlg_ws_stage(dlg_ws *w, uint8_t *dst, size_t cap);

/* Non-zero while wslay holds output (a pong, a close, a message begun). */
int dlg_ws_more(const dlg_ws *w);

/* Bytes wslay holds for this session (queued messages). */
uint64_t dlg_ws_pending(const dlg_ws *w);

/* An Error message and the close frame that ends the session with its
 * status, into dst; 0 when they do not fit. */
size_t dlg_ws_final_error(dlg_ws *w, int status, const char *msg, uint8_t *dst, size_t cap);

#endif
