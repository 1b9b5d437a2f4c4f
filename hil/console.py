"""The serial console harness: send lines, expect patterns, run shell commands, keep a transcript.

``Console`` works over any pyserial URL (``socket://``, ``rfc2217://``, ``loop://``, a device
path). Contract:

- the constructor does no I/O; ``open()`` (or ``with console:``) opens the port, ``close()``
  closes it and flushes the transcript;
- ``send(line)`` writes ``line`` plus LF; ``expect(regex, timeout)`` returns the match and
  consumes input up to its end; ``command(line, timeout)`` speaks the shell protocol (reply
  lines, then ``OK`` or ``ERR <reason>``) and returns the reply lines;
- errors: ``ShellError`` (an ``ERR`` reply), ``ConsoleTimeout`` (with the last lines and the
  transcript path), ``CrashError`` (a ``FAULT`` line, or the ``monitor`` callback reporting an
  emulator lockup), ``ConsoleLost`` (the connection ended), ``EmulatorError`` from ``monitor``.

Every byte in and out goes to the transcript file with a timestamp relative to ``open()``.
For ``socket://`` URLs TCP_NODELAY is set and the socket is read directly (one ``select`` and
one ``recv`` per chunk), so a round trip costs about what a bare pyserial loop costs.
"""

from __future__ import annotations

import codecs
import re
import select
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

import serial

from hil.crash import Crash, CrashError, parse_fault_line
from hil.errors import ConsoleError, TestFailure

POLL = 0.1  # seconds between health checks while waiting for input
TAIL_CHARS = 8192
READY = r"^READY\r?$"

Monitor = Callable[[], None]


class ShellError(TestFailure):
    """The shell answered ``ERR <reason>``; ``reason`` and the reply ``lines`` are kept."""

    def __init__(self, command: str, reason: str, lines: list[str]) -> None:
        super().__init__(f"'{command}' -> ERR {reason}")
        self.command = command
        self.reason = reason
        self.lines = lines


class ConsoleTimeout(TestFailure):
    """Nothing matching arrived in time; the message shows the last lines and the transcript."""

    def __init__(self, message: str, *, last_lines: list[str], transcript: Path | None,
                 silent: bool = False) -> None:
        text = message
        text += "\n  last lines received:" if last_lines else "\n  nothing received"
        for line in last_lines:
            text += f"\n    | {line}"
        if transcript:
            text += f"\n  transcript: {transcript}"
        super().__init__(text)
        self.last_lines = last_lines
        self.transcript = transcript
        # not one byte arrived while waiting: the board may be hung, not wrong (the
        # recovery ladder, hil.recovery, treats it as a possible infrastructure failure)
        self.silent = silent


class ConsoleLost(ConsoleError):
    """The console connection ended (socket closed, device unplugged)."""


class Console:
    """One serial console; see the module doc for the contract."""

    def __init__(self, url: str, *, baudrate: int = 115200, timeout: float = 10.0,
                 transcript: Path | None = None, name: str | None = None,
                 elf: Path | None = None, monitor: Monitor | None = None,
                 detect_faults: bool = True) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout = timeout
        self.transcript_path = transcript
        self.name = name or url
        self.elf = elf
        self.monitor = monitor
        self._monitored = 0.0  # when the monitor last ran (monotonic)
        self.detect_faults = detect_faults
        self.banner: str | None = None
        self.crashed: Crash | None = None  # set by a crash, cleared by discard() (a reset)
        self.wedged = False  # a timeout left the board in an unknown state; cleared by discard()
        self._port: serial.SerialBase | None = None
        self._sock: socket.socket | None = None
        self._fd: int | None = None
        self._log: IO[str] | None = None
        self._t0 = 0.0
        self._buf = ""
        self._line = ""  # the incomplete last line received, for FAULT detection
        self._tail = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.received = 0  # bytes received since constructed (a silent wait adds none)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Console:
        try:
            # --- rfc2217:// (ser2net): pyserial's client raises NotImplementedError on a
            # write_timeout, and changing its read timeout renegotiates the port with the
            # server (~0.1 s), so it gets one fixed read timeout here (see _receive).
            rfc2217 = self.url.startswith("rfc2217://")
            port = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                         timeout=POLL if rfc2217 else 0,
                                         write_timeout=None if rfc2217 else self.timeout,
                                         do_not_open=True)
            # --- end rfc2217
            if self.url.startswith("socket://"):
                # pyserial's socket open() discards whatever already arrived: that would be
                # the boot banner of an emulator that started on this very connection.
                port.reset_input_buffer = lambda: None  # type: ignore[method-assign]
            with warnings.catch_warnings():  # pyserial's rfc2217 calls Thread.setDaemon()
                warnings.filterwarnings("ignore", r"set(Daemon|Name)\(\) is deprecated",
                                        DeprecationWarning)
                port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConsoleError(f"cannot open console {self.url}: {exc}",
                               hint="check the rack entry's console (device path or URL)") \
                from exc
        self._attach(port)
        if self._log is None and self.transcript_path is not None:
            self.transcript_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.transcript_path, "a", encoding="utf-8")
            self._t0 = time.monotonic()
            self._log.write(f"# hil console transcript: {self.name} ({self.url}) opened "
                            f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        elif self._t0 == 0.0:
            self._t0 = time.monotonic()
        return self

    def _attach(self, port: serial.SerialBase) -> None:
        self._port = port
        self._sock = getattr(port, "_socket", None) if self.url.startswith("socket://") \
            else None
        if self._sock is not None:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._fd = self._sock.fileno()
        else:
            try:
                self._fd = port.fileno()
            except (AttributeError, OSError, NotImplementedError, serial.SerialException):
                self._fd = None

    def reconnect(self, url: str | None = None) -> None:
        """Drop the connection and input, and open ``url`` (or the same URL) again; the
        transcript continues (an emulator restart uses this)."""
        self.disconnect()
        if url:
            self.url = url
        self.note(f"connect {self.url}")
        self.open()

    def disconnect(self) -> None:
        """Close the port and forget pending input; the transcript stays open."""
        self._close_port()
        self.discard()

    def close(self) -> None:
        self._close_port()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _close_port(self) -> None:
        port, sock = self._port, self._sock
        if sock is not None and port is not None:
            # pyserial's socket close() skips close() when shutdown() fails (a reset
            # connection) and then sleeps 0.3 s: close the socket ourselves.
            try:
                sock.close()
            except OSError:
                pass
            port._socket = None  # type: ignore[attr-defined]
            port.is_open = False
        elif port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass
        self._port, self._sock, self._fd = None, None, None

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def __enter__(self) -> Self:
        if self._port is None:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transcript

    def _record(self, direction: str, data: bytes) -> None:
        if self._log is not None:
            self._log.write(f"{time.monotonic() - self._t0:12.6f} {direction} "
                            f"{repr(data)[2:-1]}\n")

    def note(self, text: str) -> None:
        """A comment line in the transcript (resets, restarts)."""
        if self._log is not None:
            self._log.write(f"{time.monotonic() - self._t0:12.6f} # {text}\n")
            self._log.flush()

    def flush(self) -> None:
        if self._log is not None:
            self._log.flush()

    def last_lines(self, n: int = 20) -> list[str]:
        """The last ``n`` lines received (consumed or not)."""
        return [line.rstrip("\r") for line in self._tail.splitlines()[-n:]]

    def discard(self) -> None:
        """Forget input received so far (not the transcript)."""
        self._buf = ""
        self._line = ""
        self.crashed = None
        self.wedged = False

    # ------------------------------------------------------------------ output

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise ConsoleError(f"console {self.name} is not open")
        self._record(">", data)
        try:
            if self._sock is not None:
                self._sock.sendall(data)
            else:
                self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)

    def send(self, line: str) -> None:
        """Send one line (LF appended)."""
        self.write(line.encode() + b"\n")

    # ------------------------------------------------------------------ input

    def _receive(self, deadline: float) -> bool:
        """Wait for input until ``deadline`` (at most POLL); True when something arrived."""
        port = self._port
        if port is None:
            raise ConsoleError(f"console {self.name} is not open")
        wait = min(deadline - time.monotonic(), POLL)
        if wait < 0:
            wait = 0.0
        try:
            if self._sock is not None:
                ready, _, _ = select.select((self._sock,), (), (), wait)
                if not ready:
                    data = b""
                else:
                    data = self._sock.recv(65536)
                    if not data:
                        raise ConsoleLost("the console connection was closed by the other end")
            elif self._fd is not None:
                fd: int = self._fd
                readable, _, _ = select.select((fd,), (), (), wait)
                data = port.read(65536) if readable else b""
            else:
                if self.url.startswith("rfc2217://"):
                    wait = POLL  # fixed at open: setting it renegotiates with the server
                if port.timeout != wait:
                    port.timeout = wait
                waiting = port.in_waiting
                data = port.read(waiting if waiting else 1)
        except ConsoleLost as exc:
            self._lost(exc)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
        if not data:
            self._idle()
            return False
        self._record("<", data)
        self.received += len(data)
        text = self._decoder.decode(data)
        self._buf += text
        self._tail += text
        if len(self._tail) > 2 * TAIL_CHARS:
            self._tail = self._tail[-TAIL_CHARS:]
        if self.detect_faults:
            self._check_faults(text)
        if self.monitor is not None and time.monotonic() - self._monitored >= POLL:
            # a board that talks all the time is watched too (e.g. switched off mid-test)
            self._monitored = time.monotonic()
            self.monitor()
        return True

    def _idle(self) -> None:
        self.flush()
        if self.monitor is not None:
            self._monitored = time.monotonic()
            self.monitor()

    def _lost(self, exc: BaseException) -> None:
        """The connection ended: let the monitor explain it (crash, emulator exit) first."""
        self._close_port()
        self.note(f"connection lost: {exc}")
        self.flush()
        if self.monitor is not None:
            self.monitor()
        raise ConsoleLost(f"lost the console of {self.name} ({self.url}): {exc}",
                          hint=f"transcript: {self.transcript_path}") from exc

    def _check_faults(self, text: str) -> None:
        """Check each completed line (across reads and consumption) for a FAULT report."""
        acc = self._line + text
        if "\n" not in text:
            self._line = acc[-1024:]
            return
        *lines, self._line = acc.split("\n")
        if "FAULT" not in acc:
            return
        for line in lines:
            if line.startswith("FAULT"):
                crash = parse_fault_line(line)
                if crash is not None:
                    self.raise_crash(crash)

    def raise_crash(self, crash: Crash) -> None:
        crash = crash.symbolized(self.elf)
        self.crashed = crash
        self.note(f"crash: {crash.describe()}")
        self.flush()
        raise CrashError(crash, transcript=self.transcript_path,
                         last_lines=self.last_lines(10))

    def _timeout(self, what: str, timeout: float, since: int | None = None) -> ConsoleTimeout:
        """``since``: ``received`` when the wait began (the timeout is silent if unchanged)."""
        self.wedged = True
        silent = since is not None and self.received == since
        self.note(f"timeout waiting for {what}" + (" (nothing received)" if silent else ""))
        self.flush()
        return ConsoleTimeout(f"{self.name}: no {what} within {timeout:g} s",
                              last_lines=self.last_lines(10), transcript=self.transcript_path,
                              silent=silent)

    def expect(self, pattern: str | re.Pattern[str], timeout: float | None = None) -> re.Match[str]:
        """Wait for ``pattern`` (multiline regex) in the input; consume input up to the match."""
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        since = self.received
        while True:
            m = regex.search(self._buf)
            if m:
                self._buf = self._buf[m.end():]
                return m
            if time.monotonic() >= deadline:
                raise self._timeout(f"match for /{regex.pattern}/", timeout, since)
            self._receive(deadline)

    def read_line(self, timeout: float | None = None) -> str:
        """The next complete line, without CR/LF."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        since = self.received
        while True:
            i = self._buf.find("\n")
            if i >= 0:
                line = self._buf[:i]
                self._buf = self._buf[i + 1:]
                return line.removesuffix("\r")
            if time.monotonic() >= deadline:
                raise self._timeout("complete line", timeout, since)
            self._receive(deadline)

    def pending_lines(self) -> list[str]:
        """The complete lines received but not consumed yet (without CR/LF), consumed now:
        what arrived with a crash report, for a harness to read after the crash."""
        text, sep, rest = self._buf.rpartition("\n")
        if not sep:
            return []
        self._buf = rest
        return [line.removesuffix("\r") for line in text.split("\n")]

    def read_available(self, timeout: float = POLL) -> str:
        """Whatever arrives within ``timeout`` (and was not consumed yet), consumed now."""
        if not self._buf:
            self._receive(time.monotonic() + timeout)
        text, self._buf = self._buf, ""
        return text

    def wait_ready(self, timeout: float | None = None, pattern: str = READY) -> str | None:
        """Wait for the shell's ``READY``; keeps the banner line before it in ``banner``."""
        m = self.expect(re.compile(rf"(?:^(?P<banner>hil-shell [^\r\n]*)\r?\n)?{pattern}\n",
                                   re.MULTILINE), timeout)
        self.banner = m.group("banner") or self.banner
        return self.banner

    def command(self, line: str, timeout: float | None = None) -> list[str]:
        """Run one shell command; return its reply lines (without ``OK``).

        Raises ShellError on ``ERR``, ConsoleTimeout, CrashError, ConsoleLost.
        """
        timeout = self.timeout if timeout is None else timeout
        self.send(line)
        deadline = time.monotonic() + timeout
        since = self.received
        reply: list[str] = []
        while True:
            i = self._buf.find("\n")
            if i < 0:
                if time.monotonic() >= deadline:
                    raise self._timeout(f"reply to '{line}' (OK or ERR)", timeout, since)
                self._receive(deadline)
                continue
            text = self._buf[:i]
            self._buf = self._buf[i + 1:]
            text = text.removesuffix("\r")
            if text == "OK":
                return reply
            if text.startswith("ERR"):
                raise ShellError(line, text[4:] if len(text) > 3 else "", reply)
            reply.append(text)
