/* fuzz_evdec.c: libFuzzer harness for the client's event fast path
 * (dlg__evdec), fuzzed differentially against protobuf-c: whenever the
 * fast decoder takes a body, protobuf-c must decode the same bytes to a
 * plain Event frame (request_id 0) with the same fields.
 *
 * Input: one ServerFrame body, as the frame decoder hands it over.        */
#include <stdint.h>
#include <string.h>

#include "dialogue/v1/protocol.pb-c.h"
#include "evdec.h"
#include "fuzz_util.h"

static void same_str(const char *fast, size_t cap, const char *ref, const char *what) {
    FUZZ_CHECK(memchr(fast, 0, cap) != NULL, "%s is not NUL-terminated", what);
    FUZZ_CHECK(strcmp(fast, ref) == 0, "%s: fast \"%s\", protobuf-c \"%s\"", what, fast, ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* libFuzzer's copy of the input is exactly size bytes long, so ASan
     * reports any read past the body. */
    const uint8_t *body = data;
    dlg__event_view v;
    /* Garbage first, so a field left unset shows as a difference. */
    memset(&v, 0xa5, sizeof(v));
    int fast = dlg__evdec(body, size, &v);
    FUZZ_CHECK(fast == 0 || fast == 1, "dlg__evdec returned %d", fast);
    if (fast) {
        Dialogue__V1__ServerFrame *f = dialogue__v1__server_frame__unpack(NULL, size, body);
        FUZZ_CHECK(f != NULL, "fast path took %zu bytes protobuf-c refuses", size);
        FUZZ_CHECK(f->msg_case == DIALOGUE__V1__SERVER_FRAME__MSG_EVENT,
                   "fast path took a frame protobuf-c reads as msg case %d", (int)f->msg_case);
        FUZZ_CHECK(f->request_id == 0, "fast path took request_id %llu",
                   (unsigned long long)f->request_id);
        const Dialogue__V1__Event *e = f->event;
        same_str(v.room, sizeof(v.room), e->room, "room");
        same_str(v.event, sizeof(v.event), e->event, "event");
        same_str(v.from, sizeof(v.from), e->from, "from");
        FUZZ_CHECK(v.len == e->data.len, "data: fast %zu bytes, protobuf-c %zu", v.len,
                   e->data.len);
        FUZZ_CHECK((v.data == NULL) == (e->data.data == NULL), "data: fast %s, protobuf-c %s",
                   v.data ? "set" : "NULL", e->data.data ? "set" : "NULL");
        if (v.len > 0) {
            FUZZ_CHECK(v.data >= body && v.data + v.len <= body + size,
                       "data [%zu bytes] lies outside the body", v.len);
            FUZZ_CHECK(memcmp(v.data, e->data.data, v.len) == 0, "data of %zu bytes differs",
                       v.len);
        }
        FUZZ_CHECK(v.ts_ms == e->ts_ms, "ts_ms: fast %llu, protobuf-c %llu",
                   (unsigned long long)v.ts_ms, (unsigned long long)e->ts_ms);
        FUZZ_CHECK(v.seq == e->seq, "seq: fast %llu, protobuf-c %llu",
                   (unsigned long long)v.seq, (unsigned long long)e->seq);
        FUZZ_CHECK(v.epoch == e->epoch, "epoch: fast %llu, protobuf-c %llu",
                   (unsigned long long)v.epoch, (unsigned long long)e->epoch);
        FUZZ_CHECK(v.from_kind == (int)e->from_kind, "from_kind: fast %d, protobuf-c %d",
                   v.from_kind, (int)e->from_kind);
        dialogue__v1__server_frame__free_unpacked(f, NULL);
    }
    return 0;
}
