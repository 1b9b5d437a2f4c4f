"""A real ``pyocd server`` for one probe on loopback, as a rack host runs it for a board."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVING = re.compile(r"Serving debug probe .* on port (\d+)")


@contextmanager
def pyocd_server(probe: str, log: Path, env: dict[str, str] | None = None, *,
                 start_timeout: float = 60.0) -> Iterator[int]:
    """Run ``pyocd server`` for ``probe`` on a loopback port it picks itself (``-p 0``: no
    port to race for); yield that port, then stop the server."""
    pyocd = str(Path(sys.executable).parent / "pyocd")
    with open(log, "w") as out:
        proc = subprocess.Popen([pyocd, "server", "--probe", probe, "-p", "0", "--no-config",
                                 "-W"], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ) if env is None else env)
    try:
        deadline = time.monotonic() + start_timeout
        serving = None
        while serving is None and time.monotonic() < deadline and proc.poll() is None:
            serving = SERVING.search(log.read_text())
            time.sleep(0.05)
        if serving is None:
            pytest.fail(f"pyocd server did not start: {log.read_text()}")
        yield int(serving.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
