"""A ``hil debug`` / ``hil test --debug-on-failure`` process under test, and gdb in batch mode.

Each run gets its own state, build and rack directories and a marker in its environment;
every process it starts (QEMU, pyocd gdbserver, pytest) inherits the marker, so a /proc scan
finds whatever it left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from procscan import processes_marked

HIL = str(Path(sys.executable).parent / "hil")
START_S = 180.0  # generous: a build and a QEMU start on a loaded 2-core machine
GDB_S = 120.0  # gdb-multiarch's whole batch run
END_S = 30.0  # hil's cleanup after SIGINT
GDB = shutil.which("gdb-multiarch")
TARGET = re.compile(r"-ex 'target remote (127\.0\.0\.1:\d+)'")


def need_gdb() -> str:
    if GDB is None:  # pragma: no cover - gdb-multiarch is in the Makefile's packages
        pytest.skip("gdb-multiarch is not installed (make installs it)")
    return GDB


class HilProcess:
    """One ``hil`` invocation with its private directories; stdout and stderr to files."""

    def __init__(self, tmp_path: Path, rack: str = "schema: 1\nboards: []\n",
                 cache: Path | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.rack = tmp_path / "rack.yaml"
        self.rack.write_text(rack)
        self.marker = uuid.uuid4().hex
        self.env = dict(os.environ, HIL_STATE_DIR=str(self.state),
                        HIL_BUILD_DIR=str(tmp_path / "build"), HIL_RACK=str(self.rack),
                        HIL_DEBUG_TEST_MARKER=self.marker, HIL_LEASE_WAIT="60")
        if cache is not None:
            self.env["HIL_CACHE_DIR"] = str(cache)
        self.env.pop("HIL_LEASE", None)
        self.out = tmp_path / "hil.stdout"
        self.err = tmp_path / "hil.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pty_master: int | None = None

    def start(self, *args: str, terminal: bool = False) -> None:
        """Start ``hil args``; with ``terminal`` its stdin is a pseudo-terminal (``type()``
        writes to it) and it leads its own process group (``ctrl_c()`` signals that group,
        as a terminal's Ctrl-C does)."""
        stdin: int = subprocess.DEVNULL
        if terminal:
            import pty

            self.pty_master, stdin = pty.openpty()
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([HIL, *args], env=self.env, stdin=stdin,
                                         stdout=out, stderr=err, start_new_session=terminal)
        if terminal:
            os.close(stdin)

    def type(self, text: str) -> None:
        os.write(self.pty_master, text.encode())

    def ctrl_c(self) -> int:
        """SIGINT to hil's process group (hil and its pytest, not QEMU's own session)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.wait()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, pattern: re.Pattern[str], timeout: float = START_S) -> re.Match[str]:
        """The first match of ``pattern`` in hil's stderr (fails if hil ends first)."""
        return self._wait(self.stderr, pattern, timeout)

    def wait_for_output(self, pattern: re.Pattern[str],
                        timeout: float = START_S) -> re.Match[str]:
        """The same in hil's stdout (the board's console in ``hil debug``)."""
        return self._wait(self.stdout, pattern, timeout)

    def _wait(self, read, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(read())
            if m:
                return m
            if self.proc.poll() is not None:
                pytest.fail(f"hil exited ({self.proc.returncode}) before printing "
                            f"{pattern.pattern}:\n{self.stderr()[-4000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {pattern.pattern} within {timeout:g} s:\n"
                            f"{self.stderr()[-4000:]}")
            time.sleep(0.1)

    def gdb_address(self) -> str:
        return self.wait_for(TARGET).group(1)

    def interrupt(self) -> int:
        """SIGINT to hil alone (Ctrl-C); its exit status (bounded wait)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self, timeout: float = END_S) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"hil did not end within {timeout:g} s:\n{self.stderr()[-4000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.pty_master is not None:
            os.close(self.pty_master)
            self.pty_master = None

    def leftovers(self, bound: float = 10.0) -> list[str]:
        """Live processes carrying this run's marker, after waiting up to ``bound`` s."""
        deadline = time.monotonic() + bound
        while True:
            found = processes_marked("HIL_DEBUG_TEST_MARKER", self.marker)
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def gdb_batch(elf: Path | None, address: str, *commands: str,
              arch: str | None = None) -> subprocess.CompletedProcess[str]:
    """gdb-multiarch in batch mode: load ``elf``, connect to ``address``, run ``commands``."""
    args = [need_gdb(), "-q", "-batch", "-nx"]
    if elf is not None:
        args.append(str(elf))
    if arch is not None:
        args += ["-ex", f"set architecture {arch}"]
    args += ["-ex", f"target remote {address}"]
    for command in commands:
        args += ["-ex", command]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=GDB_S,
                          stdin=subprocess.DEVNULL)


def held_leases(state: Path) -> list[str]:
    """Rack ids leased in ``state``'s lease table as it is (no reaping of dead holders)."""
    import sqlite3
    from contextlib import closing

    path = state / "leases.sqlite"
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(path)) as db:
            return [r[0] for r in db.execute("SELECT rack_id FROM hil_leases")]
    except sqlite3.OperationalError:  # being created right now
        return []


def printed_gdb(stderr: str, *commands: str) -> subprocess.CompletedProcess[str]:
    """Run the gdb command line hil printed (as a user pastes it), in batch mode, with
    ``commands`` after its own."""
    import shlex

    line = next(ln for ln in stderr.splitlines() if ln.strip().startswith("gdb-multiarch "))
    argv = shlex.split(line)
    argv[0] = need_gdb()
    argv[1:1] = ["-batch", "-nx"]
    for command in commands:
        argv += ["-ex", command]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=GDB_S,
                          stdin=subprocess.DEVNULL)
