/* shell - the line-oriented command shell every hil test speaks to (protocol: issue 3).
 *
 * Boot:    "hil-shell <board> <version>", then "READY".
 * Input:   one command per line (CR, LF or CRLF); no echo; empty lines are ignored.
 * Replies: zero or more output lines, then "OK" or "ERR <reason>".
 * Commands: ping, echo, add, crc32, mem, version, help, fault.
 */
#include "crc32.h"
#include "hil.h"
#include "linebuf.h"
#include "numparse.h"

#ifndef SHELL_LINE_MAX     /* an app.yaml may set it: defines: {SHELL_LINE_MAX: 128} */
#define SHELL_LINE_MAX 160 /* bytes per line; longer lines get "ERR line too long" */
#endif
#define SHELL_CRC_MAX 64 /* bytes per crc32 command */
#define SHELL_MAX_ARGS 4

typedef struct {
    const char *name;
    const char *usage;
    void (*run)(int argc, char **argv, char *rest);
    int min_args; /* after the command name */
    int max_args; /* -1: the raw rest of the line is used */
} command;

static void reply_ok(void)
{
    hil_println("OK");
}

static void reply_err(const char *reason)
{
    hil_puts("ERR ");
    hil_println(reason);
}

static void cmd_ping(int argc, char **argv, char *rest)
{
    (void)argc;
    (void)argv;
    (void)rest;
    hil_println("pong");
    reply_ok();
}

static void cmd_echo(int argc, char **argv, char *rest)
{
    (void)argc;
    (void)argv;
    hil_println(rest);
    reply_ok();
}

static void cmd_add(int argc, char **argv, char *rest)
{
    int32_t a, b;
    int err;
    (void)argc;
    (void)rest;
    if ((err = np_parse_i32(argv[0], &a)) != NP_OK || (err = np_parse_i32(argv[1], &b)) != NP_OK) {
        reply_err(np_strerror(err));
        return;
    }
    hil_put_i32((int32_t)((uint32_t)a + (uint32_t)b)); /* wraps, no signed overflow */
    hil_putc('\n');
    reply_ok();
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The bytes may be split over several words: "crc32 de ad beef". */
static void cmd_crc32(int argc, char **argv, char *rest)
{
    uint8_t bytes[SHELL_CRC_MAX];
    size_t total = 0;
    (void)argc;
    (void)argv;
    while (*rest) {
        while (is_space(*rest)) {
            rest++;
        }
        if (*rest == '\0') {
            break;
        }
        char *word = rest;
        while (*rest && !is_space(*rest)) {
            rest++;
        }
        char saved = *rest;
        *rest = '\0';
        size_t n = 0;
        int err = np_hex_decode(word, bytes + total, sizeof bytes - total, &n);
        *rest = saved;
        if (err != NP_OK) {
            reply_err(err == NP_ERR_SYNTAX ? "bad hex digit" : np_strerror(err));
            return;
        }
        total += n;
    }
    hil_put_hex32(crc32_update(0, bytes, total));
    hil_putc('\n');
    reply_ok();
}

/* The read goes through the fault-tolerant probe: an unmapped address answers ERR instead
 * of faulting (the shell keeps running). */
static void cmd_mem(int argc, char **argv, char *rest)
{
    uint32_t addr, value;
    (void)argc;
    (void)rest;
    int err = np_parse_hex_u32(argv[0], &addr);
    if (err != NP_OK) {
        reply_err(err == NP_ERR_RANGE ? "address out of range" : "bad address");
        return;
    }
    addr &= ~3u;
    if (hil_probe_read32(addr, &value) != 0) {
        reply_err("bus fault");
        return;
    }
    hil_put_hex32(value);
    hil_putc('\n');
    reply_ok();
}

static void cmd_version(int argc, char **argv, char *rest)
{
    (void)argc;
    (void)argv;
    (void)rest;
    hil_println("board=" HIL_BOARD_NAME " app=" HIL_APP_NAME " version=" HIL_APP_VERSION
                " toolchain=" HIL_TOOLCHAIN);
    reply_ok();
}

static void cmd_help(int argc, char **argv, char *rest);

/* Fault on purpose: a load from an address nothing decodes (Arm: precise BusFault; RISC-V:
 * load access fault). Not inlined, so the reported PC lies inside this function. */
HIL_NOINLINE void shell_fault(void)
{
    volatile uint32_t *bad = (volatile uint32_t *)0xFFFFFFF0u;
    (void)*bad;
    /* not reached when the access faults; an undefined instruction as the fallback */
#if defined(HIL_ARCH_ARM)
    __asm__ volatile("udf #0");
#else
    __asm__ volatile("unimp");
#endif
}

static void cmd_fault(int argc, char **argv, char *rest)
{
    (void)argc;
    (void)argv;
    (void)rest;
    shell_fault();
    reply_err("fault did not trap");
}

static const command commands[] = {
    {"ping", "ping", cmd_ping, 0, 0},
    {"echo", "echo <text>", cmd_echo, 0, -1},
    {"add", "add <a> <b>", cmd_add, 2, 2},
    {"crc32", "crc32 <hex bytes>", cmd_crc32, 0, -1},
    {"mem", "mem <hex address>", cmd_mem, 1, 1},
    {"version", "version", cmd_version, 0, 0},
    {"help", "help", cmd_help, 0, 0},
    {"fault", "fault", cmd_fault, 0, 0},
};

#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void cmd_help(int argc, char **argv, char *rest)
{
    (void)argc;
    (void)argv;
    (void)rest;
    for (size_t i = 0; i < NUM_COMMANDS; i++) {
        hil_println(commands[i].usage);
    }
    reply_ok();
}

static void execute(char *line)
{
    char *argv[SHELL_MAX_ARGS + 1];
    int argc = 0;

    while (is_space(*line)) {
        line++;
    }
    if (*line == '\0') {
        return; /* empty or blank line: no reply */
    }
    char *name = line;
    while (*line && !is_space(*line)) {
        line++;
    }
    char *rest = line; /* "" when there are no arguments */
    if (*line) {
        *line++ = '\0';
        rest = line; /* everything after the single separating space, verbatim */
    }

    const command *cmd = 0;
    for (size_t i = 0; i < NUM_COMMANDS; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            cmd = &commands[i];
            break;
        }
    }
    if (cmd == 0) {
        reply_err("unknown command");
        return;
    }
    if (cmd->max_args >= 0) {
        while (*line) {
            while (is_space(*line)) {
                *line++ = '\0';
            }
            if (*line == '\0') {
                break;
            }
            if (argc == cmd->max_args || argc == SHELL_MAX_ARGS) {
                hil_puts("ERR usage: ");
                hil_println(cmd->usage);
                return;
            }
            argv[argc++] = line;
            while (*line && !is_space(*line)) {
                line++;
            }
        }
        if (argc < cmd->min_args) {
            hil_puts("ERR usage: ");
            hil_println(cmd->usage);
            return;
        }
    }
    argv[argc] = 0;
    cmd->run(argc, argv, rest);
}

int main(void)
{
    static char storage[SHELL_LINE_MAX + 1];
    linebuf lb;

    linebuf_init(&lb, storage, sizeof storage);
    hil_println("hil-shell " HIL_BOARD_NAME " " HIL_APP_VERSION);
    hil_println("READY");
    for (;;) {
        int c = hil_getc();
        if (c < 0) {
            hil_wait_input(); /* sleeps until the next byte where the board allows */
            continue;
        }
        switch (linebuf_feed(&lb, (char)c)) {
        case LINEBUF_LINE:
            execute(lb.buf);
            break;
        case LINEBUF_OVERFLOW:
            reply_err("line too long");
            break;
        default:
            break;
        }
    }
}
