/* console_sifive_uart.c - SiFive UART console. The board file gives the UART and, optionally,
 * the GPIO controller, pins and IOF (0 or 1) they are routed to (hil_board.h).
 * Only 32-bit accesses: the FE310 peripherals reject narrower ones. */
#include "hil.h"

#if defined(HIL_CONSOLE_SIFIVE_UART)

#define UART_REG(off) HIL_REG32(HIL_CONSOLE_BASE + (off))
#define UART_TXDATA UART_REG(0x00u)
#define UART_RXDATA UART_REG(0x04u)
#define UART_TXCTRL UART_REG(0x08u)
#define UART_RXCTRL UART_REG(0x0Cu)
#define UART_IE UART_REG(0x10u)
#define UART_DIV UART_REG(0x18u)
#define DATA_FLAG (1u << 31) /* txdata: FIFO full; rxdata: FIFO empty */
#define CTRL_EN (1u << 0)
#define IE_RXWM (1u << 1) /* interrupt while the RX FIFO holds more than rxctrl.rxcnt bytes */

#if defined(HIL_CONSOLE_PORT)
#if !defined(HIL_CONSOLE_TX_PIN) || !defined(HIL_CONSOLE_RX_PIN) || !defined(HIL_CONSOLE_AF)
#error "sifive-uart pins need console.pins {tx, rx, af} in the board file"
#endif
/* SiFive GPIO: IOF_EN hands a pin to a hardware function, IOF_SEL picks IOF0 or IOF1. */
#define GPIO_IOF_EN HIL_REG32(HIL_CONSOLE_PORT + 0x38u)
#define GPIO_IOF_SEL HIL_REG32(HIL_CONSOLE_PORT + 0x3Cu)
#define CONSOLE_PINS ((1u << HIL_CONSOLE_TX_PIN) | (1u << HIL_CONSOLE_RX_PIN))
#endif

void hil_console_init(void)
{
#if defined(HIL_CONSOLE_PORT)
#if HIL_CONSOLE_AF
    GPIO_IOF_SEL |= CONSOLE_PINS;
#else
    GPIO_IOF_SEL &= ~CONSOLE_PINS;
#endif
    GPIO_IOF_EN |= CONSOLE_PINS;
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

void hil_console_rx_irq_enable(void)
{
    UART_IE = IE_RXWM; /* rxctrl.rxcnt is 0: any received byte */
}

void hil_console_rx_irq_ack(void)
{
}

#else
typedef int hil_console_sifive_uart_unused_;
#endif
