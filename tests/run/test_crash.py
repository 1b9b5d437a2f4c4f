"""FAULT lines and QEMU lockup dumps -> Crash, and PC -> function, file:line (real ELFs)."""

from __future__ import annotations

import pytest

from hil.crash import Symbolizer, parse_fault_line, parse_qemu_fatal

LOCKUP = """\
qemu-system-arm: -serial tcp:127.0.0.1:1,server=on,wait=on,nodelay=on: info: QEMU waiting
qemu: fatal: Lockup: can't escalate 3 to HardFault (current priority -1)

R00=00000000 R01=00000001 R02=00000002 R03=00000003
R04=00000000 R05=00000000 R06=00000000 R07=00000000
R08=00000000 R09=00000000 R10=00000000 R11=00000000
R12=00000000 R13=20000fe0 R14=fffffff9 R15=080002fa
XPSR=41000003 -Z-- A handler
s00=00000000 s01=00000000 d00=0000000000000000
FPSCR: 00000000
"""


@pytest.mark.parametrize(("line", "kind", "pc", "ra"), [
    pytest.param("FAULT BusFault CFSR=00008200 HFSR=00000000 MMFAR=00000000 BFAR=fffffff0 "
                 "PC=080007be LR=080007d3 XPSR=21000000", "BusFault", 0x080007BE, 0x080007D3,
                 id="cortex-m-busfault"),
    pytest.param("FAULT UsageFault CFSR=00010000 HFSR=00000000 MMFAR=00000000 BFAR=00000000 "
                 "PC=000007ba LR=000007cb XPSR=21000000\r", "UsageFault", 0x7BA, 0x7CB,
                 id="cortex-m-usagefault-crlf"),
    pytest.param("FAULT trap mcause=00000005 mepc=2001095e mtval=fffffff0 ra=2001096c", "trap",
                 0x2001095E, 0x2001096C, id="riscv-trap"),
])
def test_fault_lines(line, kind, pc, ra):
    crash = parse_fault_line(line)
    assert crash is not None
    assert (crash.kind, crash.pc, crash.return_address, crash.source) == (kind, pc, ra,
                                                                           "firmware")


@pytest.mark.parametrize("line", [
    pytest.param("FAULTY line", id="prefix-only"),
    pytest.param("echo FAULT BusFault PC=0", id="not-at-start"),
    pytest.param("FAULT BusFault PC=xyz", id="bad-hex"),
])
def test_not_fault_lines(line):
    assert parse_fault_line(line) is None


def test_qemu_lockup_dump():
    crash = parse_qemu_fatal(LOCKUP)
    assert crash is not None
    assert crash.kind == "lockup" and crash.source == "emulator"
    assert crash.pc == 0x080002FA
    assert crash.registers["R13"] == 0x20000FE0
    assert crash.registers["XPSR"] == 0x41000003
    assert "can't escalate" in crash.extra["message"]
    assert parse_qemu_fatal("qemu-system-arm: warning: nic has no peer\n") is None


@pytest.mark.parametrize("board", ["nucleo-f4", "hifive1-revb"])
def test_every_function_start_maps_to_itself(built, board):
    image = built(board)
    sym = Symbolizer(image.elf)
    assert sym._funcs, "the ELF has function symbols"
    names_at: dict[int, set[str]] = {}
    for start, _size, name in sym._funcs:
        names_at.setdefault(start, set()).add(name)  # weak aliases share an address
    for start, size, _name in sym._funcs[:50]:
        loc = sym.locate(start + min(2, size - 1))
        assert loc.function in names_at[start]
    main = next(f for f in sym._funcs if f[2] == "main")
    loc = sym.locate(main[0] | (1 if sym.is_arm else 0))  # Thumb: bit 0 set
    assert loc.function == "main" and loc.offset == 0
    assert loc.file and loc.file.endswith("main.c") and loc.line


def test_address_outside_code_has_no_function(built):
    loc = Symbolizer(built("nucleo-f4").elf).locate(0x20000000)
    assert loc.function is None
    assert "0x20000000" in str(loc)
