"""The rack-host side of virtual boards: keep each one "powered" for runners on other hosts.

A real board on a rack host has a USB-serial adapter that outlives target resets and a CPU
that runs whatever its flash holds. ``VirtualBoardHost`` gives a virtual rack entry
(``hilsim:`` probe, ``emulator: qemu``) the same two things, so ``pyocd server`` and
``ser2net`` can serve it exactly like hardware:

- a console endpoint: a pseudo-terminal whose slave is symlinked at a stable path
  (``<state dir>/consoles/<rack id>`` by default) for ``ser2net`` to serve over RFC 2217;
  the pty lives as long as the host, whatever happens to the CPU;
- the CPU: the board's QEMU machine booted from the simulated flash contents
  (``hil.flash.sim.store``), restarted when the simulated probe resets the core or the flash
  changes, paused (SIGSTOP) while the debugger holds the core halted, resumed (SIGCONT) when
  it lets go. The probe publishes those events in ``<simflash>/<name>.run``
  (``hil.flash.sim.runstate``), also from another process such as ``pyocd server``;
- its power (the ``virtual`` power driver, ``<simflash>/<name>.power``): off stops QEMU and
  nothing boots until it is on again; on boots a fresh QEMU from the flash. The console pty
  is not switched: a USB-serial adapter outlives its target's power.

A relay thread per board copies bytes between QEMU's TCP console and the pty master. Output
while nobody has the console open is dropped, as a UART's would be: a runner opens the
console before it resets the board (``HardwareExecutor`` does).

``RackHost`` runs several boards: a context manager whose ``serve(stop)`` polls every board
until ``stop`` is set. No QEMU outlives it (``stop()`` kills them; each QEMU also dies with
the thread that spawned it, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import subprocess
import termios
import threading
import tty
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from hil.boards import Board, load_board
from hil.emulator.qemu import QemuProcess
from hil.errors import ConfigError, EmulatorError
from hil.paths import state_dir
from hil.rack.inventory import Rack, RackEntry

LOG = logging.getLogger(__name__)
POLL = 0.05  # seconds between looks at the probe's run state


def consoles_dir() -> Path:
    """Default directory of the console symlinks: ``<state dir>/consoles``."""
    return state_dir() / "consoles"


def host_entries(rack: Rack, ids: Sequence[str] = ()) -> list[RackEntry]:
    """The virtual entries to host: ``ids`` (each must be virtual), else every virtual one."""
    if ids:
        out = []
        for rack_id in ids:
            entry = rack.entry(rack_id)
            if entry is None:
                raise ConfigError(f"no rack entry '{rack_id}' in {rack.path or 'the rack'}",
                                  hint="'hil rack status' lists the entries")
            out.append(entry)
    else:
        out = [e for e in rack.entries if e.is_virtual]
    for entry in out:
        if not entry.probe.simulated:
            raise ConfigError(f"rack entry '{entry.id}' is not a virtual board (it needs a "
                              f"hilsim: probe and emulator: qemu); a real board needs no host "
                              "process: serve its probe with pyocd server and its console "
                              "with ser2net", path=rack.path)
    if not out:
        raise ConfigError(f"{rack.path or 'the rack'} has no virtual boards to host",
                          hint="add an entry with probe hilsim:<name> and emulator: qemu")
    return out


class VirtualBoardHost:
    """One virtual board kept powered: its console pty and its QEMU; see the module doc."""

    def __init__(self, entry: RackEntry, *, console_path: Path, work_dir: Path,
                 board: Board | None = None) -> None:
        self.entry = entry
        self.board = board or load_board(entry.board)
        if self.board.qemu is None:
            raise ConfigError(f"board {self.board.name} of rack entry {entry.id} has no qemu "
                              "section: it cannot be a virtual board")
        self.sim_name = entry.probe.address
        self.console_path = Path(console_path)
        self.work_dir = Path(work_dir)
        self.boots = 0  # QEMU starts so far (for tests and the log)
        self.qemu: QemuProcess | None = None
        self._master: int | None = None
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._seen: tuple[int, int | None] | None = None  # (resets, flash generation)
        self._power_seen: int | None = None  # power switches followed so far
        self._need_boot = False
        self._stop = threading.Event()
        self._relay: threading.Thread | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running QEMU process, if any."""
        return None if self.qemu is None else self.qemu.proc

    # ------------------------------------------------------------------ console pty
    def start(self) -> None:
        """Create the console pty and its symlink and start the relay (QEMU comes in poll)."""
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        slave_name = os.ttyname(slave)
        os.close(slave)  # ser2net opens it when a client connects
        os.set_blocking(master, False)
        self._master = master
        self.console_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.console_path.with_name(f".{self.console_path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(slave_name)
        os.replace(tmp, self.console_path)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._relay = threading.Thread(target=self._relay_loop, daemon=True,
                                       name=f"console relay {self.entry.id}")
        self._relay.start()
        LOG.info("%s: console %s -> %s", self.entry.id, self.console_path, slave_name)

    def _listener(self) -> bool:
        """Whether something (ser2net) has the console's slave side open."""
        assert self._master is not None
        p = select.poll()
        p.register(self._master, select.POLLIN)
        return not any(ev & select.POLLHUP for _fd, ev in p.poll(0))

    def _relay_loop(self) -> None:
        master = self._master
        assert master is not None
        while not self._stop.is_set():
            with self._sock_lock:
                sock = self._sock
            listening = self._listener()
            readers: list[socket.socket | int] = [sock] if sock is not None else []
            if listening:
                readers.append(master)
            if not readers:
                self._stop.wait(0.1)
                continue
            try:
                ready, _, _ = select.select(readers, [], [], 0.1)
            except (OSError, ValueError):  # a socket closed under us by a restart
                continue
            if sock is not None and sock in ready:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:  # QEMU went away; poll() notices and reports it
                    with self._sock_lock:
                        if self._sock is sock:
                            self._sock = None
                    sock.close()
                elif listening:
                    self._to_console(data)
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the listener closed the console just now
                    data = b""
                if data and sock is not None:
                    try:
                        sock.sendall(data)
                    except OSError:
                        pass

    def _to_console(self, data: bytes) -> None:
        assert self._master is not None
        try:
            os.write(self._master, data)
        except OSError as exc:  # full (nobody reads) or closed: a UART drops bytes too
            if exc.errno not in (errno.EAGAIN, errno.EIO):
                LOG.warning("%s: console write failed: %s", self.entry.id, exc)

    # ------------------------------------------------------------------ the CPU
    def _flash_generation(self) -> int | None:
        from hil.flash.sim.store import SimFlashStore

        meta = SimFlashStore.read_metadata(self.sim_name)
        return None if meta is None else int(meta.get("generation", 0))

    def poll(self) -> None:
        """Follow the simulated probe: boot, restart, pause or resume QEMU as the core does."""
        from hil.flash.sim.runstate import read_run_state
        from hil.flash.sim.store import sim_dir

        state = read_run_state(sim_dir(), self.sim_name)
        generation = self._flash_generation()
        seen = (state.resets, generation)
        if seen != self._seen:
            if self._seen is not None:
                LOG.info("%s: %s: restarting from flash", self.entry.id,
                         "reset" if state.resets != self._seen[0] else "flash changed")
            self._seen = seen
            self._kill()
            self._need_boot = generation is not None
        if not self._follow_power(generation):
            return
        ended = self.qemu.exit_status() if self.qemu is not None else None
        if ended is not None:
            LOG.warning("%s: QEMU exited (%s); waiting for the next reset", self.entry.id,
                        ended.how)
            self._kill()
        if not state.running:
            if self.qemu is not None:
                self.qemu.pause()
            return
        if self.qemu is not None:
            self.qemu.resume()
        if self._need_boot:
            self._need_boot = False
            self._boot()

    def _follow_power(self, generation: int | None) -> bool:
        """Apply the board's power state; whether it is on."""
        from hil.flash.sim.power import read_power_state
        from hil.flash.sim.store import sim_dir

        power = read_power_state(sim_dir(), self.sim_name)
        if power.switches != self._power_seen:
            if self._power_seen is not None:
                LOG.info("%s: power %s", self.entry.id,
                         "on: booting from flash" if power.on else "off: QEMU stopped")
                self._kill(power_cut=True)
                self._need_boot = generation is not None
            self._power_seen = power.switches
        if not power.on:
            self._kill(power_cut=True)
        return power.on

    def _boot(self) -> None:
        from hil.flash.sim.store import SimFlashStore

        hex_path = SimFlashStore.open(self.sim_name).write_hex(self.work_dir / "flash.hex")
        qemu = QemuProcess(self.board, hex_path, stderr_path=self.work_dir / "qemu.stderr")
        self.qemu = qemu
        try:
            qemu.start()
            sock = qemu.connect()  # the guest starts now (QEMU waits for this connection)
        except BaseException:
            self._kill()
            raise
        with self._sock_lock:
            self._sock = sock
        self.boots += 1
        LOG.info("%s: QEMU pid %d booted from flash (boot %d)", self.entry.id, qemu.pid,
                 self.boots)

    def _kill(self, *, power_cut: bool = False) -> None:
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self.qemu is not None:
            self.qemu.stop(power_cut=power_cut)
            self.qemu = None

    def stop(self) -> None:
        """Kill QEMU, stop the relay, close the pty and remove the symlink."""
        self._stop.set()
        self._kill()
        if self._relay is not None:
            self._relay.join(timeout=2.0)
            self._relay = None
        if self._master is not None:
            os.close(self._master)
            self._master = None
        try:
            if self.console_path.is_symlink():
                self.console_path.unlink()
        except OSError:
            pass


class RackHost:
    """Several virtual boards served from this host; see the module doc."""

    def __init__(self, entries: Sequence[RackEntry], *, console_dir: Path | None = None,
                 work_dir: Path | None = None) -> None:
        console_dir = Path(console_dir) if console_dir else consoles_dir()
        work_dir = Path(work_dir) if work_dir else state_dir() / "rack-host"
        self.boards = [VirtualBoardHost(e, console_path=console_dir / e.id,
                                        work_dir=work_dir / e.id) for e in entries]

    def __enter__(self) -> Self:
        try:
            for board in self.boards:
                board.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(self, stop: threading.Event) -> None:
        """Poll every board until ``stop`` is set (call from the main thread: QEMU dies with
        the thread that spawned it). A board whose QEMU fails to boot is logged, not fatal."""
        while not stop.is_set():
            for board in self.boards:
                try:
                    board.poll()
                except EmulatorError as exc:
                    LOG.error("%s: %s", board.entry.id, exc)
            stop.wait(POLL)

    def stop(self) -> None:
        for board in self.boards:
            board.stop()
