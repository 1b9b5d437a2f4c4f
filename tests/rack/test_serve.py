"""`hil rack serve`, the live rack page, as users meet it: a real server process on a loopback
port over a rack of virtual boards, read with an HTTP client (the JSON endpoints, the token)
and in headless Chromium (the page renders, shows a lease another process takes, no console
errors)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import Browser, needs_chromium

from hil import audit
from hil.audit.store import Record
from hil.cli import main
from hil.errors import ExitCode, UsageError
from hil.rack import lease_store, load_rack
from hil.rack.leases import Holder
from hil.rack.web import check_bind, is_loopback

RACK = """\
schema: 1
boards:
  - {id: f4-a, board: nucleo-f4, probe: "hilsim:srv-f4-a", emulator: qemu, tags: [virtual]}
  - {id: f4-b, board: nucleo-f4, probe: "hilsim:srv-f4-b", emulator: qemu, tags: [virtual]}
  - {id: hifive-a, board: hifive1-revb, probe: "hilsim:srv-hifive-a", emulator: qemu}
"""
IDS = ["f4-a", "f4-b", "hifive-a"]
SHA = "ab" * 32
STARTUP_S = 60.0  # generous: the machine is shared and slow under load


@pytest.fixture
def rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(path))
    for var in ("HIL_LEASE", "HIL_LEASE_DB", "HIL_RACK_TOKEN", "HIL_CI_JOB"):
        monkeypatch.delenv(var, raising=False)
    return path


class Server:
    """`hil rack serve --port 0` as a subprocess; stopped with SIGTERM (a context manager)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.cmd = [sys.executable, "-m", "hil", "rack", "serve", "--port", "0", *args]
        self.env = env
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.url = ""

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr.append(line)
                self.lines.put(line)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + STARTUP_S
        while not self.url:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.__exit__()
                raise AssertionError(f"no URL from hil rack serve: {''.join(self.stderr)}") \
                    from None
            if line.startswith("hil rack serve: http://"):
                self.url = line.split()[3]
        return self

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return rc

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def server(rack: Path) -> Iterator[Server]:
    with Server() as s:
        yield s
        assert s.stop() == ExitCode.TERMINATED, "".join(s.stderr)
    assert "Traceback" not in "".join(s.stderr), "".join(s.stderr)


def _get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=30, **kwargs)


def _boards(server: Server) -> dict[str, dict]:
    data = _get(server.url + "api/rack").raise_for_status().json()
    return {b["id"]: b for b in data["boards"]}


def _until(what: str, check, timeout: float = 20.0, every: float = 0.05):
    """Poll ``check()`` until it returns something true; its last value on time-out."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what}: not seen within {timeout} s (last: {value!r})"
            return value
        time.sleep(every)


def _record_run(state: Path, name: str, **fields) -> Record:
    """A test record as `hil test` writes it, with a run directory holding a transcript."""
    work = state / "runs" / "20261201-080000-1" / name
    (work / "transcripts" / "test_ping").mkdir(parents=True)
    (work / "transcripts" / "test_ping" / "console.log").write_text(f"READY {name}\n")
    (work / "image").mkdir()
    (work / "image" / "firmware.log").write_text("not a transcript\n")
    base = {"image_sha256": SHA, "board": "nucleo-f4", "rack_id": None, "executor": "qemu",
            "passed": 3, "failed": 0, "skipped": 0, "junit": None, "toolchain": "gcc",
            "app": "shell", "outcome": "passed", "work_dir": work}
    return audit.record_test(**{**base, **fields})


# ----------------------------------------------------------------------------- JSON


def test_rack_json_shows_boards_holders_queue_and_health(server, rack, _isolated_state):
    boards = _boards(server)
    assert list(boards) == IDS
    assert all(b["lease"] is None and b["healthy"] for b in boards.values())
    assert boards["f4-a"]["virtual"] and boards["f4-a"]["board"] == "nucleo-f4"
    with lease_store(load_rack()) as store:
        held = store.acquire(["f4-a"], holder=Holder("alice", "build-7", 0, "ci-job-42",
                                                     "nightly <b>soak</b>"), ttl=600)
        lease = _until("the lease", lambda: _boards(server)["f4-a"]["lease"])
        assert (lease["user"], lease["host"], lease["ci_job"], lease["purpose"]) == \
            ("alice", "build-7", "ci-job-42", "nightly <b>soak</b>")
        assert lease["since"] == pytest.approx(held.acquired_at)
        assert lease["until"] == pytest.approx(held.acquired_at + 600)

        # another job waits for f4-a: the queue of its board type shows it
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(
            store.acquire(["f4-a"], holder=Holder.current("waiting job"), ttl=60, wait=120)))
        waiter.start()
        try:
            def f4_queue():
                data = _get(server.url + "api/rack").json()
                q = {t["board"]: t for t in data["queue"]}["nucleo-f4"]
                return q if q["waiting"] == 1 else None

            q = _until("the waiting job", f4_queue)
            assert (q["boards"], q["free"]) == (2, 1)
            assert q["waiters"][0]["candidates"] == ["f4-a"]
            assert q["waiters"][0]["pid"] == os.getpid()
        finally:
            store.release(held.token)
            waiter.join(timeout=120)
        assert got and got[0].rack_id == "f4-a"
        store.release(got[0].token)
        _until("both leases gone", lambda: _boards(server)["f4-a"]["lease"] is None)

        # health: out of service with a reason, the ladder's steps, the last check
        store.record_health_event("f4-b", "recovery", ok=False, step="swd-reset")
        store.record_health_event("f4-b", "recovery", ok=False, step="power-cycle")
        store.mark_unhealthy("f4-b", "no console data after power cycle <script>")
        store.record_health_event("f4-b", "check", ok=False, detail="ping: no answer")
    b = _until("f4-b unhealthy", lambda: (lambda x: x if not x["healthy"] else None)(
        _boards(server)["f4-b"]))
    assert b["unhealthy_reason"] == "no console data after power cycle <script>"
    assert [r["step"] for r in b["recoveries"]] == ["swd-reset", "power-cycle"]
    assert b["last_check"]["ok"] is False and b["last_check"]["detail"] == "ping: no answer"
    one = _get(server.url + "api/boards/f4-b").raise_for_status().json()
    assert [e["kind"] for e in one["history"]] == ["recovery", "recovery", "unhealthy", "check"]
    missing = _get(server.url + "api/boards/no-such-board")
    assert missing.status_code == 404 and "no board 'no-such-board'" in missing.json()["error"]
    assert _get(server.url + "healthz").json() == {"ok": True}


def test_the_page_data_is_hil_rack_status_data(server, rack, capsys):
    """`hil rack status --json` and /api/rack read the same rows the same way."""
    with lease_store(load_rack()) as store:
        store.acquire(["hifive-a"], holder=Holder("bob", "lab-3", 0, None), ttl=300)
        store.report_failure("f4-a", "console lost")
    assert main(["rack", "status", "--json", "--no-probes"]) == 0
    status = {b["id"]: b for b in json.loads(capsys.readouterr().out)}
    page = _boards(server)
    for rack_id in IDS:
        for key, value in status[rack_id].items():
            if key == "lease" and value:
                same = {k: v for k, v in value.items() if k != "expires_in"}
                assert same.items() <= page[rack_id]["lease"].items()
            else:
                assert page[rack_id][key] == value, (rack_id, key)
    assert page["f4-a"]["failures"] == 1


def test_a_broken_lease_row_shows_as_a_bad_row_not_an_error(server, rack, _isolated_state):
    with lease_store(load_rack()):
        pass  # the schema
    with sqlite3.connect(_isolated_state / "leases.sqlite") as conn:
        conn.execute("INSERT INTO hil_leases (rack_id, token, user_name, host, pid, ci_job, "
                     "purpose, acquired_at, expires_at) VALUES ('hifive-a', ?, "
                     "'evil\x1b[2J', 'h', 0, NULL, NULL, ?, 'soon')", ("t" * 32, time.time()))
        conn.execute("INSERT INTO hil_waiters (candidates, host, pid, since, heartbeat) "
                     "VALUES ('not json', 'h', 1, 0, 'x')")
    response = _get(server.url + "api/rack")
    assert response.status_code == 200
    board = {b["id"]: b for b in response.json()["boards"]}["hifive-a"]
    assert "not a time" in board["bad_row"] and "hil rack reset hifive-a" in board["bad_row"]
    assert board["lease"]["user"] == "evil\\x1b[2J" and board["lease"]["until"] is None
    assert response.json()["waiting"] == 0  # the unreadable queue place is not counted


def test_runs_show_verdicts_where_they_ran_and_their_transcripts(server, _isolated_state):
    virtual = _record_run(_isolated_state, "virtual", rack_id="f4-a")
    hardware = _record_run(_isolated_state, "hardware", executor="hardware", rack_id="f4-b",
                           failed=1, outcome="failed")
    qemu = _record_run(_isolated_state, "qemu")
    infra = _record_run(_isolated_state, "infra", rack_id="f4-a", outcome="infrastructure",
                        attempt=1)
    forged = audit.record_test(image_sha256=SHA, board="nucleo-f4", rack_id="f4-a",
                               executor="qemu", passed=1, failed=0, skipped=0, junit=None,
                               toolchain="gcc", work_dir=Path("/etc"))
    runs = _until("five runs", lambda: (lambda r: r if len(r) == 5 else None)(
        _get(server.url + "api/runs").json()["runs"]))
    by_seq = {r["seq"]: r for r in runs}
    assert [r["seq"] for r in runs] == sorted(by_seq, reverse=True)  # newest first
    assert (by_seq[virtual.seq]["verdict"], by_seq[virtual.seq]["where"]) == \
        ("passed-virtual", "virtual")
    assert by_seq[virtual.seq]["verdict_text"] == "passed on a virtual board"
    assert (by_seq[hardware.seq]["verdict"], by_seq[hardware.seq]["where"]) == \
        ("failed", "hardware")
    assert (by_seq[qemu.seq]["verdict"], by_seq[qemu.seq]["where"]) == ("passed-qemu", "qemu")
    assert by_seq[infra.seq]["verdict"] == "infrastructure"
    assert by_seq[forged.seq]["transcripts"] == []  # outside the state dir's runs/
    links = by_seq[virtual.seq]["transcripts"]
    assert [t["name"] for t in links] == ["transcripts/test_ping/console.log"]
    text = _get(server.url + links[0]["url"])
    assert text.status_code == 200 and text.text == "READY virtual\n"
    assert text.headers["content-type"].startswith("text/plain")
    # nothing but a listed transcript of a listed run is served
    for path in (f"runs/{virtual.seq}/image/firmware.log",
                 f"runs/{virtual.seq}/../hardware/transcripts/test_ping/console.log",
                 f"runs/{virtual.seq}/%2e%2e/hardware/transcripts/test_ping/console.log",
                 f"runs/{virtual.seq}/%2e%2e%2f%2e%2e%2f%2e%2e%2fleases.sqlite",
                 f"runs/{forged.seq}/passwd", f"runs/{forged.seq}/hostname",
                 "runs/999999/transcripts/test_ping/console.log"):
        assert _get(server.url + path).status_code == 404, path
    board_runs = _get(server.url + "api/boards/f4-a").json()["runs"]
    assert {r["seq"] for r in board_runs} == {virtual.seq, infra.seq, forged.seq}


# ----------------------------------------------------------------------------- access


@pytest.mark.parametrize("host, loopback", [
    pytest.param("127.0.0.1", True, id="ipv4-loopback"),
    pytest.param("127.3.2.1", True, id="ipv4-loopback-net"),
    pytest.param("::1", True, id="ipv6-loopback"),
    pytest.param("localhost", True, id="localhost"),
    pytest.param("0.0.0.0", False, id="ipv4-any"),
    pytest.param("::", False, id="ipv6-any"),
    pytest.param("10.1.2.3", False, id="private-address"),
    pytest.param("rack-host.example", False, id="a-name-is-not-looked-up"),
])
def test_only_loopback_is_served_without_a_token(host, loopback):
    if loopback:
        check_bind(host, None)
    else:
        with pytest.raises(UsageError, match=f"on {host}, which is not a loopback address"):
            check_bind(host, None)
    assert is_loopback(host) is loopback
    check_bind(host, "t" * 32)  # with a token every address is allowed


def test_non_loopback_without_a_token_exits_2_before_binding(rack):
    proc = subprocess.run([sys.executable, "-m", "hil", "rack", "serve", "--host", "0.0.0.0",
                           "--port", "0"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == ExitCode.USAGE
    assert "refusing to serve the rack page on 0.0.0.0" in proc.stderr
    assert "--token-file" in proc.stderr and "HIL_RACK_TOKEN" in proc.stderr
    assert "http://" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("content, message", [
    pytest.param("short\n", "too short", id="too-short"),
    pytest.param("has spaces in the middle of it\n", "has spaces", id="spaces"),
    pytest.param(None, "cannot read the rack page's token file", id="missing"),
])
def test_a_bad_token_file_is_a_clear_error(tmp_path, rack, capsys, content, message):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    assert main(["rack", "serve", "--host", "0.0.0.0", "--token-file", str(token_file)]) == \
        ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and "secrets.token_urlsafe" in err and "Traceback" not in err


def test_with_a_token_every_request_needs_it(tmp_path, rack):
    token = "s3cret-" + "x" * 30
    token_file = tmp_path / "rack-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with Server("--token-file", str(token_file)) as s:
        assert "token from" in "".join(s.stderr)
        for path in ("", "api/rack", "api/runs", "api/boards/f4-a", "healthz",
                     "static/rack.js"):
            refused = _get(s.url + path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert token not in refused.text
        assert _get(s.url + "healthz", headers={"Authorization": "Bearer wrong"}) \
            .status_code == 401
        assert _get(s.url + "healthz", headers={"Authorization": f"Bearer {token}x"}) \
            .status_code == 401
        ok = _get(s.url + "api/rack", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and len(ok.json()["boards"]) == 3
        # a browser: ?token= once sets a cookie and drops the token from the URL
        with httpx.Client(timeout=30) as browser_like:
            first = browser_like.get(s.url + "?token=" + token)
            assert first.status_code == 303 and first.headers["location"] == "/"
            assert "httponly" in first.headers["set-cookie"].lower()
            page = browser_like.get(s.url)
            assert page.status_code == 200 and "<title>hil rack</title>" in page.text
            assert browser_like.get(s.url + "api/rack").status_code == 200
        assert _get(s.url + "?token=wrong").status_code == 401
        assert s.stop() == ExitCode.TERMINATED


@pytest.mark.parametrize("signum, code", [
    pytest.param(signal.SIGINT, ExitCode.INTERRUPTED, id="ctrl-c"),
    pytest.param(signal.SIGHUP, ExitCode.HANGUP, id="sighup"),
])
def test_a_signal_stops_it_and_frees_the_port(rack, signum, code):
    with Server() as s:
        assert _get(s.url + "healthz").status_code == 200
        s.proc.send_signal(signum)
        assert s.proc.wait(timeout=60) == code
    port = int(s.url.rstrip("/").rsplit(":", 1)[1])
    with socket.socket() as again:  # nothing listens there any more
        again.bind(("127.0.0.1", port))
    with pytest.raises(httpx.ConnectError):
        _get(s.url + "healthz")


def test_without_a_token_a_foreign_host_header_is_refused(server):
    """A web page elsewhere cannot read the rack through DNS rebinding."""
    assert _get(server.url + "api/rack", headers={"Host": "evil.example:8700"}) \
        .status_code == 421
    assert _get(server.url + "api/rack", headers={"Host": "localhost"}).status_code == 200


# ----------------------------------------------------------------------------- the page

READ_PAGE = """JSON.stringify({
  boards: [...document.querySelectorAll('#boards tbody tr[data-id]')].map(tr => ({
    id: tr.dataset.id, held: tr.dataset.held, health: tr.dataset.health,
    holder: tr.querySelector('.holder').textContent,
    job: tr.querySelector('.ci-job').textContent,
    healthText: tr.querySelector('.health').textContent})),
  queue: [...document.querySelectorAll('#queue tbody tr[data-board]')].map(tr => ({
    board: tr.dataset.board, waiting: tr.dataset.waiting})),
  runs: [...document.querySelectorAll('#runs tbody tr[data-seq]')].map(tr => ({
    seq: tr.dataset.seq, verdict: tr.dataset.verdict, where: tr.dataset.where,
    text: tr.textContent,
    links: [...tr.querySelectorAll('a')].map(a => a.href)})),
  injected: document.querySelectorAll('#boards img, #boards script, #runs img').length,
  status: document.getElementById('status').dataset.state,
})"""

HOLDER = """\
import sys
from hil.rack import lease_store, load_rack
from hil.rack.leases import hold
lease = hold(lease_store(load_rack()), ["f4-a"], ttl=60, purpose="soak test")
print("LEASED", lease.rack_id, flush=True)
sys.stdin.read()
lease.release()
print("RELEASED", flush=True)
"""


@needs_chromium
def test_page_renders_every_board_and_a_lease_taken_elsewhere_within_2_s(
        server, browser: Browser, _isolated_state, monkeypatch):
    with lease_store(load_rack()) as store:
        store.mark_unhealthy("f4-b", 'probe lost <img src=x onerror="console.error(1)">')
    run = _record_run(_isolated_state, "virtual", rack_id="f4-a")
    browser.load(server.url)

    def page():
        return json.loads(browser.evaluate(READ_PAGE))

    first = _until("the boards on the page", lambda: (lambda p: p if len(p["boards"]) == 3
                                                      and p["runs"] else None)(page()))
    assert [b["id"] for b in first["boards"]] == IDS
    assert first["status"] == "live"
    boards = {b["id"]: b for b in first["boards"]}
    assert boards["f4-a"]["held"] == "no" and boards["f4-b"]["health"] == "unhealthy"
    assert 'probe lost <img src=x onerror="console.error(1)">' in boards["f4-b"]["healthText"]
    assert first["injected"] == 0  # user data is text, never markup
    assert {q["board"] for q in first["queue"]} == {"nucleo-f4", "hifive1-revb"}
    (shown,) = first["runs"]
    assert (shown["seq"], shown["verdict"], shown["where"]) == (str(run.seq),
                                                                "passed-virtual", "virtual")
    assert "passed on a virtual board" in shown["text"]
    (link,) = shown["links"]
    assert link.startswith(server.url) and _get(link).text == "READY virtual\n"

    # another process takes f4-a: the page shows it within 2 s, without a reload
    monkeypatch.setenv("HIL_CI_JOB", "pipeline-77")
    with subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, env=dict(os.environ)) as holder:
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().split() == ["LEASED", "f4-a"]
            t0 = time.monotonic()
            held = _until("f4-a held on the page", lambda: next(
                (b for b in page()["boards"] if b["id"] == "f4-a" and b["held"] == "yes"),
                None), timeout=2.0)
            assert time.monotonic() - t0 <= 2.0
            assert f"pid {holder.pid}" in held["holder"] and "soak test" in held["holder"]
            assert held["job"] == "pipeline-77"
            holder.stdin.close()
            assert holder.stdout.readline().strip() == "RELEASED"
            assert holder.wait(timeout=60) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
    _until("f4-a free again on the page", lambda: next(
        (b for b in page()["boards"] if b["id"] == "f4-a" and b["held"] == "no"), None),
        timeout=5.0)
    assert browser.errors() == []
    assert all(u.startswith(server.url) or u.startswith("data:")
               for u in browser.requests()), browser.requests()


# ----------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_a_real_run_on_a_virtual_board_links_its_console_transcript(rack, capsys):
    code = main(["test", "--board", "nucleo-f4", "shell"])
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-3000:]
    with Server() as s:
        (run,) = _get(s.url + "api/runs").json()["runs"]
        assert (run["verdict"], run["where"], run["app"]) == ("passed-virtual", "virtual",
                                                              "shell")
        assert run["rack_id"] in ("f4-a", "f4-b") and run["passed"] >= 1
        consoles = [t for t in run["transcripts"] if t["name"].endswith("console.log")]
        assert consoles, run["transcripts"]
        assert any("READY" in _get(s.url + t["url"]).text for t in consoles)
        assert s.stop() == ExitCode.TERMINATED


def test_the_token_from_the_environment_guards_the_page_and_is_never_printed(rack, capsys,
                                                                            monkeypatch):
    token = "env-token-" + "y" * 24
    with Server(env={**os.environ, "HIL_RACK_TOKEN": token}) as s:
        assert "token from HIL_RACK_TOKEN" in "".join(s.stderr)
        assert _get(s.url + "api/rack").status_code == 401
        assert _get(s.url + "api/rack", headers={"Authorization": f"Bearer {token}"}) \
            .status_code == 200
        assert s.stop() == ExitCode.TERMINATED
    assert token not in "".join(s.stderr)
    monkeypatch.setenv("HIL_RACK_TOKEN", token)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert token not in out and "(set, not shown)" in out


def test_the_project_file_names_the_token_file(tmp_path):
    from hil.errors import ConfigError
    from hil.rack.web import token_for
    from hil.settings import load, use

    (tmp_path / "secret").write_text("project-token-" + "z" * 20 + "\n")
    (tmp_path / "secret").chmod(0o600)
    (tmp_path / "hil.toml").write_text('[rack_serve]\ntoken_file = "secret"\n')
    with use(load(cwd=tmp_path, env={})):
        token, where = token_for()
    assert token == "project-token-" + "z" * 20
    assert where.startswith(str(tmp_path / "secret")) and "hil.toml" in where
    (tmp_path / "hil.toml").write_text('[rack_serve]\ntoken = "abc"\n')
    with pytest.raises(ConfigError,
                       match=r"(?s)rack_serve.token: unknown key.*did you mean 'token_file'"):
        load(cwd=tmp_path, env={})


def test_a_shared_rack_on_postgresql(rack, pg_url, monkeypatch):
    """The page of a rack whose leases are in PostgreSQL (a rack across hosts)."""
    monkeypatch.setenv("HIL_LEASE_DB", pg_url)
    with Server(env=dict(os.environ)) as s:
        assert _boards(s)["f4-b"]["lease"] is None
        with lease_store(load_rack()) as store:
            held = store.acquire(["f4-b"], holder=Holder("carol", "runner-2", 0, "gl-991"),
                                 ttl=120)
            lease = _until("the lease", lambda: _boards(s)["f4-b"]["lease"])
            assert (lease["user"], lease["host"], lease["ci_job"]) == \
                ("carol", "runner-2", "gl-991")
            store.release(held.token)
        _until("the release", lambda: _boards(s)["f4-b"]["lease"] is None)
        assert s.stop() == ExitCode.TERMINATED


def test_an_edited_rack_file_is_read_again_and_a_broken_edit_is_reported(server, rack):
    assert list(_boards(server)) == IDS
    time.sleep(0.05)  # a new modification time
    rack.write_text(RACK + '  - {id: f4-c, board: nucleo-f4, probe: "hilsim:srv-f4-c"}\n')
    _until("the new board", lambda: "f4-c" in _boards(server))
    time.sleep(0.05)
    rack.write_text(RACK + "  - {id: f4-d, board: nucleo-f5, probe: 'hilsim:x'}\n")

    def reported():
        data = _get(server.url + "api/rack").json()
        return data if data["error"] else None

    data = _until("the broken edit", reported)
    assert "boards[3].board: unknown board 'nucleo-f5'" in data["error"]
    assert [b["id"] for b in data["boards"]] == [*IDS, "f4-c"]  # the last good rack
