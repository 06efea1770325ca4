/* yamlread.h: the generic YAML reader under the config loader: one file parsed
 * into libyaml's document tree, typed getters on its nodes, unknown and
 * duplicate key detection, and every message as file:line:col: path: what.
 * It knows nothing of dialogue's keys (the load_*.c files do). Internal to
 * daemon/config. */
#ifndef DLG_CONFIG_YAMLREAD_H
#define DLG_CONFIG_YAMLREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

/* libcyaml 1.3 only reports positions as debug-log backtrace text, and a
 * semantic check made after its load has no position at all. libyaml's
 * document loader keeps a mark on every node, so the whole walk runs on
 * that tree and each check can point at the node it is about. */
typedef yaml_node_t dlg_ynode;

/* Longest key path kept in messages ("rooms[3].history[0].limit"). */
#define DLG_YAML_KEYPATH 256

/* Errors kept by one read at most; more are counted, not kept. */
#define DLG_YAML_MAX_ERRORS 1000

/* One error found: the message and the key path it is about. */
typedef struct dlg_yerr {
    char *path;            /* "rooms[0].events[1]"; "" = the file or its root */
    char *text;            /* "file:line:col: path: what" */
} dlg_yerr;

/* Where one value read was: its key path and 1-based line and column. */
typedef struct dlg_ypos {
    char *path;
    unsigned line, col;
} dlg_ypos;

/* One file being read. Zero it, then dlg__yaml_open.
 * Loaders built on it go on after an error to find the next one: every
 * getter and check records its error (dlg__yaml_fail) and returns
 * DLG_ECONFIG; only DLG_ENOMEM must stop a walk. A loader compares
 * n_errors before and after an item to know whether the item is whole. */
typedef struct dlg_yaml {
    const char *file;      /* as the caller named it, for messages (borrowed) */
    char *dir;             /* prefix for relative paths ("" or ".../"), owned */
    yaml_document_t *doc;  /* the tree the getters walk */
    char *err;             /* gets the first message (may be NULL) */
    size_t errlen;
    void *ud;              /* what the caller's loaders fill; never read here */
    size_t n_errors;       /* errors found (dlg__yaml_fail calls) */
    dlg_yerr *errv;        /* the first DLG_YAML_MAX_ERRORS of them, owned */
    size_t n_errv, cap_errv;
    bool keep_pos;         /* set before the walk: record positions in posv */
    dlg_ypos *posv;        /* mappings, lists and texts read, owned */
    size_t n_posv, cap_posv;
    yaml_document_t doc_;  /* storage for doc */
    bool have_doc;
} dlg_yaml;

/* Opens and parses the file at path into y (zeroed by the caller), refusing
 * a second document in the stream. y->file borrows path. *root gets the
 * root node, NULL for an empty stream or a null root ("use every
 * default"). Returns 0, DLG_EIO (cannot open or is a directory; err says
 * "path: cannot open: why"), DLG_ECONFIG (syntax or encoding error at
 * file:line:col) or DLG_ENOMEM. Call dlg__yaml_close in every case. */
int dlg__yaml_open(dlg_yaml *y, const char *path, char *err, size_t errlen, dlg_ynode **root);

/* Frees what dlg__yaml_open acquired, and the errors and positions still
 * held (a caller takes them first by moving errv and posv and zeroing
 * their counts); y may be half-opened. */
void dlg__yaml_close(dlg_yaml *y);

/* Records the error "file:line:col: path: message" (the position is
 * omitted when n is NULL, "path: " when path is "") and returns
 * DLG_ECONFIG, so a check can `return dlg__yaml_fail(...)`. The first one
 * also goes to y->err. */
int dlg__yaml_fail(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* DLG_ECONFIG when errors were recorded since mark (an earlier
 * y->n_errors), else 0. */
int dlg__yaml_since(const dlg_yaml *y, size_t mark);

/* Records where the value at path is (when y->keep_pos); DLG_ENOMEM only. */
int dlg__yaml_note(dlg_yaml *y, const dlg_ynode *n, const char *path);

/* "parent.key" and "parent[i]" into out (DLG_YAML_KEYPATH bytes), cut if
 * longer. */
void dlg__yaml_keypath(char *out, const char *parent, const char *key);
void dlg__yaml_idxpath(char *out, const char *parent, size_t i);

/* A short, printable rendering of what a node holds, for "got ..." texts:
 * an overlong or binary value must not flood the log line. */
void dlg__yaml_show(const dlg_ynode *n, char *buf, size_t len);

/* ---- tree access: pointers stay valid until dlg__yaml_close ---------- */

/* A scalar's text (NUL-terminated; it may hold NULs before its length). */
const char *dlg__yaml_sval(const dlg_ynode *n);

/* A plain "", "~" or "null" (any common case): "use the default". */
bool dlg__yaml_is_null(const dlg_ynode *n);

size_t dlg__yaml_seq_len(const dlg_ynode *n);
dlg_ynode *dlg__yaml_seq_at(dlg_yaml *y, const dlg_ynode *n, size_t i);

/* The value of key in map, or NULL when the key is absent or null. */
dlg_ynode *dlg__yaml_get(dlg_yaml *y, const dlg_ynode *map, const char *key);

/* ---- shape checks ----------------------------------------------------- */

/* 0 when n is of type t, else an "expected a mapping/list/single value,
 * got ..." error at n. */
int dlg__yaml_want(dlg_yaml *y, const dlg_ynode *n, const char *path, yaml_node_type_t t);

/* A mapping whose keys are all in keys[] (NULL-terminated), none given
 * twice (YAML parsers disagree on which duplicate wins), all scalars.
 * Returns DLG_ECONFIG only when n is not a mapping (nothing can be read
 * from it); a bad key is recorded (every one) and the known keys can still
 * be read, so it returns 0 then. */
int dlg__yaml_want_map(dlg_yaml *y, const dlg_ynode *n, const char *path,
                       const char *const *keys);

/* "missing required key" error at map. */
int dlg__yaml_missing(dlg_yaml *y, const dlg_ynode *map, const char *path, const char *key);

/* Allocates *v (zeroed) for the entries of sequence n; *cnt is set at once
 * so a failure half-way leaves zeroed, freeable entries. n must be a list. */
int dlg__yaml_seq_alloc(dlg_yaml *y, const dlg_ynode *n, const char *path, size_t size,
                        void **v, size_t *cnt);

/* ---- typed values: on error *out is unchanged ------------------------- */

/* Copies a scalar of at most maxlen bytes into *out (freeing what was
 * there). "" is kept; callers decide what it means. */
int dlg__yaml_text(dlg_yaml *y, const dlg_ynode *n, const char *path, size_t maxlen,
                   char **out);

/* Like dlg__yaml_text, but "" leaves *out NULL (optional strings). */
int dlg__yaml_opt_text(dlg_yaml *y, const dlg_ynode *n, const char *path, size_t maxlen,
                       char **out);

/* A non-empty file path, joined to the file's directory when relative. */
int dlg__yaml_path(dlg_yaml *y, const dlg_ynode *n, const char *path, char **out);

/* Unsigned integers in [min, max]. */
int dlg__yaml_uint(dlg_yaml *y, const dlg_ynode *n, const char *path, uint64_t min,
                   uint64_t max, uint64_t *out);
int dlg__yaml_u32(dlg_yaml *y, const dlg_ynode *n, const char *path, uint32_t min,
                  uint32_t max, uint32_t *out);

/* YAML 1.1 booleans (true/yes/on, false/no/off, any case). */
int dlg__yaml_bool(dlg_yaml *y, const dlg_ynode *n, const char *path, bool *out);

/* The index of the scalar in names[] (NULL-terminated). */
int dlg__yaml_enum(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *const *names,
                   int *out);

/* A finite decimal number (no hex, inf or nan). */
int dlg__yaml_double(dlg_yaml *y, const dlg_ynode *n, const char *path, double *out);

/* ---- words ------------------------------------------------------------ */

/* 1 for a true word, 0 for a false one, -1 for anything else. */
int dlg__yaml_bool_word(const char *s);

/* Decimal digits only, no sign, no overflow. */
bool dlg__yaml_parse_u64(const char *s, uint64_t *out);

#endif
