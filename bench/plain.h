/* plain.h: the bench's minimal plaintext client, used only for daemons with
 * a plaintext listener because libdialogue-client speaks TLS only. It knows
 * just what a bench peer needs: Hello, Join, Subscribe/Unsubscribe all,
 * Trigger, Events, heartbeat Pongs. Same contract as peer.h. */
#ifndef BENCH_PLAIN_H
#define BENCH_PLAIN_H

#include "peer.h"

typedef struct bench_plain bench_plain;

int bench_plain_new(uv_loop_t *loop, const bench_conn_opts *o, int role,
                    const bench_peer_cbs *cbs, void *ud, bench_plain **out,
                    char *err, size_t errlen);
int bench_plain_start(bench_plain *p);
int bench_plain_trigger(bench_plain *p, const char *event, const void *data,
                        size_t len);
void bench_plain_free(bench_plain *p);

#endif
