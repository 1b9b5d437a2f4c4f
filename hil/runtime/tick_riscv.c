/* tick_riscv.c - millisecond time from the CLINT mtime counter (32768 Hz on the FE310;
 * QEMU's sifive_e clocks it at 10 MHz, so time runs faster there). Polled: no interrupts. */
#include "hil.h"

#if defined(HIL_ARCH_RISCV)

#define CLINT_MTIME_LO (*(volatile uint32_t *)0x0200BFF8u)
#define CLINT_MTIME_HI (*(volatile uint32_t *)0x0200BFFCu)
#define HIL_MTIME_HZ_LOG2 15 /* 32768 Hz */

static uint64_t mtime(void)
{
    uint32_t hi, lo;
    do {
        hi = CLINT_MTIME_HI;
        lo = CLINT_MTIME_LO;
    } while (hi != CLINT_MTIME_HI);
    return ((uint64_t)hi << 32) | lo;
}

void hil_tick_init(void)
{
}

uint32_t hil_millis(void)
{
    /* multiply and shift only: no 64-bit division (keeps libgcc out) */
    return (uint32_t)((mtime() * 1000u) >> HIL_MTIME_HZ_LOG2);
}

void hil_delay_ms(uint32_t ms)
{
    uint32_t start = hil_millis();
    while (hil_millis() - start < ms) {
    }
}

#else
typedef int hil_tick_riscv_unused_;
#endif
