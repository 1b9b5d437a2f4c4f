/* tick_riscv.c - millisecond time from the CLINT mtime counter; the board file gives its
 * address and rate (32768 Hz on the FE310; QEMU's sifive_e clocks it at 10 MHz, so time
 * runs faster there). Polled: no interrupts. */
#include "hil.h"

#if defined(HIL_ARCH_RISCV)

#if !defined(HIL_TIMER_CLINT) || !defined(HIL_TIMER_MTIME) || !defined(HIL_TIMER_MS_MUL) || \
    !defined(HIL_TIMER_MS_SHIFT)
#error "RISC-V boards need a CLINT timer: timer {driver: clint, mtime, hz} in the board file"
#endif

#define CLINT_MTIME_LO HIL_REG32(HIL_TIMER_MTIME)
#define CLINT_MTIME_HI HIL_REG32(HIL_TIMER_MTIME + 4u)

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
    /* ticks * 1000 / HIL_TIMER_HZ as multiply and shift (hil computes the pair from the
     * rate): no 64-bit division, which keeps libgcc out */
    return (uint32_t)((mtime() * HIL_TIMER_MS_MUL) >> HIL_TIMER_MS_SHIFT);
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
