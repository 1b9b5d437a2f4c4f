/* console_sifive_uart.c - SiFive UART console (FE310 UART0 on GPIO 16/17, IOF0).
 * Only 32-bit accesses: the FE310 peripherals reject narrower ones. */
#include "hil.h"

#if defined(HIL_CONSOLE_SIFIVE_UART)

#define UART_REG(off) (*(volatile uint32_t *)(HIL_CONSOLE_BASE + (off)))
#define UART_TXDATA UART_REG(0x00u)
#define UART_RXDATA UART_REG(0x04u)
#define UART_TXCTRL UART_REG(0x08u)
#define UART_RXCTRL UART_REG(0x0Cu)
#define UART_IE UART_REG(0x10u)
#define UART_DIV UART_REG(0x18u)
#define DATA_FLAG (1u << 31) /* txdata: FIFO full; rxdata: FIFO empty */
#define CTRL_EN (1u << 0)

#if HIL_CONSOLE_BASE == 0x10013000u
#define GPIO_IOF_EN (*(volatile uint32_t *)0x10012038u)
#define GPIO_IOF_SEL (*(volatile uint32_t *)0x1001203Cu)
#define UART0_PINS ((1u << 16) | (1u << 17))
#define HIL_SIFIVE_UART0 1
#endif

void hil_console_init(void)
{
#if defined(HIL_SIFIVE_UART0)
    GPIO_IOF_SEL &= ~UART0_PINS;
    GPIO_IOF_EN |= UART0_PINS;
#endif
    UART_IE = 0u;
    UART_DIV = (HIL_CONSOLE_CLOCK_HZ + HIL_CONSOLE_BAUD / 2u) / HIL_CONSOLE_BAUD - 1u;
    UART_TXCTRL = CTRL_EN; /* one stop bit, no TX watermark */
    UART_RXCTRL = CTRL_EN;
}

int hil_console_tx_ready(void)
{
    return (UART_TXDATA & DATA_FLAG) == 0u;
}

void hil_console_tx(uint8_t byte)
{
    UART_TXDATA = byte;
}

int hil_console_rx(void)
{
    uint32_t d = UART_RXDATA; /* one read: it pops the FIFO */
    if ((d & DATA_FLAG) != 0u) {
        return -1;
    }
    return (int)(d & 0xFFu);
}

#else
typedef int hil_console_sifive_uart_unused_;
#endif
