/* test_tlsio_lean.c: the handover of a finished TLS 1.3 session from
 * OpenSSL to our own record layer (dlg_tlsio_ctx_lean, dlg_tls13), tested
 * against a plain OpenSSL client on memory BIOs so that an error in our
 * record protection cannot cancel out against the same error on the other
 * side. Covers the three suites, split and coalesced records, data in the
 * client's Finished flight, KeyUpdate both ways, close_notify, tampered and
 * malformed records, and the sessions that must stay on OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dlg_err.h"
#include "dlg_tls13.h"
#include "dlg_tlsio.h"

#include "selfsigned.h"

/* A server session under test and its OpenSSL client. The dlg_tlsio must
 * not move after init (its BIO points at it), hence the heap. */
typedef struct {
    SSL_CTX *sctx, *cctx;
    dlg_tlsio srv;
    SSL *cli;
    BIO *cin;  /* the client's read side: server ciphertext goes in here */
    BIO *cout; /* the client's write side: its ciphertext comes out here */
} pair_t;

static const char *suite_name(uint16_t suite) {
    switch (suite) {
    case 0x1301: return "TLS_AES_128_GCM_SHA256";
    case 0x1302: return "TLS_AES_256_GCM_SHA384";
    case 0x1303: return "TLS_CHACHA20_POLY1305_SHA256";
    default: return NULL;
    }
}

/* The pairs alive in the running test. A failed assert jumps out of the
 * test; the teardown then frees what it left, so that a failure shows as a
 * failure and not also as leaks under ASan. */
#define MAX_LIVE 4
static pair_t *g_live[MAX_LIVE];

/* Set by a test that calls dlg_tlsio_handover itself. */
static int g_no_handover;

static void live_add(pair_t *p) {
    for (int i = 0; i < MAX_LIVE; i++)
        if (g_live[i] == NULL) {
            g_live[i] = p;
            return;
        }
    fail_msg("too many pairs alive");
}

static void live_del(pair_t *p) {
    for (int i = 0; i < MAX_LIVE; i++)
        if (g_live[i] == p)
            g_live[i] = NULL;
}

/* suite 0 leaves the server's TLS 1.3 suites at OpenSSL's default;
 * cli_max 0 leaves the client's maximum version alone. */
static pair_t *pair_new(int lean, uint16_t suite, int cli_max) {
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    live_add(p);
    p->sctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(p->sctx);
    assert_int_equal(SSL_CTX_use_certificate(p->sctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, g_key), 1);
    if (suite != 0)
        assert_int_equal(SSL_CTX_set_ciphersuites(p->sctx, suite_name(suite)), 1);
    if (lean)
        assert_int_equal(dlg_tlsio_ctx_lean(p->sctx), 0);
    assert_int_equal(dlg_tlsio_init(&p->srv, p->sctx, 1, NULL, 0), 0);

    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->cctx);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
    if (cli_max != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(p->cctx, cli_max), 1);
    p->cli = SSL_new(p->cctx);
    assert_non_null(p->cli);
    p->cin = BIO_new(BIO_s_mem());
    p->cout = BIO_new(BIO_s_mem());
    assert_non_null(p->cin);
    assert_non_null(p->cout);
    SSL_set_bio(p->cli, p->cin, p->cout); /* ssl owns both now */
    SSL_set_connect_state(p->cli);
    return p;
}

static void pair_free(pair_t *p) {
    live_del(p);
    dlg_tlsio_free(&p->srv);
    SSL_free(p->cli);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    free(p);
    ERR_clear_error();
}

static int test_teardown(void **state) {
    (void)state;
    g_no_handover = 0;
    for (int i = 0; i < MAX_LIVE; i++)
        if (g_live[i] != NULL)
            pair_free(g_live[i]);
    return 0;
}

/* Payloads and what was read back; static so that a failed test leaks
 * nothing. */
#define MAX_DATA 80000
static uint8_t g_data[MAX_DATA], g_got[MAX_DATA + 1];

/* Deterministic pseudo-random bytes (xorshift32): a shifted or repeated
 * block cannot compare equal by accident. */
static void fill(uint8_t *buf, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)(x >> 11);
    }
}

/* Moves all the client's pending ciphertext into the server, chunk bytes
 * per feed, without reading. Returns how many bytes moved. */
static size_t c2s_move(pair_t *p, size_t chunk) {
    uint8_t tmp[4096];
    size_t moved = 0;
    if (chunk > sizeof(tmp))
        chunk = sizeof(tmp);
    for (int i = 0; i < 1 << 22 && BIO_ctrl_pending(p->cout) > 0; i++) {
        int n = BIO_read(p->cout, tmp, (int)chunk);
        assert_true(n > 0);
        assert_int_equal(dlg_tlsio_feed(&p->srv, tmp, (size_t)n), 0);
        moved += (size_t)n;
    }
    assert_int_equal(BIO_ctrl_pending(p->cout), 0);
    return moved;
}

/* Moves all the server's pending ciphertext into the client's read BIO. */
static size_t s2c_move(pair_t *p) {
    uint8_t tmp[4096];
    size_t moved = 0, n;
    for (int i = 0; i < 1 << 20 && (n = dlg_tlsio_out_take(&p->srv, tmp, sizeof(tmp))) > 0;
         i++) {
        assert_int_equal(BIO_write(p->cin, tmp, (int)n), (int)n);
        moved += n;
    }
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), 0);
    return moved;
}

/* Runs both handshakes to completion. hook, if not NULL, runs once right
 * after the client's handshake returns 1, before its last flight (with
 * Finished) reaches the server. */
static void handshake_ex(pair_t *p, void (*hook)(pair_t *)) {
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 50 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(p->cli);
            if (r == 1) {
                cdone = 1;
                if (hook != NULL)
                    hook(p);
            } else {
                assert_int_equal(SSL_get_error(p->cli, r), SSL_ERROR_WANT_READ);
            }
        }
        c2s_move(p, 4096);
        if (!sdone) {
            char err[256] = "";
            int r = dlg_tlsio_handshake(&p->srv, err, sizeof(err));
            if (r < 0)
                fail_msg("server handshake failed: %s", err);
            sdone = r == 1;
            /* As the daemon does: right after its handshake. */
            if (sdone && !g_no_handover) {
                int h = dlg_tlsio_handover(&p->srv);
                assert_int_equal(h, p->srv.rl != NULL);
            }
        }
        s2c_move(p);
    }
    assert_true(cdone);
    assert_true(sdone);
}

static void handshake(pair_t *p) {
    handshake_ex(p, NULL);
}

/* Reads from the server until it has nothing more, at most cap bytes per
 * call, appending to got (room for want + 1 bytes, so that one byte too
 * many is seen). */
static void srv_drain(pair_t *p, uint8_t *got, size_t *have, size_t want, size_t cap) {
    for (int i = 0; i < 1 << 22; i++) {
        size_t room = want + 1 - *have;
        int r = dlg_tlsio_read(&p->srv, got + *have, room < cap ? room : cap);
        if (r == 0)
            return;
        if (r < 0)
            fail_msg("dlg_tlsio_read: %d (%s)", r,
                     dlg_tlsio_why(&p->srv) ? dlg_tlsio_why(&p->srv) : "-");
        assert_true((size_t)r <= (room < cap ? room : cap));
        *have += (size_t)r;
        assert_true(*have <= want);
    }
    fail_msg("server read did not stop");
}

/* Client writes len bytes; they reach the server feed_chunk bytes at a
 * time, the server reading at most read_cap bytes per call after each
 * feed; the bytes read must be exactly those written. */
static void c2s_data(pair_t *p, size_t len, uint32_t seed, size_t feed_chunk, size_t read_cap) {
    uint8_t *data = g_data, *got = g_got;
    assert_true(len <= MAX_DATA);
    fill(data, len, seed);
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->cli, data, len, &w), 1);
    assert_int_equal(w, len);
    size_t have = 0;
    uint8_t tmp[4096];
    if (feed_chunk > sizeof(tmp))
        feed_chunk = sizeof(tmp);
    for (int i = 0; i < 1 << 22 && BIO_ctrl_pending(p->cout) > 0; i++) {
        int n = BIO_read(p->cout, tmp, (int)feed_chunk);
        assert_true(n > 0);
        assert_int_equal(dlg_tlsio_feed(&p->srv, tmp, (size_t)n), 0);
        srv_drain(p, got, &have, len, read_cap);
    }
    srv_drain(p, got, &have, len, read_cap);
    assert_int_equal(have, len);
    assert_memory_equal(got, data, len);
}

/* Reads everything the client can decrypt now into got (room want + 1). */
static void cli_drain(pair_t *p, uint8_t *got, size_t *have, size_t want) {
    for (int i = 0; i < 1 << 22; i++) {
        size_t n = 0;
        int r = SSL_read_ex(p->cli, got + *have, want + 1 - *have, &n);
        if (r != 1) {
            int e = SSL_get_error(p->cli, r);
            if (e != SSL_ERROR_WANT_READ)
                fail_msg("client SSL_read: error %d, %s", e,
                         ERR_reason_error_string(ERR_peek_last_error()));
            return;
        }
        *have += n;
        assert_true(*have <= want);
    }
    fail_msg("client read did not stop");
}

/* Odd chunk sizes that cut records and headers at changing places. */
static size_t odd_chunk(size_t i) {
    static const size_t sizes[] = {1, 3, 5, 17, 333, 4099, 2, 1021};
    return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* Server writes len bytes; the client gets the ciphertext in pieces (odd
 * sizes if odd, else 4 KiB) and reads after each; the bytes must match. */
static void s2c_data(pair_t *p, size_t len, uint32_t seed, int odd) {
    uint8_t *data = g_data, *got = g_got;
    assert_true(len <= MAX_DATA);
    fill(data, len, seed);
    assert_int_equal(dlg_tlsio_write(&p->srv, data, len), 0);
    size_t have = 0;
    uint8_t tmp[4099];
    for (size_t i = 0; i < 1u << 22 && dlg_tlsio_out_pending(&p->srv) > 0; i++) {
        size_t n = dlg_tlsio_out_take(&p->srv, tmp, odd ? odd_chunk(i) : 4096);
        assert_true(n > 0);
        assert_int_equal(BIO_write(p->cin, tmp, (int)n), (int)n);
        cli_drain(p, got, &have, len);
    }
    cli_drain(p, got, &have, len);
    assert_int_equal(have, len);
    assert_memory_equal(got, data, len);
}

static void assert_lean(const pair_t *p) {
    assert_non_null(p->srv.rl);
    assert_null(p->srv.ssl);
    assert_null(p->srv.bio);
    assert_null(p->srv.sec); /* the secrets are gone once handed over */
}

/* ---- 1. the three suites ------------------------------------------------- */

static void suite_roundtrip(uint16_t suite) {
    pair_t *p = pair_new(1, suite, 0);
    handshake(p);
    assert_lean(p);
    /* The client really negotiated the suite we forced. */
    assert_int_equal(SSL_version(p->cli), TLS1_3_VERSION);
    assert_int_equal(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(p->cli)), suite);

    c2s_data(p, 1, 1, 4096, 65536);
    c2s_data(p, 100, 2, 4096, 7);     /* partial reads of one record */
    c2s_data(p, 70000, 3, 4096, 7);   /* partial reads across records */
    c2s_data(p, 70000, 4, 4096, 65536);

    /* 70,000 bytes are sealed as four full records and a short one. */
    uint8_t *big = g_data, *got = g_got;
    fill(big, 70000, 5);
    assert_int_equal(dlg_tlsio_write(&p->srv, big, 70000), 0);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv),
                     4 * dlg_tls13_sealed_len(16384) + dlg_tls13_sealed_len(70000 - 4 * 16384));
    s2c_move(p);
    size_t have = 0;
    cli_drain(p, got, &have, 70000);
    assert_int_equal(have, 70000);
    assert_memory_equal(got, big, 70000);

    s2c_data(p, 1, 6, 0);
    s2c_data(p, 100, 7, 0);
    s2c_data(p, 70000, 8, 0);
    /* Interleaved directions keep their own sequence numbers. */
    for (uint32_t i = 0; i < 5; i++) {
        c2s_data(p, 10 + i, 100 + i, 4096, 65536);
        s2c_data(p, 20 + i, 200 + i, 0);
    }
    assert_lean(p);
    pair_free(p);
}

static void lean_aes128(void **state) {
    (void)state;
    suite_roundtrip(0x1301);
}

static void lean_aes256(void **state) {
    (void)state;
    suite_roundtrip(0x1302);
}

static void lean_chacha(void **state) {
    (void)state;
    suite_roundtrip(0x1303);
}

/* ---- 2. records split across feeds ---------------------------------------- */

static void split_feeds(void **state) {
    (void)state;
    static const uint16_t suites[] = {0x1301, 0x1302, 0x1303};
    for (size_t s = 0; s < 3; s++) {
        pair_t *p = pair_new(1, suites[s], 0);
        handshake(p);
        assert_lean(p);
        /* One byte per feed, a read after each: every header and body is
         * cut at every place. */
        c2s_data(p, 1, 10, 1, 65536);
        c2s_data(p, 100, 11, 1, 7);
        c2s_data(p, 40000, 12, 1, 65536);
        c2s_data(p, 40000, 13, 3, 5);
        /* Our records to OpenSSL in odd pieces. */
        s2c_data(p, 1, 14, 1);
        s2c_data(p, 100, 15, 1);
        s2c_data(p, 70000, 16, 1);
        pair_free(p);
    }
}

/* Several client records fed at once, read in one call. */
static void coalesced_feed(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1301, 0);
    handshake(p);
    assert_lean(p);
    uint8_t data[3000], got[3001];
    fill(data, sizeof(data), 20);
    for (size_t off = 0; off < sizeof(data); off += 300) {
        size_t w = 0;
        assert_int_equal(SSL_write_ex(p->cli, data + off, 300, &w), 1);
    }
    c2s_move(p, 4096);
    size_t have = 0;
    srv_drain(p, got, &have, sizeof(data), sizeof(got));
    assert_int_equal(have, sizeof(data));
    assert_memory_equal(got, data, sizeof(data));
    pair_free(p);
}

/* ---- 3. application data in the client's Finished flight ------------------ */

static uint8_t early_data[500];

static void write_after_finished(pair_t *p) {
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->cli, early_data, sizeof(early_data), &w), 1);
}

static void keyupdate_and_write_after_finished(pair_t *p) {
    assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
    write_after_finished(p);
}

static void data_in_finished_flight(void **state) {
    (void)state;
    fill(early_data, sizeof(early_data), 30);
    for (int variant = 0; variant < 2; variant++) {
        pair_t *p = pair_new(1, 0x1303, 0);
        handshake_ex(p, variant == 0 ? write_after_finished : keyupdate_and_write_after_finished);
        /* The records after Finished were still in `in` at the handover. */
        assert_lean(p);
        uint8_t got[sizeof(early_data) + 1];
        size_t have = 0;
        srv_drain(p, got, &have, sizeof(early_data), sizeof(got));
        assert_int_equal(have, sizeof(early_data));
        assert_memory_equal(got, early_data, sizeof(early_data));
        if (variant == 1) /* the answer to the KeyUpdate */
            assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(5));
        s2c_data(p, 300, 31, 0);
        c2s_data(p, 300, 32, 4096, 65536);
        pair_free(p);
    }
}

/* ---- 4. KeyUpdate ---------------------------------------------------------- */

static void key_update_both_kinds(void **state) {
    (void)state;
    static const uint16_t suites[] = {0x1301, 0x1302, 0x1303};
    for (size_t s = 0; s < 3; s++) {
        pair_t *p = pair_new(1, suites[s], 0);
        handshake(p);
        assert_lean(p);
        for (uint32_t round = 0; round < 4; round++) {
            int req = round % 2 == 0;
            assert_int_equal(SSL_key_update(p->cli, req ? SSL_KEY_UPDATE_REQUESTED
                                                        : SSL_KEY_UPDATE_NOT_REQUESTED),
                             1);
            c2s_data(p, 1000, 40 + round, 4096, 65536);
            /* Requested: one KeyUpdate back (5-byte message), nothing
             * otherwise. */
            assert_int_equal(dlg_tlsio_out_pending(&p->srv),
                             req ? dlg_tls13_sealed_len(5) : 0);
            s2c_data(p, 1000, 50 + round, 0);
            /* And the client still reaches the server after that. */
            c2s_data(p, 77, 60 + round, 4096, 65536);
        }
        assert_lean(p);
        pair_free(p);
    }
}

/* Several KeyUpdates back to back before any data, then data: the server
 * moves its read key each time; its one answer, still unsent, answers
 * every request (RFC 8446 4.6.3), and OpenSSL follows it. */
static void key_update_several_in_a_row(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1302, 0);
    handshake(p);
    assert_lean(p);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(SSL_key_update(p->cli, i == 2 ? SSL_KEY_UPDATE_NOT_REQUESTED
                                                       : SSL_KEY_UPDATE_REQUESTED),
                         1);
        assert_int_equal(SSL_do_handshake(p->cli), 1); /* sends it */
    }
    c2s_data(p, 5000, 70, 4096, 65536);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(5));
    s2c_data(p, 5000, 71, 1);
    /* Data, update, data in one flight, read in one call. */
    uint8_t a[200], b[200], got[401];
    fill(a, sizeof(a), 72);
    fill(b, sizeof(b), 73);
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->cli, a, sizeof(a), &w), 1);
    assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write_ex(p->cli, b, sizeof(b), &w), 1);
    c2s_move(p, 4096);
    size_t have = 0;
    srv_drain(p, got, &have, 400, sizeof(got));
    assert_int_equal(have, 400);
    assert_memory_equal(got, a, 200);
    assert_memory_equal(got + 200, b, 200);
    s2c_data(p, 3000, 74, 0);
    pair_free(p);
}

/* ---- 5. close_notify ------------------------------------------------------ */

static void close_from_client(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1301, 0);
    handshake(p);
    assert_lean(p);
    uint8_t data[123], got[200];
    fill(data, sizeof(data), 80);
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->cli, data, sizeof(data), &w), 1);
    assert_int_equal(SSL_shutdown(p->cli), 0); /* sent, peer's not seen yet */
    c2s_move(p, 4096);
    /* The data first, then the close. */
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), (int)sizeof(data));
    assert_memory_equal(got, data, sizeof(data));
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ECLOSED);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ECLOSED);
    assert_null(dlg_tlsio_why(&p->srv));
    /* Our side answers with its own close_notify; OpenSSL completes. */
    dlg_tlsio_shutdown(&p->srv);
    assert_true(dlg_tlsio_out_pending(&p->srv) > 0);
    s2c_move(p);
    assert_int_equal(SSL_shutdown(p->cli), 1);
    assert_int_equal(dlg_tlsio_write(&p->srv, "x", 1), DLG_ETLS);
    pair_free(p);
}

static void close_from_server(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1302, 0);
    handshake(p);
    assert_lean(p);
    s2c_data(p, 50, 90, 0);
    dlg_tlsio_shutdown(&p->srv);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(2));
    dlg_tlsio_shutdown(&p->srv); /* a second call queues nothing more */
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(2));
    assert_int_equal(dlg_tlsio_write(&p->srv, "x", 1), DLG_ETLS);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(2));
    s2c_move(p);
    uint8_t got[16];
    size_t n = 0;
    assert_int_equal(SSL_read_ex(p->cli, got, sizeof(got), &n), 0);
    assert_int_equal(SSL_get_error(p->cli, 0), SSL_ERROR_ZERO_RETURN);
    /* TLS 1.3 closes each direction on its own: the client may still
     * send, and the server still reads. */
    c2s_data(p, 600, 91, 4096, 65536);
    pair_free(p);
}

/* ---- 6. tampered and malformed records ------------------------------------ */

/* Feeds the server's pending alert to the client and checks that OpenSSL
 * saw the alert `reason` (an SSL_R_*ALERT* code). */
static void client_sees_alert(pair_t *p, int reason) {
    assert_true(dlg_tlsio_out_pending(&p->srv) > 0);
    s2c_move(p);
    uint8_t got[16];
    size_t n = 0;
    ERR_clear_error();
    assert_int_equal(SSL_read_ex(p->cli, got, sizeof(got), &n), 0);
    assert_int_equal(SSL_get_error(p->cli, 0), SSL_ERROR_SSL);
    assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), reason);
    ERR_clear_error();
}

/* After a failure every call keeps failing and nothing more is sent. */
static void assert_dead(pair_t *p) {
    uint8_t got[16];
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
    assert_int_equal(dlg_tlsio_write(&p->srv, "x", 1), DLG_ETLS);
    size_t before = dlg_tlsio_out_pending(&p->srv);
    dlg_tlsio_shutdown(&p->srv);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), before);
    assert_non_null(dlg_tlsio_why(&p->srv));
}

/* Writes 100 bytes on the client and returns its one record (122 bytes:
 * header, data, inner type, tag) in rec. */
static size_t client_record(pair_t *p, uint8_t *rec, size_t cap) {
    uint8_t data[100];
    fill(data, sizeof(data), 99);
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->cli, data, sizeof(data), &w), 1);
    int n = BIO_read(p->cout, rec, (int)cap);
    assert_int_equal(n, (int)dlg_tls13_sealed_len(100));
    assert_int_equal(BIO_ctrl_pending(p->cout), 0);
    return (size_t)n;
}

static void tampered_record(void **state) {
    (void)state;
    /* Flip one bit: in the body, in the tag, in the header (it is the
     * AEAD's additional data). */
    static const size_t where[] = {5 + 40, 121, 2};
    static const uint16_t suites[] = {0x1301, 0x1302, 0x1303};
    for (size_t s = 0; s < 3; s++) {
        for (size_t k = 0; k < 3; k++) {
            pair_t *p = pair_new(1, suites[s], 0);
            handshake(p);
            assert_lean(p);
            c2s_data(p, 10, 98, 4096, 65536); /* a good record first */
            uint8_t rec[256], got[200];
            size_t n = client_record(p, rec, sizeof(rec));
            rec[where[k]] ^= 0x04;
            assert_int_equal(dlg_tlsio_feed(&p->srv, rec, n), 0);
            assert_int_equal(dlg_tlsio_out_pending(&p->srv), 0);
            assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
            assert_non_null(dlg_tlsio_why(&p->srv));
            /* bad_record_mac, sealed so that OpenSSL can open it. */
            assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(2));
            assert_dead(p);
            client_sees_alert(p, SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
            pair_free(p);
        }
    }
}

static void oversized_header(void **state) {
    (void)state;
    /* 2^14 + 256 after the header is the most a peer may announce: the
     * server waits for the body. */
    pair_t *p = pair_new(1, 0x1301, 0);
    handshake(p);
    assert_lean(p);
    uint8_t hdr[5] = {23, 3, 3, 0x41, 0x00}, got[16];
    assert_int_equal(dlg_tlsio_feed(&p->srv, hdr, sizeof(hdr)), 0);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), 0);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), 0);
    pair_free(p);

    /* One byte more is refused from the header alone. */
    p = pair_new(1, 0x1301, 0);
    handshake(p);
    assert_lean(p);
    hdr[4] = 0x01; /* 2^14 + 257 */
    assert_int_equal(dlg_tlsio_feed(&p->srv, hdr, sizeof(hdr)), 0);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
    assert_non_null(dlg_tlsio_why(&p->srv));
    assert_dead(p);
    client_sees_alert(p, SSL_R_TLSV1_ALERT_RECORD_OVERFLOW);
    pair_free(p);

    /* Also with the header cut in two feeds. */
    p = pair_new(1, 0x1303, 0);
    handshake(p);
    assert_lean(p);
    hdr[3] = 0xff;
    hdr[4] = 0xff;
    assert_int_equal(dlg_tlsio_feed(&p->srv, hdr, 3), 0);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), 0);
    assert_int_equal(dlg_tlsio_feed(&p->srv, hdr + 3, 2), 0);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
    pair_free(p);
}

static void plaintext_after_handshake(void **state) {
    (void)state;
    /* A plaintext close_notify alert, a change_cipher_spec, a plaintext
     * handshake message (a KeyUpdate), and a too-short protected record. */
    static const uint8_t alert[] = {21, 3, 3, 0, 2, 1, 0};
    static const uint8_t ccs[] = {20, 3, 3, 0, 1, 1};
    static const uint8_t hs[] = {22, 3, 3, 0, 5, 24, 0, 0, 1, 0};
    static const uint8_t shortrec[] = {23, 3, 3, 0, 3, 1, 2, 3};
    static const struct {
        const uint8_t *rec;
        size_t len;
        int reason;
    } cases[] = {
        {alert, sizeof(alert), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE},
        {ccs, sizeof(ccs), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE},
        {hs, sizeof(hs), SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE},
        {shortrec, sizeof(shortrec), SSL_R_TLSV1_ALERT_DECODE_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pair_t *p = pair_new(1, 0x1301, 0);
        handshake(p);
        assert_lean(p);
        uint8_t got[16];
        assert_int_equal(dlg_tlsio_feed(&p->srv, cases[i].rec, cases[i].len), 0);
        assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
        assert_false(p->srv.read_closed); /* a plaintext close_notify is no close */
        assert_dead(p);
        client_sees_alert(p, cases[i].reason);
        pair_free(p);
    }
}

/* Data that authenticated before a bad record is delivered; the failure
 * comes on the next call. That is what the OpenSSL path does (checked
 * first, lean = 0), and what lean_read does itself when the bad thing is a
 * peer's fatal alert. */
static void good_data_before_bad_record(void **state) {
    (void)state;
    for (int lean = 0; lean < 2; lean++) {
        pair_t *p = pair_new(lean, 0x1302, 0);
        handshake(p);
        if (lean)
            assert_lean(p);
        else
            assert_null(p->srv.rl);
        uint8_t data[300], rec[256], got[512];
        fill(data, sizeof(data), 110);
        size_t w = 0;
        assert_int_equal(SSL_write_ex(p->cli, data, sizeof(data), &w), 1);
        c2s_move(p, 4096);
        size_t n = client_record(p, rec, sizeof(rec));
        rec[10] ^= 1;
        assert_int_equal(dlg_tlsio_feed(&p->srv, rec, n), 0);
        assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), (int)sizeof(data));
        assert_memory_equal(got, data, sizeof(data));
        assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
        /* The reason survives for the log, whichever layer refused it
         * (OpenSSL's error queue is cleared by then). */
        char why[256];
        dlg_tlsio_error(&p->srv, why, sizeof(why));
        assert_non_null(strstr(why, lean ? "bad record MAC" : "bad record mac"));
        if (lean)
            assert_dead(p);
        pair_free(p);
    }
}

/* ---- 7, 8. sessions that stay on OpenSSL ---------------------------------- */

static void stays_on_openssl(pair_t *p) {
    assert_null(p->srv.rl);
    assert_non_null(p->srv.ssl);
    c2s_data(p, 1, 120, 4096, 65536);
    c2s_data(p, 100, 121, 4096, 7);
    c2s_data(p, 70000, 122, 4096, 65536);
    s2c_data(p, 1, 123, 0);
    s2c_data(p, 100, 124, 1);
    s2c_data(p, 70000, 125, 0);
    assert_null(p->srv.rl);
}

static void tls12_stays_on_openssl(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0, TLS1_2_VERSION);
    handshake(p);
    assert_int_equal(SSL_version(p->srv.ssl), TLS1_2_VERSION);
    stays_on_openssl(p);
    pair_free(p);
}

static void no_lean_ctx_stays_on_openssl(void **state) {
    (void)state;
    pair_t *p = pair_new(0, 0x1301, 0);
    handshake(p);
    assert_int_equal(SSL_version(p->srv.ssl), TLS1_3_VERSION);
    stays_on_openssl(p);
    pair_free(p);
}

/* ---- 10. compact ------------------------------------------------------------ */

static void compact_idle(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1301, 0);
    handshake(p);
    assert_lean(p);
    c2s_data(p, 5000, 130, 4096, 65536);
    s2c_data(p, 5000, 131, 0);
    assert_int_equal(dlg_tlsio_compact(&p->srv), 1);
    assert_null(p->srv.in);
    assert_null(p->srv.out);

    /* A record half read is still in `in`: nothing to free there, and the
     * rest of it is still readable. */
    uint8_t data[100], got[101];
    fill(data, sizeof(data), 132);
    size_t w = 0;
    assert_int_equal(SSL_write_ex(p->cli, data, sizeof(data), &w), 1);
    c2s_move(p, 4096);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, 7), 7);
    assert_int_equal(dlg_tlsio_compact(&p->srv), 0);
    assert_non_null(p->srv.in);
    assert_int_equal(dlg_tlsio_read(&p->srv, got + 7, sizeof(got) - 7), 93);
    assert_memory_equal(got, data, sizeof(data));
    assert_int_equal(dlg_tlsio_compact(&p->srv), 1);

    /* Unsent output is kept. */
    assert_int_equal(dlg_tlsio_write(&p->srv, "hello", 5), 0);
    assert_int_equal(dlg_tlsio_compact(&p->srv), 0);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(5));
    s2c_move(p);
    size_t have = 0;
    uint8_t hi[6];
    cli_drain(p, hi, &have, 5);
    assert_int_equal(have, 5);
    assert_memory_equal(hi, "hello", 5);

    /* Compacted between every exchange, the session goes on. */
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(dlg_tlsio_compact(&p->srv), 1);
        c2s_data(p, 3000 + i, 140 + i, 1000, 65536);
        assert_int_equal(dlg_tlsio_compact(&p->srv), 1);
        s2c_data(p, 3000 + i, 150 + i, 0);
    }
    assert_lean(p);
    pair_free(p);
}

/* ---- 9. key wear -------------------------------------------------------------- */

/* After DLG_TLS13_KEY_RECORDS records under one key, the next write is
 * preceded by a KeyUpdate and sealed under the next key; OpenSSL on the
 * other side must follow. It takes 2^23 real records (no way to start at a
 * high sequence number without changing the code): about 4 s, 11 s under
 * ASan. */
static void key_wear(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1301, 0);
    handshake(p);
    assert_lean(p);
    const uint64_t total = DLG_TLS13_KEY_RECORDS;
    const size_t batch = 4096;
    uint64_t written = 0, seen = 0;
    uint8_t got[64];
    while (written < total) {
        size_t k;
        for (k = 0; k < batch && written < total; k++, written++) {
            uint8_t b = (uint8_t)(written * 7 + 3);
            if (dlg_tlsio_write(&p->srv, &b, 1) != 0)
                fail_msg("write %llu failed", (unsigned long long)written);
        }
        /* No KeyUpdate yet: exactly one 1-byte record per write. */
        assert_int_equal(dlg_tlsio_out_pending(&p->srv), k * dlg_tls13_sealed_len(1));
        s2c_move(p);
        for (size_t i = 0; i < batch + 2; i++) {
            size_t n = 0;
            if (SSL_read_ex(p->cli, got, sizeof(got), &n) != 1) {
                assert_int_equal(SSL_get_error(p->cli, 0), SSL_ERROR_WANT_READ);
                break;
            }
            for (size_t j = 0; j < n; j++, seen++)
                if (got[j] != (uint8_t)(seen * 7 + 3))
                    fail_msg("byte %llu differs", (unsigned long long)seen);
        }
        assert_int_equal(seen, written);
    }
    /* The next record comes after a KeyUpdate (not requested). */
    assert_int_equal(dlg_tlsio_write(&p->srv, "K", 1), 0);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv),
                     dlg_tls13_sealed_len(5) + dlg_tls13_sealed_len(1));
    s2c_move(p);
    size_t n = 0;
    assert_int_equal(SSL_read_ex(p->cli, got, sizeof(got), &n), 1);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 'K');
    /* The new key has just started: no further KeyUpdate. */
    assert_int_equal(dlg_tlsio_write(&p->srv, "L", 1), 0);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(1));
    s2c_move(p);
    assert_int_equal(SSL_read_ex(p->cli, got, sizeof(got), &n), 1);
    assert_int_equal(got[0], 'L');
    s2c_data(p, 20000, 170, 0);
    c2s_data(p, 20000, 171, 4096, 65536);
    pair_free(p);
}

/* ---- our own client against our own server -------------------------------- */

/* Sessions of the tests with our client: both ends dlg_tlsio (as the
 * daemon and its client library meet), or our client and a plain OpenSSL
 * server. Static so that the sessions never move and the teardown can free
 * them after a failed assert. */
static struct {
    SSL_CTX *sctx, *cctx;
    dlg_tlsio s, c;
    SSL *srv; /* the OpenSSL server, when there is one */
} g_duo;

static int duo_teardown(void **state) {
    (void)state;
    dlg_tlsio_free(&g_duo.s);
    dlg_tlsio_free(&g_duo.c);
    SSL_free(g_duo.srv);
    SSL_CTX_free(g_duo.sctx);
    SSL_CTX_free(g_duo.cctx);
    memset(&g_duo, 0, sizeof(g_duo));
    ERR_clear_error();
    return 0;
}

/* Moves all of from's ciphertext into to. */
static void duo_move(dlg_tlsio *from, dlg_tlsio *to) {
    uint8_t tmp[4096];
    size_t n;
    for (int i = 0; i < 1 << 20 && (n = dlg_tlsio_out_take(from, tmp, sizeof(tmp))) > 0; i++)
        assert_int_equal(dlg_tlsio_feed(to, tmp, n), 0);
    assert_int_equal(dlg_tlsio_out_pending(from), 0);
}

/* Moves all of from's ciphertext into the OpenSSL peer's read BIO. */
static void tio_to_bio(dlg_tlsio *from, BIO *to) {
    uint8_t tmp[4096];
    size_t n;
    for (int i = 0; i < 1 << 20 && (n = dlg_tlsio_out_take(from, tmp, sizeof(tmp))) > 0; i++)
        assert_int_equal(BIO_write(to, tmp, (int)n), (int)n);
    assert_int_equal(dlg_tlsio_out_pending(from), 0);
}

/* Moves all the OpenSSL peer's ciphertext into to. */
static void bio_to_tio(BIO *from, dlg_tlsio *to) {
    uint8_t tmp[4096];
    int n;
    for (int i = 0; i < 1 << 20 && (n = BIO_read(from, tmp, sizeof(tmp))) > 0; i++)
        assert_int_equal(dlg_tlsio_feed(to, tmp, (size_t)n), 0);
    assert_int_equal(BIO_ctrl_pending(from), 0);
}

/* Reads t dry; what it read must be g_data's first len bytes, exactly. */
static void tio_read_check(dlg_tlsio *t, size_t len) {
    size_t have = 0;
    for (int i = 0; i < 1 << 20; i++) {
        int r = dlg_tlsio_read(t, g_got + have, len + 1 - have);
        assert_true(r >= 0);
        if (r == 0)
            break;
        have += (size_t)r;
        assert_true(have <= len);
    }
    assert_int_equal(have, len);
    assert_memory_equal(g_got, g_data, len);
}

static void dlg_client_to_lean_server(void **state) {
    (void)state;
    g_duo.sctx = SSL_CTX_new(TLS_server_method());
    g_duo.cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(g_duo.sctx);
    assert_non_null(g_duo.cctx);
    assert_int_equal(SSL_CTX_use_certificate(g_duo.sctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(g_duo.sctx, g_key), 1);
    assert_int_equal(dlg_tlsio_ctx_lean(g_duo.sctx), 0);
    assert_int_equal(dlg_tlsio_ctx_lean(g_duo.cctx), 0);
    SSL_CTX_set_verify(g_duo.cctx, SSL_VERIFY_NONE, NULL);
    dlg_tlsio *s = &g_duo.s, *c = &g_duo.c;
    assert_int_equal(dlg_tlsio_init(s, g_duo.sctx, 1, NULL, 0), 0);
    assert_int_equal(dlg_tlsio_init(c, g_duo.cctx, 0, NULL, 0), 0);
    int sd = 0, cd = 0;
    for (int i = 0; i < 50 && !(sd && cd); i++) {
        if (!cd) {
            int r = dlg_tlsio_handshake(c, NULL, 0);
            assert_true(r >= 0);
            cd = r == 1;
        }
        duo_move(c, s);
        if (!sd) {
            int r = dlg_tlsio_handshake(s, NULL, 0);
            assert_true(r >= 0);
            sd = r == 1;
        }
        duo_move(s, c);
    }
    assert_true(sd && cd);
    /* Before the handover both are still OpenSSL's; a client keeps its
     * server's certificate checked and hands over too. */
    assert_null(s->rl);
    assert_int_equal(dlg_tlsio_handover(s), 1);
    assert_int_equal(dlg_tlsio_handover(c), 1);
    assert_non_null(s->rl);
    assert_non_null(c->rl);
    assert_null(c->ssl);
    static const size_t lens[] = {1, 100, 70000};
    for (uint32_t round = 0; round < 3; round++) {
        size_t len = lens[round];
        /* client -> server, then server -> client */
        for (int dir = 0; dir < 2; dir++) {
            dlg_tlsio *from = dir == 0 ? c : s, *to = dir == 0 ? s : c;
            fill(g_data, len, 160 + round * 2 + (uint32_t)dir);
            assert_int_equal(dlg_tlsio_write(from, g_data, len), 0);
            duo_move(from, to);
            tio_read_check(to, len);
        }
    }
    /* A close from our server reaches our client as a clean close. */
    dlg_tlsio_shutdown(s);
    duo_move(s, c);
    assert_int_equal(dlg_tlsio_read(c, g_got, 16), DLG_ECLOSED);
}

/* Our client on our record layer against a plain OpenSSL server that does
 * what ours does not: it sends NewSessionTickets after the handshake (the
 * client ignores them) and asks for a key update of its own. */
static void lean_client_to_openssl_server(void **state) {
    (void)state;
    g_duo.sctx = SSL_CTX_new(TLS_server_method());
    g_duo.cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(g_duo.sctx);
    assert_non_null(g_duo.cctx);
    assert_int_equal(SSL_CTX_use_certificate(g_duo.sctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(g_duo.sctx, g_key), 1);
    assert_int_equal(SSL_CTX_set_num_tickets(g_duo.sctx, 3), 1);
    assert_int_equal(dlg_tlsio_ctx_lean(g_duo.cctx), 0);
    SSL_CTX_set_verify(g_duo.cctx, SSL_VERIFY_NONE, NULL);
    dlg_tlsio *c = &g_duo.c;
    assert_int_equal(dlg_tlsio_init(c, g_duo.cctx, 0, NULL, 0), 0);
    SSL *srv = g_duo.srv = SSL_new(g_duo.sctx);
    assert_non_null(srv);
    BIO *sin = BIO_new(BIO_s_mem()), *sout = BIO_new(BIO_s_mem());
    assert_non_null(sin);
    assert_non_null(sout);
    SSL_set_bio(srv, sin, sout);
    SSL_set_accept_state(srv);
    int cd = 0, sd = 0;
    for (int i = 0; i < 50 && !(cd && sd); i++) {
        if (!cd) {
            int r = dlg_tlsio_handshake(c, NULL, 0);
            assert_true(r >= 0);
            cd = r == 1;
        }
        tio_to_bio(c, sin);
        if (!sd) {
            int r = SSL_do_handshake(srv);
            sd = r == 1;
            if (!sd)
                assert_int_equal(SSL_get_error(srv, r), SSL_ERROR_WANT_READ);
        }
        bio_to_tio(sout, c);
    }
    assert_true(cd && sd);
    assert_int_equal(dlg_tlsio_handover(c), 1);
    for (int round = 0; round < 3; round++) {
        /* server -> client; the tickets come first in round 0, a KeyUpdate
         * the client must answer in round 1 */
        if (round == 1)
            assert_int_equal(SSL_key_update(srv, SSL_KEY_UPDATE_REQUESTED), 1);
        size_t len = round == 2 ? 70000 : 100;
        fill(g_data, len, 300 + (uint32_t)round);
        size_t w = 0;
        assert_int_equal(SSL_write_ex(srv, g_data, len, &w), 1);
        bio_to_tio(sout, c);
        tio_read_check(c, len);
        /* client -> server, under the client's next key after round 1 */
        fill(g_data, len, 400 + (uint32_t)round);
        assert_int_equal(dlg_tlsio_write(c, g_data, len), 0);
        tio_to_bio(c, sin);
        size_t have = 0;
        for (int i = 0; i < 1 << 20 && have < len; i++) {
            size_t r = 0;
            if (SSL_read_ex(srv, g_got + have, len - have, &r) != 1)
                break;
            have += r;
        }
        assert_int_equal(have, len);
        assert_memory_equal(g_got, g_data, len);
    }
}

/* ---- session tickets and resumption ---------------------------------------- */

/* A server that sends session tickets (a listener with a ticket_key) still
 * leaves OpenSSL: the tickets went out under its application key, so our
 * record layer numbers its records after them, and the client (plain
 * OpenSSL, which checks every nonce) reads both ways. */
static void lean_server_sends_tickets(void **state) {
    (void)state;
    pair_t *p = pair_new(1, 0x1301, 0);
    dlg_tlsio_free(&p->srv);
    assert_int_equal(SSL_CTX_set_num_tickets(p->sctx, 2), 1);
    assert_int_equal(dlg_tlsio_init(&p->srv, p->sctx, 1, NULL, 0), 0);
    handshake(p);
    assert_lean(p);
    s2c_data(p, 100, 180, 0);
    c2s_data(p, 100, 181, 4096, 65536);
    s2c_data(p, 70000, 182, 1);
    /* The client did get the tickets: its session can be resumed. */
    SSL_SESSION *sess = SSL_get1_session(p->cli);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    SSL_SESSION_free(sess);
    pair_free(p);
}

/* One handshake of g_duo: our server (lean, tickets) and our client
 * (resuming context) for server name sni; the server hands over, sends
 * 100 bytes, and the client reads them (and the ticket before them).
 * Returns whether the client resumed. */
static int duo_connect(const char *sni) {
    dlg_tlsio *s = &g_duo.s, *c = &g_duo.c;
    dlg_tlsio_free(s);
    dlg_tlsio_free(c);
    assert_int_equal(dlg_tlsio_init(s, g_duo.sctx, 1, NULL, 0), 0);
    assert_int_equal(dlg_tlsio_init(c, g_duo.cctx, 0, sni, 0), 0);
    int sd = 0, cd = 0;
    for (int i = 0; i < 50 && !(sd && cd); i++) {
        if (!cd) {
            int r = dlg_tlsio_handshake(c, NULL, 0);
            assert_true(r >= 0);
            cd = r == 1;
        }
        duo_move(c, s);
        if (!sd) {
            int r = dlg_tlsio_handshake(s, NULL, 0);
            assert_true(r >= 0);
            sd = r == 1;
        }
        duo_move(s, c);
    }
    assert_true(sd && cd);
    assert_int_equal(dlg_tlsio_handover(s), 1);
    assert_int_equal(dlg_tlsio_handover(c), 0); /* a client stays on OpenSSL */
    int resumed = SSL_session_reused(c->ssl);
    fill(g_data, 100, 190);
    assert_int_equal(dlg_tlsio_write(s, g_data, 100), 0);
    duo_move(s, c);
    tio_read_check(c, 100);
    fill(g_data, 100, 191);
    assert_int_equal(dlg_tlsio_write(c, g_data, 100), 0);
    duo_move(c, s);
    tio_read_check(s, 100);
    return resumed;
}

/* A reconnect of our client offers the ticket of its last session to that
 * server, and the server resumes it; each ticket is offered once, and
 * only to the server name it came from. */
static void client_resumes_with_kept_ticket(void **state) {
    (void)state;
    g_duo.sctx = SSL_CTX_new(TLS_server_method());
    g_duo.cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(g_duo.sctx);
    assert_non_null(g_duo.cctx);
    assert_int_equal(SSL_CTX_use_certificate(g_duo.sctx, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(g_duo.sctx, g_key), 1);
    assert_int_equal(dlg_tlsio_ctx_lean(g_duo.sctx), 0);
    assert_int_equal(SSL_CTX_set_num_tickets(g_duo.sctx, 1), 1);
    SSL_CTX_set_verify(g_duo.cctx, SSL_VERIFY_NONE, NULL);
    assert_int_equal(dlg_tlsio_ctx_resume(g_duo.cctx), 0);
    assert_int_equal(duo_connect("localhost"), 0); /* nothing kept yet */
    assert_int_equal(duo_connect("localhost"), 1);
    assert_int_equal(duo_connect("localhost"), 1); /* the resumed session's new ticket */
    assert_int_equal(duo_connect("other.example"), 0);
    /* Taken by a session that got no ticket: the next one is full. */
    dlg_tlsio_free(&g_duo.c);
    assert_int_equal(dlg_tlsio_init(&g_duo.c, g_duo.cctx, 0, "localhost", 0), 0);
    dlg_tlsio_free(&g_duo.c);
    assert_int_equal(duo_connect("localhost"), 0);
    /* A context without dlg_tlsio_ctx_resume never resumes. */
    SSL_CTX_free(g_duo.cctx);
    g_duo.cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(g_duo.cctx);
    SSL_CTX_set_verify(g_duo.cctx, SSL_VERIFY_NONE, NULL);
    assert_int_equal(duo_connect("localhost"), 0);
    assert_int_equal(duo_connect("localhost"), 0);
}

/* ---- 11. limits: records without data, KeyUpdate answers, inner length --- */

/* A session on our record layer without a handshake, as the fuzz harness
 * makes it: t reads with secret A and writes with B, the peer (a second
 * dlg_tls13) the other way round. Static, so the teardown frees it after a
 * failed assert. */
static struct {
    dlg_tlsio t;
    dlg_tls13 *peer;
} g_rl;

static const uint8_t secret_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                                     31, 32};
static const uint8_t secret_b[32] = {0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
                                     0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
                                     0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
                                     0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf};

static int rl_teardown(void **state) {
    (void)state;
    dlg_tlsio_free(&g_rl.t);
    dlg_tls13_free(g_rl.peer);
    memset(&g_rl, 0, sizeof(g_rl));
    return 0;
}

/* A fresh session (AES-128-GCM), both directions at sequence number 0. */
static dlg_tlsio *rl_new(void) {
    rl_teardown(NULL);
    assert_int_equal(dlg_tls13_new(0x1301, secret_a, secret_b, 32, &g_rl.t.rl), 0);
    assert_int_equal(dlg_tls13_new(0x1301, secret_b, secret_a, 32, &g_rl.peer), 0);
    g_rl.t.done = 1;
    return &g_rl.t;
}

/* The peer seals one record of `type` and it reaches t. */
static void peer_send(uint8_t type, const void *data, size_t len) {
    uint8_t rec[DLG_TLS13_MAX_PLAIN + 64];
    assert_true(len <= DLG_TLS13_MAX_PLAIN);
    assert_int_equal(dlg_tls13_seal(g_rl.peer, type, data, len, rec), 0);
    assert_int_equal(dlg_tlsio_feed(&g_rl.t, rec, dlg_tls13_sealed_len(len)), 0);
}

/* The peer sends KeyUpdate(requested or not) and moves its write key. */
static void peer_key_update(int requested) {
    const uint8_t ku[5] = {24, 0, 0, 1, (uint8_t)requested};
    peer_send(DLG_TLS13_HANDSHAKE, ku, sizeof(ku));
    assert_int_equal(dlg_tls13_update_write(g_rl.peer), 0);
}

/* What the peer found in t's output: KeyUpdates (its read key follows
 * each), application bytes, and the last alert. */
typedef struct {
    size_t key_updates, app_bytes;
    int alert_level, alert_desc; /* -1: none */
} peer_view;

/* Takes up to cap bytes of t's output into the peer's stream and opens
 * every whole record in it; a partial one waits for the next call. */
static void peer_take(peer_view *v, size_t cap) {
    static uint8_t stream[4 * (DLG_TLS13_MAX_PLAIN + 64)];
    static size_t have;
    if (v == NULL) { /* forget a previous test's partial record */
        have = 0;
        return;
    }
    size_t want = dlg_tlsio_out_pending(&g_rl.t);
    if (want > cap)
        want = cap;
    assert_true(have + want <= sizeof(stream));
    assert_int_equal(dlg_tlsio_out_take(&g_rl.t, stream + have, want), want);
    have += want;
    size_t pos = 0;
    while (have - pos >= DLG_TLS13_HDR) {
        size_t body = (size_t)stream[pos + 3] << 8 | stream[pos + 4];
        if (have - pos < DLG_TLS13_HDR + body)
            break;
        size_t off, plen;
        uint8_t type, alert;
        assert_int_equal(dlg_tls13_open(g_rl.peer, stream + pos, DLG_TLS13_HDR + body, &off,
                                        &plen, &type, &alert),
                         0);
        const uint8_t *m = stream + pos + off;
        if (type == DLG_TLS13_HANDSHAKE) {
            static const uint8_t ku0[5] = {24, 0, 0, 1, 0};
            assert_int_equal(plen, 5);
            assert_memory_equal(m, ku0, 5);
            v->key_updates++;
            assert_int_equal(dlg_tls13_update_read(g_rl.peer), 0);
        } else if (type == DLG_TLS13_ALERT) {
            assert_int_equal(plen, 2);
            v->alert_level = m[0];
            v->alert_desc = m[1];
        } else {
            assert_int_equal(type, DLG_TLS13_APPDATA);
            v->app_bytes += plen;
        }
        pos += DLG_TLS13_HDR + body;
    }
    memmove(stream, stream + pos, have - pos);
    have -= pos;
}

/* Sends one record that carries no application data, of kind k. */
enum quiet_kind { Q_EMPTY, Q_USER_CANCELED, Q_KU, Q_KU_REQUESTED, Q_KINDS };

static void peer_quiet(int k) {
    static const uint8_t user_canceled[2] = {1, 90};
    switch (k) {
    case Q_EMPTY: peer_send(DLG_TLS13_APPDATA, "", 0); break;
    case Q_USER_CANCELED: peer_send(DLG_TLS13_ALERT, user_canceled, 2); break;
    case Q_KU: peer_key_update(0); break;
    default: peer_key_update(1); break;
    }
}

/* More than DLG_TLSIO_MAX_QUIET_RECORDS records in a row without
 * application data (empty ones, user_canceled alerts, KeyUpdates of either
 * kind, or a mix) fail the session with unexpected_message; as many as
 * that, with data after them, are fine, again and again (a count of a
 * run, not a total). */
static void quiet_records_capped(void **state) {
    (void)state;
    for (int k = 0; k <= Q_KINDS; k++) { /* Q_KINDS: a mix of the four */
        dlg_tlsio *t = rl_new();
        peer_view v = {0, 0, -1, -1};
        peer_take(NULL, 0);
        uint8_t got[64];
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < DLG_TLSIO_MAX_QUIET_RECORDS; i++)
                peer_quiet(k == Q_KINDS ? i % Q_KINDS : k);
            peer_send(DLG_TLS13_APPDATA, "d", 1);
            assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), 1);
            assert_int_equal(got[0], 'd');
            assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), 0);
            peer_take(&v, SIZE_MAX);
            assert_int_equal(v.alert_desc, -1);
        }
        /* The answers to the requests, one per read at most (see the next
         * test), and the session is still whole both ways. */
        if (k == Q_KU_REQUESTED || k == Q_KINDS)
            assert_true(v.key_updates >= 1);
        assert_int_equal(dlg_tlsio_write(t, "w", 1), 0);
        peer_take(&v, SIZE_MAX);
        assert_int_equal(v.app_bytes, 1);

        for (int i = 0; i <= DLG_TLSIO_MAX_QUIET_RECORDS; i++)
            peer_quiet(k == Q_KINDS ? i % Q_KINDS : k);
        peer_send(DLG_TLS13_APPDATA, "late", 4); /* never read: the session ended before */
        assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), DLG_ETLS);
        assert_non_null(dlg_tlsio_why(t));
        assert_non_null(strstr(dlg_tlsio_why(t), "without application data"));
        assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), DLG_ETLS);
        assert_int_equal(dlg_tlsio_write(t, "x", 1), DLG_ETLS);
        peer_take(&v, SIZE_MAX);
        assert_int_equal(v.alert_level, 2);
        assert_int_equal(v.alert_desc, 10); /* unexpected_message */
        assert_int_equal(v.app_bytes, 1);
    }
}

/* A peer that floods KeyUpdate requests (each followed by data, so that
 * the quiet cap never trips) and never reads gets one answer, not one per
 * request: it waits in `out` and answers them all (RFC 8446 4.6.3). Once
 * it is taken whole, the next request gets a new one. */
static void key_update_answers_bounded(void **state) {
    (void)state;
    dlg_tlsio *t = rl_new();
    peer_view v = {0, 0, -1, -1};
    peer_take(NULL, 0);
    uint8_t got[64];
    for (int i = 0; i < 1000; i++) {
        peer_key_update(1);
        peer_send(DLG_TLS13_APPDATA, "a", 1);
        assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), 1);
        assert_int_equal(dlg_tlsio_out_pending(t), dlg_tls13_sealed_len(5));
    }
    /* Taken in part, it is still waiting: no second answer. */
    peer_take(&v, 3);
    peer_key_update(1);
    peer_send(DLG_TLS13_APPDATA, "b", 1);
    assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), 1);
    assert_int_equal(dlg_tlsio_out_pending(t), dlg_tls13_sealed_len(5) - 3);
    peer_take(&v, SIZE_MAX);
    assert_int_equal(v.key_updates, 1);
    /* Sent: the next request is answered again, before the data that
     * follows it, under the key the peer now expects. */
    peer_key_update(1);
    peer_send(DLG_TLS13_APPDATA, "c", 1);
    assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), 1);
    assert_int_equal(dlg_tlsio_write(t, "xyz", 3), 0);
    assert_int_equal(dlg_tlsio_out_pending(t),
                     dlg_tls13_sealed_len(5) + dlg_tls13_sealed_len(3));
    peer_take(&v, SIZE_MAX);
    assert_int_equal(v.key_updates, 2);
    assert_int_equal(v.app_bytes, 3);
    /* A request that is not one needs no answer. */
    peer_key_update(0);
    peer_send(DLG_TLS13_APPDATA, "d", 1);
    assert_int_equal(dlg_tlsio_read(t, got, sizeof(got)), 1);
    assert_int_equal(dlg_tlsio_out_pending(t), 0);
}

/* HKDF-Expand-Label(secret, label, "", len) with SHA-256 (RFC 8446 7.1),
 * written out with HMAC so that the record below is sealed by code of
 * the test's own. */
static void expand_label(const uint8_t *secret, const char *label, uint8_t *out, size_t len) {
    uint8_t info[64], t[32];
    size_t ll = 6 + strlen(label), n = 0;
    info[0] = (uint8_t)(len >> 8);
    info[1] = (uint8_t)len;
    info[2] = (uint8_t)ll;
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, strlen(label));
    info[3 + ll] = 0;
    info[4 + ll] = 1; /* one block is all we need */
    unsigned mdlen = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, 32, info, 5 + ll, t, &mdlen));
    assert_int_equal(mdlen, 32);
    assert_true(len <= 32);
    for (; n < len; n++)
        out[n] = t[n];
}

/* Seals an AES-128-GCM record under the peer's first key (t's read
 * secret, sequence number 0): data, the inner type APPDATA, pad zeros. */
static size_t seal_padded(const uint8_t *data, size_t len, size_t pad, uint8_t *rec) {
    uint8_t key[16], iv[12];
    expand_label(secret_a, "key", key, sizeof(key));
    expand_label(secret_a, "iv", iv, sizeof(iv)); /* seq 0: the nonce is the IV */
    size_t inner = len + 1 + pad, body = inner + 16;
    rec[0] = 23;
    rec[1] = rec[2] = 3;
    rec[3] = (uint8_t)(body >> 8);
    rec[4] = (uint8_t)body;
    uint8_t *ct = rec + 5;
    memcpy(ct, data, len);
    ct[len] = DLG_TLS13_APPDATA;
    memset(ct + len + 1, 0, pad);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int l = 0;
    assert_non_null(x);
    assert_int_equal(EVP_EncryptInit_ex(x, EVP_aes_128_gcm(), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(x, NULL, &l, rec, 5), 1);
    assert_int_equal(EVP_EncryptUpdate(x, ct, &l, ct, (int)inner), 1);
    assert_int_equal(EVP_EncryptFinal_ex(x, ct + inner, &l), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, ct + inner), 1);
    EVP_CIPHER_CTX_free(x);
    return 5 + body;
}

/* RFC 8446 5.4: the inner plaintext, padding included, is at most 2^14 + 1
 * bytes. Exactly that is fine, with or without padding; one byte more is
 * record_overflow, even when the content itself is short. */
static void inner_plaintext_limit(void **state) {
    (void)state;
    static const struct {
        size_t len, pad;
        int ok;
    } cases[] = {
        {16384, 0, 1},   /* the largest record there is */
        {100, 16284, 1}, /* as long, mostly padding */
        {0, 16384, 1},   /* an empty record padded to the limit */
        {100, 16285, 0}, /* one padding byte too many */
        {16384, 1, 0},
        {0, 16385, 0},
    };
    static uint8_t rec[DLG_TLS13_MAX_CIPHER + 64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dlg_tlsio *t = rl_new();
        peer_view v = {0, 0, -1, -1};
        peer_take(NULL, 0);
        fill(g_data, cases[i].len, 400 + (uint32_t)i);
        size_t n = seal_padded(g_data, cases[i].len, cases[i].pad, rec);
        assert_true(n - DLG_TLS13_HDR <= DLG_TLS13_MAX_CIPHER);
        assert_int_equal(dlg_tlsio_feed(t, rec, n), 0);
        size_t have = 0;
        int r;
        while ((r = dlg_tlsio_read(t, g_got + have, MAX_DATA - have)) > 0)
            have += (size_t)r;
        if (cases[i].ok) {
            assert_int_equal(r, 0);
            assert_int_equal(have, cases[i].len);
            assert_memory_equal(g_got, g_data, cases[i].len);
            continue;
        }
        assert_int_equal(r, DLG_ETLS);
        assert_int_equal(have, 0);
        peer_take(&v, SIZE_MAX);
        assert_int_equal(v.alert_level, 2);
        assert_int_equal(v.alert_desc, 22); /* record_overflow */
    }
}

/* The same caps on OpenSSL's record layer (a server that stays on it, and
 * ours after the handover, each against an OpenSSL client): a KeyUpdate
 * flood is cut after DLG_TLSIO_MAX_QUIET_RECORDS, and what OpenSSL
 * answered meanwhile stays bounded. */
static void key_update_flood_both_layers(void **state) {
    (void)state;
    for (int lean = 0; lean < 2; lean++) {
        pair_t *p = pair_new(lean, 0x1301, 0);
        handshake(p);
        assert_int_equal(p->srv.rl != NULL, lean);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < DLG_TLSIO_MAX_QUIET_RECORDS; i++) {
                assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
                assert_int_equal(SSL_do_handshake(p->cli), 1); /* sends it */
            }
            c2s_data(p, 10, 500 + (uint32_t)round, 4096, 65536);
            s2c_data(p, 10, 510 + (uint32_t)round, 0);
        }
        for (int i = 0; i < 200; i++) {
            assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
            assert_int_equal(SSL_do_handshake(p->cli), 1);
        }
        c2s_move(p, 4096);
        uint8_t got[16];
        assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
        char why[256];
        dlg_tlsio_error(&p->srv, why, sizeof(why));
        assert_non_null(strstr(why, "without application data"));
        assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), DLG_ETLS);
        /* OpenSSL answered the requests it read (one more than the cap);
         * ours answered once and sent unexpected_message. */
        size_t most = lean ? dlg_tls13_sealed_len(5) + dlg_tls13_sealed_len(2)
                           : (DLG_TLSIO_MAX_QUIET_RECORDS + 1) * 64;
        assert_true(dlg_tlsio_out_pending(&p->srv) <= most);
        if (lean)
            client_sees_alert(p, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE);
        pair_free(p);
    }
}

/* On OpenSSL's record layer too, a KeyUpdate request is answered as soon
 * as it is read. OpenSSL answers each of several in a row as it reads the
 * next, but keeps the answer to the last for our next write, which may
 * never come: dlg_tlsio_read sends it. (Several per run are bounded by
 * DLG_TLSIO_MAX_QUIET_RECORDS, and the daemon counts them in its caps.) */
static void openssl_key_update_answered_at_once(void **state) {
    (void)state;
    pair_t *p = pair_new(0, 0x1302, 0);
    handshake(p);
    assert_null(p->srv.rl);
    for (int n = 1; n <= 5; n += 4) {
        for (int i = 0; i < n; i++) {
            assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
            assert_int_equal(SSL_do_handshake(p->cli), 1);
        }
        c2s_move(p, 4096);
        uint8_t got[16];
        assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), 0);
        assert_int_equal(dlg_tlsio_out_pending(&p->srv), (size_t)n * dlg_tls13_sealed_len(5));
        s2c_data(p, 100, 700 + (uint32_t)n, 0); /* the client follows */
        c2s_data(p, 100, 710 + (uint32_t)n, 4096, 65536);
    }
    pair_free(p);
}

/* A KeyUpdate request and data in one feed, on OpenSSL's records: the
 * read that returns the data leaves nothing fed, so the next read answers
 * "no more plaintext" without asking OpenSSL (issue 23); the answer to the
 * request still leaves with it. */
static void openssl_key_update_then_data(void **state) {
    (void)state;
    pair_t *p = pair_new(0, 0x1301, 0);
    handshake(p);
    assert_null(p->srv.rl);
    size_t w = 0;
    assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_do_handshake(p->cli), 1);
    assert_int_equal(SSL_write_ex(p->cli, "hello", 5, &w), 1);
    c2s_move(p, 4096);
    uint8_t got[16];
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), 5);
    assert_memory_equal(got, "hello", 5);
    assert_int_equal(dlg_tlsio_read(&p->srv, got, sizeof(got)), 0);
    assert_int_equal(dlg_tlsio_out_pending(&p->srv), dlg_tls13_sealed_len(5));
    s2c_data(p, 100, 720, 0); /* the client follows */
    c2s_data(p, 100, 721, 4096, 65536);
    pair_free(p);
}

/* A record under the application keys that went through OpenSSL before
 * the handover (here a write, or a read) keeps the session on OpenSSL:
 * dlg_tls13 would start again at sequence number 0 and seal a second
 * record with the nonce of the first. */
static void no_handover_after_openssl_records(void **state) {
    (void)state;
    g_no_handover = 1;
    for (int variant = 0; variant < 3; variant++) {
        pair_t *p = pair_new(1, 0x1301, 0);
        handshake(p);
        assert_null(p->srv.rl);
        if (variant == 1)
            s2c_data(p, 40, 600, 0); /* one record sealed by OpenSSL */
        else if (variant == 2)
            c2s_data(p, 40, 601, 4096, 65536); /* one record opened by it */
        int h = dlg_tlsio_handover(&p->srv);
        /* Variant 0 has nothing in between: it hands over as usual. */
        assert_int_equal(h, variant == 0);
        assert_int_equal(p->srv.rl != NULL, variant == 0);
        assert_null(p->srv.sec); /* wiped either way */
        /* And the session goes on, whichever layer has it. */
        s2c_data(p, 300, 602, 0);
        c2s_data(p, 300, 603, 4096, 65536);
        s2c_data(p, 70000, 604, 1);
        pair_free(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(lean_aes128, test_teardown),
        cmocka_unit_test_teardown(lean_aes256, test_teardown),
        cmocka_unit_test_teardown(lean_chacha, test_teardown),
        cmocka_unit_test_teardown(split_feeds, test_teardown),
        cmocka_unit_test_teardown(coalesced_feed, test_teardown),
        cmocka_unit_test_teardown(data_in_finished_flight, test_teardown),
        cmocka_unit_test_teardown(key_update_both_kinds, test_teardown),
        cmocka_unit_test_teardown(key_update_several_in_a_row, test_teardown),
        cmocka_unit_test_teardown(close_from_client, test_teardown),
        cmocka_unit_test_teardown(close_from_server, test_teardown),
        cmocka_unit_test_teardown(tampered_record, test_teardown),
        cmocka_unit_test_teardown(oversized_header, test_teardown),
        cmocka_unit_test_teardown(plaintext_after_handshake, test_teardown),
        cmocka_unit_test_teardown(good_data_before_bad_record, test_teardown),
        cmocka_unit_test_teardown(tls12_stays_on_openssl, test_teardown),
        cmocka_unit_test_teardown(no_lean_ctx_stays_on_openssl, test_teardown),
        cmocka_unit_test_teardown(lean_client_to_openssl_server, duo_teardown),
        cmocka_unit_test_teardown(compact_idle, test_teardown),
        cmocka_unit_test_teardown(key_wear, test_teardown),
        cmocka_unit_test_teardown(dlg_client_to_lean_server, duo_teardown),
        cmocka_unit_test_teardown(quiet_records_capped, rl_teardown),
        cmocka_unit_test_teardown(key_update_answers_bounded, rl_teardown),
        cmocka_unit_test_teardown(inner_plaintext_limit, rl_teardown),
        cmocka_unit_test_teardown(key_update_flood_both_layers, test_teardown),
        cmocka_unit_test_teardown(no_handover_after_openssl_records, test_teardown),
        cmocka_unit_test_teardown(openssl_key_update_answered_at_once, test_teardown),
        cmocka_unit_test_teardown(openssl_key_update_then_data, test_teardown),
        cmocka_unit_test_teardown(lean_server_sends_tickets, test_teardown),
        cmocka_unit_test_teardown(client_resumes_with_kept_ticket, duo_teardown),
    };
    return cmocka_run_group_tests_name("tlsio_lean", tests, selfsigned_setup, selfsigned_teardown);
}
