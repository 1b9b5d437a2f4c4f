/* probe_cortexm.S - int hil_probe_read32(uint32_t addr, uint32_t *value) for Cortex-M.
 * The load at hil_probe_load may fault; the fault handler then resumes at hil_probe_fail. */
#if defined(__arm__) && defined(__thumb2__)
    .syntax unified
    .thumb
    .section .text.hil_probe_read32, "ax", %progbits
    .global hil_probe_read32
    .global hil_probe_load
    .global hil_probe_fail
    .type hil_probe_read32, %function
    .thumb_func
hil_probe_read32:
    .thumb_func
hil_probe_load:
    ldr.w r2, [r0]
    str r2, [r1]
    movs r0, #0
    bx lr
    .thumb_func
hil_probe_fail:
    movs r0, #0
    subs r0, r0, #1
    bx lr
    .size hil_probe_read32, . - hil_probe_read32
#endif
