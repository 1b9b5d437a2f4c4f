"""Rack scan: the connected probes, their serial ports, and rack entries for the new ones.

``scan`` pairs each probe pyOCD lists (``hil.flash.probes.list_probes``: USB probes and
``hilsim:`` probes) with the serial ports whose USB serial number is the probe's (an ST-LINK's
virtual COM port and a CMSIS-DAP's CDC port carry the probe's serial number), guesses the
board from what pyOCD reports, and proposes a rack entry for every probe no entry names.
``append_entries`` adds them to the rack file as text, so its comments and layout stay, and
writes it only if the result is still a valid rack file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hil.errors import ConfigError
from hil.flash.probe_id import ProbeId
from hil.flash.probes import ProbeInfo, probe_matches_board
from hil.rack.inventory import Rack, parse_rack

BY_ID = Path("/dev/serial/by-id")
FIXME = "FIXME"


@dataclass(frozen=True)
class SerialPort:
    """A serial port as pyserial lists it; ``stable`` is its /dev/serial/by-id link, if any."""

    device: str
    serial_number: str | None
    description: str = ""
    stable: str | None = None

    @property
    def path(self) -> str:
        """The path to put in a rack file: the by-id link survives re-plugging."""
        return self.stable or self.device


@dataclass(frozen=True)
class Found:
    """One connected probe: its serial ports, its rack entry (if any) and the entry to add."""

    probe: ProbeInfo
    ports: tuple[SerialPort, ...]
    rack_entry: str | None
    proposal: dict[str, Any] | None  # the new rack entry (None: the rack has one)
    note: str  # where the board came from, or why it is unknown

    @property
    def board_known(self) -> bool:
        return self.proposal is not None and self.proposal["board"] != FIXME


def serial_ports() -> list[SerialPort]:
    """Every serial port pyserial lists, with its USB serial number and by-id link."""
    from serial.tools import list_ports

    links: dict[str, str] = {}
    if BY_ID.is_dir():
        for link in sorted(BY_ID.iterdir()):
            links.setdefault(os.path.realpath(link), str(link))
    return [SerialPort(p.device, p.serial_number, p.description or "",
                       links.get(os.path.realpath(p.device)))
            for p in list_ports.comports()]


def _same_serial(a: str, b: str) -> bool:
    """Serial numbers equal ignoring case; all-digit ones ignoring leading zeros (a J-Link's
    USB serial number is its serial zero-padded to 12 digits)."""
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a.lower() == b.lower()


def ports_of(unique_id: str, ports: Iterable[SerialPort]) -> tuple[SerialPort, ...]:
    """The serial ports whose USB serial number is the probe's."""
    try:
        serial = ProbeId.parse(unique_id).address
    except ConfigError:
        return ()
    if not serial:
        return ()
    return tuple(p for p in ports if p.serial_number and _same_serial(p.serial_number, serial))


def guess_board(info: ProbeInfo, boards: Sequence[Any]) -> tuple[str | None, str]:
    """The hil board a probe sits on, from pyOCD's board info (name, else target), and how it
    was found; (None, why) when nothing names exactly one board."""
    if info.board:
        named = {b.name for b in boards if probe_matches_board(info, b)}
        if len(named) == 1:
            return named.pop(), f"pyOCD reports board {info.board}"
    if info.target:
        by_target = {b.name for b in boards if b.flash.pyocd_target
                     and b.flash.pyocd_target.lower() == info.target.lower()}
        if len(by_target) == 1:
            return by_target.pop(), f"pyOCD reports target {info.target}"
    reported = ", ".join(f"{k} {v}" for k, v in (("board", info.board),
                                                  ("target", info.target)) if v)
    return None, (f"pyOCD reports {reported}, which no hil board matches" if reported
                  else "pyOCD names no board for this probe")


def _entry_id(board: str | None, unique_id: str, taken: set[str]) -> str:
    probe = ProbeId.parse(unique_id)
    if probe.simulated:
        base = probe.address
    else:
        tail = probe.short_name(4) or "1"
        base = f"{board or 'board'}-{tail}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def scan(rack: Rack, probes: Sequence[ProbeInfo], ports: Sequence[SerialPort]) -> list[Found]:
    """Each probe with its serial ports, its rack entry, and the entry to add if none."""
    from hil.boards import BoardCatalog

    boards = BoardCatalog().all()
    by_name = {b.name: b for b in boards}
    taken = {e.id for e in rack.entries}
    out = []
    for info in sorted(probes, key=lambda p: p.unique_id):
        mine = ports_of(info.unique_id, ports)
        entry = next((e.id for e in rack.entries if e.probe.matches(info.unique_id)), None)
        board, note = guess_board(info, boards)
        proposal: dict[str, Any] | None = None
        if entry is None:
            proposal = {"id": _entry_id(board, info.unique_id, taken),
                        "board": board or FIXME, "probe": info.unique_id}
            if mine:
                proposal["console"] = mine[0].path
            if ProbeId.parse(info.unique_id).simulated and board is not None \
                    and by_name[board].qemu is not None:
                proposal.update(tags=["virtual"], emulator="qemu")
        out.append(Found(info, mine, entry, proposal, note))
    return out


def _scalar(value: Any) -> str:
    """``value`` as a YAML flow scalar or list, quoted where YAML needs it."""
    text: str = yaml.safe_dump([value], default_flow_style=True, width=1 << 20).strip()
    return text[1:-1]


def entry_lines(found: Found, indent: int = 2) -> list[str]:
    """The proposed entry as block YAML lines (a comment line first) at ``indent``."""
    assert found.proposal is not None
    pad = " " * indent
    p = found.probe
    about = f"{p.vendor} {p.product}".strip()
    if found.ports:
        about += f"; serial port {found.ports[0].device}"
        if len(found.ports) > 1:
            about += " (also " + ", ".join(x.device for x in found.ports[1:]) + ")"
    lines = [f"{pad}# {about}; {found.note}"]
    for i, (key, value) in enumerate(found.proposal.items()):
        lead = f"{pad}- " if i == 0 else f"{pad}  "
        line = f"{lead}{key}: {_scalar(value)}"
        if key == "board" and value == FIXME:
            line += "  # FIXME: a board name from 'hil boards'"
        lines.append(line)
    return lines


def _flow(found: Found) -> str:
    assert found.proposal is not None
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in found.proposal.items()) + "}"


def _last_content_end(text: str, start: int, end: int) -> int:
    """The offset just after the last line in text[start:end] that is not blank or a comment
    (so new items follow the last item, before any comment lines that come after it)."""
    offset = end
    for line in reversed(text[start:end].splitlines(keepends=True)):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        offset -= len(line)
    return offset


def insert_entries(text: str, found: Sequence[Found]) -> tuple[str, list[Found]]:
    """``text`` of a rack file with the proposed entries added at the end of its ``boards:``
    list (comments and layout kept), and which entries were added. Entries whose board is
    unknown are added commented out (block lists) or left out (flow lists)."""
    new = [f for f in found if f.proposal is not None]
    root = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
    boards = None
    if isinstance(root, yaml.MappingNode):
        boards = next((v for k, v in root.value if getattr(k, "value", None) == "boards"), None)
    written = [f for f in new if f.board_known]

    def block(indent: int) -> str:
        lines: list[str] = []
        for f in new:
            entry = entry_lines(f, indent)
            if not f.board_known:
                entry = [entry[0]] + [line[:indent] + "# " + line[indent:]
                                      for line in entry[1:]]
            lines += entry
        return "".join(line + "\n" for line in lines)

    if boards is None or (isinstance(boards, yaml.ScalarNode) and boards.value in ("", "~",
                                                                                    "null")):
        if boards is None:
            body = text if not text or text.endswith("\n") else text + "\n"
            if not body.strip():
                body = "schema: 1\n"
            return body + "boards:\n" + block(2), written
        # 'boards:' with no value: the items go on the lines after it
        at = text.find("\n", boards.end_mark.index)
        at = len(text) if at < 0 else at + 1
        head = text[:at] if text[:at].endswith("\n") else text[:at] + "\n"
        return head + block(2) + text[at:], written
    if not isinstance(boards, yaml.SequenceNode):
        raise ConfigError("'boards' is not a list", hint="write boards: as a YAML list")
    start, end = boards.start_mark.index, boards.end_mark.index
    if boards.flow_style and not boards.value:  # boards: [] becomes a block list
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        head = text[:start].rstrip(" ") + text[end:line_end] + "\n"
        return head + block(2) + text[line_end + 1:], written
    if boards.flow_style:  # [a, b] gains ", c" before its ']'
        close = text.rindex("]", start, end)
        extra = "".join(", " + _flow(f) for f in written)
        return text[:close] + extra + text[close:], written
    at = _last_content_end(text, start, end)
    head = text[:at] if text[:at].endswith("\n") else text[:at] + "\n"
    return head + block(boards.start_mark.column) + text[at:], written


def append_entries(path: Path, found: Sequence[Found]) -> list[Found]:
    """Add the proposed entries to the rack file at ``path`` (created if absent) in one atomic
    write; returns those written. The file is left untouched, and ConfigError raised, when the
    result would not be a valid rack file or the file changed meanwhile."""
    from hil.fsutil import atomic_write
    from hil.schema import parse_yaml, read_config

    old = read_config(path).decode("utf-8") if path.exists() else ""
    before = parse_rack(parse_yaml(old.encode(), path), path) if old.strip() else None
    try:
        text, written = insert_entries(old, found)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read the rack file's layout: {exc}", path=path) from None
    try:
        after = parse_rack(parse_yaml(text.encode("utf-8"), path), path)
    except ConfigError as exc:
        raise ConfigError(f"adding the new entries would make the rack file invalid "
                          f"({exc.message}); the file is unchanged", path=path,
                          hint="add the printed entries by hand ('hil rack scan' without "
                          "--write prints them)") from None
    ids = {e.id for e in after.entries}
    count = len(before.entries) if before else 0
    if len(after.entries) != count + len(written) or not all(
            f.proposal and f.proposal["id"] in ids for f in written):
        raise ConfigError("the new entries did not land in the rack file's boards: list; the "
                          "file is unchanged", path=path,
                          hint="add the printed entries by hand")
    now = read_config(path).decode("utf-8") if path.exists() else ""
    if now != old:
        raise ConfigError("the rack file changed while it was scanned; the file is unchanged",
                          path=path, hint="run 'hil rack scan --write' again")
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666
    atomic_write(path, text, mode=mode)
    return written
