"""Find the processes a test started, by a marker in their environment (children inherit
it): what a cancelled or finished run must not leave behind."""

from __future__ import annotations

import os


def processes_marked(variable: str, marker: str, *, width: int = 200) -> list[str]:
    """Live processes whose environment has ``variable=marker`` (zombies do not count), as
    ``"PID: command line"``."""
    needle = f"{variable}={marker}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ and state != b"Z":
            found.append(f"{pid}: {cmdline[:width]}")
    return found


# For the suites tests write and run in a pytest child (they cannot import this module): the
# QEMU processes that child started (the board it runs on), to stop or kill one mid-test.
# Needs ``os`` and ``Path`` imported by the suite.
QEMU_CHILDREN_SOURCE = '''def _qemu_children():
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"qemu-system" in cmd:
            yield int(d.name)
'''
