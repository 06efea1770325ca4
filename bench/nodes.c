/* nodes.c: the servers and daemons of a run: each server's connection
 * options, and every daemon's CPU time read at once (see bench.h). */
#include "bench.h"
#include "proc.h"

void bench_opts_bind_servers(bench_opts *o) {
    /* Subscribers of other servers subscribe to these two by name. */
    o->conn.sub_events[0] = o->event;
    o->conn.sub_events[1] = o->warm_event;
    for (uint32_t i = 0; i < o->n_servers; i++) {
        bench_server *s = &o->servers[i];
        unsigned port = s->conn.port;
        s->conn = o->conn;
        s->conn.host = s->host;
        s->conn.port = port;
    }
}

double bench_daemons_cpu(const bench_opts *o, double cpu[BENCH_MAX_SERVERS]) {
    double sum = o->n_pids > 0 ? 0 : -1;
    for (uint32_t i = 0; i < o->n_pids; i++) {
        if (bench_proc_cpu(o->daemon_pids[i], &cpu[i]) != 0)
            cpu[i] = -1;
        if (cpu[i] < 0)
            sum = -1;
        else if (sum >= 0)
            sum += cpu[i];
    }
    return sum;
}
