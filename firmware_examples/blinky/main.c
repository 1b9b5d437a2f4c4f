/* blinky - prints "hil-blinky <board>", then toggles the board LED and prints
 * "heartbeat N" once a second (by the runtime tick; emulators may run it faster). */
#include "hil.h"

int main(void)
{
    uint32_t beats = 0;

    hil_println("hil-blinky " HIL_BOARD_NAME);
    for (;;) {
        hil_delay_ms(1000u); /* sleeps between ticks where the core can (Arm: WFI) */
        hil_led_toggle();
        hil_puts("heartbeat ");
        hil_put_u32(++beats);
        hil_putc('\n');
    }
}
