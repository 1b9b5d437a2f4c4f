/* led.c - the board LED: STM32F4 GPIO, SiFive GPIO or Stellaris GPIO, or nothing.
 * The board file gives the port (HIL_LED_BASE), the pin and the port's clock gate
 * (HIL_LED_CLKEN_REG/BIT); HIL_LED_ACTIVE_LOW inverts the pin level. */
#include "hil.h"

#if !defined(HIL_LED_ACTIVE_LOW)
#define HIL_LED_ACTIVE_LOW 0
#endif

#define REG32(addr) HIL_REG32(addr)

#if (defined(HIL_LED_STM32F4_GPIO) || defined(HIL_LED_STELLARIS_GPIO)) && \
    (!defined(HIL_LED_CLKEN_REG) || !defined(HIL_LED_CLKEN_BIT))
#error "this LED driver needs the GPIO port's clock gate: led.clock_enable in the board file"
#endif

#if HIL_HAS_LED
static int hil_led_on;
#define LED_MASK (1u << HIL_LED_PIN)
static void led_write(int level);
#endif

#if defined(HIL_LED_STM32F4_GPIO)
#define GPIO_MODER REG32(HIL_LED_BASE + 0x00u)
#define GPIO_BSRR REG32(HIL_LED_BASE + 0x18u)

void hil_led_init(void)
{
    REG32(HIL_LED_CLKEN_REG) |= 1u << HIL_LED_CLKEN_BIT;
    (void)REG32(HIL_LED_CLKEN_REG);
    GPIO_MODER = (GPIO_MODER & ~(3u << (2u * HIL_LED_PIN))) | (1u << (2u * HIL_LED_PIN));
    hil_led_set(0);
}

static void led_write(int level)
{
    GPIO_BSRR = level ? LED_MASK : (LED_MASK << 16);
}

#elif defined(HIL_LED_SIFIVE_GPIO)
#define GPIO_INPUT_EN REG32(HIL_LED_BASE + 0x04u)
#define GPIO_OUTPUT_EN REG32(HIL_LED_BASE + 0x08u)
#define GPIO_OUTPUT_VAL REG32(HIL_LED_BASE + 0x0Cu)
#define GPIO_IOF_EN REG32(HIL_LED_BASE + 0x38u)
#define GPIO_OUT_XOR REG32(HIL_LED_BASE + 0x40u)

void hil_led_init(void)
{
    GPIO_IOF_EN &= ~LED_MASK;
    GPIO_INPUT_EN &= ~LED_MASK;
    GPIO_OUT_XOR &= ~LED_MASK;
    hil_led_set(0);
    GPIO_OUTPUT_EN |= LED_MASK;
}

static void led_write(int level)
{
    if (level) {
        GPIO_OUTPUT_VAL |= LED_MASK;
    } else {
        GPIO_OUTPUT_VAL &= ~LED_MASK;
    }
}

#elif defined(HIL_LED_STELLARIS_GPIO)
/* GPIODATA is masked by address bits 9:2. */
#define GPIO_DATA_PIN REG32(HIL_LED_BASE + (LED_MASK << 2))
#define GPIO_DIR REG32(HIL_LED_BASE + 0x400u)
#define GPIO_DEN REG32(HIL_LED_BASE + 0x51Cu)

void hil_led_init(void)
{
    REG32(HIL_LED_CLKEN_REG) |= 1u << HIL_LED_CLKEN_BIT;
    (void)REG32(HIL_LED_CLKEN_REG); /* a few cycles before the port may be touched */
    (void)REG32(HIL_LED_CLKEN_REG);
    GPIO_DIR |= LED_MASK;
    GPIO_DEN |= LED_MASK;
    hil_led_set(0);
}

static void led_write(int level)
{
    GPIO_DATA_PIN = level ? LED_MASK : 0u;
}

#else
void hil_led_init(void)
{
}

void hil_led_set(int on)
{
    (void)on;
}

void hil_led_toggle(void)
{
}
#endif

#if HIL_HAS_LED
void hil_led_set(int on)
{
    hil_led_on = on != 0;
    led_write(HIL_LED_ACTIVE_LOW ? !hil_led_on : hil_led_on);
}

void hil_led_toggle(void)
{
    hil_led_set(!hil_led_on);
}
#endif
