/* store_sqlite.c: durable history in SQLite (see store_sqlite.h): schema and
 * its migrations, open-and-check, per-room load with a check of every row,
 * and the writer thread with its queue. */
#include "store_sqlite.h"
#include "dlg_random.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "dlg_alloc.h"
#include "dlg_crc32c.h"
#include "dlg_err.h"
#include "dlg_vec.h"
#include "room.h"

#define QUEUE_MAX_ITEMS 65536
#define QUEUE_MAX_BYTES (64u << 20)
/* Version 2 added events.crc. */
#define SCHEMA_VERSION 2
/* Damaged rows listed one by one per room at load; the rest are counted. */
#define BAD_ROWS_LOGGED 20

typedef struct qitem {
    dlg_store_item it;
    uint64_t ticket;
} qitem;

typedef struct result {
    uint64_t last;
    size_t n;
    int rc;
    char err[256];
} result;

struct dlg_store {
    char *path;
    sqlite3 *db;
    int sync;
    const dlg_log *log;
    int was_clean;                /* the last run stopped cleanly */
    sqlite3_stmt *ins, *prune, *evict;
    /* Loop thread only. */
    uv_async_t async;
    int async_on, closed;
    dlg_store_done_cb done;
    void *ud;
    uint64_t next_ticket;
    /* Shared with the writer: everything below under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int thread_on;
    qitem *q;                     /* waiting for the writer */
    size_t q_n, q_cap, q_bytes;
    qitem *spare;                 /* the array the writer hands back */
    size_t spare_cap;
    int stop;
    const dlg_store_seq *final;   /* valid while close waits for the join */
    size_t n_final;
    int final_lost;
    char final_err[256];
    result *res;
    size_t res_n, res_cap;
    int any_failed;
    dlg_store_stats stats;
};

/* Version 1, as the first release wrote it; migrate() brings a new file
 * and an old one alike to SCHEMA_VERSION, so both take the same path. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('version', 1), ('clean', 1);"
    "CREATE TABLE IF NOT EXISTS rooms(room TEXT PRIMARY KEY, epoch INTEGER NOT NULL,"
    " seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(room TEXT NOT NULL, seq INTEGER NOT NULL,"
    " event TEXT NOT NULL, ts_ms INTEGER NOT NULL, epoch INTEGER NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY(room, seq)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS events_by_type ON events(room, event, seq);"
    "CREATE TABLE IF NOT EXISTS evicted(room TEXT NOT NULL, event TEXT NOT NULL,"
    " seq INTEGER NOT NULL, PRIMARY KEY(room, event)) WITHOUT ROWID;";

/* sqlite's message, with the OS error when there is one (EFBIG, ENOSPC). */
static void db_err(sqlite3 *db, char *out, size_t len) {
    int sys = sqlite3_system_errno(db);
    if (sys)
        snprintf(out, len, "%s (%s)", sqlite3_errmsg(db), strerror(sys));
    else
        snprintf(out, len, "%s", sqlite3_errmsg(db));
}

static int is_corrupt(int rc) {
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static int exec(sqlite3 *db, const char *sql) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int64_t meta_get(sqlite3 *db, const char *key, int64_t dflt) {
    sqlite3_stmt *st = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int meta_set(sqlite3 *db, const char *key, int64_t v) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?, ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, v);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    return rc;
}

/* dlg_crc32c(blob) in SQL, for the migration. */
static void sql_crc32c(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const void *p = sqlite3_value_blob(argv[0]);
    int n = sqlite3_value_bytes(argv[0]);
    sqlite3_result_int64(ctx, dlg_crc32c(0, p, n > 0 ? (size_t)n : 0));
}

static int has_table(sqlite3 *db, const char *name) {
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

/* Brings the schema to SCHEMA_VERSION in one transaction (a crash leaves
 * the old version whole). 1 -> 2 gives every stored event its checksum:
 * damage done before cannot be told by it, but load checks every row.
 * fresh: the file was just created (nothing to report). Returns an SQLITE_*
 * code; err set on failure. */
static int migrate(dlg_store *s, int fresh, char *err, size_t errlen) {
    int64_t v = meta_get(s->db, "version", 1);
    if (v >= SCHEMA_VERSION)
        return SQLITE_OK;
    int rc = exec(s->db, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
        rc = exec(s->db, "ALTER TABLE events ADD COLUMN crc INTEGER NOT NULL DEFAULT 0");
    if (rc == SQLITE_OK)
        rc = exec(s->db, "UPDATE events SET crc = dlg_crc32c(body)");
    int n = rc == SQLITE_OK ? sqlite3_changes(s->db) : 0;
    if (rc == SQLITE_OK)
        rc = meta_set(s->db, "version", SCHEMA_VERSION);
    if (rc == SQLITE_OK)
        rc = exec(s->db, "COMMIT");
    if (rc != SQLITE_OK) {
        char why[256];
        db_err(s->db, why, sizeof(why));
        if (!sqlite3_get_autocommit(s->db))
            exec(s->db, "ROLLBACK");
        snprintf(err, errlen, "store %s: cannot migrate the schema from version %lld to %d: %s",
                 s->path, (long long)v, SCHEMA_VERSION, why);
        return rc;
    }
    if (!fresh)
        dlg_log_info(s->log, "store %s: schema migrated from version %lld to %d: %d stored "
                     "event(s) given a checksum", s->path, (long long)v, SCHEMA_VERSION, n);
    return SQLITE_OK;
}

/* Opens and checks path. Returns an SQLITE_* code; err set on failure. */
static int try_open(dlg_store *s, char *err, size_t errlen) {
    int rc = sqlite3_open_v2(s->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 2000);
    if ((rc = sqlite3_create_function(s->db, "dlg_crc32c", 1,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_crc32c,
                                      NULL, NULL)) != SQLITE_OK)
        goto fail;
    /* Exclusive: a second daemon on the same file would reuse seqs. Set
     * before WAL so no -shm file is needed. */
    if ((rc = exec(s->db, "PRAGMA locking_mode = EXCLUSIVE")) != SQLITE_OK)
        goto fail;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
            snprintf(err, errlen, "store %s: cannot switch to WAL mode", s->path);
            sqlite3_finalize(st);
            return SQLITE_ERROR;
        }
        rc = rc == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(s->db);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        goto fail;
    if ((rc = exec(s->db, s->sync == DLG_STORE_SYNC_ACK ? "PRAGMA synchronous = FULL"
                                                         : "PRAGMA synchronous = NORMAL")) !=
            SQLITE_OK ||
        (rc = exec(s->db, "PRAGMA journal_size_limit = 16777216")) != SQLITE_OK)
        goto fail;
    /* quick_check reads every page: the db is bounded by the history
     * limits, and a bad page found now is better than one found later. */
    st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
            snprintf(err, errlen, "store %s: integrity check failed: %.160s", s->path,
                     (const char *)sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
            return SQLITE_CORRUPT;
        }
        rc = rc == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(s->db);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        goto fail;
    int fresh = !has_table(s->db, "events");
    int64_t version = meta_get(s->db, "version", 1);
    if (version > SCHEMA_VERSION) {
        /* Not damage: leave it whole for the dialogued that wrote it. */
        snprintf(err, errlen, "store %s: schema version %lld is newer than this dialogued's "
                 "(%d): refusing to open it", s->path, (long long)version, SCHEMA_VERSION);
        return SQLITE_ERROR;
    }
    if ((rc = exec(s->db, SCHEMA)) != SQLITE_OK)
        goto fail;
    if ((rc = migrate(s, fresh, err, errlen)) != SQLITE_OK)
        return rc;
    s->was_clean = meta_get(s->db, "clean", 0) != 0;
    return SQLITE_OK;
fail: {
        char why[256];
        if (s->db)
            db_err(s->db, why, sizeof(why));
        else
            snprintf(why, sizeof(why), "%s", sqlite3_errstr(rc));
        snprintf(err, errlen, "store %s: %s", s->path, why);
        return rc;
    }
}

static void close_db(dlg_store *s) {
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->prune);
    sqlite3_finalize(s->evict);
    s->ins = s->prune = s->evict = NULL;
    sqlite3_close(s->db);
    s->db = NULL;
}

/* Keeps the bad file for a post-mortem instead of deleting it. */
static int move_aside(dlg_store *s, char *to, size_t tolen) {
    snprintf(to, tolen, "%s.corrupt-%lld-%d", s->path, (long long)time(NULL), (int)getpid());
    if (rename(s->path, to) != 0)
        return -1;
    char a[4400], b[4400]; /* room for "-wal" after a full `to` */
    snprintf(a, sizeof(a), "%s-wal", s->path);
    snprintf(b, sizeof(b), "%s-wal", to);
    if (rename(a, b) != 0 && errno != ENOENT)
        unlink(a);
    snprintf(a, sizeof(a), "%s-shm", s->path);
    unlink(a);
    return 0;
}

int dlg_store_check(const char *path, char *err, size_t errlen, char *warn, size_t warnlen) {
    struct stat st;
    if (warn && warnlen)
        warn[0] = '\0';
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "store %s: %s", path, strerror(errno));
            return DLG_EIO;
        }
        /* A new store: its directory must take the file, -wal and -shm. */
        char dir[4096];
        const char *slash = strrchr(path, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else
            snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
        if (access(dir, W_OK | X_OK) != 0) {
            snprintf(err, errlen, "store %s: cannot create it in %s: %s", path, dir,
                     strerror(errno));
            return DLG_EIO;
        }
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "store %s: not a regular file", path);
        return DLG_EIO;
    }
    if (access(path, R_OK | W_OK) != 0) {
        snprintf(err, errlen, "store %s: cannot read and write it: %s", path, strerror(errno));
        return DLG_EIO;
    }
    static const char magic[16] = "SQLite format 3";
    char head[16] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "store %s: %s", path, strerror(errno));
        return DLG_EIO;
    }
    size_t n = fread(head, 1, sizeof(head), f);
    fclose(f);
    if (n > 0 && (n < sizeof(head) || memcmp(head, magic, sizeof(magic)) != 0) && warn && warnlen)
        snprintf(warn, warnlen, "store %s is not an SQLite database: a start moves it aside and "
                                "begins an empty store", path);
    return 0;
}

int dlg_store_open(const char *path, int sync, const dlg_log *log, dlg_store **out,
                   char *err, size_t errlen) {
    dlg_store *s = dlg_calloc(1, sizeof(*s));
    if (s == NULL || (s->path = dlg_strdup(path)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory opening store %s", path);
        return DLG_ENOMEM;
    }
    s->sync = sync;
    s->log = log;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = try_open(s, err, errlen);
    if (is_corrupt(rc)) {
        char moved[4200];
        close_db(s);
        if (move_aside(s, moved, sizeof(moved)) != 0) {
            snprintf(err + strlen(err), errlen - strlen(err),
                     "; cannot move it aside: %s", strerror(errno));
            goto fail;
        }
        dlg_log_error(log, "%s: moved it to %s and started a new store (kept history lost, "
                      "every room gets a new epoch)", err, moved);
        rc = try_open(s, err, errlen);
    }
    if (rc != SQLITE_OK)
        goto fail;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO events(room, seq, event, ts_ms, epoch,"
                           " body, crc) VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &s->ins, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM events WHERE room = ? AND event = ? AND seq <= ?",
                           -1, &s->prune, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT INTO evicted VALUES(?1, ?2, ?3) ON CONFLICT(room, event)"
                           " DO UPDATE SET seq = max(seq, ?3)", -1, &s->evict, NULL) != SQLITE_OK) {
        char why[256];
        db_err(s->db, why, sizeof(why));
        snprintf(err, errlen, "store %s: %s", path, why);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    close_db(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->path);
    free(s);
    return DLG_EIO;
}

/* The stored Event carries the epoch it was sent with; history must speak
 * the room's current one, so a client can resume from any event it got.
 * e is the row's checked body (changed here). */
static dlg_buf *restamp(Dialogue__V1__Event *e, uint64_t epoch) {
    e->epoch = epoch;
    size_t n = dialogue__v1__event__get_packed_size(e);
    dlg_buf *b = dlg_buf_new(n);
    if (b && dialogue__v1__event__pack(e, b->data) != n) {
        dlg_buf_unref(b);
        b = NULL;
    }
    return b;
}

/* One stored row as read, before it is trusted. The column types are taken
 * before any value is read: reading converts them. */
typedef struct row {
    int seq_type, event_type, ts_type, epoch_type, crc_type;
    int64_t raw_seq;
    uint64_t seq;                 /* 0 unless raw_seq is a positive integer */
    const char *event;            /* NULL unless a valid event name */
    uint64_t ts_ms, epoch;
    const uint8_t *body;
    size_t len;
} row;

static void read_row(sqlite3_stmt *st, row *w) {
    w->seq_type = sqlite3_column_type(st, 0);
    w->event_type = sqlite3_column_type(st, 1);
    w->ts_type = sqlite3_column_type(st, 2);
    w->epoch_type = sqlite3_column_type(st, 3);
    w->crc_type = sqlite3_column_type(st, 5);
    w->raw_seq = sqlite3_column_int64(st, 0);
    w->seq = w->seq_type == SQLITE_INTEGER && w->raw_seq > 0 ? (uint64_t)w->raw_seq : 0;
    const char *ev = (const char *)sqlite3_column_text(st, 1);
    /* A NUL inside the text would hide the rest of the name. */
    w->event = w->event_type == SQLITE_TEXT && ev &&
               strlen(ev) == (size_t)sqlite3_column_bytes(st, 1) && dlg_name_check(ev) == NULL
                   ? ev : NULL;
    w->ts_ms = (uint64_t)sqlite3_column_int64(st, 2);
    w->epoch = (uint64_t)sqlite3_column_int64(st, 3);
    w->body = sqlite3_column_blob(st, 4);
    w->len = (size_t)sqlite3_column_bytes(st, 4);
}

/* Why row w of room cannot be served, NULL when it can (*out then gets its
 * decoded body, freed by the caller). The checksum proves the body is the
 * one written; the body, which repeats room, event, seq, ts_ms and epoch,
 * proves the row's columns were not changed either. */
static const char *check_row(sqlite3_stmt *st, const row *w, const char *room,
                             Dialogue__V1__Event **out) {
    if (w->seq == 0)
        return "seq is not a positive integer";
    if (w->event == NULL)
        return "the event name is not valid";
    if (w->len == 0)
        return "empty body (an encoded Event is never empty)";
    if (w->crc_type != SQLITE_INTEGER ||
        (uint64_t)sqlite3_column_int64(st, 5) != dlg_crc32c(0, w->body, w->len))
        return "checksum mismatch";
    if (w->ts_type != SQLITE_INTEGER || w->epoch_type != SQLITE_INTEGER)
        return "ts_ms or epoch is not an integer";
    Dialogue__V1__Event *e = dialogue__v1__event__unpack(NULL, w->len, w->body);
    if (e == NULL)
        return "the body does not decode as an Event";
    if (e->room == NULL || e->event == NULL || strcmp(e->room, room) != 0 ||
        strcmp(e->event, w->event) != 0 || e->seq != w->seq || e->ts_ms != w->ts_ms ||
        e->epoch != w->epoch) {
        dialogue__v1__event__free_unpacked(e, NULL);
        return "the body disagrees with its row (room, event, seq, ts_ms or epoch)";
    }
    *out = e;
    return NULL;
}

/* Column col of the current row, printable in a log line whatever it holds
 * (an integer as is, anything else quoted with odd bytes escaped). */
static const char *show(sqlite3_stmt *st, int col, int type, char *out, size_t len) {
    if (type == SQLITE_INTEGER) {
        snprintf(out, len, "%lld", (long long)sqlite3_column_int64(st, col));
        return out;
    }
    if (type == SQLITE_NULL) {
        snprintf(out, len, "NULL");
        return out;
    }
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0, k = 0, i = 0;
    out[k++] = '"';
    for (; i < n && k + 8 < len; i++) {
        if (t[i] >= 0x20 && t[i] < 0x7f && t[i] != '"' && t[i] != '\\')
            out[k++] = (char)t[i];
        else
            k += (size_t)snprintf(out + k, len - k, "\\x%02x", t[i]);
    }
    snprintf(out + k, len - k, "%s\"", i < n ? "..." : "");
    return out;
}

int dlg_store_load_room(dlg_store *s, const char *room, dlg_hroom *hr, uint64_t now_ms,
                        uint64_t *epoch, uint64_t *seq, char *err, size_t errlen) {
    sqlite3 *db = s->db;
    sqlite3_stmt *st = NULL;
    uint64_t ep = 0, sq = 0;
    size_t n = 0, bad = 0, unplaced = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT epoch, seq FROM rooms WHERE room = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ep = (uint64_t)sqlite3_column_int64(st, 0);
        sq = (uint64_t)sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* After a crash the last events may have reached clients and not the
     * disk: only a new epoch tells those clients so. */
    if (ep == 0 || !s->was_clean)
        ep = dlg_random_epoch();
    rc = sqlite3_prepare_v2(db, "SELECT seq, event, ts_ms, epoch, body, crc FROM events"
                            " WHERE room = ? ORDER BY seq", -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row w;
        read_row(st, &w);
        /* Damaged or not, a seq was used: the room must not give it again. */
        if (w.seq > sq)
            sq = w.seq;
        Dialogue__V1__Event *e = NULL;
        const char *why = check_row(st, &w, room, &e);
        if (why) {
            /* Never served, never silently dropped: the event's place
             * becomes a gap that answers complete=false. */
            bad++;
            char a[96], b[96];
            const char *gap;
            if (w.seq && w.event) {
                gap = "a request covering it gets complete=false";
                if (dlg_hroom_note_damaged(hr, w.event, w.seq, w.ts_ms, now_ms) != 0)
                    goto nomem;
            } else if (w.seq) {
                gap = "its event type is unknown: a request of any type reaching back to "
                      "this seq gets complete=false";
                if (dlg_hroom_note_damaged(hr, NULL, w.seq, w.ts_ms, now_ms) != 0)
                    goto nomem;
            } else {
                gap = "its place is unknown: a request reaching back to the room's seq at "
                      "this start gets complete=false";
                unplaced++;
            }
            if (bad <= BAD_ROWS_LOGGED)
                dlg_log_error(s->log, "store %s: room %s: stored event seq %s (event %s) is "
                              "damaged: %s; not served: %s", s->path, room,
                              show(st, 0, w.seq_type, a, sizeof(a)),
                              show(st, 1, w.event_type, b, sizeof(b)), why, gap);
            continue;
        }
        dlg_buf *buf = NULL;
        if (w.epoch != ep) {
            buf = restamp(e, ep);
        } else if ((buf = dlg_buf_new(w.len)) != NULL) {
            memcpy(buf->data, w.body, w.len);
        }
        dialogue__v1__event__free_unpacked(e, NULL);
        if (buf == NULL)
            goto nomem;
        int kept = dlg_hroom_append(hr, w.event, w.seq, w.ts_ms, buf, 0, (uint32_t)buf->len,
                                    now_ms, NULL);
        dlg_buf_unref(buf);
        if (kept < 0)
            goto nomem;
        n += kept == 1;
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    st = NULL;
    if (unplaced && dlg_hroom_note_damaged(hr, NULL, sq, 0, now_ms) != 0)
        goto nomem;
    rc = sqlite3_prepare_v2(db, "SELECT event, seq FROM evicted WHERE room = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        dlg_hroom_note_evicted(hr, (const char *)sqlite3_column_text(st, 0),
                               (uint64_t)sqlite3_column_int64(st, 1));
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    st = NULL;
    rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO rooms VALUES(?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)ep);
    sqlite3_bind_int64(st, 3, (int64_t)sq);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    if (bad) {
        char where[128] = "";
        if (unplaced)
            snprintf(where, sizeof(where), "; %zu of no known place: every request reaching "
                     "back to seq %llu does", unplaced, (unsigned long long)sq);
        dlg_log_error(s->log, "store %s: room %s: %zu damaged stored event(s)%s, not served: "
                      "requests covering them get complete=false%s", s->path, room, bad,
                      bad > BAD_ROWS_LOGGED ? " (the first ones listed above)" : "", where);
    }
    dlg_log_info(s->log, "store %s: room %s: %zu event(s) loaded, seq %llu, epoch %llu (%s)",
                 s->path, room, n, (unsigned long long)sq, (unsigned long long)ep,
                 s->was_clean ? "clean stop" : "new epoch: new store or unclean stop");
    *epoch = ep;
    *seq = sq;
    return 0;
nomem:
    sqlite3_finalize(st);
    snprintf(err, errlen, "store %s: room %s: out of memory loading history", s->path, room);
    return DLG_ENOMEM;
fail: {
        char why[256];
        db_err(db, why, sizeof(why));
        sqlite3_finalize(st);
        snprintf(err, errlen, "store %s: room %s: cannot load history: %s", s->path, room, why);
        return DLG_EIO;
    }
}

/* ---- the writer ------------------------------------------------------- */

static int step_reset(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One transaction: the events, then one prune per type that dropped some.
 * Returns an SQLITE_* code. */
static int write_batch(dlg_store *s, const qitem *v, size_t n) {
    int rc = exec(s->db, "BEGIN");
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        const dlg_store_item *it = &v[i].it;
        sqlite3_bind_text(s->ins, 1, it->room, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins, 2, (int64_t)it->seq);
        sqlite3_bind_text(s->ins, 3, it->event, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins, 4, (int64_t)it->ts_ms);
        sqlite3_bind_int64(s->ins, 5, (int64_t)it->epoch);
        sqlite3_bind_blob(s->ins, 6, it->buf->data + it->off, (int)it->len, SQLITE_STATIC);
        /* Taken here, off the loop thread, from the very bytes written. */
        sqlite3_bind_int64(s->ins, 7, dlg_crc32c(0, it->buf->data + it->off, it->len));
        rc = step_reset(s->ins);
    }
    /* The newest item of a type carries the ring's highest drop: prune
     * there once. Names are the history's own pointers, so == compares. */
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        const dlg_store_item *it = &v[i].it;
        if (it->evicted_max == 0)
            continue;
        int newer = 0;
        for (size_t k = i + 1; k < n && !newer; k++)
            newer = v[k].it.room == it->room && v[k].it.event == it->event;
        if (newer)
            continue;
        sqlite3_bind_text(s->prune, 1, it->room, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->prune, 2, it->event, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->prune, 3, (int64_t)it->evicted_max);
        if ((rc = step_reset(s->prune)) != SQLITE_OK)
            break;
        sqlite3_bind_text(s->evict, 1, it->room, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->evict, 2, it->event, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->evict, 3, (int64_t)it->evicted_max);
        rc = step_reset(s->evict);
    }
    if (rc == SQLITE_OK)
        rc = exec(s->db, "COMMIT");
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
        exec(s->db, "ROLLBACK");
    return rc;
}

/* The last transaction: final seqs, and the clean mark when nothing was
 * lost, so the next start may keep the epochs. */
static int write_final(dlg_store *s) {
    sqlite3_stmt *st = NULL;
    int rc = exec(s->db, "BEGIN");
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, "UPDATE rooms SET seq = max(seq, ?) WHERE room = ?", -1,
                                &st, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < s->n_final; i++) {
        sqlite3_bind_int64(st, 1, (int64_t)s->final[i].seq);
        sqlite3_bind_text(st, 2, s->final[i].room, -1, SQLITE_STATIC);
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && !s->final_lost && !s->any_failed)
        rc = meta_set(s->db, "clean", 1);
    if (rc == SQLITE_OK)
        rc = exec(s->db, "COMMIT");
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
        exec(s->db, "ROLLBACK");
    return rc;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int push_result(dlg_store *s, const result *r) {
    if (DLG_GROW(s->res, s->res_cap, s->res_n + 1) != 0)
        return -1;
    s->res[s->res_n++] = *r;
    return 0;
}

static void *writer_main(void *arg) {
    dlg_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->q_n == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->q_n == 0)
            break; /* stopping, and everything is written */
        /* Take the whole queue: what piled up during the last commit goes in
         * one transaction (group commit), and the loop gets an empty array. */
        qitem *batch = s->q;
        size_t n = s->q_n, cap = s->q_cap;
        s->q = s->spare;
        s->q_cap = s->spare_cap;
        s->spare = NULL;
        s->spare_cap = 0;
        s->q_n = 0;
        s->q_bytes = 0;
        pthread_mutex_unlock(&s->mu);

        uint64_t t0 = mono_ns();
        int rc = write_batch(s, batch, n);
        uint64_t dt = mono_ns() - t0;
        result r = {.last = batch[n - 1].ticket, .n = n, .rc = rc};
        if (rc != SQLITE_OK)
            db_err(s->db, r.err, sizeof(r.err));
        for (size_t i = 0; i < n; i++)
            dlg_buf_unref(batch[i].it.buf);

        pthread_mutex_lock(&s->mu);
        if (rc == SQLITE_OK) {
            s->stats.written += n;
            s->stats.batches++;
            s->stats.commit_ns += dt;
        } else {
            s->stats.failed += n;
            s->stats.errors++;
            s->any_failed = 1;
        }
        if (push_result(s, &r) != 0)
            s->any_failed = 1; /* the Acks of this batch are never sent */
        if (s->spare == NULL) {
            s->spare = batch;
            s->spare_cap = cap;
        } else {
            free(batch);
        }
        pthread_mutex_unlock(&s->mu);
        uv_async_send(&s->async);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    /* Nothing else touches the db until the join. */
    if (write_final(s) != SQLITE_OK)
        db_err(s->db, s->final_err, sizeof(s->final_err));
    return NULL;
}

/* Hands finished batches to the history, in order (loop thread). */
static void drain_results(dlg_store *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->res_n == 0) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        result r = s->res[0];
        memmove(s->res, s->res + 1, (s->res_n - 1) * sizeof(*s->res));
        s->res_n--;
        pthread_mutex_unlock(&s->mu);
        dlg_store_result out = {.last = r.last, .n = r.n,
                                .rc = r.rc == SQLITE_OK ? 0
                                      : (r.rc & 0xff) == SQLITE_FULL ? DLG_EFULL : DLG_EIO,
                                .err = r.err};
        if (s->done)
            s->done(s->ud, &out);
    }
}

static void on_async(uv_async_t *a) {
    drain_results(a->data);
}

int dlg_store_start(dlg_store *s, uv_loop_t *loop, dlg_store_done_cb done, void *ud,
                    char *err, size_t errlen) {
    /* Until close says otherwise, this run may lose what it delivered. */
    int rc = meta_set(s->db, "clean", 0);
    if (rc != SQLITE_OK) {
        char why[256];
        db_err(s->db, why, sizeof(why));
        snprintf(err, errlen, "store %s: cannot mark the run started: %s", s->path, why);
        return DLG_EIO;
    }
    s->done = done;
    s->ud = ud;
    if (uv_async_init(loop, &s->async, on_async) != 0) {
        snprintf(err, errlen, "store %s: cannot create the loop handle", s->path);
        return DLG_EINTERNAL;
    }
    s->async.data = s;
    s->async_on = 1;
    if ((rc = pthread_create(&s->thread, NULL, writer_main, s)) != 0) {
        snprintf(err, errlen, "store %s: cannot start the writer thread: %s", s->path,
                 strerror(rc));
        uv_close((uv_handle_t *)&s->async, NULL);
        s->async_on = 0;
        return DLG_EINTERNAL;
    }
    s->thread_on = 1;
    return 0;
}

uint64_t dlg_store_put(dlg_store *s, const dlg_store_item *it) {
    uint64_t t = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->thread_on || s->stop || s->q_n >= QUEUE_MAX_ITEMS ||
        s->q_bytes + it->len > QUEUE_MAX_BYTES)
        goto refuse;
    if (DLG_GROW(s->q, s->q_cap, s->q_n + 1) != 0)
        goto refuse;
    t = ++s->next_ticket;
    s->q[s->q_n].it = *it;
    s->q[s->q_n].it.buf = dlg_buf_ref(it->buf);
    s->q[s->q_n].ticket = t;
    s->q_n++;
    s->q_bytes += it->len;
    s->stats.queued++;
    /* Only the first item wakes the writer; later ones join its batch. */
    if (s->q_n == 1)
        pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return t;
refuse:
    s->stats.dropped++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void dlg_store_close(dlg_store *s, const dlg_store_seq *seqs, size_t n, int lost) {
    if (s == NULL || s->closed)
        return;
    s->closed = 1;
    if (s->thread_on) {
        pthread_mutex_lock(&s->mu);
        s->final = seqs;
        s->n_final = n;
        s->final_lost = lost;
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->thread_on = 0;
        s->final = NULL;
        if (s->final_err[0])
            dlg_log_error(s->log, "store %s: cannot record the clean stop: %s (the next start "
                          "gives every room a new epoch)", s->path, s->final_err);
    }
    drain_results(s);
    if (s->async_on) {
        uv_close((uv_handle_t *)&s->async, NULL);
        s->async_on = 0;
    }
    close_db(s);
}

void dlg_store_free(dlg_store *s) {
    if (s == NULL)
        return;
    if (s->thread_on) {
        /* Never closed (the loop may be gone): stop the thread, not clean. */
        pthread_mutex_lock(&s->mu);
        s->final_lost = 1;
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->thread_on = 0;
    }
    close_db(s);
    for (size_t i = 0; i < s->q_n; i++)
        dlg_buf_unref(s->q[i].it.buf);
    free(s->q);
    free(s->spare);
    free(s->res);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->path);
    free(s);
}

void dlg_store_get_stats(dlg_store *s, dlg_store_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

const char *dlg_store_path(const dlg_store *s) {
    return s->path;
}
