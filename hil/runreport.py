"""The HTML run report of ``hil test --report FILE.html``: one self-contained page.

It shows the app x board matrix (each cell's verdict, any board the recovery ladder brought
back during the run, links to its transcripts), the footprint of each image (flash/RAM use
per region, and the delta against a baseline when the caller has one) and a per-board
timeline of the runs. No CDN, no script: inline CSS and SVG,
every value escaped. ``render`` takes plain data (``Cell``), so it is fed from ``hil test``'s
board results (``cells_from_results``) or from any other scheduler that fills cells.
"""

from __future__ import annotations

import html
import json
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hil.fsutil import atomic_write

# verdict -> the words in the matrix (the order is the legend's)
VERDICTS = {
    "passed-hardware": "passed on hardware",
    "passed-virtual": "passed on a virtual board",
    "passed-qemu": "passed in QEMU only",
    "flaky": "flaky",
    "failed": "failed",
    "infrastructure": "infrastructure error",
    "error": "error",
    "cancelled": "cancelled",
    "not-run": "not run",
}


@dataclass
class Region:
    """One memory region's use by an image; ``delta`` in bytes against a baseline."""

    name: str
    kind: str  # "flash" or "ram"
    length: int
    used: int
    delta: int | None = None


@dataclass
class Cell:
    """One app on one board: its verdict and what the report links and draws."""

    app: str
    board: str
    verdict: str  # a key of VERDICTS
    detail: str = ""  # in words: "PASSED in QEMU (netduinoplus2) ...", or why it did not run
    # the recovery ladder brought a board back during the run: "recovered by power-cycle
    # (f4-a)"; shown beside the verdict, so a recovered pass never reads as a clean one
    recovered: str = ""
    executor: str = ""
    rack_id: str | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    start: float | None = None  # seconds since the epoch
    end: float | None = None
    transcripts: list[Path] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)


PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.cell{min-width:11em}
.v{font-weight:600}
.passed-hardware{background:#c8f0c8}.passed-virtual{background:#dff5d8}
.passed-qemu{background:#eef7d0}.flaky{background:#ffe9a8}.failed{background:#f7c1c1}
.infrastructure,.error{background:#f3c9ef}.cancelled{background:#ddd}
.not-run{background:#fafafa;color:#666}
.recovered{font-weight:600;color:#8a4b00}
.bar{display:inline-block;width:10em;height:.8em;background:#eee;border:1px solid #bbb;
vertical-align:middle}
.fill{display:block;height:100%;background:#5b8dd6}
.grew{color:#a00}.shrank{color:#060}
small{color:#555}
</style></head>
<body>
<h1>$title</h1>
<p id="summary">$summary</p>
<h2>Matrix</h2>
<table id="matrix"><thead><tr><th>app</th>$board_heads</tr></thead>
<tbody>
$matrix_rows
</tbody></table>
<p id="legend">$legend</p>
<h2>Footprint</h2>
<table id="footprint"><thead><tr><th>app</th><th>board</th><th>region</th><th>kind</th>
<th>used</th><th>size</th><th>use</th><th>delta</th></tr></thead>
<tbody>
$footprint_rows
</tbody></table>
<h2>Timeline</h2>
$timeline
</body></html>
""")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: Path, base: Path) -> str:
    rel = Path(os.path.relpath(path, base)).as_posix()
    label = "/".join(Path(rel).parts[-3:])
    return f'<a href="{_e(rel)}">{_e(label)}</a>'


def _cell_html(cell: Cell, base: Path) -> str:
    counts = f"{cell.passed} passed, {cell.failed} failed, {cell.errors} errors, " \
        f"{cell.skipped} skipped" + (f", {cell.flaky} flaky" if cell.flaky else "")
    where = " ".join(x for x in (cell.executor, f"[{cell.rack_id}]" if cell.rack_id else "")
                     if x)
    links = "<br>".join(_link(t, base) for t in cell.transcripts)
    parts = [f'<span class="v">{_e(VERDICTS.get(cell.verdict, cell.verdict))}</span>'
             + (f'<span class="recovered">, {_e(cell.recovered)}</span>'
                if cell.recovered else "")]
    if cell.verdict != "not-run":
        parts.append(f"<small>{_e(counts)}</small>")
    if where:
        parts.append(f"<small>{_e(where)}</small>")
    if cell.detail:
        parts.append(f'<small class="detail">{_e(cell.detail)}</small>')
    if links:
        parts.append(f'<span class="transcripts">{links}</span>')
    return (f'<td class="cell {_e(cell.verdict)}" data-app="{_e(cell.app)}" '
            f'data-board="{_e(cell.board)}" data-verdict="{_e(cell.verdict)}"'
            + (f' data-recovered="{_e(cell.recovered)}"' if cell.recovered else "") + ">"
            + "<br>".join(parts) + "</td>")


def _matrix(cells: list[Cell], base: Path) -> tuple[str, str]:
    apps = list(dict.fromkeys(c.app for c in cells))
    boards = list(dict.fromkeys(c.board for c in cells))
    by_key: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        by_key.setdefault((c.app, c.board), []).append(c)
    heads = "".join(f"<th>{_e(b)}</th>" for b in boards)
    rows = []
    for app in apps:
        tds = []
        for board in boards:
            found = by_key.get((app, board))
            if not found:
                tds.append(f'<td class="cell none" data-app="{_e(app)}" '
                           f'data-board="{_e(board)}" data-verdict="">-</td>')
            else:
                tds.extend(_cell_html(c, base) for c in found[-1:])
        rows.append(f'<tr data-app="{_e(app)}"><th>{_e(app)}</th>{"".join(tds)}</tr>')
    return heads, "\n".join(rows)


def _footprint(cells: list[Cell]) -> str:
    rows = []
    for c in cells:
        for r in c.regions:
            pct = 100.0 * r.used / r.length if r.length else 0.0
            if r.delta is None:
                delta = "-"
            else:
                cls = "grew" if r.delta > 0 else "shrank" if r.delta < 0 else ""
                delta = f'<span class="{cls}">{r.delta:+d} B</span>'
            rows.append(
                f'<tr data-app="{_e(c.app)}" data-board="{_e(c.board)}" '
                f'data-region="{_e(r.name)}"><td>{_e(c.app)}</td><td>{_e(c.board)}</td>'
                f"<td>{_e(r.name)}</td><td>{_e(r.kind)}</td>"
                f'<td data-used="{r.used}" data-length="{r.length}">{r.used:,} B</td>'
                f"<td>{r.length:,} B</td>"
                f'<td><span class="bar"><span class="fill" style="width:{min(pct, 100):.2f}%">'
                f"</span></span> {pct:.1f}%</td><td>{delta}</td></tr>")
    return "\n".join(rows) or '<tr><td colspan="8">(no build records)</td></tr>'


def _timeline(cells: list[Cell]) -> str:
    timed = [c for c in cells if c.start is not None and c.end is not None]
    if not timed:
        return '<p id="timeline">(no timed runs)</p>'
    t0 = min(c.start for c in timed)  # type: ignore[type-var]
    span = max(max(c.end for c in timed) - t0, 1e-3)  # type: ignore[type-var,operator]
    lanes = list(dict.fromkeys(c.rack_id or c.board for c in timed))
    label_w, width, lane_h = 160, 800, 26
    height = lane_h * len(lanes) + 24
    out = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 10}"'
           f' height="{height}" role="img" aria-label="runs per board over time">']
    for i, lane in enumerate(lanes):
        y = i * lane_h
        out.append(f'<text x="0" y="{y + 17}" font-size="12">{_e(lane)}</text>')
        for c in timed:
            if (c.rack_id or c.board) != lane:
                continue
            x = label_w + width * (c.start - t0) / span  # type: ignore[operator]
            w = max(width * (c.end - c.start) / span, 2)  # type: ignore[operator]
            color = {"failed": "#d66", "flaky": "#e8b730", "infrastructure": "#c6c",
                     "error": "#c6c", "cancelled": "#999"}.get(c.verdict, "#5a5")
            out.append(f'<rect class="run" data-lane="{_e(lane)}" data-app="{_e(c.app)}" '
                       f'x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{lane_h - 8}" '
                       f'fill="{color}"><title>{_e(c.app)} on {_e(lane)}: '
                       f"{c.end - c.start:.1f} s, {_e(VERDICTS.get(c.verdict, c.verdict))}"  # type: ignore[operator]
                       f"{_e(', ' + c.recovered) if c.recovered else ''}"
                       "</title></rect>")
    out.append(f'<text x="{label_w}" y="{height - 4}" font-size="11">0 s</text>'
               f'<text x="{label_w + width}" y="{height - 4}" font-size="11" '
               f'text-anchor="end">{span:.1f} s</text></svg>')
    return "\n".join(out)


def render(cells: list[Cell], *, base: Path, title: str = "hil test run") -> str:
    """The page; transcript links are relative to ``base`` (the report's directory)."""
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    summary = ", ".join(f"{n} {VERDICTS.get(v, v)}" for v, n in counts.items())
    recovered = sum(1 for c in cells if c.recovered)
    if recovered:
        summary += f" ({recovered} with a board recovered by the recovery ladder)"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    heads, rows = _matrix(cells, base)
    legend = " ".join(f'<span class="{_e(k)}">{_e(v)}</span>' for k, v in VERDICTS.items())
    return PAGE.substitute(title=_e(title), summary=_e(f"{len(cells)} cells: {summary}; "
                                                       f"written {when}"),
                           board_heads=heads, matrix_rows=rows, legend=legend,
                           footprint_rows=_footprint(cells), timeline=_timeline(cells))


def write(path: Path, cells: list[Cell], *, title: str = "hil test run") -> None:
    """Write the report whole or not at all."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, render(cells, base=path.parent, title=title).encode("utf-8"))


def regions_of(build_json: Path) -> list[Region]:
    """The region use recorded in a build's ``build.json`` (none when it is missing)."""
    try:
        record = json.loads(build_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Region(str(r["name"]), str(r.get("kind", "")), int(r["length"]), int(r["used"]))
            for r in record.get("regions", []) if isinstance(r, dict)]


def cells_from_results(results: Iterable) -> list[Cell]:
    """Cells from ``hil test``'s board results (hil.testrun.BoardResult)."""
    from hil.outcome import OutcomeKind
    from hil.testrun import recovery_words

    cells = []
    for r in results:
        kind = r.outcome.kind
        flaky = sum(1 for c in r.suite.cases if c.flaky)
        rack_id = r.extra.get("rack_id")
        if kind == OutcomeKind.PASSED:
            verdict = "flaky" if flaky else "passed-hardware" if r.kind == "hardware" else \
                "passed-virtual" if rack_id else "passed-qemu"
        else:
            verdict = {OutcomeKind.FAILED: "failed", OutcomeKind.INFRASTRUCTURE:
                       "infrastructure", OutcomeKind.CANCELLED: "cancelled"}.get(kind, "error")
        work = r.plan.work_dir
        transcripts = sorted(work.rglob("console.log")) if work.is_dir() else []
        if r.log is not None and r.log.exists():
            transcripts.append(r.log)
        cells.append(Cell(
            app=r.plan.app, board=r.plan.board.name, verdict=verdict,
            detail=r.verdict_text if kind == OutcomeKind.PASSED else
            (r.error or r.verdict_text), recovered=recovery_words(r.recoveries),
            executor=r.executor, rack_id=rack_id, passed=r.count("passed") - flaky,
            failed=r.count("failed"), errors=r.count("error"), skipped=r.count("skipped"),
            flaky=flaky, start=r.started, end=r.started + r.seconds if r.started else None,
            transcripts=transcripts, regions=regions_of(r.plan.image.hex.parent /
                                                        "build.json")))
    return cells
