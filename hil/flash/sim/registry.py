"""Which board a simulated probe ``hilsim:<name>`` simulates, and which faults it injects.

A simulated probe is built from its unique id alone (so ``pyocd server --probe hilsim:f4-a``
works in another process). Its board is, in order:

1. the board of the rack entry whose probe is ``hilsim:<name>`` (rack.yaml / HIL_RACK);
2. the board recorded beside its persisted flash (``state_dir()/simflash/<name>.json``): a
   simulated board keeps its identity once created, like a real one, so flashing it with the
   wrong ``--board`` fails the chip-id check;
3. a hint: ``HIL_SIM_BOARDS="f4-a=nucleo-f4,x=nucleo-f446re"`` or ``hint_board()``, which the
   flasher calls with the ``--board`` of the command line before pyOCD enumerates probes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.boards import Board, load_board
from hil.flash.probe_id import SIMULATED, ProbeId, check_sim_name
from hil.flash.sim.faults import Faults, faults_for
from hil.flash.sim.store import SimFlashStore, sim_dir
from hil.settings import current

PREFIX = SIMULATED
ENV_BOARDS = "HIL_SIM_BOARDS"
_HINTS: dict[str, str] = {}


@dataclass(frozen=True)
class SimSpec:
    name: str
    board: Board
    source: str  # where the board came from: "rack entry f4-a", "state file", "hint"
    rack_entry: str | None
    faults: Faults


def hint_board(name: str, board_name: str) -> None:
    """Tell this process's simulated probe ``name`` which board it is if nothing else says."""
    _HINTS[name] = board_name


def clear_hints() -> None:
    _HINTS.clear()


def _env_hints() -> dict[str, str]:
    out = {}
    for item in (current().sim_boards or "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _rack():
    from hil.rack.inventory import load_rack

    return load_rack()


def resolve(name: str) -> SimSpec | None:
    """The spec of simulated probe ``name``, or None when no source names its board."""
    check_sim_name(name)
    rack = _rack()
    entry = rack.entry_for_probe(ProbeId.simulated_probe(name))
    if entry is not None:
        return SimSpec(name, load_board(entry.board), f"rack entry {entry.id}", entry.id,
                       faults_for(name, entry.sim_faults))
    meta = SimFlashStore.read_metadata(name)
    if meta is not None:
        return SimSpec(name, load_board(meta["board"]), "state file", None, faults_for(name))
    board = _HINTS.get(name) or _env_hints().get(name)
    if board:
        return SimSpec(name, load_board(board), "hint", None, faults_for(name))
    return None


def known_names() -> list[str]:
    """Every simulated probe that exists: rack entries, persisted flashes, HIL_SIM_BOARDS.

    In-process hints do not make a probe exist (it does once it has been flashed)."""
    names = set(_env_hints())
    for entry in _rack().entries:
        if entry.probe.simulated:
            names.add(entry.probe.address)
    directory = sim_dir()
    if directory.is_dir():
        names.update(p.stem for p in directory.glob("*.json"))
    return sorted(names)
