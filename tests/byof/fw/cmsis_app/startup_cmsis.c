/* startup_cmsis.c - a reset handler written against the CMSIS GCC linker symbol names
 * (__StackTop, __etext, __data_start__/__data_end__, __bss_start__/__bss_end__) and a vector
 * table in section .vectors. Written for this test from the Armv7-M exception model. */
#include <stdint.h>

extern uint32_t __StackTop[], __StackLimit[], __etext[];
extern uint32_t __data_start__[], __data_end__[], __bss_start__[], __bss_end__[];

int main(void);
void Reset_Handler(void);
void Default_Handler(void);

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) const vector_t vectors[16] = {
    (vector_t)(uintptr_t)__StackTop,
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};

void Reset_Handler(void)
{
    volatile uint32_t *src = __etext;
    volatile uint32_t *dst = __data_start__;
    while (dst < (volatile uint32_t *)__data_end__) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < (volatile uint32_t *)__bss_end__;) {
        *dst++ = 0u;
    }
    (void)main();
    for (;;) {
    }
}

void Default_Handler(void)
{
    for (;;) {
    }
}

/* Exported for main.c: how many bytes the linker reserved for the stack. */
uint32_t stack_bytes(void)
{
    return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)__StackLimit);
}
