/* pbjson_text.c: compact JSON text with every real in its shortest form
 * that reads back exactly (dlg_pbjson_dumps, dlg_pbjson_real_text). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_err.h"
#include "dlg_vec.h"
#include "pbjson.h"
#include "pbjson_int.h"

/* ---- JSON text ---------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (n > SIZE_MAX - b->len - 1 || DLG_GROW(b->p, b->cap, b->len + n + 1) != 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

int dlg_pbjson_real_text(double d, char *buf, size_t len) {
    if (!isfinite(d) || len < 32)
        return DLG_EINVAL;
    /* The fewest significant digits that read back as d (17 always do). */
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, len, "%.*e", digits - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    snprintf(buf, len, "%.*e", digits - 1, d);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    /* Plain decimals where they read well (100.0, 0.015), exponents for
     * the very large and very small (1e+16, 1.5e-05), as Python prints
     * numbers. The same digits either way. */
    if (exp10 >= -4 && exp10 < 16) {
        int decimals = digits - 1 - exp10;
        snprintf(buf, len, "%.*f", decimals > 0 ? decimals : 0, d);
        /* "5" would read back as an integer: keep it a real, as jansson
         * does. */
        if (strchr(buf, '.') == NULL)
            strcat(buf, ".0");
    }
    return 0;
}

/* A string (or key) as jansson escapes it: UTF-8 kept, controls, quotes
 * and backslashes escaped. */
static void dump_string(sbuf *b, const char *s, size_t n) {
    json_t *j = json_stringn_nocheck(s, n);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (t == NULL)
        b->oom = 1;
    else
        sb_put(b, t, strlen(t));
    free(t);
    json_decref(j);
}

static void dump_value(sbuf *b, const json_t *v) {
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        sb_put(b, "{", 1);
        json_object_foreach((json_t *)v, key, val) {
            if (!first)
                sb_put(b, ",", 1);
            first = 0;
            dump_string(b, key, json_object_iter_key_len(json_object_key_to_iter(key)));
            sb_put(b, ":", 1);
            dump_value(b, val);
        }
        sb_put(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        sb_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                sb_put(b, ",", 1);
            dump_value(b, json_array_get(v, i));
        }
        sb_put(b, "]", 1);
        break;
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_put(b, num, strlen(num));
        break;
    case JSON_REAL:
        /* jansson keeps only finite reals. */
        if (dlg_pbjson_real_text(json_real_value(v), num, sizeof num) != 0)
            snprintf(num, sizeof num, "null");
        sb_put(b, num, strlen(num));
        break;
    case JSON_TRUE: sb_put(b, "true", 4); break;
    case JSON_FALSE: sb_put(b, "false", 5); break;
    default: sb_put(b, "null", 4); break;
    }
}

char *dlg_pbjson_dumps(const json_t *v) {
    sbuf b = {0};
    if (v == NULL)
        return NULL;
    dump_value(&b, v);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
