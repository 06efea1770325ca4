/* fakesrv.h: a scripted dialogue server for the client's unit tests: TLS
 * (dev certificates, ALPN dialogue/1) on 127.0.0.1:0, framing from
 * dlg_frame, and a callback per ClientFrame that decides what to answer.
 * It runs on the loop it is given; it counts what it sees, down to the TLS
 * application-data records, so tests can check write coalescing. */
#ifndef DLG_FAKESRV_H
#define DLG_FAKESRV_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dialogue/v1/protocol.pb-c.h"

typedef struct fsrv fsrv;
typedef struct fsrv_conn fsrv_conn;

/* One client frame; f is freed after the call. */
typedef void (*fsrv_frame_cb)(fsrv_conn *sc, const Dialogue__V1__ClientFrame *f, void *ud);

typedef struct fsrv_stats {
    int accepted;        /* TCP connections */
    int handshakes;      /* TLS handshakes completed */
    int frames;          /* client frames decoded */
    int records;         /* TLS records with content type 23 from clients */
    int closed;          /* connections gone */
    int pongs;           /* ClientFrame.pong received */
    uint64_t last_pong_nonce;
    char alpn[32];       /* protocol the last client offered and got */
    int tls_version;     /* of the last handshake (TLS1_2_VERSION, ...) */
} fsrv_stats;

/* Listens on 127.0.0.1:0 with certdir/server.crt/.key. cb may be NULL
 * (then Hello gets a Welcome and every other frame is ignored). no_tls:
 * accept TCP but never answer the handshake. 0 or -1. */
int fsrv_start(uv_loop_t *loop, const char *certdir, fsrv_frame_cb cb, void *ud,
               int no_tls, fsrv **out);
unsigned fsrv_port(const fsrv *s);
fsrv_stats *fsrv_stats_of(fsrv *s);

/* Closes the listener and every connection; memory goes once the loop has
 * run the close callbacks. */
void fsrv_stop(fsrv *s);

/* Sends f with request_id rid. 0 or -1. */
int fsrv_send(fsrv_conn *sc, uint64_t rid, Dialogue__V1__ServerFrame *f);

/* Sends raw plaintext bytes through TLS (for malformed frames). */
int fsrv_send_raw(fsrv_conn *sc, const void *data, size_t len);

/* Sends Welcome{heartbeat_ms, max_frame, auto_joined} answering rid. */
int fsrv_welcome(fsrv_conn *sc, uint64_t rid, uint32_t heartbeat_ms, uint32_t max_frame,
                 Dialogue__V1__Joined **auto_joined, size_t n_auto);

/* Sends Error{code, message} answering rid (0 = unsolicited). */
int fsrv_error(fsrv_conn *sc, uint64_t rid, int code, const char *message);

/* Closes one connection (after flushing what was sent). */
void fsrv_close(fsrv_conn *sc);

/* The server a connection belongs to. */
fsrv *fsrv_of(fsrv_conn *sc);

#endif
