"""Helpers for the firmware tests: build an example, boot it in QEMU, talk over its console.

The firmware tests check what the firmware itself does (the shell protocol, app defines,
every example on every board and toolchain). QEMU is hil's ``QemuProcess``; the console is
read here over the bare socket (no ``hil.console``): hil's executors and console are tested
in tests/run.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path
from typing import Self

import pytest

from hil.boards import Board
from hil.build import BuildResult, build
from hil.emulator.qemu import QemuProcess

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "firmware_examples"
BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]
TOOLCHAINS = ["gcc", "clang"]


def build_example(board: Board, app: str, toolchain: str, out: Path) -> BuildResult:
    """Build firmware_examples/<app> with hil's build (paths in .elf, .hex, .bin)."""
    return build(board, EXAMPLES / app, toolchain=toolchain, out=out)


class QemuConsole:
    """A QEMU process (hil's ``QemuProcess``) running one image, read over its console socket.

    Context manager: entering starts QEMU and connects; leaving always stops QEMU.
    """

    def __init__(self, board: Board, hex_path: Path, timeout: float = 10.0, *,
                 work_dir: Path) -> None:
        self.board = board
        self.hex_path = hex_path
        self.timeout = timeout
        self.qemu = QemuProcess(board, hex_path, stderr_path=work_dir / "qemu.stderr")
        self.sock: socket.socket | None = None
        self._buf = b""
        self.transcript: list[str] = []

    def __enter__(self) -> Self:
        self.qemu.start()
        try:
            self.sock = self.qemu.connect()
        except BaseException:
            self.qemu.stop()
            raise
        self.sock.settimeout(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.qemu.stop()

    def _stderr(self) -> str:
        return self.qemu.stderr_text()

    # ------------------------------------------------------------------ console I/O

    def read_line(self, timeout: float | None = None) -> str:
        """Next line without its CR/LF; raises TimeoutError or RuntimeError (QEMU died)."""
        assert self.sock is not None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no line within the timeout; got {self._buf!r}; "
                                   f"transcript {self.transcript[-10:]}; "
                                   f"qemu stderr {self._stderr()!r}")
            ended = self.qemu.exit_status()
            if ended is not None:
                # e.g. "qemu: fatal: Lockup: can't escalate ... to HardFault" on a bad image
                raise RuntimeError(f"QEMU exited ({ended.how}): {self._stderr()}")
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not data:  # QEMU closed the console: it is on its way out
                self.qemu.wait(0.05)
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode(errors="replace").rstrip("\r")
        self.transcript.append(text)
        return text

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """Read lines until one matches pattern (re.search)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            m = re.search(pattern, line)
            if m:
                return m

    def write(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def command(self, line: str, eol: bytes = b"\n") -> tuple[list[str], str]:
        """Send one command line; return (output lines, final 'OK' or 'ERR ...' line)."""
        self.write(line.encode() + eol)
        out = []
        while True:
            reply = self.read_line()
            if reply == "OK" or reply.startswith("ERR"):
                return out, reply
            out.append(reply)


def require_tools(board: Board, toolchain: str) -> None:
    tools = ["clang", "ld.lld"] if toolchain == "clang" else []
    tools.append("arm-none-eabi-gcc" if board.arch == "arm" else "riscv64-unknown-elf-gcc")
    assert board.qemu is not None
    tools.append(board.qemu.binary)
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")


def matrix() -> list:
    """pytest params for every board x toolchain."""
    return [pytest.param(b, t, id=f"{b}-{t}") for b in BOARDS for t in TOOLCHAINS]


def targets() -> list:
    """Fixture params: one (board, toolchain) tuple per board x toolchain."""
    return [pytest.param((b, t), id=f"{b}-{t}") for b in BOARDS for t in TOOLCHAINS]
