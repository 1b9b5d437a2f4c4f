/* tick_riscv.c - millisecond time from the CLINT mtime counter; the board file gives its
 * address and rate (32768 Hz on the FE310; QEMU's sifive_e clocks it at 10 MHz, so time
 * runs faster there). No periodic interrupt: hil_delay_ms() sets mtimecmp to the time left
 * and sleeps (WFI) with the timer interrupt enabled in mie but never taken (mstatus.MIE is
 * off while it sleeps); boards without timer.mtimecmp poll mtime instead. */
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

#if defined(HIL_TIMER_MTIMECMP)
#define CLINT_MTIMECMP_LO HIL_REG32(HIL_TIMER_MTIMECMP)
#define CLINT_MTIMECMP_HI HIL_REG32(HIL_TIMER_MTIMECMP + 4u)
#define MIE_MTIE (1u << 7)

static void set_mtimecmp(uint64_t when)
{
    CLINT_MTIMECMP_HI = ~0u; /* no early match while the halves change */
    CLINT_MTIMECMP_LO = (uint32_t)when;
    CLINT_MTIMECMP_HI = (uint32_t)(when >> 32);
}
#endif

void hil_delay_ms(uint32_t ms)
{
    uint32_t start = hil_millis();
    uint32_t done;
#if defined(HIL_TIMER_MTIMECMP)
    uint32_t state = hil_irq_save();
    while ((done = hil_millis() - start) < ms) {
        /* whole timer ticks per ms, rounded down: the wake comes at or before the deadline */
        uint64_t ticks = (uint64_t)(ms - done) * (HIL_TIMER_HZ / 1000u);
        set_mtimecmp(mtime() + ticks);
        __asm__ volatile(HIL_CSR_ASM("csrs mie, %0") : : "r"(MIE_MTIE) : "memory");
        hil_wfi();
        __asm__ volatile(HIL_CSR_ASM("csrc mie, %0") : : "r"(MIE_MTIE) : "memory");
        hil_irq_restore(state); /* the console interrupt runs here */
        state = hil_irq_save();
    }
    hil_irq_restore(state);
#else
    while ((done = hil_millis() - start) < ms) {
    }
#endif
}

#else
typedef int hil_tick_riscv_unused_;
#endif
