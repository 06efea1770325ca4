/* yamlread.c: the generic YAML reader (see yamlread.h): parsing one file into a
 * document tree, messages that point at file:line:col, typed getters. */
#include "yamlread.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

#define PATH_MAX_LEN 4096

/* ---- messages ----------------------------------------------------------- */

void dlg__yaml_show(const dlg_ynode *n, char *buf, size_t len) {
    if (n->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, len, "a list");
        return;
    }
    if (n->type == YAML_MAPPING_NODE) {
        snprintf(buf, len, "a mapping");
        return;
    }
    const unsigned char *s = n->data.scalar.value;
    size_t sl = n->data.scalar.length, o = 0, keep = 60;
    if (len < 8)
        return;
    buf[o++] = '"';
    for (size_t i = 0; i < sl && i < keep && o + 6 < len; i++)
        buf[o++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    if (sl > keep && o + 6 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Keeps one error; out of memory here only shortens the list (the count
 * in n_errors stays true, and y->err has the first message anyway). */
static void keep_error(dlg_yaml *y, const char *path, const char *text) {
    if (y->n_errv == DLG_YAML_MAX_ERRORS)
        return;
    if (y->n_errv == y->cap_errv) {
        size_t cap = y->cap_errv ? 2 * y->cap_errv : 8;
        dlg_yerr *v = dlg_realloc(y->errv, cap * sizeof(*v));
        if (!v)
            return;
        y->errv = v;
        y->cap_errv = cap;
    }
    dlg_yerr *e = &y->errv[y->n_errv];
    e->path = dlg_strdup(path);
    e->text = dlg_strdup(text);
    if (!e->path || !e->text) {
        free(e->path);
        free(e->text);
        return;
    }
    y->n_errv++;
}

int dlg__yaml_fail(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *fmt, ...) {
    char msg[768], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *sep = *path ? ": " : "";
    if (n)
        snprintf(line, sizeof(line), "%s:%lu:%lu: %s%s%s", y->file,
                 (unsigned long)n->start_mark.line + 1, (unsigned long)n->start_mark.column + 1,
                 path, sep, msg);
    else
        snprintf(line, sizeof(line), "%s: %s%s%s", y->file, path, sep, msg);
    if (y->n_errors++ == 0 && y->err && y->errlen)
        snprintf(y->err, y->errlen, "%s", line);
    keep_error(y, path, line);
    return DLG_ECONFIG;
}

int dlg__yaml_since(const dlg_yaml *y, size_t mark) {
    return y->n_errors > mark ? DLG_ECONFIG : 0;
}

int dlg__yaml_note(dlg_yaml *y, const dlg_ynode *n, const char *path) {
    if (!y->keep_pos)
        return 0;
    if (y->n_posv == y->cap_posv) {
        size_t cap = y->cap_posv ? 2 * y->cap_posv : 32;
        dlg_ypos *v = dlg_realloc(y->posv, cap * sizeof(*v));
        if (!v)
            return DLG_ENOMEM;
        y->posv = v;
        y->cap_posv = cap;
    }
    dlg_ypos *p = &y->posv[y->n_posv];
    if (!(p->path = dlg_strdup(path)))
        return DLG_ENOMEM;
    p->line = (unsigned)n->start_mark.line + 1;
    p->col = (unsigned)n->start_mark.column + 1;
    y->n_posv++;
    return 0;
}

void dlg__yaml_keypath(char *out, const char *parent, const char *key) {
    if (snprintf(out, DLG_YAML_KEYPATH, "%s%s%s", parent, *parent ? "." : "", key) >=
        DLG_YAML_KEYPATH)
        out[DLG_YAML_KEYPATH - 1] = '\0';
}

void dlg__yaml_idxpath(char *out, const char *parent, size_t i) {
    if (snprintf(out, DLG_YAML_KEYPATH, "%s[%zu]", parent, i) >= DLG_YAML_KEYPATH)
        out[DLG_YAML_KEYPATH - 1] = '\0';
}

/* ---- tree access -------------------------------------------------------- */

static dlg_ynode *at(dlg_yaml *y, int idx) {
    return yaml_document_get_node(y->doc, idx);
}

const char *dlg__yaml_sval(const dlg_ynode *n) {
    return (const char *)n->data.scalar.value;
}

bool dlg__yaml_is_null(const dlg_ynode *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = dlg__yaml_sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

size_t dlg__yaml_seq_len(const dlg_ynode *n) {
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

dlg_ynode *dlg__yaml_seq_at(dlg_yaml *y, const dlg_ynode *n, size_t i) {
    return at(y, n->data.sequence.items.start[i]);
}

dlg_ynode *dlg__yaml_get(dlg_yaml *y, const dlg_ynode *map, const char *key) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        dlg_ynode *k = at(y, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(dlg__yaml_sval(k), key) == 0) {
            dlg_ynode *v = at(y, p->value);
            return dlg__yaml_is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

/* ---- shape checks ------------------------------------------------------- */

int dlg__yaml_want(dlg_yaml *y, const dlg_ynode *n, const char *path, yaml_node_type_t t) {
    if (n->type == t)
        return 0;
    char got[80];
    dlg__yaml_show(n, got, sizeof(got));
    const char *what = t == YAML_MAPPING_NODE    ? "a mapping"
                       : t == YAML_SEQUENCE_NODE ? "a list"
                                                 : "a single value";
    return dlg__yaml_fail(y, n, path, "expected %s, got %s", what, got);
}

/* Every bad key of the mapping is recorded, not just the first. */
static void check_keys(dlg_yaml *y, const dlg_ynode *map, const char *path,
                       const char *const *keys) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        dlg_ynode *k = at(y, p->key);
        char got[80];
        dlg__yaml_show(k, got, sizeof(got));
        if (k->type != YAML_SCALAR_NODE) {
            dlg__yaml_fail(y, k, path, "expected a key name, got %s", got);
            continue;
        }
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], dlg__yaml_sval(k)) != 0)
            i++;
        if (!keys[i]) {
            char list[512];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; keys[j] && o < sizeof(list); j++)
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", keys[j]);
            dlg__yaml_fail(y, k, path, "unknown key %s (expected one of: %s)", got, list);
            continue;
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            dlg_ynode *kq = at(y, q->key);
            if (kq->type == YAML_SCALAR_NODE &&
                strcmp(dlg__yaml_sval(kq), dlg__yaml_sval(k)) == 0) {
                dlg__yaml_fail(y, k, path, "duplicate key %s (first at line %lu)", got,
                               (unsigned long)kq->start_mark.line + 1);
                break;
            }
        }
    }
}

int dlg__yaml_want_map(dlg_yaml *y, const dlg_ynode *n, const char *path,
                       const char *const *keys) {
    int rc = dlg__yaml_want(y, n, path, YAML_MAPPING_NODE);
    if (rc < 0)
        return rc;
    check_keys(y, n, path, keys);
    return dlg__yaml_note(y, n, path);
}

int dlg__yaml_missing(dlg_yaml *y, const dlg_ynode *map, const char *path, const char *key) {
    return dlg__yaml_fail(y, map, path, "missing required key \"%s\"", key);
}

int dlg__yaml_seq_alloc(dlg_yaml *y, const dlg_ynode *n, const char *path, size_t size,
                        void **v, size_t *cnt) {
    int rc = dlg__yaml_want(y, n, path, YAML_SEQUENCE_NODE);
    if (rc < 0 || (rc = dlg__yaml_note(y, n, path)) < 0)
        return rc;
    size_t len = dlg__yaml_seq_len(n);
    *v = len ? dlg_calloc(len, size) : NULL;
    /* No array, no count: the freers walk *cnt items of *v. */
    *cnt = *v ? len : 0;
    return len && !*v ? DLG_ENOMEM : 0;
}

/* ---- typed values ------------------------------------------------------- */

int dlg__yaml_text(dlg_yaml *y, const dlg_ynode *n, const char *path, size_t maxlen,
                   char **out) {
    int rc = dlg__yaml_want(y, n, path, YAML_SCALAR_NODE);
    if (rc < 0)
        return rc;
    size_t len = n->data.scalar.length;
    if (strlen(dlg__yaml_sval(n)) != len)
        return dlg__yaml_fail(y, n, path, "contains a NUL byte");
    if (len > maxlen)
        return dlg__yaml_fail(y, n, path, "is %zu bytes long (at most %zu)", len, maxlen);
    char *s = dlg_strdup(dlg__yaml_sval(n));
    if (!s || dlg__yaml_note(y, n, path) < 0) {
        free(s);
        return DLG_ENOMEM;
    }
    free(*out);
    *out = s;
    return 0;
}

int dlg__yaml_opt_text(dlg_yaml *y, const dlg_ynode *n, const char *path, size_t maxlen,
                       char **out) {
    int rc = dlg__yaml_text(y, n, path, maxlen, out);
    if (rc == 0 && !**out) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int dlg__yaml_path(dlg_yaml *y, const dlg_ynode *n, const char *path, char **out) {
    char *raw = NULL;
    int rc = dlg__yaml_text(y, n, path, PATH_MAX_LEN, &raw);
    if (rc < 0)
        return rc;
    if (!*raw) {
        free(raw);
        return dlg__yaml_fail(y, n, path, "expected a file path, got \"\"");
    }
    char *s = raw;
    if (raw[0] != '/' && y->dir[0]) {
        size_t dl = strlen(y->dir), rl = strlen(raw);
        s = dlg_malloc(dl + rl + 1);
        if (!s) {
            free(raw);
            return DLG_ENOMEM;
        }
        memcpy(s, y->dir, dl);
        memcpy(s + dl, raw, rl + 1);
        free(raw);
    }
    free(*out);
    *out = s;
    return 0;
}

bool dlg__yaml_parse_u64(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int dlg__yaml_uint(dlg_yaml *y, const dlg_ynode *n, const char *path, uint64_t min,
                   uint64_t max, uint64_t *out) {
    uint64_t v;
    char got[80];
    dlg__yaml_show(n, got, sizeof(got));
    if (n->type != YAML_SCALAR_NODE || !dlg__yaml_parse_u64(dlg__yaml_sval(n), &v))
        return dlg__yaml_fail(y, n, path, "expected an unsigned integer, got %s", got);
    if (v < min || v > max)
        return dlg__yaml_fail(y, n, path, "%llu is out of range (expected %llu to %llu)",
                              (unsigned long long)v, (unsigned long long)min,
                              (unsigned long long)max);
    *out = v;
    return 0;
}

int dlg__yaml_u32(dlg_yaml *y, const dlg_ynode *n, const char *path, uint32_t min,
                  uint32_t max, uint32_t *out) {
    uint64_t v;
    int rc = dlg__yaml_uint(y, n, path, min, max, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

/* YAML 1.1 booleans, which is what libyaml's users expect to write. */
int dlg__yaml_bool_word(const char *s) {
    static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, t[i]))
            return 1;
        if (!strcasecmp(s, f[i]))
            return 0;
    }
    return -1;
}

int dlg__yaml_bool(dlg_yaml *y, const dlg_ynode *n, const char *path, bool *out) {
    int b = n->type == YAML_SCALAR_NODE ? dlg__yaml_bool_word(dlg__yaml_sval(n)) : -1;
    if (b < 0) {
        char got[80];
        dlg__yaml_show(n, got, sizeof(got));
        return dlg__yaml_fail(y, n, path, "expected true or false, got %s", got);
    }
    *out = b;
    return 0;
}

int dlg__yaml_enum(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *const *names,
                   int *out) {
    if (n->type == YAML_SCALAR_NODE)
        for (int i = 0; names[i]; i++)
            if (strcmp(names[i], dlg__yaml_sval(n)) == 0) {
                *out = i;
                return 0;
            }
    char got[80], list[256];
    size_t o = 0;
    list[0] = '\0';
    dlg__yaml_show(n, got, sizeof(got));
    for (size_t j = 0; names[j] && o < sizeof(list); j++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", names[j]);
    return dlg__yaml_fail(y, n, path, "expected one of: %s; got %s", list, got);
}

int dlg__yaml_double(dlg_yaml *y, const dlg_ynode *n, const char *path, double *out) {
    char got[80];
    dlg__yaml_show(n, got, sizeof(got));
    if (n->type != YAML_SCALAR_NODE)
        return dlg__yaml_fail(y, n, path, "expected a number, got %s", got);
    const char *s = dlg__yaml_sval(n);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* strtod also takes hex, "inf" and "nan": none of them is a threshold. */
    bool lead_ok = (*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.';
    if (!lead_ok || *end || end == s || errno || !isfinite(v) || strpbrk(s, "xX"))
        return dlg__yaml_fail(y, n, path, "expected a number, got %s", got);
    *out = v;
    return 0;
}

/* ---- the file ----------------------------------------------------------- */

/* libyaml reports encoding errors by byte offset only; count the lines up
 * to it so that this message points at a line like every other one. */
static unsigned long line_of_offset(FILE *f, size_t off) {
    unsigned long line = 1;
    int ch;
    if (fseek(f, 0, SEEK_SET) != 0)
        return 0;
    for (size_t i = 0; i < off && (ch = getc(f)) != EOF; i++)
        line += ch == '\n';
    return line;
}

/* Records a message that has its own form (no key path). */
static void fail_file(dlg_yaml *y, const char *line) {
    if (y->n_errors++ == 0 && y->err && y->errlen)
        snprintf(y->err, y->errlen, "%s", line);
    keep_error(y, "", line);
}

/* A syntax error ends the parse: it is the only error of the file. */
static int syntax_error(dlg_yaml *y, const yaml_parser_t *p, FILE *f) {
    if (p->error == YAML_MEMORY_ERROR)
        return DLG_ENOMEM;
    char line[1200];
    const char *prob = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR) {
        snprintf(line, sizeof(line), "%s:%lu: cannot read YAML: %s (byte %zu of the file)",
                 y->file, line_of_offset(f, p->problem_offset), prob, p->problem_offset);
    } else if (p->context) {
        snprintf(line, sizeof(line),
                 "%s:%lu:%lu: YAML syntax error: %s (%s that starts at line %lu)", y->file,
                 (unsigned long)p->problem_mark.line + 1, (unsigned long)p->problem_mark.column + 1,
                 prob, p->context, (unsigned long)p->context_mark.line + 1);
    } else {
        snprintf(line, sizeof(line), "%s:%lu:%lu: YAML syntax error: %s", y->file,
                 (unsigned long)p->problem_mark.line + 1, (unsigned long)p->problem_mark.column + 1,
                 prob);
    }
    fail_file(y, line);
    return DLG_ECONFIG;
}

/* Parses the stream into y->doc_, refusing a second document: a file that
 * holds two configurations is a mistake, not a choice of one. */
static int parse_file(dlg_yaml *y, FILE *f) {
    yaml_parser_t p;
    yaml_document_t extra;
    int rc = 0;
    if (!yaml_parser_initialize(&p))
        return DLG_ENOMEM;
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, &y->doc_)) {
        rc = syntax_error(y, &p, f);
        goto done;
    }
    y->have_doc = true;
    if (!yaml_document_get_root_node(&y->doc_))
        goto done; /* empty stream: nothing after it either */
    if (!yaml_parser_load(&p, &extra)) {
        rc = syntax_error(y, &p, f);
        goto done;
    }
    if (yaml_document_get_root_node(&extra)) {
        y->doc = &extra;
        rc = dlg__yaml_fail(y, yaml_document_get_root_node(&extra), "",
                            "a second YAML document (after \"---\"); the file must hold one");
        y->doc = NULL;
    }
    yaml_document_delete(&extra);
done:
    yaml_parser_delete(&p);
    return rc;
}

int dlg__yaml_open(dlg_yaml *y, const char *path, char *err, size_t errlen, dlg_ynode **root) {
    y->file = path;
    y->err = err;
    y->errlen = errlen;
    *root = NULL;
    const char *slash = strrchr(path, '/');
    y->dir = dlg_strndup(path, slash ? (size_t)(slash - path) + 1 : 0);
    if (!y->dir)
        return DLG_ENOMEM;
    FILE *f = fopen(path, "rb");
    struct stat st = {0};
    if (f && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
        errno = EISDIR; /* fopen takes a directory; reading it fails */
    if (!f || S_ISDIR(st.st_mode)) {
        char line[1200];
        snprintf(line, sizeof(line), "%s: cannot open: %s", path, strerror(errno));
        fail_file(y, line);
        if (f)
            fclose(f);
        return DLG_EIO;
    }
    int rc = parse_file(y, f);
    fclose(f);
    if (rc < 0)
        return rc;
    y->doc = &y->doc_;
    dlg_ynode *r = yaml_document_get_root_node(&y->doc_);
    *root = r && !dlg__yaml_is_null(r) ? r : NULL;
    return 0;
}

void dlg__yaml_close(dlg_yaml *y) {
    for (size_t i = 0; i < y->n_errv; i++) {
        free(y->errv[i].path);
        free(y->errv[i].text);
    }
    free(y->errv);
    y->errv = NULL;
    y->n_errv = y->cap_errv = 0;
    for (size_t i = 0; i < y->n_posv; i++)
        free(y->posv[i].path);
    free(y->posv);
    y->posv = NULL;
    y->n_posv = y->cap_posv = 0;
    if (y->have_doc)
        yaml_document_delete(&y->doc_);
    y->have_doc = false;
    y->doc = NULL;
    free(y->dir);
    y->dir = NULL;
}
