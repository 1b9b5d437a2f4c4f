"""Terminal output helpers shared by the subcommands: tables, usage bars, progress."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

_live_writer: list[Callable[[str], None]] = []  # the writer behind ``live``, if any


def live(text: str) -> None:
    """Say ``text`` on stderr now. A long step (a wait for a board, a recovery climbing its
    ladder) must show while it happens, also inside a pytest test, whose output is held
    until the test ends: there hil's plugin installs a writer that suspends the capture."""
    if _live_writer and threading.current_thread() is threading.main_thread():
        _live_writer[0](text)
    else:
        print(text, file=sys.stderr, flush=True)


def set_live_writer(writer: Callable[[str], None] | None) -> None:
    """Install (None: remove) the writer behind ``live``."""
    _live_writer[:] = [writer] if writer is not None else []


def bar(fraction: float, width: int = 20) -> str:
    """A usage bar such as '[#######.............]'."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def human_size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)}M"
    if n >= 1024:
        return f"{n / 1024:.1f}K".replace(".0K", "K")
    return f"{n}B"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]],
          out: TextIO | None = None) -> None:
    """Print a left-aligned plain-text table."""
    out = out or sys.stdout
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
    print(line, file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip(), file=out)


class Progress:
    """A one-line progress bar on a TTY, plain lines otherwise (CI logs stay readable)."""

    def __init__(self, label: str, out: TextIO | None = None) -> None:
        self.label = label
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self._last_tenth = -1

    def update(self, fraction: float, phase: str = "") -> None:
        text = f"{self.label}{' ' + phase if phase else ''}"
        if self.tty:
            print(f"\r{text} {bar(fraction, 30)} {fraction * 100:5.1f}%", end="",
                  file=self.out, flush=True)
            return
        tenth = int(fraction * 10)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            print(f"{text}: {fraction * 100:.0f}%", file=self.out, flush=True)

    def done(self, message: str = "") -> None:
        if self.tty:
            print(file=self.out)
        if message:
            print(message, file=self.out, flush=True)
