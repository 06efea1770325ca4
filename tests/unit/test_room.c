/* test_room.c: the room index (daemon/room.c) on its own: membership and
 * per-event subscriber lists under a long random sequence of joins,
 * leaves, subscribes and unsubscribes, with every back-index checked after
 * each step; the subscription caps (issue 17, item 3), all or nothing;
 * and the order subscriptions are reported in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conn.h"
#include "dlg_err.h"
#include "room.h"

/* Connections without sockets: room.c only needs the struct (and a server
 * with no bus). */
typedef struct world {
    dlg_server srv;
    dlg_rooms *rooms;
    dlg_conn *conns[64];
} world;

static world *world_new(void) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->rooms = dlg_rooms_new();
    assert_non_null(w->rooms);
    for (size_t i = 0; i < 64; i++) {
        w->conns[i] = calloc(1, sizeof(dlg_conn));
        assert_non_null(w->conns[i]);
        w->conns[i]->srv = &w->srv;
    }
    return w;
}

static void world_free(world *w) {
    for (size_t i = 0; i < 64; i++) {
        while (w->conns[i]->n_members)
            dlg_room_leave(w->conns[i]->members[0]->room, w->conns[i]);
        free(w->conns[i]->members);
        free(w->conns[i]);
    }
    dlg_rooms_free(w->rooms);
    free(w);
}

static dlg_room *add_room(world *w, const char *id, const char *const *events, size_t n) {
    dlg_room_spec spec = {.id = id, .events = events, .n_events = n};
    dlg_room *r = NULL;
    char err[256];
    assert_int_equal(dlg_rooms_add(w->rooms, &spec, 0, &r, err, sizeof(err)), 0);
    return r;
}

/* Every back-index agrees with the lists it points into. */
static void check_room(const dlg_room *r) {
    size_t subs_total = 0;
    for (size_t i = 0; i < r->members.n; i++) {
        const dlg_member *m = r->members.v[i];
        assert_ptr_equal(m->room, r);
        assert_int_equal(m->pos_members, i);
        if (m->all) {
            assert_ptr_equal(r->all_subs.v[m->pos_all], m);
            assert_int_equal(m->n_subs, 0);
        }
        for (size_t k = 0; k < m->n_subs; k++) {
            if (k > 0)
                assert_true(m->subs[k - 1].slot < m->subs[k].slot);
            assert_ptr_equal(m->subs[k].slot->subs.v[m->subs[k].pos], m);
        }
        subs_total += m->n_subs;
    }
    size_t in_all = 0;
    for (size_t i = 0; i < r->members.n; i++)
        in_all += r->members.v[i]->all;
    assert_int_equal(r->all_subs.n, in_all);
    size_t listed = 0;
    for (size_t s = 0; s < r->n_slots; s++) {
        assert_int_equal(r->slots[s]->ord, s);
        if (s > 0)
            assert_true(strcmp(r->by_name[s - 1]->name, r->by_name[s]->name) < 0);
        assert_ptr_equal(dlg_room_slot(r, r->slots[s]->name), r->slots[s]);
        listed += r->slots[s]->subs.n;
    }
    assert_int_equal(listed, subs_total);
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void random_operations_keep_every_index(void **state) {
    (void)state;
    world *w = world_new();
    static const char *const star[] = {"*"};
    static const char *const typed_ev[] = {"a:1", "b:2", "c:3", "d:4"};
    dlg_room *rooms[2] = {add_room(w, "star", star, 1), add_room(w, "typed", typed_ev, 4)};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char names[40][16];
    for (int i = 0; i < 40; i++)
        snprintf(names[i], sizeof(names[i]), "ev:%02d", i);
    for (int step = 0; step < 20000; step++) {
        dlg_room *r = rooms[rng(&seed) % 2];
        dlg_conn *c = w->conns[rng(&seed) % 64];
        dlg_member *m = dlg_room_member(r, c);
        const char *bad = NULL;
        int full = 0;
        int op = (int)(rng(&seed) % 8);
        if (m == NULL) {
            assert_int_equal(dlg_room_join(r, c, &m), 0);
        } else if (op == 0) {
            assert_int_equal(dlg_room_leave(r, c), 0);
        } else {
            char *ev[5];
            size_t n = 1 + rng(&seed) % 5;
            for (size_t i = 0; i < n; i++)
                ev[i] = r->any_event ? names[rng(&seed) % 40]
                                     : (char *)typed_ev[rng(&seed) % 4];
            int all = op == 1;
            int rc = op <= 4 ? dlg_room_subscribe(m, ev, n, all, 0, 0, &bad, &full)
                             : dlg_room_unsubscribe(m, ev, n, op == 5, &bad);
            /* A "*" room refuses naming events while subscribed to all. */
            assert_true(rc == 0 || (rc == DLG_ESTATE && r->any_event));
        }
        check_room(r);
    }
    world_free(w);
}

static void caps_are_all_or_nothing(void **state) {
    (void)state;
    world *w = world_new();
    static const char *const star[] = {"*"};
    dlg_room *r = add_room(w, "star", star, 1);
    dlg_member *m = NULL, *m2 = NULL;
    assert_int_equal(dlg_room_join(r, w->conns[0], &m), 0);
    assert_int_equal(dlg_room_join(r, w->conns[1], &m2), 0);
    char *ev[] = {"x:1", "x:2", "x:3", "x:2", "x:4"};
    const char *bad = NULL;
    int full = -1;
    /* Member cap 3: x:1..x:4 are four names (x:2 counts once). */
    assert_int_equal(dlg_room_subscribe(m, ev, 5, 0, 3, 0, &bad, &full), DLG_EFULL);
    assert_int_equal(full, 0);
    assert_string_equal(bad, "x:4");
    assert_int_equal(dlg_member_subscriptions(m), 0);
    assert_int_equal(dlg_room_subscribe(m, ev, 4, 0, 3, 0, &bad, &full), 0);
    assert_int_equal(dlg_member_subscriptions(m), 3);
    /* Names held already do not count again. */
    assert_int_equal(dlg_room_subscribe(m, ev, 3, 0, 3, 0, &bad, &full), 0);
    /* Room cap 4 distinct names: m2 may take the three and one more. */
    char *ev2[] = {"x:1", "y:1", "y:2"};
    assert_int_equal(dlg_room_subscribe(m2, ev2, 3, 0, 0, 4, &bad, &full), DLG_EFULL);
    assert_int_equal(full, 1);
    assert_int_equal(dlg_member_subscriptions(m2), 0);
    assert_int_equal(r->n_slots, 3);
    assert_int_equal(dlg_room_subscribe(m2, ev2, 2, 0, 0, 4, &bad, &full), 0);
    assert_int_equal(r->n_slots, 4);
    check_room(r);
    world_free(w);
}

static void subscriptions_in_first_seen_order(void **state) {
    (void)state;
    world *w = world_new();
    static const char *const star[] = {"*"};
    dlg_room *r = add_room(w, "star", star, 1);
    dlg_member *a = NULL, *b = NULL;
    assert_int_equal(dlg_room_join(r, w->conns[0], &a), 0);
    assert_int_equal(dlg_room_join(r, w->conns[1], &b), 0);
    char *first[] = {"zeta", "alpha"};
    char *second[] = {"mid", "alpha", "zeta"};
    const char *bad;
    int full;
    assert_int_equal(dlg_room_subscribe(a, first, 2, 0, 0, 0, &bad, &full), 0);
    assert_int_equal(dlg_room_subscribe(b, second, 3, 0, 0, 0, &bad, &full), 0);
    char **names;
    size_t n;
    assert_int_equal(dlg_room_subscriptions(b, &names, &n), 0);
    assert_int_equal(n, 3);
    /* The room saw alpha and zeta (sorted, in one call) before mid. */
    assert_string_equal(names[0], "alpha");
    assert_string_equal(names[1], "zeta");
    assert_string_equal(names[2], "mid");
    free(names);
    char *all_but[] = {"zeta"};
    assert_int_equal(dlg_room_subscribe(b, NULL, 0, 1, 0, 0, &bad, &full), 0);
    assert_int_equal(dlg_room_subscriptions(b, &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "*");
    free(names);
    assert_int_equal(dlg_room_unsubscribe(b, all_but, 1, 0, &bad), DLG_ESTATE);
    check_room(r);
    world_free(w);
}

/* Many members leaving one by one: each leave is O(log n) (the old
 * index scanned every slot's list); checked here for correctness at a
 * size where the old one did 10^8 comparisons. */
static void mass_leave(void **state) {
    (void)state;
    enum { N = 20000 };
    world *w = world_new();
    static const char *const typed_ev[] = {"a:1", "b:2"};
    dlg_room *r = add_room(w, "big", typed_ev, 2);
    dlg_conn **cs = calloc(N, sizeof(*cs));
    assert_non_null(cs);
    char *ev[] = {"a:1", "b:2"};
    for (size_t i = 0; i < N; i++) {
        cs[i] = calloc(1, sizeof(dlg_conn));
        cs[i]->srv = &w->srv;
        dlg_member *m;
        const char *bad;
        int full;
        assert_int_equal(dlg_room_join(r, cs[i], &m), 0);
        assert_int_equal(dlg_room_subscribe(m, ev, 1 + i % 2, 0, 0, 0, &bad, &full), 0);
    }
    check_room(r);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(dlg_room_leave(r, cs[(i * 7919) % N]), 0);
        if (i % 4096 == 0)
            check_room(r);
        free(cs[(i * 7919) % N]->members);
        free(cs[(i * 7919) % N]);
    }
    assert_int_equal(r->members.n, 0);
    assert_int_equal(dlg_room_slot(r, "a:1")->subs.n, 0);
    free(cs);
    world_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations_keep_every_index),
        cmocka_unit_test(caps_are_all_or_nothing),
        cmocka_unit_test(subscriptions_in_first_seen_order),
        cmocka_unit_test(mass_leave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
