/* bus.c: the seam between room routing and the other nodes (see bus.h):
 * interest bookkeeping, subject mapping, the relay of events from other
 * nodes, and the in-process hub. */
#include "bus.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "conn.h"
#include "dispatch.h"
#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_sorted.h"
#include "dlg_frame.h"
#include "fanout.h"
#include "history.h"
#include "room.h"
#include "server.h"

/* Weak: a program that links libdialogued.a without libnats (a unit test)
 * must still link; it then has no cluster support and says so. The
 * daemon's link line forces bus_nats.o in (mk/daemon.ninja). */

#define SUBJECT_PREFIX "dialogue.room."

/* ---- interest set ------------------------------------------------------ */

static const char *interest_key(const void *elem) {
    return ((const dlg_bus_room *)elem)->id;
}

static size_t set_pos(const dlg_bus *b, const char *room, int *found) {
    return dlg_sorted_pos(b->rooms, b->n_rooms, sizeof(*b->rooms), interest_key, room, found);
}

dlg_bus_room *dlg__bus_find(const dlg_bus *b, const char *room) {
    int found;
    size_t pos = set_pos(b, room, &found);
    return found ? &b->rooms[pos] : NULL;
}

static dlg_bus_room *set_add(dlg_bus *b, const char *room) {
    int found;
    size_t pos = set_pos(b, room, &found);
    if (found)
        return &b->rooms[pos];
    if (DLG_GROW(b->rooms, b->cap_rooms, b->n_rooms + 1) != 0)
        return NULL;
    char *s = dlg_strdup(room);
    if (s == NULL)
        return NULL;
    memmove(b->rooms + pos + 1, b->rooms + pos, (b->n_rooms - pos) * sizeof(*b->rooms));
    b->rooms[pos] = (dlg_bus_room){.id = s};
    b->n_rooms++;
    b->stats.interests = (uint32_t)b->n_rooms;
    return &b->rooms[pos];
}

static void set_del(dlg_bus *b, const char *room) {
    int found;
    size_t pos = set_pos(b, room, &found);
    if (!found)
        return;
    free(b->rooms[pos].id);
    free(b->rooms[pos].origins);
    memmove(b->rooms + pos, b->rooms + pos + 1, (b->n_rooms - pos - 1) * sizeof(*b->rooms));
    b->n_rooms--;
    b->stats.interests = (uint32_t)b->n_rooms;
}

uint64_t dlg__bus_origin_note(dlg_bus_room *br, const char *origin, uint64_t run, uint64_t n) {
    dlg_bus_origin *o = NULL;
    for (size_t i = 0; i < br->n_origins; i++)
        if (strcmp(br->origins[i].node, origin) == 0) {
            o = &br->origins[i];
            break;
        }
    if (o == NULL) {
        if (br->n_origins >= DLG_BUS_ORIGINS_MAX || strlen(origin) >= sizeof(o->node) ||
            DLG_GROW(br->origins, br->cap_origins, br->n_origins + 1) != 0)
            return 0;
        o = &br->origins[br->n_origins++];
        snprintf(o->node, sizeof(o->node), "%s", origin);
        o->run = 0;
    }
    uint64_t skipped = 0;
    /* Only forward jumps count: a repeat or an older number (NATS never
     * reorders one publisher's messages) is not a loss. */
    if (o->run == run && n > o->last + 1)
        skipped = n - o->last - 1;
    if (o->run != run || n > o->last) {
        o->run = run;
        o->last = n;
    }
    return skipped;
}

void dlg__bus_origins_reset(dlg_bus *b) {
    for (size_t i = 0; i < b->n_rooms; i++)
        b->rooms[i].n_origins = 0;
}

/* ---- subjects ---------------------------------------------------------- */

int dlg_bus_subject(const char *room, char *out, size_t outlen) {
    size_t o = 0, pl = sizeof(SUBJECT_PREFIX) - 1;
    if (outlen < pl + 1)
        return DLG_ETOOBIG;
    memcpy(out, SUBJECT_PREFIX, pl);
    o = pl;
    for (const char *p = room; *p; p++) {
        const char *rep = *p == '.' ? "%2E" : *p == ':' ? "%3A" : NULL;
        size_t n = rep ? 3 : 1;
        if (o + n + 1 > outlen)
            return DLG_ETOOBIG;
        if (rep)
            memcpy(out + o, rep, 3);
        else
            out[o] = *p;
        o += n;
    }
    out[o] = '\0';
    return (int)o;
}

int dlg_bus_subject_room(const char *subject, char *out, size_t outlen) {
    size_t pl = sizeof(SUBJECT_PREFIX) - 1, o = 0;
    if (strncmp(subject, SUBJECT_PREFIX, pl) != 0 || subject[pl] == '\0')
        return DLG_EINVAL;
    for (const char *p = subject + pl; *p; p++) {
        char ch = *p;
        if (ch == '%') {
            if (p[1] == '2' && p[2] == 'E')
                ch = '.';
            else if (p[1] == '3' && p[2] == 'A')
                ch = ':';
            else
                return DLG_EINVAL;
            p += 2;
        } else if (ch == '.' || ch == ':') {
            return DLG_EINVAL; /* never written unescaped */
        }
        if (o + 2 > outlen)
            return DLG_ETOOBIG;
        out[o++] = ch;
    }
    out[o] = '\0';
    return dlg_name_check(out) ? DLG_EINVAL : (int)o;
}

/* ---- recovery Joins waiting for the log -------------------------------- */

static void waiter_drop(dlg_bus_waiter *w) {
    free(w->room);
    w->room = NULL;
}

/* A waiter whose room has caught up with it (or changed lineage, or is
 * gone: then the Join is answered as it would be without waiting). */
static int waiter_ready(const dlg_bus *b, const dlg_bus_waiter *w) {
    const dlg_room *r = dlg_rooms_find(b->srv->rooms, w->room);
    return r == NULL || r->epoch != w->epoch || w->since_seq <= r->seq;
}

static void on_wait_timer(uv_timer_t *t) {
    dlg_bus *b = t->data;
    uint64_t now = uv_now(t->loop);
    /* Answered from a copy: a resumed Join runs hooks and sends frames,
     * which must not see the array half rewritten. */
    dlg_bus_waiter *done = dlg_malloc((b->n_waiters ? b->n_waiters : 1) * sizeof(*done));
    size_t n_done = 0, k = 0;
    uint64_t next = 0;
    for (size_t i = 0; i < b->n_waiters; i++) {
        dlg_bus_waiter *w = &b->waiters[i];
        int ready = w->c == NULL || waiter_ready(b, w) || now >= w->deadline_ms;
        if (ready && done) {
            done[n_done++] = *w;
            continue;
        }
        if (next == 0 || w->deadline_ms < next)
            next = w->deadline_ms;
        b->waiters[k++] = *w;
    }
    b->n_waiters = k;
    for (size_t i = 0; i < n_done; i++) {
        dlg_bus_waiter *w = &done[i];
        if (w->c == NULL || b->stopped) {
            /* gone, or the node is stopping: nobody to answer */
        } else if (waiter_ready(b, w)) {
            Dialogue__V1__Join j = DIALOGUE__V1__JOIN__INIT;
            j.room = w->room;
            j.recover = 1;
            j.epoch = w->epoch;
            j.since_seq = w->since_seq;
            b->resume(w->c, w->request_id, &j);
        } else {
            const dlg_room *r = dlg_rooms_find(b->srv->rooms, w->room);
            dlg_log_info(&b->srv->log, "cluster: recovery in room %s refused: this node "
                         "is at seq %llu, behind the client's %llu after %u ms", w->room,
                         (unsigned long long)(r ? r->seq : 0),
                         (unsigned long long)w->since_seq, DLG_BUS_RECOVER_WAIT_MS);
            dlg_reply_error(w->c, w->request_id, DIALOGUE__V1__STATUS__UNAVAILABLE,
                                "room %s: this node has delivered up to seq %llu, behind "
                                "this client's position %llu, and did not catch up within "
                                "%u ms: try another node", w->room,
                                (unsigned long long)(r ? r->seq : 0),
                                (unsigned long long)w->since_seq, DLG_BUS_RECOVER_WAIT_MS);
        }
        waiter_drop(w);
    }
    free(done);
    if (done == NULL && b->n_waiters)
        next = now + 100; /* out of memory: try again shortly */
    if (next && !b->stopped)
        uv_timer_start(&b->wait_timer, on_wait_timer, next > now ? next - now : 0, 0);
}

/* r's seq moved: Joins waiting for it are answered on the next loop turn. */
static void waiters_kick(dlg_bus *b, const dlg_room *r) {
    if (b == NULL || b->n_waiters == 0 || !b->wait_timer_open)
        return;
    for (size_t i = 0; i < b->n_waiters; i++) {
        const dlg_bus_waiter *w = &b->waiters[i];
        if (w->since_seq <= r->seq && strcmp(w->room, r->id) == 0) {
            uv_timer_start(&b->wait_timer, on_wait_timer, 0, 0);
            return;
        }
    }
}

int dlg_bus_recover_wait(dlg_bus *b, dlg_conn *c, uint64_t rid, const dlg_room *r,
                         const Dialogue__V1__Join *j, dlg_bus_join_fn resume) {
    if (b == NULL || !j->recover || !dlg_bus_log_room(b, r) || j->epoch != r->epoch ||
        j->since_seq <= r->seq)
        return 0;
    if (b->n_waiters == DLG_BUS_RECOVER_WAITERS) {
        dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__UNAVAILABLE,
                            "room %s: this node is behind this client's position %llu and "
                            "%u recoveries already wait for it: try another node", r->id,
                            (unsigned long long)j->since_seq, DLG_BUS_RECOVER_WAITERS);
        return 1;
    }
    if (DLG_GROW(b->waiters, b->cap_waiters, b->n_waiters + 1) != 0)
        goto nomem;
    char *room = dlg_strdup(r->id);
    if (room == NULL)
        goto nomem;
    if (!b->wait_timer_open) {
        uv_timer_init(b->srv->loop, &b->wait_timer);
        b->wait_timer.data = b;
        b->wait_timer_open = 1;
    }
    uint64_t now = uv_now(b->srv->loop);
    b->resume = resume;
    b->waiters[b->n_waiters++] = (dlg_bus_waiter){
        .c = c, .request_id = rid, .room = room, .epoch = j->epoch,
        .since_seq = j->since_seq, .deadline_ms = now + DLG_BUS_RECOVER_WAIT_MS};
    dlg_log_debug(&b->srv->log, "cluster: recovery in room %s waits: this node is at seq "
                  "%llu, the client at %llu", r->id, (unsigned long long)r->seq,
                  (unsigned long long)j->since_seq);
    /* The earliest deadline is the oldest waiter's: arm only for the first. */
    if (b->n_waiters == 1)
        uv_timer_start(&b->wait_timer, on_wait_timer, DLG_BUS_RECOVER_WAIT_MS, 0);
    return 1;
nomem:
    dlg_reply_error(c, rid, DIALOGUE__V1__STATUS__UNAVAILABLE,
                        "room %s: this node is behind this client's position %llu and out "
                        "of memory to wait: try another node", r->id,
                        (unsigned long long)j->since_seq);
    return 1;
}

/* ---- relay: an event from another node -------------------------------- */

int dlg_bus_relay(dlg_server *srv, dlg_bus *b, const char *room, const uint8_t *frame,
                  size_t len, uint32_t *recipients, char *err, size_t errlen) {
    return dlg__bus_relay_at(srv, b, room, frame, len, 0, 0, recipients, err, errlen);
}

int dlg__bus_relay_at(dlg_server *srv, dlg_bus *b, const char *room, const uint8_t *frame,
                      size_t len, uint64_t seq, uint64_t epoch, uint32_t *recipients, char *err,
                      size_t errlen) {
    *recipients = 0;
    if (b)
        b->stats.received++;
    int rc = DLG_EPROTO;
    Dialogue__V1__ServerFrame *f = NULL;
    if (len < DLG_FRAME_HDR || frame[0] != 0 ||
        ((uint32_t)frame[1] << 24 | (uint32_t)frame[2] << 16 | (uint32_t)frame[3] << 8 |
         frame[4]) != len - DLG_FRAME_HDR) {
        snprintf(err, errlen, "a %zu-byte message for room %s is not one whole frame", len,
                 room ? room : "?");
        goto fail;
    }
    f = dialogue__v1__server_frame__unpack(NULL, len - DLG_FRAME_HDR, frame + DLG_FRAME_HDR);
    if (f == NULL || f->msg_case != DIALOGUE__V1__SERVER_FRAME__MSG_EVENT || f->request_id) {
        snprintf(err, errlen, "a message for room %s is not an Event frame", room ? room : "?");
        goto fail;
    }
    Dialogue__V1__Event *e = f->event;
    if (dlg_name_check(e->room) || dlg_name_check(e->event) || (room && strcmp(room, e->room))) {
        snprintf(err, errlen, "an event for room \"%.64s\" (event \"%.64s\") came on the "
                              "subject of room %s", e->room, e->event, room ? room : "?");
        goto fail;
    }
    dlg_room *r = dlg_rooms_find(srv->rooms, e->room);
    if (r == NULL || !dlg_room_allows_event(r, e->event)) {
        /* The nodes' configs differ (or a dynamic room exists elsewhere
         * only): nobody here can be subscribed to it. */
        snprintf(err, errlen, r ? "room %s here does not accept event %s (configs differ?)"
                                : "room %s does not exist here (event %s)",
                 e->room, e->event);
        rc = DLG_ENOTFOUND;
        goto fail;
    }
    if (seq) {
        /* The log's numbering, the same on every node. An ordered consumer
         * restarted after a NATS failover may send an event again. */
        if (seq <= r->seq) {
            if (b)
                b->stats.duplicates++;
            rc = 0;
            goto done;
        }
        r->seq = seq - 1; /* a jump: events the log no longer holds */
        r->epoch = epoch;
    }
    if (r->members.n == 0 && r->hist == NULL) {
        r->seq += seq != 0; /* Joined.seq stays the log's position */
        rc = 0; /* interest dropped while the message was on its way */
        waiters_kick(b, r);
        goto done;
    }
    /* Without a log, this node's numbering: members see one gap-free
     * lineage per node, which is what their (epoch, seq) position and
     * history refer to. The same way out as an event triggered here, but
     * not forwarded again. */
    dlg_publish_result res;
    if ((rc = dlg_fanout_emit(srv, r, e, 0, 0, &res, err, errlen)) != 0)
        goto fail;
    uint32_t n = res.recipients;
    *recipients = n;
    if (b) {
        b->stats.relayed++;
        b->stats.deliveries += n;
    }
    waiters_kick(b, r);
done:
    dialogue__v1__server_frame__free_unpacked(f, NULL);
    return rc;
fail:
    if (b)
        b->stats.dropped++;
    if (f)
        dialogue__v1__server_frame__free_unpacked(f, NULL);
    return rc;
}

/* ---- gaps: events this node may have missed ---------------------------- */

/* Room r may have missed events of other nodes: its history says so to
 * later recoveries, and its members get one Gap frame now, in order with
 * its events. Returns the members told. */
static uint32_t room_gap(dlg_server *srv, dlg_room *r, const char *why) {
    dlg_hroom_note_gap(r->hist, r->seq);
    if (r->members.n == 0)
        return 0;
    Dialogue__V1__Gap g = DIALOGUE__V1__GAP__INIT;
    g.room = r->id;
    g.epoch = r->epoch;
    g.seq = r->seq;
    g.reason = (char *)why;
    Dialogue__V1__ServerFrame f = DIALOGUE__V1__SERVER_FRAME__INIT;
    f.msg_case = DIALOGUE__V1__SERVER_FRAME__MSG_GAP;
    f.gap = &g;
    dlg_buf *out = NULL;
    if (dlg_frame_pack(&f.base, 0, &out) != 0) {
        dlg_log_error(&srv->log, "cluster: out of memory telling the members of room %s "
                      "about a gap", r->id);
        return 0;
    }
    for (size_t i = 0; i < r->members.n; i++)
        dlg_conn_send(r->members.v[i]->conn, out);
    dlg_buf_unref(out);
    return (uint32_t)r->members.n;
}

void dlg__bus_gap(dlg_bus *b, const char *room, const char *why) {
    uint32_t rooms = 0, told = 0;
    for (size_t i = 0; i < b->n_rooms; i++) {
        if (room && strcmp(room, b->rooms[i].id) != 0)
            continue;
        dlg_room *r = dlg_rooms_find(b->srv->rooms, b->rooms[i].id);
        if (r == NULL)
            continue;
        rooms++;
        told += room_gap(b->srv, r, why);
    }
    b->stats.gaps += rooms;
    if (rooms)
        dlg_log_warn(&b->srv->log, "cluster: %s: %u room(s) may have missed events of other "
                     "nodes; %u member(s) told (Gap)", why, rooms, told);
}

/* ---- the seam ----------------------------------------------------------- */

int dlg_bus_cluster_new(dlg_server *srv, const struct dlg_config_cluster *cc, dlg_bus **out,
                        char *err, size_t errlen) {
    return dlg__bus_nats_new(srv, cc, out, err, errlen);
}

static int room_wanted(const dlg_room *r) {
    return r->members.n > 0 || r->hist != NULL;
}

static void set_interest(dlg_bus *b, const char *room, int on) {
    dlg_bus_room *e = dlg__bus_find(b, room);
    if (on == (e != NULL))
        return;
    if (on) {
        if ((e = set_add(b, room)) == NULL) {
            dlg_log_error(&b->srv->log, "cluster: out of memory taking interest in room %s",
                          room);
            return;
        }
        /* A failure was logged by the implementation; without the entry
         * the next membership change tries again. */
        if (b->ops->interest(b, room, 1, &e->handle) != 0) {
            set_del(b, room);
            return;
        }
    } else {
        b->ops->interest(b, room, 0, &e->handle);
        set_del(b, room);
    }
    dlg_log_debug(&b->srv->log, "cluster: interest in room %s %s (%u rooms)", room,
                  on ? "on" : "off", b->stats.interests);
}

int dlg_bus_start(dlg_bus *b) {
    if (b == NULL)
        return 0;
    int rc = b->ops->start ? b->ops->start(b) : 0;
    if (rc != 0) {
        b->stopped = 1;
        return rc;
    }
    b->started = 1;
    const dlg_rooms *rs = b->srv->rooms;
    for (size_t i = 0; rs && i < rs->n && !b->follow_all; i++)
        if (room_wanted(rs->v[i]))
            set_interest(b, rs->v[i]->id, 1);
    return 0;
}

void dlg_bus_publish(dlg_bus *b, const dlg_room *r, const char *event, dlg_buf *frame) {
    if (b == NULL || !b->started || b->stopped)
        return;
    b->ops->publish(b, r, event, frame);
}

/* The core's seam (seam.h): every call finds the bus the server has now
 * (none: a single node, nothing to do). */
static int fw_log_room(void *ud, const dlg_room *r) {
    return dlg_bus_log_room(((dlg_server *)ud)->bus, r);
}

static int fw_log_publish(void *ud, const dlg_room *r, const char *event, dlg_buf *frame,
                          uint64_t *ticket, char *err, size_t errlen) {
    return dlg_bus_log_publish(((dlg_server *)ud)->bus, r, event, frame, ticket, err, errlen);
}

static void fw_publish(void *ud, const dlg_room *r, const char *event, dlg_buf *frame) {
    dlg_bus_publish(((dlg_server *)ud)->bus, r, event, frame);
}

static void fw_room_changed(void *ud, const dlg_room *r) {
    dlg_bus_room_changed(((dlg_server *)ud)->bus, r);
}

static void fw_conn_gone(void *ud, dlg_conn *c) {
    dlg_bus_conn_gone(((dlg_server *)ud)->bus, c);
}

void dlg_bus_forwarder(dlg_server *srv, dlg_forwarder *out) {
    *out = (dlg_forwarder){.ud = srv, .log_room = fw_log_room, .log_publish = fw_log_publish,
                           .publish = fw_publish, .room_changed = fw_room_changed,
                           .conn_gone = fw_conn_gone};
}

void dlg_bus_room_changed(dlg_bus *b, const dlg_room *r) {
    if (b == NULL || !b->started || b->stopped || b->follow_all)
        return;
    set_interest(b, r->id, room_wanted(r));
}

/* ---- the cluster log: triggers waiting for its answer ----------------- */

int dlg_bus_log_room(const dlg_bus *b, const dlg_room *r) {
    if (b == NULL || !b->started || b->stopped || b->ops->log_room == NULL)
        return 0;
    return b->ops->log_room(b, r->id);
}

static dlg_bus_pending *pend_at(dlg_bus *b, uint64_t ticket) {
    if (ticket < b->pend_first || ticket - b->pend_first >= b->pend.n)
        return NULL;
    return dlg_fifo_at(&b->pend, (size_t)(ticket - b->pend_first));
}

int dlg_bus_log_publish(dlg_bus *b, const dlg_room *r, const char *event, dlg_buf *frame,
                        uint64_t *ticket, char *err, size_t errlen) {
    *ticket = 0;
    /* Room first, so that a publish that went out always gets its slot. */
    if (dlg_fifo_reserve(&b->pend, sizeof(dlg_bus_pending)) != 0) {
        snprintf(err, errlen, "out of memory queueing event %s of room %s for the cluster "
                 "log", event, r->id);
        return DLG_ENOMEM;
    }
    if (b->pend_first == 0)
        b->pend_first = 1; /* 0 means "no ticket" */
    /* A refused publish gets no answer and takes no ticket. */
    uint64_t t = b->pend_first + b->pend.n;
    int rc = b->ops->log_publish(b, r, event, frame, t, err, errlen);
    if (rc != 0) {
        b->stats.log_failed++;
        return rc;
    }
    b->stats.published++;
    dlg_fifo_push(&b->pend, sizeof(dlg_bus_pending)); /* cannot fail: reserved */
    *ticket = t;
    return 0;
}

int dlg_bus_defer_ack(dlg_bus *b, dlg_conn *c, uint64_t request_id, uint64_t ticket) {
    dlg_bus_pending *p = b ? pend_at(b, ticket) : NULL;
    if (p == NULL || p->done)
        return DLG_ENOTFOUND;
    p->c = c;
    p->request_id = request_id;
    return 0;
}

void dlg_bus_conn_gone(dlg_bus *b, dlg_conn *c) {
    for (size_t i = 0; b && i < b->pend.n; i++) {
        dlg_bus_pending *p = dlg_fifo_at(&b->pend, i);
        if (p->c == c)
            p->c = NULL;
    }
    for (size_t i = 0; b && i < b->n_waiters; i++)
        if (b->waiters[i].c == c)
            b->waiters[i].c = NULL;
}

void dlg__bus_ack_done(dlg_bus *b, uint64_t ticket, uint64_t seq, const char *err) {
    dlg_bus_pending *p = pend_at(b, ticket);
    if (p == NULL || p->done)
        return; /* answered twice (a timeout, then the late answer) */
    if (err)
        b->stats.log_failed++;
    if (p->c && err == NULL)
        dlg_reply_ack(p->c, p->request_id, seq, 0);
    else if (p->c)
        dlg_reply_error(p->c, p->request_id, DIALOGUE__V1__STATUS__UNAVAILABLE,
                            "the cluster log did not take the event: %s", err);
    p->c = NULL;
    p->done = 1;
    while (b->pend.n && ((dlg_bus_pending *)dlg_fifo_at(&b->pend, 0))->done) {
        dlg_fifo_pop(&b->pend);
        b->pend_first++;
    }
}

void dlg_bus_log_stats(const dlg_bus *b) {
    if (b == NULL)
        return;
    const dlg_bus_stats *s = &b->stats;
    dlg_log_info(&b->srv->log, "cluster (%s): published %llu, publish failed %llu, received "
                 "%llu, relayed %llu, deliveries %llu, dropped %llu, duplicates %llu, log "
                 "refused %llu, gaps %llu, rooms %u", b->ops->name,
                 (unsigned long long)s->published, (unsigned long long)s->publish_failed,
                 (unsigned long long)s->received, (unsigned long long)s->relayed,
                 (unsigned long long)s->deliveries, (unsigned long long)s->dropped,
                 (unsigned long long)s->duplicates, (unsigned long long)s->log_failed,
                 (unsigned long long)s->gaps, s->interests);
}

void dlg_bus_stop(dlg_bus *b) {
    if (b == NULL || b->stopped)
        return;
    b->stopped = 1;
    if (b->started)
        dlg_bus_log_stats(b);
    if (b->wait_timer_open)
        uv_close((uv_handle_t *)&b->wait_timer, NULL);
    b->wait_timer_open = 0;
    if (b->ops->stop)
        b->ops->stop(b);
}

void dlg_bus_free(dlg_bus *b) {
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n_rooms; i++) {
        free(b->rooms[i].id);
        free(b->rooms[i].origins);
    }
    free(b->rooms);
    b->rooms = NULL;
    b->n_rooms = 0;
    dlg_fifo_free(&b->pend);
    for (size_t i = 0; i < b->n_waiters; i++)
        waiter_drop(&b->waiters[i]);
    free(b->waiters);
    b->waiters = NULL;
    b->n_waiters = 0;
    b->ops->free(b);
}

/* ---- the in-process hub ----------------------------------------------- */

struct dlg_bus_hub {
    dlg_bus **v;
    size_t n, cap;
};

typedef struct local_bus {
    dlg_bus base;                /* first: a dlg_bus * is a local_bus * */
    dlg_bus_hub *hub;
} local_bus;

dlg_bus_hub *dlg_bus_hub_new(void) {
    return dlg_calloc(1, sizeof(dlg_bus_hub));
}

void dlg_bus_hub_free(dlg_bus_hub *h) {
    if (h == NULL)
        return;
    free(h->v);
    free(h);
}

static void local_publish(dlg_bus *b, const dlg_room *r, const char *event, dlg_buf *frame) {
    (void)event;
    dlg_bus_hub *h = ((local_bus *)b)->hub;
    b->stats.published++;
    for (size_t i = 0; i < h->n; i++) {
        dlg_bus *o = h->v[i];
        /* The origin has delivered already; others only with interest,
         * as a NATS server would route it. */
        if (o == b || !o->started || o->stopped || !dlg__bus_find(o, r->id))
            continue;
        char err[256];
        uint32_t n;
        int rc = dlg_bus_relay(o->srv, o, r->id, frame->data, frame->len, &n, err, sizeof(err));
        if (rc != 0)
            dlg_log_warn(&o->srv->log, "cluster: event dropped: %s", err);
    }
}

static int local_interest(dlg_bus *b, const char *room, int on, void **handle) {
    (void)b;
    (void)room;
    (void)on;
    (void)handle; /* the hub reads the interest set itself */
    return 0;
}

static void local_free(dlg_bus *b) {
    dlg_bus_hub *h = ((local_bus *)b)->hub;
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i] == b) {
            h->v[i] = h->v[--h->n];
            break;
        }
    }
    free(b);
}

static const dlg_bus_ops local_ops = {
    .name = "local",
    .publish = local_publish,
    .interest = local_interest,
    .free = local_free,
};

int dlg_bus_local_new(dlg_server *srv, dlg_bus_hub *h, dlg_bus **out) {
    if (DLG_GROW(h->v, h->cap, h->n + 1) != 0)
        return DLG_ENOMEM;
    local_bus *lb = dlg_calloc(1, sizeof(*lb));
    if (lb == NULL)
        return DLG_ENOMEM;
    lb->base.ops = &local_ops;
    lb->base.srv = srv;
    lb->hub = h;
    h->v[h->n++] = &lb->base;
    *out = &lb->base;
    return 0;
}
