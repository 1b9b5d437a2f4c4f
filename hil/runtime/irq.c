/* irq.c - the console's receive interrupt through the interrupt controller: the Armv7-M NVIC
 * (part of the core, so its address is architectural) or the board's SiFive PLIC (address
 * and source number from the board file). Boards without console.irq take no interrupts
 * except the Arm SysTick. */
#include "hil.h"

#if defined(HIL_ARCH_ARM)

#define NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * (n)))
#define NVIC_ICER(n) (*(volatile uint32_t *)(0xE000E180u + 4u * (n)))
#define NVIC_ICPR(n) (*(volatile uint32_t *)(0xE000E280u + 4u * (n)))
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTCLR (1u << 25)

void hil_irq_quiesce(void)
{
    __asm__ volatile("cpsid i" : : : "memory");
    SYST_CSR = 0u; /* SysTick off: a pending tick would end every WFI at once */
    SCB_ICSR = ICSR_PENDSTCLR;
#if defined(HIL_CONSOLE_IRQ)
    NVIC_ICER(HIL_CONSOLE_IRQ / 32u) = 1u << (HIL_CONSOLE_IRQ % 32u);
    NVIC_ICPR(HIL_CONSOLE_IRQ / 32u) = 1u << (HIL_CONSOLE_IRQ % 32u);
#endif
}

void hil_console_irq_line(int on)
{
#if defined(HIL_CONSOLE_IRQ)
    if (on) {
        NVIC_ISER(HIL_CONSOLE_IRQ / 32u) = 1u << (HIL_CONSOLE_IRQ % 32u);
    } else {
        NVIC_ICER(HIL_CONSOLE_IRQ / 32u) = 1u << (HIL_CONSOLE_IRQ % 32u);
    }
#else
    (void)on;
#endif
}

void hil_irq_init(void)
{
#if defined(HIL_CONSOLE_IRQ)
    hil_console_rx_irq_enable();
    hil_console_irq_line(1);
#endif
    __asm__ volatile("cpsie i" : : : "memory");
}

#else /* RISC-V */

#define MIE_MEIE (1u << 11)
#define MCAUSE_INTERRUPT (1u << 31)
#define MCAUSE_MACHINE_EXTERNAL 11u

#if defined(HIL_CONSOLE_IRQ)
#if !defined(HIL_PLIC_BASE)
#error "a sifive-uart console.irq needs the PLIC's address: console.plic in the board file"
#endif
/* PLIC registers (one word per source; context 0 is hart 0 in M-mode, 2 MiB into the PLIC). */
#define PLIC_PRIORITY(src) HIL_REG32(HIL_PLIC_BASE + 4u * (src))
#define PLIC_ENABLE(src) HIL_REG32(HIL_PLIC_BASE + 0x2000u + 4u * ((src) / 32u))
#define PLIC_CONTEXT0 (HIL_PLIC_BASE + (2u << 20))
#define PLIC_THRESHOLD HIL_REG32(PLIC_CONTEXT0)
#define PLIC_CLAIM HIL_REG32(PLIC_CONTEXT0 + 4u)
#endif

void hil_console_irq_line(int on)
{
#if defined(HIL_CONSOLE_IRQ)
    if (on) {
        PLIC_ENABLE(HIL_CONSOLE_IRQ) |= 1u << (HIL_CONSOLE_IRQ % 32u);
    } else {
        PLIC_ENABLE(HIL_CONSOLE_IRQ) &= ~(1u << (HIL_CONSOLE_IRQ % 32u));
    }
#else
    (void)on;
#endif
}

void hil_irq_init(void)
{
#if defined(HIL_CONSOLE_IRQ)
    hil_console_rx_irq_enable();
    PLIC_PRIORITY(HIL_CONSOLE_IRQ) = 1u; /* 0 would never interrupt */
    PLIC_THRESHOLD = 0u;
    hil_console_irq_line(1);
    __asm__ volatile(HIL_CSR_ASM("csrs mie, %0") : : "r"(MIE_MEIE) : "memory");
#endif
    __asm__ volatile(HIL_CSR_ASM("csrsi mstatus, 8") : : : "memory");
}

void hil_irq_quiesce(void)
{
    __asm__ volatile(HIL_CSR_ASM("csrci mstatus, 8\n\tcsrw mie, zero") : : : "memory");
}

int hil_riscv_interrupt(uint32_t cause)
{
#if defined(HIL_CONSOLE_IRQ)
    if (cause == (MCAUSE_INTERRUPT | MCAUSE_MACHINE_EXTERNAL)) {
        uint32_t source;
        while ((source = PLIC_CLAIM) != 0u) {
            if (source == HIL_CONSOLE_IRQ) {
                hil_console_isr();
            } else { /* enabled before us (a bootloader): not ours to serve */
                PLIC_ENABLE(source) &= ~(1u << (source % 32u));
            }
            PLIC_CLAIM = source; /* complete: the gateway may forward it again */
        }
        return 1;
    }
#else
    (void)cause;
#endif
    return 0;
}

#endif
