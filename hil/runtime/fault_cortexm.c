/* fault_cortexm.c - Cortex-M fault report: one line starting FAULT, then halt.
 *
 *   FAULT BusFault CFSR=00008200 HFSR=00000000 MMFAR=... BFAR=fffffff0 PC=... LR=... XPSR=...
 *
 * Every value is KEY=8 hex digits so a harness can parse it. PC, LR and XPSR come from the
 * exception frame on the stack that was active when the fault hit. A fault at the one load in
 * hil_probe_read32 is not reported: the handler resumes at its error exit instead.
 */
#include "hil.h"

#if defined(HIL_ARCH_ARM)

/* System Control Block: part of the Armv7-M core, the same on every board. */
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)

/* Defined in probe_cortexm.S. */
extern const char hil_probe_load[], hil_probe_fail[];

static const char *const exception_names[] = {
    "HardFault",
    "MemManage",
    "BusFault",
    "UsageFault",
};

static void put_field(const char *key, uint32_t value)
{
    hil_putc(' ');
    hil_puts(key);
    hil_putc('=');
    hil_put_hex32(value);
}

void hil_cortexm_fault(uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ipsr &= 0x1FFu;

    /* frame: r0 r1 r2 r3 r12 lr pc xpsr */
    uint32_t pc = frame[6];
    if (pc == ((uint32_t)(uintptr_t)hil_probe_load & ~1u)) {
        SCB_CFSR = SCB_CFSR; /* write-one-to-clear the recorded fault */
        SCB_HFSR = SCB_HFSR;
        frame[6] = (uint32_t)(uintptr_t)hil_probe_fail & ~1u;
        return;
    }

    hil_puts("FAULT ");
    if (ipsr >= 3u && ipsr <= 6u) {
        hil_puts(exception_names[ipsr - 3u]);
    } else {
        hil_puts("Exception");
    }
    put_field("CFSR", SCB_CFSR);
    put_field("HFSR", SCB_HFSR);
    put_field("MMFAR", SCB_MMFAR);
    put_field("BFAR", SCB_BFAR);
    put_field("PC", pc);
    put_field("LR", frame[5]);
    put_field("XPSR", frame[7]);
    (void)exc_return;
    hil_putc('\n');
    hil_halt();
}

#else
typedef int hil_fault_cortexm_unused_;
#endif
