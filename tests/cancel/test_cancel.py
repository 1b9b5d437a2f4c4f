"""A cancelled run leaves nothing behind: signals sent to the ``hil`` process alone (as a CI
runner cancelling a job does), and SIGKILL of it.

Each test runs the real ``hil`` console script with its own state, build and rack
directories and a marker in its environment; every process of the run (pytest, QEMU,
compilers) inherits the marker, so a /proc scan finds whatever the run left behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path

import junit_rules
import pytest
from procscan import processes_marked

from hil.audit.store import open_store

HIL = str(Path(sys.executable).parent / "hil")
BOUND_S = 5.0  # what the issue asks: everything stopped and released within 5 s
START_S = 120.0  # generous: the run must first reach the blocking test on a busy machine
RACK_ID = "cv-a"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shell_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shell example for nucleo-f4, built once (the runs under test build nothing)."""
    from hil.boards import load_board
    from hil.build import build
    from hil.errors import HilError

    try:
        return build(load_board("nucleo-f4"), "shell",
                     out=tmp_path_factory.mktemp("shell") / "out").hex
    except HilError as exc:  # pragma: no cover - the toolchain is part of `make deps`
        pytest.skip(f"cannot build the shell example here: {exc}")


class Run:
    """One ``hil`` invocation under test, with its private directories and marker."""

    def __init__(self, tmp_path: Path, *, virtual: bool) -> None:
        self.tmp = tmp_path
        tmp_path.mkdir(parents=True)
        self.state = tmp_path / "state"
        self.marker = uuid.uuid4().hex
        self.rack = tmp_path / "rack.yaml"
        entry = (f"  - {{id: {RACK_ID}, board: nucleo-f4, probe: 'hilsim:{RACK_ID}', "
                 "emulator: qemu}\n") if virtual else ""
        self.rack.write_text("schema: 1\nboards:" + ("\n" + entry if entry else " []\n"))
        self.env = dict(os.environ, HIL_STATE_DIR=str(self.state),
                        HIL_BUILD_DIR=str(tmp_path / "build"), HIL_RACK=str(self.rack),
                        HIL_CANCEL_MARKER=self.marker, HIL_LEASE_WAIT="30")
        self.env.pop("HIL_LEASE", None)
        self.stderr = tmp_path / "hil.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, stdin: int | None = subprocess.DEVNULL) -> None:
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen([HIL, *args], env=self.env, stdin=stdin,
                                         stdout=err, stderr=err)

    def output(self) -> str:
        return self.stderr.read_text(errors="replace")

    def wait_for(self, what: str, ready, timeout: float = START_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"hil exited ({self.proc.returncode}) before {what}:\n"
                            f"{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:g} s:\n{self.output()[-4000:]}")
            time.sleep(0.05)

    def cancel(self, sig: signal.Signals) -> int:
        """Send ``sig`` to the hil process alone; returns its exit status (bounded wait)."""
        assert self.proc is not None
        self.proc.send_signal(sig)  # the pid only, not its process group
        try:
            return self.proc.wait(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"hil did not end within {BOUND_S:g} s of {sig.name}:\n"
                        f"{self.output()[-4000:]}")

    def leftovers(self) -> list[str]:
        """Live processes carrying this run's marker (zombies do not count)."""
        return processes_marked("HIL_CANCEL_MARKER", self.marker)

    def no_leftovers(self) -> list[str]:
        """Wait (bounded) until no process of the run is left; returns what is."""
        deadline = time.monotonic() + BOUND_S
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def held_leases(self) -> list[str]:
        """Leases in the table as it is (no reaping of dead holders, unlike LeaseStore)."""
        path = self.state / "leases.sqlite"
        if not path.exists():
            return []
        try:
            with closing(sqlite3.connect(path)) as db:
                return [r[0] for r in db.execute("SELECT rack_id FROM hil_leases")]
        except sqlite3.OperationalError:  # being created right now
            return []

    def lease_events(self) -> list[str]:
        with closing(sqlite3.connect(self.state / "leases.sqlite")) as db:
            return [r[0] for r in db.execute(
                "SELECT event FROM hil_lease_log WHERE rack_id = ? ORDER BY seq", (RACK_ID,))]

    def audit(self, image: Path, kind: str) -> list[dict]:
        sha = hashlib.sha256(image.read_bytes()).hexdigest()
        with open_store(str(self.state / "audit.sqlite")) as store:
            return [r.payload for r in store.for_image(sha) if r.kind == kind]

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        for line in self.leftovers():
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


@pytest.fixture
def make_run(tmp_path: Path):
    runs: list[Run] = []

    def make(*, virtual: bool) -> Run:
        run = Run(tmp_path / f"run{len(runs)}", virtual=virtual)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.kill()


def _blocking_suite(directory: Path, started: Path) -> Path:
    """One test that passes, then one that waits for console output that never comes."""
    directory.mkdir()
    (directory / "test_blocking.py").write_text(textwrap.dedent(f"""\
        from pathlib import Path


        def test_a_finished(dut):
            assert dut.is_open


        def test_b_blocks(dut):
            Path({str(started)!r}).touch()
            dut.expect("nothing ever prints this", timeout=600)
        """))
    return directory


CANCELS = [
    pytest.param(True, signal.SIGINT, id="virtual-board-SIGINT"),
    pytest.param(True, signal.SIGTERM, id="virtual-board-SIGTERM"),
    pytest.param(True, signal.SIGHUP, id="virtual-board-SIGHUP"),
    pytest.param(False, signal.SIGINT, id="qemu-SIGINT"),
    pytest.param(False, signal.SIGTERM, id="qemu-SIGTERM"),
]


@pytest.mark.parametrize(("virtual", "sig"), CANCELS)
def test_signal_to_hil_test_stops_everything_and_records_the_cancel(
        make_run, shell_image: Path, virtual: bool, sig: signal.Signals):
    run = make_run(virtual=virtual)
    started = run.tmp / "blocking-test-started"
    junit = run.tmp / "verdict.xml"
    run.start("test", "--board", "nucleo-f4", "--image", str(shell_image), "--suite",
              str(_blocking_suite(run.tmp / "suite", started)), "--junit", str(junit),
              "--timeout", "600", "--on", "auto" if virtual else "qemu")
    run.wait_for("the blocking test", started.exists)
    if virtual:
        assert run.held_leases() == [RACK_ID]

    code = run.cancel(sig)

    out = run.output()
    assert code == 128 + sig, out[-4000:]
    assert f"cancelled by {sig.name}" in out
    assert run.no_leftovers() == [], out[-4000:]
    assert run.held_leases() == []
    if virtual:  # given back by its holder at once, not reaped after its TTL
        assert run.lease_events() == ["acquire", "release"]
    junit_rules.assert_valid(junit)
    cases = {tc.get("name"): tc for tc in ET.parse(junit).iter("testcase")}
    assert set(cases) == {"test_a_finished", "cancelled"}, ET.tostring(ET.parse(junit).getroot())
    assert list(cases["test_a_finished"]) == [] or \
        all(c.tag in ("system-out", "system-err") for c in cases["test_a_finished"])
    error = cases["cancelled"].find("error")
    assert error is not None and error.get("message") == f"run cancelled by {sig.name}"
    records = run.audit(shell_image, "test")
    assert len(records) == 1, records
    assert records[0]["cancelled"] == sig.name
    assert (records[0]["passed"], records[0]["errors"]) == (1, 1)
    assert records[0]["executor"] == "qemu"
    assert records[0]["rack_id"] == (RACK_ID if virtual else None)


@pytest.mark.parametrize("virtual", [pytest.param(True, id="virtual-board"),
                                     pytest.param(False, id="qemu")])
def test_sigkill_of_hil_test_takes_its_children_along(make_run, shell_image: Path,
                                                      virtual: bool):
    run = make_run(virtual=virtual)
    started = run.tmp / "blocking-test-started"
    run.start("test", "--board", "nucleo-f4", "--image", str(shell_image), "--suite",
              str(_blocking_suite(run.tmp / "suite", started)), "--timeout", "600",
              "--on", "auto" if virtual else "qemu")
    run.wait_for("the blocking test", started.exists)

    code = run.cancel(signal.SIGKILL)

    assert code == -signal.SIGKILL
    # pytest gets SIGTERM from the kernel (parent death), unwinds, stops QEMU, releases
    assert run.no_leftovers() == [], run.output()[-4000:]
    assert run.held_leases() == []
    if virtual:
        assert run.lease_events() == ["acquire", "release"]


def test_sigterm_to_hil_flash_releases_the_board_and_records_the_cancelled_flash(
        make_run, shell_image: Path):
    run = make_run(virtual=True)
    run.env["HIL_SIM_FAULTS"] = "slow=0.3"  # every flash-algorithm call takes 0.3 s
    run.start("flash", "--board", "nucleo-f4", "--probe", f"hilsim:{RACK_ID}", "--image",
              str(shell_image))
    run.wait_for("the lease", lambda: run.held_leases() == [RACK_ID])
    run.wait_for("flashing to start", lambda: "erase" in run.output() or
                 "program" in run.output())

    code = run.cancel(signal.SIGTERM)

    out = run.output()
    assert code == 143, out
    assert "cancelled by SIGTERM" in out
    assert run.no_leftovers() == []
    assert run.held_leases() == []
    assert run.lease_events() == ["acquire", "release"]
    records = run.audit(shell_image, "flash")
    assert len(records) == 1, records
    assert records[0]["ok"] is False and not records[0]["verified"]
    assert records[0]["error"].startswith("cancelled by SIGTERM while flashing"), records


def test_sigterm_to_hil_run_stops_qemu_and_releases_the_board(make_run, shell_image: Path):
    run = make_run(virtual=True)
    run.start("run", "--board", "nucleo-f4", "--image", str(shell_image),
              stdin=subprocess.PIPE)  # a console nobody types into
    run.wait_for("the console", lambda: "connected to" in run.output())
    assert run.held_leases() == [RACK_ID]
    assert any("qemu-system-arm" in p for p in run.leftovers())

    code = run.cancel(signal.SIGTERM)

    assert code == 143, run.output()
    assert run.no_leftovers() == []
    assert run.held_leases() == []
    assert run.lease_events() == ["acquire", "release"]


def test_sighup_to_hil_rack_host_stops_its_qemu(make_run, shell_image: Path):
    run = make_run(virtual=True)
    flashed = subprocess.run([HIL, "flash", "--board", "nucleo-f4", "--probe",
                              f"hilsim:{RACK_ID}", "--image", str(shell_image)], env=run.env,
                             capture_output=True, text=True, timeout=START_S, check=False)
    assert flashed.returncode == 0, flashed.stderr
    console = run.tmp / "consoles" / RACK_ID
    run.start("rack-host", RACK_ID, "--console-dir", str(console.parent))
    run.wait_for("the board's QEMU",
                 lambda: any("qemu-system-arm" in p for p in run.leftovers()))

    code = run.cancel(signal.SIGHUP)

    assert code == 129, run.output()
    assert run.no_leftovers() == []
    assert not console.is_symlink()


def _slow_app(directory: Path, functions: int = 3000) -> Path:
    """An app whose one source keeps the compiler busy for many seconds."""
    directory.mkdir(parents=True)
    body = "\n".join(
        f"int f{i}(int x) {{ for (int j = 0; j < x; j++) {{ sink += j * {i} ^ (j >> 3); "
        f"if (sink & 1) sink ^= x * {i}; }} return sink + {i}; }}" for i in range(functions))
    (directory / "main.c").write_text(
        "volatile int sink;\n" + body + "\nint main(void) { return f0(sink); }\n")
    (directory / "app.yaml").write_text(f"name: {directory.name}\nversion: 0.1.0\n")
    return directory


def test_sigterm_during_a_build_stops_the_compiler_and_leaves_no_temporaries(make_run):
    run = make_run(virtual=False)
    cache = run.tmp / "cache"
    run.env["HIL_CACHE_DIR"] = str(cache)  # a cold cache: the slow source is compiled
    run.start("build", "--board", "nucleo-f4", "-j", "1", str(_slow_app(run.tmp / "slowapp")))
    run.wait_for("the compiler's temporary object", lambda: any(cache.glob("obj/*/*.o.tmp")))

    code = run.cancel(signal.SIGTERM)

    assert code == 143, run.output()
    assert run.no_leftovers() == []  # the driver and its cc1 (a process group) are gone
    assert list(cache.glob("obj/*/*.o.tmp")) == []
    assert list((run.tmp / "build").glob("**/.*partial-*")) == []
    assert not (run.tmp / "build" / "nucleo-f4" / "slowapp").exists()


def test_the_next_build_sweeps_temporaries_of_a_killed_build(tmp_path: Path):
    """A SIGKILLed build cannot clean up: its temporaries name their owner, whose death the
    next build sees."""
    import socket

    from hil.boards import load_board
    from hil.build import build

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    host = socket.gethostname()
    cache, out = tmp_path / "cache", tmp_path / "out" / "shell"
    stale = [cache / "obj" / "ab" / f".{dead.pid}@{host}-k1ll3d_x.o.tmp",
             cache / "img" / "cd" / f".link-{dead.pid}@{host}-k1ll3d_y",
             out.parent / f".shell.partial-{dead.pid}@{host}-k1ll3d_z"]
    live = [cache / "obj" / "ab" / f".{os.getpid()}@{host}-running.o.tmp",
            out.parent / f".shell.partial-{os.getpid()}@{host}-running"]
    for path in stale + live:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".o.tmp"):
            path.write_bytes(b"half an object")
        else:
            path.mkdir()
            (path / "firmware.elf").write_bytes(b"half an image")

    build(load_board("nucleo-f4"), "shell", out=out, cache=cache)

    assert [p for p in stale if p.exists()] == []
    assert [p for p in live if p.exists()] == live  # a running build's are not touched
    assert (out / "firmware.hex").is_file()


def test_sigterm_to_hil_test_on_two_boards_stops_both_runs(make_run):
    """Boards run in worker threads: the signal reaches the main thread only, which stops
    every pytest child; each board's verdict says it was cancelled."""
    run = make_run(virtual=False)
    started = run.tmp / "started"
    suite = run.tmp / "suite"
    suite.mkdir()
    (suite / "test_blocking.py").write_text(textwrap.dedent(f"""\
        from pathlib import Path


        def test_blocks(dut, board):
            Path({str(started)!r} + "-" + board.name).touch()
            dut.expect("nothing ever prints this", timeout=600)
        """))
    junit = run.tmp / "verdict.xml"
    run.start("test", "--board", "nucleo-f4", "--board", "hifive1-revb", "shell",
              "--suite", str(suite),
              "--junit", str(junit), "--timeout", "600", "--on", "qemu")
    run.wait_for("both blocking tests", lambda: all(
        Path(f"{started}-{b}").exists() for b in ("nucleo-f4", "hifive1-revb")), timeout=300)

    code = run.cancel(signal.SIGTERM)

    assert code == 143, run.output()[-4000:]
    assert run.no_leftovers() == [], run.output()[-4000:]
    junit_rules.assert_valid(junit)
    suites = {ts.get("name"): [tc.get("name") for tc in ts.iter("testcase")]
              for ts in ET.parse(junit).iter("testsuite")}
    assert suites == {"nucleo-f4/shell": ["cancelled"], "hifive1-revb/shell": ["cancelled"]}


def test_sigterm_to_hil_test_with_the_unity_harness_keeps_what_finished(make_run):
    """The Unity harness runs in the hil process itself: the cancel unwinds its executor."""
    run = make_run(virtual=False)
    app = run.tmp / "hangs"
    app.mkdir()
    (app / "app.yaml").write_text("name: hangs\nversion: 0.1.0\nsources: ['*.c']\n")
    (app / "main.c").write_text(textwrap.dedent("""\
        #include "hil.h"

        int main(void)
        {
            hil_println("main.c:3:test_first:PASS");
            for (;;) {
                hil_delay_ms(1000u); /* the second test never reports */
            }
        }
        """))
    junit = run.tmp / "verdict.xml"
    run.start("test", "--board", "nucleo-f4", str(app), "--harness", "unity", "--on", "qemu",
              "--junit", str(junit))
    run.wait_for("QEMU", lambda: any("qemu-system-arm" in p for p in run.leftovers()),
                 timeout=300)
    time.sleep(1.0)  # let it boot and report its first test

    code = run.cancel(signal.SIGTERM)

    assert code == 143, run.output()[-4000:]
    assert run.no_leftovers() == []
    junit_rules.assert_valid(junit)
    cases = [(tc.get("name"), [c.tag for c in tc]) for tc in ET.parse(junit).iter("testcase")]
    assert ("cancelled", ["error"]) in cases, cases
