/* main.c - prints what the CMSIS-style startup did: .data copied, .bss zeroed. */
#include "hil_board.h"
#include "uart.h"

#include <stdint.h>

uint32_t stack_bytes(void);

static volatile uint32_t initialised = 0x1234u;
static volatile uint32_t zeroed;

int main(void)
{
    uart_init();
    uart_puts("cmsis-startup on " HIL_BOARD_NAME ": data=");
    uart_puts(initialised == 0x1234u ? "ok" : "BAD");
    uart_puts(" bss=");
    uart_puts(zeroed == 0u ? "ok" : "BAD");
    uart_puts(" stack=");
    uart_putu(stack_bytes());
    uart_puts("\n");
    for (;;) {
    }
}
