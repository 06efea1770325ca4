/* dlg_crc32c.h: CRC-32C (Castagnoli), the checksum that guards each stored
 * history event (docs/history.md). Our own code, so no new dependency: a
 * table-driven version everywhere, the SSE4.2 crc32 instruction where the
 * CPU has it. */
#ifndef DLG_CRC32C_H
#define DLG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Returns the CRC-32C of len bytes at data, continuing from crc (0 to
 * start; pass a previous result to checksum pieces in order), as zlib's
 * crc32() does for CRC-32. dlg_crc32c(0, "123456789", 9) == 0xe3069283.
 * data may be NULL when len is 0. Safe from any thread. */
uint32_t dlg_crc32c(uint32_t crc, const void *data, size_t len);

/* The table-driven version alone, whatever the CPU (for tests). */
uint32_t dlg__crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
