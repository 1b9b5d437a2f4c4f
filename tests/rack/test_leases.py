"""Leases never double-book a board, serve waiters in arrival order, and come back when
their holder dies — on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict

import pytest

from hil.errors import BoardsUnhealthy, LeaseError, LeaseTimeout
from hil.rack.leases import Holder, hold, open_store

BOARDS = ["f4-a", "f4-b"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "leases.sqlite")
    return request.getfixturevalue("pg_url")


def _worker(url: str, rounds: int, start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)
    store = open_store(url)
    for _ in range(rounds):
        info = store.acquire(BOARDS, ttl=30, wait=None)
        time.sleep(0.002)
        store.release(info.token)
    store.close()


def check_log(log: list[tuple]) -> None:
    """No board is acquired while held, and no waiter overtakes more than K-1 earlier ones."""
    holder: dict[str, str | None] = defaultdict(lambda: None)
    tickets = []
    for _seq, rack_id, token, event, ticket, _at in log:
        if event == "acquire":
            assert holder[rack_id] is None, f"{rack_id} double-booked: {token} while " \
                f"{holder[rack_id]} held it"
            holder[rack_id] = token
            tickets.append(ticket)
        else:
            assert holder[rack_id] == token, f"{event} of {token} which did not hold {rack_id}"
            holder[rack_id] = None
    for i, t in enumerate(tickets):
        overtaken = sum(1 for later in tickets[i + 1:] if later < t)
        assert overtaken <= len(BOARDS) - 1, f"ticket {t} overtook {overtaken} earlier waiters"


def test_32_processes_never_share_a_board_and_are_served_in_order(store_url):
    rounds, procs = 20, 32
    open_store(store_url).close()  # create the schema once
    ctx = mp.get_context("spawn")
    start = time.time() + 2.0
    workers = [ctx.Process(target=_worker, args=(store_url, rounds, start)) for _ in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
        assert w.exitcode == 0
    with open_store(store_url) as store:
        log = store.lease_log()
        acquires = [row for row in log if row[3] == "acquire"]
        assert len(acquires) == rounds * procs
        check_log(log)
        assert store.leases() == {}


def test_only_the_token_releases_and_a_busy_rack_times_out_with_position(store_url):
    with open_store(store_url) as store:
        a = store.acquire(["f4-a"], ttl=30)
        with pytest.raises(LeaseError, match="no lease with token"):
            store.release("0" * 32)
        with pytest.raises(LeaseTimeout, match=r"no free board among f4-a after waiting 0.2 s "
                           r"\(place 1 of 1 in the queue; held: f4-a\)"):
            store.acquire(["f4-a"], wait=0.2)
        with pytest.raises(LeaseTimeout, match=r"no free board among f4-a now \(place 1 of 1 "
                           r"in the queue; held: f4-a\)"):
            store.acquire(["f4-a"], wait=0)
        assert store.release(a.token) == "f4-a"
        assert store.queue_length() == 0


def test_sigkilled_holder_on_this_host_loses_its_lease_at_once(store_url, tmp_path):
    code = textwrap.dedent(f"""
        import time
        from hil.rack.leases import hold, open_store
        lease = hold(open_store({store_url!r}), ["f4-a"], ttl=600)
        print(lease.rack_id, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "f4-a"
        with open_store(store_url) as store:
            assert "f4-a" in store.leases()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            info = store.acquire(["f4-a"], wait=5)
            assert info.rack_id == "f4-a"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_holder_on_another_host_is_reclaimed_after_its_ttl(store_url):
    with open_store(store_url) as store:
        remote = Holder("ci", "other-host", 1, "job-7")
        store.acquire(["f4-a"], holder=remote, ttl=1.0)
        assert store.leases()["f4-a"].holder.ci_job == "job-7"
        with pytest.raises(LeaseTimeout):
            store.acquire(["f4-a"], wait=0.1)
        info = store.acquire(["f4-a"], wait=10)
        assert info.rack_id == "f4-a"
        events = [row[3] for row in store.lease_log()]
        assert "expired" in events


def test_heartbeat_keeps_a_short_lease_alive(store_url):
    with open_store(store_url) as store:
        with hold(store, ["f4-a"], ttl=0.6) as lease:
            time.sleep(1.5)
            assert store.leases()["f4-a"].token == lease.token
        assert store.leases() == {}


def test_unhealthy_board_is_skipped_until_reset(store_url):
    with open_store(store_url) as store:
        for _ in range(3):
            health = store.report_failure("f4-a", "probe not found")
        assert not health.healthy and "probe not found" in health.unhealthy_reason
        assert store.acquire(["f4-a", "f4-b"]).rack_id == "f4-b"
        with pytest.raises(BoardsUnhealthy, match="f4-a: 3 infrastructure failures"):
            store.acquire(["f4-a"], wait=30)  # only an unhealthy board: no wait
        store.reset("f4-a")
        assert store.acquire(["f4-a"]).rack_id == "f4-a"


def test_hil_lease_reuses_the_callers_lease(tmp_path, monkeypatch):
    with open_store(tmp_path / "l.sqlite") as store:
        mine = store.acquire(["f4-a"], ttl=60)
        monkeypatch.setenv("HIL_LEASE", mine.token)
        with hold(store, ["f4-a", "f4-b"]) as lease:
            assert lease.rack_id == "f4-a" and lease.token == mine.token
        assert store.leases()["f4-a"].token == mine.token  # not released: not ours
        with pytest.raises(LeaseError, match="HIL_LEASE holds rack entry f4-a, which is not "
                           "one of f4-b"):
            hold(store, ["f4-b"])
        store.release(mine.token)
        with pytest.raises(LeaseError, match="HIL_LEASE names no current lease"):
            hold(store, ["f4-a"])
