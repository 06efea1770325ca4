/* test_hooks.c: the hook table chain (hooks.c) in the protocol layer alone:
 * refusals stop at the first table that refuses (its reason is the one
 * given; later tables are not asked), payload rewrites pass down the chain
 * and their buffers are owned once, every notification reaches every table
 * in order, and the client info tables see is the connection's verified
 * identity (never what the client said about itself). No loop, no socket:
 * the chain reads only the connection's fields. */
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
#include "hooks.h"

/* One table's behaviour and the shared journal every table writes to. */
typedef struct table {
    int id;
    char *journal;             /* shared: "0:join 1:join " ... */
    size_t cap;
    int veto_join, veto_each;  /* refuse with "table N says no" */
    const char *rewrite;       /* before_each: replace the payload with this */
    dlg_client_info last;      /* the client info of the last call */
    int had_client;            /* the last call had a client (not a server trigger) */
    dlg_event_info ev;         /* the event of the last before_each / after_each */
    char ev_data[64];
    uint64_t seq;
    uint32_t recipients;
} table;

typedef struct world {
    dlg_server srv;
    char journal[1024];
    table t[3];
} world;

static void note(table *t, const char *what) {
    size_t n = strlen(t->journal);
    snprintf(t->journal + n, t->cap - n, "%d:%s ", t->id, what);
}

static void keep_client(table *t, const dlg_client_info *c) {
    t->had_client = c != NULL;
    if (c)
        t->last = *c;
}

static void h_connected(void *ud, dlg_server *s, const dlg_client_info *c) {
    (void)s;
    note(ud, "connected");
    keep_client(ud, c);
}

static void h_disconnected(void *ud, dlg_server *s, const dlg_client_info *c,
                           const char *reason) {
    (void)s;
    char w[96];
    snprintf(w, sizeof(w), "disconnected(%s)", reason);
    note(ud, w);
    keep_client(ud, c);
}

static int h_before_join(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                         char *reason, size_t len) {
    (void)s;
    table *t = ud;
    char w[96];
    snprintf(w, sizeof(w), "before_join(%s)", room);
    note(t, w);
    keep_client(t, c);
    if (!t->veto_join)
        return 0;
    snprintf(reason, len, "table %d says no", t->id);
    return 1;
}

static void h_joined(void *ud, dlg_server *s, const dlg_client_info *c, const char *room) {
    (void)s;
    char w[96];
    snprintf(w, sizeof(w), "joined(%s)", room);
    note(ud, w);
    keep_client(ud, c);
}

static void h_left(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                   const char *reason) {
    (void)s;
    char w[96];
    snprintf(w, sizeof(w), "left(%s,%s)", room, reason);
    note(ud, w);
    keep_client(ud, c);
}

static void keep_event(table *t, const dlg_event_info *ev) {
    t->ev = *ev;
    snprintf(t->ev_data, sizeof(t->ev_data), "%.*s", (int)ev->len, (const char *)ev->data);
}

static int h_before_each(void *ud, dlg_server *s, const dlg_client_info *c,
                         const dlg_event_info *ev, uint8_t **nd, size_t *nl, char *reason,
                         size_t len) {
    (void)s;
    table *t = ud;
    note(t, "before_each");
    keep_client(t, c);
    keep_event(t, ev);
    if (t->rewrite) {
        *nl = strlen(t->rewrite);
        *nd = malloc(*nl);
        assert_non_null(*nd);
        memcpy(*nd, t->rewrite, *nl);
    }
    if (!t->veto_each)
        return 0;
    snprintf(reason, len, "table %d says no", t->id);
    return 1;
}

static void h_after_each(void *ud, dlg_server *s, const dlg_event_info *ev, uint64_t seq,
                         uint32_t recipients) {
    (void)s;
    table *t = ud;
    note(t, "after_each");
    keep_event(t, ev);
    t->seq = seq;
    t->recipients = recipients;
}

static void h_room_created(void *ud, dlg_server *s, const char *room, const char *creator) {
    (void)s;
    char w[96];
    snprintf(w, sizeof(w), "created(%s,%s)", room, creator);
    note(ud, w);
}

static void h_room_deleted(void *ud, dlg_server *s, const char *room) {
    (void)s;
    char w[96];
    snprintf(w, sizeof(w), "deleted(%s)", room);
    note(ud, w);
}

static const dlg_hooks every_hook = {
    .on_connected = h_connected,       .on_disconnected = h_disconnected,
    .before_join = h_before_join,      .on_joined = h_joined,
    .on_left = h_left,                 .before_each = h_before_each,
    .after_each = h_after_each,        .on_room_created = h_room_created,
    .on_room_deleted = h_room_deleted,
};

static int setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->srv.log.level = DLG_LOG_ERROR;
    for (int i = 0; i < 3; i++) {
        w->t[i] = (table){.id = i, .journal = w->journal, .cap = sizeof(w->journal)};
        dlg_hooks h = every_hook;
        h.ud = &w->t[i];
        assert_int_equal(dlg_server_add_hooks(&w->srv, &h), 0);
    }
    *state = w;
    return 0;
}

static int teardown(void **state) {
    free(*state);
    return 0;
}

/* An anonymous connection as conn.c leaves it after Welcome. */
static void anon(dlg_conn *c, const char *client_id) {
    memset(c, 0, sizeof(*c));
    snprintf(c->client_id, sizeof(c->client_id), "%s", client_id);
    snprintf(c->peer, sizeof(c->peer), "127.0.0.1:4000");
    c->id_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS;
}

/* ---- refusals -------------------------------------------------------------- */

static void test_before_join_first_veto_wins(void **state) {
    world *w = *state;
    dlg_conn c;
    anon(&c, "c1");
    char why[128] = "";
    /* nobody refuses: every table is asked, in order */
    assert_int_equal(dlg_hooks_before_join(&w->srv, &c, "r", why, sizeof(why)), 0);
    assert_string_equal(w->journal, "0:before_join(r) 1:before_join(r) 2:before_join(r) ");
    /* tables 1 and 2 refuse: 1's reason, 2 never asked */
    w->journal[0] = '\0';
    w->t[1].veto_join = w->t[2].veto_join = 1;
    assert_int_equal(dlg_hooks_before_join(&w->srv, &c, "r", why, sizeof(why)), DLG_EPERM);
    assert_string_equal(why, "table 1 says no");
    assert_string_equal(w->journal, "0:before_join(r) 1:before_join(r) ");
    /* the first table refusing: nobody after it is asked */
    w->journal[0] = '\0';
    w->t[0].veto_join = 1;
    assert_int_equal(dlg_hooks_before_join(&w->srv, &c, "r", why, sizeof(why)), DLG_EPERM);
    assert_string_equal(why, "table 0 says no");
    assert_string_equal(w->journal, "0:before_join(r) ");
}

static void test_before_each_first_veto_wins(void **state) {
    world *w = *state;
    dlg_conn c;
    anon(&c, "c1");
    dlg_event_info ev = {.room = "r", .event = "e", .data = (const uint8_t *)"hi", .len = 2,
                         .from = "c1", .from_kind = c.id_kind};
    uint8_t *owned = NULL;
    char why[128] = "";
    assert_int_equal(dlg_hooks_before_each(&w->srv, &c, &ev, &owned, why, sizeof(why)), 0);
    assert_string_equal(w->journal, "0:before_each 1:before_each 2:before_each ");
    assert_null(owned);
    assert_string_equal(w->t[2].ev_data, "hi");
    w->journal[0] = '\0';
    w->t[1].veto_each = 1;
    w->t[2].veto_each = 1;
    assert_int_equal(dlg_hooks_before_each(&w->srv, &c, &ev, &owned, why, sizeof(why)),
                     DLG_EPERM);
    assert_string_equal(why, "table 1 says no");
    assert_string_equal(w->journal, "0:before_each 1:before_each ");
    assert_null(owned);
}

/* A rewrite is seen by the tables after it; the last one wins; each
 * replaced buffer is freed (ASan counts them); a table that rewrites and
 * refuses has its buffer freed, and the payload stays the earlier one. */
static void test_before_each_rewrites(void **state) {
    world *w = *state;
    dlg_conn c;
    anon(&c, "c1");
    dlg_event_info ev = {.room = "r", .event = "e", .data = (const uint8_t *)"orig", .len = 4,
                         .from = "c1", .from_kind = c.id_kind};
    uint8_t *owned = NULL;
    char why[128] = "";
    w->t[0].rewrite = "first";
    w->t[1].rewrite = "second!";
    assert_int_equal(dlg_hooks_before_each(&w->srv, &c, &ev, &owned, why, sizeof(why)), 0);
    assert_string_equal(w->t[0].ev_data, "orig");
    assert_string_equal(w->t[1].ev_data, "first");
    assert_string_equal(w->t[2].ev_data, "second!");
    assert_non_null(owned);
    assert_ptr_equal(ev.data, owned);
    assert_int_equal(ev.len, 7);
    assert_memory_equal(ev.data, "second!", 7);
    free(owned);

    owned = NULL;
    ev.data = (const uint8_t *)"orig";
    ev.len = 4;
    w->t[1].veto_each = 1; /* rewrites, then refuses */
    assert_int_equal(dlg_hooks_before_each(&w->srv, &c, &ev, &owned, why, sizeof(why)),
                     DLG_EPERM);
    assert_non_null(owned); /* table 0's, still the caller's to free */
    assert_memory_equal(ev.data, "first", 5);
    free(owned);
}

/* Server triggers (no connection): tables get NULL for the client. */
static void test_before_each_server_trigger(void **state) {
    world *w = *state;
    dlg_event_info ev = {.room = "r", .event = "e", .data = (const uint8_t *)"x", .len = 1,
                         .from = "system",
                         .from_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_SERVER};
    uint8_t *owned = NULL;
    char why[64] = "";
    w->t[0].had_client = 1;
    assert_int_equal(dlg_hooks_before_each(&w->srv, NULL, &ev, &owned, why, sizeof(why)), 0);
    for (int i = 0; i < 3; i++)
        assert_false(w->t[i].had_client);
    assert_string_equal(w->t[2].ev.from, "system");
}

/* ---- notifications --------------------------------------------------------- */

static void test_notifications_reach_every_table_in_order(void **state) {
    world *w = *state;
    dlg_conn c;
    anon(&c, "c7");
    w->t[0].veto_join = w->t[0].veto_each = 1; /* refusing does not stop notifications */
    dlg_hooks_connected(&w->srv, &c);
    assert_string_equal(w->journal, "0:connected 1:connected 2:connected ");
    w->journal[0] = '\0';
    dlg_hooks_joined(&w->srv, &c, "r");
    assert_string_equal(w->journal, "0:joined(r) 1:joined(r) 2:joined(r) ");
    w->journal[0] = '\0';
    dlg_hooks_left(&w->srv, &c, "r", "bye");
    assert_string_equal(w->journal, "0:left(r,bye) 1:left(r,bye) 2:left(r,bye) ");
    w->journal[0] = '\0';
    dlg_event_info ev = {.room = "r", .event = "e", .data = (const uint8_t *)"d", .len = 1,
                         .from = "c7", .from_kind = c.id_kind};
    dlg_hooks_after_each(&w->srv, &ev, 42, 3);
    assert_string_equal(w->journal, "0:after_each 1:after_each 2:after_each ");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w->t[i].seq, 42);
        assert_int_equal(w->t[i].recipients, 3);
        assert_string_equal(w->t[i].ev.event, "e");
        assert_string_equal(w->t[i].ev_data, "d");
    }
    w->journal[0] = '\0';
    dlg_hooks_room_created(&w->srv, "new", "alice");
    assert_string_equal(w->journal, "0:created(new,alice) 1:created(new,alice) "
                                    "2:created(new,alice) ");
    w->journal[0] = '\0';
    dlg_hooks_room_deleted(&w->srv, "new");
    assert_string_equal(w->journal, "0:deleted(new) 1:deleted(new) 2:deleted(new) ");
    w->journal[0] = '\0';
    dlg_hooks_disconnected(&w->srv, &c, "gone");
    assert_string_equal(w->journal, "0:disconnected(gone) 1:disconnected(gone) "
                                    "2:disconnected(gone) ");
}

/* Tables that leave a hook NULL are passed over; the others still run. */
static void test_null_hooks_skipped(void **state) {
    world *w = *state;
    dlg_server s = {.log.level = DLG_LOG_ERROR};
    dlg_hooks only_join = {.ud = &w->t[0], .before_join = h_before_join};
    dlg_hooks nothing = {0};
    dlg_hooks all = every_hook;
    all.ud = &w->t[2];
    assert_int_equal(dlg_server_add_hooks(&s, &only_join), 0);
    assert_int_equal(dlg_server_add_hooks(&s, &nothing), 0);
    assert_int_equal(dlg_server_add_hooks(&s, &all), 0);
    dlg_conn c;
    anon(&c, "c1");
    char why[64] = "";
    dlg_hooks_connected(&s, &c);
    assert_int_equal(dlg_hooks_before_join(&s, &c, "r", why, sizeof(why)), 0);
    dlg_event_info ev = {.room = "r", .event = "e", .data = (const uint8_t *)"d", .len = 1};
    uint8_t *owned = NULL;
    assert_int_equal(dlg_hooks_before_each(&s, &c, &ev, &owned, why, sizeof(why)), 0);
    assert_string_equal(w->journal,
                        "2:connected 0:before_join(r) 2:before_join(r) 2:before_each ");
}

/* The table count is capped (8): the next add is refused, nothing changes. */
static void test_add_hooks_full(void **state) {
    world *w = *state;
    dlg_hooks h = {0};
    size_t cap = sizeof(w->srv.hooks) / sizeof(w->srv.hooks[0]);
    while (w->srv.n_hooks < cap)
        assert_int_equal(dlg_server_add_hooks(&w->srv, &h), 0);
    assert_int_equal(dlg_server_add_hooks(&w->srv, &h), DLG_EFULL);
    assert_int_equal(w->srv.n_hooks, cap);
}

/* ---- client info ------------------------------------------------------------ */

/* Tables see the verified identity: user id, its kind and roles as auth set
 * them. The name the client gave is passed along as information and is
 * never the user id; an anonymous client has no user id and no roles. */
static void test_client_info_from_verified_identity(void **state) {
    world *w = *state;
    dlg_conn c;
    anon(&c, "c3");
    c.client_name = "admin"; /* what the client claims in Hello */
    dlg_hooks_connected(&w->srv, &c);
    const dlg_client_info *i = &w->t[1].last;
    assert_string_equal(i->client_id, "c3");
    assert_null(i->user_id);
    assert_int_equal(i->n_roles, 0);
    assert_int_equal(i->identity_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS);
    assert_string_equal(i->peer, "127.0.0.1:4000");
    assert_string_equal(i->client_name, "admin");

    char *roles[] = {"staff", "ops"};
    c.user_id = "alice";
    c.id_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN;
    c.roles = roles;
    c.n_roles = 2;
    char why[64] = "";
    assert_int_equal(dlg_hooks_before_join(&w->srv, &c, "r", why, sizeof(why)), 0);
    for (int k = 0; k < 3; k++) {
        i = &w->t[k].last;
        assert_string_equal(i->user_id, "alice");
        assert_string_equal(i->client_id, "c3");
        assert_int_equal(i->identity_kind, DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN);
        assert_int_equal(i->n_roles, 2);
        assert_string_equal(i->roles[0], "staff");
        assert_string_equal(i->roles[1], "ops");
    }
    /* filled straight from the connection (borrowed, no copies) */
    dlg_client_info direct;
    dlg_hooks_client_info(&c, &direct);
    assert_ptr_equal(direct.user_id, c.user_id);
    assert_ptr_equal(direct.roles, c.roles);
    assert_ptr_equal(direct.client_id, c.client_id);

    c.user_id = "bob";
    c.id_kind = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE;
    c.roles = NULL;
    c.n_roles = 0;
    dlg_hooks_left(&w->srv, &c, "r", "bye");
    assert_string_equal(w->t[0].last.user_id, "bob");
    assert_int_equal(w->t[0].last.identity_kind,
                     DIALOGUE__V1__IDENTITY_KIND__IDENTITY_CERTIFICATE);
    assert_int_equal(w->t[0].last.n_roles, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_before_join_first_veto_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_each_first_veto_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_each_rewrites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_each_server_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifications_reach_every_table_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_null_hooks_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_hooks_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_info_from_verified_identity, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
