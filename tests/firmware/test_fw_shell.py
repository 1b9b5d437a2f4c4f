"""The shell example against its protocol (issue 3), on every board's QEMU, GCC and Clang."""

from __future__ import annotations

import random
import re
import zlib

import pytest
from elftools.elf.elffile import ELFFile
from fwsupport import targets
from intelhex import IntelHex

pytestmark = pytest.mark.slow

CORTEX_M_FAULT = re.compile(
    r"^FAULT (HardFault|MemManage|BusFault|UsageFault) CFSR=([0-9a-f]{8}) HFSR=([0-9a-f]{8}) "
    r"MMFAR=([0-9a-f]{8}) BFAR=([0-9a-f]{8}) PC=([0-9a-f]{8}) LR=([0-9a-f]{8}) "
    r"XPSR=([0-9a-f]{8})$"
)
RISCV_FAULT = re.compile(
    r"^FAULT trap mcause=([0-9a-f]{8}) mepc=([0-9a-f]{8}) mtval=([0-9a-f]{8}) ra=([0-9a-f]{8})$"
)


@pytest.fixture(params=targets())
def target(request, firmware):
    board_name, toolchain = request.param
    return firmware(board_name, "shell", toolchain)


@pytest.fixture
def shell(target, qemu):
    board, image = target
    console = qemu(board, image.hex)
    assert console.read_line() == f"hil-shell {board.name} 1.0.0"
    assert console.read_line() == "READY"
    return console


def test_version_names_board_app_and_toolchain(shell, target):
    board, _ = target
    out, status = shell.command("version")
    assert status == "OK"
    assert len(out) == 1
    m = re.fullmatch(r"board=(\S+) app=shell version=(\S+) toolchain=(gcc|clang) (\d+[\d.]*)",
                     out[0])
    assert m, out
    assert m.group(1) == board.name
    assert m.group(2) == "1.0.0"


def test_ping_echo_help(shell):
    assert shell.command("ping") == (["pong"], "OK")
    assert shell.command("echo hello world") == (["hello world"], "OK")
    assert shell.command("echo   spaced  out ") == (["  spaced  out "], "OK")
    assert shell.command("echo") == ([""], "OK")
    out, status = shell.command("help")
    assert status == "OK"
    names = {line.split()[0] for line in out}
    assert {"ping", "echo", "add", "crc32", "mem", "version", "help", "fault"} <= names


ADD_CASES = [
    ("1 2", "3"),
    ("-5 3", "-2"),
    ("2147483647 1", "-2147483648"),  # wraps
    ("-2147483648 -1", "2147483647"),
    ("0x10 0xffffffff", "15"),
    ("+7 -0", "7"),
]


def wrap_i32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def test_add_wraps_like_int32(shell):
    for args, expected in ADD_CASES:
        assert shell.command(f"add {args}") == ([expected], "OK"), args
    rng = random.Random(3)
    for _ in range(20):
        a, b = rng.randint(-(2**31), 2**31 - 1), rng.randint(-(2**31), 2**31 - 1)
        assert shell.command(f"add {a} {b}") == ([str(wrap_i32(a + b))], "OK"), (a, b)


@pytest.mark.parametrize(
    "line, reason",
    [
        pytest.param("add 1 x", "ERR bad number", id="non-number"),
        pytest.param("add 12a 1", "ERR bad number", id="trailing-junk"),
        pytest.param("add 2147483648 0", "ERR number out of range", id="too-big"),
        pytest.param("add 1", "ERR usage: add <a> <b>", id="missing-arg"),
        pytest.param("add 1 2 3", "ERR usage: add <a> <b>", id="extra-arg"),
        pytest.param("crc32 abc", "ERR odd-length hex", id="odd-length-hex"),
        pytest.param("crc32 0g", "ERR bad hex digit", id="bad-hex-digit"),
        pytest.param("crc32 " + "00" * 65, "ERR too many bytes", id="too-many-bytes"),
        pytest.param("crc32 " + "00" * 40 + " " + "00" * 25, "ERR too many bytes",
                     id="too-many-split-bytes"),
        pytest.param("mem", "ERR usage: mem <hex address>", id="mem-no-address"),
        pytest.param("mem xyz", "ERR bad address", id="mem-bad-address"),
        pytest.param("mem 123456789", "ERR address out of range", id="mem-too-big"),
        pytest.param("frobnicate", "ERR unknown command", id="unknown-command"),
        pytest.param("PING", "ERR unknown command", id="commands-are-case-sensitive"),
        pytest.param("ping extra", "ERR usage: ping", id="ping-with-argument"),
    ],
)
def test_malformed_input_is_an_error_and_the_shell_survives(shell, line, reason):
    assert shell.command(line) == ([], reason)
    assert shell.command("ping") == (["pong"], "OK")


def test_crc32_matches_zlib(shell):
    rng = random.Random(7)
    cases = [b"", b"123456789", bytes(range(64)), b"\x00", b"\xff" * 64]
    cases += [rng.randbytes(rng.randint(1, 64)) for _ in range(10)]
    for data in cases:
        out, status = shell.command(f"crc32 {data.hex()}")
        assert (out, status) == ([f"{zlib.crc32(data):08x}"], "OK"), data.hex()
    # bytes may be split across words and given in upper case
    assert shell.command("crc32 31 32 33 343536 3738 39") == (["cbf43926"], "OK")
    assert shell.command("crc32 DEADBEEF") == ([f"{zlib.crc32(bytes.fromhex('deadbeef')):08x}"],
                                               "OK")


def test_mem_reads_the_image(shell, target):
    board, image = target
    ih = IntelHex(str(image.hex))
    start = board.app_start
    for address in (start, start + 4, start + 8):
        expected = int.from_bytes(bytes(ih.tobinarray(start=address, size=4)), "little")
        assert shell.command(f"mem {address:x}") == ([f"{expected:08x}"], "OK")
        assert shell.command(f"mem 0x{address:08X}") == ([f"{expected:08x}"], "OK")
    # unaligned addresses read the aligned word that holds them
    expected = int.from_bytes(bytes(ih.tobinarray(start=start + 4, size=4)), "little")
    assert shell.command(f"mem {start + 6:x}") == ([f"{expected:08x}"], "OK")


def test_mem_of_unmapped_address_does_not_kill_the_shell(shell):
    out, status = shell.command("mem fffffff0")
    # QEMU's lm3s6965evb reads unmapped space as zero; the others fault and the probe recovers
    assert status == "ERR bus fault" or (status == "OK" and len(out) == 1), (out, status)
    assert shell.command("ping") == (["pong"], "OK")


@pytest.mark.parametrize(
    "eol", [pytest.param(b"\n", id="LF"), pytest.param(b"\r", id="CR"),
            pytest.param(b"\r\n", id="CRLF")]
)
def test_line_endings(shell, eol):
    for _ in range(3):
        assert shell.command("ping", eol=eol) == (["pong"], "OK")
    assert shell.command("add 2 3", eol=eol) == (["5"], "OK")


def test_empty_lines_get_no_reply(shell):
    shell.write(b"\n\r\n\r\r\n   \n\t\n")
    assert shell.command("echo after") == (["after"], "OK")


def test_no_echo_and_pipelined_commands(shell):
    shell.write(b"ping\r\necho a\nadd 1 1\r")
    assert [shell.read_line() for _ in range(6)] == ["pong", "OK", "a", "OK", "2", "OK"]


@pytest.mark.parametrize(
    "length", [pytest.param(161, id="one-over"), pytest.param(1000, id="far-over")]
)
def test_overlong_line_gives_one_error_then_recovers(shell, length):
    shell.write(b"echo " + b"x" * (length - 5) + b"\r\n")
    assert shell.read_line() == "ERR line too long"
    assert shell.command("ping") == (["pong"], "OK")  # no second ERR came first


def test_longest_line_fits(shell):
    text = "y" * (160 - 5)
    assert shell.command("echo " + text) == ([text], "OK")


def symbol_range(elf_path, name: str) -> tuple[int, int]:
    with open(elf_path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        (sym,) = symtab.get_symbol_by_name(name)
        start = sym["st_value"] & ~1  # Thumb bit
        return start, start + sym["st_size"]


def test_fault_reports_pc_inside_the_faulting_function(shell, target):
    board, image = target
    shell.write(b"fault\n")
    line = shell.expect(r"^FAULT", timeout=10).string
    start, end = symbol_range(image.elf, "shell_fault")
    assert end > start
    if board.arch == "arm":
        m = CORTEX_M_FAULT.match(line)
        assert m, line
        pc = int(m.group(6), 16)
        if m.group(1) == "BusFault":
            assert m.group(5) == "fffffff0"  # BFAR: the address that was read
            assert int(m.group(2), 16) & 0x8200 == 0x8200  # PRECISERR | BFARVALID
    else:
        m = RISCV_FAULT.match(line)
        assert m, line
        pc = int(m.group(2), 16)
        assert int(m.group(1), 16) in (2, 5, 7)  # illegal instruction / access faults
    assert start <= pc < end, f"{line}: shell_fault is {start:#x}..{end:#x}"
    # halted: no further output, and commands get no reply
    shell.write(b"ping\n")
    with pytest.raises(TimeoutError):
        shell.read_line(timeout=0.5)


def test_shell_fits_in_16k_on_cortex_m(target):
    board, image = target
    size = image.bin.stat().st_size
    if board.arch == "arm":
        assert size < 16 * 1024
    assert size > 0
