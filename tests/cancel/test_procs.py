"""hil.procs: children die with their parent, the thread caveat of PR_SET_PDEATHSIG, and the
signal handlers that turn SIGINT/SIGTERM/SIGHUP into Cancelled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from hil import procs
from hil.errors import Cancelled

BOUND_S = 5.0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _gone_within(pid: int, bound: float = BOUND_S) -> bool:
    deadline = time.monotonic() + bound
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def test_a_child_dies_when_its_parent_is_sigkilled():
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""\
        import sys, time
        from hil import procs
        child = procs.popen(["sleep", "60"])
        print(child.pid, flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        assert _gone_within(child)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_call_from_a_worker_thread_is_not_cut_short_when_threads_come_and_go():
    """PR_SET_PDEATHSIG fires when the *thread* that forked exits: ``call`` waits in the
    thread that started the child, so a pool thread running it cannot end first."""
    results = []
    worker = threading.Thread(target=lambda: results.append(procs.call(["sleep", "0.3"])))
    short = threading.Thread(target=lambda: None)
    worker.start()
    short.start()
    short.join()
    worker.join(timeout=30)
    assert results == [0]


def test_a_long_lived_child_must_not_be_started_from_a_thread_that_ends():
    """The caveat itself (why executors start QEMU from the main thread)."""
    started = []
    thread = threading.Thread(target=lambda: started.append(procs.popen(["sleep", "60"])))
    thread.start()
    thread.join()
    proc = started[0]
    try:
        assert proc.wait(timeout=BOUND_S) == -signal.SIGTERM
    finally:
        procs.stop(proc)


def test_nohup_keeps_sighup_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with procs.cancel_on_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is procs._handler
        assert signal.getsignal(signal.SIGTERM) is not procs._handler
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_first_signal_cancels_and_stops_children_a_second_one_kills_them():
    with procs.cancel_on_signals():
        child = procs.popen([sys.executable, "-c", textwrap.dedent("""\
            import signal, sys, time
            signal.signal(signal.SIGTERM, lambda *a: print("term", flush=True))
            print("ready", flush=True)
            time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline() == "ready\n"
            with pytest.raises(Cancelled) as cancel:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(BOUND_S)  # the handler raises here
            assert cancel.value.exit_code == 143 and procs.cancel_signal() == signal.SIGTERM
            assert child.stdout.readline() == "term\n"  # the child was asked to stop
            os.kill(os.getpid(), signal.SIGINT)  # no second Cancelled: cleanup continues
            assert child.wait(timeout=BOUND_S) == -signal.SIGKILL
            with pytest.raises(Cancelled):
                procs.popen(["true"])  # nothing new starts in a cancelled run
        finally:
            procs.stop(child)
            child.stdout.close()
    assert procs.cancel_signal() is None
