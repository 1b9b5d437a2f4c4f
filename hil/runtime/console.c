/* console.c - byte I/O over the board's UART driver, with a small receive buffer filled by
 * the UART's receive interrupt and while transmission waits (see hil.h).
 *
 * A full buffer takes no more bytes from the UART: they wait there (QEMU holds them back;
 * a real UART overruns, the same loss as dropping them), and the receive interrupt's line
 * is masked in the interrupt controller until getc makes room, so a sender faster than
 * the app (QEMU delivers as fast as the UART is read) cannot starve it. */
#include "hil.h"

#define RX_BUF_SIZE 64u /* power of two */

/* One producer at a time: the receive interrupt, or the main code with interrupts masked.
 * The main code alone consumes. */
static volatile uint8_t rx_buf[RX_BUF_SIZE];
static volatile uint8_t rx_head; /* next write */
static volatile uint8_t rx_tail; /* next read */
#if defined(HIL_CONSOLE_IRQ)
static volatile uint8_t rx_irq_off; /* the receive interrupt waits for room in the buffer */
#endif

/* Move received bytes into the buffer while it has room; with interrupts masked or in the
 * ISR. Returns 1 if the buffer is full. */
static int rx_drain(void)
{
    for (;;) {
        uint8_t head = rx_head;
        if ((uint8_t)(head - rx_tail) >= RX_BUF_SIZE) {
            return 1;
        }
        int c = hil_console_rx();
        if (c < 0) {
            return 0;
        }
        rx_buf[head % RX_BUF_SIZE] = (uint8_t)c;
        rx_head = (uint8_t)(head + 1u);
    }
}

static void rx_poll(void)
{
    uint32_t state = hil_irq_save();
    (void)rx_drain();
    hil_irq_restore(state);
}

void hil_console_isr(void)
{
#if defined(HIL_CONSOLE_IRQ)
    if (rx_drain()) {
        hil_console_irq_line(0);
        rx_irq_off = 1u;
    }
    hil_console_rx_irq_ack();
#endif
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
#if defined(HIL_CONSOLE_IRQ)
    if (rx_irq_off) {
        uint32_t state = hil_irq_save();
        rx_irq_off = 0u;
        hil_console_irq_line(1);
        hil_irq_restore(state);
    }
#endif
    return c;
}

void hil_wait_input(void)
{
#if defined(HIL_CONSOLE_IRQ)
    uint32_t state = hil_irq_save();
    for (;;) {
        (void)rx_drain(); /* bytes that arrived while the caller had interrupts masked */
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
