"""Fixtures for the firmware tests: build an example, boot it in plain QEMU, talk over TCP.

The QEMU and console helpers here are deliberately small; hil's executor will replace them.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hil.boards import Board, load_board

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "firmware_examples"
BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]
TOOLCHAINS = ["gcc", "clang"]
LOCKUP = re.compile(r"Lockup|fatal:", re.I)


def build_example(board: Board, app: str, toolchain: str, out: Path):
    """Build firmware_examples/<app>; returns an object with .elf/.hex/.bin paths."""
    try:
        from hil.build import build
    except ImportError:  # hil build not there yet: compile by hand
        from handbuild import hand_build

        return hand_build(board, EXAMPLES / app, toolchain, out)
    return build(board, EXAMPLES / app, toolchain=toolchain, out=out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.transcript: list[str] = []

    def command_line(self, tcp_port: int) -> list[str]:
        assert self.board.qemu is not None
        q = self.board.qemu
        serials = ["-serial", "null"] * self.board.console.qemu_serial
        tcp = f"tcp:127.0.0.1:{tcp_port},server=on,wait=on,nodelay=on"
        return [q.binary, "-M", q.machine, *q.args, "-display", "none", "-monitor", "none",
                "-nic", "none", *serials, "-serial", tcp,
                "-device", f"loader,file={self.hex_path}"]

    def __enter__(self) -> QemuConsole:
        for _attempt in range(3):  # the free port may be taken between probe and bind
            tcp_port = _free_port()
            self.proc = subprocess.Popen(self.command_line(tcp_port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.port = serial.serial_for_url(f"socket://127.0.0.1:{tcp_port}",
                                                      timeout=0.05)
                except serial.SerialException:
                    time.sleep(0.02)
                    continue
                self.port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return self
            self._kill()
        raise RuntimeError(f"QEMU did not open its console: {self._stderr()}")

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

    def _stderr(self) -> str:
        if self.proc is None or self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    # ------------------------------------------------------------------ console I/O

    def read_line(self, timeout: float | None = None) -> str:
        """Next line without its CR/LF; raises TimeoutError or RuntimeError (QEMU died)."""
        assert self.port is not None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no line within the timeout; got {self._buf!r}; "
                                   f"transcript {self.transcript[-10:]}")
            if self.proc is not None and self.proc.poll() is not None:
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


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory):
    """firmware(board_name, app, toolchain) -> (Board, built image); built once per session."""
    cache: dict[tuple[str, str, str], tuple[Board, object]] = {}

    def get(board_name: str, app: str, toolchain: str):
        key = (board_name, app, toolchain)
        if key not in cache:
            board = load_board(board_name)
            require_tools(board, toolchain)
            out = tmp_path_factory.mktemp(f"{board_name}-{app}-{toolchain}")
            cache[key] = (board, build_example(board, app, toolchain, out))
        return cache[key]

    return get


@pytest.fixture
def qemu() -> Iterator:
    """qemu(board, hex_path) -> a started QemuConsole; every one is killed at teardown."""
    started: list[QemuConsole] = []

    def start(board: Board, hex_path: Path, timeout: float = 10.0) -> QemuConsole:
        console = QemuConsole(board, hex_path, timeout)
        started.append(console)
        return console.__enter__()

    yield start
    for console in started:
        console.__exit__(None, None, None)


def matrix() -> list:
    """pytest params for every board x toolchain."""
    return [pytest.param(b, t, id=f"{b}-{t}") for b in BOARDS for t in TOOLCHAINS]
