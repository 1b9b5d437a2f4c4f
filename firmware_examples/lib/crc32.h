/* crc32.h - CRC-32 (IEEE 802.3, reflected 0xEDB88320), the same value as Python's zlib.crc32. */
#ifndef HIL_LIB_CRC32_H
#define HIL_LIB_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: crc32_update(0, data, n) is the CRC of data; chunks may be fed in turn,
 * passing the previous result back in (like zlib.crc32(data, value)). */
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

#endif
