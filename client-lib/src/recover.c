/* recover.c: where the client stands in each joined room (epoch, seq):
 * dropping events already delivered, the HistoryBatch a server sends right
 * after a Joined (sync on join, recovery) delivered as events, gap reports
 * when recovery falls short, and the Join{recover} sent after a reconnect. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "dlg_err.h"

static uint64_t max_u64(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

/* Everything up to here was delivered or is not owed. */
static uint64_t position(const dlg__room *rm) {
    return max_u64(rm->seq, rm->floor);
}

int dlg__pos_accept(dlg_client *c, const Dialogue__V1__Event *e) {
    dlg__room *rm = dlg__room_find(c, e->room);
    if (rm == NULL)
        return 1;
    if (rm->known && rm->epoch == e->epoch) {
        if (e->seq <= position(rm))
            return 0;
    } else {
        /* Another lineage: seqs of the old one say nothing about it. */
        rm->known = 1;
        rm->epoch = e->epoch;
        rm->floor = 0;
    }
    rm->seq = e->seq;
    return 1;
}

/* A Joined (epoch, seq) is settled: every event up to seq for the
 * subscriptions is either delivered or not owed. */
static void advance(dlg__room *rm, uint64_t epoch, uint64_t seq) {
    if (!rm->known || rm->epoch != epoch) {
        rm->known = 1;
        rm->epoch = epoch;
        rm->seq = 0;
        rm->floor = 0;
    }
    rm->floor = max_u64(rm->floor, seq);
}

void dlg__pos_joined(dlg_client *c, dlg__room *rm, const Dialogue__V1__Joined *j,
                     uint64_t rid, int batch, int recover) {
    if (!batch) {
        advance(rm, j->epoch, j->seq);
        return;
    }
    /* The batch holds events up to j->seq: settling now would make them
     * look like duplicates, so the position waits for it. */
    c->pend_any = 1;
    rm->pend_rid = rid;
    rm->pend_epoch = j->epoch;
    rm->pend_seq = j->seq;
    rm->pend_recover = recover;
}

void dlg__pos_disconnected(dlg_client *c) {
    for (size_t i = 0; i < c->n_rooms; i++)
        c->rooms[i].pend_rid = 0;
    c->pend_any = 0;
}

/* Fills g and reason when the batch b (NULL = none came) leaves events of
 * rm out; 0 when nothing is missing. */
static int find_gap(const dlg__room *rm, const Dialogue__V1__HistoryBatch *b, dlg_gap *g,
                    char *reason, size_t len) {
    uint64_t pos = position(rm);
    memset(g, 0, sizeof(*g));
    g->room = rm->room;
    g->reason = reason;
    g->old_epoch = rm->epoch;
    g->since_seq = pos;
    g->epoch = rm->pend_epoch;
    if (rm->known && rm->epoch != rm->pend_epoch) {
        g->epoch_changed = 1;
        snprintf(reason, len,
                 "room %s: epoch changed from %" PRIu64 " to %" PRIu64
                 " (the server lost its history); events after seq %" PRIu64 " are lost",
                 rm->room, rm->epoch, rm->pend_epoch, pos);
        return 1;
    }
    if (!rm->pend_recover || (b != NULL && b->complete))
        return 0;
    if (b == NULL)
        snprintf(reason, len,
                 "room %s: the server sent no recovery batch; events after seq %" PRIu64
                 " may be lost", rm->room, pos);
    else if (rm->pend_seq < pos)
        snprintf(reason, len,
                 "room %s: the server is at seq %" PRIu64 ", behind this client's %" PRIu64
                 " (history lost); events after it are lost", rm->room, rm->pend_seq, pos);
    else
        snprintf(reason, len,
                 "room %s: some events after seq %" PRIu64 " are no longer kept (history "
                 "limit or age, damaged in the server's store, or too many for one frame); "
                 "the %zu still kept follow",
                 rm->room, pos, b->n_events);
    return 1;
}

/* Whether the recorded subscriptions of rm take event. */
static int wanted(const dlg__room *rm, const char *event) {
    for (size_t i = 0; i < rm->n_subs; i++)
        if (strcmp(rm->subs[i], "*") == 0 || strcmp(rm->subs[i], event) == 0)
            return 1;
    return 0;
}

/* Ends the wait for rm's batch b (NULL: none is coming): gap report, then
 * the batch's events, then the position. */
static void finish(dlg_client *c, dlg__room *rm, const Dialogue__V1__HistoryBatch *b) {
    dlg__conn *conn = c->conn;
    char reason[512];
    dlg_gap g;
    uint64_t epoch = rm->pend_epoch, seq = rm->pend_seq;
    int recover = rm->pend_recover;
    rm->pend_rid = 0;
    /* User callbacks cannot change the room table (from a callback, API
     * calls only queue requests; the table changes when replies are
     * processed), so rm and its name stay valid throughout. */
    const char *room = rm->room;
    if (find_gap(rm, b, &g, reason, sizeof(reason))) {
        dlg_log_warn(&c->log, "%s", reason);
        if (c->gap_cb != NULL && !c->freeing) {
            c->cb_depth++;
            c->gap_cb(c, c->gap_ud, &g);
            c->cb_depth--;
        }
    }
    for (size_t i = 0; b != NULL && i < b->n_events; i++) {
        if (c->conn != conn || c->closing || c->freeing)
            return;
        const Dialogue__V1__Event *e = b->events[i];
        if (strcmp(e->room, room) != 0) {
            dlg_log_warn(&c->log, "ignoring an event of room %s in the history batch of %s",
                         e->room, room);
            continue;
        }
        /* A recovery batch follows the new membership's subscriptions (the
         * room's defaults), not the ones this client had restored. */
        if (recover && !wanted(rm, e->event))
            continue;
        dlg__dispatch_event(c, e);
    }
    if (c->conn == conn)
        advance(rm, epoch, seq);
}

int dlg__pos_frame(dlg_client *c, const Dialogue__V1__ServerFrame *f) {
    dlg__conn *conn = c->conn;
    if (f->msg_case == DIALOGUE__V1__SERVER_FRAME__MSG_HISTORY_BATCH && f->request_id != 0) {
        const Dialogue__V1__HistoryBatch *b = f->history_batch;
        dlg__room *rm = dlg__room_find(c, b->room);
        if (rm != NULL && rm->pend_rid == f->request_id) {
            finish(c, rm, b);
            return 1;
        }
    }
    if (!c->pend_any)
        return 0;
    /* Not the batch: the server sends it right after its Joined, so rooms
     * still waiting get none. The table does not change shape inside the
     * callbacks finish runs, hence the index loop. */
    c->pend_any = 0;
    for (size_t i = 0; i < c->n_rooms && c->conn == conn; i++)
        if (c->rooms[i].pend_rid != 0)
            finish(c, &c->rooms[i], NULL);
    return 0;
}

void dlg__pos_gap(dlg_client *c, const Dialogue__V1__Gap *g) {
    dlg__room *rm = dlg__room_find(c, g->room);
    if (rm == NULL)
        return;
    char reason[512];
    dlg_gap gap = {.room = rm->room, .reason = reason, .old_epoch = rm->epoch,
                   .since_seq = g->seq, .epoch = g->epoch};
    snprintf(reason, sizeof(reason),
             "room %s: events after seq %" PRIu64 " may be lost (the server says: %s)",
             rm->room, g->seq, g->reason && g->reason[0] ? g->reason : "no reason given");
    dlg_log_warn(&c->log, "%s", reason);
    if (c->gap_cb != NULL && !c->freeing) {
        c->cb_depth++;
        c->gap_cb(c, c->gap_ud, &gap);
        c->cb_depth--;
    }
}

int dlg__build_rejoin(dlg_client *c, dlg__room *rm, dlg__req **out) {
    Dialogue__V1__Join m = DIALOGUE__V1__JOIN__INIT;
    Dialogue__V1__ClientFrame f = DIALOGUE__V1__CLIENT_FRAME__INIT;
    m.room = rm->room;
    /* Without a known epoch there is nothing to recover from: a plain Join
     * (with the room's sync on join, if any). */
    rm->rejoin_recover = rm->known;
    if (rm->known) {
        m.recover = 1;
        m.epoch = rm->epoch;
        m.since_seq = position(rm);
    }
    f.msg_case = DIALOGUE__V1__CLIENT_FRAME__MSG_JOIN;
    f.join = &m;
    return dlg__req_new(c, DLG__REQ_JOIN, &f, rm->room, out);
}
