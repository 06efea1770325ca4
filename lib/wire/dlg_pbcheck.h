/* dlg_pbcheck.h: what protobuf-c does not check in a message it unpacks:
 * that every `string` field is valid UTF-8 (proto3 requires it; strict
 * decoders refuse it otherwise) and holds no NUL byte (protobuf-c hands C a
 * NUL-terminated copy, so "secret\0junk" would silently read as "secret").
 * Walks the wire bytes with the message's protobuf-c descriptor, nested
 * messages included; unknown fields are skipped. */
#ifndef DLG_PBCHECK_H
#define DLG_PBCHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Checks the string fields of the message d encoded in buf[0, len).
 * Returns 0 when every one is valid UTF-8 without NUL; DLG_EINVAL when one
 * is not, with err naming the field ("Join.room: holds a NUL byte");
 * DLG_EPROTO when the bytes are not a well-formed message (the caller's
 * unpack will say so too). Nesting deeper than 32 levels is DLG_EPROTO. */
int dlg_pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                         char *err, size_t errlen);

#endif
