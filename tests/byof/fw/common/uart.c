/* uart.c - transmit-only console written from the reference manuals' register maps:
 * STM32F4 USART (RM0383 section 19.6: SR 0x00 TXE bit 7, DR 0x04, BRR 0x08, CR1 0x0C with
 * UE bit 13 and TE bit 3) and the ARM PL011 (DR 0x00, FR 0x18 TXFF bit 5, IBRD 0x24,
 * FBRD 0x28, LCRH 0x2C, CR 0x30 with UARTEN bit 0 and TXE bit 8). */
#include "uart.h"

#include "hil_board.h"

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

void uart_init(void)
{
    REG(HIL_CONSOLE_CLKEN_REG) |= 1u << HIL_CONSOLE_CLKEN_BIT;
#if defined(HIL_CONSOLE_STM32_USART)
    REG(HIL_CONSOLE_BASE + 0x08u) =
        (HIL_CONSOLE_CLOCK_HZ + HIL_CONSOLE_BAUD / 2u) / HIL_CONSOLE_BAUD;
    REG(HIL_CONSOLE_BASE + 0x0Cu) = (1u << 13) | (1u << 3);
#elif defined(HIL_CONSOLE_PL011)
    uint32_t div64 = (HIL_CONSOLE_CLOCK_HZ * 4u + HIL_CONSOLE_BAUD / 2u) / HIL_CONSOLE_BAUD;
    REG(HIL_CONSOLE_BASE + 0x30u) = 0u;
    REG(HIL_CONSOLE_BASE + 0x24u) = div64 >> 6;
    REG(HIL_CONSOLE_BASE + 0x28u) = div64 & 0x3Fu;
    REG(HIL_CONSOLE_BASE + 0x2Cu) = 0x60u; /* 8 data bits, no parity, 1 stop bit */
    REG(HIL_CONSOLE_BASE + 0x30u) = (1u << 0) | (1u << 8);
#else
#error "this test console knows the STM32 USART and the PL011 only"
#endif
}

static void uart_putc(char c)
{
#if defined(HIL_CONSOLE_STM32_USART)
    while ((REG(HIL_CONSOLE_BASE + 0x00u) & (1u << 7)) == 0u) {
    }
    REG(HIL_CONSOLE_BASE + 0x04u) = (uint8_t)c;
#else
    while ((REG(HIL_CONSOLE_BASE + 0x18u) & (1u << 5)) != 0u) {
    }
    REG(HIL_CONSOLE_BASE + 0x00u) = (uint8_t)c;
#endif
}

void uart_puts(const char *s)
{
    while (*s != '\0') {
        if (*s == '\n') {
            uart_putc('\r');
        }
        uart_putc(*s++);
    }
}

void uart_putu(unsigned value)
{
    char buf[11];
    int i = 0;
    do {
        buf[i++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (i > 0) {
        uart_putc(buf[--i]);
    }
}
