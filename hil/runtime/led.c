/* led.c - the board LED: STM32F4 GPIO, SiFive GPIO or Stellaris GPIO, or nothing.
 * HIL_LED_ACTIVE_LOW inverts the pin level. */
#include "hil.h"

#if !defined(HIL_LED_ACTIVE_LOW)
#define HIL_LED_ACTIVE_LOW 0
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

#if HIL_HAS_LED
static int hil_led_on;
#define LED_MASK (1u << HIL_LED_PIN)
static void led_write(int level);
#endif

#if defined(HIL_LED_STM32F4_GPIO)
/* GPIOx ports are 0x400 apart from GPIOA at 0x40020000; RCC_AHB1ENR bit n clocks port n. */
#define RCC_AHB1ENR REG32(0x40023830u)
#define GPIO_PORT_INDEX ((HIL_LED_BASE - 0x40020000u) / 0x400u)
#define GPIO_MODER REG32(HIL_LED_BASE + 0x00u)
#define GPIO_BSRR REG32(HIL_LED_BASE + 0x18u)

void hil_led_init(void)
{
    RCC_AHB1ENR |= 1u << GPIO_PORT_INDEX;
    (void)RCC_AHB1ENR;
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
/* Stellaris ports A-D at 0x40004000 + n*0x1000, E-G at 0x40024000 + (n-4)*0x1000;
 * SYSCTL_RCGC2 bit n clocks port n. GPIODATA is masked by address bits 9:2. */
#define SYSCTL_RCGC2 REG32(0x400FE108u)
#define GPIO_PORT_INDEX                                                              \
    (HIL_LED_BASE >= 0x40024000u ? 4u + (HIL_LED_BASE - 0x40024000u) / 0x1000u       \
                                 : (HIL_LED_BASE - 0x40004000u) / 0x1000u)
#define GPIO_DATA_PIN REG32(HIL_LED_BASE + (LED_MASK << 2))
#define GPIO_DIR REG32(HIL_LED_BASE + 0x400u)
#define GPIO_DEN REG32(HIL_LED_BASE + 0x51Cu)

void hil_led_init(void)
{
    SYSCTL_RCGC2 |= 1u << GPIO_PORT_INDEX;
    (void)SYSCTL_RCGC2;
    (void)SYSCTL_RCGC2;
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
