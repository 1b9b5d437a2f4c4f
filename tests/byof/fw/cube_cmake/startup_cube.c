/* startup_cube.c - a Cube-style reset handler written for this test (no vendor code): the
 * vector table is in .isr_vector with _estack first; Reset_Handler copies _sidata to
 * _sdata.._edata, zeroes _sbss.._ebss and calls main. */
#include <stdint.h>

extern uint32_t _estack[], _sidata[], _sdata[], _edata[], _sbss[], _ebss[];

int main(void);
void Reset_Handler(void);
void Default_Handler(void);

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) const vector_t g_pfnVectors[16] = {
    (vector_t)(uintptr_t)_estack,
    Reset_Handler,
    Default_Handler,
    Default_Handler,
    Default_Handler,
    Default_Handler,
    Default_Handler,
    0,
    0,
    0,
    0,
    Default_Handler,
    Default_Handler,
    0,
    Default_Handler,
    Default_Handler,
};

void Reset_Handler(void)
{
    volatile uint32_t *src = _sidata;
    volatile uint32_t *dst = _sdata;
    while (dst < (volatile uint32_t *)_edata) {
        *dst++ = *src++;
    }
    for (dst = _sbss; dst < (volatile uint32_t *)_ebss;) {
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
