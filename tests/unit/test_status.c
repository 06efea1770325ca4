/* test_status.c: the error table (lib/base/dlg_errno.h) as the one source
 * of wire statuses (issue 19 item 5): each DLG_E* code's status as
 * docs/protocol.md's "Error codes" table gives it, the way back from a
 * status to a code (what dlg_client_status_err documents), and a daemon
 * path that reports a failed call's code (the fan-out's cluster-log
 * hand-off) taking its status from the table. Expected values are written
 * out here, not read from the table under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlg_err.h"
#include "fanout.h"
#include "room.h"
#include "server.h"

enum {
    OK = 0, CANCELLED = 1, UNKNOWN = 2, INVALID_ARGUMENT = 3, DEADLINE_EXCEEDED = 4,
    NOT_FOUND = 5, ALREADY_EXISTS = 6, PERMISSION_DENIED = 7, RESOURCE_EXHAUSTED = 8,
    FAILED_PRECONDITION = 9, ABORTED = 10, OUT_OF_RANGE = 11, UNIMPLEMENTED = 12,
    INTERNAL = 13, UNAVAILABLE = 14, DATA_LOSS = 15, UNAUTHENTICATED = 16,
};

static void codes_to_statuses(void **state) {
    (void)state;
    static const struct {
        int code, status;
    } want[] = {
        {0, OK},
        /* docs/protocol.md: INTERNAL (13) is "out of memory and similar". */
        {DLG_ENOMEM, INTERNAL},
        {DLG_EINTERNAL, INTERNAL},
        {DLG_EINVAL, INVALID_ARGUMENT},
        {DLG_EPROTO, INVALID_ARGUMENT},   /* malformed frame */
        {DLG_EFLAG, INVALID_ARGUMENT},    /* bad frame flag */
        {DLG_ESCHEMA, INVALID_ARGUMENT},  /* payload fails validation */
        {DLG_ECONFIG, INVALID_ARGUMENT},
        {DLG_ETIMEDOUT, DEADLINE_EXCEEDED},
        {DLG_ENOTFOUND, NOT_FOUND},
        {DLG_EEXIST, ALREADY_EXISTS},
        {DLG_EPERM, PERMISSION_DENIED},
        {DLG_ETOOBIG, RESOURCE_EXHAUSTED}, /* frame over the size limit */
        {DLG_EFULL, RESOURCE_EXHAUSTED},   /* room full, limits */
        {DLG_ESTATE, FAILED_PRECONDITION},
        {DLG_EIO, UNAVAILABLE},            /* the cluster log did not take it */
        {DLG_ETLS, UNAVAILABLE},
        {DLG_EAGAIN, UNAVAILABLE},
        {DLG_ECLOSED, UNAVAILABLE},
        {DLG_EAUTH, UNAUTHENTICATED},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (dlg_err_status(want[i].code) != want[i].status)
            fail_msg("%s is reported as %d (%s), docs say %d (%s)", dlg_err_name(want[i].code),
                     dlg_err_status(want[i].code), dlg_status_name(dlg_err_status(want[i].code)),
                     want[i].status, dlg_status_name(want[i].status));
    assert_int_equal(dlg_err_status(-1000), UNKNOWN);
}

/* The mapping back, as client.h documents it for dlg_client_status_err
 * (unchanged since the function was written by hand). */
static void statuses_to_codes(void **state) {
    (void)state;
    static const int want[17] = {
        [OK] = 0, [CANCELLED] = DLG_ECLOSED, [UNKNOWN] = DLG_EINTERNAL,
        [INVALID_ARGUMENT] = DLG_EINVAL, [DEADLINE_EXCEEDED] = DLG_ETIMEDOUT,
        [NOT_FOUND] = DLG_ENOTFOUND, [ALREADY_EXISTS] = DLG_EEXIST,
        [PERMISSION_DENIED] = DLG_EPERM, [RESOURCE_EXHAUSTED] = DLG_EFULL,
        [FAILED_PRECONDITION] = DLG_ESTATE, [ABORTED] = DLG_EINTERNAL,
        [OUT_OF_RANGE] = DLG_EINTERNAL, [UNIMPLEMENTED] = DLG_EPROTO,
        [INTERNAL] = DLG_EINTERNAL, [UNAVAILABLE] = DLG_EAGAIN,
        [DATA_LOSS] = DLG_EINTERNAL, [UNAUTHENTICATED] = DLG_EAUTH,
    };
    for (int s = 0; s <= UNAUTHENTICATED; s++)
        if (dlg_err_from_status(s) != want[s])
            fail_msg("status %d (%s) maps back to %s, want %s", s, dlg_status_name(s),
                     dlg_err_name(dlg_err_from_status(s)), dlg_err_name(want[s]));
    assert_int_equal(dlg_err_from_status(99), DLG_EINTERNAL);
    assert_int_equal(dlg_err_from_status(DLG_ETIMEDOUT), DLG_ETIMEDOUT);
    /* Every code a status maps back to is reported as that status again. */
    for (int s = 1; s <= UNAUTHENTICATED; s++) {
        int code = dlg_err_from_status(s);
        if (s != CANCELLED && s != UNIMPLEMENTED && dlg_err_status(code) != s &&
            code != DLG_EINTERNAL)
            fail_msg("status %d -> %s -> status %d", s, dlg_err_name(code),
                     dlg_err_status(code));
    }
}

/* ---- the fan-out's cluster-log hand-off ---------------------------------- */

static int log_rc;

static int log_room_yes(void *ud, const struct dlg_room *r) {
    (void)ud;
    (void)r;
    return 1;
}

static int log_publish_fails(void *ud, const struct dlg_room *r, const char *event,
                             dlg_buf *frame, uint64_t *ticket, char *err, size_t errlen) {
    (void)ud;
    (void)r;
    (void)event;
    (void)frame;
    (void)ticket;
    dlg_errf(err, errlen, "refused by the test");
    return log_rc;
}

static void fanout_log_failure_status(void **state) {
    (void)state;
    dlg_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.fwd.log_room = log_room_yes;
    srv.fwd.log_publish = log_publish_fails;
    dlg_rooms *rooms = dlg_rooms_new();
    assert_non_null(rooms);
    const char *events[] = {"tick"};
    dlg_room_spec spec = {.id = "r", .events = events, .n_events = 1};
    dlg_room *room = NULL;
    char err[256];
    assert_int_equal(dlg_rooms_add(rooms, &spec, 0, &room, err, sizeof(err)), 0);
    static const struct {
        int rc, status;
    } cases[] = {
        {DLG_EIO, UNAVAILABLE},  /* the log refused it */
        {DLG_ENOMEM, INTERNAL},  /* no memory to queue it: as every OOM */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Dialogue__V1__Event e = DIALOGUE__V1__EVENT__INIT;
        e.room = (char *)"r";
        e.event = (char *)"tick";
        dlg_publish_result res;
        log_rc = cases[i].rc;
        assert_int_equal(dlg_fanout_emit(&srv, room, &e, DLG_EMIT_LOG, 0, &res, err,
                                         sizeof(err)),
                         cases[i].rc);
        if (res.status != cases[i].status)
            fail_msg("log_publish %s: status %d (%s), want %d (%s)",
                     dlg_err_name(cases[i].rc), res.status, dlg_status_name(res.status),
                     cases[i].status, dlg_status_name(cases[i].status));
        assert_int_equal(res.ticket, 0);
        assert_int_equal(room->seq, 0); /* nothing went out */
    }
    dlg_rooms_free(rooms);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_to_statuses),
        cmocka_unit_test(statuses_to_codes),
        cmocka_unit_test(fanout_log_failure_status),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
