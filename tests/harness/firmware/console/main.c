/* Prints a boot log for the console harness tests: a banner, a sensor check, a ready line. */
#include "hil.h"

int main(void)
{
    hil_println("boot v1.2");
    hil_println("sensor ok");
    hil_puts("ready ");
    hil_put_u32(42);
    hil_println("");
    for (;;) {
    }
}
