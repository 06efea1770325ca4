/* test_bus.c: the cluster seam without NATS: subject mapping, and three
 * servers on one loop joined by the in-process hub, checked for delivery
 * exactly once per member (the origin not echoed), per-node numbering,
 * interest that follows local membership, history kept without members,
 * the relay refusing what is not an Event of a known room, and the cluster
 * log's side of the seam (Acks waiting for the log, its numbering) with a
 * fake log in place of JetStream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "access.h"
#include "dlg_clock.h"
#include "boot.h"
#include "bus.h"
#include "config.h"
#include "conn.h"
#include "fakeconn.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "trigger.h"
#include "history.h"
#include "room.h"
#include "server.h"

static const char config_yaml[] =
    "log_level: error\n"
    "auth: {anonymous: true}\n"
    "rooms:\n"
    "  - id: chat.main:1\n"
    "    events: [\"*\"]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [\"*\"]\n"
    "    trigger: [\"*\"]\n"
    "  - id: kept\n"
    "    events: [\"*\"]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [\"*\"]\n"
    "    trigger: [\"*\"]\n"
    "    history:\n"
    "      - {event: \"*\", limit: 10}\n"
    "  - id: only-here\n"
    "    events: [\"*\"]\n"
    "    default_subscriptions: [\"*\"]\n"
    "    join: [\"*\"]\n";

#define NODES 3

typedef struct world {
    uv_loop_t loop;
    dlg_config *cfg;
    dlg_bus_hub *hub;
    dlg_server srv[NODES];
} world;

/* ---- subjects ---------------------------------------------------------- */

static void subject_mapping(void **state) {
    (void)state;
    char s[64], r[64];
    assert_int_equal(dlg_bus_subject("lobby", s, sizeof(s)), 19);
    assert_string_equal(s, "dialogue.room.lobby");
    assert_true(dlg_bus_subject("a.b:c-d_e", s, sizeof(s)) > 0);
    assert_string_equal(s, "dialogue.room.a%2Eb%3Ac-d_e");
    static const char *const ids[] = {"x", "a..b", ".", ":", "metrics:update", "A-Z_0.9"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        assert_true(dlg_bus_subject(ids[i], s, sizeof(s)) > 0);
        /* One token after the prefix: nothing a NATS wildcard could split. */
        assert_null(strchr(s + strlen("dialogue.room."), '.'));
        assert_int_equal(dlg_bus_subject_room(s, r, sizeof(r)), (int)strlen(ids[i]));
        assert_string_equal(r, ids[i]);
    }
    static const char *const bad[] = {"dialogue.room.", "dialogue.room.a.b", "dialogue.rooms.a",
                                      "other.a", "dialogue.room.a%2", "dialogue.room.a%41",
                                      "dialogue.room.a:b", "dialogue.room.a b",
                                      "dialogue.room.*", "dialogue.room.>"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dlg_bus_subject_room(bad[i], r, sizeof(r)), DLG_EINVAL);
    assert_int_equal(dlg_bus_subject("abcdef", s, 16), DLG_ETOOBIG);
    assert_int_equal(dlg_bus_subject_room("dialogue.room.abcdef", r, 4), DLG_ETOOBIG);
}

/* ---- a world of three nodes ------------------------------------------- */

/* A connection as dlg_conn_accept makes it, minus the socket: frames stay
 * on its queue for the test to read. */
static dlg_conn *conn_new(dlg_server *s) {
    dlg_conn *c = fake_conn_new(s, DLG_CONN_READY, "test");
    assert_non_null(c);
    return c;
}

static dlg_conn *member(dlg_server *s, const char *room) {
    dlg_conn *c = conn_new(s);
    dlg_room *r = dlg_rooms_find(s->rooms, room);
    assert_non_null(r);
    assert_int_equal(dlg_room_join(r, c, NULL), 0);
    return c;
}

/* The events queued to c (payload text, seq, epoch), taken off its queue. */
typedef struct got {
    size_t n;
    char data[64][32];
    uint64_t seq[64], epoch[64];
} got;

/* The next frame queued to c, decoded and taken off its queue; NULL when
 * the queue is empty. Free with dialogue__v1__server_frame__free_unpacked. */
static Dialogue__V1__ServerFrame *pop_frame(dlg_conn *c) {
    if (c->q_len == 0)
        return NULL;
    dlg_outq_item *it = &c->q[c->q_head];
    dlg_buf *b = it->buf;
    Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(
        NULL, b->len - DLG_FRAME_HDR, b->data + DLG_FRAME_HDR);
    assert_non_null(f);
    c->q_bytes -= b->len - it->off;
    dlg_buf_unref(b);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    c->q_popped++;
    return f;
}

static void take(dlg_conn *c, got *g) {
    memset(g, 0, sizeof(*g));
    Dialogue__V1__ServerFrame *f;
    while ((f = pop_frame(c)) != NULL) {
        assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_EVENT);
        assert_true(g->n < 64);
        snprintf(g->data[g->n], sizeof(g->data[0]), "%.*s", (int)f->event->data.len,
                 (const char *)f->event->data.data);
        g->seq[g->n] = f->event->seq;
        g->epoch[g->n] = f->event->epoch;
        g->n++;
        dialogue__v1__server_frame__free_unpacked(f, NULL);
    }
}

static int world_setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    char path[] = "/tmp/test_bus-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, config_yaml, sizeof(config_yaml) - 1),
                     (ssize_t)(sizeof(config_yaml) - 1));
    close(fd);
    char err[512] = "";
    int rc = dlg_config_load(path, &w->cfg, err, sizeof(err));
    unlink(path);
    if (rc != 0)
        print_error("config: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(w->hub = dlg_bus_hub_new());
    for (int i = 0; i < NODES; i++) {
        dlg_server *s = &w->srv[i];
        dlg_server_opts_default(&s->opts);
        s->loop = &w->loop;
        assert_int_equal(dlg_boot_apply(s, w->cfg, err, sizeof(err)), 0);
        /* What dlg_server_start does besides TLS, the listener and signals. */
        dlg_access_hooks(&s->hooks[0]);
        s->n_hooks = 1;
        uv_idle_init(s->loop, &s->kick);
        assert_int_equal(dlg_history_start(s->history), 0);
        assert_int_equal(dlg_bus_local_new(s, w->hub, &s->bus), 0);
        assert_int_equal(dlg_bus_start(s->bus), 0);
    }
    *state = w;
    return 0;
}

static int world_teardown(void **state) {
    world *w = *state;
    for (int i = 0; i < NODES; i++) {
        dlg_server *s = &w->srv[i];
        while (s->conns)
            dlg_conn_close(s->conns, "end of test");
        /* The flush takes closed connections off the dirty list (they are
         * freed only then, as in the daemon's loop). */
        dlg_conn_flush_all(s);
        uv_close((uv_handle_t *)&s->kick, NULL);
        dlg_history_stop(s->history);
        dlg_bus_stop(s->bus);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT); /* close callbacks free the conns */
    for (int i = 0; i < NODES; i++)
        dlg_server_free(&w->srv[i]);
    dlg_bus_hub_free(w->hub);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    dlg_config_free(w->cfg);
    free(w);
    return 0;
}

static void publish(dlg_server *s, const char *room, const char *text, dlg_publish_result *res) {
    char err[256] = "";
    dlg_room *r = dlg_rooms_find(s->rooms, room);
    assert_non_null(r);
    int rc = dlg_trigger(s, r, NULL, "say", (const uint8_t *)text, strlen(text),
                                dlg_now_ns(), res, err, sizeof(err));
    if (rc != 0)
        print_error("publish: %s\n", err);
    assert_int_equal(rc, 0);
}

/* A member on A, a publisher's node B with two members, C with none: each
 * member gets each event once, numbered by its own node. */
static void exactly_once_per_member(void **state) {
    world *w = *state;
    dlg_server *a = &w->srv[0], *b = &w->srv[1], *c = &w->srv[2];
    const char *room = "chat.main:1";
    dlg_conn *a1 = member(a, room), *b1 = member(b, room), *b2 = member(b, room);
    dlg_room *ra = dlg_rooms_find(a->rooms, room), *rb = dlg_rooms_find(b->rooms, room);
    uint64_t a_seq = ra->seq, b_seq = rb->seq;
    assert_non_null(dlg__bus_find(a->bus, room));
    assert_null(dlg__bus_find(c->bus, room));
    dlg_publish_result res;
    char text[32];
    for (int i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        publish(b, room, text, &res);
        assert_int_equal(res.recipients, 2); /* this node's members only */
        assert_int_equal(res.seq, b_seq + 1 + (uint64_t)i);
    }
    got g;
    take(a1, &g);
    assert_int_equal(g.n, 5);
    for (size_t i = 0; i < g.n; i++) {
        snprintf(text, sizeof(text), "m%zu", i);
        assert_string_equal(g.data[i], text);
        assert_int_equal(g.seq[i], a_seq + 1 + i); /* A's own lineage */
        assert_int_equal(g.epoch[i], ra->epoch);
    }
    dlg_conn *bs[] = {b1, b2};
    for (int k = 0; k < 2; k++) {
        take(bs[k], &g);
        assert_int_equal(g.n, 5); /* local delivery only, no echo from the bus */
        for (size_t i = 0; i < g.n; i++) {
            assert_int_equal(g.seq[i], b_seq + 1 + i);
            assert_int_equal(g.epoch[i], rb->epoch);
        }
    }
    assert_int_equal(ra->seq, a_seq + 5);
    assert_int_equal(b->bus->stats.published, 5);
    assert_int_equal(a->bus->stats.relayed, 5);
    assert_int_equal(a->bus->stats.deliveries, 5);
    assert_int_equal(c->bus->stats.received, 0); /* no interest, nothing routed */
    assert_int_equal(b->bus->stats.received, 0);

    /* The other way: A publishes, B's two members get it once each. */
    publish(a, room, "back", &res);
    assert_int_equal(res.recipients, 1);
    take(a1, &g);
    assert_int_equal(g.n, 1);
    take(b1, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.data[0], "back");
    assert_int_equal(g.seq[0], b_seq + 6);
    take(b2, &g);
    assert_int_equal(g.n, 1);
}

/* Interest starts with the first local member and ends with the last. */
static void interest_follows_members(void **state) {
    world *w = *state;
    dlg_server *a = &w->srv[0], *c = &w->srv[2];
    const char *room = "chat.main:1";
    dlg_room *rc = dlg_rooms_find(c->rooms, room);
    assert_null(dlg__bus_find(c->bus, room));
    dlg_conn *c1 = member(c, room), *c2 = member(c, room);
    assert_non_null(dlg__bus_find(c->bus, room));
    dlg_publish_result res;
    member(a, room);
    publish(a, room, "one", &res);
    got g;
    take(c1, &g);
    assert_int_equal(g.n, 1);
    take(c2, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(dlg_room_leave(rc, c1), 0);
    assert_non_null(dlg__bus_find(c->bus, room)); /* c2 is still here */
    assert_int_equal(dlg_room_leave(rc, c2), 0);
    assert_null(dlg__bus_find(c->bus, room));
    uint64_t before = c->bus->stats.received, seq = rc->seq;
    publish(a, room, "two", &res);
    assert_int_equal(c->bus->stats.received, before);
    assert_int_equal(rc->seq, seq); /* nothing numbered for nobody */
    /* A node that joins again numbers on from where it was. */
    dlg_conn *c3 = member(c, room);
    publish(a, room, "three", &res);
    take(c3, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.seq[0], seq + 1);
}

/* A room with history keeps the cluster's events even with no member
 * here, so a client that moves to this node finds them. */
static void history_without_members(void **state) {
    world *w = *state;
    dlg_server *a = &w->srv[0], *c = &w->srv[2];
    assert_non_null(dlg__bus_find(c->bus, "kept"));
    dlg_publish_result res;
    member(a, "kept");
    publish(a, "kept", "k1", &res);
    publish(a, "kept", "k2", &res);
    dlg_room *rc = dlg_rooms_find(c->rooms, "kept");
    assert_non_null(rc->hist);
    dlg_hist_query q = {.by_seq = 1, .since_seq = 0};
    dlg_hist_batch hb;
    assert_int_equal(dlg_hroom_query(rc->hist, &q, dlg_wall_ms(), &hb), 0);
    assert_int_equal(hb.n, 2);
    assert_int_equal(hb.v[0]->seq, 1);
    assert_int_equal(hb.v[1]->seq, 2);
    dlg_hist_batch_free(&hb);
    /* A member joining C later gets C's numbering after the kept ones. */
    dlg_conn *c1 = member(c, "kept");
    publish(a, "kept", "k3", &res);
    got g;
    take(c1, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.seq[0], 3);
}

static dlg_buf *event_frame(const char *room, const char *event, uint64_t rid) {
    Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
    e.room = (char *)room;
    e.event = (char *)event;
    e.from = "x";
    e.seq = 77;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.request_id = rid;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_EVENT;
    f.event = &e;
    dlg_buf *b = NULL;
    assert_int_equal(dlg_frame_pack(&f.base, 0, &b), 0);
    return b;
}

static void relay_refuses(void **state) {
    world *w = *state;
    dlg_server *a = &w->srv[0];
    const char *room = "chat.main:1";
    dlg_conn *a1 = member(a, room);
    char err[256];
    uint32_t n;
    dlg_buf *ok = event_frame(room, "say", 0);
    /* Truncated, another length, not a frame at all. */
    assert_int_equal(dlg_bus_relay(a, a->bus, room, ok->data, ok->len - 1, &n, err, sizeof(err)),
                     DLG_EPROTO);
    assert_non_null(strstr(err, room));
    assert_int_equal(dlg_bus_relay(a, a->bus, room, ok->data, 3, &n, err, sizeof(err)),
                     DLG_EPROTO);
    /* An event whose room is not the subject's. */
    assert_int_equal(dlg_bus_relay(a, a->bus, "kept", ok->data, ok->len, &n, err, sizeof(err)),
                     DLG_EPROTO);
    assert_non_null(strstr(err, "came on the subject of room kept"));
    /* A reply frame (request_id set) is not an event to fan out. */
    dlg_buf *reply = event_frame(room, "say", 9);
    assert_int_equal(
        dlg_bus_relay(a, a->bus, room, reply->data, reply->len, &n, err, sizeof(err)),
        DLG_EPROTO);
    dlg_buf_unref(reply);
    /* A room this node does not have. */
    dlg_buf *other = event_frame("elsewhere", "say", 0);
    assert_int_equal(
        dlg_bus_relay(a, a->bus, "elsewhere", other->data, other->len, &n, err, sizeof(err)),
        DLG_ENOTFOUND);
    assert_non_null(strstr(err, "room elsewhere does not exist here"));
    dlg_buf_unref(other);
    /* A room nobody here is in (the message was on its way when the
     * interest dropped): no recipient, nothing numbered. Trigger rules do
     * not matter for relay: the origin checked them. */
    dlg_buf *late = event_frame("only-here", "say", 0);
    dlg_room *rh = dlg_rooms_find(a->rooms, "only-here");
    uint64_t seq_h = rh->seq;
    assert_int_equal(
        dlg_bus_relay(a, a->bus, "only-here", late->data, late->len, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(rh->seq, seq_h);
    dlg_buf_unref(late);
    got g;
    take(a1, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(a->bus->stats.dropped, 5);
    /* The good one, without subject check, renumbered here. */
    dlg_room *ra = dlg_rooms_find(a->rooms, room);
    assert_int_equal(dlg_bus_relay(a, a->bus, NULL, ok->data, ok->len, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    take(a1, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.seq[0], ra->seq);
    assert_int_not_equal(g.seq[0], 77);
    dlg_buf_unref(ok);
}

/* Without a bus (a single node) the seam does nothing and costs nothing. */

/* ---- the cluster log's seam, with a fake log ---------------------------- */

typedef struct fake_log {
    dlg_bus base;                 /* first */
    uint64_t tickets[16];
    size_t n;
    int refuse;
    dlg_buf *last;                /* the last frame handed to the log */
} fake_log;

static int fake_log_room(const dlg_bus *b, const char *room) {
    (void)b;
    return strcmp(room, "kept") == 0;
}

static int fake_log_publish(dlg_bus *b, const struct dlg_room *r, const char *event,
                            dlg_buf *frame, uint64_t ticket, char *err, size_t errlen) {
    fake_log *f = (fake_log *)b;
    if (f->refuse) {
        snprintf(err, errlen, "event %s of room %s: the fake log refuses", event, r->id);
        return DLG_EIO;
    }
    assert_true(f->n < 16);
    f->tickets[f->n++] = ticket;
    if (f->last)
        dlg_buf_unref(f->last);
    f->last = dlg_buf_ref(frame);
    return 0;
}

static int fake_interest(dlg_bus *b, const char *room, int on, void **handle) {
    (void)b, (void)room, (void)on, (void)handle;
    return 0;
}

static void fake_free(dlg_bus *b) {
    fake_log *f = (fake_log *)b;
    if (f->last)
        dlg_buf_unref(f->last);
    free(f);
}

static const dlg_bus_ops fake_ops = {
    .name = "fake",
    .interest = fake_interest,
    .log_room = fake_log_room,
    .log_publish = fake_log_publish,
    .free = fake_free,
};

/* One frame off c's queue: its kind, request id and Ack seq / Error code;
 * 0 when the queue is empty. */
static int next_frame(dlg_conn *c, uint64_t *rid, uint64_t *seq, int *code) {
    Dialogue__V1__ServerFrame *f = pop_frame(c);
    if (f == NULL)
        return 0;
    int kind = (int)f->msg_case;
    *rid = f->request_id;
    *seq = kind == DIALOGUE__V1__SERVER_FRAME__MSG_ACK ? f->ack->seq
         : kind == DIALOGUE__V1__SERVER_FRAME__MSG_EVENT ? f->event->seq : 0;
    *code = kind == DIALOGUE__V1__SERVER_FRAME__MSG_ERROR ? f->error->code : 0;
    dialogue__v1__server_frame__free_unpacked(f, NULL);
    return kind;
}

/* A log room's trigger is not delivered by its node but handed to the
 * log; its Ack waits for the log's answer, in any order; a closed sender's
 * Ack goes nowhere; a refused publish takes no ticket; what the log sends
 * back is numbered by the log, once. */
static void log_acks_and_numbering(void **state) {
    world *w = *state;
    dlg_server *s = &w->srv[0];
    dlg_bus *local = s->bus;
    fake_log *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->base.ops = &fake_ops;
    f->base.srv = s;
    f->base.started = 1;
    f->base.follow_all = 1;
    s->bus = &f->base;
    dlg_room *r = dlg_rooms_find(s->rooms, "kept");
    dlg_conn *c = member(s, "kept"), *m = member(s, "kept"), *gone = member(s, "kept");
    uint64_t seq0 = r->seq, rid, seq;
    int code;
    dlg_publish_result res[4];
    char err[256];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dlg_trigger(s, r, c, "say", (const uint8_t *)"x", 1,
                                            dlg_now_ns(), &res[i], err, sizeof(err)), 0);
        assert_int_equal(res[i].ticket, (uint64_t)i + 1);
        assert_int_equal(res[i].seq, 0);
        assert_int_equal(dlg_bus_defer_ack(s->bus, c, 101 + (uint64_t)i, res[i].ticket), 0);
    }
    assert_int_equal(r->seq, seq0); /* nothing numbered or delivered here */
    assert_int_equal(next_frame(m, &rid, &seq, &code), 0);
    assert_int_equal(next_frame(c, &rid, &seq, &code), 0);

    dlg__bus_ack_done(s->bus, 3, 42, NULL);
    dlg__bus_ack_done(s->bus, 1, 0, "no leader");
    dlg__bus_ack_done(s->bus, 2, 41, NULL);
    dlg__bus_ack_done(s->bus, 2, 41, NULL); /* a late second answer */
    assert_int_equal(next_frame(c, &rid, &seq, &code), DIALOGUE__V1__SERVER_FRAME__MSG_ACK);
    assert_int_equal(rid, 103);
    assert_int_equal(seq, 42);
    assert_int_equal(next_frame(c, &rid, &seq, &code), DIALOGUE__V1__SERVER_FRAME__MSG_ERROR);
    assert_int_equal(rid, 101);
    assert_int_equal(code, DIALOGUE__V1__STATUS__UNAVAILABLE);
    assert_int_equal(next_frame(c, &rid, &seq, &code), DIALOGUE__V1__SERVER_FRAME__MSG_ACK);
    assert_int_equal(rid, 102);
    assert_int_equal(seq, 41);
    assert_int_equal(next_frame(c, &rid, &seq, &code), 0);
    assert_int_equal(dlg_bus_defer_ack(s->bus, c, 104, 2), DLG_ENOTFOUND);
    assert_int_equal(s->bus->stats.log_failed, 1);

    /* The sender leaves before the answer. */
    assert_int_equal(dlg_trigger(s, r, gone, "say", (const uint8_t *)"y", 1,
                                        dlg_now_ns(), &res[3], err, sizeof(err)), 0);
    assert_int_equal(dlg_bus_defer_ack(s->bus, gone, 7, res[3].ticket), 0);
    dlg_bus_conn_gone(s->bus, gone);
    dlg__bus_ack_done(s->bus, res[3].ticket, 43, NULL);
    assert_int_equal(next_frame(gone, &rid, &seq, &code), 0);

    /* Refused: an error naming the room, no ticket used. */
    f->refuse = 1;
    dlg_publish_result rr;
    assert_int_equal(dlg_trigger(s, r, c, "say", (const uint8_t *)"z", 1,
                                        dlg_now_ns(), &rr, err, sizeof(err)), DLG_EIO);
    assert_int_equal(rr.status, DIALOGUE__V1__STATUS__UNAVAILABLE);
    assert_non_null(strstr(err, "room kept"));
    assert_int_equal(rr.ticket, 0);
    f->refuse = 0;
    assert_int_equal(dlg_trigger(s, r, c, "say", (const uint8_t *)"z", 1,
                                        dlg_now_ns(), &rr, err, sizeof(err)), 0);
    assert_int_equal(rr.ticket, res[3].ticket + 1);

    /* What the log sends back: numbered by it, delivered once. */
    uint32_t n;
    dlg_buf *fr = f->last;
    assert_int_equal(dlg__bus_relay_at(s, s->bus, "kept", fr->data, fr->len, 7, 99, &n, err,
                                       sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(r->seq, 7);
    assert_int_equal(r->epoch, 99);
    got g;
    take(m, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.seq[0], 7);
    assert_int_equal(g.epoch[0], 99);
    assert_string_equal(g.data[0], "z");
    assert_int_equal(dlg__bus_relay_at(s, s->bus, "kept", fr->data, fr->len, 7, 99, &n, err,
                                       sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(s->bus->stats.duplicates, 1);
    take(m, &g);
    assert_int_equal(g.n, 0);

    dlg_bus_conn_gone(s->bus, c); /* nothing waits: a no-op */
    s->bus = local;
    dlg_bus_free(&f->base);
}

static void null_bus_is_single_node(void **state) {
    (void)state;
    assert_int_equal(dlg_bus_start(NULL), 0);
    dlg_bus_publish(NULL, NULL, "x", NULL);
    dlg_bus_room_changed(NULL, NULL);
    dlg_bus_stop(NULL);
    dlg_bus_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subject_mapping),
        cmocka_unit_test(null_bus_is_single_node),
        cmocka_unit_test_setup_teardown(exactly_once_per_member, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(interest_follows_members, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(history_without_members, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(relay_refuses, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(log_acks_and_numbering, world_setup, world_teardown),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
