/* linebuf.h - assemble console bytes into lines.
 *
 * CR, LF and CRLF each end one line (the LF of a CRLF is swallowed, so CRLF never yields an
 * extra empty line). A line longer than the buffer is discarded up to its end and reported
 * once, as LINEBUF_OVERFLOW, when that end arrives; the next line starts clean. */
#ifndef HIL_LIB_LINEBUF_H
#define HIL_LIB_LINEBUF_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LINEBUF_NONE = 0, /* byte stored (or discarded); no line yet */
    LINEBUF_LINE,     /* a line ended: linebuf.buf holds it, NUL-terminated (may be empty) */
    LINEBUF_OVERFLOW  /* a line ended that did not fit in the buffer */
} linebuf_event;

typedef struct {
    char *buf;
    size_t cap; /* storage size; lines of up to cap - 1 bytes fit */
    size_t len;
    uint8_t overflow;
    uint8_t prev_cr;
    uint8_t complete;
} linebuf;

void linebuf_init(linebuf *lb, char *storage, size_t cap);

/* Feed one byte. After LINEBUF_LINE, lb->buf / lb->len stay valid until the next call. */
linebuf_event linebuf_feed(linebuf *lb, char c);

#endif
