/* tcpproxy.h: a byte-for-byte TCP proxy on 127.0.0.1 for the client's
 * integration tests, so a test can cut a client's connection (and refuse
 * new ones) for a while and then let it through again, while the daemon and
 * every other client go on undisturbed. It runs on the loop it is given. */
#ifndef DLG_TCPPROXY_H
#define DLG_TCPPROXY_H

#include <uv.h>

typedef struct tproxy tproxy;

/* Listens on 127.0.0.1:0 and forwards each connection to
 * 127.0.0.1:target_port. 0 or -1 (with a message on stderr). */
int tproxy_start(uv_loop_t *loop, unsigned target_port, tproxy **out);

/* The port clients connect to (stays the same across cut and resume). */
unsigned tproxy_port(const tproxy *p);

/* Connections accepted so far. */
int tproxy_accepted(const tproxy *p);

/* Drops every proxied connection (both sides) and stops listening, so new
 * attempts are refused. Takes effect as the loop runs the close callbacks. */
void tproxy_cut(tproxy *p);

/* Listens again on the same port. 0, or -1 when the listener from before
 * the cut is not closed yet (run the loop first) or the bind fails. */
int tproxy_resume(tproxy *p);

/* Closes everything; the memory goes once the loop has run the close
 * callbacks. */
void tproxy_stop(tproxy *p);

#endif
