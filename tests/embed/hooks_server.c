/* hooks_server.c: an embedding program for tests/integration/test_hooks.py.
 * It runs a dialogue server through the public API only (dialogue/server.h)
 * and prints one line per hook call, in call order, so the test can check
 * the documented order and arguments. A before_join hook refuses room
 * "secret"; a before_each hook rewrites events named "rewrite:me".
 * usage: hooks_server CONFIG PORT_FILE */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dialogue/server.h"

static void who(const dlg_client_info *c, char *buf, size_t len) {
    snprintf(buf, len, "%s user=%s roles=%zu", c->client_id, c->user_id ? c->user_id : "-",
             c->n_roles);
}

static void on_connected(void *ud, dlg_server *s, const dlg_client_info *c) {
    (void)ud, (void)s;
    char w[128];
    who(c, w, sizeof(w));
    printf("on_connected %s\n", w);
}

static void on_disconnected(void *ud, dlg_server *s, const dlg_client_info *c, const char *r) {
    (void)ud, (void)s;
    printf("on_disconnected %s reason=%s\n", c->client_id, r);
}

static int before_join(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                       char *reason, size_t len) {
    (void)ud, (void)s;
    printf("before_join %s %s\n", c->client_id, room);
    if (strcmp(room, "secret") == 0) {
        snprintf(reason, len, "hook says no to %s", room);
        return 1;
    }
    return 0;
}

static void on_joined(void *ud, dlg_server *s, const dlg_client_info *c, const char *room) {
    (void)ud, (void)s;
    printf("on_joined %s %s\n", c->client_id, room);
}

static void on_left(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                    const char *reason) {
    (void)ud, (void)s;
    printf("on_left %s %s reason=%s\n", c->client_id, room, reason);
}

static int before_each(void *ud, dlg_server *s, const dlg_client_info *c,
                       const dlg_event_info *ev, uint8_t **nd, size_t *nl, char *reason,
                       size_t len) {
    (void)ud, (void)s, (void)reason, (void)len;
    printf("before_each %s %s %s len=%zu\n", c ? c->client_id : "system", ev->room, ev->event,
           ev->len);
    if (strcmp(ev->event, "rewrite:me") == 0) {
        *nd = malloc(9);
        memcpy(*nd, "rewritten", 9);
        *nl = 9;
    }
    return 0;
}

static void after_each(void *ud, dlg_server *s, const dlg_event_info *ev, uint64_t seq,
                       uint32_t recipients) {
    (void)ud, (void)s;
    printf("after_each %s %s seq=%llu recipients=%u\n", ev->room, ev->event,
           (unsigned long long)seq, recipients);
}

static void on_room_created(void *ud, dlg_server *s, const char *room, const char *creator) {
    (void)ud, (void)s;
    printf("on_room_created %s by=%s\n", room, creator);
}

static void on_room_deleted(void *ud, dlg_server *s, const char *room) {
    (void)ud, (void)s;
    printf("on_room_deleted %s\n", room);
}

static dlg_server *srv;

static void on_sig(uv_signal_t *h, int sig) {
    (void)sig;
    uv_close((uv_handle_t *)h, NULL);
    dlg_server_shutdown(srv);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hooks_server CONFIG PORT_FILE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512];
    if (dlg_server_create(&loop, argv[1], "127.0.0.1:0", argv[2], &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "hooks_server: %s\n", err);
        return 1;
    }
    dlg_hooks h = {
        .on_connected = on_connected, .on_disconnected = on_disconnected,
        .before_join = before_join, .on_joined = on_joined, .on_left = on_left,
        .before_each = before_each, .after_each = after_each,
        .on_room_created = on_room_created, .on_room_deleted = on_room_deleted,
    };
    if (dlg_server_add_hooks(srv, &h) != 0)
        return 1;
    uv_signal_t sig;
    uv_signal_init(&loop, &sig);
    uv_signal_start(&sig, on_sig, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    dlg_server_destroy(srv);
    printf("stopped\n");
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
