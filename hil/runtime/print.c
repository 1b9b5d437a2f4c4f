/* print.c - small console print helpers (no printf: keeps images tiny and libgcc-free). */
#include "hil.h"

void hil_putc(char c)
{
    if (c == '\n') {
        hil_console_putc('\r');
    }
    hil_console_putc(c);
}

int hil_getc(void)
{
    return hil_console_getc();
}

void hil_puts(const char *s)
{
    while (*s) {
        hil_putc(*s++);
    }
}

void hil_println(const char *s)
{
    hil_puts(s);
    hil_putc('\n');
}

void hil_put_hex32(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int shift = 28; shift >= 0; shift -= 4) {
        hil_putc(digits[(v >> shift) & 0xFu]);
    }
}

void hil_put_u32(uint32_t v)
{
    char buf[10];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        hil_putc(buf[--n]);
    }
}

void hil_put_i32(int32_t v)
{
    if (v < 0) {
        hil_putc('-');
        hil_put_u32(0u - (uint32_t)v);
    } else {
        hil_put_u32((uint32_t)v);
    }
}
