/* startup_cortexm.c - reset and exception entry for Cortex-M3/M4 (ARMv7-M).
 *
 * The vector table lives in section .vectors, which the generated linker script keeps and
 * places first at the application start. Reset_Handler copies .data, zeroes .bss, enables
 * the FPU (hard-float builds) and the MemManage/BusFault/UsageFault exceptions, then runs
 * hil_runtime_init() and main(). Faults go to hil_fault_entry, which hands the stacked
 * exception frame to hil_cortexm_fault() (fault_cortexm.c).
 */
#include "hil.h"

#if defined(HIL_ARCH_ARM)

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

void Reset_Handler(void);
void hil_default_handler(void);
void hil_fault_entry(void);
void SysTick_Handler(void);

/* System Control Block: part of the Armv7-M core, the same on every board. */
#define SCB_SHCSR (*(volatile uint32_t *)0xE000ED24u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SHCSR_MEMFAULTENA (1u << 16)
#define SHCSR_BUSFAULTENA (1u << 17)
#define SHCSR_USGFAULTENA (1u << 18)

/* Weak so an app may provide its own handler by defining the name. */
void NMI_Handler(void) __attribute__((weak, alias("hil_default_handler")));
void SVC_Handler(void) __attribute__((weak, alias("hil_default_handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("hil_default_handler")));
void PendSV_Handler(void) __attribute__((weak, alias("hil_default_handler")));

typedef void (*hil_vector_t)(void);

/* The 16 core exceptions, then external interrupts up to the console's (board file:
 * console.irq); every other external interrupt reports itself as unexpected. */
#if defined(HIL_CONSOLE_IRQ)
#define HIL_VECTORS (16u + HIL_CONSOLE_IRQ + 1u)
#else
#define HIL_VECTORS 16u
#endif

__attribute__((section(".vectors"), used)) const hil_vector_t hil_vectors[HIL_VECTORS] = {
    (hil_vector_t)(uintptr_t)_estack, /* initial MSP */
    Reset_Handler,
    NMI_Handler,
    hil_fault_entry, /* HardFault */
    hil_fault_entry, /* MemManage */
    hil_fault_entry, /* BusFault */
    hil_fault_entry, /* UsageFault */
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
#if defined(HIL_CONSOLE_IRQ)
#if HIL_CONSOLE_IRQ > 0
    [16 ... 16 + HIL_CONSOLE_IRQ - 1] = hil_default_handler,
#endif
    [16 + HIL_CONSOLE_IRQ] = hil_console_isr,
#endif
};

__attribute__((noreturn, used)) void Reset_Handler(void)
{
    /* Word loops through volatile pointers: the compiler must not turn them into memcpy or
     * memset calls before .data exists. */
    volatile uint32_t *src = _sidata;
    volatile uint32_t *dst = _sdata;
    while (dst < (volatile uint32_t *)_edata) {
        *dst++ = *src++;
    }
    for (dst = _sbss; dst < (volatile uint32_t *)_ebss;) {
        *dst++ = 0u;
    }
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    SCB_SHCSR |= SHCSR_MEMFAULTENA | SHCSR_BUSFAULTENA | SHCSR_USGFAULTENA;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    hil_runtime_init();
    (void)main();
    hil_halt();
}

/* Pick the stack the exception frame was pushed to (EXC_RETURN bit 2: 0 = MSP, 1 = PSP) and
 * pass it to the C reporter. If the reporter returns (a recovered hil_probe_read32), return
 * from the exception with the original EXC_RETURN. */
__attribute__((naked)) void hil_fault_entry(void)
{
    __asm__ volatile("tst lr, #4\n\t"
                     "ite eq\n\t"
                     "mrseq r0, msp\n\t"
                     "mrsne r0, psp\n\t"
                     "mov r1, lr\n\t"
                     "push {r1, lr}\n\t"
                     "bl hil_cortexm_fault\n\t"
                     "pop {r1, pc}\n\t");
}

void hil_default_handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    hil_puts("FAULT unexpected exception IPSR=");
    hil_put_hex32(ipsr);
    hil_putc('\n');
    hil_halt();
}

#else
typedef int hil_startup_cortexm_unused_;
#endif
