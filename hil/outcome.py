"""How a test run ended, as data: an ``Outcome`` per board run; ``hil.cli`` maps it to a code.

A run is ``passed``, ``failed`` (the firmware answered wrongly), ``infrastructure`` (the rig
failed: console, emulator, probe, lease), ``error`` (the request could not be done: no tests,
bad suite, no hardware, build) or ``cancelled`` (by a signal); a cell of ``hil test``'s plan
may also be ``flaky`` (failed, then passed on a re-run) or ``not-run``. The error that decided it is
kept as an ``ErrorRecord`` (its class, the class's bases and its message), which survives the
JSON run-info file the pytest plugin writes in its own process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from hil.errors import HilError, error_class, family


class OutcomeKind(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    INFRASTRUCTURE = "infrastructure"
    CANCELLED = "cancelled"
    FLAKY = "flaky"  # the test plan: failed, then passed on a re-run
    NOT_RUN = "not-run"  # the test plan: no board could run it


@dataclass(frozen=True)
class ErrorRecord:
    """A ``HilError`` as data: ``chain`` is its class and bases up to ``HilError``, most
    derived first; ``family`` is ``test``, ``infrastructure`` or ``error``."""

    chain: tuple[str, ...]
    family: str
    message: str

    @classmethod
    def of(cls, exc: HilError) -> ErrorRecord:
        chain = tuple(c.__name__ for c in type(exc).__mro__
                      if isinstance(c, type) and issubclass(c, HilError))
        return cls(chain, family(exc), str(exc))

    @classmethod
    def from_dict(cls, data: object) -> ErrorRecord:
        """The record as ``as_dict`` wrote it; a malformed one is an unknown HilError."""
        if not isinstance(data, dict):
            return cls(("HilError",), "error", str(data))
        chain = data.get("chain")
        if not isinstance(chain, list) or not all(isinstance(c, str) for c in chain):
            chain = ["HilError"]
        return cls(tuple(chain), str(data.get("family", "error")),
                   str(data.get("message", "")))

    def as_dict(self) -> dict[str, object]:
        return {"chain": list(self.chain), "family": self.family, "message": self.message}

    @property
    def name(self) -> str:
        return self.chain[0] if self.chain else "HilError"

    @property
    def error_class(self) -> type[HilError]:
        """The most derived class of the chain known in this process."""
        return error_class(self.chain)


_KIND_OF_FAMILY = {"test": OutcomeKind.FAILED, "infrastructure": OutcomeKind.INFRASTRUCTURE,
                   "error": OutcomeKind.ERROR}


@dataclass(frozen=True)
class Outcome:
    """How one board run ended: its kind, the test counts, and the error or signal that
    decided it (``error`` for failed/error/infrastructure when one did, ``signum`` for
    cancelled)."""

    kind: OutcomeKind
    error: ErrorRecord | None = None
    signum: int | None = None
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def passed(cls) -> Outcome:
        return cls(OutcomeKind.PASSED)

    @classmethod
    def failed(cls, exc: HilError | None = None) -> Outcome:
        return cls(OutcomeKind.FAILED, ErrorRecord.of(exc) if exc is not None else None)

    @classmethod
    def cancelled(cls, signum: int) -> Outcome:
        return cls(OutcomeKind.CANCELLED, signum=int(signum))

    @classmethod
    def of_error(cls, error: HilError | ErrorRecord) -> Outcome:
        """The outcome an error decides: its family's kind."""
        record = error if isinstance(error, ErrorRecord) else ErrorRecord.of(error)
        return cls(_KIND_OF_FAMILY.get(record.family, OutcomeKind.ERROR), record)

    def with_counts(self, counts: Mapping[str, int]) -> Outcome:
        return Outcome(self.kind, self.error, self.signum, MappingProxyType(dict(counts)))

    @property
    def ok(self) -> bool:
        return self.kind == OutcomeKind.PASSED
