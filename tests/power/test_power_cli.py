"""`hil rack power ID on|off|cycle` as users call it: what it prints, the board's health
history, refusing a board another holder leases (unless --force), exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from powersupport import path_with, recorder, script, write_rack

from hil.cli import main
from hil.errors import ExitCode
from hil.rack import lease_store, load_rack

ROOT = Path(__file__).parents[2]
RELAY = """
    driver: command
    on: ./relay.sh on {id}
    off: ./relay.sh off {id}
    cycle: ./relay.sh pulse {id}
"""


@pytest.fixture
def relay_rack(tmp_path):
    """A rack whose f4-a is switched by relay.sh (it records its calls), and f4-b has no
    power: key."""
    log = tmp_path / "relay.log"
    script(tmp_path / "relay.sh", f'echo "$*" >> "{log}"\n')
    path = write_rack(tmp_path, RELAY,
                      extra="  - {id: f4-b, board: nucleo-f4, probe: 'hilsim:f4-b'}\n")
    return path, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def power_events(path: Path, rack_id: str = "f4-a"):
    with lease_store(load_rack(path)) as store:
        return [e for e in store.health_log(rack_id) if e.kind == "power"]


def test_power_cycle_prints_what_it_did_and_keeps_it_in_the_health_history(relay_rack,
                                                                          capsys):
    path, log = relay_rack
    assert main(["rack", "--rack", str(path), "power", "f4-a", "cycle"]) == 0
    out, err = capsys.readouterr()
    assert out == "f4-a: power cycled (command ./relay.sh pulse f4-a)\n"
    assert "f4-a: switching power cycle" in err  # shown while it runs
    assert calls(log) == ["pulse f4-a"]
    [event] = power_events(path)
    assert (event.step, event.ok) == ("cycle", True) and event.detail.startswith("by hand: ")


def test_a_board_switched_off_by_hand_stays_out_of_service_until_switched_on(relay_rack,
                                                                            capsys):
    path, log = relay_rack
    assert main(["rack", "--rack", str(path), "power", "f4-a", "off"]) == 0
    out, err = capsys.readouterr()
    assert out == "f4-a: power off (command ./relay.sh off f4-a)\n"
    assert "out of service until switched on" in err
    with lease_store(load_rack(path)) as store:
        reason = store.health()["f4-a"].unhealthy_reason
        assert reason.startswith("switched off by hand") and "power f4-a on" in reason
        # no job gets it (and powers it on again): only f4-b is handed out
        assert store.acquire(["f4-a", "f4-b"], wait=None, ttl=60).rack_id == "f4-b"
    assert main(["rack", "--rack", str(path), "power", "f4-a", "on"]) == 0
    assert "back in service" in capsys.readouterr().err
    with lease_store(load_rack(path)) as store:
        assert "f4-a" not in store.health()
        assert store.health_log("f4-a")[-1].kind == "returned"
    assert calls(log) == ["off f4-a", "on f4-a"]


def test_entry_without_power_key_is_refused_with_an_example(relay_rack, capsys):
    path, _ = relay_rack
    assert main(["rack", "--rack", str(path), "power", "f4-b", "off"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"{path}: boards[1]: rack entry 'f4-b' has no power: key" in err
    assert "power:\n      driver: uhubctl" in err  # the example to copy


def test_unknown_entry_and_unknown_action(relay_rack, capsys):
    path, log = relay_rack
    assert main(["rack", "--rack", str(path), "power", "f4-z", "on"]) == ExitCode.USAGE
    assert "no rack entry 'f4-z'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["rack", "--rack", str(path), "power", "f4-a", "reboot"])
    assert exit_.value.code == 2
    assert "invalid choice: 'reboot'" in capsys.readouterr().err
    assert calls(log) == []


def test_board_leased_by_another_holder_is_refused_unless_forced(relay_rack, capsys):
    path, log = relay_rack
    assert main(["rack", "--rack", str(path), "lease", "--board", "nucleo-f4", "--json"]) == 0
    leased = json.loads(capsys.readouterr().out)
    assert leased["board"] == "f4-a"  # f4-b is the other; leases go in file order
    assert main(["rack", "--rack", str(path), "power", "f4-a", "off"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "f4-a is leased by" in err and "for hil rack lease" in err and "--force" in err
    assert calls(log) == []
    assert main(["rack", "--rack", str(path), "power", "f4-a", "off", "--force"]) == 0
    out, err = capsys.readouterr()
    assert "switching anyway (--force)" in err and out.startswith("f4-a: power off")
    assert calls(log) == ["off f4-a"]
    assert "--force over the lease of" in power_events(path)[-1].detail


def test_own_lease_from_hil_lease_needs_no_force(relay_rack, capsys, monkeypatch):
    path, log = relay_rack
    assert main(["rack", "--rack", str(path), "lease", "--board", "nucleo-f4", "--json"]) == 0
    monkeypatch.setenv("HIL_LEASE", json.loads(capsys.readouterr().out)["lease"])
    assert main(["rack", "--rack", str(path), "power", "f4-a", "on"]) == 0
    assert calls(log) == ["on f4-a"]


def test_failed_switch_exits_with_the_infrastructure_code(tmp_path, capsys, monkeypatch):
    recorder(tmp_path / "bin", "uhubctl", tmp_path / "argv.log", exit_code=1,
             stderr="No compatible devices detected at location 1-1.4!")
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    path = write_rack(tmp_path, 'driver: uhubctl\nlocation: "1-1.4"\nport: 2')
    assert main(["rack", "--rack", str(path), "power", "f4-a", "off"]) == \
        ExitCode.INFRASTRUCTURE
    err = capsys.readouterr().err
    assert "f4-a: power off (uhubctl hub 1-1.4 port 2)" in err and "Traceback" not in err
    [event] = power_events(path)
    assert (event.step, event.ok) == ("off", False) and "No compatible devices" in event.detail


def test_uhubctl_entry_through_the_cli(tmp_path, capsys, monkeypatch):
    recorder(tmp_path / "bin", "uhubctl", tmp_path / "argv.log")
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    path = write_rack(tmp_path, 'driver: uhubctl\nlocation: "1-1.4"\nport: 2\noff_time: 1')
    assert main(["rack", "--rack", str(path), "power", "f4-a", "cycle"]) == 0
    assert capsys.readouterr().out == "f4-a: power cycled (uhubctl 1-1.4 port 2)\n"
    assert (tmp_path / "argv.log").read_text() == "-l 1-1.4 -p 2 -a cycle -d 1\n"


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["rack", "power", "--help"])
    out = capsys.readouterr().out
    assert "hil rack power f4-a cycle" in out and "--force" in out


def test_end_to_end_real_uhubctl_without_a_hub(tmp_path):
    # the installed command as a subprocess, with Debian's uhubctl and no hub on this host
    path = write_rack(tmp_path, 'driver: uhubctl\nlocation: "1-1.4"\nport: 2')
    env = {**os.environ, "HIL_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "hil", "rack", "--rack", str(path), "power",
                           "f4-a", "on"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False,
                          timeout=120)
    if "program 'uhubctl' is not installed" in proc.stderr:
        pytest.skip("uhubctl is not installed (Debian package uhubctl)")
    assert proc.returncode == ExitCode.INFRASTRUCTURE, proc.stderr
    assert "f4-a: power on (uhubctl hub 1-1.4 port 2)" in proc.stderr
    assert "No compatible devices detected" in proc.stderr and "Traceback" not in proc.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purposes
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_cancelled_switch_stops_the_command_and_says_how_to_restore_power(tmp_path):
    pid_file = tmp_path / "relay.pid"
    # the relay program's own child (a helper it started) must end too
    script(tmp_path / "relay.sh", f'sleep 120 &\necho $! > "{pid_file}.tmp"\n'
           f'mv "{pid_file}.tmp" "{pid_file}"\nwait\n')
    path = write_rack(tmp_path, RELAY)
    env = {**os.environ, "HIL_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "hil", "rack", "--rack", str(path),
                             "power", "f4-a", "cycle"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # the relay command is running
            if pid_file.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert pid_file.exists(), proc.communicate(timeout=60)
        relay_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "'hil rack power f4-a on' switches it on" in err and "Traceback" not in err
    assert out == ""  # nothing claims it was switched
    for _ in range(200):
        if not _alive(relay_pid):
            break
        time.sleep(0.05)
    assert not _alive(relay_pid)  # the relay command did not outlive the cancel
