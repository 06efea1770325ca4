/* fuzz_http.c: libFuzzer harness for the HTTP/1.1 + WebSocket intake
 * (daemon/net/http.c, ws.c) without sockets. The input is the plaintext a
 * client sends (its first byte picks where the stream is cut into reads);
 * it is fed to a connection whose codec is HTTP, on a server that serves two
 * page files. Frames that reach the protocol are counted, not dispatched
 * (fuzz_dispatch covers that). After each read the output is staged as a
 * flush would and checked: until the upgrade, only whole HTTP/1.1
 * responses; after "101 Switching Protocols", only well-formed unmasked
 * WebSocket frames; no frame passed up is larger than the limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "conn.h"
#include "conn_int.h"
#include "dlg_err.h"
#include "fuzz_util.h"
#include "server.h"
#include "web.h"

#define MAX_FRAME 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    uv_loop_t loop;
    dlg_web *web;
    uint8_t *scratch[3];
} g;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/dlg-fuzz-web-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
    char p[64];
    snprintf(p, sizeof(p), "%s/index.html", dir);
    FILE *f = fopen(p, "w");
    FUZZ_CHECK(f != NULL, "cannot write %s", p);
    fputs("<!doctype html><title>x</title>", f);
    fclose(f);
    char q[64];
    snprintf(q, sizeof(q), "%s/app.js", dir);
    f = fopen(q, "w");
    FUZZ_CHECK(f != NULL, "cannot write %s", q);
    fputs("console.log(1)\n", f);
    fclose(f);
    char err[256];
    FUZZ_CHECK(dlg_web_load(dir, &g.web, err, sizeof(err)) == 0, "web: %s", err);
    unlink(p);
    unlink(q);
    rmdir(dir);
    FUZZ_CHECK(uv_loop_init(&g.loop) == 0, "uv_loop_init failed");
    for (int i = 0; i < 3; i++)
        FUZZ_CHECK((g.scratch[i] = malloc(DLG_SCRATCH)) != NULL, "out of memory");
    return 0;
}

typedef struct out {
    uint8_t buf[1 << 16];
    size_t len;      /* bytes not yet checked */
    int upgraded;    /* a 101 went by: WebSocket frames from here */
    int closed_ws;   /* a close frame went by */
} out;

static out g_out;
static size_t g_frames;

static int on_frame(dlg_conn *c, const uint8_t *body, size_t len) {
    (void)body;
    FUZZ_CHECK(len <= c->dec.max_frame, "a %zu-byte message passed the limit %u", len,
               c->dec.max_frame);
    g_frames++;
    return 0;
}

/* Checks and drops the whole responses / frames at the head of o. */
static void check(out *o) {
    for (;;) {
        if (!o->upgraded) {
            if (o->len == 0)
                return;
            FUZZ_CHECK(o->len < 9 || memcmp(o->buf, "HTTP/1.1 ", 9) == 0,
                       "output is no HTTP/1.1 response: %.20s", o->buf);
            uint8_t *end = memmem(o->buf, o->len, "\r\n\r\n", 4);
            if (end == NULL)
                return;
            /* A body runs to the next response: the staged output is whole
             * when this runs (HEAD and 304 answers say a Content-Length but
             * carry no body, so the header cannot be trusted for that). */
            size_t head = (size_t)(end - o->buf) + 4, body = o->len - head;
            int is101 = memcmp(o->buf, "HTTP/1.1 101 ", 13) == 0;
            uint8_t *next = memmem(o->buf + head, o->len - head, "HTTP/1.1 ", 9);
            if (is101)
                body = 0;
            else if (next != NULL)
                body = (size_t)(next - (o->buf + head));
            if (is101)
                o->upgraded = 1;
            memmove(o->buf, o->buf + head + body, o->len - head - body);
            o->len -= head + body;
            continue;
        }
        if (o->len < 2)
            return;
        uint8_t op = o->buf[0] & 0x0f;
        FUZZ_CHECK((o->buf[0] & 0x70) == 0, "reserved bits set in a server frame");
        FUZZ_CHECK(op == 2 || op == 8 || op == 9 || op == 10 || op == 0,
                   "server frame with opcode %u", op);
        FUZZ_CHECK(!(o->buf[1] & 0x80), "server frame masked");
        FUZZ_CHECK(!o->closed_ws, "a frame after the close frame");
        uint64_t n = o->buf[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (o->len < 4)
                return;
            n = ((uint64_t)o->buf[2] << 8) | o->buf[3];
            hl = 4;
        } else if (n == 127) {
            if (o->len < 10)
                return;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = (n << 8) | o->buf[2 + i];
            hl = 10;
        }
        FUZZ_CHECK(n < sizeof(o->buf), "server frame of %llu bytes", (unsigned long long)n);
        if (hl + n > o->len)
            return;
        if (op == 8)
            o->closed_ws = 1;
        memmove(o->buf, o->buf + hl + n, o->len - hl - n);
        o->len -= hl + n;
    }
}

/* Stages everything the connection has to send, as a flush would. */
static void flush(dlg_conn *c) {
    for (int rounds = 0; rounds < 1000 && dlg_conn_has_output(c); rounds++) {
        size_t cap = sizeof(g_out.buf) - g_out.len;
        if (cap < 1024) {
            check(&g_out);
            cap = sizeof(g_out.buf) - g_out.len;
        }
        FUZZ_CHECK(cap >= 1024, "output not consumed by the checker");
        size_t n = dlg_conn_stage(c, g_out.buf + g_out.len, cap > 16384 ? 16384 : cap);
        if (n == 0)
            break;
        g_out.len += n;
    }
    check(&g_out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    unsigned cut = data[0] % 16 + 1; /* reads of 1..16 pieces' worth */
    data++;
    size--;
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    dlg_server_opts_default(&srv.opts);
    srv.opts.max_frame = MAX_FRAME;
    srv.loop = &g.loop;
    srv.web = g.web; /* borrowed: cleared before the end */
    srv.rbuf = g.scratch[0];
    srv.pbuf = g.scratch[1];
    srv.wbuf = g.scratch[2];
    srv.up.frame = on_frame;
    uv_idle_init(srv.loop, &srv.kick);
    memset(&g_out, 0, sizeof(g_out));
    g_frames = 0;

    dlg_conn *c = calloc(1, sizeof(*c));
    FUZZ_CHECK(c != NULL, "out of memory");
    c->srv = &srv;
    c->id = 1;
    snprintf(c->client_id, sizeof(c->client_id), "c1");
    snprintf(c->peer, sizeof(c->peer), "fuzz");
    c->dec.max_frame = MAX_FRAME;
    uv_tcp_init(srv.loop, &c->st.tcp);
    uv_timer_init(srv.loop, &c->timer);
    c->st.tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->state = DLG_CONN_HELLO;
    c->codec = &dlg_codec_http;
    srv.conns = c;
    srv.n_conns = 1;

    size_t piece = size / cut + 1;
    for (size_t off = 0; off < size && c->state != DLG_CONN_CLOSING && !c->close_after_flush;
         off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        c->in_bytes += n;
        if (c->codec->feed(c, data + off, n) != 0)
            break;
        flush(c);
        srv.dirty = NULL; /* nothing is flushed for real */
        c->in_dirty = 0;
    }
    flush(c);
    srv.dirty = NULL; /* as a flush would empty it */
    c->in_dirty = 0;
    if (c->state != DLG_CONN_CLOSING)
        dlg_conn_close(c, "end of fuzz input");
    if (c->dirty_hold) { /* closed while listed: the list's count, given back */
        c->dirty_hold = 0;
        c->handles_open--;
    }
    uv_close((uv_handle_t *)&srv.kick, NULL);
    uv_run(srv.loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(!uv_loop_alive(srv.loop), "handles left open after the input");
    srv.web = NULL;
    srv.rbuf = srv.pbuf = srv.wbuf = NULL;
    dlg_server_free(&srv);
    return 0;
}
