/* dlg_schema.h: event types read at run time from compiled descriptor sets
 * (protoc --include_imports --descriptor_set_out). Owns the index from event
 * name to message layout, the validation rules from options.proto, and the
 * wire-format validator. Shared by the daemon (validation) and the CLI
 * (JSON transcoding), so nothing here depends on libuv. */
#ifndef DLG_SCHEMA_H
#define DLG_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

/* Field types, numbered as google.protobuf.FieldDescriptorProto.Type. */
enum {
    DLG_FT_DOUBLE = 1, DLG_FT_FLOAT = 2, DLG_FT_INT64 = 3, DLG_FT_UINT64 = 4,
    DLG_FT_INT32 = 5, DLG_FT_FIXED64 = 6, DLG_FT_FIXED32 = 7, DLG_FT_BOOL = 8,
    DLG_FT_STRING = 9, DLG_FT_GROUP = 10, DLG_FT_MESSAGE = 11, DLG_FT_BYTES = 12,
    DLG_FT_UINT32 = 13, DLG_FT_ENUM = 14, DLG_FT_SFIXED32 = 15,
    DLG_FT_SFIXED64 = 16, DLG_FT_SINT32 = 17, DLG_FT_SINT64 = 18,
};

/* Labels, numbered as FieldDescriptorProto.Label. */
enum { DLG_FL_OPTIONAL = 1, DLG_FL_REQUIRED = 2, DLG_FL_REPEATED = 3 };

typedef struct dlg_schema_enum {
    char *full_name;        /* "dialogue.dashboard.Severity" */
    size_t n_values;
    int32_t *numbers;       /* n_values entries */
    char **names;           /* n_values entries, same order */
} dlg_schema_enum;

struct dlg_schema_msg;

typedef struct dlg_schema_field {
    char *name;             /* proto name, "alert_id" */
    char *json_name;        /* lowerCamelCase, "alertId" */
    uint32_t number;
    int type;               /* DLG_FT_* */
    int label;              /* DLG_FL_* */
    int packed;             /* repeated scalar expected packed when encoding */
    int has_presence;       /* proto2 optional/required, proto3 optional, message, oneof member */
    const struct dlg_schema_msg *msg;   /* DLG_FT_MESSAGE: resolved type */
    const dlg_schema_enum *en;          /* DLG_FT_ENUM: resolved type */
    /* Rules from (dialogue.v1.rule); has_* says whether each is set. */
    int has_min, has_max;
    double min, max;
    int has_min_len, has_max_len;
    uint32_t min_len, max_len;
    int required;
} dlg_schema_field;

typedef struct dlg_schema_msg {
    char *full_name;        /* "dialogue.dashboard.MetricsUpdate" */
    int map_entry;          /* synthetic map entry message (key = 1, value = 2) */
    size_t n_fields;
    dlg_schema_field *fields; /* sorted by number */
} dlg_schema_msg;

typedef struct dlg_schema_event {
    char *name;             /* "metrics:update", from (dialogue.v1.event) */
    const dlg_schema_msg *msg;
} dlg_schema_event;

/* Opaque registry: every message, enum and event of the loaded sets. */
typedef struct dlg_schema dlg_schema;

/* Creates an empty registry owned by the caller (free with dlg_schema_free).
 * Returns 0 or DLG_ENOMEM. */
int dlg_schema_new(dlg_schema **out);

/* Frees the registry and everything it handed out. NULL is ignored. */
void dlg_schema_free(dlg_schema *s);

/* Adds one serialised google.protobuf.FileDescriptorSet. The bytes are
 * copied (kept for dlg_schema_set_at). Files already loaded (same name) are
 * skipped, so sets sharing imports can be added in any order. Fails with
 * DLG_ESCHEMA and a message in err (naming the file, message or field) on a
 * set that does not parse, a type that cannot be resolved, or an event name
 * defined twice; on error the registry is unchanged. */
int dlg_schema_add_set(dlg_schema *s, const uint8_t *data, size_t len,
                       char *err, size_t errlen);

/* Reads a descriptor set file and adds it (as dlg_schema_add_set). err names
 * the path on failure (DLG_EIO for a file that cannot be read). */
int dlg_schema_load_file(dlg_schema *s, const char *path, char *err,
                         size_t errlen);

/* Looks up an event by exact name; NULL when unknown. The pointer is valid
 * until dlg_schema_free. */
const dlg_schema_event *dlg_schema_event_find(const dlg_schema *s,
                                              const char *name);

/* Number of events and indexed access (0 <= i < count), in load order. */
size_t dlg_schema_event_count(const dlg_schema *s);
const dlg_schema_event *dlg_schema_event_at(const dlg_schema *s, size_t i);

/* Looks up a message by fully qualified name (no leading dot); NULL when
 * unknown. */
const dlg_schema_msg *dlg_schema_msg_find(const dlg_schema *s,
                                          const char *full_name);

/* Field by number, or by proto or JSON name; NULL when there is none. */
const dlg_schema_field *dlg_schema_field_by_number(const dlg_schema_msg *m,
                                                   uint32_t number);
const dlg_schema_field *dlg_schema_field_by_name(const dlg_schema_msg *m,
                                                 const char *name);

/* The raw descriptor sets as added (for the Schema reply). */
size_t dlg_schema_set_count(const dlg_schema *s);
void dlg_schema_set_at(const dlg_schema *s, size_t i, const uint8_t **data,
                       size_t *len);

/* Validation flags. */
enum { DLG_SCHEMA_ALLOW_UNKNOWN = 1 };

/* Walks data (the wire encoding of ev's message) and checks it against the
 * descriptor and rules: wire type matches the field type, numeric min/max
 * (inclusive), enum value defined, strings valid UTF-8, string/bytes
 * min_len/max_len, required fields present, no truncated varint or length,
 * nested messages recursively, and unknown fields unless
 * DLG_SCHEMA_ALLOW_UNKNOWN. Returns 0 or DLG_ESCHEMA with err set to
 * "<event>.<field path>: <what>", e.g.
 * "metrics:update.cpu: 150 is above max 100". Nothing is allocated. */
int dlg_schema_validate(const dlg_schema_event *ev, const uint8_t *data,
                        size_t len, unsigned flags, char *err, size_t errlen);

#endif
