/* hello - a first hil app: prints a banner and READY, then answers commands, one per line.
 *
 *   ping        -> "pong", then "OK"
 *   hello NAME  -> "hello, NAME", then "OK"
 *   anything else -> "ERR unknown command"
 *
 * The hil runtime brought up the console before main(); hil_board.h (generated from the
 * board file) names the board.
 */
#include "hil.h"

#define LINE_MAX 80

static int read_line(char *line, size_t size)
{
    size_t n = 0;
    for (;;) {
        int c = hil_getc();
        if (c < 0) {
            hil_wait_input(); /* the core sleeps until a byte arrives */
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (n == 0) {
                continue; /* empty line, or the LF of a CRLF */
            }
            line[n] = '\0';
            return (int)n;
        }
        if (n + 1 < size) {
            line[n++] = (char)c;
        }
    }
}

int main(void)
{
    char line[LINE_MAX];
    hil_puts("hello from ");
    hil_println(HIL_BOARD_NAME);
    hil_println("READY");
    for (;;) {
        read_line(line, sizeof line);
        if (strcmp(line, "ping") == 0) {
            hil_println("pong");
            hil_println("OK");
        } else if (strncmp(line, "hello ", 6) == 0) {
            hil_puts("hello, ");
            hil_println(line + 6);
            hil_println("OK");
        } else {
            hil_println("ERR unknown command");
        }
    }
}
