"""The one place that turns test-run outcomes into the ``hil`` exit code."""

from __future__ import annotations

from collections.abc import Iterable

from hil.errors import Cancelled, ExitCode
from hil.outcome import Outcome, OutcomeKind

# Between boards, after a cancel, the most serious outcome wins in this order; other codes
# (build, toolchain, flash, lease timeout, audit) come after these, lowest first.
_PRIORITY = (ExitCode.USAGE, ExitCode.NO_HARDWARE, ExitCode.INFRASTRUCTURE,
             ExitCode.TEST_FAILED)


def outcome_code(outcome: Outcome) -> int:
    """One board's code: 0 passed, the deciding error class's own code (1 for a test
    failure, 3 infrastructure, 10-14 flashing, ...), 7 flaky, 8 not run, 128 + the signal
    when cancelled."""
    if outcome.kind == OutcomeKind.PASSED:
        return int(ExitCode.OK)
    if outcome.kind == OutcomeKind.CANCELLED:
        return Cancelled(outcome.signum or 2).exit_code
    if outcome.kind == OutcomeKind.FLAKY:
        return int(ExitCode.FLAKY)
    if outcome.kind == OutcomeKind.NOT_RUN:
        return int(ExitCode.NOT_RUN)
    if outcome.error is not None:
        return int(outcome.error.error_class.exit_code)
    if outcome.kind == OutcomeKind.FAILED:
        return int(ExitCode.TEST_FAILED)
    return int(ExitCode.INFRASTRUCTURE)


def exit_code_for(outcomes: Iterable[Outcome]) -> int:
    """The exit code of a run over several boards: a cancellation first (the first cancelled
    board's signal), then usage > no hardware > infrastructure > test failed, then any other
    error code (lowest first), else 0."""
    outcomes = list(outcomes)
    cancelled = next((o for o in outcomes if o.kind == OutcomeKind.CANCELLED), None)
    if cancelled is not None:
        return outcome_code(cancelled)
    codes = {outcome_code(o) for o in outcomes}
    for code in _PRIORITY:
        if int(code) in codes:
            return int(code)
    others = sorted(c for c in codes if c != ExitCode.OK)
    return others[0] if others else int(ExitCode.OK)
