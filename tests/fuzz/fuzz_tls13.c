/* fuzz_tls13.c: libFuzzer harness for dialogue's own TLS 1.3 record layer:
 * dlg_tls13 (seal, open, key update) and dlg_tlsio's path after the
 * handover (lean_read, lean_handshake, lean_seal, lean_fail, lean_consume),
 * reached through dlg_tlsio_read/_write/_shutdown with t.rl set. There is
 * no handshake: the session starts from fixed traffic secrets, and a second
 * dlg_tls13 with the secrets swapped plays the peer (t is the server or,
 * with t.client set, the client).
 *
 * Input: [suite (mod 3) and role (/3 mod 2) selector] then a program of
 * ops, each an op byte (mod OP_COUNT) and its arguments (see `enum op`):
 * the peer seals records (any inner type, KeyUpdates, NewSessionTickets,
 * alerts, big ones), forges, replays, drops or corrupts some, the bytes
 * reach t in fuzz-sized pieces, and t is read, written, shut down and
 * compacted, its output opened by the peer.
 *
 * The harness models what t must do with every record it is sent (RFC 8446
 * 4.6, 5 and 6 plus dlg_tlsio's documented choices), so beyond "no crash,
 * no leak" it checks: read never returns more than cap; the bytes read are
 * the peer's application data, in order, never more than the complete
 * records before the first record that must end the stream, and all of
 * those before the error; a read that stops short has consumed every
 * complete record; a close_notify gives DLG_ECLOSED and a bad record
 * DLG_ETLS, and then every later read gives the same code; every record t
 * writes opens with the peer (KeyUpdates kept in step), carries exactly the
 * bytes dlg_tlsio_write accepted, and nothing follows t's alert; t answers
 * KeyUpdate requests, never more often than they came and with at most one
 * answer waiting in its output at any time (RFC 8446 4.6.3: one answers all
 * that came while it waited); a run of more than DLG_TLSIO_MAX_QUIET_RECORDS
 * records without application data ends the stream with
 * unexpected_message; and t's fatal alert is the expected one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_tls13.h"
#include "dlg_tlsio.h"
#include "fuzz_util.h"

/* Bounds that keep one input cheap; ops that would pass them are skipped. */
#define WIRE_MAX (256u * 1024)
#define WROTE_MAX (256u * 1024)
#define READ_LOOPS 64

enum op {
    OP_SEAL_APP,    /* len8, data: one application data record */
    OP_SEAL_TYPED,  /* sel8 [type8], len8, data: any inner content type */
    OP_SEAL_KU,     /* x8: KeyUpdate {24,0,0,1,request} */
    OP_SEAL_ALERT,  /* level8, desc8 */
    OP_SEAL_BIG,    /* len16, seed8: up to DLG_TLS13_MAX_PLAIN of app data */
    OP_FORGE,       /* sel8 [type8], len16, body: a record made by hand */
    OP_FLIP,        /* pos16, xor8: corrupts one byte not yet fed */
    OP_FEED,        /* n8 (0 = all): the next n bytes of the stream into t */
    OP_READ,        /* cap8: dlg_tlsio_read until it returns <= 0 */
    OP_WRITE,       /* len8, data */
    OP_WRITE_BIG,   /* len16, seed8: several records at once */
    OP_SHUTDOWN,
    OP_TAKE,        /* cap8 (0 = all): t's output to the peer */
    OP_COMPACT,
    OP_DROP,        /* len8, data: sealed by the peer but never sent */
    OP_REPLAY,      /* idx8: a copy of an earlier record of the stream */
    OP_SEAL_HS,     /* k8, k x (sel8 [type8] [len8] blen8 body): handshake messages */
    OP_COUNT
};

/* What t must make of a record of the stream. The "good" kinds (app data,
 * KeyUpdate, records t ignores: user_canceled, a client's
 * NewSessionTickets) let the stream go on; the first record of any other
 * kind ends it, and nothing after it matters. */
enum kind { K_APP, K_KU, K_NOOP, K_CLOSE, K_BAD, K_FUZZY };
static const char *const kind_name[] = {"app", "KeyUpdate", "ignored",
                                        "close_notify", "bad", "fuzzy"};

/* K_BAD for a peer's fatal alert: t fails but sends no alert back. */
#define NO_ALERT 0

typedef struct rec {
    size_t start, end; /* its bytes in the stream */
    size_t need;       /* t must act on it once [0, need) is fed */
    size_t cum;        /* app bytes of the records up to and including it */
    uint8_t kind;
    uint8_t alert; /* K_BAD: the alert t sends (NO_ALERT: none) */
    uint8_t req;   /* K_KU: update_requested */
    /* The verdict on its bytes as sent, back when flips cancel out. */
    uint8_t kind0, alert0;
    size_t need0;
} rec;

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

typedef struct state {
    dlg_tlsio t;
    struct dlg_tls13 *peer;
    bytes wire;   /* everything sent to t; [0, fed) is fed */
    bytes orig;   /* wire as appended, before OP_FLIP */
    size_t fed;
    rec *recs;    /* the records of wire, in order */
    size_t nrec, rec_cap;
    bytes exp;    /* app data of the peer's K_APP records, in order */
    size_t rpos;  /* bytes of exp t has returned */
    int desync;   /* a record was dropped: t can open no later one */
    int read_err; /* the error read returned (then always the same), or 0 */
    bytes wrote;  /* bytes dlg_tlsio_write accepted */
    size_t wrote_sealed; /* what t's records of them take on the wire */
    size_t taken;        /* bytes of t's output taken so far */
    size_t opos;  /* of wrote, bytes the peer has opened */
    size_t quiet; /* the model's run of records without app data */
    bytes tout;   /* t's output taken, not yet a whole record */
    size_t ku_req;  /* KeyUpdate requests the peer sent */
    size_t ku_sent; /* KeyUpdates t sent */
    int t_alert;    /* t sent an alert: nothing may follow */
    int t_fatal;    /* t's fatal alert description, or -1 */
    int shut;       /* dlg_tlsio_shutdown was called */
    int want_close; /* ... while t could still write: a close_notify is due */
    int close_seen;
} state;

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t rbuf[65536];
static uint8_t big[65536];

static uint8_t in_u8(input *in) {
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static size_t in_u16(input *in) {
    size_t hi = in_u8(in);
    return hi << 8 | in_u8(in);
}

/* Up to len bytes of input (fewer when it runs out); *got says how many. */
static const uint8_t *in_take(input *in, size_t len, size_t *got) {
    const uint8_t *p = in->p;
    *got = len < in->n ? len : in->n;
    in->p += *got;
    in->n -= *got;
    return p;
}

/* Room for n more bytes; always allocates, so b->p is never NULL after. */
static uint8_t *reserve(bytes *b, size_t n) {
    if (b->p == NULL || b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        FUZZ_CHECK(p != NULL, "out of memory for %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void append(bytes *b, const void *data, size_t n) {
    if (n > 0)
        memcpy(reserve(b, n), data, n);
    b->len += n;
}

static void fill(uint8_t *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static void push_rec(state *s, size_t start, size_t need, uint8_t kind, uint8_t alert,
                     uint8_t req, size_t app_len) {
    if (s->nrec == s->rec_cap) {
        size_t cap = s->rec_cap ? s->rec_cap * 2 : 32;
        rec *r = realloc(s->recs, cap * sizeof(*r));
        FUZZ_CHECK(r != NULL, "out of memory for %zu records", cap);
        s->recs = r;
        s->rec_cap = cap;
    }
    size_t prev = s->nrec ? s->recs[s->nrec - 1].cum : 0;
    s->recs[s->nrec++] = (rec){.start = start, .end = s->wire.len, .need = need,
                               .cum = prev + app_len, .kind = kind, .alert = alert,
                               .req = req, .kind0 = kind, .alert0 = alert, .need0 = need};
    append(&s->orig, s->wire.p + start, s->wire.len - start);
}

/* A record whose AEAD tag nobody computed (forged, replayed, corrupted
 * outside its length): what lean_read and dlg_tls13_open refuse it with,
 * in their order. t may have to act after its header alone. */
static uint8_t forged_alert(const uint8_t *hdr, size_t start, size_t *need) {
    size_t body = (size_t)hdr[3] << 8 | hdr[4];
    *need = start + DLG_TLS13_HDR + body;
    if (body > DLG_TLS13_MAX_CIPHER) {
        *need = start + DLG_TLS13_HDR;
        return 22;
    }
    if (hdr[0] != DLG_TLS13_APPDATA)
        return 10;
    if (body < 1 + DLG_TLS13_TAG)
        return 50;
    return 20;
}

/* The first record that ends the stream (nrec if none), and the app bytes
 * of the records before it that are fed whole (*cum_fed). */
static size_t first_end(const state *s, size_t *cum_fed) {
    size_t g = 0;
    *cum_fed = 0;
    while (g < s->nrec && s->recs[g].kind <= K_NOOP) {
        if (s->recs[g].end <= s->fed)
            *cum_fed = s->recs[g].cum;
        g++;
    }
    return g;
}

/* A handshake record's messages as dlg_tlsio must take them after the
 * handshake (RFC 8446 4.6): a KeyUpdate, last in its record (5.1); a
 * client also gets NewSessionTickets and ignores them; anything else, or
 * a message that does not fit the record, is fatal. */
static uint8_t hs_model(const uint8_t *m, size_t len, int client, uint8_t *alert,
                        uint8_t *req) {
    if (len == 0) { /* RFC 8446 5.1: never empty */
        *alert = 10;
        return K_BAD;
    }
    while (len > 0) {
        if (len < 4) {
            *alert = 50;
            return K_BAD;
        }
        size_t n = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
        if (n > len - 4) {
            *alert = 10;
            return K_BAD;
        }
        if (m[0] == 4 && client) {
            m += 4 + n;
            len -= 4 + n;
            continue;
        }
        if (m[0] != 24 || n != 1 || len != 5) {
            *alert = 10;
            return K_BAD;
        }
        if (m[4] > 1) {
            *alert = 47;
            return K_BAD;
        }
        *req = m[4];
        return K_KU;
    }
    return K_NOOP;
}

/* The peer seals (type, data) and, unless drop, sends it. The model reads
 * the content as the receiver must (RFC 8446 5.4: the inner type is the
 * last non-zero byte), so a type-0 record is judged by what it turns into. */
static void peer_seal(state *s, uint8_t type, const uint8_t *data, size_t len, int drop) {
    size_t sl = dlg_tls13_sealed_len(len);
    if (s->wire.len + sl > WIRE_MAX)
        return;
    size_t start = s->wire.len;
    uint8_t *dst = reserve(&s->wire, sl);
    int rc = dlg_tls13_seal(s->peer, type, data, len, dst);
    FUZZ_CHECK(rc == 0, "peer seal of %zu bytes: %s", len, dlg_err_name(rc));

    uint8_t itype = type;
    size_t plen = len;
    if (type == 0) {
        while (plen > 0 && data[plen - 1] == 0)
            plen--;
        itype = plen > 0 ? data[plen - 1] : 0;
        plen = plen > 0 ? plen - 1 : 0;
    }
    uint8_t kind = K_BAD, alert = 10, req = 0;
    /* Records that carry no app data and let the stream go on; the one
     * past the cap ends it, whatever it holds (handshake records are
     * counted before their messages are judged). */
    int quiet = 0;
    if (len > DLG_TLS13_MAX_PLAIN) {
        alert = 22; /* inner plaintext over 2^14 + 1 (never: seal refuses) */
    } else if (itype == 0) {
        alert = 10; /* all zeros: no content type */
    } else if (itype == DLG_TLS13_APPDATA) {
        kind = K_APP;
        quiet = plen == 0;
    } else if (itype == DLG_TLS13_ALERT) {
        if (plen != 2) {
            alert = 50;
        } else if (data[1] == 0) {
            kind = K_CLOSE;
        } else if (data[1] == 90) {
            kind = K_NOOP;
            quiet = 1;
        } else {
            alert = NO_ALERT;
        }
    } else if (itype == DLG_TLS13_HANDSHAKE) {
        quiet = 1;
        kind = hs_model(data, plen, s->t.client, &alert, &req);
        if (kind == K_KU) { /* the peer's later records go under its next key */
            rc = dlg_tls13_update_write(s->peer);
            FUZZ_CHECK(rc == 0, "peer update_write: %s", dlg_err_name(rc));
        }
    }
    if (!drop && !s->desync) {
        if (kind == K_APP && plen > 0)
            s->quiet = 0;
        else if (quiet && ++s->quiet > DLG_TLSIO_MAX_QUIET_RECORDS) {
            kind = K_BAD;
            alert = 10;
            req = 0;
        }
    }
    if (drop) {
        s->desync = 1;
        return;
    }
    s->wire.len += sl;
    if (s->desync) { /* t is a sequence number (or a key) behind */
        kind = K_BAD;
        alert = 20;
    }
    if (kind == K_KU && req)
        s->ku_req++;
    if (kind == K_APP)
        append(&s->exp, data, plen);
    push_rec(s, start, s->wire.len, kind, alert, req, kind == K_APP ? plen : 0);
}

static void check_rec_state(const state *s) {
    const dlg_tlsio *t = &s->t;
    if (t->rec_len > 0)
        FUZZ_CHECK(t->rec_pos <= t->rec_end && t->rec_end <= t->rec_len,
                   "opened record: pos %u end %u len %u", t->rec_pos, t->rec_end, t->rec_len);
}

/* One dlg_tlsio_read with cap: its result against the model. */
static int do_read(state *s, size_t cap) {
    int n = dlg_tlsio_read(&s->t, rbuf, cap);
    check_rec_state(s);
    if (s->read_err != 0) {
        FUZZ_CHECK(n == s->read_err, "read returned %d after %s", n,
                   dlg_err_name(s->read_err));
        return n;
    }
    FUZZ_CHECK(n <= (int)cap, "read returned %d with cap %zu", n, cap);
    size_t cum_fed;
    size_t g = first_end(s, &cum_fed);
    const rec *end = g < s->nrec ? &s->recs[g] : NULL;
    if (n > 0) {
        FUZZ_CHECK(s->rpos + (size_t)n <= cum_fed,
                   "read %d bytes at %zu; the complete good records hold %zu", n, s->rpos,
                   cum_fed);
        FUZZ_CHECK(memcmp(rbuf, s->exp.p + s->rpos, (size_t)n) == 0,
                   "%d bytes read at %zu differ from what the peer sealed", n, s->rpos);
        s->rpos += (size_t)n;
    }
    /* Stopping short means no complete record is left unread. */
    if (n >= 0 && (size_t)n < cap)
        FUZZ_CHECK(s->rpos == cum_fed, "read returned %d (cap %zu) with %zu of %zu bytes read",
                   n, cap, s->rpos, cum_fed);
    if (n == 0 && end != NULL)
        FUZZ_CHECK(end->kind == K_FUZZY || end->need > s->fed,
                   "read returned 0 with a %s record (#%zu) fed whole", kind_name[end->kind], g);
    if (n < 0) {
        FUZZ_CHECK(n == DLG_ETLS || n == DLG_ECLOSED, "read returned %s", dlg_err_name(n));
        FUZZ_CHECK(end != NULL, "read returned %s on a clean stream (why: %s)",
                   dlg_err_name(n), dlg_tlsio_why(&s->t) ? dlg_tlsio_why(&s->t) : "-");
        if (n == DLG_ECLOSED) {
            FUZZ_CHECK(end->kind == K_CLOSE && end->need <= s->fed,
                       "ECLOSED at a %s record (#%zu)", kind_name[end->kind], g);
            FUZZ_CHECK(s->rpos == cum_fed, "ECLOSED with %zu of %zu bytes read", s->rpos,
                       cum_fed);
        } else {
            FUZZ_CHECK((end->kind == K_BAD && end->need <= s->fed) ||
                           (end->kind == K_FUZZY && end->start < s->fed),
                       "ETLS at a %s record (#%zu, why: %s)", kind_name[end->kind], g,
                       dlg_tlsio_why(&s->t) ? dlg_tlsio_why(&s->t) : "-");
            FUZZ_CHECK(dlg_tlsio_why(&s->t) != NULL, "ETLS without a reason");
            /* Data before the bad record came out first. */
            FUZZ_CHECK(s->rpos == cum_fed, "ETLS with %zu of %zu bytes read", s->rpos, cum_fed);
            FUZZ_CHECK(s->t.failed, "ETLS but the session is not marked failed");
        }
        s->read_err = n;
    }
    return n;
}

/* The peer opens the whole records t has written so far. */
static void peer_open(state *s) {
    static const uint8_t ku0[5] = {24, 0, 0, 1, 0};
    size_t pos = 0;
    while (s->tout.len - pos >= DLG_TLS13_HDR) {
        uint8_t *h = s->tout.p + pos;
        size_t body = (size_t)h[3] << 8 | h[4];
        FUZZ_CHECK(h[0] == DLG_TLS13_APPDATA && h[1] == 3 && h[2] == 3,
                   "t wrote a header %02x %02x %02x", h[0], h[1], h[2]);
        FUZZ_CHECK(body >= 1 + DLG_TLS13_TAG && body <= DLG_TLS13_MAX_PLAIN + 1 + DLG_TLS13_TAG,
                   "t wrote a record of %zu bytes", body);
        if (s->tout.len - pos < DLG_TLS13_HDR + body)
            break;
        FUZZ_CHECK(!s->t_alert, "t wrote a record after its alert");
        size_t off, plen;
        uint8_t type, alert;
        int rc = dlg_tls13_open(s->peer, h, DLG_TLS13_HDR + body, &off, &plen, &type, &alert);
        FUZZ_CHECK(rc == 0, "a record t wrote does not open: %s, alert %u", dlg_err_name(rc),
                   alert);
        FUZZ_CHECK(plen + 1 + DLG_TLS13_TAG == body, "t padded a record (%zu of %zu)", plen,
                   body);
        const uint8_t *m = h + off;
        if (type == DLG_TLS13_APPDATA) {
            FUZZ_CHECK(plen > 0, "t wrote an empty app data record");
            FUZZ_CHECK(s->opos + plen <= s->wrote.len &&
                           memcmp(m, s->wrote.p + s->opos, plen) == 0,
                       "t's app data at %zu (%zu bytes) is not what was written", s->opos,
                       plen);
            s->opos += plen;
        } else if (type == DLG_TLS13_HANDSHAKE) {
            FUZZ_CHECK(plen == 5 && memcmp(m, ku0, 5) == 0,
                       "t wrote a handshake message of %zu bytes, not KeyUpdate(0)", plen);
            s->ku_sent++;
            FUZZ_CHECK(s->ku_sent <= s->ku_req, "t sent %zu KeyUpdates for %zu requests",
                       s->ku_sent, s->ku_req);
            rc = dlg_tls13_update_read(s->peer);
            FUZZ_CHECK(rc == 0, "peer update_read: %s", dlg_err_name(rc));
        } else if (type == DLG_TLS13_ALERT) {
            FUZZ_CHECK(plen == 2, "t wrote an alert of %zu bytes", plen);
            s->t_alert = 1;
            if (m[0] == 1 && m[1] == 0) {
                FUZZ_CHECK(s->want_close, "t sent close_notify unasked");
                s->close_seen = 1;
            } else {
                FUZZ_CHECK(m[0] == 2 && m[1] != 0, "t sent alert %u/%u", m[0], m[1]);
                FUZZ_CHECK(s->t.failed, "t sent fatal alert %u but is not failed", m[1]);
                s->t_fatal = m[1];
                size_t cum_fed;
                size_t g = first_end(s, &cum_fed);
                FUZZ_CHECK(g < s->nrec && s->recs[g].kind >= K_BAD,
                           "t sent fatal alert %u on a stream that should go on", m[1]);
                if (s->recs[g].kind == K_BAD)
                    FUZZ_CHECK(m[1] == s->recs[g].alert,
                               "t sent fatal alert %u for record #%zu, expected %u (why: %s)",
                               m[1], g, s->recs[g].alert, dlg_tlsio_why(&s->t));
            }
        } else {
            FUZZ_CHECK(0, "t wrote a record of inner type %u", type);
        }
        pos += DLG_TLS13_HDR + body;
    }
    memmove(s->tout.p, s->tout.p + pos, s->tout.len - pos);
    s->tout.len -= pos;
}

/* What t has put in its output beyond the records of what it was asked
 * to write: KeyUpdate answers and one alert. Every answer but one must have
 * been taken whole (opened by the peer): one waiting answer serves every
 * request that comes meanwhile. */
static void check_answers(const state *s) {
    size_t made = s->taken + dlg_tlsio_out_pending(&s->t);
    FUZZ_CHECK(made >= s->wrote_sealed, "t made %zu bytes for %zu of records written", made,
               s->wrote_sealed);
    size_t extra = made - s->wrote_sealed;
    size_t most = (s->ku_sent + 1) * dlg_tls13_sealed_len(5) + dlg_tls13_sealed_len(2);
    FUZZ_CHECK(extra <= most,
               "t made %zu bytes of KeyUpdates and alerts with %zu KeyUpdates opened (at most "
               "one more may wait)",
               extra, s->ku_sent);
}

static void take(state *s, size_t cap) {
    size_t pending = dlg_tlsio_out_pending(&s->t);
    size_t want = pending < cap ? pending : cap;
    uint8_t *dst = reserve(&s->tout, want);
    size_t n = dlg_tlsio_out_take(&s->t, dst, cap); /* dst holds want bytes */
    FUZZ_CHECK(n == want, "out_take gave %zu of %zu pending (cap %zu)", n, pending, cap);
    FUZZ_CHECK(dlg_tlsio_out_pending(&s->t) == pending - n, "%zu pending after taking %zu of %zu",
               dlg_tlsio_out_pending(&s->t), n, pending);
    s->tout.len += n;
    s->taken += n;
    peer_open(s);
    check_answers(s);
}

static void write_t(state *s, const uint8_t *data, size_t len) {
    if (s->wrote.len + len > WROTE_MAX)
        return;
    int dead = s->shut || s->read_err == DLG_ETLS;
    int rc = dlg_tlsio_write(&s->t, data, len);
    if (len == 0) {
        FUZZ_CHECK(rc == 0, "empty write returned %s", dlg_err_name(rc));
        return;
    }
    if (rc == 0) {
        FUZZ_CHECK(!dead, "write accepted after %s", s->shut ? "shutdown" : "a failure");
        append(&s->wrote, data, len);
        for (size_t left = len; left > 0;) {
            size_t n = left < DLG_TLS13_MAX_PLAIN ? left : DLG_TLS13_MAX_PLAIN;
            s->wrote_sealed += dlg_tls13_sealed_len(n);
            left -= n;
        }
    } else {
        FUZZ_CHECK(rc == DLG_ETLS, "write returned %s", dlg_err_name(rc));
        FUZZ_CHECK(s->t.failed || s->t.write_closed, "write failed on a live session");
    }
}

static void run(state *s, input *in) {
    size_t n;
    const uint8_t *d;
    while (in->n > 0) {
        uint8_t op = in_u8(in) % OP_COUNT;
        switch (op) {
        case OP_SEAL_APP:
            d = in_take(in, in_u8(in), &n);
            peer_seal(s, DLG_TLS13_APPDATA, d, n, 0);
            break;
        case OP_SEAL_TYPED: {
            static const uint8_t types[6] = {21, 22, 23, 0, 20, 24};
            uint8_t sel = in_u8(in) % 8;
            uint8_t type = sel < 6 ? types[sel] : in_u8(in);
            d = in_take(in, in_u8(in), &n);
            peer_seal(s, type, d, n, 0);
            break;
        }
        case OP_SEAL_KU: {
            uint8_t x = in_u8(in);
            uint8_t m[5] = {24, 0, 0, 1, x < 192 ? (uint8_t)(x & 1) : x};
            peer_seal(s, DLG_TLS13_HANDSHAKE, m, sizeof(m), 0);
            break;
        }
        case OP_SEAL_ALERT: {
            uint8_t m[2];
            m[0] = in_u8(in);
            uint8_t desc = in_u8(in);
            /* close_notify and user_canceled made easy to hit. */
            m[1] = desc >= 200 ? 0 : desc >= 100 ? 90 : desc;
            peer_seal(s, DLG_TLS13_ALERT, m, sizeof(m), 0);
            break;
        }
        case OP_SEAL_BIG: {
            size_t len = in_u16(in) % (DLG_TLS13_MAX_PLAIN + 1);
            fill(big, len, in_u8(in));
            peer_seal(s, DLG_TLS13_APPDATA, big, len, 0);
            break;
        }
        case OP_FORGE: {
            static const uint8_t types[3] = {23, 21, 22};
            uint8_t sel = in_u8(in) % 4;
            uint8_t hdr[DLG_TLS13_HDR] = {sel < 3 ? types[sel] : in_u8(in), 3, 3, 0, 0};
            size_t len = in_u16(in);
            hdr[3] = (uint8_t)(len >> 8);
            hdr[4] = (uint8_t)len;
            size_t blen = len <= DLG_TLS13_MAX_CIPHER ? len : 0;
            if (s->wire.len + DLG_TLS13_HDR + blen > WIRE_MAX)
                break;
            size_t start = s->wire.len;
            append(&s->wire, hdr, sizeof(hdr));
            /* The body: fuzz bytes, then zeros up to the length it claims. */
            d = in_take(in, blen < 300 ? blen : 300, &n);
            append(&s->wire, d, n);
            memset(reserve(&s->wire, blen - n), 0, blen - n);
            s->wire.len += blen - n;
            size_t need;
            uint8_t alert = forged_alert(hdr, start, &need);
            push_rec(s, start, need, K_BAD, alert, 0, 0);
            break;
        }
        case OP_FLIP: {
            size_t at = in_u16(in);
            uint8_t x = in_u8(in);
            if (s->fed == s->wire.len)
                break;
            at = s->fed + at % (s->wire.len - s->fed);
            s->wire.p[at] ^= x ? x : 0x80;
            size_t i = s->nrec;
            while (i > 0 && s->recs[i - 1].start > at)
                i--;
            rec *r = &s->recs[i - 1];
            const uint8_t *now = s->wire.p + r->start, *was = s->orig.p + r->start;
            /* Flips may cancel out; a changed length moves the record
             * boundaries the model knows; any other change only makes the
             * record fail. */
            if (memcmp(now, was, r->end - r->start) == 0) {
                r->kind = r->kind0;
                r->alert = r->alert0;
                r->need = r->need0;
            } else if (r->kind0 == K_FUZZY || now[3] != was[3] || now[4] != was[4]) {
                r->kind = K_FUZZY;
            } else {
                r->alert = forged_alert(now, r->start, &r->need);
                r->kind = K_BAD;
            }
            break;
        }
        case OP_FEED: {
            size_t want = in_u8(in);
            size_t left = s->wire.len - s->fed;
            if (want == 0 || want > left)
                want = left;
            int rc = dlg_tlsio_feed(&s->t, s->wire.p + s->fed, want);
            FUZZ_CHECK(rc == 0, "feed of %zu bytes: %s", want, dlg_err_name(rc));
            s->fed += want;
            break;
        }
        case OP_READ: {
            static const size_t caps[6] = {64, 256, 1024, 4096, 16384, 65536};
            uint8_t c = in_u8(in);
            size_t cap = c < 200 ? (size_t)(1 + c % 40) : caps[(c - 200) % 6];
            for (int k = 0; k < READ_LOOPS; k++)
                if (do_read(s, cap) <= 0)
                    break;
            check_answers(s);
            break;
        }
        case OP_WRITE:
            d = in_take(in, in_u8(in), &n);
            write_t(s, d, n);
            break;
        case OP_WRITE_BIG: {
            size_t len = in_u16(in);
            fill(big, len, in_u8(in));
            write_t(s, big, len);
            break;
        }
        case OP_SHUTDOWN:
            if (!s->t.failed && !s->t.write_closed)
                s->want_close = 1;
            dlg_tlsio_shutdown(&s->t);
            s->shut = 1;
            FUZZ_CHECK(s->t.write_closed, "shutdown left the write side open");
            break;
        case OP_TAKE: {
            uint8_t c = in_u8(in);
            take(s, c ? c : SIZE_MAX);
            break;
        }
        case OP_COMPACT: {
            size_t pending = dlg_tlsio_out_pending(&s->t);
            int rc = dlg_tlsio_compact(&s->t);
            FUZZ_CHECK(rc == 0 || rc == 1, "compact returned %d", rc);
            FUZZ_CHECK(dlg_tlsio_out_pending(&s->t) == pending, "compact lost output");
            if (pending > 0 || s->t.rec_len > 0)
                FUZZ_CHECK(rc == 0, "compact freed buffers that hold data");
            if (rc == 1)
                FUZZ_CHECK(s->t.in == NULL && s->t.out == NULL, "compact returned 1, buffers kept");
            break;
        }
        case OP_DROP:
            d = in_take(in, in_u8(in) % 32, &n);
            peer_seal(s, DLG_TLS13_APPDATA, d, n, 1);
            break;
        case OP_SEAL_HS: {
            uint8_t m[4 * (4 + 63)];
            size_t len = 0;
            for (int k = in_u8(in) % 4; k > 0; k--) {
                uint8_t sel = in_u8(in);
                uint8_t type = sel % 3 == 0 ? 4 : sel % 3 == 1 ? 24 : in_u8(in);
                size_t lie = sel >= 128 ? in_u8(in) : SIZE_MAX;
                uint8_t bl = in_u8(in);
                size_t blen = bl % 64;
                /* KeyUpdate bodies mostly well-formed, to get past it. */
                if (type == 24 && bl < 192)
                    blen = 1;
                size_t mlen = lie != SIZE_MAX ? lie : blen;
                m[len] = type;
                m[len + 1] = 0;
                m[len + 2] = (uint8_t)(mlen >> 8);
                m[len + 3] = (uint8_t)mlen;
                len += 4;
                if (type == 24 && bl < 192) {
                    m[len++] = bl & 1;
                } else {
                    d = in_take(in, blen, &n);
                    memcpy(m + len, d, n);
                    len += n;
                }
            }
            peer_seal(s, DLG_TLS13_HANDSHAKE, m, len, 0);
            break;
        }
        case OP_REPLAY: {
            uint8_t idx = in_u8(in);
            if (s->nrec == 0)
                break;
            const rec *r = &s->recs[idx % s->nrec];
            size_t len = r->end - r->start;
            if (s->wire.len + len > WIRE_MAX)
                break;
            uint8_t kind = r->kind == K_FUZZY ? K_FUZZY : K_BAD;
            size_t start = s->wire.len;
            /* append may move wire.p: copy by offset. */
            reserve(&s->wire, len);
            memcpy(s->wire.p + start, s->wire.p + r->start, len);
            s->wire.len += len;
            size_t need;
            uint8_t alert = forged_alert(s->wire.p + start, start, &need);
            push_rec(s, start, kind == K_BAD ? need : s->wire.len, kind, alert, 0, 0);
            break;
        }
        }
    }
}

/* Everything sent reaches t, t is read dry and its output opened: the
 * model's verdict on the whole stream must hold. */
static void finish(state *s) {
    if (s->fed < s->wire.len) {
        int rc = dlg_tlsio_feed(&s->t, s->wire.p + s->fed, s->wire.len - s->fed);
        FUZZ_CHECK(rc == 0, "final feed: %s", dlg_err_name(rc));
        s->fed = s->wire.len;
    }
    for (int k = 0; k < 1000; k++)
        if (do_read(s, sizeof(rbuf)) <= 0)
            break;
    take(s, SIZE_MAX);
    FUZZ_CHECK(s->tout.len == 0, "t left %zu bytes of a partial record", s->tout.len);
    FUZZ_CHECK(s->opos == s->wrote.len, "t sent %zu of the %zu bytes written", s->opos,
               s->wrote.len);

    size_t cum_fed;
    size_t g = first_end(s, &cum_fed);
    size_t reqs = 0;
    for (size_t i = 0; i < g; i++)
        reqs += s->recs[i].kind == K_KU && s->recs[i].req;
    FUZZ_CHECK(s->ku_sent <= reqs, "t answered %zu of %zu KeyUpdate requests", s->ku_sent, reqs);
    /* Requests before any shutdown are answered (one answer may serve
     * several); after it t sends nothing but what it already had. */
    if (!s->shut)
        FUZZ_CHECK(reqs == 0 || s->ku_sent > 0, "t answered none of %zu KeyUpdate requests",
                   reqs);
    if (s->want_close)
        FUZZ_CHECK(s->close_seen, "no close_notify after shutdown");

    if (g == s->nrec) {
        FUZZ_CHECK(s->read_err == 0, "clean stream ended with %s", dlg_err_name(s->read_err));
        FUZZ_CHECK(s->rpos == s->exp.len, "read %zu of %zu bytes", s->rpos, s->exp.len);
        return;
    }
    const rec *end = &s->recs[g];
    switch (end->kind) {
    case K_CLOSE:
        FUZZ_CHECK(s->read_err == DLG_ECLOSED, "close_notify gave %s",
                   dlg_err_name(s->read_err));
        break;
    case K_BAD:
        FUZZ_CHECK(s->read_err == DLG_ETLS, "bad record #%zu gave %s", g,
                   dlg_err_name(s->read_err));
        if (end->alert == NO_ALERT)
            FUZZ_CHECK(s->t_fatal < 0, "t answered a fatal alert with alert %d", s->t_fatal);
        else if (!s->shut)
            FUZZ_CHECK(s->t_fatal == end->alert, "t sent alert %d for record #%zu, expected %u",
                       s->t_fatal, g, end->alert);
        break;
    default: /* K_FUZZY: t fails or waits for the length it now reads */
        FUZZ_CHECK(s->read_err == DLG_ETLS || s->read_err == 0, "fuzzy record gave %s",
                   dlg_err_name(s->read_err));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Fixed test secrets: t reads with a, writes with b; the peer the
     * other way round. */
    static uint8_t a[48], b[48];
    static int init;
    if (!init) {
        for (int i = 0; i < 48; i++) {
            a[i] = (uint8_t)(0x10 + i);
            b[i] = (uint8_t)(0xa0 ^ i);
        }
        init = 1;
    }
    if (size < 1)
        return 0;
    input in = {data + 1, size - 1};
    uint16_t suite = (uint16_t)(0x1301 + data[0] % 3);
    int client = data[0] / 3 % 2;
    size_t slen = suite == 0x1302 ? 48 : 32;

    state *s = calloc(1, sizeof(*s));
    FUZZ_CHECK(s != NULL, "out of memory");
    s->t_fatal = -1;
    /* Allocated up front so no pointer arithmetic ever starts at NULL. */
    reserve(&s->wire, 0);
    reserve(&s->orig, 0);
    reserve(&s->exp, 0);
    reserve(&s->wrote, 0);
    reserve(&s->tout, 0);
    int rc = dlg_tls13_new(suite, a, b, slen, &s->t.rl);
    FUZZ_CHECK(rc == 0, "dlg_tls13_new(%04x): %s", suite, dlg_err_name(rc));
    rc = dlg_tls13_new(suite, b, a, slen, &s->peer);
    FUZZ_CHECK(rc == 0, "dlg_tls13_new(%04x): %s", suite, dlg_err_name(rc));
    s->t.done = 1;
    s->t.client = (unsigned)client;

    run(s, &in);
    finish(s);

    dlg_tlsio_free(&s->t);
    dlg_tls13_free(s->peer);
    free(s->wire.p);
    free(s->orig.p);
    free(s->recs);
    free(s->exp.p);
    free(s->wrote.p);
    free(s->tout.p);
    free(s);
    return 0;
}
