/* dlg_vec.c: growable arrays and FIFO rings (see dlg_vec.h). */
#include "dlg_vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlg_alloc.h"
#include "dlg_err.h"

int dlg_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    size_t nc = *cap > SIZE_MAX / 2 ? need : *cap * 2;
    if (nc < need)
        nc = need;
    if (nc < DLG_GROW_MIN)
        nc = DLG_GROW_MIN;
    if (elem != 0 && nc > SIZE_MAX / elem)
        return DLG_ENOMEM;
    void *np = dlg_realloc(*p, nc * elem);
    if (np == NULL)
        return DLG_ENOMEM;
    *p = np;
    *cap = nc;
    return 0;
}

int dlg_fifo_reserve(dlg_fifo *q, size_t elem) {
    if (elem == 0 || (q->cap != 0 && elem != q->elem))
        return DLG_EINVAL;
    q->elem = elem;
    if (q->n < q->cap)
        return 0;
    /* Unwrapped into a new block, oldest first, so the ring can grow
     * without a second copy. */
    size_t nc = q->cap ? q->cap * 2 : DLG_GROW_MIN;
    if (q->cap > SIZE_MAX / 2 || nc > SIZE_MAX / elem)
        return DLG_ENOMEM;
    char *nv = dlg_malloc(nc * elem);
    if (nv == NULL)
        return DLG_ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        memcpy(nv + i * elem, dlg_fifo_at(q, i), elem);
    free(q->v);
    q->v = nv;
    q->cap = nc;
    q->head = 0;
    return 0;
}

void *dlg_fifo_push(dlg_fifo *q, size_t elem) {
    if (dlg_fifo_reserve(q, elem) != 0)
        return NULL;
    q->n++;
    void *it = dlg_fifo_at(q, q->n - 1);
    memset(it, 0, q->elem);
    return it;
}

void dlg_fifo_pop(dlg_fifo *q) {
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

void dlg_fifo_free(dlg_fifo *q) {
    free(q->v);
    *q = (dlg_fifo){0};
}
