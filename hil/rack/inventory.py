"""The rack inventory (``rack.yaml``): which board sits on which probe and console.

Minimal form for flashing (issue 5); the rack issue grows it (leases, health). Validated with
the same Reader as board files: unknown keys, duplicate ids and unknown boards are errors that
name the file and key.

    schema: 1
    boards:
      - id: f4-a                 # unique rack entry id
        board: nucleo-f4         # a board name from boards/
        probe: hilsim:f4-a       # probe unique id: stlink:..., a pyOCD id, hilsim:<name>,
                                 # remote:host:port
        console: null            # device path or pyserial URL; null for a virtual board
        tags: [virtual]
        emulator: qemu           # optional: a virtual board
        sim_faults: ""           # optional: faults a hilsim probe injects (HIL_SIM_FAULTS syntax)
        fixtures: [can]          # optional: test fixtures wired to it (app.yaml requires:)
        power:                   # optional: how its power is switched (hil.power)
          driver: uhubctl        # uhubctl | pdudaemon | command | virtual | a site's own
          location: "1-1"        # ... and the driver's own keys
          port: 2
        health: {golden: shell}  # optional: this board's health check (hil.rack.health_spec)
    health:                      # optional: every board's health check, re-check cool-down
      recheck_after: 600
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ConfigError
from hil.flash.probe_id import ProbeId
from hil.power import PowerSpec
from hil.rack.health_spec import DEFAULT_HEALTH, HealthSpec, parse_health
from hil.schema import Reader, load_yaml
from hil.settings import current
from hil.storage import redact_url

SCHEMA_VERSION = 1
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EMULATORS = ("qemu",)


@dataclass(frozen=True)
class RackEntry:
    """One board on the rack."""

    id: str
    board: str
    probe: ProbeId  # str(probe) is the text of the rack file
    console: str | None = None
    tags: tuple[str, ...] = ()
    emulator: str | None = None
    sim_faults: str | None = None
    fixtures: tuple[str, ...] = ()  # test fixtures wired to the board (app.yaml requires:)
    power: PowerSpec | None = None  # how its power is switched (hil.power)
    health: HealthSpec | None = None  # its own health check (None: the rack's)

    def __post_init__(self) -> None:
        if isinstance(self.probe, str):  # built in code from text: parsed here, once
            object.__setattr__(self, "probe", ProbeId.parse(self.probe))

    @property
    def is_virtual(self) -> bool:
        """A board in software: never counted as hardware, whatever else the entry says."""
        return self.emulator is not None or self.probe.simulated


@dataclass(frozen=True)
class Rack:
    path: Path | None
    entries: tuple[RackEntry, ...]
    leases_url: str | None = None  # None: SQLite in the state directory
    health: HealthSpec = DEFAULT_HEALTH  # the rack file's top-level health: (every board)

    def entry_for_probe(self, probe: ProbeId) -> RackEntry | None:
        return next((e for e in self.entries if e.probe == probe), None)

    def entries_for_board(self, board_name: str) -> list[RackEntry]:
        return [e for e in self.entries if e.board == board_name]

    def entry(self, entry_id: str) -> RackEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def health_for(self, entry: RackEntry) -> HealthSpec:
        """The health check of ``entry``: its own ``health:``, else the rack's."""
        return entry.health or self.health


def default_rack_path() -> Path:
    """The project's rack file (HIL_RACK, else ``rack`` in the project file, else rack.yaml
    in the project root)."""
    return current().rack


def load_rack(path: Path | None = None, *, required: bool = False) -> Rack:
    """Load and validate the rack file; an absent default file is an empty rack."""
    explicit = path is not None or current().explicit("rack")
    path = path or default_rack_path()
    if not path.exists():
        if required or explicit:
            raise ConfigError("rack file does not exist", path=path,
                              hint="create it ('hil init' writes one), or fix the path "
                              f"(set by {current().source('rack')})")
        return Rack(None, ())
    return parse_rack(load_yaml(path), path)


def _probe(r: Reader) -> ProbeId:
    """The entry's probe id, parsed; a bad one is an error naming the file and key."""
    try:
        return ProbeId.parse(r.str("probe"))
    except ConfigError as exc:
        raise r.error("probe", exc.message, hint=exc.hint) from None


def _power(r: Reader) -> PowerSpec | None:
    """The entry's ``power:`` mapping: a known driver name and that driver's keys (checked by
    the driver once the entry is built, see ``parse_rack``)."""
    if not r.has("power"):
        return None
    p = r.sub("power")
    assert p is not None
    from hil.power import driver_class

    name = p.str("driver")
    try:
        driver_class(name)
    except ConfigError as exc:
        raise p.error("driver", exc.message, hint=exc.hint) from None
    options = {k: v for k, v in p.data.items() if k != "driver"}
    return PowerSpec(name, options, path=r.path, key=p.key)


def _entry_health(r: Reader, rack_health: HealthSpec) -> HealthSpec | None:
    """The entry's own ``health:`` over the rack's, or None when it has none."""
    spec = parse_health(r, "health", rack_health)
    return None if spec is rack_health else spec


def parse_rack(data: object, path: Path) -> Rack:
    from hil.boards import BoardCatalog

    top = Reader(data if data is not None else {}, path)
    version = top.int("schema", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise top.error("schema", f"unsupported rack schema version {version}",
                        hint=f"this hil reads schema {SCHEMA_VERSION}")
    leases = top.sub("leases", required=False)
    leases_url = None
    if leases is not None:
        leases_url = leases.str("database", None)
        if leases_url and not leases_url.startswith(("postgresql://", "postgres://",
                                                     "sqlite:///")):
            raise leases.error("database", f"'{redact_url(leases_url)}' is not a lease "
                               "database URL",
                               hint="use postgresql://user@host/db for a shared rack, or "
                               "leave it out for SQLite in the state directory")
        leases.done()
    health = parse_health(top, "health", DEFAULT_HEALTH)
    catalog = BoardCatalog()
    entries: list[RackEntry] = []
    seen_ids: dict[str, str] = {}
    seen_probes: dict[ProbeId, str] = {}
    for r in top.items("boards", []):
        entry = RackEntry(
            id=r.str("id"),
            board=r.str("board"),
            probe=_probe(r),
            console=r.str("console", None),
            tags=r.str_list("tags", ()),
            emulator=r.str("emulator", None, choices=EMULATORS),
            sim_faults=r.str("sim_faults", None),
            fixtures=r.str_list("fixtures", ()),
            power=_power(r),
            health=_entry_health(r, health),
        )
        if not _ID_RE.fullmatch(entry.id):
            raise r.error("id", f"'{entry.id}' is not a valid rack entry id",
                          hint="start with a letter or digit, then use letters, digits, '-', "
                          "'_' and '.' (it names files and console links)")
        if entry.id in seen_ids:
            raise r.error("id", f"duplicate rack entry id '{entry.id}'",
                          hint="every rack entry needs its own id")
        if entry.probe in seen_probes:
            raise r.error("probe", f"probe {entry.probe} is already used by rack entry "
                          f"'{seen_probes[entry.probe]}'",
                          hint="one probe drives one board")
        try:
            board = catalog.get(entry.board)
        except ConfigError as exc:
            raise r.error("board", exc.message, hint=exc.hint) from None
        if entry.emulator and not entry.probe.simulated and not entry.console:
            raise r.error("console", f"virtual board {entry.id} is served by another host "
                          f"({entry.probe}): it needs that host's console URL",
                          hint="e.g. console: rfc2217://rack-host:7001?ign_set_control")
        if entry.sim_faults and not entry.probe.simulated:
            raise r.error("sim_faults", "only a simulated probe (hilsim:<name>) injects faults")
        if entry.sim_faults:
            from hil.flash.sim.faults import parse_faults

            try:
                parse_faults(entry.sim_faults, entry.probe.address, "")  # key named below
            except ConfigError as exc:
                raise r.error("sim_faults", exc.message, hint=exc.hint) from None
        r.done()
        entry = RackEntry(**{**vars(entry), "board": board.name})
        if entry.power is not None:  # the driver checks its own keys (no I/O)
            from hil.power import driver_for

            driver_for(entry)
        seen_ids[entry.id] = entry.id
        seen_probes[entry.probe] = entry.id
        entries.append(entry)
    top.done()
    return Rack(path, tuple(entries), leases_url, health)
