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
    hil_irq_quiesce(); /* nothing left to wake the core */
    for (;;) {
        hil_wfi();
    }
}
