"""Ctrl-C while the recovery ladder climbs leaves nothing behind: no QEMU (not even the
SIGSTOPped one), no lease. The real ``hil`` console script runs with a marker in its
environment that every process of the run inherits, so a /proc scan finds leftovers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from procscan import processes_marked
from test_ladder_e2e import _app

HIL = str(Path(sys.executable).parent / "hil")
BOUND_S = 10.0  # generous on a loaded machine; the cancel tests of tests/cancel use 5 s

pytestmark = pytest.mark.slow


def _leftovers(marker: str) -> list[str]:
    return processes_marked("HIL_CANCEL_MARKER", marker, width=160)


def test_ctrl_c_during_the_ladder_leaves_no_qemu_and_no_lease(project, tmp_path):
    _app(project, tmp_path / "hung")
    (project / "rack.yaml").write_text(
        "schema: 1\nboards:\n  - {id: c-1, board: nucleo-f4, probe: 'hilsim:cancel-c-1', "
        "emulator: qemu}\n")
    state = tmp_path / "state"
    marker = uuid.uuid4().hex
    env = dict(os.environ, HIL_STATE_DIR=str(state), HIL_CANCEL_MARKER=marker,
               HIL_LEASE_WAIT="30")
    log = tmp_path / "hil.log"
    with open(log, "wb") as out:
        # a long console timeout: each ladder step waits up to it, so the ladder is slow
        proc = subprocess.Popen([HIL, "test", "-b", "nucleo-f4", "-j", "1", "--timeout", "20"],
                                cwd=project, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 120
        while "recovery step reconnect-console failed" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # hil alone, as a terminal's Ctrl-C reaches it first
        assert proc.wait(timeout=BOUND_S) == 130, log.read_text(errors="replace")[-3000:]
        # the progress came while the ladder climbed (not with the test's captured output),
        # so the Ctrl-C landed on the next step: the ladder did not finish
        text = log.read_text(errors="replace")
        assert "recovery step connect-under-reset" not in text, text[-3000:]
        assert "cancelled by SIGINT" in text
        deadline = time.monotonic() + BOUND_S
        while (left := _leftovers(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == []
        with closing(sqlite3.connect(state / "leases.sqlite")) as db:
            assert db.execute("SELECT rack_id FROM hil_leases").fetchall() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for line in _leftovers(marker):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
