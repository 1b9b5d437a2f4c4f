/* console_stm32_usart.c - STM32 USART console. The board file gives the USART, its clock
 * gate, and the GPIO port, pins and alternate function of TX and RX (hil_board.h).
 * Stays on the reset clock: no RCC ready bits are polled (QEMU does not model RCC). */
#include "hil.h"

#if defined(HIL_CONSOLE_STM32_USART)

#if !defined(HIL_CONSOLE_CLKEN_REG) || !defined(HIL_CONSOLE_CLKEN_BIT)
#error "stm32-usart needs the USART's clock gate: console.clock_enable in the board file"
#endif
#if !defined(HIL_CONSOLE_PORT) || !defined(HIL_CONSOLE_TX_PIN) || !defined(HIL_CONSOLE_RX_PIN) || \
    !defined(HIL_CONSOLE_AF)
#error "stm32-usart needs its pins: console.pins {port, tx, rx, af} in the board file"
#endif
#if !defined(HIL_CONSOLE_PORT_CLKEN_REG) || !defined(HIL_CONSOLE_PORT_CLKEN_BIT)
#error "stm32-usart needs the GPIO port's clock gate: console.pins.clock_enable"
#endif

#define USART_REG(off) HIL_REG32(HIL_CONSOLE_BASE + (off))
#define USART_SR USART_REG(0x00u)
#define USART_DR USART_REG(0x04u)
#define USART_BRR USART_REG(0x08u)
#define USART_CR1 USART_REG(0x0Cu)
#define USART_CR2 USART_REG(0x10u)
#define USART_CR3 USART_REG(0x14u)
#define SR_RXNE (1u << 5)
#define CR1_RXNEIE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_UE (1u << 13)

/* STM32 GPIO port registers: MODER (2 bits per pin, 0b10 = alternate function) and
 * AFRL/AFRH (4 bits per pin, pins 0-7 then 8-15). */
#define GPIO_MODER HIL_REG32(HIL_CONSOLE_PORT + 0x00u)
#define GPIO_AFR(pin) HIL_REG32(HIL_CONSOLE_PORT + 0x20u + ((pin) / 8u) * 4u)
#define MODER_AF 2u

static void route_pin(uint32_t pin)
{
    uint32_t shift = (pin % 8u) * 4u;
    GPIO_MODER = (GPIO_MODER & ~(3u << (2u * pin))) | (MODER_AF << (2u * pin));
    GPIO_AFR(pin) = (GPIO_AFR(pin) & ~(0xFu << shift)) | ((uint32_t)HIL_CONSOLE_AF << shift);
}

void hil_console_init(void)
{
    HIL_REG32(HIL_CONSOLE_PORT_CLKEN_REG) |= 1u << HIL_CONSOLE_PORT_CLKEN_BIT;
    HIL_REG32(HIL_CONSOLE_CLKEN_REG) |= 1u << HIL_CONSOLE_CLKEN_BIT;
    (void)HIL_REG32(HIL_CONSOLE_CLKEN_REG); /* read back: the clock is on before first use */
    route_pin(HIL_CONSOLE_TX_PIN);
    route_pin(HIL_CONSOLE_RX_PIN);
    USART_CR1 = 0u;
    USART_CR2 = 0u;
    USART_CR3 = 0u;
    USART_BRR = (HIL_CONSOLE_CLOCK_HZ + HIL_CONSOLE_BAUD / 2u) / HIL_CONSOLE_BAUD;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

int hil_console_tx_ready(void)
{
    return (USART_SR & SR_TXE) != 0u;
}

void hil_console_tx(uint8_t byte)
{
    USART_DR = byte;
}

int hil_console_rx(void)
{
    /* Reading SR then DR also clears an overrun. */
    if ((USART_SR & SR_RXNE) == 0u) {
        return -1;
    }
    return (int)(USART_DR & 0xFFu);
}

void hil_console_rx_irq_enable(void)
{
    USART_CR1 |= CR1_RXNEIE; /* also interrupts on an overrun; reading DR clears both */
}

void hil_console_rx_irq_ack(void)
{
}

#else
typedef int hil_console_stm32_usart_unused_;
#endif
