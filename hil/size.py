"""The footprint guard: per-region use and symbol sizes of images, saved as a baseline and
compared against it.

A footprint is what one image (board, app, toolchain) uses of each memory region (the
``regions`` of its build record) and the size of each function and object in its ELF symbol
table (``st_size`` of FUNC/OBJECT symbols). A baseline file holds the footprints of a set
of images; :func:`compare` says, per region, how much each image grew and which symbols
grew most, and whether the growth passes a :class:`Threshold`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import BuildError, ConfigError

BASELINE_SCHEMA = 1
TOP_SYMBOLS = 5


class FootprintError(BuildError):
    """An image grew past the size threshold against its baseline (exit 5, as a build
    that does not fit)."""


@dataclass(frozen=True)
class Footprint:
    """What one image uses: bytes per region (name -> (used, length)) and per symbol."""

    board: str
    app: str
    toolchain: str
    regions: dict[str, tuple[int, int]]
    symbols: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.board, self.app, self.toolchain)

    def as_dict(self) -> dict[str, object]:
        return {"board": self.board, "app": self.app, "toolchain": self.toolchain,
                "regions": {name: {"used": used, "length": length}
                            for name, (used, length) in self.regions.items()},
                "symbols": dict(sorted(self.symbols.items()))}


def symbol_sizes(elf_path: Path) -> dict[str, int]:
    """Bytes of each defined function and object in the ELF's symbol table (symbols of the
    same name, e.g. two file-local statics, are added up)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    sizes: dict[str, int] = {}
    with open(elf_path, "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        if not isinstance(table, SymbolTableSection):
            return sizes
        for sym in table.iter_symbols():
            if sym["st_info"]["type"] not in ("STT_FUNC", "STT_OBJECT"):
                continue
            if not sym.name or not sym["st_size"] or sym["st_shndx"] == "SHN_UNDEF":
                continue
            sizes[sym.name] = sizes.get(sym.name, 0) + int(sym["st_size"])
    return sizes


def footprint_of(result: object) -> Footprint:
    """The footprint of a :class:`hil.build.BuildResult`."""
    regions = {r.name: (r.used, r.length) for r in result.regions}  # type: ignore[attr-defined]
    return Footprint(result.board.name, result.app.name,  # type: ignore[attr-defined]
                     result.toolchain.name, regions,  # type: ignore[attr-defined]
                     symbol_sizes(result.elf))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- baseline file


def save(path: Path, footprints: Iterable[Footprint]) -> None:
    """Write a baseline file (JSON) with these footprints."""
    from hil.fsutil import atomic_write

    data = {"schema": BASELINE_SCHEMA, "images": [f.as_dict() for f in footprints]}
    atomic_write(path, (json.dumps(data, indent=1) + "\n").encode())


def load(path: Path) -> list[Footprint]:
    """The footprints of a baseline file; ConfigError naming the file and key if malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("no such size baseline", path=path,
                          hint="write one with 'hil size --board B --save FILE'") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not a size baseline: {exc}", path=path,
                          hint="write one with 'hil size --board B --save FILE'") from exc
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise ConfigError(f"expected schema {BASELINE_SCHEMA}", path=path, key="schema",
                          hint="write it again with 'hil size --save'")
    images = data.get("images")
    if not isinstance(images, list):
        raise ConfigError("expected a list of images", path=path, key="images")
    out = []
    for i, image in enumerate(images):
        key = f"images[{i}]"
        try:
            regions = {str(n): (int(r["used"]), int(r["length"]))
                       for n, r in image["regions"].items()}
            symbols = {str(n): int(s) for n, s in image.get("symbols", {}).items()}
            out.append(Footprint(str(image["board"]), str(image["app"]),
                                 str(image["toolchain"]), regions, symbols))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed image entry ({type(exc).__name__}: {exc})",
                              path=path, key=key) from exc
    return out


def from_audit(ref: str, root: Path) -> list[Footprint]:
    """The footprints of the newest clean build of git ``ref`` of each image that the audit
    store holds (regions only: build records carry no symbol sizes)."""
    import subprocess

    from hil import procs
    from hil.audit.store import open_store
    from hil.errors import UsageError

    try:
        out = procs.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                        cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--size-baseline git:{ref}: cannot run git: {exc}") from exc
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        raise UsageError(f"--size-baseline git:{ref}: not a commit of the repository at {root}",
                         hint="name a branch, tag or commit ('git log' lists them)")
    found: dict[tuple[str, str, str], Footprint] = {}
    with open_store() as store:
        for record in store.since(None, kinds=("build",)):  # newest first
            build = record.payload.get("build") or {}
            git = build.get("git") or {}
            if git.get("commit") != commit or git.get("dirty"):
                continue
            try:
                key = (str(build["board"]), str(build["app"]),
                       str(build["toolchain"]["name"]))
                regions = {str(r["name"]): (int(r["used"]), int(r["length"]))
                           for r in build["regions"]}
            except (KeyError, TypeError, ValueError):
                continue  # a record of an older schema: not a baseline
            found.setdefault(key, Footprint(*key, regions))
    if not found:
        raise UsageError(f"--size-baseline git:{ref}: the audit store has no clean build of "
                         f"commit {commit[:12]}",
                         hint=f"build that commit once (git checkout {ref}; hil build "
                         "--board B) so its build records are stored, or pass a baseline "
                         "file from 'hil size --save'")
    return list(found.values())


# --------------------------------------------------------------------------- threshold

_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[kKmM](?:i?B)?|B)?\s*$")


@dataclass(frozen=True)
class Limit:
    """Growth allowed in one region: ``bytes``, or ``percent`` of the baseline use."""

    bytes: int | None = None
    percent: float | None = None

    def allowed(self, baseline_used: int) -> float:
        if self.percent is not None:
            return baseline_used * self.percent / 100.0
        return float(self.bytes or 0)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.bytes} B"


@dataclass(frozen=True)
class Threshold:
    """Growth allowed per region: one default limit and per-region ones."""

    default: Limit | None = None
    regions: dict[str, Limit] = field(default_factory=dict)

    def for_region(self, name: str) -> Limit | None:
        return self.regions.get(name, self.default)


def _limit(text: str) -> Limit:
    m = _AMOUNT.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a size: give bytes (1024, 1K, 2M) or a percent (2%)")
    number, unit = float(m.group(1)), (m.group(2) or "").upper()
    if unit == "%":
        return Limit(percent=number)
    scale = {"K": 1024, "M": 1024 * 1024}.get(unit[:1], 1)
    return Limit(bytes=int(number * scale))


def parse_threshold(text: str) -> Threshold:
    """``1K``, ``1024``, ``2%``, or per region ``flash=1K,ram=2%`` (a bare value is the
    default for the others); ValueError saying what is wrong."""
    default: Limit | None = None
    regions: dict[str, Limit] = {}
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty: give bytes (1024, 1K), a percent (2%) or REGION=SIZE")
    for part in parts:
        if "=" in part:
            name, value = (s.strip() for s in part.split("=", 1))
            if not name:
                raise ValueError(f"'{part}': no region name before '='")
            regions[name] = _limit(value)
        else:
            default = _limit(part)
    return Threshold(default, regions)


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class RegionDelta:
    name: str
    before: int
    after: int
    length: int
    limit: Limit | None

    @property
    def delta(self) -> int:
        return self.after - self.before

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.delta > self.limit.allowed(self.before)


@dataclass(frozen=True)
class ImageDelta:
    """One image against its baseline: region deltas and the symbols that grew most."""

    current: Footprint
    baseline: Footprint | None
    regions: list[RegionDelta]
    grown: list[tuple[str, int, int]]  # (symbol, before, after), most growth first

    @property
    def exceeded(self) -> list[RegionDelta]:
        return [r for r in self.regions if r.exceeded]


def compare(baseline: Iterable[Footprint], current: Iterable[Footprint],
            threshold: Threshold | None = None, top: int = TOP_SYMBOLS) -> list[ImageDelta]:
    """Each current image against the baseline entry of the same board, app and toolchain."""
    base = {f.key: f for f in baseline}
    out = []
    for cur in current:
        old = base.get(cur.key)
        if old is None:
            out.append(ImageDelta(cur, None, [], []))
            continue
        regions = []
        for name, (used, length) in cur.regions.items():
            before = old.regions.get(name, (0, length))[0]
            limit = threshold.for_region(name) if threshold else None
            regions.append(RegionDelta(name, before, used, length, limit))
        grown = [(name, old.symbols.get(name, 0), size) for name, size in cur.symbols.items()
                 if size > old.symbols.get(name, 0)] if old.symbols else []
        grown.sort(key=lambda g: (g[1] - g[2], g[0]))
        out.append(ImageDelta(cur, old, regions, grown[:top]))
    return out


def report_lines(deltas: list[ImageDelta]) -> list[str]:
    """Human-readable lines: per image its region deltas and the symbols that grew."""
    lines = []
    for d in deltas:
        c = d.current
        head = f"{c.app} on {c.board} ({c.toolchain})"
        if d.baseline is None:
            lines.append(f"{head}: not in the size baseline")
            continue
        parts = []
        for r in d.regions:
            mark = f" > {r.limit} allowed" if r.exceeded else ""
            parts.append(f"{r.name} {r.after} B ({r.delta:+d} B){mark}")
        lines.append(f"{head}: " + ", ".join(parts))
        for name, before, after in d.grown:
            lines.append(f"    {name}: {before} -> {after} B ({after - before:+d} B)")
    return lines


def check(deltas: list[ImageDelta], source: str) -> None:
    """Raise FootprintError naming every image and region that grew past its limit."""
    over = [(d, r) for d in deltas for r in d.exceeded]
    if not over:
        return
    what = "; ".join(f"{d.current.app} on {d.current.board}: {r.name} grew {r.delta:+d} B "
                     f"(allowed {r.limit})" for d, r in over)
    raise FootprintError(f"footprint grew past the threshold against {source}: {what}",
                         hint="shrink the image, raise --size-threshold, or save a new "
                         "baseline with 'hil size --save' if the growth is intended")
