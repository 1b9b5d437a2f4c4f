"""The rack file's health: key, and the lease store's side of health checks (no boards)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.errors import BoardsUnhealthy, ConfigError
from hil.rack.health_spec import DEFAULT_SMOKE, SmokeStep
from hil.rack.inventory import load_rack
from hil.rack.leases import Holder, open_store

ENTRY = "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', emulator: qemu}\n"


def _rack(tmp_path: Path, text: str):
    path = tmp_path / "rack.yaml"
    path.write_text(text)
    return load_rack(path)


def test_without_health_every_board_gets_the_shell_ping_and_a_ten_minute_cool_down(tmp_path):
    rack = _rack(tmp_path, "schema: 1\nboards:\n" + ENTRY)
    spec = rack.health_for(rack.entries[0])
    assert spec.golden is None and spec.golden_path is None  # hil's own shell example
    assert spec.smoke == DEFAULT_SMOKE
    assert [s.send for s in spec.smoke] == [None, "ping"]
    assert spec.recheck_after == 600


def test_a_board_overrides_the_racks_health_key_by_key(tmp_path):
    (tmp_path / "golden.hex").write_text(":00000001FF\n")
    rack = _rack(tmp_path, """\
schema: 1
health:
  recheck_after: 30
  golden: selftest
  smoke: [{send: version, expect: '^board='}]
boards:
  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', emulator: qemu}
  - id: f4-b
    board: nucleo-f4
    probe: 'hilsim:f4-b'
    emulator: qemu
    health: {golden: golden.hex, timeout: 2.5}
""")
    a, b = (rack.health_for(e) for e in rack.entries)
    assert (a.golden, a.recheck_after, a.smoke) == (
        "selftest", 30, (SmokeStep("version", ("^board=",)),))
    assert b.golden is None and b.golden_path == tmp_path / "golden.hex"  # next to the file
    assert (b.timeout, b.recheck_after, b.smoke) == (2.5, 30, a.smoke)  # the rest inherited


@pytest.mark.parametrize(("health", "key", "message"), [
    pytest.param("{recheck_after: soon}", "health.recheck_after", "number of seconds",
                 id="recheck-not-a-number"),
    pytest.param("{recheck_after: -5}", "health.recheck_after", "between 0", id="negative"),
    pytest.param("{golden: build/missing.hex}", "health.golden", "does not exist",
                 id="golden-file-missing"),
    pytest.param("{smoke: [{send: ping, expect: '(pong'}]}", "health.smoke[0].expect",
                 "not a regular expression", id="bad-regex"),
    pytest.param("{smoke: [{send: ping, expct: pong}]}", "health.smoke[0].expct",
                 "unknown key", id="typo-in-a-step"),
    pytest.param("{smoke: [{send: ping}, {}]}", "health.smoke[1].expect", "is required",
                 id="step-without-send-or-expect"),
    pytest.param("{smoke: []}", "health.smoke", "checks nothing", id="empty-smoke"),
    pytest.param("{golden_image: shell}", "health.golden_image", "unknown key",
                 id="unknown-key"),
])
def test_a_bad_health_key_names_the_file_and_the_key(tmp_path, health, key, message):
    with pytest.raises(ConfigError) as info:
        _rack(tmp_path, f"schema: 1\nhealth: {health}\nboards:\n" + ENTRY)
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'rack.yaml'}: {key}: "), text
    assert message in text


def test_a_mistyped_health_key_gets_the_key_it_meant_and_the_known_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        _rack(tmp_path, "schema: 1\nhealth: {smok: []}\nboards:\n" + ENTRY)
    assert "did you mean 'smoke'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _rack(tmp_path, "schema: 1\nhealth: {colour: red}\nboards:\n" + ENTRY)
    assert "known keys here: golden, recheck_after, smoke, timeout" in str(info.value)


def test_a_bad_health_key_of_a_board_names_its_entry(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("boards[0].health.timeout: must be")):
        _rack(tmp_path, "schema: 1\nboards:\n"
              "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', emulator: qemu, "
              "health: {timeout: 0}}\n")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "leases.sqlite") as s:
        yield s


def _holder(purpose: str = "test") -> Holder:
    return Holder("tester", "here", 0, None, purpose)


def test_a_check_never_takes_a_leased_board(store):
    store.acquire(["f4-a"], holder=_holder("a job"))
    assert store.lease_for_check("f4-a", holder=_holder(), ttl=60) is None
    assert store.lease_for_check("f4-b", holder=_holder(), ttl=60) is not None


def test_a_check_leases_an_unhealthy_board_that_jobs_cannot_have(store):
    store.mark_unhealthy("f4-a", "console dead")
    with pytest.raises(BoardsUnhealthy, match="f4-a: console dead"):
        store.acquire(["f4-a"], holder=_holder("a job"), wait=0)
    assert store.queue_length() == 0  # the refused job left no queue place behind
    info = store.lease_for_check("f4-a", holder=_holder("check"), ttl=60)
    assert info is not None and store.leases()["f4-a"].holder.purpose == "check"


def test_a_passing_check_returns_an_unhealthy_board_and_the_queue_gets_it(store):
    store.mark_unhealthy("f4-a", "console dead")
    record = store.record_check("f4-a", True)
    assert record.returned
    assert store.health().get("f4-a") is None or store.health()["f4-a"].healthy
    assert [e.kind for e in store.health_log("f4-a")] == ["unhealthy", "check", "returned"]
    assert store.acquire(["f4-a"], holder=_holder("a job"), wait=0).rack_id == "f4-a"


def test_failing_checks_keep_the_distinct_reasons_newest_first(store):
    store.record_check("f4-a", False, "flash failed")  # healthy -> out
    store.record_check("f4-a", False, "no pong")
    record = store.record_check("f4-a", False, "flash failed")  # again: not twice
    assert record.reason_after == ("health check failed: flash failed | "
                                   "health check failed: no pong")
    assert store.health()["f4-a"].unhealthy_reason == record.reason_after
    assert [(e.kind, e.ok) for e in store.health_log("f4-a")] == [
        ("check", False), ("unhealthy", False), ("check", False), ("check", False)]


def test_a_recheck_is_due_after_the_cool_down_from_the_last_failed_check(store, tmp_path):
    from hil.rack.check import due_checks

    rack = _rack(tmp_path, "schema: 1\nhealth: {recheck_after: 100}\nboards:\n" + ENTRY
                 + "  - {id: f4-b, board: nucleo-f4, probe: 'hilsim:f4-b', emulator: qemu}\n")
    store.mark_unhealthy("f4-a", "console dead")
    out_at = store.unhealthy_since()["f4-a"]

    def due(now: float, idle_every: float | None = None) -> list[str]:
        return [d.entry.id for d in due_checks(rack, store, rack.entries, now=now,
                                               idle_every=idle_every)]

    assert due(out_at + 99) == []
    assert due(out_at + 101) == ["f4-a"]
    store.record_check("f4-a", False, "no pong")
    failed_at = store.unhealthy_since()["f4-a"]
    assert due(failed_at + 99) == []  # the cool-down starts again
    assert due(failed_at + 101) == ["f4-a"]
    # idle checks: a healthy board never checked is due; once checked, after the period
    assert due(failed_at, idle_every=50) == ["f4-b"]
    store.record_check("f4-b", True)
    checked_at = store.health_log("f4-b")[-1].at
    assert due(checked_at + 49, idle_every=50) == []
    assert due(checked_at + 51, idle_every=50) == ["f4-b"]
    store.acquire(["f4-b"], holder=_holder("a job"))
    assert due(checked_at + 51, idle_every=50) == []  # leased: not idle
    # a board a person switched off waits for them, not for a re-check that would power it
    store.mark_unhealthy("f4-a", "switched off by hand by ann@lab; switch it on with ...")
    assert due(store.unhealthy_since()["f4-a"] + 1e6) == []
