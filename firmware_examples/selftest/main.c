/* selftest - on-target unit tests of the shared firmware code in ../lib (CRC-32, number
 * parsing, the line buffer), reported in Unity's output format. */
#include "crc32.h"
#include "hil.h"
#include "linebuf.h"
#include "numparse.h"
#include "unity.h"

/* ---------------------------------------------------------------- crc32 */

static void test_crc32_empty_is_zero(void)
{
    TEST_ASSERT_EQUAL_HEX32(0x00000000u, crc32_update(0, "", 0));
}

static void test_crc32_check_value(void)
{
    /* the CRC-32 catalogue check value for "123456789" */
    TEST_ASSERT_EQUAL_HEX32(0xCBF43926u, crc32_update(0, "123456789", 9));
}

static void test_crc32_all_byte_values(void)
{
    uint8_t bytes[256];
    for (unsigned i = 0; i < sizeof bytes; i++) {
        bytes[i] = (uint8_t)i;
    }
    TEST_ASSERT_EQUAL_HEX32(0x29058C73u, crc32_update(0, bytes, sizeof bytes)); /* zlib.crc32 */
}

static void test_crc32_chunks_equal_whole(void)
{
    static const char text[] = "The quick brown fox jumps over the lazy dog";
    uint32_t crc = crc32_update(0, text, 10);
    crc = crc32_update(crc, text + 10, sizeof text - 1 - 10);
    TEST_ASSERT_EQUAL_HEX32(0x414FA339u, crc);
}

static void test_crc32_hardware_unit(void)
{
    TEST_IGNORE_MESSAGE("no driver for the STM32 CRC unit yet (and its polynomial differs)");
}

/* ---------------------------------------------------------------- numbers */

static void test_parse_i32_decimal(void)
{
    int32_t v = 0;
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("42", &v));
    TEST_ASSERT_EQUAL_INT(42, v);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("-17", &v));
    TEST_ASSERT_EQUAL_INT(-17, v);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("+0", &v));
    TEST_ASSERT_EQUAL_INT(0, v);
}

static void test_parse_i32_limits(void)
{
    int32_t v = 0;
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("2147483647", &v));
    TEST_ASSERT_EQUAL_INT(INT32_MAX, v);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("-2147483648", &v));
    TEST_ASSERT_EQUAL_INT(INT32_MIN, v);
    TEST_ASSERT_EQUAL_INT(NP_ERR_RANGE, np_parse_i32("2147483648", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_RANGE, np_parse_i32("-2147483649", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_RANGE, np_parse_i32("99999999999999999999", &v));
}

static void test_parse_i32_hex_is_bit_pattern(void)
{
    int32_t v = 0;
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("0xffffffff", &v));
    TEST_ASSERT_EQUAL_INT(-1, v);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_i32("0X10", &v));
    TEST_ASSERT_EQUAL_INT(16, v);
    TEST_ASSERT_EQUAL_INT(NP_ERR_RANGE, np_parse_i32("0x100000000", &v));
}

static void test_parse_i32_rejects_junk(void)
{
    int32_t v = 1234;
    TEST_ASSERT_EQUAL_INT(NP_ERR_EMPTY, np_parse_i32("", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_parse_i32("-", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_parse_i32("12a", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_parse_i32("abc", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_parse_i32("0x", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_parse_i32("1 2", &v));
    TEST_ASSERT_EQUAL_INT(1234, v); /* untouched on error */
}

static void test_parse_hex_u32(void)
{
    uint32_t v = 0;
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_hex_u32("deadBEEF", &v));
    TEST_ASSERT_EQUAL_HEX32(0xDEADBEEFu, v);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_hex_u32("0x08000000", &v));
    TEST_ASSERT_EQUAL_HEX32(0x08000000u, v);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_parse_hex_u32("000000000001", &v));
    TEST_ASSERT_EQUAL_HEX32(1u, v);
    TEST_ASSERT_EQUAL_INT(NP_ERR_RANGE, np_parse_hex_u32("123456789", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_parse_hex_u32("0xg", &v));
    TEST_ASSERT_EQUAL_INT(NP_ERR_EMPTY, np_parse_hex_u32("", &v));
}

static void test_hex_decode(void)
{
    uint8_t out[4] = {0};
    size_t n = 99;
    TEST_ASSERT_EQUAL_INT(NP_OK, np_hex_decode("", out, sizeof out, &n));
    TEST_ASSERT_EQUAL_INT(0, n);
    TEST_ASSERT_EQUAL_INT(NP_OK, np_hex_decode("00fF7a", out, sizeof out, &n));
    TEST_ASSERT_EQUAL_INT(3, n);
    TEST_ASSERT_EQUAL_HEX8(0x00, out[0]);
    TEST_ASSERT_EQUAL_HEX8(0xFF, out[1]);
    TEST_ASSERT_EQUAL_HEX8(0x7A, out[2]);
    TEST_ASSERT_EQUAL_INT(NP_ERR_ODD, np_hex_decode("abc", out, sizeof out, &n));
    TEST_ASSERT_EQUAL_INT(NP_ERR_SYNTAX, np_hex_decode("zz", out, sizeof out, &n));
    TEST_ASSERT_EQUAL_INT(NP_ERR_TOO_MANY, np_hex_decode("0102030405", out, sizeof out, &n));
    TEST_ASSERT_EQUAL_STRING("odd-length hex", np_strerror(NP_ERR_ODD));
}

/* ---------------------------------------------------------------- line buffer */

static linebuf_event feed(linebuf *lb, const char *s)
{
    linebuf_event ev = LINEBUF_NONE;
    while (*s) {
        ev = linebuf_feed(lb, *s++);
    }
    return ev;
}

static void test_linebuf_line_endings(void)
{
    char storage[16];
    linebuf lb;
    linebuf_init(&lb, storage, sizeof storage);
    TEST_ASSERT_EQUAL_INT(LINEBUF_LINE, feed(&lb, "ping\n"));
    TEST_ASSERT_EQUAL_STRING("ping", lb.buf);
    TEST_ASSERT_EQUAL_INT(LINEBUF_LINE, feed(&lb, "add 1 2\r"));
    TEST_ASSERT_EQUAL_STRING("add 1 2", lb.buf);
    /* the LF of a CRLF is swallowed: no empty line after it */
    TEST_ASSERT_EQUAL_INT(LINEBUF_NONE, feed(&lb, "\n"));
    TEST_ASSERT_EQUAL_INT(LINEBUF_LINE, feed(&lb, "x\r"));
    TEST_ASSERT_EQUAL_STRING("x", lb.buf);
    TEST_ASSERT_EQUAL_INT(LINEBUF_NONE, feed(&lb, "\n"));
    /* CR CR is two lines, the second empty */
    TEST_ASSERT_EQUAL_INT(LINEBUF_LINE, feed(&lb, "\r"));
    TEST_ASSERT_EQUAL_INT(0, lb.len);
}

static void test_linebuf_overflow_reported_once(void)
{
    char storage[8]; /* lines of up to 7 bytes */
    linebuf lb;
    linebuf_init(&lb, storage, sizeof storage);
    TEST_ASSERT_EQUAL_INT(LINEBUF_LINE, feed(&lb, "1234567\n"));
    TEST_ASSERT_EQUAL_STRING("1234567", lb.buf);
    TEST_ASSERT_EQUAL_INT(LINEBUF_NONE, feed(&lb, "12345678901234567890"));
    TEST_ASSERT_EQUAL_INT(LINEBUF_OVERFLOW, feed(&lb, "\r"));
    TEST_ASSERT_EQUAL_INT(LINEBUF_NONE, feed(&lb, "\n"));
    TEST_ASSERT_EQUAL_INT(LINEBUF_LINE, feed(&lb, "ping\n"));
    TEST_ASSERT_EQUAL_STRING("ping", lb.buf);
}

/* ---------------------------------------------------------------- runtime */

static void test_float_works(void)
{
    /* On hard-float builds this is an FPU instruction: it UsageFaults (NOCP) unless the
     * startup code enabled CP10/CP11 in CPACR. Soft-float builds call libgcc instead. */
    volatile float a = 1.5f;
    volatile float b = 4.0f;
    TEST_ASSERT_EQUAL_INT(6, (int)(a * b));
}

static void test_millis_advances(void)
{
    uint32_t start = hil_millis();
    hil_delay_ms(2u);
    TEST_ASSERT_TRUE(hil_millis() - start >= 2u);
}

/* hil_millis() never goes back, polled past the end of a long timer period (Arm: SysTick
 * runs 2^24-cycle periods while no delay waits, 1.05 s at 16 MHz, 1.4 s at 12 MHz), and
 * delays, which shorten the period to their deadline, last at least what they were asked. */
static void test_millis_monotonic_across_timer_periods(void)
{
    uint32_t start = hil_millis();
    uint32_t prev = start;
    while (prev - start < 1500u) {
        uint32_t now = hil_millis();
        TEST_ASSERT_TRUE(now - prev < 0x80000000u); /* not backwards */
        prev = now;
    }
    start = prev;
    while (prev - start < 300u) {
        hil_delay_ms(7u);
        uint32_t now = hil_millis();
        TEST_ASSERT_TRUE(now - prev >= 7u);
        TEST_ASSERT_TRUE(now - prev < 0x80000000u);
        prev = now;
    }
}

int main(void)
{
    hil_println("hil-selftest " HIL_BOARD_NAME " " HIL_APP_VERSION);
    UNITY_BEGIN();
    RUN_TEST(test_crc32_empty_is_zero);
    RUN_TEST(test_crc32_check_value);
    RUN_TEST(test_crc32_all_byte_values);
    RUN_TEST(test_crc32_chunks_equal_whole);
    RUN_TEST(test_crc32_hardware_unit);
    RUN_TEST(test_parse_i32_decimal);
    RUN_TEST(test_parse_i32_limits);
    RUN_TEST(test_parse_i32_hex_is_bit_pattern);
    RUN_TEST(test_parse_i32_rejects_junk);
    RUN_TEST(test_parse_hex_u32);
    RUN_TEST(test_hex_decode);
    RUN_TEST(test_linebuf_line_endings);
    RUN_TEST(test_linebuf_overflow_reported_once);
    RUN_TEST(test_float_works);
    RUN_TEST(test_millis_advances);
    RUN_TEST(test_millis_monotonic_across_timer_periods);
    UNITY_END();
    return 0;
}
