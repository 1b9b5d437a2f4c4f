"""A rack across hosts, for real on loopback: PostgreSQL leases, a simulated probe behind
``pyocd server``, a virtual board's console behind ``ser2net`` (RFC 2217), and a runner with
its own state directory that leases, flashes through ``remote:``, and runs shell commands
over ``rfc2217://``.

"Rack host" side (its own HIL_STATE_DIR and rack file, subprocesses):
``hil rack-host f4-host`` (console pty + QEMU from the simulated flash),
``pyocd server --probe hilsim:f4-host``, ``ser2net`` serving the console pty.
"Runner" side (this process, the test's HIL_STATE_DIR): a rack file whose only entry is the
remote board and whose lease database is PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import shell_image

from hil.cli import main

shell_hex = shell_image.shell_hex  # the fixture, under its name

PYOCD = Path(sys.executable).parent / "pyocd"
START_TIMEOUT = 30.0  # seconds for each rack-host process to come up (the machine is busy)


def _missing() -> str | None:
    if shutil.which("ser2net") is None:
        return "ser2net is not installed (apt-get install ser2net)"
    if not PYOCD.exists():
        return f"pyocd is not installed in this environment ({PYOCD})"
    if shutil.which("qemu-system-arm") is None:
        return "qemu-system-arm is not installed (apt-get install qemu-system-arm)"
    return None


pytestmark = [
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
    pytest.mark.slow,
]


SERVING = re.compile(r"Serving debug probe .* on port (\d+)")


def _free_port() -> int:
    """A loopback port free right now, for ser2net (which cannot report a port it picked)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, ready, proc: subprocess.Popen | None, log: Path | None,
              timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log and log.exists() else ""
    exited = f" (exited {proc.returncode})" if proc and proc.poll() is not None else ""
    raise AssertionError(f"{what} did not come up within {timeout:g} s{exited}:\n{text}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the process's own cleanup runs), then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class RackHostSide:
    state: Path
    probe_port: int
    console_port: int
    console_path: Path
    procs: dict[str, subprocess.Popen]
    logs: dict[str, Path]


@pytest.fixture(scope="module")
def rack_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RackHostSide]:
    """The rack host: hil rack-host, pyocd server and ser2net, all on loopback."""
    root = tmp_path_factory.mktemp("rackhost")
    state = root / "state"
    state.mkdir()
    host_rack = root / "rack.yaml"
    host_rack.write_text("schema: 1\nboards:\n  - id: f4-host\n    board: nucleo-f4\n"
                         "    probe: hilsim:f4-host\n    tags: [virtual]\n    emulator: qemu\n")
    env = {**os.environ, "HIL_STATE_DIR": str(state), "HIL_RACK": str(host_rack)}
    console_path = state / "consoles" / "f4-host"
    procs: dict[str, subprocess.Popen] = {}
    logs = {name: root / f"{name}.log" for name in ("rack-host", "pyocd", "ser2net")}

    def spawn(name: str, argv: list[str]) -> subprocess.Popen:
        with open(logs[name], "wb") as out:
            procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, env=env, cwd=root)
        return procs[name]

    try:
        p = spawn("rack-host", [sys.executable, "-m", "hil", "-v", "rack-host", "f4-host"])
        _wait_for("hil rack-host", console_path.is_symlink, p, logs["rack-host"])

        # port 0: pyocd server binds a port of its own choosing and logs it
        p = spawn("pyocd", [str(PYOCD), "server", "--no-config", "-W", "--probe",
                            "hilsim:f4-host", "--port", "0"])
        _wait_for("pyocd server", lambda: SERVING.search(
                  logs["pyocd"].read_text(errors="replace")), p, logs["pyocd"])
        serving = SERVING.search(logs["pyocd"].read_text(errors="replace"))
        assert serving is not None
        probe_port = int(serving.group(1))

        console_port = _free_port()
        config = root / "ser2net.yaml"
        config.write_text(
            "connection: &f4host\n"
            f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{console_port}\n"
            f"  connector: serialdev,{console_path},115200n81,local\n"
            "  options:\n    kickolduser: true\n")
        p = spawn("ser2net", ["ser2net", "-n", "-d", "-c", str(config)])
        _wait_for("ser2net", lambda: _port_open(console_port), p, logs["ser2net"])

        yield RackHostSide(state, probe_port, console_port, console_path, procs, logs)
    finally:
        for name in ("ser2net", "pyocd", "rack-host"):
            if name in procs:
                _stop(procs[name])


@pytest.fixture(scope="module")
def lease_db(pg_server) -> str:
    return pg_server.create_database()


@pytest.fixture
def runner_rack(rack_host: RackHostSide, lease_db: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runner's rack file: the remote board, and the shared PostgreSQL lease database."""
    path = tmp_path / "rack.yaml"
    path.write_text(
        "schema: 1\n"
        f"leases:\n  database: {lease_db}\n"
        "boards:\n"
        "  - id: f4-remote\n"
        "    board: nucleo-f4\n"
        f"    probe: remote:127.0.0.1:{rack_host.probe_port}\n"
        f"    console: rfc2217://127.0.0.1:{rack_host.console_port}?ign_set_control\n"
        "    tags: [remote]\n"
        "    emulator: qemu\n")  # a virtual board on the rack host: its passes are QEMU's
    monkeypatch.setenv("HIL_RACK", str(path))
    monkeypatch.delenv("HIL_LEASE_DB", raising=False)
    return path


def _host_log(side: RackHostSide) -> str:
    return "\n".join(f"--- {name}:\n{log.read_text(errors='replace')[-3000:]}"
                     for name, log in side.logs.items() if log.exists())


def test_a_lease_held_elsewhere_blocks_the_board(rack_host, runner_rack, shell_hex, capsys):
    """`hil rack lease` (as another job would) holds the board in PostgreSQL: `hil flash`
    waits its turn and gives up after --wait with exit code 20; the holder itself flashes
    under its lease with HIL_LEASE."""
    from hil.rack import lease_store, load_rack

    code = main(["rack", "lease", "--board", "nucleo-f4", "--tag", "remote", "--wait", "30",
                 "--ttl", "300", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lease = json.loads(out)
    assert lease["board"] == "f4-remote"
    assert lease["probe"] == f"remote:127.0.0.1:{rack_host.probe_port}"
    try:
        code = main(["flash", "--board", "nucleo-f4", "--image", str(shell_hex), "--wait", "1"])
        _, err = capsys.readouterr()
        assert code == 20, err
        # the job that holds the lease flashes under it by naming it (HIL_LEASE)
        os.environ["HIL_LEASE"] = lease["lease"]
        try:
            code = main(["flash", "--board", "nucleo-f4", "--image", str(shell_hex),
                         "--wait", "1", "--json"])
        finally:
            del os.environ["HIL_LEASE"]
        out, err = capsys.readouterr()
        assert code == 0, err
        assert json.loads(out)["rack_entry"] == "f4-remote"
        with lease_store(load_rack()) as leases:  # still held: HIL_LEASE is not released
            assert leases.leases()["f4-remote"].token == lease["lease"]
    finally:
        code = main(["rack", "release", lease["lease"]])
        _, err = capsys.readouterr()
        assert code == 0, err


def test_lease_flash_and_test_a_board_on_another_host(
        rack_host, runner_rack, shell_hex, tmp_path, capsys, _isolated_state):
    from intelhex import IntelHex

    from hil.boards import load_board
    from hil.executors.hardware import HardwareExecutor, find_hardware
    from hil.flash.sim.store import SimFlashStore
    from hil.image import Image
    from hil.rack import lease_board, lease_store, load_rack

    assert _isolated_state != rack_host.state  # runner and rack host share no state
    with lease_store(load_rack()) as leases:
        seen = len(leases.lease_log())

    # hil flash leases the rack entry through PostgreSQL and flashes through its remote: probe
    code = main(["flash", "--board", "nucleo-f4", "--image", str(shell_hex), "--json",
                 "--wait", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err + _host_log(rack_host)
    report = json.loads(out)
    assert report["verified"] is True and report["reset"] is True
    assert report["rack_entry"] == "f4-remote"
    assert report["probe"] == f"remote:127.0.0.1:{rack_host.probe_port}"

    # the rack host's simulated flash holds what the runner wrote
    store = SimFlashStore.open("f4-host", rack_host.state / "simflash")
    want = IntelHex(str(shell_hex))
    for start, end in want.segments():
        assert store.read(start, end - start) == want.tobinstr(start=start, size=end - start)

    # the runner knows the remote board is virtual: never taken for hardware
    board = load_board("nucleo-f4")
    entry, why = find_hardware(board)
    assert entry is None and "only virtual" in why

    # lease -> open console -> flash (unchanged: nothing erased) -> verify -> reset ->
    # banner -> shell commands -> reset through the remote probe -> release
    rack = load_rack()
    with lease_store(rack) as leases:
        lease, entry = lease_board(rack, "nucleo-f4", tags=["remote"], wait=30.0, ttl=60.0,
                                   purpose="cross-host test", store=leases)
        with lease, HardwareExecutor(board, entry, work_dir=tmp_path / "run",
                                     timeout=30.0) as dut:
            console = dut.start(Image.from_path(shell_hex))
            banner = console.wait_ready(timeout=30.0)
            assert banner is not None and banner.startswith("hil-shell nucleo-f4 "), \
                console.last_lines()
            assert console.command("ping") == ["pong"]
            assert console.command("add 2 3") == ["5"]
            assert console.command("add 2147483647 1") == ["-2147483648"]
            assert console.command("crc32 313233343536373839") == \
                [f"{zlib.crc32(b'123456789'):08x}"]

            dut.reset()  # through the remote probe; the rack host reboots QEMU from flash
            assert console.wait_ready(timeout=30.0) is not None, console.last_lines()
            assert console.command("ping") == ["pong"]

        # the lease log: the flash's lease and ours, each acquired then released
        log = leases.lease_log()[seen:]
        events = [(row[1], row[3]) for row in log]
        assert events == [("f4-remote", "acquire"), ("f4-remote", "release")] * 2, log
        assert [row[2] for row in log if row[3] == "acquire"][1] == lease.token
        assert "f4-remote" not in leases.leases()


def test_hil_test_runs_the_shell_suite_on_the_remote_board(rack_host, runner_rack, shell_hex,
                                                           tmp_path):
    """End to end as users call it: ``hil test`` in a subprocess leases the remote virtual
    board, flashes through ``remote:`` and runs the shell suite over ``rfc2217://``, and
    says the pass came from QEMU; ``--require-hardware`` refuses it (exit 4)."""
    from hil.catalog import EXAMPLES_DIR

    junit = tmp_path / "verdict.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "hil", "test", "--board", "nucleo-f4",
         "--image", str(shell_hex), "--suite", str(EXAMPLES_DIR / "shell" / "tests"),
         "--junit", str(junit), "--timeout", "30"],
        check=False, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + _host_log(rack_host)
    assert "virtual board f4-remote" in proc.stdout and "not a hardware pass" in proc.stdout
    strict = subprocess.run(
        [sys.executable, "-m", "hil", "test", "--board", "nucleo-f4", "--require-hardware",
         "--image", str(shell_hex)], check=False, capture_output=True, text=True, timeout=120,
        env=dict(os.environ))
    assert strict.returncode == 4, strict.stderr
    xml = junit.read_text()
    assert '<property name="hil.executor" value="qemu"' in xml
    assert '<property name="hil.rack_id" value="f4-remote"' in xml
    assert f'<property name="hil.probe" value="remote:127.0.0.1:{rack_host.probe_port}"' in xml


def test_rack_host_stops_its_qemu_on_sigterm(rack_host, runner_rack, shell_hex, capsys):
    """The last test of the module (it stops the rack host): SIGTERM leaves no QEMU behind."""
    code = main(["flash", "--board", "nucleo-f4", "--probe",
                 f"remote:127.0.0.1:{rack_host.probe_port}", "--image", str(shell_hex)])
    _, err = capsys.readouterr()
    assert code == 0, err + _host_log(rack_host)
    host = rack_host.procs["rack-host"]
    deadline = time.monotonic() + START_TIMEOUT
    while not (children := _qemu_children(host.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children, "the rack host should be running the board's QEMU\n" + _host_log(rack_host)
    _stop(host)
    assert host.returncode == 128 + signal.SIGTERM, _host_log(rack_host)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)
    assert not rack_host.console_path.exists()


def _qemu_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "qemu" in line]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
