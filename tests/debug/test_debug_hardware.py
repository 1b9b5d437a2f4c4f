"""``hil debug`` on a real (non-virtual) rack entry: leased, flashed through its probe, then
served by a ``pyocd gdbserver`` child. The probe is a ``pyocd server`` on loopback sharing a
simulated probe (``remote:127.0.0.1:PORT``, as a rack host serves a real ST-LINK); the
console is a loopback TCP port that accepts connections and stays silent."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from debugsupport import HilProcess, held_leases, printed_gdb
from pyocdserver import pyocd_server

pytestmark = pytest.mark.slow

@contextmanager
def silent_console() -> Iterator[int]:
    """A loopback port that accepts every connection and sends nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def hardware_rack(run: HilProcess, tmp_path: Path) -> Iterator[None]:
    """``run``'s rack file names one non-virtual nucleo-f4: its probe a ``pyocd server`` on
    loopback sharing a simulated probe, its console a silent loopback port."""
    env = dict(run.env, HIL_SIM_BOARDS="hw-sim=nucleo-f4")
    with pyocd_server("hilsim:hw-sim", tmp_path / "server.log", env) as probe_port, \
            silent_console() as console_port:
        run.rack.write_text(
            "schema: 1\nboards:\n  - {id: f4-hw, board: nucleo-f4, "
            f"probe: 'remote:127.0.0.1:{probe_port}', "
            f"console: 'socket://127.0.0.1:{console_port}'}}\n")
        yield


def test_a_rack_board_is_served_by_pyocd_gdbserver_under_its_lease(
        tmp_path: Path, shared_cache: Path) -> None:
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    with hardware_rack(run, tmp_path):
        run.start("debug", "--board", "nucleo-f4", "shell")
        try:
            run.gdb_address()
            err = run.stderr()
            assert "running on hardware" in err and "pyocd gdbserver on 127.0.0.1:" in err
            assert held_leases(run.state) == ["f4-hw"]
            gdb = printed_gdb(err, "info registers pc", "print commands[0].name")
            assert gdb.returncode == 0, gdb.stderr
            assert "<Reset_Handler>" in gdb.stdout  # the printed 'monitor reset halt'
            assert '"ping"' in gdb.stdout  # the image hil flashed through the probe
            assert run.interrupt() == 0, run.stderr()
        finally:
            run.kill()
    assert held_leases(run.state) == []
    assert run.leftovers() == []


def test_debug_on_failure_on_a_rack_board_starts_pyocd_gdbserver(
        tmp_path: Path, shared_cache: Path) -> None:
    """The silent console times the test out; the board is offered to gdb where it is."""
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    with hardware_rack(run, tmp_path):
        run.start("test", "--board", "nucleo-f4", "blinky", "--expect", "^never printed$",
                  "--timeout", "2", "--debug-on-failure", "--debug-wait", "600")
        try:
            run.gdb_address()
            err = run.stderr()
            assert "--debug-on-failure: nucleo-f4 timed out" in err
            assert "pyocd gdbserver on 127.0.0.1:" in err
            assert "monitor reset halt" not in err  # halted where it was, not reset
            gdb = printed_gdb(err, "info registers pc")
            assert gdb.returncode == 0, gdb.stderr
            assert re.search(r"^pc\s+0x[0-9a-f]+", gdb.stdout, re.MULTILINE), gdb.stdout
            assert run.interrupt() == 130, run.stderr()
        finally:
            run.kill()
    assert held_leases(run.state) == []
    assert run.leftovers() == []
