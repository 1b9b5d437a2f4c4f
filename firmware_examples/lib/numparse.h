/* numparse.h - strict parsing of decimal and hex numbers and hex byte strings.
 * Every function parses a whole NUL-terminated token: trailing junk is an error. */
#ifndef HIL_LIB_NUMPARSE_H
#define HIL_LIB_NUMPARSE_H

#include <stddef.h>
#include <stdint.h>

enum {
    NP_OK = 0,
    NP_ERR_EMPTY = -1,   /* "" */
    NP_ERR_SYNTAX = -2,  /* not a number / not a hex digit */
    NP_ERR_RANGE = -3,   /* does not fit in 32 bits */
    NP_ERR_ODD = -4,     /* hex byte string with an odd number of digits */
    NP_ERR_TOO_MANY = -5 /* hex byte string longer than the output buffer */
};

/* Signed 32-bit: optional '+'/'-' then decimal digits (-2147483648..2147483647), or
 * "0x"/"0X" then 1+ hex digits up to 0xffffffff, taken as the two's-complement bit pattern. */
int np_parse_i32(const char *s, int32_t *out);

/* Unsigned 32-bit hex: optional "0x"/"0X", then 1+ hex digits, value <= 0xffffffff. */
int np_parse_hex_u32(const char *s, uint32_t *out);

/* Hex digit pairs to bytes ("DEADbeef" -> de ad be ef). Stores at most cap bytes in out and
 * the count in *n. An empty string gives 0 bytes. */
int np_hex_decode(const char *s, uint8_t *out, size_t cap, size_t *n);

/* Short lowercase reason for an NP_ERR_* code ("bad number", "odd-length hex", ...). */
const char *np_strerror(int err);

#endif
