/* dlg_sorted.c: binary search by string key (see dlg_sorted.h). */
#include "dlg_sorted.h"

#include <string.h>

size_t dlg_sorted_pos(const void *base, size_t n, size_t stride, dlg_sorted_key_fn key_of,
                      const char *key, int *found) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key_of((const char *)base + mid * stride), key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}
