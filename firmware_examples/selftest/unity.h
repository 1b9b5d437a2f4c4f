/* unity.h - a small reporter that prints exactly what ThrowTheSwitch's Unity prints, with the
 * subset of its API the on-target tests use. Results go to the hil console:
 *
 *   file:line:test_name:PASS
 *   file:line:test_name:FAIL: Expected 5 Was 6
 *   file:line:test_name:IGNORE: reason
 *   (blank line)
 *   -----------------------
 *   N Tests M Failures K Ignored
 *   OK | FAIL
 *
 * There is no setjmp on bare metal: a failed assertion returns from the test function, so
 * assertions belong in the test function itself (as with Unity's UNITY_EXCLUDE_SETJMP_H).
 */
#ifndef HIL_UNITY_H
#define HIL_UNITY_H

#include <stdint.h>

typedef void (*unity_test_fn)(void);

void UnityBegin(const char *file);
int UnityEnd(void);
void UnityDefaultTestRun(unity_test_fn fn, const char *name, int line);
int UnityFailed(void);
void UnityFail(const char *msg, int line);
void UnityIgnore(const char *msg, int line);
void UnityAssertEqualNumber(int32_t expected, int32_t actual, int line);
void UnityAssertEqualUnsigned(uint32_t expected, uint32_t actual, int line);
void UnityAssertEqualHex32(uint32_t expected, uint32_t actual, int line);
void UnityAssertEqualString(const char *expected, const char *actual, int line);
void UnityAssertCondition(int condition, const char *msg, int line);

#if defined(__FILE_NAME__)
#define UNITY_FILE_NAME __FILE_NAME__ /* the basename: no build paths in the image */
#else
#define UNITY_FILE_NAME "test"
#endif

#define UNITY_BEGIN() UnityBegin(UNITY_FILE_NAME)
#define UNITY_END() UnityEnd()
#define RUN_TEST(fn) UnityDefaultTestRun(fn, #fn, __LINE__)

#define UNITY_BAIL_IF_FAILED() \
    do {                       \
        if (UnityFailed()) {   \
            return;            \
        }                      \
    } while (0)

#define TEST_ASSERT(c)                                                         \
    do {                                                                       \
        UnityAssertCondition((c), " Expression Evaluated To FALSE", __LINE__); \
        UNITY_BAIL_IF_FAILED();                                                \
    } while (0)
#define TEST_ASSERT_TRUE(c)                                              \
    do {                                                                 \
        UnityAssertCondition((c), " Expected TRUE Was FALSE", __LINE__); \
        UNITY_BAIL_IF_FAILED();                                          \
    } while (0)
#define TEST_ASSERT_FALSE(c)                                              \
    do {                                                                  \
        UnityAssertCondition(!(c), " Expected FALSE Was TRUE", __LINE__); \
        UNITY_BAIL_IF_FAILED();                                           \
    } while (0)
#define TEST_ASSERT_EQUAL_INT(e, a)                                   \
    do {                                                              \
        UnityAssertEqualNumber((int32_t)(e), (int32_t)(a), __LINE__); \
        UNITY_BAIL_IF_FAILED();                                       \
    } while (0)
#define TEST_ASSERT_EQUAL_INT32(e, a) TEST_ASSERT_EQUAL_INT(e, a)
#define TEST_ASSERT_EQUAL_UINT32(e, a)                                    \
    do {                                                                  \
        UnityAssertEqualUnsigned((uint32_t)(e), (uint32_t)(a), __LINE__); \
        UNITY_BAIL_IF_FAILED();                                           \
    } while (0)
#define TEST_ASSERT_EQUAL_HEX32(e, a)                                  \
    do {                                                               \
        UnityAssertEqualHex32((uint32_t)(e), (uint32_t)(a), __LINE__); \
        UNITY_BAIL_IF_FAILED();                                        \
    } while (0)
#define TEST_ASSERT_EQUAL_HEX8(e, a) TEST_ASSERT_EQUAL_HEX32((uint8_t)(e), (uint8_t)(a))
#define TEST_ASSERT_EQUAL_STRING(e, a)              \
    do {                                            \
        UnityAssertEqualString((e), (a), __LINE__); \
        UNITY_BAIL_IF_FAILED();                     \
    } while (0)
#define TEST_FAIL_MESSAGE(m)      \
    do {                          \
        UnityFail((m), __LINE__); \
        return;                   \
    } while (0)
#define TEST_IGNORE_MESSAGE(m)      \
    do {                            \
        UnityIgnore((m), __LINE__); \
        return;                     \
    } while (0)
#define TEST_IGNORE()             \
    do {                          \
        UnityIgnore(0, __LINE__); \
        return;                   \
    } while (0)

#endif
