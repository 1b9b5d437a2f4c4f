/*
 * hil.h - the hil firmware runtime, compiled into every app that `hil build` produces.
 *
 * The runtime owns reset (startup_*.{c,S}), the console UART, the board LED, a millisecond
 * tick and the fault handlers. Before main() runs, .data is copied, .bss is zeroed, the FPU
 * is enabled (hard-float Arm), the configurable faults are enabled (Cortex-M3/M4) and
 * hil_runtime_init() has brought up the console, the LED and the tick. An app only writes
 * main(). Which driver is compiled in is chosen by the macros of the generated hil_board.h.
 *
 * Console output: hil_putc('\n') sends "\r\n", so lines end in CRLF on the wire.
 * No console call waits on anything the hardware (or QEMU) might never set.
 *
 * Sleeping: where the board file gives the console's receive interrupt (console.irq), the
 * UART's interrupt fills the receive buffer and hil_wait_input() sleeps the core (WFI) until
 * a byte is there; hil_delay_ms() sleeps until its deadline. The Arm SysTick then interrupts
 * about once per 2^24 core cycles while nothing waits on it (RISC-V: no periodic interrupt at
 * all), so an app waiting for a command costs next to nothing, in QEMU as on a board.
 */
#ifndef HIL_H
#define HIL_H

#include <stddef.h>
#include <stdint.h>

#include "hil_board.h"

#if !defined(HIL_ARCH_ARM) && !defined(HIL_ARCH_RISCV)
#error "hil_board.h must define HIL_ARCH_ARM or HIL_ARCH_RISCV"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define HIL_NORETURN __attribute__((noreturn))
#define HIL_NOINLINE __attribute__((noinline))
#define HIL_USED __attribute__((used))

/* The 32-bit memory-mapped register at addr; every board address comes from hil_board.h.
 * A host-side test may define HIL_REG32 first to watch the drivers' register accesses. */
#ifndef HIL_REG32
#define HIL_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#endif

/* GCC 12 with binutils >= 2.38 wants "zicsr" in -march for CSR instructions, while the
 * build uses plain -march=rv32imac: wrap inline CSR accesses in HIL_CSR_ASM("csrr ..."). */
#if defined(HIL_ARCH_RISCV) && !defined(__clang__) && !defined(__riscv_zicsr)
#define HIL_CSR_ASM(insns) ".option push\n\t.option arch, +zicsr\n\t" insns "\n\t.option pop"
#else
#define HIL_CSR_ASM(insns) insns
#endif

#if defined(HIL_LED_STM32F4_GPIO) || defined(HIL_LED_SIFIVE_GPIO) || defined(HIL_LED_STELLARIS_GPIO)
#define HIL_HAS_LED 1
#else
#define HIL_HAS_LED 0
#endif

/* Called by the startup code before main(): console, LED, tick, then interrupts on. */
void hil_runtime_init(void);

/* Interrupt masking for short critical sections (Arm: PRIMASK; RISC-V: mstatus.MIE).
 * hil_irq_save() masks and returns the previous state for hil_irq_restore(). */
static inline uint32_t hil_irq_save(void)
{
    uint32_t state;
#if defined(HIL_ARCH_ARM)
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(state) : : "memory");
#else
    __asm__ volatile(HIL_CSR_ASM("csrrci %0, mstatus, 8") : "=r"(state) : : "memory");
#endif
    return state;
}

static inline void hil_irq_restore(uint32_t state)
{
#if defined(HIL_ARCH_ARM)
    __asm__ volatile("msr primask, %0\n\tisb" : : "r"(state) : "memory");
#else
    if ((state & 8u) != 0u) {
        __asm__ volatile(HIL_CSR_ASM("csrsi mstatus, 8") : : : "memory");
    }
#endif
}

/* Sleep until an enabled interrupt is pending. Call it with interrupts masked (after
 * hil_irq_save() and a check of the condition being waited for): the core still wakes for
 * an interrupt that became pending after the check, and hil_irq_restore() then runs it. */
static inline void hil_wfi(void)
{
    __asm__ volatile("wfi" : : : "memory");
}

/* Enables the console's receive interrupt in the interrupt controller (NVIC or PLIC) and
 * unmasks interrupts; called last by hil_runtime_init(). hil_irq_quiesce() masks them and
 * stops every source the runtime started (SysTick, the console line), for hil_halt(). */
void hil_irq_init(void);
void hil_irq_quiesce(void);

/* Console (the board's UART at HIL_CONSOLE_BAUD). Received bytes go into a small buffer
 * that getc reads first: from the UART's receive interrupt (boards with console.irq), and
 * while putc waits for room in the TX FIFO, so replies that overlap incoming bytes do not
 * overrun a UART without an RX FIFO (STM32 USART). */
void hil_console_init(void);
void hil_console_putc(char c);     /* raw byte, blocks while the TX FIFO is full */
int hil_console_getc(void);        /* next received byte 0..255, or -1 if none (never blocks) */
void hil_console_isr(void);        /* the receive interrupt: moves received bytes to the buffer */
void hil_console_irq_line(int on); /* unmask/mask it in the NVIC or PLIC (irq.c) */

/* Returns once a received byte is waiting for hil_getc() (at once if one is). The core
 * sleeps meanwhile where the board has console.irq; elsewhere, and while the caller keeps
 * interrupts masked, it polls the UART. A read loop that would spin on hil_getc() == -1
 * calls this instead: `hil_wait_input(); c = hil_getc();`. */
void hil_wait_input(void);

/* The UART driver's raw operations (console_*.c; used by console.c). */
int hil_console_tx_ready(void);       /* room for one byte in the TX FIFO/register */
void hil_console_tx(uint8_t byte);    /* write one byte; only after hil_console_tx_ready() */
int hil_console_rx(void);             /* one byte from the RX FIFO/register, or -1 */
void hil_console_rx_irq_enable(void); /* the UART raises its interrupt while RX data waits */
void hil_console_rx_irq_ack(void);    /* clears the UART's RX interrupt flags, in its ISR */

/* Print helpers on top of the console. */
void hil_putc(char c);           /* '\n' is sent as "\r\n" */
void hil_puts(const char *s);    /* no newline added */
void hil_println(const char *s); /* s then newline */
void hil_put_hex32(uint32_t v);  /* exactly 8 lowercase hex digits */
void hil_put_u32(uint32_t v);    /* decimal */
void hil_put_i32(int32_t v);     /* decimal with '-' when negative */
int hil_getc(void);              /* same as hil_console_getc() */

/* LED (no-ops on boards without one). */
void hil_led_init(void);
void hil_led_set(int on);
void hil_led_toggle(void);

/* Millisecond time (Arm: SysTick at HIL_CPU_CLOCK_HZ; RISC-V: the board's CLINT mtime at
 * HIL_TIMER_HZ). Emulators may run it faster than wall-clock time. hil_delay_ms() sleeps
 * (WFI) until the deadline; it needs interrupts unmasked on Arm. */
void hil_tick_init(void);
uint32_t hil_millis(void);
void hil_delay_ms(uint32_t ms);

/* Read the 32-bit word at addr (must be 4-aligned). Returns 0 and stores the value, or -1
 * if the access faulted (unmapped address): the fault handler recovers instead of halting. */
int hil_probe_read32(uint32_t addr, uint32_t *value);

/* Stop forever (low power wait where available). */
HIL_NORETURN void hil_halt(void);

/* Entry points for the fault reporters, called from the startup code. */
#if defined(HIL_ARCH_ARM)
void hil_cortexm_fault(uint32_t *frame, uint32_t exc_return);
#else
void hil_riscv_trap(uint32_t *regs);
int hil_riscv_interrupt(uint32_t cause); /* 1 if handled (irq.c), 0 if unexpected */
#endif

/* Minimal freestanding C library (firmware links no libc; compilers emit calls to these). */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

int main(void);

#ifdef __cplusplus
}
#endif

#endif /* HIL_H */
