/* dlg_vec.h: growable arrays and FIFO rings of fixed-size items, written
 * once for the whole tree: dlg_grow is the "double the capacity and
 * realloc" idiom, dlg_fifo the growable circular queue (the Acks that wait
 * for the store or the cluster log). Single-threaded; nothing is freed
 * behind the caller's back. */
#ifndef DLG_VEC_H
#define DLG_VEC_H

#include <stddef.h>

/* Capacity a first dlg_grow gives at least, in items. */
#define DLG_GROW_MIN 8

/* Makes room for need items of elem bytes in the array *p (capacity *cap
 * items): when need > *cap, reallocates it to the largest of need, twice
 * *cap and DLG_GROW_MIN. The first items keep their values; the new ones
 * are not initialised. Returns 0, or DLG_ENOMEM (also when the size would
 * overflow), leaving *p and *cap unchanged. *p may be NULL with *cap 0. */
int dlg_grow(void **p, size_t *cap, size_t need, size_t elem);

/* dlg_grow for a typed array lvalue arr (T *), its capacity lvalue cap and
 * the items needed: `if (DLG_GROW(v->items, v->cap, v->n + 1) != 0) return
 * DLG_ENOMEM;`. arr is evaluated more than once. */
#define DLG_GROW(arr, cap, need)                                              \
    __extension__({                                                           \
        void *dlg__grow_p = (arr);                                            \
        int dlg__grow_rc = dlg_grow(&dlg__grow_p, &(cap), (need), sizeof(*(arr))); \
        if (dlg__grow_rc == 0)                                                \
            (arr) = dlg__grow_p;                                              \
        dlg__grow_rc;                                                         \
    })

/* A FIFO of items of one size in a growable ring. A zeroed dlg_fifo is an
 * empty one (so a calloc'ed owner needs no set-up); item i (0 = the
 * oldest, i < n) is at dlg_fifo_at(q, i) until the next push or pop. */
typedef struct dlg_fifo {
    void *v;
    size_t elem;          /* bytes per item, fixed by the first push */
    size_t head, n, cap;  /* oldest slot, items, slots */
} dlg_fifo;

/* Item i (< q->n) counted from the oldest. */
static inline void *dlg_fifo_at(const dlg_fifo *q, size_t i) {
    return (char *)q->v + (q->head + i) % q->cap * q->elem;
}

/* Makes room for one more item of elem bytes (above 0, the same for every
 * item of q), so that the next dlg_fifo_push cannot fail. Grows by
 * doubling, from DLG_GROW_MIN slots. 0, DLG_ENOMEM or DLG_EINVAL (elem 0
 * or not q's item size); q is unchanged on error. */
int dlg_fifo_reserve(dlg_fifo *q, size_t elem);

/* Appends a zeroed item of elem bytes (as for dlg_fifo_reserve) and
 * returns it (valid until the next push or pop), or NULL when out of
 * memory or elem is wrong (q unchanged). */
void *dlg_fifo_push(dlg_fifo *q, size_t elem);

/* Drops the oldest item (q->n must be above 0). */
void dlg_fifo_pop(dlg_fifo *q);

/* Releases the ring (items need no cleanup of their own, or the caller
 * did it); q is left empty and usable. */
void dlg_fifo_free(dlg_fifo *q);

#endif
