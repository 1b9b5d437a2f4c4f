"""hil rack check on virtual boards (pyOCD's real flash path over the simulated probe, then
QEMU), and the health columns of hil rack status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode
from hil.paths import state_dir
from hil.rack import lease_store, load_rack
from hil.rack.leases import Holder

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm absent")

GOOD = "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', emulator: qemu}\n"
BAD_FLASH = ("  - {id: f4-b, board: nucleo-f4, probe: 'hilsim:f4-b', emulator: qemu, "
             "sim_faults: 'erase@0x08000000'}\n")
NO_ANSWER = ("  - {id: f4-c, board: nucleo-f4, probe: 'hilsim:f4-c', emulator: qemu, "
             "health: {timeout: 1, smoke: [{expect: READY}, {send: ping, expect: '^nope$'}]}}\n")


@pytest.fixture
def rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def write(*entries: str, health: str = "") -> Path:
        path = tmp_path / "rack.yaml"
        path.write_text("schema: 1\n" + (f"health: {health}\n" if health else "")
                        + "boards:\n" + "".join(entries))
        monkeypatch.setenv("HIL_RACK", str(path))
        return path
    return write


def _json(capsys, *argv: str) -> tuple[int, list[dict]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def _status(capsys) -> dict[str, dict]:
    code, objs = _json(capsys, "rack", "status", "--no-probes", "--json")
    assert code == 0
    return {o["id"]: o for o in objs}


def _qemus() -> list[str]:
    """QEMU processes of this test (its state dir is in their command line)."""
    found = []
    needle = str(state_dir()).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and needle in cmdline:
            found.append(proc.name)
    return found


pytestmark = pytest.mark.slow


@needs_qemu
def test_a_good_board_passes_and_a_board_that_cannot_be_flashed_goes_out(rack, capsys):
    rack(GOOD, BAD_FLASH)
    code, results = _json(capsys, "rack", "check", "--json")
    assert code == ExitCode.INFRASTRUCTURE
    by_id = {r["id"]: r for r in results}
    assert by_id["f4-a"]["status"] == "passed"
    assert by_id["f4-b"]["status"] == "failed"
    assert "erase" in by_id["f4-b"]["detail"]
    status = _status(capsys)
    assert status["f4-a"]["healthy"] and status["f4-a"]["last_check"]["ok"]
    assert not status["f4-b"]["healthy"]
    assert status["f4-b"]["unhealthy_reason"].startswith("health check failed: erasing")
    assert status["f4-b"]["last_check"]["ok"] is False
    assert [e["kind"] for e in status["f4-b"]["history"]] == ["check", "unhealthy"]
    assert status["f4-b"]["recheck_at"] is not None  # when it is tried again
    with lease_store(load_rack()) as store:
        assert store.leases() == {}  # every check gave its board back
    assert _qemus() == []


@needs_qemu
def test_an_unhealthy_board_returns_to_service_when_its_check_passes(rack, capsys):
    rack(GOOD)
    with lease_store(load_rack()) as store:
        store.mark_unhealthy("f4-a", "3 infrastructure failures in a row; last: console lost")
    assert main(["rack", "lease", "--board", "nucleo-f4"]) == ExitCode.NO_HARDWARE
    capsys.readouterr()
    code, (result,) = _json(capsys, "rack", "check", "f4-a", "--json")
    assert code == 0, result
    assert (result["status"], result["health"]) == ("passed", "returned to service")
    status = _status(capsys)["f4-a"]
    assert status["healthy"] and status["unhealthy_reason"] is None
    assert [(e["kind"], e["ok"]) for e in status["history"]] == [
        ("unhealthy", False), ("check", True), ("returned", True)]
    assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0  # the queue has it
    assert json.loads(capsys.readouterr().out)["board"] == "f4-a"


@needs_qemu
def test_a_board_that_does_not_answer_its_smoke_test_fails_with_its_transcript(rack, capsys):
    rack(NO_ANSWER)
    code, (result,) = _json(capsys, "rack", "check", "f4-c", "--json")
    assert code == ExitCode.INFRASTRUCTURE
    assert result["status"] == "failed"
    assert result["detail"] == "no line matching /^nope$/ within 1 s after sending 'ping'"
    assert result["last_lines"][-2:] == ["pong", "OK"]  # what the board did say
    transcript = Path(result["transcript"]).read_text()
    assert "health check: send 'ping'" in transcript
    assert "health check: no line matching /^nope$/" in transcript
    # a second failure with the same reason does not repeat it
    _json(capsys, "rack", "check", "f4-c", "--json")
    reason = _status(capsys)["f4-c"]["unhealthy_reason"]
    assert reason == "health check failed: " + result["detail"]
    assert _qemus() == []


def test_a_leased_board_is_skipped_and_nothing_is_recorded(rack, capsys):
    rack(GOOD)
    with lease_store(load_rack()) as store:
        store.acquire(["f4-a"], holder=Holder("someone", "ci-7", 0, "job 42", "hil test"))
    code = main(["rack", "check", "f4-a"])
    err = capsys.readouterr().err
    assert code == ExitCode.LEASE_TIMEOUT  # named, and not checked
    assert "skipped" in err.lower() and "leased by someone@ci-7 (hil test)" in err
    assert main(["rack", "check"]) == 0  # all boards: a busy one is no failure
    capsys.readouterr()
    assert _status(capsys)["f4-a"]["last_check"] is None


def test_due_checks_nothing_while_no_board_is_unhealthy(rack, capsys):
    rack(GOOD, health="{recheck_after: 0}")
    assert main(["rack", "check", "--due"]) == 0
    assert "no re-check is due" in capsys.readouterr().err
    assert _status(capsys)["f4-a"]["last_check"] is None


def test_an_unknown_golden_app_is_a_usage_error_naming_the_rack_file(rack, capsys):
    path = rack(GOOD, health="{golden: no-such-app}")
    assert main(["rack", "check", "f4-a"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"{path}: health.golden: golden app of board type nucleo-f4: app 'no-such-app'" \
        in err
    assert "hint: project apps:" in err  # and how to fix it
    assert _status(capsys)["f4-a"]["healthy"]  # not the board's fault


def test_status_shows_the_last_check_and_the_recovery_history(rack, capsys):
    rack(GOOD)
    with lease_store(load_rack()) as store:
        store.record_health_event("f4-a", "recovery", step="console-reconnect", ok=False)
        store.record_health_event("f4-a", "recovery", step="power-cycle", ok=True)
        store.record_check("f4-a", False, "no pong")
    assert main(["rack", "status", "--no-probes"]) == 0
    out = capsys.readouterr().out
    header, _rule, row = out.splitlines()[:3]
    assert header.split()[-4:] == ["health", "last", "check", "recoveries"]
    assert "UNHEALTHY: health check failed: no pong" in row
    assert "FAILED" in row and row.endswith("power-cycle ok, console-reconnect failed")
    status = _status(capsys)["f4-a"]
    assert [(r["step"], r["ok"]) for r in status["recoveries"]] == [
        ("console-reconnect", False), ("power-cycle", True)]


def test_a_bad_row_keeps_its_message_next_to_the_health_columns(rack, capsys):
    rack(GOOD)
    with lease_store(load_rack()) as store:
        store.record_check("gone-1", False, "flash failed")  # an id no longer in the file
    status = _status(capsys)["gone-1"]
    assert status["bad_row"].startswith("not in the rack file")
    assert status["last_check"]["ok"] is False
