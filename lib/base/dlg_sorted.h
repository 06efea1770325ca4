/* dlg_sorted.h: binary search in arrays kept sorted by a string key (rooms
 * by id, bus interests by room). */
#ifndef DLG_SORTED_H
#define DLG_SORTED_H

#include <stddef.h>

/* Returns the key of one element (elem points into the array). */
typedef const char *(*dlg_sorted_key_fn)(const void *elem);

/* Position of key among n elements of stride bytes at base, sorted by
 * strcmp of key_of(elem): its index when *found is set to 1, else where it
 * would be inserted (*found = 0). */
size_t dlg_sorted_pos(const void *base, size_t n, size_t stride, dlg_sorted_key_fn key_of,
                      const char *key, int *found);

#endif
