/* console.c - byte I/O over the board's UART driver, with a small receive buffer filled by
 * the UART's receive interrupt and while transmission waits (see hil.h). */
#include "hil.h"

#define RX_BUF_SIZE 64u /* power of two */

/* One producer at a time: the receive interrupt, or the main code with interrupts masked.
 * The main code alone consumes. */
static volatile uint8_t rx_buf[RX_BUF_SIZE];
static volatile uint8_t rx_head; /* next write */
static volatile uint8_t rx_tail; /* next read */

/* Move every byte the UART holds into the buffer; with interrupts masked or in the ISR. */
static void rx_drain(void)
{
    int c;
    while ((c = hil_console_rx()) >= 0) {
        uint8_t head = rx_head;
        if ((uint8_t)(head - rx_tail) < RX_BUF_SIZE) {
            rx_buf[head % RX_BUF_SIZE] = (uint8_t)c;
            rx_head = (uint8_t)(head + 1u);
        } /* else: the buffer is full and the byte is dropped */
    }
}

static void rx_poll(void)
{
    uint32_t state = hil_irq_save();
    rx_drain();
    hil_irq_restore(state);
}

void hil_console_isr(void)
{
    rx_drain();
    hil_console_rx_irq_ack();
}

void hil_console_putc(char c)
{
    while (!hil_console_tx_ready()) {
        rx_poll();
    }
    hil_console_tx((uint8_t)c);
    rx_poll();
}

int hil_console_getc(void)
{
    if (rx_head == rx_tail) {
        rx_poll();
        if (rx_head == rx_tail) {
            return -1;
        }
    }
    uint8_t tail = rx_tail;
    int c = rx_buf[tail % RX_BUF_SIZE];
    rx_tail = (uint8_t)(tail + 1u);
    return c;
}

void hil_wait_input(void)
{
#if defined(HIL_CONSOLE_IRQ)
    uint32_t state = hil_irq_save();
    for (;;) {
        rx_drain(); /* bytes that arrived while the caller had interrupts masked */
        if (rx_head != rx_tail) {
            break;
        }
        hil_wfi();
        hil_irq_restore(state); /* the receive interrupt (or the tick) runs here */
        state = hil_irq_save();
    }
    hil_irq_restore(state);
#endif
    /* without a receive interrupt the caller polls hil_getc() */
}
