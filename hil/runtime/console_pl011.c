/* console_pl011.c - ARM PL011 UART console (Stellaris LM3S6965 UART0 on PA0/PA1). */
#include "hil.h"

#if defined(HIL_CONSOLE_PL011)

#define UART_REG(off) (*(volatile uint32_t *)(HIL_CONSOLE_BASE + (off)))
#define UART_DR UART_REG(0x000u)
#define UART_RSR UART_REG(0x004u)
#define UART_FR UART_REG(0x018u)
#define UART_IBRD UART_REG(0x024u)
#define UART_FBRD UART_REG(0x028u)
#define UART_LCRH UART_REG(0x02Cu)
#define UART_CTL UART_REG(0x030u)
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCRH_FEN (1u << 4)
#define LCRH_WLEN8 (3u << 5)
#define CTL_UARTEN (1u << 0)
#define CTL_TXE (1u << 8)
#define CTL_RXE (1u << 9)

/* Baud divisor in 1/64ths: clock / (16 * baud), rounded. */
#define PL011_DIV64 ((HIL_CONSOLE_CLOCK_HZ * 4u + HIL_CONSOLE_BAUD / 2u) / HIL_CONSOLE_BAUD)

#if HIL_CONSOLE_BASE == 0x4000C000u
/* Stellaris: gate the UART0 and GPIO A clocks on, give PA0/PA1 to the UART. */
#define SYSCTL_RCGC1 (*(volatile uint32_t *)0x400FE104u)
#define SYSCTL_RCGC2 (*(volatile uint32_t *)0x400FE108u)
#define GPIOA_AFSEL (*(volatile uint32_t *)0x40004420u)
#define GPIOA_DEN (*(volatile uint32_t *)0x4000451Cu)
#define HIL_PL011_STELLARIS 1
#endif

void hil_console_init(void)
{
#if defined(HIL_PL011_STELLARIS)
    SYSCTL_RCGC1 |= 1u << 0;
    SYSCTL_RCGC2 |= 1u << 0;
    (void)SYSCTL_RCGC2; /* a few cycles before the peripherals may be touched */
    (void)SYSCTL_RCGC2;
    GPIOA_AFSEL |= 0x3u;
    GPIOA_DEN |= 0x3u;
#endif
    UART_CTL = 0u;
    UART_IBRD = PL011_DIV64 >> 6;
    UART_FBRD = PL011_DIV64 & 0x3Fu;
    UART_LCRH = LCRH_WLEN8 | LCRH_FEN; /* 8N1, FIFOs on; also latches IBRD/FBRD */
    UART_CTL = CTL_UARTEN | CTL_TXE | CTL_RXE;
}

int hil_console_tx_ready(void)
{
    return (UART_FR & FR_TXFF) == 0u;
}

void hil_console_tx(uint8_t byte)
{
    UART_DR = byte;
}

int hil_console_rx(void)
{
    if ((UART_FR & FR_RXFE) != 0u) {
        return -1;
    }
    uint32_t d = UART_DR;
    if ((d & 0xF00u) != 0u) {
        UART_RSR = 0u; /* clear framing/parity/break/overrun errors; the byte is still data */
    }
    return (int)(d & 0xFFu);
}

#else
typedef int hil_console_pl011_unused_;
#endif
