"""The test plan: every app x every board it allows, each cell saying where it would run or
why it will not. Pure: the rack, the boards and which hardware is present come in as data.

A cell runs on present hardware (rack entries of its board wired to every fixture it
requires), else on a virtual board of the rack (its fixtures plus those its board's QEMU
machine emulates), else in the board's plain QEMU machine (the machine's fixtures); an app
with ``hardware_only`` and a board the gate requires on hardware take only hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hil.app import MANIFEST, App
from hil.boards import Board
from hil.errors import ConfigError, UsageError
from hil.rack.inventory import RackEntry

# How a runnable cell runs (``Cell.kind``)
HARDWARE, VIRTUAL, QEMU = "hardware", "virtual", "qemu"
FILTERED = "filtered"


@dataclass(frozen=True)
class Filters:
    """``--app``, ``--tag``, ``--board`` (empty: no filter) and where a cell may run."""

    apps: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    boards: tuple[str, ...] = ()
    on: str = "auto"  # auto | hardware | qemu
    require_hardware: bool = False  # --require-hardware: every board
    hardware_boards: tuple[str, ...] = ()  # [gate] require_hardware


@dataclass(frozen=True)
class Cell:
    """One app on one board: where it would run (``kind`` and ``entries``), or why not."""

    app: App
    board: Board
    harness: str
    kind: str | None = None  # hardware | virtual | qemu; None: not run
    entries: tuple[RackEntry, ...] = ()  # rack entries to lease one of (hardware, virtual)
    reason: str = ""  # why it will not run ("filtered", "no board with fixture can", ...)
    hardware_required: bool = False  # not run because hardware was required and absent
    # matching rack entries left out as unhealthy: ((rack id, reason), ...)
    unhealthy: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.app.name}@{self.board.name}"

    @property
    def runnable(self) -> bool:
        return self.kind is not None

    @property
    def runs_on(self) -> str:
        """For humans: ``hardware f4-a, f4-b``, ``virtual board f4-v``, ``QEMU (machine)``,
        followed by the matching boards left out as unhealthy."""
        if self.kind == HARDWARE:
            where = f"hardware {', '.join(e.id for e in self.entries)}"
        elif self.kind == VIRTUAL:
            word = "virtual boards" if len(self.entries) > 1 else "virtual board"
            where = f"{word} {', '.join(e.id for e in self.entries)}"
        elif self.kind == QEMU:
            where = f"QEMU ({self.board.qemu.machine if self.board.qemu else '?'})"
        else:
            return f"not run: {self.reason}"
        if self.unhealthy:
            ids = ", ".join(i for i, _ in self.unhealthy)
            where += f" (unhealthy, skipped: {ids})"
        return where

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "app": self.app.name, "board": self.board.name,
                "harness": self.harness, "run": self.runnable, "kind": self.kind,
                "entries": [e.id for e in self.entries], "reason": self.reason or None,
                "runs_on": self.runs_on, "requires": list(self.app.needs.requires),
                "tags": list(self.app.needs.tags),
                "unhealthy": [{"rack_id": i, "reason": r} for i, r in self.unhealthy]}


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    shard: tuple[int, int] = (1, 1)
    weights: Mapping[str, float] = field(default_factory=dict)

    @property
    def runnable(self) -> list[Cell]:
        return [c for c in self.cells if c.runnable]


def allowed_boards(app: App, catalog: Sequence[Board]) -> list[Board]:
    """The boards an app allows: its ``boards`` (every board when empty) minus
    ``exclude_boards``; an unknown name is an error naming app.yaml and the key."""
    by_name: dict[str, Board] = {}
    for board in catalog:
        for key in (board.name, *board.aliases):
            by_name[key] = board
    manifest = app.dir / MANIFEST
    for key, names in (("boards", app.boards), ("exclude_boards", app.needs.exclude_boards)):
        for i, name in enumerate(names):
            if name not in by_name:
                known = ", ".join(sorted(b.name for b in catalog))
                raise ConfigError(f"unknown board '{name}'", path=manifest, key=f"{key}[{i}]",
                                  hint=f"known boards: {known}")
    allow = {by_name[n].name for n in app.boards}
    deny = {by_name[n].name for n in app.needs.exclude_boards}
    return [b for b in catalog if (not allow or b.name in allow) and b.name not in deny]


def make_plan(apps: Sequence[tuple[App, str]], catalog: Sequence[Board],
              rack: Sequence[RackEntry], present: Mapping[str, Sequence[RackEntry]],
              filters: Filters = Filters(),
              unhealthy: Mapping[str, str] | None = None) -> list[Cell]:
    """Every (app, harness) x every board it allows, in app then board order.

    ``present``: board name -> its rack entries with hardware present now (the CLI asks the
    probes; tests pass data). ``unhealthy``: rack id -> reason of the entries out of service
    (the lease store's health): a cell never runs on them; one whose matching entries are
    all unhealthy falls back as if they were absent (a virtual board, then plain QEMU), or
    is not run, saying so. Board names in ``filters`` must exist in ``catalog``."""
    known = {k: b.name for b in catalog for k in (b.name, *b.aliases)}
    for option, names in (("--board", filters.boards),
                          ("[gate] require_hardware", filters.hardware_boards)):
        for name in names:
            if name not in known:
                raise UsageError(f"{option}: unknown board '{name}'",
                                 hint=f"known boards: {', '.join(sorted(set(known.values())))}")
    app_names = {a.name for a, _ in apps}
    for name in filters.apps:
        if name not in app_names:
            raise UsageError(f"--app: the plan has no app '{name}'",
                             hint=f"apps with tests: {', '.join(sorted(app_names)) or 'none'}")
    boards_filter = {known[n] for n in filters.boards}
    hardware_boards = {known[n] for n in filters.hardware_boards}
    cells = []
    for app, harness in apps:
        for board in allowed_boards(app, catalog):
            why = _filtered(app, board, filters, boards_filter)
            if why:
                cells.append(Cell(app, board, harness, reason=why))
                continue
            cells.append(_place(app, board, harness, rack, present.get(board.name, ()),
                                filters, board.name in hardware_boards, unhealthy or {}))
    return cells


def _filtered(app: App, board: Board, filters: Filters, boards: set[str]) -> str:
    if filters.apps and app.name not in filters.apps:
        return f"{FILTERED} (--app)"
    if filters.tags and not set(filters.tags) & set(app.needs.tags):
        return f"{FILTERED} (--tag)"
    if boards and board.name not in boards:
        return f"{FILTERED} (--board)"
    return ""


def _place(app: App, board: Board, harness: str, rack: Sequence[RackEntry],
           present: Sequence[RackEntry], filters: Filters, gate_hardware: bool,
           unhealthy: Mapping[str, str]) -> Cell:
    """Where one cell runs: healthy hardware, else a healthy virtual board, else plain
    QEMU."""
    needs = set(app.needs.requires)
    emulated = set(board.qemu.fixtures) if board.qemu else set()
    matching = tuple(e for e in present if needs <= set(e.fixtures)) \
        if filters.on != "qemu" else ()
    only_hardware = app.needs.hardware_only or filters.require_hardware or gate_hardware \
        or filters.on == "hardware"
    if not only_hardware and filters.on != "qemu":  # --on qemu skips the rack
        matching += tuple(e for e in rack if e.board == board.name and e.is_virtual
                          and board.qemu is not None and needs <= set(e.fixtures) | emulated)
    sick = tuple((e.id, unhealthy[e.id]) for e in matching if e.id in unhealthy)
    hardware = tuple(e for e in matching if not e.is_virtual and e.id not in unhealthy)
    virtual = tuple(e for e in matching if e.is_virtual and e.id not in unhealthy)
    qemu_ok = board.qemu is not None and needs <= emulated
    if hardware:
        return Cell(app, board, harness, HARDWARE, hardware, unhealthy=sick)
    if not only_hardware:
        if virtual:
            return Cell(app, board, harness, VIRTUAL, virtual, unhealthy=sick)
        if qemu_ok:
            return Cell(app, board, harness, QEMU, unhealthy=sick)
    if sick:  # the boards that would run it are out of service
        boards = f"board with {'fixture' if len(needs) == 1 else 'fixtures'} " \
            f"{', '.join(app.needs.requires)}" if needs else f"{board.name} board"
        details = "; ".join(f"{i}: {r}" for i, r in sick)
        return Cell(app, board, harness, reason=f"every {boards} is unhealthy ({details})",
                    unhealthy=sick, hardware_required=only_hardware)
    # not run: say the first reason a user can act on
    offered = [set(e.fixtures) for e in present] if filters.on != "qemu" else []
    if not only_hardware and board.qemu is not None:
        offered += [set(e.fixtures) | emulated for e in virtual_all(rack, board)
                    if filters.on != "qemu"] + [emulated]
    if needs and offered:
        missing = [f for f in app.needs.requires if not any(f in o for o in offered)]
        what = missing or list(app.needs.requires)
        word = "fixture" if len(what) == 1 else "fixtures"
        return Cell(app, board, harness, reason=f"no board with {word} {', '.join(what)}")
    if filters.on == "qemu" and board.qemu is None:
        return Cell(app, board, harness, reason="no QEMU model (--on qemu)")
    if app.needs.hardware_only:
        return Cell(app, board, harness, reason="hardware_only and no hardware",
                    hardware_required=True)
    if only_hardware:
        why = "[gate] require_hardware" if gate_hardware else \
            "--require-hardware" if filters.require_hardware else "--on hardware"
        return Cell(app, board, harness, reason=f"hardware required ({why}) and no hardware",
                    hardware_required=True)
    return Cell(app, board, harness, reason="no QEMU model and no hardware")


def virtual_all(rack: Sequence[RackEntry], board: Board) -> list[RackEntry]:
    return [e for e in rack if e.board == board.name and e.is_virtual]


def shard(cells: Iterable[Cell], index: int, count: int,
          weights: Mapping[str, float] | None = None) -> list[Cell]:
    """The cells of shard ``index`` of ``count`` (1-based). Runnable cells go greedily,
    longest first (last known duration, else the mean of the known ones, else 1), into the
    lightest shard (ties: the lower shard; equal weights: by cell id); then each cell that
    will not run (by id) into the shard with the fewest cells, so every shard reports the
    not-run cells it owns; filtered cells go round-robin by id. Every cell is in exactly
    one shard, the same for the same cells and weights."""
    if not 1 <= index <= count:
        raise UsageError(f"--shard {index}/{count}: I must be between 1 and N")
    cells = list(cells)
    weights = weights or {}
    known = [weights[c.id] for c in cells if c.runnable and c.id in weights]
    default = sum(known) / len(known) if known else 1.0
    load = [0.0] * count
    owner: dict[str, int] = {}
    runnable = sorted((c for c in cells if c.runnable),
                      key=lambda c: (-weights.get(c.id, default), c.id))
    for cell in runnable:
        target = min(range(count), key=lambda i: (load[i], i))
        load[target] += weights.get(cell.id, default)
        owner[cell.id] = target
    sizes = [sum(1 for t in owner.values() if t == i) for i in range(count)]
    not_run = sorted((c for c in cells if not c.runnable), key=lambda c: c.id)
    for cell in (c for c in not_run if not c.reason.startswith(FILTERED)):
        target = min(range(count), key=lambda i: (sizes[i], i))
        sizes[target] += 1
        owner[cell.id] = target
    for n, cell in enumerate(c for c in not_run if c.reason.startswith(FILTERED)):
        owner[cell.id] = n % count
    return [c for c in cells if owner[c.id] == index - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N); raises UsageError."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 1/3") from None
    if n < 1 or not 1 <= i <= n:
        raise UsageError(f"--shard {text}: expected 1 <= I <= N, e.g. 2/3")
    return i, n


def last_durations(records: Iterable[dict[str, object]]) -> dict[str, float]:
    """Cell id -> seconds of its newest test record (``records`` newest first: the audit
    store's ``test`` payloads that carry ``app`` and ``seconds``)."""
    out: dict[str, float] = {}
    for payload in records:
        app, board, seconds = payload.get("app"), payload.get("board"), payload.get("seconds")
        if isinstance(app, str) and isinstance(board, str) and \
                isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            out.setdefault(f"{app}@{board}", float(seconds))
    return out
