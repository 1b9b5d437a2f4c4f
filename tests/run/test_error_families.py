"""The error tree's two branches: what is a test failure, what is the rig's failure, and the
exit code of each class (unchanged by the split)."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import hil.build
import hil.console
import hil.crash
from hil import errors
from hil.errors import HilError, is_infrastructure, is_test_failure

FAULT = ("FAULT BusFault CFSR=00008200 HFSR=00000000 MMFAR=00000000 BFAR=fffffff0 "
         "PC=08000abc LR=08000a01")

# every class hil defines: (family, exit code)
EXPECTED = {
    "HilError": ("error", 3),
    "TestFailure": ("test", 1),
    "ShellError": ("test", 1),
    "ConsoleTimeout": ("test", 1),
    "CrashError": ("test", 1),
    "InfrastructureError": ("infrastructure", 3),
    "EmulatorError": ("infrastructure", 3),
    "ConsoleError": ("infrastructure", 3),
    "ConsoleLost": ("infrastructure", 3),
    "FlashError": ("infrastructure", 13),
    "NoProbeError": ("infrastructure", 10),
    "ProbeLostError": ("infrastructure", 11),
    "WrongChipError": ("infrastructure", 12),
    "FlashProgramError": ("infrastructure", 13),
    "VerifyError": ("infrastructure", 14),
    "LeaseError": ("infrastructure", 3),
    "LeaseTimeout": ("infrastructure", 20),
    "LeaseLost": ("infrastructure", 3),
    "ConfigError": ("error", 2),
    "UsageError": ("error", 2),
    "ToolchainError": ("error", 6),
    "BuildError": ("error", 5),
    "ImageError": ("error", 5),
    "FootprintError": ("error", 5),
    "_ToolFailed": ("error", 5),
    "NoHardwareError": ("error", 4),
    "BoardsUnhealthy": ("error", 4),
    "AuditError": ("error", 21),
    "PowerError": ("infrastructure", 3),
    "RecoveryFailed": ("infrastructure", 3),
    "StepFailed": ("infrastructure", 3),
    "SmokeFailed": ("test", 1),
    "SectorLayoutError": ("error", 2),
    "SectorLayoutFault": ("error", 2),
}


def _all_classes() -> dict[str, type[HilError]]:
    for info in pkgutil.walk_packages(hil.__path__, "hil."):  # every error class hil defines
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: dict[str, type[HilError]] = {}
    todo: list[type[HilError]] = [HilError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("hil."):
            found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _instance(cls: type[HilError]) -> HilError:
    if issubclass(cls, hil.console.ShellError):
        return cls("led 9", "no such led", [])
    if issubclass(cls, hil.console.ConsoleTimeout):
        return cls("no READY", last_lines=["boot"], transcript=None)
    if issubclass(cls, hil.crash.CrashError):
        crash = hil.crash.parse_fault_line(FAULT)
        assert crash is not None
        return cls(crash)
    if cls.__name__ == "SmokeFailed":
        return cls("no pong from ping", ["boot"])  # type: ignore[call-arg]
    if cls is hil.build._ToolFailed:
        return cls("compile main.c", "main.c:1: error", ["gcc"])
    return cls("something went wrong")


def test_every_class_is_classified():
    assert set(_all_classes()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_family_and_exit_code_of_each_class(name: str):
    exc = _instance(_all_classes()[name])
    family, code = EXPECTED[name]
    assert errors.family(exc) == family
    assert is_infrastructure(exc) == (family == "infrastructure")
    assert is_test_failure(exc) == (family == "test")
    assert int(exc.exit_code) == code


def test_a_plain_assert_is_a_test_failure_and_other_exceptions_are_neither():
    assert is_test_failure(AssertionError("1 != 2"))
    assert not is_infrastructure(AssertionError("1 != 2"))
    for exc in (OSError("disk full"), ValueError("x"), KeyboardInterrupt()):
        assert errors.family(exc) == "error"
        assert not is_infrastructure(exc) and not is_test_failure(exc)


def test_cancel_is_neither_family():
    cancel = errors.Cancelled(15)
    assert not is_infrastructure(cancel) and not is_test_failure(cancel)
    assert cancel.exit_code == 143


def test_shell_errors_and_timeouts_are_no_longer_console_errors():
    """Catching ConsoleError (the console could not be opened or was lost) no longer
    swallows a wrong answer from the firmware."""
    assert not issubclass(hil.console.ShellError, errors.ConsoleError)
    assert not issubclass(hil.console.ConsoleTimeout, errors.ConsoleError)
    assert issubclass(hil.console.ConsoleLost, errors.ConsoleError)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_record_survives_json_and_names_its_class(name: str, tmp_path: Path):
    from hil.outcome import ErrorRecord

    exc = _instance(_all_classes()[name])
    path = tmp_path / "run-info.jsonl"
    path.write_text(json.dumps({"error": ErrorRecord.of(exc).as_dict()}) + "\n")
    record = ErrorRecord.from_dict(json.loads(path.read_text())["error"])
    assert record.name == name
    assert record.family == EXPECTED[name][0]
    assert record.message == str(exc)
    assert record.error_class is type(exc)


def test_record_of_an_unknown_class_falls_back_to_its_nearest_known_base():
    """A suite's own subclass (unknown to the hil test process) keeps its base's meaning."""
    from hil.outcome import ErrorRecord

    record = ErrorRecord.from_dict({"chain": ["MyBenchError", "VerifyError", "FlashError",
                                              "InfrastructureError", "HilError"],
                                    "family": "infrastructure", "message": "byte 3 differs"})
    assert record.error_class is errors.VerifyError
    assert ErrorRecord.from_dict({"chain": ["Nope"], "message": "m"}).error_class is HilError
    garbled = ErrorRecord.from_dict("not a record")
    assert garbled.error_class is HilError and garbled.message == "not a record"


def test_a_suite_class_of_the_same_name_never_stands_in_for_hils_own():
    class ConsoleLost(errors.TestFailure):  # a test suite's own class, not hil's
        pass

    assert errors.error_class(["ConsoleLost", "TestFailure"]) is hil.console.ConsoleLost
    assert errors.error_class([ConsoleLost.__name__]).exit_code == errors.ExitCode.INFRASTRUCTURE
