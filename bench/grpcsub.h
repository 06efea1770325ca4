/* grpcsub.h: a bench subscriber over gRPC: one Subscribe stream on its own
 * HTTP/2 connection, to a plaintext listener (HTTP/2 with prior
 * knowledge), for measuring fan-out through the gRPC transport
 * (dialogue-bench --grpc). Subscribers only: publishers stay on
 * dialogue/1. Same contract as peer.h for the calls it has. */
#ifndef BENCH_GRPCSUB_H
#define BENCH_GRPCSUB_H

#include "peer.h"

typedef struct bench_grpcsub bench_grpcsub;

int bench_grpcsub_new(uv_loop_t *loop, const bench_conn_opts *o, const bench_peer_cbs *cbs,
                      void *ud, bench_grpcsub **out, char *err, size_t errlen);
int bench_grpcsub_start(bench_grpcsub *p);
void bench_grpcsub_free(bench_grpcsub *p);

#endif
