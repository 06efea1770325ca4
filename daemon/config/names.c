/* names.c: the words every config section checks the same way: room ids
 * and event names, roles, and lists of them (config_int.h). */
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dlg_alloc.h"
#include "dlg_err.h"

void dlg__cfg_strv_free(dlg_config_strv *v) {
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

bool dlg__cfg_strv_has(const dlg_config_strv *v, const char *s) {
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i], s) == 0)
            return true;
    return false;
}

static bool name_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

/* Room ids and event names go on the wire and into logs and metrics labels,
 * hence the narrow character set. */
int dlg__cfg_check_name(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s) {
    if (!*s)
        return dlg__yaml_fail(y, n, path, "must not be empty");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!name_char(*p)) {
            char got[80];
            dlg__yaml_show(n, got, sizeof(got));
            if (*p >= 0x20 && *p < 0x7f)
                return dlg__yaml_fail(y, n, path,
                                      "invalid character '%c' in %s (allowed: A-Z a-z 0-9 _ . : -)",
                                      *p, got);
            return dlg__yaml_fail(
                y, n, path, "invalid byte 0x%02x in %s (allowed: A-Z a-z 0-9 _ . : -)", *p, got);
        }
    return 0;
}

/* Roles come from JWT claims and certificate mappings, so any visible text
 * is allowed; blanks and control bytes would only hide mistakes. */
int dlg__cfg_check_role(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *s) {
    if (!*s)
        return dlg__yaml_fail(y, n, path, "a role must not be empty");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) {
            char got[80];
            dlg__yaml_show(n, got, sizeof(got));
            return dlg__yaml_fail(y, n, path,
                                  "a role must not contain blanks or control characters: %s", got);
        }
    return 0;
}

/* An origin as browsers send it: scheme://host[:port], nothing after. */
static int check_origin(dlg_yaml *y, const dlg_ynode *n, const char *path, const char *o) {
    if (strcmp(o, "*") == 0)
        return 0;
    const char *h = strncmp(o, "https://", 8) == 0 ? o + 8
                    : strncmp(o, "http://", 7) == 0 ? o + 7 : NULL;
    if (h == NULL || !*h || strpbrk(h, "/?#@ ") != NULL)
        return dlg__yaml_fail(y, n, path,
                              "\"%s\" is no origin: write scheme://host[:port], e.g. "
                              "https://dash.example.com", o);
    return 0;
}

int dlg__cfg_strv(dlg_yaml *y, const dlg_ynode *n, const char *path, int kind,
                  dlg_config_strv *out) {
    size_t mark = y->n_errors;
    int rc = dlg__yaml_want(y, n, path, YAML_SEQUENCE_NODE);
    if (rc < 0)
        return rc;
    dlg__cfg_strv_free(out);
    size_t cnt = dlg__yaml_seq_len(n);
    if (!cnt)
        return 0;
    out->v = dlg_calloc(cnt, sizeof(*out->v));
    if (!out->v)
        return DLG_ENOMEM;
    out->n = cnt;
    size_t star = cnt;
    for (size_t i = 0; i < cnt; i++) {
        dlg_ynode *it = dlg__yaml_seq_at(y, n, i);
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, path, i);
        rc = kind == DLG_CFG_K_PATH ? dlg__yaml_path(y, it, p, &out->v[i])
                                    : dlg__yaml_text(y, it, p, DLG_CFG_NAME_MAX, &out->v[i]);
        DLG_CFG_TRY(rc);
        if (rc < 0)
            continue;
        const char *s = out->v[i];
        bool is_star = strcmp(s, "*") == 0;
        if (kind == DLG_CFG_K_PATH)
            rc = 0;
        else if (kind == DLG_CFG_K_ORIGIN)
            rc = check_origin(y, it, p, s);
        else if (is_star && (kind == DLG_CFG_K_EVENT || kind == DLG_CFG_K_ROLE))
            star = i;
        else if (is_star && kind == DLG_CFG_K_GRANT)
            rc = dlg__yaml_fail(y, it, p, "\"*\" cannot be granted as a role");
        else if (kind == DLG_CFG_K_NAME || kind == DLG_CFG_K_EVENT)
            rc = dlg__cfg_check_name(y, it, p, s);
        else
            rc = dlg__cfg_check_role(y, it, p, s);
        if (rc < 0)
            continue;
        for (size_t j = 0; j < i; j++)
            if (out->v[j] && strcmp(out->v[j], s) == 0) {
                dlg__yaml_fail(y, it, p, "duplicate entry \"%s\"", s);
                break;
            }
    }
    if (kind == DLG_CFG_K_EVENT && star < cnt && cnt > 1) {
        char p[DLG_YAML_KEYPATH];
        dlg__yaml_idxpath(p, path, star);
        dlg__yaml_fail(y, dlg__yaml_seq_at(y, n, star), p,
                       "\"*\" must be the only entry of the list");
    }
    /* Entries that could not be read as text leave no hole for the checks
     * that walk the list later; those read but refused stay, so that what
     * names them is not refused a second time. */
    size_t o = 0;
    for (size_t i = 0; i < cnt; i++)
        if (out->v[i])
            out->v[o++] = out->v[i];
    out->n = o;
    return dlg__yaml_since(y, mark);
}
