"""hil rack-host --idle-checks, end to end as a subprocess: an unhealthy board returns by
itself once its re-check passes, one whose check fails stays out with the reason, and SIGTERM
(also mid-check) leaves no QEMU and no lease behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest

HIL = str(Path(sys.executable).parent / "hil")
WAIT_S = 180.0  # generous: a loaded machine builds the golden image and boots QEMU first
STOP_S = 40.0  # rack-host's own bound for a check to wind down is 30 s

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                 reason="qemu-system-arm absent")]


class Host:
    """One ``hil rack-host --idle-checks`` with its own state dir, rack and marker."""

    def __init__(self, tmp: Path, rack: str) -> None:
        tmp.mkdir(parents=True)
        self.state = tmp / "state"
        self.rack = tmp / "rack.yaml"
        self.rack.write_text(rack)
        self.marker = uuid.uuid4().hex
        self.env = dict(os.environ, HIL_STATE_DIR=str(self.state), HIL_RACK=str(self.rack),
                        HIL_IDLE_MARKER=self.marker)
        self.env.pop("HIL_LEASE", None)
        self.log = tmp / "rack-host.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def hil(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HIL, *args], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)

    def start(self, *args: str) -> None:
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen([HIL, "rack-host", *args], env=self.env,
                                         stdout=fh, stderr=fh, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self) -> dict[str, dict]:
        done = self.hil("rack", "status", "--no-probes", "--json")
        assert done.returncode == 0, done.stderr
        return {o["id"]: o for o in json.loads(done.stdout)}

    def wait_for(self, what: str, ready) -> dict[str, dict]:
        assert self.proc is not None
        deadline = time.monotonic() + WAIT_S
        while True:
            status = self.status()
            if ready(status):
                return status
            if self.proc.poll() is not None:
                pytest.fail(f"rack-host exited ({self.proc.returncode}) before {what}:\n"
                            f"{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {WAIT_S:g} s:\n{self.output()[-4000:]}\n"
                            f"{json.dumps(status, indent=1)[-3000:]}")
            time.sleep(0.3)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rack-host did not end within {STOP_S:g} s of SIGTERM:\n"
                        f"{self.output()[-4000:]}")

    def leftovers(self) -> list[str]:
        """Live processes carrying this host's marker."""
        needle = f"HIL_IDLE_MARKER={self.marker}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
                state = (proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, IndexError):
                continue
            if needle in environ and state != b"Z":
                found.append(f"{proc.name}: {cmdline[:160]!r}")
        return found

    def lease_rows(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The lease table as it is (no reaping of dead holders) and the lease log."""
        with closing(sqlite3.connect(self.state / "leases.sqlite")) as db:
            held = [r[0] for r in db.execute("SELECT rack_id FROM hil_leases")]
            log = [(r[0], r[1]) for r in db.execute(
                "SELECT rack_id, event FROM hil_lease_log ORDER BY seq")]
        return held, log

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for line in self.leftovers():
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


@pytest.fixture
def make_host(tmp_path: Path):
    hosts: list[Host] = []

    def make(rack: str) -> Host:
        host = Host(tmp_path / f"host{len(hosts)}", rack)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.kill()


RACK = """\
schema: 1
health: {recheck_after: 1}
boards:
  - {id: f4-good, board: nucleo-f4, probe: 'hilsim:f4-good', emulator: qemu}
  - {id: f4-bad, board: nucleo-f4, probe: 'hilsim:f4-bad', emulator: qemu,
     sim_faults: 'erase@0x08000000'}
"""


def _events(board: dict) -> list[tuple[str, bool]]:
    return [(e["kind"], e["ok"]) for e in board["history"]]


def test_an_unhealthy_board_returns_by_itself_after_its_recheck_passes(make_host):
    host = make_host(RACK)
    for rack_id in ("f4-good", "f4-bad"):  # both out of service, as a job would leave them
        from_ = "3 infrastructure failures in a row; last: no console data"
        script = ("from hil.rack import lease_store, load_rack\n"
                  "with lease_store(load_rack()) as s:\n"
                  f"    s.mark_unhealthy({rack_id!r}, {from_!r})\n")
        subprocess.run([sys.executable, "-c", script], env=host.env, check=True)
    before = host.status()
    assert not before["f4-good"]["healthy"] and not before["f4-bad"]["healthy"]

    host.start("--idle-checks", "3600")
    status = host.wait_for(
        "f4-good back in service and two failed re-checks of f4-bad",
        lambda s: s["f4-good"]["healthy"]
        and sum(1 for e in s["f4-bad"]["history"] if e["kind"] == "check") >= 2)

    good, bad = status["f4-good"], status["f4-bad"]
    assert ("check", True) in _events(good) and _events(good)[-1] == ("returned", True)
    assert good["last_check"]["ok"] is True
    assert not bad["healthy"]
    assert bad["unhealthy_reason"].startswith("health check failed: erasing and programming "
                                              "failed at 0x08000000")
    assert "no console data" in bad["unhealthy_reason"]  # the earlier reason is kept
    assert bad["last_check"]["ok"] is False

    # a returned board is the queue's again: a job leases it (the bad one stays out)
    lease = host.hil("rack", "lease", "--board", "nucleo-f4", "--wait", "60", "--json")
    assert lease.returncode == 0, lease.stderr
    assert json.loads(lease.stdout)["board"] == "f4-good"
    assert host.hil("rack", "release", json.loads(lease.stdout)["lease"]).returncode == 0

    assert host.terminate() == 128 + signal.SIGTERM
    assert host.leftovers() == []  # no QEMU
    held, log = host.lease_rows()
    assert held == []
    checks = [event for rack_id, event in log if rack_id == "f4-bad"]
    assert checks[-1] == "release"  # given back by the check, not reclaimed after it died


SLOW = """\
schema: 1
boards:
  - id: f4-slow
    board: nucleo-f4
    probe: 'hilsim:f4-slow'
    emulator: qemu
    health:                    # the board never says 'never': the check waits 10 minutes
      timeout: 600
      smoke: [{expect: READY}, {send: ping, expect: never}]
"""


def test_sigterm_mid_check_leaves_no_qemu_no_lease_and_no_verdict(make_host):
    host = make_host(SLOW)
    host.start("--idle-checks", "3600")  # never checked: an idle check starts at once
    host.wait_for("the idle check to run the smoke test",
                  lambda s: s["f4-slow"]["lease"] is not None
                  and "running the smoke test" in host.output())
    assert host.terminate() == 128 + signal.SIGTERM
    assert host.leftovers() == []
    held, log = host.lease_rows()
    assert held == [] and log[-1] == ("f4-slow", "release")
    assert host.status()["f4-slow"]["last_check"] is None  # a stopped check is no verdict
