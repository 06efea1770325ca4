/* dlg_buf.h: an immutable, reference-counted byte buffer. The fan-out path
 * encodes an Event frame once into one of these and every recipient's output
 * queue holds a reference, so no per-recipient copy is made. */
#ifndef DLG_BUF_H
#define DLG_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dlg_buf {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
} dlg_buf;

/* Allocates a buffer of len bytes (contents undefined) with one reference
 * owned by the caller. NULL when out of memory. */
dlg_buf *dlg_buf_new(size_t len);

/* Takes one more reference; returns b. Safe from any thread. */
dlg_buf *dlg_buf_ref(dlg_buf *b);

/* Drops one reference; frees the buffer with the last one. NULL is ignored. */
void dlg_buf_unref(dlg_buf *b);

#endif
