"""The one exception tree of hil; only hil.cli turns these into messages and exit codes.

Every error carries what went wrong, where (file, key, address, board) and, in ``hint``,
how to fix it. Each class has its own exit code so scripts and CI can tell failures apart.

Under ``HilError`` two branches say who is to blame:

- ``TestFailure``: the firmware answered wrongly (``ShellError``: an ``ERR`` reply,
  ``ConsoleTimeout``: the expected output never came, ``CrashError``: a fault or lockup;
  a plain ``AssertionError`` in a test counts too). The rig worked; the verdict is "failed".
- ``InfrastructureError``: the rig could not test the firmware (``ConsoleError`` and
  ``ConsoleLost``, ``EmulatorError``, every ``FlashError`` (probe and flash), ``LeaseError``
  and ``LeaseLost``). These count against a rack entry's health.

The rest (``ConfigError``, ``UsageError``, ``ToolchainError``, ``BuildError``,
``NoHardwareError``, ``AuditError``) say the request cannot be done as asked; they are in
neither branch. Retries and board health ask ``is_infrastructure(exc)``, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``hil`` command (documented in README and ``--help``)."""

    OK = 0
    TEST_FAILED = 1
    USAGE = 2  # bad arguments or configuration (board, rack, app files)
    INFRASTRUCTURE = 3  # emulator died, console lost, server unreachable
    NO_HARDWARE = 4  # --require-hardware and no matching board present
    BUILD_FAILED = 5  # compile, link, or the image does not fit
    TOOLCHAIN_MISSING = 6
    FLAKY = 7  # a test failed, then passed on a re-run, and the gate does not allow flaky
    NOT_RUN = 8  # a cell of the test plan could not run (no board with its fixture, ...)
    NO_PROBE = 10
    PROBE_LOST = 11  # probe busy, disconnected or failing mid-operation
    WRONG_CHIP = 12
    FLASH_FAILED = 13  # erase or program failure
    VERIFY_FAILED = 14  # read-back differs from the image
    LEASE_TIMEOUT = 20
    AUDIT_FAILED = 21  # hash chain or signature check failed
    HANGUP = 129  # cancelled by SIGHUP
    INTERRUPTED = 130  # cancelled by SIGINT (Ctrl-C)
    TERMINATED = 143  # cancelled by SIGTERM (a CI job cancelled)


class Cancelled(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) cancelled the run. Not a HilError: like Ctrl-C it
    unwinds every context manager; the exit code is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = int(signum)
        try:
            self.signal_name = signal.Signals(signum).name
        except ValueError:
            self.signal_name = f"signal {signum}"
        super().__init__(f"cancelled by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class HilError(Exception):
    """Root of every error hil raises on purpose."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class TestFailure(HilError):
    """The firmware answered wrongly: the run worked and its verdict is "failed"."""

    __test__ = False  # not a pytest test class, whatever a test module imports it as
    exit_code = ExitCode.TEST_FAILED


class InfrastructureError(HilError):
    """The rig (console, emulator, probe, lease) failed: the firmware was not tested."""

    exit_code = ExitCode.INFRASTRUCTURE


def is_infrastructure(exc: BaseException) -> bool:
    """The one question retries and board health ask: did the rig fail (not the firmware,
    not the request)?"""
    return isinstance(exc, InfrastructureError)


def is_test_failure(exc: BaseException) -> bool:
    """Did the firmware answer wrongly (a TestFailure, or a test's own ``assert``)?"""
    return isinstance(exc, (TestFailure, AssertionError))


def family(exc: BaseException) -> str:
    """``"test"``, ``"infrastructure"`` or ``"error"`` (neither: the request was wrong)."""
    if is_test_failure(exc):
        return "test"
    return "infrastructure" if is_infrastructure(exc) else "error"


def error_class(names: Iterable[str]) -> type[HilError]:
    """The first of hil's own classes named in ``names`` (a class and its bases, most derived
    first, as an error's record carries them); ``HilError`` when none is."""
    known: dict[str, type[HilError]] = {}
    todo: list[type[HilError]] = [HilError]
    while todo:
        cls = todo.pop()
        if cls.__module__.split(".")[0] == "hil":  # not a test suite's class of that name
            known.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    for name in names:
        if name in known:
            return known[name]
    return HilError


class ConfigError(HilError):
    """A board, rack or app file (or a command-line value) is invalid."""

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if key:
                where += f": {key}"
            where += ": "
        elif key:
            where = f"{key}: "
        super().__init__(where + message, hint=hint)
        self.path = path
        self.key = key


class UsageError(HilError):
    """The command line asks for something that cannot be done."""

    exit_code = ExitCode.USAGE


class ToolchainError(HilError):
    """A compiler, linker or other external tool is missing or unusable."""

    exit_code = ExitCode.TOOLCHAIN_MISSING


class BuildError(HilError):
    """Compiling or linking failed, or the image does not fit the board."""

    exit_code = ExitCode.BUILD_FAILED


class ImageError(BuildError):
    """An image is malformed, overflows a region or has data outside every region."""


class PowerError(InfrastructureError):
    """A power switch (hub port, PDU outlet, relay command, virtual board) did not switch."""

    exit_code = ExitCode.INFRASTRUCTURE


class EmulatorError(InfrastructureError):
    """The emulator could not start or died (a guest lockup is a CrashError)."""


class ConsoleError(InfrastructureError):
    """The serial console could not be opened or was lost."""


class NoHardwareError(HilError):
    """Hardware was required and none matching is present."""

    exit_code = ExitCode.NO_HARDWARE


class BoardsUnhealthy(NoHardwareError):
    """Every rack board that could serve is out of service (unhealthy): waiting for a lease
    would wait for nothing, so it is said at once."""


class FlashError(InfrastructureError):
    """Base of flashing errors; ``address`` names where on the chip, when known."""

    exit_code = ExitCode.FLASH_FAILED

    def __init__(self, message: str, *, address: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.address = address


class NoProbeError(FlashError):
    exit_code = ExitCode.NO_PROBE


class ProbeLostError(FlashError):
    exit_code = ExitCode.PROBE_LOST


class WrongChipError(FlashError):
    exit_code = ExitCode.WRONG_CHIP


class FlashProgramError(FlashError):
    """Erase or program failed at ``address``."""

    exit_code = ExitCode.FLASH_FAILED


class VerifyError(FlashError):
    """Read-back differs from the image; ``address`` is the first differing byte."""

    exit_code = ExitCode.VERIFY_FAILED


class LeaseError(InfrastructureError):
    """The lease store failed, or no rack entry can be leased."""


class LeaseTimeout(LeaseError):
    """No matching rack entry became free in time."""

    exit_code = ExitCode.LEASE_TIMEOUT


class LeaseLost(LeaseError):
    """A held lease was lost while in use (the store was unreachable, or another holder took
    the entry after it expired)."""


class AuditError(HilError):
    exit_code = ExitCode.AUDIT_FAILED


class RecoveryFailed(InfrastructureError):
    """The recovery ladder (hil.recovery) climbed to its top and the board still did not
    answer: the board is out of service and the job needs another one."""
