/* dlg_tlsio.c: TLS over in-memory ciphertext buffers and the BIO that
 * connects them to OpenSSL (see dlg_tlsio.h). */
#include "dlg_tlsio.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "dlg_alloc.h"
#include "dlg_err.h"
#include "dlg_tls13.h"

/* Waiting ciphertext: bytes [off, len) of data. */
struct dlg_tlsio_buf {
    size_t off, len, cap;
    unsigned char data[];
};

static size_t buf_pending(const struct dlg_tlsio_buf *b) {
    return b != NULL ? b->len - b->off : 0;
}

/* Makes room for n more bytes at the end of *pb, allocating or growing it,
 * and returns where they go (commit them with b->len += n), or NULL (out of
 * memory; the bytes already waiting are kept). */
static unsigned char *buf_reserve(struct dlg_tlsio_buf **pb, size_t n) {
    struct dlg_tlsio_buf *b = *pb;
    size_t have = buf_pending(b);
    if (n > SIZE_MAX / 2 - sizeof(*b) - have)
        return NULL;
    if (b != NULL && b->len + n > b->cap && b->off > 0) {
        memmove(b->data, b->data + b->off, have);
        b->off = 0;
        b->len = have;
    }
    if (b == NULL || have + n > b->cap) {
        size_t cap = b != NULL ? b->cap * 2 : 0;
        if (cap < have + n)
            cap = have + n;
        struct dlg_tlsio_buf *nb = dlg_realloc(b, sizeof(*nb) + cap);
        if (nb == NULL)
            return NULL;
        if (b == NULL)
            nb->off = nb->len = 0;
        nb->cap = cap;
        *pb = b = nb;
    }
    return b->data + b->len;
}

/* Appends n bytes to *pb. 0 or DLG_ENOMEM; on error the bytes already
 * waiting are kept. */
static int buf_append(struct dlg_tlsio_buf **pb, const void *data, size_t n) {
    unsigned char *dst = buf_reserve(pb, n);
    if (dst == NULL)
        return DLG_ENOMEM;
    memcpy(dst, data, n);
    (*pb)->len += n;
    return 0;
}

/* Moves up to cap bytes out of b; returns how many. */
static size_t buf_take(struct dlg_tlsio_buf *b, void *out, size_t cap) {
    size_t n = buf_pending(b);
    if (n == 0)
        return 0;
    if (n > cap)
        n = cap;
    memcpy(out, b->data + b->off, n);
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
    return n;
}

/* The BIO. Unlike BIO_s_mem it can drop its buffers when they are empty
 * (dlg_tlsio_compact), and one BIO object serves both directions. Reads
 * with nothing buffered ask OpenSSL to retry (WANT_READ), never EOF. */
static int bio_write_ex(BIO *bio, const char *data, size_t len, size_t *written) {
    dlg_tlsio *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    *written = 0;
    if (buf_append(&t->out, data, len) != 0)
        return 0; /* no retry flag: OpenSSL fails the call */
    *written = len;
    return 1;
}

static int bio_read_ex(BIO *bio, char *out, size_t cap, size_t *nread) {
    dlg_tlsio *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    /* A failed session (msg_cb) gets no more input: OpenSSL stops where
     * it is, as if the rest had not arrived yet, and dlg_tlsio_read
     * reports the failure. */
    *nread = t->failed ? 0 : buf_take(t->in, out, cap);
    if (*nread == 0 && cap > 0) {
        BIO_set_retry_read(bio);
        return 0;
    }
    return 1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)num;
    (void)ptr;
    dlg_tlsio *t = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)buf_pending(t->in);
    case BIO_CTRL_WPENDING:
        return (long)buf_pending(t->out);
    case BIO_CTRL_FLUSH:
        return 1; /* the owner sends out; the handshake must not stall here */
    default:
        return 0;
    }
}

static int bio_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

/* The method table is immutable once built and shared by every session
 * (like BIO_s_mem()'s); it lives until exit. */
static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_method_once = CRYPTO_ONCE_STATIC_INIT;

static void bio_method_build(void) {
    int index = BIO_get_new_index();
    if (index == -1)
        return;
    BIO_METHOD *m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "dialogue ciphertext");
    if (m == NULL)
        return;
    if (BIO_meth_set_write_ex(m, bio_write_ex) != 1 ||
        BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* Fails a session on OpenSSL's record layer from msg_cb: bio_read_ex
 * feeds OpenSSL nothing more, so it stops where it is, and dlg_tlsio_read
 * reports why (OpenSSL has no call to send an alert of ours). */
static void ossl_refuse(dlg_tlsio *t, const char *why) {
    if (t->failed)
        return;
    t->failed = 1;
    t->why = why;
}

/* OpenSSL's report of every record it reads or writes (its header, then in
 * TLS 1.3 the inner content type), and of the messages in them. Once the
 * handshake is done it applies the limits of our record layer to what
 * OpenSSL reads: runs of records without application data (empty ones are
 * OpenSSL's own business, 32 at most; KeyUpdates are not: it takes any
 * number), and TLS 1.3 records longer than an inner plaintext of 2^14 + 1
 * bytes with its padding (OpenSSL measures it without). It also notes a
 * record under the application keys (see dlg_tlsio_handover). */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg) {
    (void)version;
    dlg_tlsio *t = arg;
    const uint8_t *b = buf;
    if (content_type == SSL3_RT_HEADER && len >= DLG_TLS13_HDR) {
        /* Written within the handshake (a server's tickets): counted;
         * after it (an early SSL_write), or read: no handover. */
        if (write_p && t->app_wr && !t->done && t->app_wr_records < UINT32_MAX)
            t->app_wr_records++;
        else if (write_p ? t->app_wr : t->app_rd)
            t->app_seen = 1;
        if (write_p || !t->done)
            return;
        /* Every TLS 1.3 suite we allow has a 16-byte tag. */
        size_t body = (size_t)b[3] << 8 | b[4];
        if (b[0] == SSL3_RT_APPLICATION_DATA && SSL_version(ssl) == TLS1_3_VERSION &&
            body > DLG_TLS13_MAX_PLAIN + 1 + DLG_TLS13_TAG) {
            ossl_refuse(t, "record too long (inner plaintext over 2^14 + 1 bytes)");
            return;
        }
        /* TLS 1.2's handshake and alert records show their type here; in
         * TLS 1.3 the inner type below says. */
        if (b[0] == SSL3_RT_APPLICATION_DATA)
            return;
    } else if (content_type != SSL3_RT_INNER_CONTENT_TYPE || write_p || !t->done || len < 1 ||
               b[0] == SSL3_RT_APPLICATION_DATA) {
        return;
    }
    if (++t->quiet > DLG_TLSIO_MAX_QUIET_RECORDS)
        ossl_refuse(t, "too many records without application data");
}

/* ---- the handover to our record layer (dlg_tlsio_ctx_lean) ---------------- */

/* The application traffic secrets, as the keylog callback reports them
 * during the handshake; cleansed and freed at the handover (or at free). */
struct dlg_tlsio_secrets {
    uint8_t client[48], server[48];
    size_t client_len, server_len;
};

static void secrets_free(dlg_tlsio *t) {
    if (t->sec != NULL) {
        OPENSSL_cleanse(t->sec, sizeof(*t->sec));
        free(t->sec);
        t->sec = NULL;
    }
}

/* Hex secret of a keylog line into out (at most 48 bytes); its length, or
 * 0 if it is not hex of a supported length. */
static size_t parse_secret(const char *hex, uint8_t *out) {
    size_t n = strlen(hex);
    if (n != 64 && n != 96)
        return 0;
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = hex[2 * i + k];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0)
                return 0;
            v = v << 4 | d;
        }
        out[i] = (uint8_t)v;
    }
    return n / 2;
}

/* OpenSSL reports each secret it derives as an NSS key log line: "LABEL
 * <client random> <secret>". Only the first application traffic secrets
 * are kept; nothing is written anywhere. */
static void keylog_cb(const SSL *ssl, const char *line) {
    dlg_tlsio *t = SSL_get_app_data(ssl);
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
    int is_client = strncmp(line, cl, sizeof(cl) - 1) == 0;
    if (t == NULL || (!is_client && strncmp(line, sv, sizeof(sv) - 1) != 0))
        return;
    /* OpenSSL reports a secret as it moves that direction to it: every
     * record of that direction from now on is under the application keys
     * (msg_cb notes one). */
    if (is_client == !SSL_is_server(ssl))
        t->app_wr = 1;
    else
        t->app_rd = 1;
    const char *sp = strchr(line + sizeof(cl) - 1, ' ');
    if (sp == NULL)
        return;
    if (t->sec == NULL && (t->sec = dlg_calloc(1, sizeof(*t->sec))) == NULL)
        return; /* no handover: the session stays on OpenSSL */
    if (is_client)
        t->sec->client_len = parse_secret(sp + 1, t->sec->client);
    else
        t->sec->server_len = parse_secret(sp + 1, t->sec->server);
}

int dlg_tlsio_ctx_lean(SSL_CTX *ctx) {
    if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
        return DLG_ETLS;
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    return 0;
}

int dlg_tlsio_handover(dlg_tlsio *t) {
    SSL *ssl = t->ssl;
    if (ssl == NULL || !t->done)
        return t->rl != NULL;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    struct dlg_tlsio_secrets *sec = t->sec;
    int server = SSL_is_server(ssl);
    if (SSL_CTX_get_keylog_callback(SSL_get_SSL_CTX(ssl)) != keylog_cb || sec == NULL ||
        c == NULL || SSL_version(ssl) != TLS1_3_VERSION ||
        (server && SSL_get0_peer_certificate(ssl) != NULL) ||
        /* Records OpenSSL has read but we have not, or sent or read under
         * the application keys after the handshake (an early write or
         * read), would put its sequence numbers ahead of ours: starting
         * again from 0 would reuse a nonce. What it wrote under them
         * within the handshake (tickets) is counted and skipped below. */
        SSL_has_pending(ssl) || t->app_seen ||
        SSL_get_early_data_status(ssl) == SSL_EARLY_DATA_ACCEPTED ||
        sec->client_len == 0 || sec->client_len != sec->server_len)
        goto out;
    struct dlg_tls13 *rl = NULL;
    if (dlg_tls13_new(SSL_CIPHER_get_protocol_id(c), server ? sec->client : sec->server,
                      server ? sec->server : sec->client, sec->client_len, &rl) != 0)
        goto out;
    if (dlg_tls13_skip_write(rl, t->app_wr_records) != 0) {
        dlg_tls13_free(rl);
        goto out;
    }
    SSL_free(ssl); /* and the BIO; our buffers stay */
    t->ssl = NULL;
    t->bio = NULL;
    t->rl = rl;
    t->client = !server;
out:
    ERR_clear_error();
    secrets_free(t);
    return t->rl != NULL;
}

/* Seals n (<= DLG_TLS13_MAX_PLAIN) bytes of type as one record appended
 * to out. 0, DLG_ENOMEM or DLG_ETLS. */
static int seal_record(dlg_tlsio *t, uint8_t type, const uint8_t *data, size_t n) {
    unsigned char *dst = buf_reserve(&t->out, dlg_tls13_sealed_len(n));
    if (dst == NULL)
        return DLG_ENOMEM;
    if (dlg_tls13_seal(t->rl, type, data, n, dst) != 0)
        return DLG_ETLS;
    t->out->len += dlg_tls13_sealed_len(n);
    return 0;
}

/* Sends KeyUpdate(update_not_requested) under the current write key and
 * moves to the next one for everything after it (RFC 8446 4.6.3): when the
 * key is worn, and in answer to the peer's request. */
static int send_key_update(dlg_tlsio *t) {
    static const uint8_t ku[5] = {24, 0, 0, 1, 0};
    int rc = seal_record(t, DLG_TLS13_HANDSHAKE, ku, sizeof(ku));
    if (rc == 0 && dlg_tls13_update_write(t->rl) != 0)
        rc = DLG_ETLS;
    return rc;
}

/* Seals len bytes of type as records appended to out. 0, DLG_ENOMEM or
 * DLG_ETLS. */
static int lean_seal(dlg_tlsio *t, uint8_t type, const uint8_t *data, size_t len) {
    do {
        int rc;
        if (dlg_tls13_write_worn(t->rl) && (rc = send_key_update(t)) != 0)
            return rc;
        size_t n = len < DLG_TLS13_MAX_PLAIN ? len : DLG_TLS13_MAX_PLAIN;
        if ((rc = seal_record(t, type, data, n)) != 0)
            return rc;
        data += n;
        len -= n;
    } while (len > 0);
    return 0;
}

/* Marks the session dead and, best effort, tells the peer why (a fatal
 * alert, RFC 8446 6.2). Returns DLG_ETLS. */
static int lean_fail(dlg_tlsio *t, const char *why, uint8_t alert) {
    if (!t->failed && !t->write_closed) {
        uint8_t a[2] = {2, alert};
        lean_seal(t, DLG_TLS13_ALERT, a, sizeof(a));
        t->write_closed = 1;
    }
    t->failed = 1;
    if (t->why == NULL)
        t->why = why;
    return DLG_ETLS;
}

/* Drops the opened record at the head of `in`. */
static void lean_consume(dlg_tlsio *t) {
    t->in->off += t->rec_len;
    if (t->in->off == t->in->len)
        t->in->off = t->in->len = 0;
    t->rec_len = t->rec_pos = t->rec_end = 0;
}

/* A handshake record after the handshake. A server expects only
 * KeyUpdate (no post-handshake authentication is asked for); a client also
 * gets NewSessionTickets, which it ignores (it never resumes). A KeyUpdate
 * must end its record: what follows is under the next key (RFC 8446 5.1). */
static int lean_handshake(dlg_tlsio *t, const uint8_t *m, size_t len) {
    /* RFC 8446 5.1: handshake records are never empty. */
    if (len == 0)
        return lean_fail(t, "empty handshake record", 10);
    while (len > 0) {
        if (len < 4)
            return lean_fail(t, "truncated handshake message", 50);
        size_t n = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
        /* Our records hold at most 2^14 bytes: a message that does not fit
         * in this one would span records, which no peer of ours does. */
        if (n > len - 4)
            return lean_fail(t, "handshake message split across records", 10);
        if (m[0] == 4 && t->client) {
            m += 4 + n;
            len -= 4 + n;
            continue;
        }
        if (m[0] != 24 || n != 1 || len != 5)
            return lean_fail(t, "unexpected handshake message after the handshake", 10);
        if (m[4] > 1)
            return lean_fail(t, "KeyUpdate with an invalid request", 47);
        if (dlg_tls13_update_read(t->rl) != 0)
            return lean_fail(t, "key update failed", 80);
        /* RFC 8446 4.6.3: a party that gets several requests while it is
         * silent answers with one KeyUpdate. Ours is silent while its last
         * answer still waits in `out`: that answer serves this request too,
         * so a peer that floods requests and never reads queues one. */
        if (m[4] == 1 && !t->write_closed && t->out_taken >= t->ku_end) {
            if (send_key_update(t) != 0) {
                t->failed = 1;
                t->why = "could not answer a KeyUpdate";
                return DLG_ETLS;
            }
            t->ku_end = t->out_taken + buf_pending(t->out);
        }
        return 0;
    }
    return 0;
}

/* The peer's alert, named for the log (RFC 8446 6). */
static const char *alert_why(uint8_t desc) {
    switch (desc) {
    case 10: return "peer sent alert unexpected_message";
    case 20: return "peer sent alert bad_record_mac";
    case 22: return "peer sent alert record_overflow";
    case 40: return "peer sent alert handshake_failure";
    case 42: return "peer sent alert bad_certificate";
    case 44: return "peer sent alert certificate_revoked";
    case 45: return "peer sent alert certificate_expired";
    case 46: return "peer sent alert certificate_unknown";
    case 48: return "peer sent alert unknown_ca";
    case 49: return "peer sent alert access_denied";
    case 50: return "peer sent alert decode_error";
    case 51: return "peer sent alert decrypt_error";
    case 80: return "peer sent alert internal_error";
    case 116: return "peer sent alert certificate_required";
    default: return "peer sent a fatal alert";
    }
}

static int lean_read_fail(dlg_tlsio *t, size_t got, const char *why, uint8_t alert) {
    lean_fail(t, why, alert);
    return got > 0 ? (int)got : DLG_ETLS;
}

/* One more record without application data; 0, or past the cap -1 (the
 * session is failed with unexpected_message: each such record costs a
 * decryption, and a KeyUpdate a key derivation, for nothing). */
static int lean_quiet(dlg_tlsio *t) {
    if (++t->quiet <= DLG_TLSIO_MAX_QUIET_RECORDS)
        return 0;
    lean_fail(t, "too many records without application data", 10);
    return -1;
}

static int lean_read(dlg_tlsio *t, uint8_t *buf, size_t cap) {
    size_t got = 0;
    while (got < cap) {
        if (t->failed)
            return got > 0 ? (int)got : DLG_ETLS;
        if (t->read_closed)
            return got > 0 ? (int)got : DLG_ECLOSED;
        if (t->rec_len > 0) {
            size_t n = t->rec_end - t->rec_pos;
            if (n > cap - got)
                n = cap - got;
            memcpy(buf + got, t->in->data + t->in->off + t->rec_pos, n);
            got += n;
            t->rec_pos += (uint32_t)n;
            if (t->rec_pos == t->rec_end)
                lean_consume(t);
            continue;
        }
        size_t avail = buf_pending(t->in);
        if (avail < DLG_TLS13_HDR)
            break;
        uint8_t *rec = t->in->data + t->in->off;
        size_t body = (size_t)rec[3] << 8 | rec[4];
        /* Refused before it is all here: nobody makes us buffer more. */
        if (body > DLG_TLS13_MAX_CIPHER)
            return lean_read_fail(t, got, "record too long", 22);
        if (avail < DLG_TLS13_HDR + body)
            break;
        size_t off, plen;
        uint8_t type, alert;
        int rc = dlg_tls13_open(t->rl, rec, DLG_TLS13_HDR + body, &off, &plen, &type, &alert);
        if (rc != 0)
            return lean_read_fail(t, got, rc == DLG_ETLS ? "bad record MAC" : "malformed record",
                                  alert);
        t->rec_len = (uint32_t)(DLG_TLS13_HDR + body);
        t->rec_pos = (uint32_t)off;
        t->rec_end = (uint32_t)(off + plen);
        if (type == DLG_TLS13_APPDATA) {
            if (plen > 0) {
                t->quiet = 0;
                continue;
            }
            lean_consume(t);
            if (lean_quiet(t) != 0)
                return got > 0 ? (int)got : DLG_ETLS;
            continue;
        }
        const uint8_t *m = rec + off;
        if (type == DLG_TLS13_ALERT) {
            if (plen != 2)
                return lean_read_fail(t, got, "malformed alert", 50);
            uint8_t desc = m[1];
            lean_consume(t);
            if (desc == 90 && lean_quiet(t) != 0)
                return got > 0 ? (int)got : DLG_ETLS;
            if (desc == 0) {
                t->read_closed = 1;
            } else if (desc != 90) { /* user_canceled comes before a close_notify */
                t->failed = 1;
                t->why = alert_why(desc);
            }
            continue;
        }
        if (type == DLG_TLS13_HANDSHAKE) {
            /* Counted before it is acted on: the one past the cap gets no
             * key derivation. */
            if (lean_quiet(t) != 0) {
                lean_consume(t);
                return got > 0 ? (int)got : DLG_ETLS;
            }
            rc = lean_handshake(t, m, plen);
            lean_consume(t);
            if (rc != 0)
                return got > 0 ? (int)got : rc;
            continue;
        }
        return lean_read_fail(t, got, "record of an unknown content type", 10);
    }
    return (int)got;
}

void dlg_tlsio_last_error(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (len == 0)
        return;
    if (e == 0)
        snprintf(buf, len, "unexpected TLS failure");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* ---- client session resumption (dlg_tlsio_ctx_resume) ------------------- */

/* A resuming context's kept sessions, one per server name, in the
 * context's ex_data; freed with the context. The lock: a context may make
 * sessions on several threads. */
typedef struct resume_store {
    CRYPTO_RWLOCK *lock;
    char *name[DLG_TLSIO_RESUME_SLOTS];
    SSL_SESSION *sess[DLG_TLSIO_RESUME_SLOTS];
} resume_store;

static int resume_index = -1;
static CRYPTO_ONCE resume_once = CRYPTO_ONCE_STATIC_INIT;

static void resume_store_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                              void *argp) {
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    resume_store *st = ptr;
    if (st == NULL)
        return;
    for (int i = 0; i < DLG_TLSIO_RESUME_SLOTS; i++) {
        free(st->name[i]);
        SSL_SESSION_free(st->sess[i]);
    }
    CRYPTO_THREAD_lock_free(st->lock);
    free(st);
}

static void resume_index_make(void) {
    resume_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, resume_store_free);
}

static resume_store *resume_store_of(SSL_CTX *ctx) {
    if (resume_index < 0)
        return NULL;
    return SSL_CTX_get_ex_data(ctx, resume_index);
}

/* OpenSSL hands over each ticket the server sends: the newest one is kept
 * for the session's server. A copy: the one given is the connection's own,
 * which OpenSSL marks as not resumable when the connection is freed without
 * a close_notify of ours, as every connection we lose is. Returns 0:
 * OpenSSL keeps its reference. */
static int resume_new_session(SSL *ssl, SSL_SESSION *sess) {
    dlg_tlsio *t = SSL_get_app_data(ssl);
    resume_store *st = resume_store_of(SSL_get_SSL_CTX(ssl));
    if (t == NULL || st == NULL || t->resume_slot == 0 || !SSL_SESSION_is_resumable(sess))
        return 0;
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL) {
        ERR_clear_error();
        return 0; /* the next connection makes a full handshake */
    }
    int i = t->resume_slot - 1;
    if (!CRYPTO_THREAD_write_lock(st->lock)) {
        SSL_SESSION_free(copy);
        return 0;
    }
    SSL_SESSION *old = st->sess[i];
    st->sess[i] = copy;
    CRYPTO_THREAD_unlock(st->lock);
    SSL_SESSION_free(old);
    return 0;
}

int dlg_tlsio_ctx_resume(SSL_CTX *ctx) {
    if (CRYPTO_THREAD_run_once(&resume_once, resume_index_make) != 1 || resume_index < 0)
        return DLG_ETLS;
    resume_store *st = dlg_calloc(1, sizeof(*st));
    if (st == NULL)
        return DLG_ENOMEM;
    if ((st->lock = CRYPTO_THREAD_lock_new()) == NULL) {
        free(st);
        return DLG_ENOMEM;
    }
    if (SSL_CTX_set_ex_data(ctx, resume_index, st) != 1) {
        resume_store_free(NULL, st, NULL, 0, 0, NULL);
        return DLG_ETLS;
    }
    /* Our store, not OpenSSL's: it keys by server name. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, resume_new_session);
    return 0;
}

/* A client session of a resuming context: its server's slot (made if
 * new), and the kept session offered (and given up: it is used once).
 * Without a free slot the session just does not resume. 0 or DLG_ETLS. */
static int resume_offer(dlg_tlsio *t, SSL_CTX *ctx, const char *name) {
    resume_store *st = resume_store_of(ctx);
    if (st == NULL || name == NULL)
        return 0;
    SSL_SESSION *sess = NULL;
    if (!CRYPTO_THREAD_write_lock(st->lock))
        return DLG_ETLS;
    int i = 0;
    while (i < DLG_TLSIO_RESUME_SLOTS && st->name[i] != NULL && strcmp(st->name[i], name) != 0)
        i++;
    if (i < DLG_TLSIO_RESUME_SLOTS && st->name[i] == NULL)
        st->name[i] = dlg_strdup(name);
    if (i < DLG_TLSIO_RESUME_SLOTS && st->name[i] != NULL) {
        t->resume_slot = (uint8_t)(i + 1);
        sess = st->sess[i];
        st->sess[i] = NULL;
    }
    CRYPTO_THREAD_unlock(st->lock);
    if (sess == NULL)
        return 0;
    int ok = SSL_set_session(t->ssl, sess) == 1;
    SSL_SESSION_free(sess);
    if (!ok)
        ERR_clear_error(); /* a full handshake then */
    return 0;
}

int dlg_tlsio_init(dlg_tlsio *t, SSL_CTX *ctx, int server, const char *sni,
                   int verify_host) {
    memset(t, 0, sizeof(*t));
    if (CRYPTO_THREAD_run_once(&bio_method_once, bio_method_build) != 1 ||
        bio_method == NULL)
        goto fail;
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL)
        goto fail;
    t->bio = BIO_new(bio_method);
    if (t->bio == NULL)
        goto fail_ssl;
    BIO_set_data(t->bio, t);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* takes our one reference */
    SSL_set_app_data(t->ssl, t);          /* for keylog_cb */
    SSL_set_msg_callback(t->ssl, msg_cb);
    SSL_set_msg_callback_arg(t->ssl, t);
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        /* RFC 6066: SNI carries host names only, never IP literals. */
        unsigned char ipbuf[16];
        int is_ip = sni != NULL && (inet_pton(AF_INET, sni, ipbuf) == 1 ||
                                    inet_pton(AF_INET6, sni, ipbuf) == 1);
        if (sni != NULL && !is_ip && SSL_set_tlsext_host_name(t->ssl, sni) != 1)
            goto fail_set;
        if (sni != NULL && verify_host) {
            X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
            X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            /* An IP literal must match an IP SAN, a name a DNS SAN. */
            if (X509_VERIFY_PARAM_set1_ip_asc(p, sni) != 1 &&
                SSL_set1_host(t->ssl, sni) != 1)
                goto fail_set;
            ERR_clear_error();
        }
        if (resume_offer(t, ctx, sni) != 0)
            goto fail_set;
    }
    return 0;

fail_set:
    SSL_free(t->ssl); /* frees the BIO, now owned by ssl */
    memset(t, 0, sizeof(*t));
    return DLG_ETLS;
fail_ssl:
    SSL_free(t->ssl);
fail:
    memset(t, 0, sizeof(*t));
    return DLG_ENOMEM;
}

void dlg_tlsio_free(dlg_tlsio *t) {
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    dlg_tls13_free(t->rl);
    secrets_free(t);
    free(t->in);
    free(t->out);
    memset(t, 0, sizeof(*t));
}

int dlg_tlsio_feed(dlg_tlsio *t, const void *data, size_t len) {
    return len == 0 ? 0 : buf_append(&t->in, data, len);
}

int dlg_tlsio_handshake(dlg_tlsio *t, char *err, size_t errlen) {
    if (t->done)
        return 1;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->done = 1;
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (err != NULL) {
        long vr = SSL_get_verify_result(t->ssl);
        if (vr != X509_V_OK)
            snprintf(err, errlen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(vr));
        else
            dlg_tlsio_last_error(err, errlen);
    }
    ERR_clear_error();
    return DLG_ETLS;
}

/* A failed OpenSSL call: keeps OpenSSL's reason (static strings of its
 * own) for dlg_tlsio_error before the error queue is cleared. */
static int ossl_fail(dlg_tlsio *t, int e) {
    unsigned long err = ERR_peek_last_error();
    const char *reason = err != 0 ? ERR_reason_error_string(err) : NULL;
    if (t->why == NULL)
        t->why = reason != NULL            ? reason
                 : e == SSL_ERROR_SYSCALL ? "TLS I/O failed (out of memory?)"
                                          : "TLS failure without a reason from OpenSSL";
    t->failed = 1;
    ERR_clear_error();
    return DLG_ETLS;
}

/* dlg_tlsio_read on OpenSSL with no more plaintext to give: 0, or
 * DLG_ETLS when the KeyUpdate answer could not be made. */
static int ossl_want_read(dlg_tlsio *t) {
    /* OpenSSL answers the peer's KeyUpdate requests as it reads on, but
     * keeps the answer to the last one for our next SSL_write: sent now,
     * with what it read, so that it leaves even when we have nothing to
     * write (the owner counts it in its output caps). */
    if (t->done && SSL_get_key_update_type(t->ssl) != SSL_KEY_UPDATE_NONE &&
        (SSL_key_update(t->ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 ||
         SSL_do_handshake(t->ssl) != 1))
        return ossl_fail(t, SSL_get_error(t->ssl, 0));
    return 0;
}

int dlg_tlsio_read(dlg_tlsio *t, void *buf, size_t cap) {
    if (cap > INT_MAX)
        cap = INT_MAX; /* the count is returned as an int */
    if (t->rl != NULL)
        return lean_read(t, buf, cap);
    size_t n = 0;
    /* Nothing fed is left and OpenSSL holds no record: SSL_read_ex could
     * only fail with WANT_READ, and that failed call (error queue marks,
     * SSL_get_error) is what ends every owner's read loop, once per socket
     * read. Answered here instead; a close_notify already read still goes
     * to OpenSSL, which reports it again. */
    if (!t->failed && t->done && buf_pending(t->in) == 0 && !SSL_has_pending(t->ssl) &&
        !(SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN))
        return ossl_want_read(t);
    if (!t->failed && SSL_read_ex(t->ssl, buf, cap, &n) == 1) {
        t->quiet = 0;
        return (int)n;
    }
    if (t->failed) /* msg_cb stopped the input, or an earlier failure */
        return DLG_ETLS;
    int e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return ossl_want_read(t);
    if (e == SSL_ERROR_ZERO_RETURN)
        return DLG_ECLOSED;
    return ossl_fail(t, e);
}

int dlg_tlsio_write(dlg_tlsio *t, const void *data, size_t len) {
    size_t w = 0;
    if (len == 0)
        return 0;
    if (t->rl != NULL) {
        if (t->failed || t->write_closed)
            return DLG_ETLS;
        /* Out of memory mid-stream leaves a partial record stream: the
         * session cannot go on either way. */
        if (lean_seal(t, DLG_TLS13_APPDATA, data, len) != 0) {
            t->failed = 1;
            t->why = "could not seal a record";
            return DLG_ETLS;
        }
        return 0;
    }
    if (t->failed)
        return DLG_ETLS;
    /* The BIO grows, so one call writes everything or fails. */
    if (SSL_write_ex(t->ssl, data, len, &w) != 1)
        return ossl_fail(t, SSL_get_error(t->ssl, 0));
    if (w != len)
        return ossl_fail(t, SSL_ERROR_SYSCALL);
    return 0;
}

size_t dlg_tlsio_out_pending(const dlg_tlsio *t) {
    return buf_pending(t->out);
}

size_t dlg_tlsio_out_take(dlg_tlsio *t, void *buf, size_t cap) {
    size_t n = buf_take(t->out, buf, cap);
    t->out_taken += n;
    return n;
}

void dlg_tlsio_shutdown(dlg_tlsio *t) {
    if (t->rl != NULL) {
        static const uint8_t close_notify[2] = {1, 0};
        if (!t->write_closed && !t->failed)
            lean_seal(t, DLG_TLS13_ALERT, close_notify, sizeof(close_notify));
        t->write_closed = 1;
        return;
    }
    /* OpenSSL: never after a fatal error (SSL_shutdown(3)). */
    if (t->ssl != NULL && t->done && !t->failed)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int dlg_tlsio_compact(dlg_tlsio *t) {
    if (t->in != NULL && buf_pending(t->in) == 0) {
        free(t->in);
        t->in = NULL;
    }
    if (t->out != NULL && buf_pending(t->out) == 0) {
        free(t->out);
        t->out = NULL;
    }
    return t->in == NULL && t->out == NULL;
}

const char *dlg_tlsio_why(const dlg_tlsio *t) {
    return t->why;
}

void dlg_tlsio_error(const dlg_tlsio *t, char *buf, size_t len) {
    if (t->why != NULL && len > 0)
        snprintf(buf, len, "%s", t->why);
    else
        dlg_tlsio_last_error(buf, len);
}
