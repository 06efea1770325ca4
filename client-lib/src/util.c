/* util.c: the client library's allocation choke point and string-array
 * helpers. Every allocation of the library goes through dlg__malloc & co. */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "dlg_err.h"

void *dlg__malloc(size_t n) {
    return malloc(n ? n : 1);
}

void *dlg__calloc(size_t n, size_t size) {
    return calloc(n ? n : 1, size ? size : 1);
}

void *dlg__realloc(void *p, size_t n) {
    return realloc(p, n ? n : 1);
}

char *dlg__strdup(const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = dlg__malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void dlg__free(void *p) {
    free(p);
}

int dlg__strv_dup(const char *const *v, size_t n, char ***out) {
    char **d = dlg__calloc(n + 1, sizeof(*d));
    if (d == NULL)
        return DLG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((d[i] = dlg__strdup(v[i] ? v[i] : "")) == NULL) {
            dlg__strv_free(d, i);
            return DLG_ENOMEM;
        }
    }
    *out = d;
    return 0;
}

void dlg__strv_free(char **v, size_t n) {
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        dlg__free(v[i]);
    dlg__free(v);
}
