"""Child processes and cancellation: every process hil starts, and how a signal ends a run.

Every child (compilers, pytest, QEMU, OpenOCD, version probes) is started through ``popen``,
``run`` or ``call``, which set PR_SET_PDEATHSIG (the child gets ``pdeathsig`` when its parent
dies, even by SIGKILL) and keep the child in a registry while it runs.

``cancel_on_signals()`` (installed by the ``hil`` CLI and by the pytest plugin of a
``hil test`` run) turns the first SIGINT, SIGTERM or SIGHUP into a ``Cancelled`` exception in
the main thread, after sending SIGTERM to every registered child, so worker threads waiting
on their children return too. Context managers unwind: executors stop QEMU, leases are
released, temporary files removed. A second signal sends SIGKILL to the children and
raises nothing, so the cleanup that the first one started is not interrupted. A signal
ignored when hil starts (``nohup``, a shell's background job) stays ignored.

PR_SET_PDEATHSIG follows the *thread* that forked: a child started from a thread that ends
before the child does is killed then. ``run`` and ``call`` wait in the thread that started
the child, so they are safe from worker threads; a long-lived child from ``popen`` must be
started from a thread that outlives it (the main thread, as the executors are).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hil.errors import Cancelled

PR_SET_PDEATHSIG = 1
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 3.0  # a child asked to stop gets this long before SIGKILL

_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None

_LIVE: dict[int, subprocess.Popen[Any]] = {}
_LEADERS: set[int] = set()  # children started in their own session: signalled as a group
_signal: int | None = None  # the signal that cancelled this run, once one has


def cancel_signal() -> int | None:
    """The signal number that cancelled the run, or None while it is not cancelled."""
    return _signal


def _preexec(pdeathsig: int, parent: int, core: bool) -> Callable[[], None]:
    def setup() -> None:  # runs in the forked child before exec
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(pdeathsig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: follow it now
            os.kill(os.getpid(), pdeathsig)
        if not core:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return setup


def popen(args: Sequence[str], *, pdeathsig: int = signal.SIGTERM, core: bool = True,
          **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` that dies with its parent and is stopped when the run is
    cancelled; raises Cancelled instead of starting a child once the run is cancelled.
    ``core=False`` turns core dumps off; with ``start_new_session=True`` a stop or cancel
    signals the child's whole process group (a compiler driver and its cc1). Call
    ``forget(proc)`` once it has been waited for."""
    if _signal is not None:
        raise Cancelled(_signal)
    proc = subprocess.Popen(list(args), preexec_fn=_preexec(pdeathsig, os.getpid(), core),  # noqa: PLW1509
                            **kwargs)
    _LIVE[proc.pid] = proc
    if kwargs.get("start_new_session"):
        _LEADERS.add(proc.pid)
    if _signal is not None:  # cancelled while it started: the handler did not see it
        _terminate(proc)
    return proc


def forget(proc: subprocess.Popen[Any]) -> None:
    """Drop a finished child from the registry."""
    _LIVE.pop(proc.pid, None)
    _LEADERS.discard(proc.pid)


def _terminate(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    try:
        if proc.pid in _LEADERS:
            os.killpg(proc.pid, sig)  # its own session: pgid == pid
        elif proc.returncode is None:
            os.kill(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen[Any], grace: float = GRACE_S) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit status."""
    if proc.poll() is None:
        _terminate(proc)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _terminate(proc, signal.SIGKILL)
            proc.wait()
    forget(proc)
    return int(proc.returncode)


def call(args: Sequence[str], *, grace: float = GRACE_S, **kwargs: Any) -> int:
    """Run a child to its end and return its exit status. If the wait is interrupted
    (Cancelled, KeyboardInterrupt), the child gets SIGTERM and ``grace`` seconds to finish
    (a pytest run writes its JUnit file and releases its lease), then SIGKILL; the exception
    is re-raised."""
    proc = popen(args, **kwargs)
    try:
        return proc.wait()
    except BaseException:
        stop(proc, grace)
        raise
    finally:
        forget(proc)


def run(args: Sequence[str], *, timeout: float | None = None, check: bool = False,
        capture_output: bool = False, text: bool = False, grace: float = GRACE_S,
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` through ``popen``: the child is stopped on a timeout or when the
    wait is interrupted (raises subprocess.TimeoutExpired, CalledProcessError as run does)."""
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    proc = popen(args, text=text, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, 0.5)
        proc.communicate()
        raise
    except BaseException:
        stop(proc, grace)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        raise
    finally:
        forget(proc)
    result = subprocess.CompletedProcess(list(args), int(proc.returncode), out, err)
    if check:
        result.check_returncode()
    return result


def _handler(signum: int, _frame: object) -> None:
    global _signal  # noqa: PLW0603 - one cancellation state per process
    first = _signal is None
    if first:
        _signal = signum
    for proc in list(_LIVE.values()):
        _terminate(proc, signal.SIGTERM if first else signal.SIGKILL)
    if first:
        raise Cancelled(signum)


def install(signals: Sequence[int] = CANCEL_SIGNALS) -> dict[int, Any]:
    """Turn ``signals`` into Cancelled (main thread only); returns what ``restore`` needs."""
    global _signal  # noqa: PLW0603 - one cancellation state per process
    if threading.current_thread() is not threading.main_thread():
        return {}
    _signal = None
    previous = {}
    for sig in signals:
        if signal.getsignal(sig) == signal.SIG_IGN:
            continue  # nohup or a background job: whoever started hil wants it ignored
        previous[sig] = signal.signal(sig, _handler)
    return previous


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers ``install`` replaced."""
    global _signal  # noqa: PLW0603 - one cancellation state per process
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    if previous:
        _signal = None


@contextmanager
def cancel_on_signals(signals: Sequence[int] = CANCEL_SIGNALS) -> Iterator[None]:
    """While inside: the first of ``signals`` raises Cancelled (see the module doc)."""
    previous = install(signals)
    try:
        yield
    finally:
        restore(previous)
