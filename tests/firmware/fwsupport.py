"""Helpers for the firmware tests: build an example, boot it in QEMU, talk over TCP.

The firmware tests check what the firmware itself does (the shell protocol, app defines,
every example on every board and toolchain); hil's executors and console are tested in
tests/run.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
import typing
from pathlib import Path

import pytest
import serial

from hil.boards import Board
from hil.build import BuildResult, build

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "firmware_examples"
BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]
TOOLCHAINS = ["gcc", "clang"]


def build_example(board: Board, app: str, toolchain: str, out: Path) -> BuildResult:
    """Build firmware_examples/<app> with hil's build (paths in .elf, .hex, .bin)."""
    return build(board, EXAMPLES / app, toolchain=toolchain, out=out)


class QemuConsole:
    """A QEMU process running one image, with its console on a TCP socket.

    Context manager: entering starts QEMU and connects; leaving always kills QEMU.
    """

    def __init__(self, board: Board, hex_path: Path, timeout: float = 10.0) -> None:
        self.board = board
        self.hex_path = hex_path
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: serial.SerialBase | None = None
        self._buf = b""
        self._errfile: typing.IO[bytes] | None = None
        self.transcript: list[str] = []

    def command_line(self, listen_fd: int) -> list[str]:
        assert self.board.qemu is not None
        q = self.board.qemu
        serials = ["-serial", "null"] * self.board.console.qemu_serial
        chardev = f"socket,id=console,fd={listen_fd},server=on,wait=on,nodelay=on"
        return [q.binary, "-M", q.machine, *q.args, "-display", "none", "-monitor", "none",
                "-nic", "none", "-chardev", chardev, *serials, "-serial", "chardev:console",
                "-device", f"loader,file={self.hex_path}"]

    def __enter__(self) -> QemuConsole:
        # The test binds and listens, then hands the listening socket to QEMU: no window in
        # which another process (a parallel test's QEMU) can take the port, and the connect
        # below cannot reach anything but this QEMU.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            address = listener.getsockname()
            self._errfile = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.command_line(listener.fileno()),
                                         pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._errfile)
            try:
                port = serial.serial_for_url(f"socket://{address[0]}:{address[1]}",
                                             timeout=0.05)
            except serial.SerialException:
                self._kill()
                raise
        port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill()

    def _kill(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        if self._errfile is not None:
            self._errfile.close()
            self._errfile = None

    def _stderr(self) -> str:
        if self._errfile is None:
            return ""
        self._errfile.seek(0)
        return self._errfile.read().decode(errors="replace")

    # ------------------------------------------------------------------ console I/O

    def read_line(self, timeout: float | None = None) -> str:
        """Next line without its CR/LF; raises TimeoutError or RuntimeError (QEMU died)."""
        assert self.port is not None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no line within the timeout; got {self._buf!r}; "
                                   f"transcript {self.transcript[-10:]}; "
                                   f"qemu stderr {self._stderr()!r}")
            if self.proc is not None and self.proc.poll() is not None:
                # e.g. "qemu: fatal: Lockup: can't escalate ... to HardFault" on a bad image
                raise RuntimeError(f"QEMU exited ({self.proc.returncode}): {self._stderr()}")
            self._buf += self.port.read(4096)
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
        assert self.port is not None
        self.port.write(data)

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
