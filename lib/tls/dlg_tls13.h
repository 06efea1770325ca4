/* dlg_tls13.h: TLS 1.3 record protection for an established session (RFC
 * 8446 5.2-5.5 and 7.1-7.3): the AEAD keys and IVs of both directions,
 * their sequence numbers, sealing and opening one record, and the key
 * update. The handshake, certificates and key schedule up to the traffic
 * secrets stay OpenSSL's; the crypto here is OpenSSL's EVP AEAD and its
 * TLS13-KDF. Used by dlg_tlsio.c once a handshake is done, so that an idle
 * connection keeps about 2.5 KB of TLS state instead of OpenSSL's 13 KB.
 * A dlg_tls13 is used by one thread at a time; its two directions are
 * independent. */
#ifndef DLG_TLS13_H
#define DLG_TLS13_H

#include <stddef.h>
#include <stdint.h>

/* RFC 8446 5.1/5.2: plaintext per record, and what protection adds at most
 * (the inner content type and the AEAD tag; we never pad). */
#define DLG_TLS13_MAX_PLAIN 16384
#define DLG_TLS13_HDR 5
#define DLG_TLS13_TAG 16
/* The largest record a peer may send: 2^14 + 256 bytes after the header. */
#define DLG_TLS13_MAX_CIPHER (DLG_TLS13_MAX_PLAIN + 256)
/* Records sealed under one key before we move to the next (RFC 8446 5.5
 * puts AES-GCM's limit at 2^24.5; this leaves a wide margin). */
#define DLG_TLS13_KEY_RECORDS (1ull << 23)

/* Inner content types (RFC 8446 5.1). */
enum { DLG_TLS13_ALERT = 21, DLG_TLS13_HANDSHAKE = 22, DLG_TLS13_APPDATA = 23 };

typedef struct dlg_tls13 dlg_tls13;

/* Creates the record state of a session whose suite is the TLS 1.3
 * cipher suite `suite` (0x1301 AES-128-GCM-SHA256, 0x1302
 * AES-256-GCM-SHA384, 0x1303 ChaCha20-Poly1305-SHA256) from its current
 * application traffic secrets (read = the peer's, write = ours; each
 * secret_len bytes, the suite's hash length), both directions at sequence
 * number 0. The secrets are copied; the caller cleanses its copies.
 * Returns 0, DLG_EINVAL (suite or length not supported) or DLG_ETLS (the
 * crypto library refused); *out is set only on success. */
int dlg_tls13_new(uint16_t suite, const uint8_t *read_secret, const uint8_t *write_secret,
                  size_t secret_len, dlg_tls13 **out);

/* Cleanses and frees the state. NULL is fine. */
void dlg_tls13_free(dlg_tls13 *r);

/* Bytes one sealed record of len (<= DLG_TLS13_MAX_PLAIN) plaintext bytes
 * takes, header included. */
static inline size_t dlg_tls13_sealed_len(size_t len) {
    return DLG_TLS13_HDR + len + 1 + DLG_TLS13_TAG;
}

/* Seals len (<= DLG_TLS13_MAX_PLAIN) bytes of content type `type` as one
 * record into out, which must hold dlg_tls13_sealed_len(len) bytes and not
 * overlap data. Returns 0, or DLG_ETLS (len too long, sequence numbers
 * used up, or the cipher failed: the caller treats the session as dead). */
int dlg_tls13_seal(dlg_tls13 *r, uint8_t type, const uint8_t *data, size_t len, uint8_t *out);

/* Counts n records of our direction as sealed already, under the current
 * write key, by someone else (OpenSSL sent the session tickets of the
 * handshake under the application keys before the handover): the next
 * record takes sequence number n instead of 0, so no nonce is used twice.
 * 0, or DLG_ETLS when that would pass DLG_TLS13_KEY_RECORDS. */
int dlg_tls13_skip_write(dlg_tls13 *r, uint64_t n);

/* True when the write key has sealed DLG_TLS13_KEY_RECORDS records: the
 * caller sends a KeyUpdate and calls dlg_tls13_update_write. */
int dlg_tls13_write_worn(const dlg_tls13 *r);

/* Opens the record rec[0, len), header included, in place. On success
 * (0) the plaintext is rec[*off, *off + *plain_len) with its padding
 * removed and *type its inner content type. Returns DLG_EPROTO for a
 * record that is malformed or too long (alert code in *alert: 10
 * unexpected_message, 22 record_overflow: more than 2^14 + 256 bytes
 * after the header, or an inner plaintext with its padding over 2^14 + 1
 * bytes, 50 decode_error) and DLG_ETLS when it does not authenticate
 * (*alert = 20, bad_record_mac). */
int dlg_tls13_open(dlg_tls13 *r, uint8_t *rec, size_t len, size_t *off, size_t *plain_len,
                   uint8_t *type, uint8_t *alert);

/* Moves a direction to its next traffic secret and key, sequence number 0
 * (RFC 8446 7.2). 0 or DLG_ETLS. */
int dlg_tls13_update_read(dlg_tls13 *r);
int dlg_tls13_update_write(dlg_tls13 *r);

#endif
