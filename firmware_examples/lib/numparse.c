/* numparse.c - strict number parsing for the shell (no libc, no 64-bit division). */
#include "numparse.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int parse_hex_digits(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    if (*s == '\0') {
        return NP_ERR_SYNTAX;
    }
    for (; *s; s++) {
        int d = hex_value(*s);
        if (d < 0) {
            return NP_ERR_SYNTAX;
        }
        if (v > 0x0FFFFFFFu) {
            return NP_ERR_RANGE;
        }
        v = (v << 4) | (uint32_t)d;
    }
    *out = v;
    return NP_OK;
}

int np_parse_hex_u32(const char *s, uint32_t *out)
{
    if (*s == '\0') {
        return NP_ERR_EMPTY;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
    }
    return parse_hex_digits(s, out);
}

int np_parse_i32(const char *s, int32_t *out)
{
    int negative = 0;
    uint32_t v = 0;

    if (*s == '\0') {
        return NP_ERR_EMPTY;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        int err = parse_hex_digits(s + 2, &v);
        if (err == NP_OK) {
            *out = (int32_t)v;
        }
        return err;
    }
    if (*s == '+' || *s == '-') {
        negative = *s == '-';
        s++;
    }
    if (*s == '\0') {
        return NP_ERR_SYNTAX;
    }
    /* accumulate the magnitude; the limit is 2^31 for negatives, 2^31 - 1 otherwise */
    const uint32_t limit = negative ? 0x80000000u : 0x7FFFFFFFu;
    int range_error = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return NP_ERR_SYNTAX;
        }
        uint32_t d = (uint32_t)(*s - '0');
        if (v > (limit - d) / 10u) {
            range_error = 1; /* keep scanning: "12x" with many digits is still a syntax error */
        } else {
            v = v * 10u + d;
        }
    }
    if (range_error) {
        return NP_ERR_RANGE;
    }
    *out = negative ? (int32_t)(0u - v) : (int32_t)v;
    return NP_OK;
}

int np_hex_decode(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t digits = 0;
    for (const char *p = s; *p; p++) {
        if (hex_value(*p) < 0) {
            return NP_ERR_SYNTAX;
        }
        digits++;
    }
    if (digits % 2u != 0u) {
        return NP_ERR_ODD;
    }
    if (digits / 2u > cap) {
        return NP_ERR_TOO_MANY;
    }
    for (size_t i = 0; i < digits / 2u; i++) {
        out[i] = (uint8_t)((hex_value(s[2 * i]) << 4) | hex_value(s[2 * i + 1]));
    }
    *n = digits / 2u;
    return NP_OK;
}

const char *np_strerror(int err)
{
    switch (err) {
    case NP_OK:
        return "ok";
    case NP_ERR_EMPTY:
        return "missing number";
    case NP_ERR_SYNTAX:
        return "bad number";
    case NP_ERR_RANGE:
        return "number out of range";
    case NP_ERR_ODD:
        return "odd-length hex";
    case NP_ERR_TOO_MANY:
        return "too many bytes";
    default:
        return "bad input";
    }
}
