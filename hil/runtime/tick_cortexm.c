/* tick_cortexm.c - 1 kHz SysTick from the core clock (HIL_CPU_CLOCK_HZ). SysTick is part of
 * the Armv7-M core (its registers sit in the System Control Space at the same address on
 * every Cortex-M), not a board peripheral, so its address lives here, not in a board file. */
#include "hil.h"

#if defined(HIL_ARCH_ARM)

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2)

static volatile uint32_t hil_tick_ms;

void SysTick_Handler(void)
{
    hil_tick_ms++;
}

void hil_tick_init(void)
{
    SYST_RVR = HIL_CPU_CLOCK_HZ / 1000u - 1u;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
}

uint32_t hil_millis(void)
{
    return hil_tick_ms;
}

void hil_delay_ms(uint32_t ms)
{
    uint32_t start = hil_tick_ms;
    while (hil_tick_ms - start < ms) {
        __asm__ volatile("wfi");
    }
}

#else
typedef int hil_tick_cortexm_unused_;
#endif
