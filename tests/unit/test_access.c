/* test_access.c: the config's access rules (access.c) in the protocol layer
 * with what is under it, nothing of the app layer: rooms built in code with
 * their rules, connections without sockets holding an identity set by hand
 * (as auth.c would). Deny by default, "*", roles, per-event trigger rules,
 * creators of dynamic rooms, room_admin create/delete, the recheck after a
 * reload (members whose role went are taken out, told why, hooks told),
 * and auto_join through the same hooks as a Join. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "access.h"
#include "config.h"
#include "conn.h"
#include "fakeconn.h"
#include "fakeserver.h"
#include "dispatch.h"
#include "dlg_err.h"
#include "dlg_frame.h"
#include "hooks.h"
#include "ratelimit.h"
#include "room.h"

enum { KIND_TOKEN = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_TOKEN,
       KIND_ANON = DIALOGUE__V1__IDENTITY_KIND__IDENTITY_ANONYMOUS };

/* What a second hook table saw (it only listens). */
typedef struct seen {
    int left;
    char left_room[64], left_reason[128], left_client[32];
} seen;

typedef struct world {
    uv_loop_t loop;
    dlg_server srv;
    seen seen;
} world;

/* ---- fixture ------------------------------------------------------------ */

static dlg_conn *conn_new(dlg_server *s) {
    dlg_conn *c = fake_conn_new(s, DLG_CONN_READY, "unit");
    assert_non_null(c);
    c->id_kind = KIND_ANON;
    return c;
}

/* A connection with a verified token identity: user (NULL = anonymous)
 * and n roles, owned by the connection as auth.c leaves them. */
static dlg_conn *client(world *w, const char *user, size_t n, ...) {
    dlg_conn *c = conn_new(&w->srv);
    if (user) {
        assert_non_null(c->user_id = strdup(user));
        c->id_kind = KIND_TOKEN;
    }
    c->roles = calloc(n ? n : 1, sizeof(char *));
    assert_non_null(c->roles);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_non_null(c->roles[c->n_roles++] = strdup(va_arg(ap, const char *)));
    va_end(ap);
    return c;
}

static void set_roles(dlg_conn *c, size_t n, const char *const *roles) {
    for (size_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    c->n_roles = 0;
    for (size_t i = 0; i < n; i++)
        assert_non_null(c->roles[c->n_roles++] = strdup(roles[i]));
}

static dlg_room *room(world *w, const char *id, size_t n_join, const char *const *join,
                      size_t n_trigger, const char *const *trigger) {
    static const char *const any[] = {"*"};
    dlg_room_spec spec = {.id = id, .events = any, .n_events = 1, .default_subs = any,
                          .n_default_subs = 1, .join = join, .n_join = n_join,
                          .trigger = trigger, .n_trigger = n_trigger};
    char err[256] = "";
    dlg_room *r = NULL;
    if (dlg_rooms_add(w->srv.rooms, &spec, 0, &r, err, sizeof(err)) != 0)
        fail_msg("room %s: %s", id, err);
    return r;
}

static char **strv(size_t n, const char *const *v) {
    char **out = calloc(n ? n : 1, sizeof(char *));
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        assert_non_null(out[i] = strdup(v[i]));
    return out;
}

/* Adds a per-event trigger rule to r, as boot does from trigger_events. */
static void event_rule(dlg_room *r, const char *event, size_t n, const char *const *roles) {
    struct dlg_event_roles *te =
        realloc(r->trigger_events, (r->n_trigger_events + 1) * sizeof(*te));
    assert_non_null(te);
    r->trigger_events = te;
    te = &te[r->n_trigger_events++];
    assert_non_null(te->event = strdup(event));
    te->roles = strv(n, roles);
    te->n_roles = n;
}

static void seen_left(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                      const char *reason) {
    (void)s;
    seen *sn = ud;
    sn->left++;
    snprintf(sn->left_room, sizeof(sn->left_room), "%s", room);
    snprintf(sn->left_reason, sizeof(sn->left_reason), "%s", reason);
    snprintf(sn->left_client, sizeof(sn->left_client), "%s", c->client_id);
}

static int setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    dlg_server *s = &w->srv;
    assert_int_equal(fake_server_init(s, &w->loop), 0);
    s->hooks[1] = (dlg_hooks){.ud = &w->seen, .on_left = seen_left};
    s->n_hooks = 2;
    *state = w;
    return 0;
}

static int teardown(void **state) {
    world *w = *state;
    while (w->srv.conns)
        dlg_conn_close(w->srv.conns, "test over");
    dlg_conn_flush_all(&w->srv);
    uv_close((uv_handle_t *)&w->srv.kick, NULL);
    for (int i = 0; i < 5; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    dlg_rooms_free(w->srv.rooms);
    dlg_ratelimit_free(w->srv.rates);
    dlg_strv_free(w->srv.create_roles, w->srv.n_create_roles);
    dlg_strv_free(w->srv.delete_roles, w->srv.n_delete_roles);
    free(w->srv.flush_v);
    free(w);
    return 0;
}

static int may_join(const dlg_room *r, const dlg_conn *c) {
    dlg_client_info i;
    dlg_hooks_client_info(c, &i);
    return dlg_access_may_join(r, &i);
}

static int may_trigger(const dlg_room *r, const char *event, const dlg_conn *c) {
    dlg_client_info i;
    dlg_hooks_client_info(c, &i);
    return dlg_access_may_trigger(r, event, &i);
}

/* Takes the oldest queued frame off c (NULL when none); free it after. */
static Dialogue__V1__ServerFrame *next(dlg_conn *c) {
    if (c->q_len == 0)
        return NULL;
    dlg_outq_item *it = &c->q[c->q_head];
    Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(
        NULL, it->buf->len - DLG_FRAME_HDR, it->buf->data + DLG_FRAME_HDR);
    assert_non_null(f);
    c->q_bytes -= it->buf->len;
    dlg_buf_unref(it->buf);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    c->q_popped++;
    return f;
}

/* ---- the rules ------------------------------------------------------------ */

/* A room with no rule lets nobody in and nobody trigger, whatever roles. */
static void test_deny_by_default(void **state) {
    world *w = *state;
    dlg_room *r = room(w, "closed", 0, NULL, 0, NULL);
    dlg_conn *anon = client(w, NULL, 0);
    dlg_conn *admin = client(w, "root", 2, "admin", "ops");
    assert_false(may_join(r, anon));
    assert_false(may_join(r, admin));
    assert_false(may_trigger(r, "e", anon));
    assert_false(may_trigger(r, "e", admin));
    /* through the hook table: refused, with the room in the reason */
    char why[128] = "";
    assert_int_equal(dlg_hooks_before_join(&w->srv, admin, "closed", why, sizeof(why)),
                     DLG_EPERM);
    assert_non_null(strstr(why, "closed"));
    /* a room that does not exist is refused too (not "allowed by absence") */
    why[0] = '\0';
    assert_int_equal(dlg_hooks_before_join(&w->srv, admin, "ghost", why, sizeof(why)),
                     DLG_EPERM);
    assert_non_null(strstr(why, "ghost"));
}

/* "*" is any client past Hello, anonymous ones included. */
static void test_star_is_anyone(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    dlg_room *r = room(w, "lobby", 1, any, 1, any);
    dlg_conn *anon = client(w, NULL, 0);
    dlg_conn *user = client(w, "alice", 1, "reader");
    assert_true(may_join(r, anon));
    assert_true(may_join(r, user));
    assert_true(may_trigger(r, "anything", anon));
    char why[128] = "";
    assert_int_equal(dlg_hooks_before_join(&w->srv, anon, "lobby", why, sizeof(why)), 0);
}

/* Roles come from the verified identity only, matched exactly. */
static void test_roles(void **state) {
    world *w = *state;
    static const char *const staff[] = {"staff", "admin"};
    static const char *const admin[] = {"admin"};
    dlg_room *r = room(w, "ops", 2, staff, 1, admin);
    dlg_conn *s = client(w, "sam", 1, "staff");
    dlg_conn *a = client(w, "ann", 2, "reader", "admin");
    dlg_conn *x = client(w, "xav", 2, "Staff", "staff2");
    dlg_conn *anon = client(w, NULL, 0);
    /* metadata a client sends is not a role */
    free(anon->client_name);
    assert_non_null(anon->client_name = strdup("admin"));
    assert_true(may_join(r, s));
    assert_true(may_join(r, a));
    assert_false(may_join(r, x));
    assert_false(may_join(r, anon));
    assert_false(may_trigger(r, "e", s)); /* may join, may not trigger */
    assert_true(may_trigger(r, "e", a));
    assert_false(may_trigger(r, "e", x));
}

/* trigger_events add roles for one event, on top of the room's trigger. */
static void test_per_event_trigger_rules(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    static const char *const admin[] = {"admin"};
    static const char *const mods[] = {"mod"};
    dlg_room *r = room(w, "chat", 1, any, 1, admin);
    event_rule(r, "message", 1, any);
    event_rule(r, "kick", 1, mods);
    dlg_conn *anon = client(w, NULL, 0);
    dlg_conn *mod = client(w, "meg", 1, "mod");
    dlg_conn *adm = client(w, "ann", 1, "admin");
    assert_true(may_trigger(r, "message", anon));
    assert_false(may_trigger(r, "kick", anon));
    assert_false(may_trigger(r, "other", anon));
    assert_true(may_trigger(r, "kick", mod));
    assert_true(may_trigger(r, "message", mod));
    assert_false(may_trigger(r, "other", mod));
    /* exact event names: no prefix match */
    assert_false(may_trigger(r, "kick2", mod));
    assert_false(may_trigger(r, "kic", mod));
    assert_true(may_trigger(r, "other", adm));
    /* the before_each hook says who and where */
    dlg_event_info ev = {.room = "chat", .event = "kick", .data = (const uint8_t *)"x",
                         .len = 1, .from = "c1", .from_kind = KIND_ANON};
    uint8_t *owned = NULL;
    char why[128] = "";
    assert_int_equal(dlg_hooks_before_each(&w->srv, anon, &ev, &owned, why, sizeof(why)),
                     DLG_EPERM);
    assert_non_null(strstr(why, "kick"));
    assert_non_null(strstr(why, "chat"));
    assert_int_equal(dlg_hooks_before_each(&w->srv, mod, &ev, &owned, why, sizeof(why)), 0);
    /* the server's own triggers (no connection) are not subject to rules */
    ev.event = "other";
    assert_int_equal(dlg_hooks_before_each(&w->srv, NULL, &ev, &owned, why, sizeof(why)), 0);
    assert_null(owned);
}

/* A dynamic room's creator may join and trigger without any rule; the same
 * name of another identity kind is not the creator. */
static void test_dynamic_room_creator(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    dlg_room_spec spec = {.id = "mine", .events = any, .n_events = 1, .default_subs = any,
                          .n_default_subs = 1, .creator = "alice", .creator_kind = KIND_TOKEN};
    char err[256] = "";
    dlg_room *r = NULL;
    assert_int_equal(dlg_rooms_add(w->srv.rooms, &spec, 1, &r, err, sizeof(err)), 0);
    dlg_conn *alice = client(w, "alice", 0);
    dlg_conn *bob = client(w, "bob", 0);
    dlg_conn *fake = client(w, NULL, 0);
    snprintf(fake->client_id, sizeof(fake->client_id), "alice"); /* anonymous "alice" */
    assert_true(may_join(r, alice));
    assert_true(may_trigger(r, "e", alice));
    assert_false(may_join(r, bob));
    assert_false(may_trigger(r, "e", bob));
    assert_false(may_join(r, fake));
    assert_false(may_trigger(r, "e", fake));
    /* delete: the creator, or a room_admin delete role; nobody else */
    static const char *const admins[] = {"admin"};
    w->srv.delete_roles = strv(1, admins);
    w->srv.n_delete_roles = 1;
    dlg_conn *adm = client(w, "root", 1, "admin");
    assert_true(dlg_access_may_delete(&w->srv, r, alice));
    assert_true(dlg_access_may_delete(&w->srv, r, adm));
    assert_false(dlg_access_may_delete(&w->srv, r, bob));
    assert_false(dlg_access_may_delete(&w->srv, r, fake));
}

/* Rooms from the config file are never deleted by clients, admins included. */
static void test_config_rooms_not_deletable(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    dlg_room *r = room(w, "fixed", 1, any, 1, any);
    w->srv.delete_roles = strv(1, any);
    w->srv.n_delete_roles = 1;
    dlg_conn *adm = client(w, "root", 1, "admin");
    assert_false(dlg_access_may_delete(&w->srv, r, adm));
}

/* room_admin create: none configured = nobody; a role; "*" = anyone. */
static void test_may_create(void **state) {
    world *w = *state;
    dlg_conn *anon = client(w, NULL, 0);
    dlg_conn *maker = client(w, "mo", 1, "maker");
    assert_false(dlg_access_may_create(&w->srv, anon));
    assert_false(dlg_access_may_create(&w->srv, maker));
    static const char *const makers[] = {"maker"};
    w->srv.create_roles = strv(1, makers);
    w->srv.n_create_roles = 1;
    assert_false(dlg_access_may_create(&w->srv, anon));
    assert_true(dlg_access_may_create(&w->srv, maker));
    static const char *const any[] = {"*"};
    dlg_strv_free(w->srv.create_roles, w->srv.n_create_roles);
    w->srv.create_roles = strv(1, any);
    assert_true(dlg_access_may_create(&w->srv, anon));
}

/* ---- recheck after a reload ------------------------------------------------- */

/* A member whose role was taken away is removed: Left{room, reason} with
 * request id 0, the hooks' on_left with the reason, no membership left.
 * Members still allowed stay, and nothing is queued to them. */
static void test_recheck_removes_with_reason(void **state) {
    world *w = *state;
    static const char *const staff[] = {"staff"};
    static const char *const any[] = {"*"};
    dlg_room *r = room(w, "ops", 1, staff, 0, NULL);
    dlg_room *lobby = room(w, "lobby", 1, any, 0, NULL);
    dlg_conn *keep = client(w, "kim", 1, "staff");
    dlg_conn *lose = client(w, "lou", 1, "staff");
    dlg_member *m = NULL;
    assert_int_equal(dlg_room_join(r, keep, &m), 0);
    assert_int_equal(dlg_room_join(r, lose, &m), 0);
    assert_int_equal(dlg_room_join(lobby, lose, &m), 0);
    /* nothing changed: nobody goes */
    assert_int_equal(dlg_access_recheck(&w->srv, "rules reloaded"), 0);
    assert_int_equal(lose->q_len, 0);
    /* lou loses staff */
    static const char *const none[] = {"guest"};
    set_roles(lose, 1, none);
    assert_int_equal(dlg_access_recheck(&w->srv, "rules reloaded"), 1);
    assert_null(dlg_room_member(r, lose));
    assert_non_null(dlg_room_member(lobby, lose)); /* lobby still lets guests in */
    assert_non_null(dlg_room_member(r, keep));
    assert_int_equal(r->members.n, 1);
    assert_int_equal(lose->n_members, 1);
    Dialogue__V1__ServerFrame *f = next(lose);
    assert_non_null(f);
    assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_LEFT);
    assert_int_equal(f->request_id, 0);
    assert_string_equal(f->left->room, "ops");
    assert_string_equal(f->left->reason, "rules reloaded");
    dialogue__v1__server_frame__free_unpacked(f, NULL);
    assert_null(next(lose));
    assert_null(next(keep));
    assert_int_equal(w->seen.left, 1);
    assert_string_equal(w->seen.left_room, "ops");
    assert_string_equal(w->seen.left_reason, "rules reloaded");
    assert_string_equal(w->seen.left_client, lose->client_id);
}

/* A rule taken away from the room (not the client) removes every member it
 * let in, all of them (the loop survives members moving in the list). */
static void test_recheck_room_rule_gone(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    static const char *const admin[] = {"admin"};
    dlg_room *r = room(w, "open", 1, any, 0, NULL);
    dlg_conn *c[4];
    dlg_member *m = NULL;
    for (int i = 0; i < 4; i++) {
        c[i] = i == 2 ? client(w, "ann", 1, "admin") : client(w, NULL, 0);
        assert_int_equal(dlg_room_join(r, c[i], &m), 0);
    }
    dlg_strv_free(r->join_roles, r->n_join_roles);
    r->join_roles = strv(1, admin);
    r->n_join_roles = 1;
    assert_int_equal(dlg_access_recheck(&w->srv, "access changed"), 3);
    assert_int_equal(r->members.n, 1);
    assert_non_null(dlg_room_member(r, c[2]));
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        assert_null(dlg_room_member(r, c[i]));
        Dialogue__V1__ServerFrame *f = next(c[i]);
        assert_non_null(f);
        assert_int_equal(f->msg_case, DIALOGUE__V1__SERVER_FRAME__MSG_LEFT);
        assert_string_equal(f->left->reason, "access changed");
        dialogue__v1__server_frame__free_unpacked(f, NULL);
    }
    assert_int_equal(w->seen.left, 3);
}

/* ---- auto_join -------------------------------------------------------------- */

/* Rules by role ("*" = everyone), rooms that do not exist skipped, rooms
 * the access rules refuse skipped, max_rooms_per_conn kept. */
static void test_auto_join(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    static const char *const staff[] = {"staff"};
    room(w, "lobby", 1, any, 0, NULL);
    room(w, "news", 1, any, 0, NULL);
    room(w, "ops", 1, staff, 0, NULL);
    room(w, "vault", 0, NULL, 0, NULL); /* nobody may join */
    char *all_rooms[] = {"lobby", "ghost", "vault"};
    char *staff_rooms[] = {"ops", "news", "lobby"};
    dlg_config_auto_join aj[] = {
        {.role = "*", .rooms = {.v = all_rooms, .n = 3}},
        {.role = "staff", .rooms = {.v = staff_rooms, .n = 3}},
    };
    dlg_config cfg = {.auto_join = aj, .n_auto_join = 2};
    w->srv.cfg = &cfg;

    dlg_conn *anon = client(w, NULL, 0);
    Dialogue__V1__Joined **jd = NULL;
    size_t n = 99;
    assert_int_equal(dlg_access_auto_join(&w->srv, anon, &jd, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jd[0]->room, "lobby");
    assert_int_equal(jd[0]->n_subscriptions, 1);
    assert_string_equal(jd[0]->subscriptions[0], "*");
    dlg_access_free_joined(jd, n);
    assert_int_equal(anon->n_members, 1);

    dlg_conn *s = client(w, "sam", 1, "staff");
    assert_int_equal(dlg_access_auto_join(&w->srv, s, &jd, &n), 0);
    /* lobby once (already a member when the staff rule names it again) */
    assert_int_equal(n, 3);
    assert_string_equal(jd[0]->room, "lobby");
    assert_string_equal(jd[1]->room, "ops");
    assert_string_equal(jd[2]->room, "news");
    assert_int_equal(jd[1]->members, 1);
    dlg_access_free_joined(jd, n);
    assert_int_equal(s->n_members, 3);
    assert_null(dlg_room_member(dlg_rooms_find(w->srv.rooms, "vault"), s));

    /* the per-connection cap holds */
    w->srv.opts.max_rooms_per_conn = 2;
    dlg_conn *t = client(w, "tom", 1, "staff");
    assert_int_equal(dlg_access_auto_join(&w->srv, t, &jd, &n), 0);
    assert_int_equal(n, 2);
    dlg_access_free_joined(jd, n);
    assert_int_equal(t->n_members, 2);

    /* without a config (flags only) nothing is joined */
    w->srv.cfg = NULL;
    dlg_conn *u = client(w, "una", 1, "staff");
    jd = (Dialogue__V1__Joined **)&n; /* must be overwritten */
    assert_int_equal(dlg_access_auto_join(&w->srv, u, &jd, &n), 0);
    assert_null(jd);
    assert_int_equal(n, 0);
    assert_int_equal(u->n_members, 0);
}

/* auto_join asks every hook table, not only the rules: an embedder's veto
 * keeps a client out of a room the rules let it into. */
static int veto_news(void *ud, dlg_server *s, const dlg_client_info *c, const char *room,
                     char *reason, size_t len) {
    (void)ud;
    (void)s;
    (void)c;
    if (strcmp(room, "news") != 0)
        return 0;
    snprintf(reason, len, "no news today");
    return 1;
}

static void test_auto_join_through_hooks(void **state) {
    world *w = *state;
    static const char *const any[] = {"*"};
    room(w, "lobby", 1, any, 0, NULL);
    room(w, "news", 1, any, 0, NULL);
    w->srv.hooks[w->srv.n_hooks++] = (dlg_hooks){.before_join = veto_news};
    char *rooms[] = {"news", "lobby"};
    dlg_config_auto_join aj[] = {{.role = "*", .rooms = {.v = rooms, .n = 2}}};
    dlg_config cfg = {.auto_join = aj, .n_auto_join = 1};
    w->srv.cfg = &cfg;
    dlg_conn *c = client(w, NULL, 0);
    Dialogue__V1__Joined **jd = NULL;
    size_t n = 0;
    assert_int_equal(dlg_access_auto_join(&w->srv, c, &jd, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jd[0]->room, "lobby");
    dlg_access_free_joined(jd, n);
    w->srv.cfg = NULL;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deny_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_star_is_anyone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_event_trigger_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dynamic_room_creator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_rooms_not_deletable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_may_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_removes_with_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_room_rule_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_join_through_hooks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
