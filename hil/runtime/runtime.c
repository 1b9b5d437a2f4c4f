/* runtime.c - bring-up called by the startup code before main(). */
#include "hil.h"

void hil_runtime_init(void)
{
    hil_console_init();
    hil_led_init();
    hil_tick_init();
    hil_irq_init();
}

void hil_halt(void)
{
    for (;;) {
#if defined(HIL_ARCH_ARM)
        __asm__ volatile("cpsid i\n\twfi" ::: "memory");
#else
        __asm__ volatile(HIL_CSR_ASM("csrci mstatus, 8\n\twfi") : : : "memory");
#endif
    }
}
