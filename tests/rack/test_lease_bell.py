"""A queued job is woken by the change that frees a board for it (a release, a board
returned to service), not by its next poll; a refusal reaches it the same way; and reads
(status, the rack page) do not wait for a writer. On SQLite and on a real PostgreSQL.

The polls are set to a minute here, so a waiter that gets its board (or its refusal) within
the join's guard was rung: without the bell it would still be asleep."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from hil.errors import BoardsUnhealthy
from hil.rack import bell, leases
from hil.rack.leases import open_store

GUARD_S = 20.0  # only a hang guard: a rung waiter is done in milliseconds


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "leases.sqlite")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def slow_polls(monkeypatch):
    monkeypatch.setattr(leases, "BELL_POLL_S", 60.0)
    monkeypatch.setattr(leases, "POLL_S", 60.0)


class Waiter(threading.Thread):
    """``acquire`` in a thread of its own (its own database connection), keeping the result
    or the error."""

    def __init__(self, url: str, candidates: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.candidates = url, candidates
        self.result: leases.LeaseInfo | None = None
        self.error: BaseException | None = None
        self.listening: int | None = None

    def run(self) -> None:
        store = open_store(self.url)
        try:
            self.result = store.acquire(self.candidates, wait=None)
            if isinstance(store, leases.PostgresLeaseStore):  # left no LISTEN behind
                with store._tx(read=True) as cur:
                    cur.execute("SELECT count(*) FROM pg_listening_channels()")
                    self.listening = cur.fetchone()[0]
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            store.close()

    def finish(self) -> None:
        self.join(GUARD_S)
        assert not self.is_alive(), "the waiter was not woken (it sleeps until its next poll)"


def queued(store: leases.LeaseStore, waiter: Waiter) -> None:
    """Wait until ``waiter`` has its place in the queue (and has had time to listen)."""
    deadline = time.monotonic() + GUARD_S
    while store.queue_length() == 0:
        assert waiter.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)  # listening, then one more look: the bell is what wakes it after that


def test_a_release_wakes_the_waiter_at_once(store_url, slow_polls):
    with open_store(store_url) as store:
        held = store.acquire(["f4-a"], ttl=60)
        waiter = Waiter(store_url, ["f4-a"])
        waiter.start()
        queued(store, waiter)
        store.release(held.token)
        waiter.finish()
        assert waiter.error is None and waiter.result and waiter.result.rack_id == "f4-a"
        assert waiter.listening in (None, 0)
        assert store.queue_length() == 0


def test_a_board_returned_to_service_wakes_the_waiter(store_url, slow_polls):
    with open_store(store_url) as store:
        store.mark_unhealthy("f4-a", "probe not found")
        store.acquire(["f4-b"], ttl=60)
        waiter = Waiter(store_url, ["f4-a", "f4-b"])  # f4-b is busy, f4-a out of service
        waiter.start()
        queued(store, waiter)
        store.reset("f4-a")
        waiter.finish()
        assert waiter.error is None and waiter.result and waiter.result.rack_id == "f4-a"


def test_the_last_candidate_going_unhealthy_wakes_the_waiter_with_the_refusal(store_url,
                                                                              slow_polls):
    with open_store(store_url) as store:
        store.acquire(["f4-a"], ttl=60)
        waiter = Waiter(store_url, ["f4-a"])
        waiter.start()
        queued(store, waiter)
        store.mark_unhealthy("f4-a", "recovery failed: no answer after power-cycle")
        waiter.finish()
        assert isinstance(waiter.error, BoardsUnhealthy)
        assert "f4-a: recovery failed" in str(waiter.error)
        assert store.queue_length() == 0


def test_a_waiter_that_cannot_listen_polls_and_still_gets_the_board(tmp_path, monkeypatch):
    db = tmp_path / "leases.sqlite"
    with open_store(db) as store:
        held = store.acquire(["f4-a"], ttl=60)  # ticket 1; the waiter's is 2
        squatter = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        squatter.bind(bell.socket_name(db, 2))  # its bell's name is taken
        bells: list[object] = []
        listen: Callable = bell.SocketBell.listen
        monkeypatch.setattr(leases.SocketBell, "listen",
                            lambda *a: bells.append(listen(*a)) or bells[-1])
        try:
            waiter = Waiter(str(db), ["f4-a"])
            waiter.start()
            queued(store, waiter)
            store.release(held.token)
            waiter.finish()
        finally:
            squatter.close()
        assert bells == [None]  # no bell: it polled
        assert waiter.error is None and waiter.result and waiter.result.rack_id == "f4-a"


def test_ringing_a_place_nobody_listens_on_is_harmless(tmp_path):
    bell.ring_sockets(tmp_path / "leases.sqlite", [1, 2, 3])
    assert bell.socket_name(tmp_path / "a.sqlite", 1) != bell.socket_name(tmp_path / "b.sqlite", 1)
    mine = bell.SocketBell.listen(tmp_path / "a.sqlite", 7)
    assert mine is not None
    try:
        assert mine.wait(0) is False
        bell.ring_sockets(tmp_path / "a.sqlite", [7, 7, 7])
        assert mine.wait(GUARD_S) is True
        assert mine.wait(0) is False  # three rings queued are one wake-up
    finally:
        mine.close()


def test_a_bell_works_in_a_process_holding_over_a_thousand_files(tmp_path):
    """A rack host or CI runner may hold many files: the bell's socket number is past what
    select() handles, and the wait must still work (not raise)."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit of open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fds = []
    try:
        while not fds or fds[-1] < 1040:
            fds.append(os.open(os.devnull, os.O_RDONLY))
        mine = bell.SocketBell.listen(tmp_path / "a.sqlite", 1)
        assert mine is not None and mine._sock.fileno() > 1024
        try:
            bell.ring_sockets(tmp_path / "a.sqlite", [1])
            assert mine.wait(GUARD_S) is True
        finally:
            mine.close()
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_postgresql_stores_in_two_schemas_of_one_database_ring_apart(pg_url):
    """NOTIFY channels are per database: each store's carry its schema."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS rack_a")
        conn.execute("CREATE SCHEMA IF NOT EXISTS rack_b")
    sep = "&" if "?" in pg_url else "?"
    a = open_store(f"{pg_url}{sep}options=-csearch_path%3Drack_a")
    b = open_store(f"{pg_url}{sep}options=-csearch_path%3Drack_b")
    try:
        assert isinstance(a, leases.PostgresLeaseStore)
        assert isinstance(b, leases.PostgresLeaseStore)
        assert a._channel(1) != b._channel(1)
        assert a._channel(1) == a._channel(1) and a._channel(1).startswith("hil_lease_")
        with a._tx(read=True) as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE "
                        "table_schema = 'rack_a' AND table_name = 'hil_leases'")
            assert cur.fetchone()[0] == 1  # the store really lives in its schema
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_status_reads_do_not_wait_for_a_writer(backend, request, tmp_path):
    """A transaction holding the write lock (a slow writer, a stuck process) does not stall
    ``hil rack status`` or the rack page."""
    if backend == "sqlite":
        url = str(tmp_path / "leases.sqlite")
        open_store(url).close()
        writer = sqlite3.connect(url, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        release = writer.close
    else:
        import psycopg

        url = request.getfixturevalue("pg_url")
        open_store(url).close()
        writer = psycopg.connect(url)
        writer.execute("SELECT pg_advisory_xact_lock(%s)", (leases._ADVISORY_KEY,))
        release = writer.close
    done: list[object] = []

    def read() -> None:
        with open_store(url) as store:
            done.append((store.health(), store.view().leases, store.queue_length()))

    try:
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(GUARD_S)
        assert not reader.is_alive(), "a read waited for the writer's lock"
        assert done == [({}, {}, 0)]
    finally:
        release()


def test_hil_test_shows_its_wait_for_a_board_while_it_waits_and_starts_on_release(tmp_path):
    """The real ``hil test`` queued behind two held boards says so while it waits (not in
    the test's captured output afterwards) and runs as soon as one is released."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hil.rack import lease_store, load_rack

    hil = str(Path(sys.executable).parent / "hil")
    log = tmp_path / "hil.log"
    with lease_store(load_rack()) as store:
        held = [store.acquire(["f4-a"], ttl=120), store.acquire(["f4-b"], ttl=120)]
        with open(log, "wb") as out:
            proc = subprocess.Popen([hil, "test", "--board", "nucleo-f4", "shell"],
                                    env=dict(os.environ, HIL_LEASE_WAIT="120"),
                                    stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 120
            while "hil: waiting for a free nucleo-f4 (f4-a, f4-b): place 1 of 1" \
                    not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.05)
            assert store.queue_length() == 1  # still waiting: the line came while it waited
            store.release(held[1].token)
            assert proc.wait(timeout=120) == 0, log.read_text(errors="replace")[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text(errors="replace")
        assert "f4-b" in text and "not a hardware pass" in text
        store.release(held[0].token)
