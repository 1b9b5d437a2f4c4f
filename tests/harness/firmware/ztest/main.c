/* A tiny test runner that reports in Zephyr ztest's console format, so hil's ztest harness
 * is tested on real firmware output. ZT_VARIANT 0: a failure with assertion lines and a
 * skip; 1: every test passes (one skip); 2: a test ends in a ZEPHYR FATAL ERROR report. */
#include "hil.h"

#ifndef ZT_VARIANT
#define ZT_VARIANT 0
#endif

enum zt_result { ZT_PASS, ZT_FAIL, ZT_SKIP };

struct zt_test {
    const char *name;
    void (*fn)(void);
};

static enum zt_result zt_status;

static void zt_print_seconds(uint32_t ms)
{
    hil_put_u32(ms / 1000u);
    hil_putc('.');
    hil_putc((char)('0' + (ms / 100u) % 10u));
    hil_putc((char)('0' + (ms / 10u) % 10u));
    hil_putc((char)('0' + ms % 10u));
}

static void zt_fail_at(const char *file, int line, const char *func, const char *what,
                       const char *msg)
{
    hil_println("");
    hil_puts("    Assertion failed at ");
    hil_puts(file);
    hil_putc(':');
    hil_put_i32(line);
    hil_puts(": ");
    hil_puts(func);
    hil_puts(": (");
    hil_puts(what);
    hil_println(")");
    hil_println(msg);
    zt_status = ZT_FAIL;
}

#define zt_assert_equal(a, b, msg)                                                      \
    do {                                                                                \
        if ((a) != (b)) {                                                               \
            zt_fail_at(__FILE_NAME__, __LINE__, __func__, #a " not equal to " #b, msg); \
            return;                                                                     \
        }                                                                               \
    } while (0)

static int sum(int a, int b)
{
    return a + b;
}

#if ZT_VARIANT == 0
#define EXPECTED_SUM 5
#else
#define EXPECTED_SUM 4
#endif

static void arith_test_add(void)
{
    zt_assert_equal(sum(1, 2), 3, "one and two");
}

static void arith_test_sum(void)
{
    hil_println("adding two and two");
    zt_assert_equal(sum(2, 2), EXPECTED_SUM, "sum is wrong");
}

static void arith_test_later(void)
{
    zt_status = ZT_SKIP; /* ztest_test_skip() */
}

static void strings_test_len(void)
{
    zt_assert_equal(strlen("four"), 4u, "strlen");
}

#if ZT_VARIANT == 2
/* Prints what Zephyr's Cortex-M fault handler prints, with this function's address as the
 * faulting PC, then halts as Zephyr does. */
__attribute__((noinline)) static void crash_test_null(void)
{
    uint32_t pc = (uint32_t)(uintptr_t)&crash_test_null;
    hil_println("E: ***** BUS FAULT *****");
    hil_println("E:   Precise data bus error");
    hil_println("E:   BFAR Address: 0x0");
    hil_puts("E: r3/a4:  0x00000000 r12/ip:  0x00000000 r14/lr:  0x");
    hil_put_hex32((uint32_t)(uintptr_t)&arith_test_add);
    hil_println("");
    hil_puts("E: Faulting instruction address (r15/pc): 0x");
    hil_put_hex32(pc);
    hil_println("");
    hil_println("E: >>> ZEPHYR FATAL ERROR 0: CPU exception on CPU 0");
    hil_println("E: Halting system");
    for (;;) {
    }
}
#endif

static const struct zt_test arith[] = {
    {"test_add", arith_test_add},
    {"test_sum", arith_test_sum},
    {"test_later", arith_test_later},
#if ZT_VARIANT == 2
    {"test_null", crash_test_null},
#endif
};

static const struct zt_test strings[] = {
    {"test_len", strings_test_len},
};

struct zt_suite {
    const char *name;
    const struct zt_test *tests;
    unsigned count;
    enum zt_result results[4];
    uint32_t ms[4];
};

static struct zt_suite suites[] = {
    {"arith", arith, sizeof arith / sizeof arith[0], {ZT_PASS}, {0}},
    {"strings", strings, sizeof strings / sizeof strings[0], {ZT_PASS}, {0}},
};

static const char *const result_word[] = {"PASS", "FAIL", "SKIP"};

static int run_suite(struct zt_suite *s)
{
    int failed = 0;
    hil_puts("Running TESTSUITE ");
    hil_println(s->name);
    hil_println("===================================================================");
    for (unsigned i = 0; i < s->count; i++) {
        uint32_t t0 = hil_millis();
        hil_puts("START - ");
        hil_println(s->tests[i].name);
        zt_status = ZT_PASS;
        s->tests[i].fn();
        s->results[i] = zt_status;
        s->ms[i] = hil_millis() - t0;
        failed |= zt_status == ZT_FAIL;
        hil_putc(' ');
        hil_puts(result_word[zt_status]);
        hil_puts(" - ");
        hil_puts(s->tests[i].name);
        hil_puts(" in ");
        zt_print_seconds(s->ms[i]);
        hil_println(" seconds");
        hil_println("===================================================================");
    }
    hil_puts("TESTSUITE ");
    hil_puts(s->name);
    hil_println(failed ? " failed." : " succeeded.");
    return failed;
}

static void print_summary(const struct zt_suite *s)
{
    unsigned n[3] = {0, 0, 0};
    uint32_t total_ms = 0;
    for (unsigned i = 0; i < s->count; i++) {
        n[s->results[i]]++;
        total_ms += s->ms[i];
    }
    uint32_t pct = 10000u * n[ZT_PASS] / s->count;
    hil_puts(n[ZT_FAIL] ? "SUITE FAIL - " : "SUITE PASS - ");
    hil_put_u32(pct / 100u);
    hil_putc('.');
    hil_putc((char)('0' + (pct / 10u) % 10u));
    hil_putc((char)('0' + pct % 10u));
    hil_puts("% [");
    hil_puts(s->name);
    hil_puts("]: pass = ");
    hil_put_u32(n[ZT_PASS]);
    hil_puts(", fail = ");
    hil_put_u32(n[ZT_FAIL]);
    hil_puts(", skip = ");
    hil_put_u32(n[ZT_SKIP]);
    hil_puts(", total = ");
    hil_put_u32(s->count);
    hil_puts(" duration = ");
    zt_print_seconds(total_ms);
    hil_println(" seconds");
    for (unsigned i = 0; i < s->count; i++) {
        hil_puts(" - ");
        hil_puts(result_word[s->results[i]]);
        hil_puts(" - [");
        hil_puts(s->name);
        hil_putc('.');
        hil_puts(s->tests[i].name);
        hil_puts("] duration = ");
        zt_print_seconds(s->ms[i]);
        hil_println(" seconds");
    }
    hil_println("");
}

int main(void)
{
    int failed = 0;
    hil_println("*** Booting Zephyr OS build v3.6.0 ***");
    for (unsigned i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        failed |= run_suite(&suites[i]);
    }
    hil_println("");
    hil_println("------ TESTSUITE SUMMARY START ------");
    hil_println("");
    for (unsigned i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        print_summary(&suites[i]);
    }
    hil_println("------ TESTSUITE SUMMARY END ------");
    hil_println("");
    hil_println("===================================================================");
    hil_println(failed ? "PROJECT EXECUTION FAILED" : "PROJECT EXECUTION SUCCESSFUL");
    for (;;) {
    }
}
