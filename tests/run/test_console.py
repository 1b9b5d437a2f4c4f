"""Console harness over real pyserial URLs (socket:// to a small TCP shell, loop://)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from hil.console import Console, ConsoleLost, ConsoleTimeout, ShellError
from hil.crash import CrashError
from hil.errors import ConsoleError, ExitCode


class TinyShell:
    """A TCP server speaking a little of the shell protocol, one client, for console tests."""

    def __init__(self, script: dict[bytes, bytes], banner: bytes = b"hil-shell fake 0\r\nREADY\r\n",
                 chunk: int = 0) -> None:
        self.script = script
        self.banner = banner
        self.chunk = chunk  # send replies this many bytes at a time (0: whole)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.client_nodelay: int | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _send(self, conn: socket.socket, data: bytes) -> None:
        if not self.chunk:
            conn.sendall(data)
            return
        for i in range(0, len(data), self.chunk):
            conn.sendall(data[i:i + self.chunk])

    def _serve(self) -> None:
        try:
            self._serve_one()
        except OSError:  # the client went away: that is its business
            pass

    def _serve_one(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._send(conn, self.banner)
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    reply = self.script.get(line.strip(), b"ERR unknown command\r\n")
                    if reply == b"<close>":
                        return
                    if reply == b"<silent>":
                        continue
                    self._send(conn, reply)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def shell():
    s = TinyShell({
        b"ping": b"pong\r\nOK\r\n",
        b"multi": b"a\r\nb\r\nc\r\nOK\r\n",
        b"bad": b"ERR bad hex digit\r\n",
        b"fault": b"FAULT BusFault CFSR=00008200 HFSR=00000000 MMFAR=00000000 BFAR=fffffff0 "
                  b"PC=080007be LR=080007d3 XPSR=21000000\r\n",
        b"hang": b"<silent>",
        b"bye": b"<close>",
    }, chunk=3)
    yield s
    s.close()


def test_command_returns_reply_lines(shell, tmp_path: Path):
    with Console(shell.url, transcript=tmp_path / "t.log") as con:
        assert con.wait_ready() == "hil-shell fake 0"
        assert con.command("ping") == ["pong"]
        assert con.command("multi") == ["a", "b", "c"]


def test_socket_console_sets_tcp_nodelay(shell):
    with Console(shell.url) as con:
        assert con._sock is not None
        assert con._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_err_reply_raises_shell_error_with_reason(shell):
    with Console(shell.url) as con:
        con.wait_ready()
        with pytest.raises(ShellError) as err:
            con.command("bad")
        assert err.value.reason == "bad hex digit"
        assert err.value.exit_code == ExitCode.TEST_FAILED
        assert con.command("ping") == ["pong"]


def test_timeout_shows_last_lines_and_transcript(shell, tmp_path: Path):
    transcript = tmp_path / "t.log"
    with Console(shell.url, transcript=transcript) as con:
        con.wait_ready()
        con.command("ping")
        with pytest.raises(ConsoleTimeout) as err:
            con.command("hang", timeout=0.3)
    text = str(err.value)
    assert "last lines received" in text and "| pong" in text and "| READY" in text
    assert str(transcript) in text


def test_fault_line_split_over_reads_is_a_crash(shell):
    with Console(shell.url) as con:
        con.wait_ready()
        with pytest.raises(CrashError) as err:
            con.command("fault")
    assert err.value.crash.kind == "BusFault"
    assert err.value.crash.pc == 0x080007BE
    assert con.crashed is not None


def test_fault_detected_even_when_input_is_consumed_piecewise(shell):
    with Console(shell.url) as con:
        con.wait_ready()
        con.send("fault")
        with pytest.raises(CrashError):
            for _ in range(1000):
                con.read_available(0.05)


def test_connection_closed_is_console_lost(shell):
    with Console(shell.url) as con:
        con.wait_ready()
        with pytest.raises(ConsoleLost) as err:
            con.command("bye", timeout=5)
    assert err.value.exit_code == ExitCode.INFRASTRUCTURE
    assert isinstance(err.value, ConsoleError)


def test_transcript_records_both_directions_with_timestamps(shell, tmp_path: Path):
    transcript = tmp_path / "t.log"
    with Console(shell.url, transcript=transcript) as con:
        con.wait_ready()
        con.command("ping")
    lines = transcript.read_text().splitlines()
    assert lines[0].startswith("# hil console transcript")
    sent = [line for line in lines if " > " in line]
    received = "".join(line.split(" < ", 1)[1] for line in lines if " < " in line)
    assert sent and sent[0].split()[2] == "ping\\n"
    assert float(sent[0].split()[0]) >= 0
    assert "pong\\r\\nOK\\r\\n" in received
    assert "READY" in received


def test_expect_over_loop_url():
    with Console("loop://", timeout=1) as con:
        con.send("hello 42")
        m = con.expect(r"hello (\d+)")
        assert m.group(1) == "42"
        with pytest.raises(ConsoleTimeout):
            con.expect("never", timeout=0.2)


def test_unopenable_console_is_a_console_error(tmp_path: Path):
    with pytest.raises(ConsoleError) as err:
        Console(str(tmp_path / "no-such-tty")).open()
    assert "cannot open console" in str(err.value)
