/* console_pl011.c - ARM PL011 UART console (Stellaris UARTs). The board file gives the UART,
 * and optionally its clock gate and the Stellaris GPIO port and pins it is routed to. */
#include "hil.h"

#if defined(HIL_CONSOLE_PL011)

#define UART_REG(off) HIL_REG32(HIL_CONSOLE_BASE + (off))
#define UART_DR UART_REG(0x000u)
#define UART_RSR UART_REG(0x004u)
#define UART_FR UART_REG(0x018u)
#define UART_IBRD UART_REG(0x024u)
#define UART_FBRD UART_REG(0x028u)
#define UART_LCRH UART_REG(0x02Cu)
#define UART_CTL UART_REG(0x030u)
#define UART_IMSC UART_REG(0x038u)
#define UART_ICR UART_REG(0x044u)
#define INT_RX (1u << 4) /* RX FIFO at its trigger level */
#define INT_RT (1u << 6) /* receive timeout: data waits below the trigger level */
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCRH_FEN (1u << 4)
#define LCRH_WLEN8 (3u << 5)
#define CTL_UARTEN (1u << 0)
#define CTL_TXE (1u << 8)
#define CTL_RXE (1u << 9)

/* Baud divisor in 1/64ths: clock / (16 * baud), rounded. */
#define PL011_DIV64 ((HIL_CONSOLE_CLOCK_HZ * 4u + HIL_CONSOLE_BAUD / 2u) / HIL_CONSOLE_BAUD)

#if defined(HIL_CONSOLE_PORT)
#if !defined(HIL_CONSOLE_TX_PIN) || !defined(HIL_CONSOLE_RX_PIN)
#error "pl011 console pins need console.pins.tx and .rx in the board file"
#endif
#if !defined(HIL_CONSOLE_PORT_CLKEN_REG) || !defined(HIL_CONSOLE_PORT_CLKEN_BIT)
#error "pl011 console pins need the GPIO port's clock gate: console.pins.clock_enable"
#endif
/* Stellaris GPIO: AFSEL hands a pin to its peripheral, DEN enables its digital function. */
#define GPIO_AFSEL HIL_REG32(HIL_CONSOLE_PORT + 0x420u)
#define GPIO_DEN HIL_REG32(HIL_CONSOLE_PORT + 0x51Cu)
#define CONSOLE_PINS ((1u << HIL_CONSOLE_TX_PIN) | (1u << HIL_CONSOLE_RX_PIN))
#endif

void hil_console_init(void)
{
#if defined(HIL_CONSOLE_CLKEN_REG)
    HIL_REG32(HIL_CONSOLE_CLKEN_REG) |= 1u << HIL_CONSOLE_CLKEN_BIT;
#endif
#if defined(HIL_CONSOLE_PORT)
    HIL_REG32(HIL_CONSOLE_PORT_CLKEN_REG) |= 1u << HIL_CONSOLE_PORT_CLKEN_BIT;
    /* a few cycles before the peripherals may be touched */
    (void)HIL_REG32(HIL_CONSOLE_PORT_CLKEN_REG);
    (void)HIL_REG32(HIL_CONSOLE_PORT_CLKEN_REG);
    GPIO_AFSEL |= CONSOLE_PINS;
    GPIO_DEN |= CONSOLE_PINS;
#elif defined(HIL_CONSOLE_CLKEN_REG)
    (void)HIL_REG32(HIL_CONSOLE_CLKEN_REG);
    (void)HIL_REG32(HIL_CONSOLE_CLKEN_REG);
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

void hil_console_rx_irq_enable(void)
{
    UART_IMSC |= INT_RX | INT_RT;
}

void hil_console_rx_irq_ack(void)
{
    UART_ICR = INT_RX | INT_RT;
}

#else
typedef int hil_console_pl011_unused_;
#endif
