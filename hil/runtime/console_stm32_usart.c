/* console_stm32_usart.c - STM32F4 USART console (USART2 on PA2/PA3, AF7, on the Nucleos).
 * Stays on the reset clock: no RCC ready bits are polled (QEMU does not model RCC). */
#include "hil.h"

#if defined(HIL_CONSOLE_STM32_USART)

#define USART_REG(off) (*(volatile uint32_t *)(HIL_CONSOLE_BASE + (off)))
#define USART_SR USART_REG(0x00u)
#define USART_DR USART_REG(0x04u)
#define USART_BRR USART_REG(0x08u)
#define USART_CR1 USART_REG(0x0Cu)
#define USART_CR2 USART_REG(0x10u)
#define USART_CR3 USART_REG(0x14u)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_UE (1u << 13)

#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#define RCC_APB1ENR (*(volatile uint32_t *)0x40023840u)
#define RCC_APB2ENR (*(volatile uint32_t *)0x40023844u)
#define GPIOA_MODER (*(volatile uint32_t *)0x40020000u)
#define GPIOA_AFRL (*(volatile uint32_t *)0x40020020u)

void hil_console_init(void)
{
#if HIL_CONSOLE_BASE == 0x40004400u
    /* USART2: clock it, and route PA2 (TX) / PA3 (RX) to alternate function 7. */
    RCC_AHB1ENR |= 1u << 0;
    RCC_APB1ENR |= 1u << 17;
    (void)RCC_APB1ENR; /* read back: the clock is on before the first register access */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4);
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8);
#elif HIL_CONSOLE_BASE == 0x40011000u
    /* USART1 on PA9/PA10 (AF7). */
    RCC_AHB1ENR |= 1u << 0;
    RCC_APB2ENR |= 1u << 4;
    (void)RCC_APB2ENR;
#endif
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

#else
typedef int hil_console_stm32_usart_unused_;
#endif
