/* blinky - prints "hil-blinky <board>", then toggles the board LED and prints
 * "heartbeat N" once a second (by the runtime tick; emulators may run it faster). */
#include "hil.h"

int main(void)
{
    uint32_t beats = 0;
    uint32_t next = hil_millis();

    hil_println("hil-blinky " HIL_BOARD_NAME);
    for (;;) {
        next += 1000u;
        while ((int32_t)(hil_millis() - next) < 0) {
        }
        hil_led_toggle();
        hil_puts("heartbeat ");
        hil_put_u32(++beats);
        hil_putc('\n');
    }
}
