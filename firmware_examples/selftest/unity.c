/* unity.c - the Unity-compatible reporter (see unity.h). Output strings and their order
 * follow ThrowTheSwitch Unity 2.5 (UnityConcludeTest, UnityEnd). */
#include "unity.h"

#include "hil.h"

static struct {
    const char *file;
    const char *name;
    int line;
    uint32_t tests;
    uint32_t failures;
    uint32_t ignores;
    int failed;
    int ignored;
} unity;

static void results_begin(int line)
{
    hil_puts(unity.file);
    hil_putc(':');
    hil_put_i32(line);
    hil_putc(':');
    hil_puts(unity.name);
    hil_putc(':');
}

static void fail_begin(int line)
{
    results_begin(line);
    hil_puts("FAIL:");
    unity.failed = 1;
}

void UnityBegin(const char *file)
{
    unity.file = file;
    unity.name = 0;
    unity.line = 0;
    unity.tests = unity.failures = unity.ignores = 0;
    unity.failed = unity.ignored = 0;
}

int UnityFailed(void)
{
    return unity.failed || unity.ignored;
}

void UnityDefaultTestRun(unity_test_fn fn, const char *name, int line)
{
    unity.name = name;
    unity.line = line;
    unity.tests++;
    fn();
    /* UnityConcludeTest */
    if (unity.ignored) {
        unity.ignores++;
    } else if (!unity.failed) {
        results_begin(unity.line);
        hil_puts("PASS");
    } else {
        unity.failures++;
    }
    unity.failed = unity.ignored = 0;
    hil_putc('\n');
}

void UnityFail(const char *msg, int line)
{
    if (UnityFailed()) {
        return;
    }
    results_begin(line);
    hil_puts("FAIL");
    unity.failed = 1;
    if (msg) {
        hil_putc(':');
        if (msg[0] != ' ') {
            hil_putc(' ');
        }
        hil_puts(msg);
    }
}

void UnityIgnore(const char *msg, int line)
{
    if (UnityFailed()) {
        return;
    }
    results_begin(line);
    hil_puts("IGNORE");
    if (msg) {
        hil_puts(": ");
        hil_puts(msg);
    }
    unity.ignored = 1;
}

void UnityAssertCondition(int condition, const char *msg, int line)
{
    if (!condition) {
        UnityFail(msg, line);
    }
}

void UnityAssertEqualNumber(int32_t expected, int32_t actual, int line)
{
    if (expected == actual || UnityFailed()) {
        return;
    }
    fail_begin(line);
    hil_puts(" Expected ");
    hil_put_i32(expected);
    hil_puts(" Was ");
    hil_put_i32(actual);
}

void UnityAssertEqualUnsigned(uint32_t expected, uint32_t actual, int line)
{
    if (expected == actual || UnityFailed()) {
        return;
    }
    fail_begin(line);
    hil_puts(" Expected ");
    hil_put_u32(expected);
    hil_puts(" Was ");
    hil_put_u32(actual);
}

static void put_unity_hex(uint32_t v)
{
    static const char digits[] = "0123456789ABCDEF";
    hil_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        hil_putc(digits[(v >> shift) & 0xFu]);
    }
}

void UnityAssertEqualHex32(uint32_t expected, uint32_t actual, int line)
{
    if (expected == actual || UnityFailed()) {
        return;
    }
    fail_begin(line);
    hil_puts(" Expected ");
    put_unity_hex(expected);
    hil_puts(" Was ");
    put_unity_hex(actual);
}

static void put_quoted(const char *s)
{
    if (s == 0) {
        hil_puts("NULL");
        return;
    }
    hil_putc('"');
    hil_puts(s);
    hil_putc('"');
}

void UnityAssertEqualString(const char *expected, const char *actual, int line)
{
    if (UnityFailed()) {
        return;
    }
    if (expected && actual && strcmp(expected, actual) == 0) {
        return;
    }
    if (expected == 0 && actual == 0) {
        return;
    }
    fail_begin(line);
    hil_puts(" Expected ");
    put_quoted(expected);
    hil_puts(" Was ");
    put_quoted(actual);
}

int UnityEnd(void)
{
    hil_putc('\n');
    hil_println("-----------------------");
    hil_put_u32(unity.tests);
    hil_puts(" Tests ");
    hil_put_u32(unity.failures);
    hil_puts(" Failures ");
    hil_put_u32(unity.ignores);
    hil_puts(" Ignored ");
    hil_putc('\n');
    hil_println(unity.failures == 0u ? "OK" : "FAIL");
    return (int)unity.failures;
}
