"""What starts the ladder: an infrastructure failure, or a console wait in which not one
byte arrived (a hung board); a wait that saw output is the firmware's answer, not a hang."""

from __future__ import annotations

import pytest

from hil.console import Console, ConsoleTimeout, ShellError
from hil.errors import ConsoleError, LeaseLost, RecoveryFailed
from hil.recovery import needs_recovery


def test_a_wait_with_nothing_received_is_silent():
    with Console("loop://", timeout=0.3) as console:
        with pytest.raises(ConsoleTimeout) as err:
            console.expect("READY")
    assert err.value.silent and needs_recovery(err.value)


def test_a_wait_that_saw_output_is_not_silent():
    with Console("loop://", timeout=0.3) as console:
        console.send("something else")  # loop:// hands it back: output, just not READY
        with pytest.raises(ConsoleTimeout) as err:
            console.expect("READY")
    assert not err.value.silent and not needs_recovery(err.value)


@pytest.mark.parametrize(("exc", "climb"), [
    pytest.param(ConsoleError("console lost"), True, id="console-lost"),
    pytest.param(ShellError("ping", "busy", []), False, id="shell-error"),
    pytest.param(LeaseLost("lease lost"), False, id="lease-lost"),
    pytest.param(RecoveryFailed("gave up"), False, id="recovery-failed"),
    pytest.param(AssertionError("wrong"), False, id="assertion"),
])
def test_which_failures_start_the_ladder(exc, climb):
    assert needs_recovery(exc) is climb
