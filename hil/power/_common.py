"""What the power drivers share: reading a time key, and running a switching program bounded.

Only hil's own drivers use this; a site's driver may too, but the interface is
``hil.power.PowerDriver``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hil.errors import PowerError
from hil.schema import Reader

#: How long one switching program or request may take unless the rack entry says otherwise.
DEFAULT_TIMEOUT_S = 30.0
MAX_SECONDS = 3600.0


def seconds(r: Reader, name: str, default: float, *, minimum: float = 0.0,
            maximum: float = MAX_SECONDS) -> float:
    """A duration key in seconds (an integer or a decimal number), within the range."""
    value: Any = r.raw(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise r.error(name, f"expected a number of seconds, got {type(value).__name__} "
                      f"{value!r}", hint=f"write e.g. '{name}: 2' or '{name}: 0.5'")
    if not math.isfinite(value) or value < minimum or value > maximum:
        raise r.error(name, f"must be between {minimum:g} and {maximum:g} seconds, got "
                      f"{value!r}")
    return float(value)


def tail(text: str, lines: int = 6, chars: int = 600) -> str:
    """The last few lines of a program's output, for an error message."""
    kept = "\n".join(line.rstrip() for line in text.strip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "..." + kept[-chars:]


def run_program(argv: Sequence[str], *, timeout: float, what: str,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one switching program to its end within ``timeout`` seconds, output captured.

    A program that cannot start or does not finish in time is a PowerError naming ``what``
    (the rack entry and driver); the caller judges the exit status. The program is stopped
    when the run is cancelled (hil.procs)."""
    from hil import procs

    program = argv[0]
    if "/" not in program and shutil.which(program) is None:
        raise PowerError(f"{what}: program '{program}' is not installed (not on PATH)",
                         hint="install it, or give its full path")
    try:
        return procs.run(list(argv), timeout=timeout, capture_output=True, text=True,
                         errors="replace", stdin=subprocess.DEVNULL, cwd=cwd,
                         start_new_session=True)  # a stop ends its children too
    except subprocess.TimeoutExpired:
        raise PowerError(f"{what}: '{' '.join(argv)}' did not finish within {timeout:g} s",
                         hint="is the switch reachable? raise the entry's 'timeout' key "
                         "if it is just slow") from None
    except OSError as exc:
        raise PowerError(f"{what}: cannot run '{program}': {exc.strerror or exc}",
                         hint="check the path and that the file is executable") from None
