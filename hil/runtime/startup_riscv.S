/* startup_riscv.S - reset, trap entry and the fault-tolerant probe load for RV32 (M-mode).
 *
 * _start (section .text.init, placed first at the application start by the generated linker
 * script) sets gp, sp and mtvec, copies .data, zeroes .bss, then calls hil_runtime_init()
 * and main(). Every trap goes to hil_trap_entry, which saves the caller-saved registers and
 * calls hil_riscv_trap() (fault_riscv.c); if that returns, the trap returns with mret.
 */
#if defined(__riscv) && __riscv_xlen == 32

#if !defined(__clang__) && !defined(__riscv_zicsr)
    .option arch, +zicsr  /* binutils >= 2.38 wants it for csrw with plain rv32imac */
#endif

    .section .text.init, "ax", %progbits
    .global _start
    .type _start, %function
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, _estack
    la t0, hil_trap_entry
    csrw mtvec, t0
    csrw mie, zero

    la t0, _sidata
    la t1, _sdata
    la t2, _edata
1:  bgeu t1, t2, 2f
    lw t3, 0(t0)
    sw t3, 0(t1)
    addi t0, t0, 4
    addi t1, t1, 4
    j 1b
2:  la t0, _sbss
    la t1, _ebss
3:  bgeu t0, t1, 4f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 3b
4:  call hil_runtime_init
    call main
    tail hil_halt
    .size _start, . - _start

/* Frame (16 words): ra t0 t1 t2 a0..a7 t3..t6; hil_riscv_trap gets its address. */
    .section .text.hil_trap_entry, "ax", %progbits
    .balign 4
    .global hil_trap_entry
    .type hil_trap_entry, %function
hil_trap_entry:
    addi sp, sp, -64
    sw ra, 0(sp)
    sw t0, 4(sp)
    sw t1, 8(sp)
    sw t2, 12(sp)
    sw a0, 16(sp)
    sw a1, 20(sp)
    sw a2, 24(sp)
    sw a3, 28(sp)
    sw a4, 32(sp)
    sw a5, 36(sp)
    sw a6, 40(sp)
    sw a7, 44(sp)
    sw t3, 48(sp)
    sw t4, 52(sp)
    sw t5, 56(sp)
    sw t6, 60(sp)
    mv a0, sp
    call hil_riscv_trap
    lw ra, 0(sp)
    lw t0, 4(sp)
    lw t1, 8(sp)
    lw t2, 12(sp)
    lw a0, 16(sp)
    lw a1, 20(sp)
    lw a2, 24(sp)
    lw a3, 28(sp)
    lw a4, 32(sp)
    lw a5, 36(sp)
    lw a6, 40(sp)
    lw a7, 44(sp)
    lw t3, 48(sp)
    lw t4, 52(sp)
    lw t5, 56(sp)
    lw t6, 60(sp)
    addi sp, sp, 64
    mret
    .size hil_trap_entry, . - hil_trap_entry

/* int hil_probe_read32(uint32_t addr, uint32_t *value): the load at hil_probe_load may
 * fault; hil_riscv_trap then resumes at hil_probe_fail. */
    .section .text.hil_probe_read32, "ax", %progbits
    .global hil_probe_read32
    .global hil_probe_load
    .global hil_probe_fail
    .type hil_probe_read32, %function
hil_probe_read32:
hil_probe_load:
    lw a2, 0(a0)
    sw a2, 0(a1)
    li a0, 0
    ret
hil_probe_fail:
    li a0, -1
    ret
    .size hil_probe_read32, . - hil_probe_read32

#endif
