/* output.c: how dialoguectl prints events, whatever the command: the JSON
 * line (sub, history --json, dashboard when piped), --format templates,
 * --raw payloads, and the events held while the schema that decodes them
 * is on its way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"
#include "dlg_vec.h"
#include "pbjson.h"

/* ---- the JSON line ---------------------------------------------------------- */

json_t *ctl_event_json(const dlg_event *ev, const dlg_schema *schema) {
    json_t *line = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "room", ev->room, "event",
                             ev->event, "from", ev->from, "from_kind",
                             dlg_from_kind_name(ev->from_kind), "ts", (json_int_t)ev->ts_ms, "seq",
                             (json_int_t)ev->seq, "epoch", (json_int_t)ev->epoch);
    if (line == NULL)
        return NULL;
    const dlg_schema_event *se = schema ? dlg_schema_event_find(schema, ev->event) : NULL;
    json_t *data = NULL;
    char err[256] = "no schema for this event";
    if (se == NULL || dlg_pbjson_decode(se->msg, ev->data, ev->len, &data, err, sizeof(err)) != 0) {
        /* Still show the event: the raw payload, and why it is raw. */
        char *b64 = ctl_base64(ev->data, ev->len);
        json_object_set_new(line, "data_b64", json_string(b64 ? b64 : ""));
        json_object_set_new(line, "decode_error", json_string(err));
        free(b64);
    } else {
        json_object_set_new(line, "data", data);
    }
    return line;
}

int ctl_print_event_line(const dlg_event *ev, const dlg_schema *schema) {
    json_t *line = ctl_event_json(ev, schema);
    char *text = line ? dlg_pbjson_dumps(line) : NULL;
    json_decref(line);
    if (text == NULL)
        return -1;
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    return 0;
}

int ctl_print_raw(const dlg_event *ev) {
    if (ev->len > 0 && fwrite(ev->data, 1, ev->len, stdout) != ev->len)
        return -1;
    return fflush(stdout) == 0 ? 0 : -1;
}

/* ---- --format templates --------------------------------------------------- */

/* A template is a list of pieces: literal text, or a path into the event's
 * JSON line ("data", "cpu" for {{.data.cpu}}; no keys for {{.}}). */
typedef struct piece {
    char *text;       /* literal (escapes applied), or NULL for a path */
    size_t len;
    char **keys;
    size_t n_keys;
    int payload;      /* {{.payload}}: the payload bytes as they are */
} piece;

struct ctl_fmt {
    piece *v;
    size_t n;
};

static const char *const top_keys[] = {"room", "event", "from", "from_kind", "ts", "seq",
                                       "epoch", "data", "data_b64", "decode_error",
                                       "payload"};

void ctl_fmt_free(ctl_fmt *f) {
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].text);
        for (size_t k = 0; k < f->v[i].n_keys; k++)
            free(f->v[i].keys[k]);
        free(f->v[i].keys);
    }
    free(f->v);
    free(f);
}

static piece *add_piece(ctl_fmt *f) {
    piece *n = realloc(f->v, (f->n + 1) * sizeof(*n));
    if (n == NULL)
        return NULL;
    f->v = n;
    memset(&n[f->n], 0, sizeof(*n));
    return &n[f->n++];
}

/* Literal text with \n, \t and \\ turned into the characters. */
static int add_literal(ctl_fmt *f, const char *s, size_t n) {
    if (n == 0)
        return 0;
    piece *p = add_piece(f);
    char *t = p ? malloc(n + 1) : NULL;
    if (t == NULL)
        return DLG_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && strchr("nt\\", s[i + 1]) != NULL) {
            i++;
            t[o++] = s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : '\\';
        } else {
            t[o++] = s[i];
        }
    }
    t[o] = 0;
    p->text = t;
    p->len = o;
    return 0;
}

/* One {{ ... }}: s[0..n) is what is between the braces. */
static int add_path(ctl_fmt *f, const char *s, size_t n, char *err, size_t errlen) {
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || s[0] != '.') {
        snprintf(err, errlen, "{{%.*s}}: expected a path such as {{.seq}} or {{.data.cpu}}",
                 (int)n, s);
        return DLG_EINVAL;
    }
    piece *p = add_piece(f);
    if (p == NULL)
        return DLG_ENOMEM;
    if (n == 1)
        return 0; /* {{.}}: the whole line */
    for (size_t i = 1; i <= n;) {
        size_t j = i;
        while (j < n && s[j] != '.')
            j++;
        if (j == i) {
            snprintf(err, errlen, "{{%.*s}}: empty key in the path", (int)n, s);
            return DLG_EINVAL;
        }
        char **keys = realloc(p->keys, (p->n_keys + 1) * sizeof(*keys));
        if (keys == NULL)
            return DLG_ENOMEM;
        p->keys = keys;
        if ((keys[p->n_keys] = strndup(s + i, j - i)) == NULL)
            return DLG_ENOMEM;
        p->n_keys++;
        i = j + 1;
    }
    int known = 0;
    for (size_t k = 0; k < sizeof(top_keys) / sizeof(top_keys[0]); k++)
        known |= strcmp(p->keys[0], top_keys[k]) == 0;
    if (!known) {
        snprintf(err, errlen,
                 "{{%.*s}}: no key \"%s\" (there are .room .event .from .from_kind .ts "
                 ".seq .epoch .data .data_b64 .decode_error .payload)",
                 (int)n, s, p->keys[0]);
        return DLG_EINVAL;
    }
    p->payload = strcmp(p->keys[0], "payload") == 0;
    if (p->payload && p->n_keys > 1) {
        snprintf(err, errlen, "{{%.*s}}: .payload has no fields (it is bytes)", (int)n, s);
        return DLG_EINVAL;
    }
    return 0;
}

int ctl_fmt_parse(const char *text, ctl_fmt **out, char *err, size_t errlen) {
    ctl_fmt *f = calloc(1, sizeof(*f));
    int rc = 0;
    if (f == NULL)
        return DLG_ENOMEM;
    const char *s = text;
    while (rc == 0 && *s) {
        const char *open = strstr(s, "{{");
        if (open == NULL) {
            rc = add_literal(f, s, strlen(s));
            break;
        }
        const char *close = strstr(open + 2, "}}");
        if (close == NULL) {
            snprintf(err, errlen, "\"{{\" at offset %zu is not closed by \"}}\"",
                     (size_t)(open - text));
            rc = DLG_EINVAL;
            break;
        }
        if ((rc = add_literal(f, s, (size_t)(open - s))) == 0)
            rc = add_path(f, open + 2, (size_t)(close - open - 2), err, errlen);
        s = close + 2;
    }
    if (rc == DLG_ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (rc != 0) {
        ctl_fmt_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* The value at p's path in line, or NULL when there is none. */
static json_t *walk(json_t *line, const piece *p) {
    json_t *v = line;
    for (size_t i = 0; v != NULL && i < p->n_keys; i++) {
        if (json_is_object(v)) {
            v = json_object_get(v, p->keys[i]);
        } else if (json_is_array(v)) {
            char *end;
            unsigned long k = strtoul(p->keys[i], &end, 10);
            v = *p->keys[i] && *end == 0 ? json_array_get(v, k) : NULL;
        } else {
            v = NULL;
        }
    }
    return v;
}

/* Appends v as a template shows it: a string without quotes, anything else
 * as its JSON text. */
static int put_value(FILE *fp, const json_t *v) {
    if (json_is_string(v))
        return fwrite(json_string_value(v), 1, json_string_length(v), fp) ==
                       json_string_length(v) ? 0 : -1;
    char *t = dlg_pbjson_dumps(v);
    if (t == NULL)
        return -1;
    int rc = fputs(t, fp) < 0 ? -1 : 0;
    free(t);
    return rc;
}

int ctl_fmt_print(const ctl_fmt *f, const dlg_event *ev, const dlg_schema *schema) {
    json_t *line = ctl_event_json(ev, schema);
    int rc = line ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < f->n; i++) {
        const piece *p = &f->v[i];
        if (p->text != NULL) {
            rc = fwrite(p->text, 1, p->len, stdout) == p->len ? 0 : -1;
        } else if (p->payload) {
            rc = ev->len == 0 || fwrite(ev->data, 1, ev->len, stdout) == ev->len ? 0 : -1;
        } else {
            json_t *v = walk(line, p);
            if (v != NULL)
                rc = put_value(stdout, v);
        }
    }
    json_decref(line);
    if (rc == 0 && (putchar('\n') == EOF || fflush(stdout) != 0))
        rc = -1;
    return rc;
}

int ctl_fmt_needs_schema(const ctl_fmt *f) {
    for (size_t i = 0; i < f->n; i++) {
        const piece *p = &f->v[i];
        if (p->text == NULL && !p->payload &&
            (p->n_keys == 0 || strcmp(p->keys[0], "data") == 0 ||
             strcmp(p->keys[0], "data_b64") == 0 || strcmp(p->keys[0], "decode_error") == 0))
            return 1;
    }
    return 0;
}

/* ---- events held until the schema is known ----------------------------------- */

int ctl_evq_push(ctl_evq *q, const dlg_event *ev) {
    if (DLG_GROW(q->v, q->cap, q->n + 1) != 0)
        return -1;
    /* One block per event: room, event and from, then the payload; the
     * room string comes first, so its pointer frees the block. */
    size_t lr = strlen(ev->room) + 1, le = strlen(ev->event) + 1, lf = strlen(ev->from) + 1;
    char *b = malloc(lr + le + lf + ev->len);
    if (b == NULL)
        return -1;
    dlg_event *d = &q->v[q->n++];
    *d = *ev;
    d->room = memcpy(b, ev->room, lr);
    d->event = memcpy(b + lr, ev->event, le);
    d->from = memcpy(b + lr + le, ev->from, lf);
    d->data = (const uint8_t *)b + lr + le + lf;
    if (ev->len > 0)
        memcpy(b + lr + le + lf, ev->data, ev->len);
    return 0;
}

void ctl_evq_clear(ctl_evq *q) {
    for (size_t i = 0; i < q->n; i++)
        free((void *)q->v[i].room);
    free(q->v);
    q->v = NULL;
    q->n = q->cap = 0;
}
