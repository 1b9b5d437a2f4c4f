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
 * All console calls are polled; none of them waits on anything the hardware (or QEMU)
 * might never set.
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

/* Called by the startup code before main(): console, LED, tick. */
void hil_runtime_init(void);

/* Console (the board's UART at HIL_CONSOLE_BAUD). While putc waits for room in the TX
 * FIFO it moves received bytes into a small buffer that getc reads first, so replies that
 * overlap incoming bytes do not overrun a UART without an RX FIFO (STM32 USART). */
void hil_console_init(void);
void hil_console_putc(char c); /* raw byte, blocks while the TX FIFO is full */
int hil_console_getc(void);    /* next received byte 0..255, or -1 if none (never blocks) */

/* The UART driver's raw operations (console_*.c; used by console.c). */
int hil_console_tx_ready(void);    /* room for one byte in the TX FIFO/register */
void hil_console_tx(uint8_t byte); /* write one byte; only after hil_console_tx_ready() */
int hil_console_rx(void);          /* one byte from the RX FIFO/register, or -1 */

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

/* Millisecond tick (Arm: SysTick at HIL_CPU_CLOCK_HZ; RISC-V: the board's CLINT mtime at
 * HIL_TIMER_HZ). Emulators may run it faster than wall-clock time. */
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
