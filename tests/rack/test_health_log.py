"""The board health history: recoveries, checks and taking a board out of service."""

from __future__ import annotations

import pytest

from hil.rack.leases import open_store


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "leases.sqlite")


def test_health_log_keeps_events_in_order_per_board(store):
    store.record_health_event("f4-a", "recovery", step="swd-reset", ok=False, detail="no answer")
    store.record_health_event("f4-a", "recovery", step="power-cycle", ok=True)
    store.record_health_event("f4-b", "check", ok=True, detail="ping")
    events = store.health_log("f4-a")
    assert [(e.kind, e.step, e.ok) for e in events] == [
        ("recovery", "swd-reset", False), ("recovery", "power-cycle", True)]
    assert {e.rack_id for e in store.health_log()} == {"f4-a", "f4-b"}
    assert len(store.health_log(limit=1)) == 1
    assert store.health_log(limit=1)[0].rack_id == "f4-b"  # the newest


def test_unknown_event_kind_is_refused(store):
    with pytest.raises(ValueError, match="unknown health event"):
        store.record_health_event("f4-a", "reboot", ok=True)
    assert store.health_log() == []


def test_mark_unhealthy_takes_the_board_out_at_once_with_its_reason(store):
    health = store.mark_unhealthy("f4-a", "recovery ladder failed: power cycle did not help")
    assert not health.healthy
    assert store.health()["f4-a"].unhealthy_reason.startswith("recovery ladder failed")
    (event,) = store.health_log("f4-a")
    assert (event.kind, event.ok) == ("unhealthy", False)
    assert "power cycle" in event.detail
    store.reset("f4-a")
    assert "f4-a" not in store.health()
