"""The test plan without QEMU: filters, fixtures, hardware rules, shards."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from hil.app import load_app
from hil.boards import BoardCatalog
from hil.errors import ConfigError, UsageError
from hil.gate.plan import Filters, last_durations, make_plan, parse_shard, shard
from hil.rack.inventory import RackEntry


def app(tmp_path: Path, name: str, yaml: str = ""):
    d = tmp_path / name
    d.mkdir()
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    (d / "app.yaml").write_text(f"name: {name}\n{yaml}")
    return load_app(d)


@pytest.fixture
def catalog():
    return BoardCatalog().all()


def by_id(cells):
    return {c.id: c for c in cells}


def test_every_app_on_every_board_it_allows(tmp_path, catalog):
    a = app(tmp_path, "a")
    b = app(tmp_path, "b", "boards: [nucleo-f4, hifive1-revb]\n")
    c = app(tmp_path, "c", "exclude_boards: [lm3s6965evb]\n")
    cells = make_plan([(a, "pytest"), (b, "unity"), (c, "pytest")], catalog, [], {})
    names = [b.name for b in catalog]
    assert [x.id for x in cells] == [f"a@{n}" for n in names] + \
        ["b@hifive1-revb", "b@nucleo-f4"] + [f"c@{n}" for n in names if n != "lm3s6965evb"]
    assert all(x.kind == "qemu" and x.runs_on.startswith("QEMU (") for x in cells)


@pytest.mark.parametrize(("filters", "run"), [
    pytest.param(Filters(apps=("a",)), {"a@nucleo-f4", "a@hifive1-revb"}, id="app"),
    pytest.param(Filters(tags=("smoke",)), {"b@nucleo-f4", "b@hifive1-revb"}, id="tag"),
    pytest.param(Filters(boards=("hifive1-revb",)), {"a@hifive1-revb", "b@hifive1-revb"},
                 id="board"),
    pytest.param(Filters(apps=("b",), boards=("nucleo-f4",)), {"b@nucleo-f4"}, id="app-and-board"),
])
def test_filters_keep_the_cells_and_say_why_others_are_out(tmp_path, catalog, filters, run):
    a = app(tmp_path, "a", "boards: [nucleo-f4, hifive1-revb]\ntags: [slow]\n")
    b = app(tmp_path, "b", "boards: [nucleo-f4, hifive1-revb]\ntags: [smoke]\n")
    cells = make_plan([(a, "pytest"), (b, "pytest")], catalog, [], {}, filters)
    assert {c.id for c in cells if c.runnable} == run
    assert all(c.reason.startswith("filtered (--") for c in cells if not c.runnable)
    assert len(cells) == 4


def test_a_fixture_no_board_has_is_not_run_and_says_which(tmp_path, catalog):
    a = app(tmp_path, "a", "boards: [nucleo-f4]\nrequires: [can]\n")
    virtual = RackEntry("f4-v", "nucleo-f4", "hilsim:f4-v", emulator="qemu",
                        fixtures=("uart-loopback",))
    cell, = make_plan([(a, "pytest")], catalog, [virtual], {})
    assert not cell.runnable and cell.reason == "no board with fixture can"
    assert cell.runs_on == "not run: no board with fixture can"


def test_fixtures_come_from_the_rack_entry_or_the_qemu_machine(tmp_path, catalog):
    a = app(tmp_path, "a", "boards: [nucleo-f4]\nrequires: [uart-loopback]\n")
    virtual = RackEntry("f4-v", "nucleo-f4", "hilsim:f4-v", emulator="qemu",
                        fixtures=("uart-loopback",))
    bare = RackEntry("f4-w", "nucleo-f4", "hilsim:f4-w", emulator="qemu")
    cell, = make_plan([(a, "pytest")], catalog, [virtual, bare], {})
    assert cell.kind == "virtual" and [e.id for e in cell.entries] == ["f4-v"]
    f4 = next(b for b in catalog if b.name == "nucleo-f4")
    emulating = [replace(b, qemu=replace(b.qemu, fixtures=("uart-loopback",)))
                 if b is f4 else b for b in catalog]
    cell, = make_plan([(a, "pytest")], emulating, [], {})
    assert cell.kind == "qemu"
    cell, = make_plan([(a, "pytest")], emulating, [bare], {})
    assert cell.kind == "virtual" and [e.id for e in cell.entries] == ["f4-w"]
    cell, = make_plan([(a, "pytest")], emulating, [bare], {}, Filters(on="qemu"))
    assert cell.kind == "qemu"  # --on qemu skips the rack


def test_hardware_wins_and_must_have_the_fixture(tmp_path, catalog):
    a = app(tmp_path, "a", "boards: [nucleo-f4]\nrequires: [can]\n")
    plain = RackEntry("f4-a", "nucleo-f4", "stlink:AAA")
    wired = RackEntry("f4-b", "nucleo-f4", "stlink:BBB", fixtures=("can",))
    cell, = make_plan([(a, "pytest")], catalog, [plain, wired],
                      {"nucleo-f4": [plain, wired]})
    assert cell.kind == "hardware" and cell.runs_on == "hardware f4-b"
    cell, = make_plan([(a, "pytest")], catalog, [plain], {"nucleo-f4": [plain]})
    assert cell.reason == "no board with fixture can"


def test_hardware_only_and_gate_hardware_never_fall_back_to_qemu(tmp_path, catalog):
    a = app(tmp_path, "a", "boards: [nucleo-f4]\nhardware_only: true\n")
    b = app(tmp_path, "b", "boards: [nucleo-f4]\n")
    cells = by_id(make_plan([(a, "pytest"), (b, "pytest")], catalog, [], {}))
    assert cells["a@nucleo-f4"].reason == "hardware_only and no hardware"
    assert cells["b@nucleo-f4"].kind == "qemu"
    cells = by_id(make_plan([(b, "pytest")], catalog, [], {},
                            Filters(hardware_boards=("nucleo-f4",))))
    assert cells["b@nucleo-f4"].reason == \
        "hardware required ([gate] require_hardware) and no hardware"
    assert cells["b@nucleo-f4"].hardware_required


SICK = "3 infrastructure failures in a row; last: console lost"


def test_unhealthy_boards_are_skipped_and_the_cell_falls_back_saying_so(tmp_path, catalog):
    a = app(tmp_path, "a", "boards: [nucleo-f4]\n")
    f4a = RackEntry("f4-a", "nucleo-f4", "hilsim:f4-a", emulator="qemu")
    f4b = RackEntry("f4-b", "nucleo-f4", "hilsim:f4-b", emulator="qemu")
    hw = RackEntry("f4-h", "nucleo-f4", "stlink:AAA")
    cell, = make_plan([(a, "pytest")], catalog, [f4a, f4b], {}, unhealthy={"f4-a": SICK})
    assert cell.kind == "virtual" and [e.id for e in cell.entries] == ["f4-b"]
    assert cell.runs_on == "virtual board f4-b (unhealthy, skipped: f4-a)"
    # every virtual board out of service: plain QEMU, which the cell allows
    cell, = make_plan([(a, "pytest")], catalog, [f4a, f4b], {},
                      unhealthy={"f4-a": SICK, "f4-b": "taken out by hand"})
    assert cell.kind == "qemu" and cell.runs_on == \
        "QEMU (netduinoplus2) (unhealthy, skipped: f4-a, f4-b)"
    assert cell.as_dict()["unhealthy"] == [{"rack_id": "f4-a", "reason": SICK},
                                           {"rack_id": "f4-b", "reason": "taken out by hand"}]
    # the only hardware out of service: a virtual board instead, unless hardware is required
    cell, = make_plan([(a, "pytest")], catalog, [hw, f4b], {"nucleo-f4": [hw]},
                      unhealthy={"f4-h": SICK})
    assert cell.kind == "virtual" and [e.id for e in cell.entries] == ["f4-b"]
    cell, = make_plan([(a, "pytest")], catalog, [hw, f4b], {"nucleo-f4": [hw]},
                      Filters(require_hardware=True), unhealthy={"f4-h": SICK})
    assert not cell.runnable and cell.hardware_required
    assert cell.reason == f"every nucleo-f4 board is unhealthy (f4-h: {SICK})"


def test_a_fixture_only_unhealthy_boards_have_is_not_run(tmp_path, catalog):
    a = app(tmp_path, "a", "boards: [nucleo-f4]\nrequires: [can]\n")
    wired = RackEntry("f4-c", "nucleo-f4", "hilsim:f4-c", emulator="qemu", fixtures=("can",))
    plain = RackEntry("f4-p", "nucleo-f4", "hilsim:f4-p", emulator="qemu")
    cell, = make_plan([(a, "pytest")], catalog, [wired, plain], {},
                      unhealthy={"f4-c": SICK})
    assert not cell.runnable and not cell.hardware_required
    assert cell.reason == f"every board with fixture can is unhealthy (f4-c: {SICK})"


def test_unknown_boards_are_errors_naming_file_key_or_option(tmp_path, catalog):
    a = app(tmp_path, "a", "exclude_boards: [nucleo-f9]\n")
    with pytest.raises(ConfigError) as err:
        make_plan([(a, "pytest")], catalog, [], {})
    assert "app.yaml" in str(err.value) and "exclude_boards[0]" in str(err.value)
    with pytest.raises(UsageError, match="--board: unknown board 'nope'"):
        make_plan([(a, "pytest")], catalog, [], {}, Filters(boards=("nope",)))


@pytest.mark.parametrize(("yaml", "key"), [
    pytest.param("requires: [CAN bus]\n", "requires[0]", id="bad-fixture-name"),
    pytest.param("timeout: -1\n", "timeout", id="negative-timeout"),
    pytest.param("timeout: soon\n", "timeout", id="timeout-not-a-number"),
    pytest.param("hardware_only: maybe\n", "hardware_only", id="not-a-bool"),
    pytest.param("boards: [nucleo-f4]\nexclude_boards: [nucleo-f4]\n", "exclude_boards[0]",
                 id="allowed-and-excluded"),
    pytest.param("tag: [x]\n", "tag", id="unknown-key"),
])
def test_bad_plan_keys_name_file_and_key(tmp_path, yaml, key):
    with pytest.raises(ConfigError) as err:
        app(tmp_path, "a", yaml)
    assert "app.yaml" in str(err.value) and key in str(err.value)


def test_plan_keys_are_read(tmp_path):
    a = app(tmp_path, "a", "tags: [smoke]\ntimeout: 3\nrequires: [can]\nhardware_only: true\n")
    assert (a.needs.tags, a.needs.timeout, a.needs.requires, a.needs.hardware_only) == \
        (("smoke",), 3.0, ("can",), True)


def _cells(tmp_path, catalog, n):
    apps = [(app(tmp_path, f"app{i:02d}"), "pytest") for i in range(n)]
    return make_plan(apps, catalog, [], {})


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("weighted", [False, True], ids=["equal", "durations"])
def test_shards_partition_the_plan(tmp_path, catalog, count, weighted):
    cells = _cells(tmp_path, catalog, 7)
    rng = random.Random(count)
    weights = {c.id: rng.uniform(0.1, 9) for c in cells} if weighted else {}
    parts = [shard(cells, i, count, weights) for i in range(1, count + 1)]
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in cells)  # union is all, none twice
    assert len(ids) == len(set(ids))
    reordered = [{c.id for c in shard(list(reversed(cells)), i, count, weights)}
                 for i in range(1, count + 1)]
    assert reordered == [{c.id for c in p} for p in parts]  # not the input order
    again = [[c.id for c in shard(cells, i, count, dict(weights))] for i in range(1, count + 1)]
    assert again == [[c.id for c in p] for p in parts]  # deterministic


def test_shards_balance_by_duration(tmp_path, catalog):
    cells = _cells(tmp_path, catalog, 2)[:4]
    weights = {cells[0].id: 10.0, cells[1].id: 1.0, cells[2].id: 1.0, cells[3].id: 8.0}
    first, second = shard(cells, 1, 2, weights), shard(cells, 2, 2, weights)
    assert {c.id for c in first} == {cells[0].id}
    assert {c.id for c in second} == {cells[1].id, cells[2].id, cells[3].id}


def test_each_shard_reports_the_not_run_cells_it_owns(tmp_path, catalog):
    a = app(tmp_path, "a", "requires: [can]\ntags: [smoke]\n")  # not run on any board
    b = app(tmp_path, "b", "boards: [nucleo-f4, hifive1-revb]\ntags: [smoke]\n")
    c = app(tmp_path, "c", "tags: [slow]\n")  # filtered by --tag smoke
    cells = make_plan([(a, "pytest"), (b, "pytest"), (c, "pytest")], catalog, [], {},
                      Filters(tags=("smoke",)))
    assert sum(x.runnable for x in cells) == 2 and len(cells) == 10
    parts = [shard(cells, i, 3) for i in (1, 2, 3)]
    ids = [x.id for part in parts for x in part]
    assert sorted(ids) == sorted(x.id for x in cells) and len(ids) == len(set(ids))
    reported = [[x.id for x in part if not x.runnable and x.app.name == "a"]
                for part in parts]
    assert all(reported), reported  # 4 not-run cells over 3 shards: each reports some
    assert [len(part) for part in parts] == [4, 3, 3]
    assert [{x.id for x in shard(list(reversed(cells)), i, 3)} for i in (1, 2, 3)] == \
        [{x.id for x in part} for part in parts]


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_last_durations_take_the_newest_record():
    records = [{"app": "a", "board": "b", "seconds": 2.0},
               {"app": "a", "board": "b", "seconds": 9.0}, {"board": "b", "seconds": 1.0}]
    assert last_durations(records) == {"a@b": 2.0}


def test_board_and_rack_files_declare_fixtures(tmp_path, catalog):
    import yaml

    from hil.boards import parse_board
    from hil.catalog import BOARDS_DIR
    from hil.rack.inventory import parse_rack

    path = BOARDS_DIR / "nucleo-f4.yaml"
    data = yaml.safe_load(path.read_text())
    data["qemu"]["fixtures"] = ["uart-loopback"]
    assert parse_board(data, path).qemu.fixtures == ("uart-loopback",)
    rack = parse_rack({"schema": 1, "boards": [
        {"id": "f4-a", "board": "nucleo-f4", "probe": "stlink:AAA", "fixtures": ["can"]}]},
        tmp_path / "rack.yaml")
    assert rack.entries[0].fixtures == ("can",)
    with pytest.raises(ConfigError) as err:
        parse_rack({"schema": 1, "boards": [
            {"id": "f4-a", "board": "nucleo-f4", "probe": "stlink:AAA", "fixtures": "can"}]},
            tmp_path / "rack.yaml")
    assert "rack.yaml" in str(err.value) and "fixtures" in str(err.value)
