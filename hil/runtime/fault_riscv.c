/* fault_riscv.c - RISC-V trap report: one line starting FAULT, then halt.
 *
 *   FAULT trap mcause=00000005 mepc=20010abc mtval=fffffff0 ra=20010a00
 *
 * Every value is key=8 hex digits so a harness can parse it. An access fault at the one
 * load in hil_probe_read32 is not reported: the trap resumes at its error exit instead.
 * Interrupts the runtime enabled (irq.c) are handled and return; any other is reported.
 */
#include "hil.h"

#if defined(HIL_ARCH_RISCV)

extern const char hil_probe_load[], hil_probe_fail[];

#define MCAUSE_LOAD_MISALIGNED 4u
#define MCAUSE_LOAD_ACCESS 5u

static uint32_t csr_mcause(void)
{
    uint32_t v;
    __asm__ volatile(HIL_CSR_ASM("csrr %0, mcause") : "=r"(v));
    return v;
}

static uint32_t csr_mepc(void)
{
    uint32_t v;
    __asm__ volatile(HIL_CSR_ASM("csrr %0, mepc") : "=r"(v));
    return v;
}

static uint32_t csr_mtval(void)
{
    uint32_t v;
    __asm__ volatile(HIL_CSR_ASM("csrr %0, mtval") : "=r"(v));
    return v;
}

static void put_field(const char *key, uint32_t value)
{
    hil_putc(' ');
    hil_puts(key);
    hil_putc('=');
    hil_put_hex32(value);
}

void hil_riscv_trap(uint32_t *regs)
{
    uint32_t mcause = csr_mcause();
    uint32_t mepc = csr_mepc();

    if ((mcause & (1u << 31)) != 0u && hil_riscv_interrupt(mcause)) {
        return;
    }
    if (mepc == (uint32_t)(uintptr_t)hil_probe_load &&
        (mcause == MCAUSE_LOAD_ACCESS || mcause == MCAUSE_LOAD_MISALIGNED)) {
        uint32_t resume = (uint32_t)(uintptr_t)hil_probe_fail;
        __asm__ volatile(HIL_CSR_ASM("csrw mepc, %0") : : "r"(resume));
        return;
    }

    hil_puts("FAULT trap");
    put_field("mcause", mcause);
    put_field("mepc", mepc);
    put_field("mtval", csr_mtval());
    put_field("ra", regs[0]);
    hil_putc('\n');
    hil_halt();
}

#else
typedef int hil_fault_riscv_unused_;
#endif
