/* linebuf.c - line assembly with CR/LF/CRLF endings and overflow recovery. */
#include "linebuf.h"

void linebuf_init(linebuf *lb, char *storage, size_t cap)
{
    lb->buf = storage;
    lb->cap = cap;
    lb->len = 0;
    lb->overflow = 0;
    lb->prev_cr = 0;
    lb->complete = 0;
    if (cap > 0u) {
        storage[0] = '\0';
    }
}

linebuf_event linebuf_feed(linebuf *lb, char c)
{
    if (lb->complete) {
        lb->complete = 0;
        lb->len = 0;
        lb->buf[0] = '\0';
    }
    if (c == '\n' && lb->prev_cr) {
        lb->prev_cr = 0; /* second half of CRLF */
        return LINEBUF_NONE;
    }
    lb->prev_cr = c == '\r';
    if (c == '\r' || c == '\n') {
        linebuf_event ev = lb->overflow ? LINEBUF_OVERFLOW : LINEBUF_LINE;
        if (lb->overflow) {
            lb->len = 0;
        }
        lb->buf[lb->len] = '\0';
        lb->overflow = 0;
        lb->complete = 1;
        return ev;
    }
    if (lb->overflow) {
        return LINEBUF_NONE;
    }
    if (lb->len + 1u >= lb->cap) {
        lb->overflow = 1;
        return LINEBUF_NONE;
    }
    lb->buf[lb->len++] = c;
    return LINEBUF_NONE;
}
