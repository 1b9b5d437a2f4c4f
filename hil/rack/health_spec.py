"""What a board's health check runs (rack.yaml ``health:``): the golden image, the smoke
exchange, the re-check cool-down. Plain data, parsed with the Reader (no I/O but a path
check).

    health:                      # top level: every board (all keys optional)
      recheck_after: 600         # seconds an unhealthy board waits before its re-check
      golden: shell              # an app of the project, or a .hex/.elf path (relative to
                                 # the rack file); default: hil's built-in shell example
      timeout: 10                # seconds each smoke step may wait
      smoke:                     # console exchanges, in order
        - expect: READY          # a regex one line must match (searched; \\r stripped)
        - send: ping             # a line sent first, then the reply lines must match
          expect: [^pong$, ^OK$] # ... one pattern or several, matched in order
    boards:
      - id: f4-a
        ...
        health: {golden: build/f4/selftest.hex}   # per board: any of the keys above
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from hil.schema import Reader

DEFAULT_RECHECK_AFTER = 600.0
DEFAULT_STEP_TIMEOUT = 10.0
MAX_SECONDS = 7 * 24 * 3600.0
IMAGE_SUFFIXES = (".hex", ".ihex", ".elf")


@dataclass(frozen=True)
class SmokeStep:
    """One console exchange: send ``send`` (if any), then lines must match ``expect`` in
    order."""

    send: str | None
    expect: tuple[str, ...]

    def describe(self) -> str:
        shown = " then ".join(f"/{p}/" for p in self.expect)
        return f"'{self.send}' -> {shown}" if self.send is not None else f"wait for {shown}"


# the shell's contract (firmware_examples/shell/README.md): READY at boot, `ping` -> pong, OK
DEFAULT_SMOKE = (SmokeStep(None, ("^READY$",)), SmokeStep("ping", ("^pong$", "^OK$")))


@dataclass(frozen=True)
class HealthSpec:
    """A board's health check. ``golden``: None is hil's built-in shell example; an app name
    (``golden_path`` None) or an image file (``golden_path`` set). ``where`` names the rack
    file key it came from, for errors found at check time."""

    golden: str | None = None
    golden_path: Path | None = None
    smoke: tuple[SmokeStep, ...] = DEFAULT_SMOKE
    timeout: float = DEFAULT_STEP_TIMEOUT
    recheck_after: float = DEFAULT_RECHECK_AFTER
    where: str = "health"

    @property
    def golden_name(self) -> str:
        """For humans: ``shell (built in)``, an app name, or the image path."""
        if self.golden_path is not None:
            return str(self.golden_path)
        return self.golden or "shell (built in)"


DEFAULT_HEALTH = HealthSpec()


def _seconds(r: Reader, name: str, default: float, minimum: float) -> float:
    value = r.raw(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise r.error(name, f"expected a number of seconds, got {value!r}",
                      hint=f"e.g. {name}: {default:g}")
    if not minimum <= value <= MAX_SECONDS:
        raise r.error(name, f"must be between {minimum:g} and {MAX_SECONDS:g} seconds, got "
                      f"{value:g}")
    return float(value)


def _pattern(r: Reader, key: str, text: object) -> str:
    if not isinstance(text, str) or not text:
        raise r.error(key, f"expected a regular expression, got {text!r}",
                      hint="quote it, e.g. expect: '^pong$'")
    try:
        re.compile(text)
    except re.error as exc:
        raise r.error(key, f"'{text}' is not a regular expression: {exc}",
                      hint="escape special characters with a backslash") from None
    return text


def _smoke(r: Reader) -> tuple[SmokeStep, ...]:
    steps = []
    for s in r.items("smoke"):
        send = s.str("send", None)
        if send is not None and ("\n" in send or "\r" in send):
            raise s.error("send", "must be one line (the line ending is added)")
        raw = s.raw("expect", None if send is not None else ...)
        if raw is None:  # a send alone: fire and forget
            patterns: tuple[str, ...] = ()
        elif isinstance(raw, list):
            if not raw:
                raise s.error("expect", "an empty list expects nothing",
                              hint="give one pattern or leave the key out")
            patterns = tuple(_pattern(s, f"expect[{j}]", p) for j, p in enumerate(raw))
        else:
            patterns = (_pattern(s, "expect", raw),)
        s.done()
        steps.append(SmokeStep(send, patterns))
    if not steps:
        raise r.error("smoke", "an empty smoke test checks nothing",
                      hint="leave 'smoke' out for the shell's ping, or list exchanges")
    return tuple(steps)


def parse_health(r: Reader, name: str, base: HealthSpec) -> HealthSpec:
    """The ``health:`` mapping under ``r`` (``name``), over ``base``; ``base`` when absent.

    Raises ConfigError naming the rack file and key (unknown key, bad number, bad regex,
    missing golden image file)."""
    if not r.has(name):
        r.raw(name, None)  # a null value counts as given
        return base
    h = r.sub(name)
    assert h is not None
    spec = replace(base, where=h.key)
    if h.has("recheck_after"):
        spec = replace(spec, recheck_after=_seconds(h, "recheck_after",
                                                    DEFAULT_RECHECK_AFTER, 0.0))
    if h.has("timeout"):
        spec = replace(spec, timeout=_seconds(h, "timeout", DEFAULT_STEP_TIMEOUT, 0.1))
    if h.has("golden"):
        golden = h.str("golden")
        if golden.lower().endswith(IMAGE_SUFFIXES) or "/" in golden:
            path = Path(golden).expanduser()
            if not path.is_absolute():
                path = h.path.parent / path
            if not path.is_file():
                raise h.error("golden", f"golden image {path} does not exist",
                              hint="build it first, or name an app of the project (e.g. "
                              "golden: shell)")
            spec = replace(spec, golden=None, golden_path=path)
        else:
            spec = replace(spec, golden=golden, golden_path=None)
    if h.has("smoke"):
        spec = replace(spec, smoke=_smoke(h))
    h.done(known=("recheck_after", "timeout", "golden", "smoke"))
    return spec
