/* pbjson.h: protobuf wire bytes <-> canonical (proto3) JSON for event types
 * known only at run time through dlg_schema descriptors; used by dialoguectl. */
#ifndef DLG_PBJSON_H
#define DLG_PBJSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dlg_schema.h"

/* Nested messages deeper than this are rejected by both directions, so a
 * recursive message type cannot exhaust the stack. */
#define DLG_PBJSON_MAX_DEPTH 32

/* Encodes the JSON object `in` as the wire form of message m, following the
 * proto3 JSON mapping:
 *   - keys are the field's json_name ("alertId") or proto name ("alert_id");
 *     giving both for one field is an error;
 *   - 32/64-bit integers as JSON numbers (integral value) or decimal strings;
 *   - enums by value name or by number;
 *   - bytes as base64, standard or URL-safe alphabet, padding optional;
 *   - double/float as numbers, numeric strings, "NaN", "Infinity",
 *     "-Infinity";
 *   - repeated fields as arrays, maps as objects (keys converted to the key
 *     type), nested messages as objects; null means the field is absent.
 * Every non-null field given is written, even when its value is 0, "" or
 * false, so proto2/proto3 `optional` and `required` fields set to zero are
 * present; an empty array or object writes nothing for a repeated or map
 * field. Fields are written in field-number order; repeated scalars are
 * packed when the field says so. Validation rules (min/max, lengths,
 * required) are not checked: the server does that. Oneof exclusivity is not
 * checked (the descriptor model does not carry oneofs).
 *
 * On success returns 0 and stores a malloc'd buffer (non-NULL even when
 * *out_len is 0) that the caller frees. On error returns DLG_EINVAL (a type
 * error; err gets "<json path>: <what>", e.g. "cpu: expected a number, got
 * string") or DLG_ENOMEM, and *out / *out_len are left unchanged. err may be
 * NULL or errlen 0; a long message is truncated. `in` is not modified.
 * Parsing note for callers: jansson rejects integer literals beyond int64,
 * so uint64 values above INT64_MAX must be given as decimal strings (or be
 * parsed with JSON_DECODE_INT_AS_REAL, which loses precision past 2^53);
 * "\u0000" in strings needs JSON_ALLOW_NUL. */
int dlg_pbjson_encode(const dlg_schema_msg *m, const json_t *in, uint8_t **out,
                      size_t *out_len, char *err, size_t errlen);

/* Decodes len bytes of the wire form of message m into a new JSON object
 * (canonical mapping: json_name keys; int64, uint64, sint64, fixed64 and
 * sfixed64 as decimal strings; 32-bit integers as numbers; enums by value
 * name, or number when the value is not defined; bytes as padded standard
 * base64; NaN and infinities as "NaN", "Infinity", "-Infinity"; repeated
 * fields, packed or not, as arrays; maps as objects). Fields absent from the
 * wire are omitted, fields present are shown even when zero. Unknown field
 * numbers and group fields are skipped. A repeated singular field follows
 * protobuf's rules: last scalar wins, messages merge.
 *
 * data may be NULL when len is 0; nothing outside data[0..len) is read.
 * On success returns 0 and *out holds a new reference owned by the caller.
 * On malformed data (truncated varint or length, bad wire type, wire type not
 * matching the field, invalid UTF-8 in a string, nesting deeper than
 * DLG_PBJSON_MAX_DEPTH) returns DLG_EINVAL with err naming the field path;
 * DLG_ENOMEM when out of memory. On error *out is unchanged. */
int dlg_pbjson_decode(const dlg_schema_msg *m, const uint8_t *data, size_t len,
                      json_t **out, char *err, size_t errlen);

/* Compact JSON text of v (any JSON value), keys in insertion order, with
 * every real number in its shortest form that reads back as the same
 * double: 2.32 and not 2.3199999999999998. A float field decoded above
 * holds the double nearest its shortest float32 decimal, so it prints as
 * that decimal (2.32 for the float 2.32f). A real with an integral value
 * keeps a ".0" (5.0) so it reads back as a real. Returns a malloc'd,
 * NUL-terminated string the caller frees, or NULL when out of memory (or
 * v is NULL). */
char *dlg_pbjson_dumps(const json_t *v);

/* Writes into buf (len >= 32) the text dlg_pbjson_dumps uses for the
 * finite double d. 0, or DLG_EINVAL for a non-finite d or a short buf. */
int dlg_pbjson_real_text(double d, char *buf, size_t len);

/* Decodes n characters of base64 (standard or URL-safe alphabet, padding
 * optional, no blanks) into a malloc'd buffer (*out, never NULL on success;
 * the caller frees) of *len bytes. 0, DLG_EINVAL (not base64) or
 * DLG_ENOMEM; on error *out and *len are unchanged. */
int dlg_pbjson_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len);

#endif
