"""Outcomes -> the hil exit code: one board, and the most serious of several boards."""

from __future__ import annotations

import pytest

from hil.cli._exit import exit_code_for, outcome_code
from hil.console import ConsoleLost, ConsoleTimeout
from hil.errors import (
    BuildError,
    ExitCode,
    FlashProgramError,
    InfrastructureError,
    LeaseLost,
    LeaseTimeout,
    NoHardwareError,
    ProbeLostError,
    UsageError,
    VerifyError,
)
from hil.outcome import ErrorRecord, Outcome, OutcomeKind

PASSED = Outcome.passed()
FAILED = Outcome.failed()
TIMEOUT = Outcome.failed(ConsoleTimeout("no READY", last_lines=[], transcript=None))
LOST = Outcome.of_error(ConsoleLost("socket closed"))
USAGE = Outcome.of_error(UsageError("no tests collected"))
NO_HW = Outcome.of_error(NoHardwareError("no nucleo-f4 on the rack"))
FLASH = Outcome.of_error(FlashProgramError("erase failed", address=0x08004000))
VERIFY = Outcome.of_error(VerifyError("read-back differs", address=0x08000010))
BUILD = Outcome.of_error(BuildError("link failed"))
LEASE_TIMEOUT = Outcome.of_error(LeaseTimeout("no free board in 5 s"))


@pytest.mark.parametrize(("outcome", "kind", "code"), [
    pytest.param(PASSED, OutcomeKind.PASSED, 0, id="passed"),
    pytest.param(FAILED, OutcomeKind.FAILED, 1, id="a-test-failed"),
    pytest.param(TIMEOUT, OutcomeKind.FAILED, 1, id="console-timeout"),
    pytest.param(USAGE, OutcomeKind.ERROR, 2, id="usage"),
    pytest.param(LOST, OutcomeKind.INFRASTRUCTURE, 3, id="console-lost"),
    pytest.param(Outcome.of_error(LeaseLost("lease gone")), OutcomeKind.INFRASTRUCTURE, 3,
                 id="lease-lost"),
    pytest.param(Outcome.of_error(InfrastructureError("pytest internal error (exit 3)")),
                 OutcomeKind.INFRASTRUCTURE, 3, id="pytest-internal-error"),
    pytest.param(NO_HW, OutcomeKind.ERROR, 4, id="no-hardware"),
    pytest.param(BUILD, OutcomeKind.ERROR, 5, id="build-failed"),
    pytest.param(Outcome.of_error(ProbeLostError("probe gone")), OutcomeKind.INFRASTRUCTURE,
                 11, id="probe-lost"),
    pytest.param(FLASH, OutcomeKind.INFRASTRUCTURE, 13, id="flash-failed"),
    pytest.param(VERIFY, OutcomeKind.INFRASTRUCTURE, 14, id="verify-failed"),
    pytest.param(LEASE_TIMEOUT, OutcomeKind.INFRASTRUCTURE, 20, id="lease-timeout"),
    pytest.param(Outcome.cancelled(1), OutcomeKind.CANCELLED, 129, id="sighup"),
    pytest.param(Outcome.cancelled(2), OutcomeKind.CANCELLED, 130, id="sigint"),
    pytest.param(Outcome.cancelled(15), OutcomeKind.CANCELLED, 143, id="sigterm"),
])
def test_one_board(outcome: Outcome, kind: OutcomeKind, code: int):
    assert outcome.kind == kind
    assert outcome_code(outcome) == code
    assert exit_code_for([outcome]) == code


def test_an_error_read_back_from_the_plugin_keeps_its_code():
    record = ErrorRecord.from_dict(ErrorRecord.of(VerifyError("differs")).as_dict())
    assert exit_code_for([Outcome.of_error(record)]) == ExitCode.VERIFY_FAILED


@pytest.mark.parametrize(("outcomes", "code"), [
    pytest.param([], 0, id="nothing-ran"),
    pytest.param([PASSED, PASSED], 0, id="all-passed"),
    pytest.param([PASSED, FAILED], 1, id="one-failed"),
    pytest.param([FAILED, LOST], 3, id="infrastructure-over-test-failure"),
    pytest.param([LOST, NO_HW], 4, id="no-hardware-over-infrastructure"),
    pytest.param([NO_HW, USAGE, LOST], 2, id="usage-over-everything"),
    pytest.param([FAILED, Outcome.cancelled(2), LOST], 130, id="cancel-over-everything"),
    pytest.param([Outcome.cancelled(15), Outcome.cancelled(2)], 143, id="first-cancel-wins"),
    pytest.param([PASSED, Outcome.cancelled(1)], 129, id="sighup"),
    pytest.param([FLASH, FAILED], 1, id="test-failure-over-flash-code"),
    pytest.param([VERIFY, FLASH, BUILD], 5, id="other-codes-lowest-first"),
    pytest.param([LEASE_TIMEOUT, PASSED], 20, id="lease-timeout"),
    pytest.param([TIMEOUT, PASSED, FLASH], 1, id="timeout-is-a-test-failure"),
])
def test_several_boards_most_serious_wins(outcomes: list[Outcome], code: int):
    assert exit_code_for(outcomes) == code
