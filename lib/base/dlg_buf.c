/* dlg_buf.c: reference-counted buffers (see dlg_buf.h). */
#include "dlg_buf.h"

#include "dlg_alloc.h"

#include <stdlib.h>

dlg_buf *dlg_buf_new(size_t len) {
    dlg_buf *b = dlg_malloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    return b;
}

dlg_buf *dlg_buf_ref(dlg_buf *b) {
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void dlg_buf_unref(dlg_buf *b) {
    if (b == NULL)
        return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}
