/* uart.h - a polled console for firmware that brings its own runtime (no hil runtime).
 * Addresses and clocks come from hil_board.h, generated from the board file. */
#ifndef BYOF_UART_H
#define BYOF_UART_H

void uart_init(void);
void uart_puts(const char *s);
void uart_putu(unsigned value);

#endif
