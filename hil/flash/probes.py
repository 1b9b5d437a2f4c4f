"""Which probe flashes a board: listing connected probes and choosing one without guessing.

Choice order (``select_probe``): ``--probe``; else the rack entry for the board (the only
one, or the only one whose probe is connected); else the only connected probe whose reported
board is this board. Two candidates are an error, never a guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hil.boards import Board
from hil.errors import NoProbeError, UsageError
from hil.flash.probe_id import ProbeId
from hil.rack.inventory import Rack, RackEntry, load_rack

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeInfo:
    """One connected probe as ``hil probes`` shows it."""

    unique_id: str
    vendor: str
    product: str
    board: str | None  # the board the probe reports (on-board probes, simulated probes)
    target: str | None  # the pyOCD target the probe reports
    rack_entry: str | None

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


@dataclass(frozen=True)
class ProbeChoice:
    unique_id: ProbeId
    rack_entry: RackEntry | None
    reason: str  # how it was chosen, for messages


def _norm(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def list_probes(rack: Rack | None = None, *, with_rack: bool = True) -> list[ProbeInfo]:
    """Every probe pyOCD sees now (USB probes and ``hilsim:`` probes), with its rack entry."""
    from pyocd.core.helpers import ConnectHelper

    if with_rack and rack is None:
        rack = load_rack()
    out = []
    for probe in ConnectHelper.get_all_connected_probes(blocking=False,
                                                        print_wait_message=False):
        try:
            info = probe.associated_board_info
        except Exception:  # noqa: BLE001 - a probe that cannot describe itself is still listed
            info = None
        uid = probe.unique_id
        entry = None
        if rack is not None:
            entry = next((e.id for e in rack.entries if e.probe.matches(uid)), None)
        out.append(ProbeInfo(uid, probe.vendor_name, probe.product_name,
                             info.name if info else None, info.target if info else None, entry))
    return out


def probe_matches_board(info: ProbeInfo, board: Board) -> bool:
    if not info.board:
        return False
    names = {_norm(n) for n in (board.name, *board.aliases)}
    return _norm(info.board) in names


def select_probe(board: Board, probe: ProbeId | None = None,
                 rack: Rack | None = None) -> ProbeChoice:
    """Choose the probe for ``board``; raises NoProbeError or UsageError (ambiguous)."""
    rack = rack if rack is not None else load_rack()
    if probe:
        entry = next((e for e in rack.entries if e.probe.matches(probe)), None)
        return ProbeChoice(probe, entry, "--probe")
    entries = rack.entries_for_board(board.name)
    if len(entries) == 1:
        return ProbeChoice(entries[0].probe, entries[0], f"rack entry {entries[0].id}")
    if not entries and board.flash.tool == "openocd":
        # OpenOCD finds the board's J-Link itself; pyOCD cannot list it without J-Link
        # support installed. With two J-Links attached, name one: --probe jlink:SERIAL.
        return ProbeChoice(ProbeId.parse("jlink"), None, "the J-Link OpenOCD finds")
    found = list_probes(rack)
    if len(entries) > 1:
        present = [e for e in entries if any(e.probe.matches(p.unique_id) for p in found)]
        if len(present) == 1:
            return ProbeChoice(present[0].probe, present[0], f"rack entry {present[0].id}")
        listing = ", ".join(f"{e.id} ({e.probe})" for e in entries)
        if not present:
            raise NoProbeError(
                f"no probe for board {board.name}: looked for the probes of rack entries "
                f"{listing}; connected probes: {describe_probes(found)}",
                hint="connect one of them, or pass --probe ID (see hil probes)")
        raise UsageError(
            f"{len(present)} rack entries for board {board.name} have their probe connected: "
            f"{', '.join(f'{e.id} ({e.probe})' for e in present)}; not guessing",
            hint="choose one with --probe ID (hil rack leasing picks a free one)")
    matching = [p for p in found if probe_matches_board(p, board)]
    if len(matching) == 1:
        return ProbeChoice(ProbeId.parse(matching[0].unique_id), None,
                           "the only probe reporting this board")
    if not matching:
        raise NoProbeError(
            f"no probe for board {board.name}: looked for a rack entry for it "
            f"({rack.path or 'no rack file'}) or a probe reporting board {board.name}; "
            f"connected probes: {describe_probes(found)}",
            hint="connect the board's probe, pass --probe ID, or add the board to rack.yaml "
            "(hil probes lists probe ids)")
    raise UsageError(
        f"{len(matching)} connected probes report board {board.name}: "
        f"{', '.join(p.unique_id for p in matching)}; not guessing",
        hint="choose one with --probe ID, or name it in rack.yaml")


def describe_probes(found: list[ProbeInfo]) -> str:
    """'id (board), ...' or 'none', for error messages."""
    if not found:
        return "none"
    return ", ".join(f"{p.unique_id} ({p.board or p.product})" for p in found)
