"""QemuProcess against real QEMU: a console socket bound by hil, no lost boot output, clear
failures, pause and stop."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from hil.boards import load_board
from hil.emulator.qemu import QemuProcess
from hil.errors import EmulatorError

pytestmark = pytest.mark.slow


def _read_until(sock: socket.socket, marker: bytes, within: float = 30.0) -> bytes:
    sock.settimeout(0.1)
    got = b""
    deadline = time.monotonic() + within
    while marker not in got and time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        if not data:
            break
        got += data
    return got


def _listening_inodes() -> set[str]:
    """Socket inodes in LISTEN state on IPv4 loopback (from /proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int | str) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:["):-1])
    return out


def _reaches_state(pid: int | None, state: bytes, within: float = 10.0) -> bool:
    """Whether process ``pid`` is seen in ``state`` (polled: never a timing assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            if fh.read().rsplit(b")", 1)[1].split()[0] == state:
                return True
        time.sleep(0.01)
    return False


def test_qemu_holds_the_listening_socket_and_hil_does_not(built, tmp_path: Path):
    image = built("nucleo-f4")
    with QemuProcess(load_board("nucleo-f4"), image.hex,
                     stderr_path=tmp_path / "qemu.stderr") as qemu:
        assert qemu.pid is not None and qemu.address is not None
        assert not any("tcp:" in arg for arg in qemu.command)  # no port for QEMU to bind
        listening = _listening_inodes()
        assert _socket_inodes(qemu.pid) & listening, "QEMU holds no listening socket"
        assert not _socket_inodes("self") & listening, "hil kept a copy of the listener"


def test_boot_output_waits_for_the_first_client(built, tmp_path: Path):
    """wait=on: QEMU holds the guest until hil connects, however late that is."""
    image = built("nucleo-f4")
    with QemuProcess(load_board("nucleo-f4"), image.hex,
                     stderr_path=tmp_path / "qemu.stderr") as qemu:
        time.sleep(0.5)  # a slow client: the banner must still be the first thing it reads
        with qemu.connect() as sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            got = _read_until(sock, b"READY")
    assert got.startswith(b"hil-shell nucleo-f4 "), got
    assert b"READY" in got


def test_many_at_once_each_get_their_own_console(built, tmp_path: Path):
    boards = ["nucleo-f4", "lm3s6965evb", "nucleo-f4", "lm3s6965evb"]
    started = [QemuProcess(load_board(b), built(b).hex, stderr_path=tmp_path / f"{i}.stderr")
               for i, b in enumerate(boards)]
    try:
        for qemu in started:
            qemu.start()
        assert len({q.address for q in started}) == len(started)
        for board, qemu in zip(boards, started, strict=True):
            with qemu.connect() as sock:
                assert f"hil-shell {board} ".encode() in _read_until(sock, b"READY")
    finally:
        for qemu in started:
            qemu.stop()
    assert all(q.poll() is not None for q in started)


def test_a_qemu_that_failed_to_start_is_a_clear_error(built, tmp_path: Path):
    image = built("nucleo-f4")
    qemu = QemuProcess(load_board("nucleo-f4"), image.hex, stderr_path=tmp_path / "qemu.stderr",
                       extra_args=("-no-such-option",))
    with qemu:
        assert qemu.wait(30) is not None
        with pytest.raises(EmulatorError) as err:
            qemu.connect()
        ended = qemu.exit_status()
    assert "-no-such-option: invalid option" in str(err.value)
    assert "exit status 1" in str(err.value)
    assert ended is not None and ended.code == 1 and ended.crash is None
    assert "invalid option" in ended.stderr_tail


def test_stop_ends_a_paused_qemu(built, tmp_path: Path):
    image = built("nucleo-f4")
    with QemuProcess(load_board("nucleo-f4"), image.hex,
                     stderr_path=tmp_path / "qemu.stderr") as qemu, qemu.connect() as sock:
        _read_until(sock, b"READY")
        qemu.pause()
        assert qemu.paused
        assert _reaches_state(qemu.pid, b"T")  # stopped (SIGSTOP is delivered async)
        qemu.stop()
        assert qemu.poll() is not None
        assert not qemu.paused
        qemu.stop()  # idempotent


def test_missing_binary_is_an_emulator_error(tmp_path: Path):
    from dataclasses import replace

    board = load_board("nucleo-f4")
    assert board.qemu is not None
    board = replace(board, qemu=replace(board.qemu, binary="qemu-system-nonesuch"))
    with pytest.raises(EmulatorError, match="qemu-system-nonesuch not found on PATH"):
        QemuProcess(board, tmp_path / "x.hex", stderr_path=tmp_path / "qemu.stderr").start()


def test_a_board_without_qemu_cannot_have_one(tmp_path: Path):
    from dataclasses import replace

    from hil.errors import ConfigError

    board = replace(load_board("nucleo-f4"), qemu=None)
    with pytest.raises(ConfigError, match="has no qemu section"):
        QemuProcess(board, tmp_path / "x.hex", stderr_path=tmp_path / "qemu.stderr")
