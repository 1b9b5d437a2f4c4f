/* tick_cortexm.c - millisecond time from SysTick at the core clock (HIL_CPU_CLOCK_HZ).
 * SysTick is part of the Armv7-M core (its registers sit in the System Control Space at the
 * same address on every Cortex-M), not a board peripheral, so its address lives here.
 *
 * Tickless: the counter runs its longest period (2^24 cycles) and its interrupt only adds
 * the elapsed period; hil_millis() adds the cycles counted down since. hil_delay_ms() sets
 * the period to the time left (at most 2^24 cycles) and sleeps until the deadline, so an
 * idle core wakes about once per 2^24 cycles instead of a thousand times a second. */
#include "hil.h"

#if defined(HIL_ARCH_ARM)

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2)
#define ICSR_PENDSTCLR (1u << 25)
#define ICSR_PENDSTSET (1u << 26)
#define SYST_MAX_PERIOD (1u << 24) /* cycles: RVR is 24 bits */

#define CYCLES_PER_MS (HIL_CPU_CLOCK_HZ / 1000u)
#if CYCLES_PER_MS < 2 || CYCLES_PER_MS > (1u << 24)
#error "SysTick needs a core clock of 2 kHz..16.7 GHz (target.clock_hz in the board file)"
#endif

/* The time at the start of the current SysTick period: whole ms and leftover cycles. */
static volatile uint32_t base_ms;
static volatile uint32_t base_cycles; /* < CYCLES_PER_MS */

static void account(uint32_t cycles) /* interrupts masked or in the SysTick handler */
{
    uint32_t total = base_cycles + cycles;
    base_ms += total / CYCLES_PER_MS;
    base_cycles = total % CYCLES_PER_MS;
}

void SysTick_Handler(void)
{
    account(SYST_RVR + 1u);
}

/* Cycles since the current period began, with interrupts masked. A wrap whose interrupt is
 * still pending counts its whole period; CVR reads 0 only at a wrap (pending) or just after
 * set_period() or the handler ran, before the reload (nothing elapsed yet). */
static uint32_t elapsed_cycles(void)
{
    uint32_t rvr = SYST_RVR;
    uint32_t cvr = SYST_CVR;
    if ((SCB_ICSR & ICSR_PENDSTSET) == 0u) {
        return cvr == 0u ? 0u : rvr - cvr;
    }
    cvr = SYST_CVR; /* read again: after the wrap */
    return cvr == 0u ? rvr : rvr + 1u + (rvr - cvr);
}

/* Start a new period of `cycles` (2..2^24) from now, keeping the time; interrupts masked.
 * The counter stops meanwhile (a few cycles are not counted), so nothing moves under it. */
static void set_period(uint32_t cycles)
{
    SYST_CSR = SYST_CSR_CLKSOURCE;
    account(elapsed_cycles());
    SCB_ICSR = ICSR_PENDSTCLR; /* a pending wrap was counted above */
    SYST_RVR = cycles - 1u;
    SYST_CVR = 0u; /* the count restarts from RVR */
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
}

void hil_tick_init(void)
{
    SYST_CSR = 0u;
    SYST_RVR = SYST_MAX_PERIOD - 1u;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
}

uint32_t hil_millis(void)
{
    uint32_t state = hil_irq_save();
    uint32_t total = base_cycles + elapsed_cycles();
    uint32_t ms = base_ms + total / CYCLES_PER_MS;
    hil_irq_restore(state);
    return ms;
}

void hil_delay_ms(uint32_t ms)
{
    uint32_t start = hil_millis();
    uint32_t state = hil_irq_save();
    uint32_t done;
    while ((done = hil_millis() - start) < ms) {
        uint32_t left = ms - done;
        uint32_t cycles =
            left < SYST_MAX_PERIOD / CYCLES_PER_MS ? left * CYCLES_PER_MS : SYST_MAX_PERIOD;
        set_period(cycles);
        hil_wfi();
        hil_irq_restore(state); /* SysTick (and the console) interrupts run here */
        state = hil_irq_save();
    }
    set_period(SYST_MAX_PERIOD);
    hil_irq_restore(state);
}

#else
typedef int hil_tick_cortexm_unused_;
#endif
