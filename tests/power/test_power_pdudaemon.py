"""The pdudaemon power driver against the real pdudaemon (Debian's), started here on a loopback
port with a PDU whose driver (pdudaemon's localcmdline) writes each switch to a file; and the
errors when the server is down, silent, or does not know the PDU. Loopback only."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from powersupport import driver, write_rack

from hil.errors import PowerError

PDUDAEMON = shutil.which("pdudaemon") or "/usr/sbin/pdudaemon"
needs_pdudaemon = pytest.mark.skipif(not Path(PDUDAEMON).exists(), reason="pdudaemon is not "
                                     "installed (Debian package pdudaemon; make installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pdu_server(tmp_path):
    """A real pdudaemon on 127.0.0.1 with PDU 'bench-pdu' (localcmdline: each switch appends
    'PORT on|off' to outlets.log); yields (port, outlets.log); stopped afterwards."""
    outlets = tmp_path / "outlets.log"
    port = free_port()
    config = {
        "daemon": {"hostname": "127.0.0.1", "port": port, "listener": "http",
                   "logging_level": "DEBUG"},
        "pdus": {"bench-pdu": {
            "driver": "localcmdline",
            "cmd_on": f"echo '%s on' >> {shlex.quote(str(outlets))}",
            "cmd_off": f"echo '%s off' >> {shlex.quote(str(outlets))}",
        }},
    }
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(config))
    log = tmp_path / "pdudaemon.log"
    proc = subprocess.Popen([PDUDAEMON, "--conf", str(conf), "--logfile", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"pdudaemon exited: {log.read_text()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                         timeout=1):
                break
            assert time.monotonic() < deadline, f"pdudaemon did not listen: {log.read_text()}"
            time.sleep(0.1)
        yield port, outlets
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def outlet_log(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


@needs_pdudaemon
def test_real_pdudaemon_switches_the_outlet(tmp_path, pdu_server):
    port, outlets = pdu_server
    power = driver(write_rack(tmp_path, f"""
        driver: pdudaemon
        server: "127.0.0.1:{port}"
        pdu: bench-pdu
        port: 3
        delay: 0
    """))
    power.off()
    assert outlet_log(outlets) == ["3 off"]
    power.on()
    assert outlet_log(outlets) == ["3 off", "3 on"]
    power.cycle()  # pdudaemon's reboot: off, the delay, on
    assert outlet_log(outlets) == ["3 off", "3 on", "3 off", "3 on"]
    assert power.describe() == f"pdudaemon 127.0.0.1:{port} pdu bench-pdu port 3"


@needs_pdudaemon
def test_unknown_pdu_is_a_power_error_naming_server_and_pdu(tmp_path, pdu_server):
    port, outlets = pdu_server
    power = driver(write_rack(tmp_path, f"""
        driver: pdudaemon
        server: "127.0.0.1:{port}"
        pdu: lab-pdu-9
        port: 3
    """))
    with pytest.raises(PowerError) as err:
        power.on()
    text = str(err.value)
    assert f"pdudaemon 127.0.0.1:{port}, pdu lab-pdu-9 port 3" in text
    assert "HTTP 500" in text and "'pdus' section" in text
    assert outlet_log(outlets) == []


def test_server_down_is_a_power_error_naming_server_and_pdu(tmp_path):
    port = free_port()  # nothing listens there
    power = driver(write_rack(tmp_path, f"""
        driver: pdudaemon
        server: "127.0.0.1:{port}"
        pdu: bench-pdu
        port: 1
    """))
    with pytest.raises(PowerError) as err:
        power.cycle()
    text = str(err.value)
    assert f"f4-a: power cycle (pdudaemon 127.0.0.1:{port}, pdu bench-pdu port 1)" in text
    assert "cannot reach pdudaemon" in text and "Connection refused" in text


def test_silent_server_is_bounded_by_the_timeout(tmp_path):
    # a loopback socket that accepts connections and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        power = driver(write_rack(tmp_path, f"""
            driver: pdudaemon
            server: "127.0.0.1:{port}"
            pdu: bench-pdu
            port: 1
            timeout: 0.5
        """))
        with pytest.raises(PowerError, match=r"pdu bench-pdu port 1\).*(timed out|within "
                           r"0.5 s)"):
            power.off()


def test_default_port_and_request_urls(tmp_path):
    power = driver(write_rack(tmp_path, """
        driver: pdudaemon
        server: pdu-host
        pdu: lab pdu
        port: 4
        delay: 3
    """))
    assert power.url("on") == "http://pdu-host:16421/power/control/on?hostname=lab+pdu&port=4"
    assert power.url("cycle") == ("http://pdu-host:16421/power/control/reboot?"
                                  "hostname=lab+pdu&port=4&delay=3")
