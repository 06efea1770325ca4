/* evdec.h: the allocation-free decoder for the client's most frequent frame,
 * a ServerFrame that carries one Event and nothing else (issue #7). Anything
 * it does not take is left to protobuf-c, which stays the reference. */
#ifndef DLG_CLIENT_EVDEC_H
#define DLG_CLIENT_EVDEC_H

#include <stddef.h>
#include <stdint.h>

/* Longest room, event or from string the fast path copies, in bytes. Room
 * ids, event names and user ids are 1..255 bytes (docs/protocol.md, the
 * daemon's token rules); a longer one sends the frame down the protobuf-c
 * path, never truncated. */
#define DLG__EVDEC_STR_MAX 255

/* A decoded Event: the fields of dialogue.v1.Event as protobuf-c would give
 * them. Strings are copied in, NUL-terminated (bytes after an embedded NUL
 * are hidden, as with protobuf-c's char *); absent ones are "". data points
 * into the body that was decoded, so the view is valid only as long as that
 * body is; it is NULL when len is 0, as protobuf-c leaves it. */
typedef struct dlg__event_view {
    char room[DLG__EVDEC_STR_MAX + 1];
    char event[DLG__EVDEC_STR_MAX + 1];
    char from[DLG__EVDEC_STR_MAX + 1];
    const uint8_t *data;
    size_t len;
    uint64_t ts_ms, seq, epoch;
    int from_kind;                /* dialogue.v1.IdentityKind, as received */
} dlg__event_view;

/* Decodes body[0..len) when it is a ServerFrame whose only member of msg is
 * event (repeated: the last one, as protobuf-c), with request_id 0 or
 * absent, every string within DLG__EVDEC_STR_MAX, and nothing protobuf-c
 * would refuse (unknown fields of wire types 0, 1, 2 and 5 are skipped).
 * Returns 1 with *out filled, or 0 for anything else, malformed input
 * included; the caller then unpacks with protobuf-c, which also gives the
 * verdict on malformed frames. A yes/no answer rather than a DLG_E* code:
 * 0 is not an error here. On 0, *out is partly written and meaningless.
 * Reads nothing outside body[0..len); allocates nothing; any input is safe.
 * Whenever it returns 1, dialogue__v1__server_frame__unpack of the same
 * bytes succeeds with the same fields (tests/unit/test_client_evdec.c,
 * tests/fuzz/fuzz_evdec.c). */
int dlg__evdec(const uint8_t *body, size_t len, dlg__event_view *out);

#endif
