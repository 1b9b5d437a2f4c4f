/* console.c - byte I/O over the board's UART driver, with a small receive buffer filled
 * while transmission waits (see hil.h). */
#include "hil.h"

#define RX_BUF_SIZE 64u /* power of two */

static uint8_t rx_buf[RX_BUF_SIZE];
static uint8_t rx_head; /* next write */
static uint8_t rx_tail; /* next read */

static void rx_stash(void)
{
    int c = hil_console_rx();
    if (c >= 0 && (uint8_t)(rx_head - rx_tail) < RX_BUF_SIZE) {
        rx_buf[rx_head++ % RX_BUF_SIZE] = (uint8_t)c;
    } /* else: nothing received, or the buffer is full and the byte is dropped */
}

void hil_console_putc(char c)
{
    while (!hil_console_tx_ready()) {
        rx_stash();
    }
    hil_console_tx((uint8_t)c);
    rx_stash();
}

int hil_console_getc(void)
{
    if (rx_head != rx_tail) {
        return rx_buf[rx_tail++ % RX_BUF_SIZE];
    }
    return hil_console_rx();
}
