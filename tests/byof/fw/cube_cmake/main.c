/* main.c - three checks of what the startup did, reported in Unity's output format. */
#include "hil_board.h"
#include "uart.h"

#include <stdint.h>

static volatile uint32_t initialised = 0xC0DEu;
static volatile uint32_t zeroed;

static unsigned failures;

static void report(unsigned line, const char *name, int ok)
{
    uart_puts("main.c:");
    uart_putu(line);
    uart_puts(":");
    uart_puts(name);
    uart_puts(ok ? ":PASS\n" : ":FAIL: unexpected value\n");
    failures += ok ? 0u : 1u;
}

int main(void)
{
    uart_init();
    uart_puts("cube-style startup on " HIL_BOARD_NAME "\n");
    report(__LINE__, "test_data_copied", initialised == 0xC0DEu);
    report(__LINE__, "test_bss_zeroed", zeroed == 0u);
    report(__LINE__, "test_board_header", HIL_FLASH_ORIGIN == 0x08000000u);
    uart_puts("-----------------------\n3 Tests ");
    uart_putu(failures);
    uart_puts(" Failures 0 Ignored\n");
    uart_puts(failures == 0u ? "OK\n" : "FAIL\n");
    for (;;) {
    }
}
