"""The HTML audit report: one self-contained file (inline CSS, no script, no network).

``collect`` reads the store into a JSON-ready dict; ``render`` turns that into HTML;
``write`` does both steps' last part atomically. Tables carry ``id``s (images, toolchains,
boards, verdicts, memory) and cells ``data-*`` attributes so tests and scripts can read them.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hil import __version__
from hil.audit.queries import build_summary, flaky
from hil.audit.store import Store, flash_state, now_iso
from hil.errors import AuditError
from hil.fsutil import atomic_write


def collect(store: Store, *, since: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Images built since ``since`` (newest ``limit``), their toolchains, flashes, verdicts,
    and what every rack position runs now."""
    images: dict[str, dict[str, Any]] = {}
    for rec in store.since(since, kinds=("build",), limit=limit):
        if rec.image_sha256 not in images:
            images[rec.image_sha256] = build_summary(rec)
    verdicts: list[dict[str, Any]] = []
    flashes: dict[str, int] = {}
    for sha, image in images.items():
        passed = failed = 0
        for rec in store.for_image(sha):
            if rec.kind == "flash":
                flashes[sha] = flashes.get(sha, 0) + 1
            elif rec.kind == "test" and (since is None or rec.time >= since):
                p = rec.payload
                verdicts.append({"time": rec.time, "image_sha256": sha, "app": image["app"],
                                 "board": p.get("board"), "rack_id": p.get("rack_id"),
                                 "executor": p.get("executor"), "passed": p.get("passed", 0),
                                 "failed": p.get("failed", 0), "skipped": p.get("skipped", 0),
                                 "junit": p.get("junit")})
                passed += int(p.get("passed") or 0)
                failed += int(p.get("failed") or 0)
        image["flash_count"] = flashes.get(sha, 0)
        image["tests_passed"], image["tests_failed"] = passed, failed
    toolchains: dict[str, dict[str, Any]] = {}
    for image in images.values():
        tc = image["toolchain"]
        entry = toolchains.setdefault(tc["id"] or "", {
            "name": tc["name"], "version": tc["version"], "id": tc["id"],
            "compiler": {r: t.get("sha256") for r, t in tc["compiler"].items()},
            "compiler_version": next((t.get("version") for t in tc["compiler"].values()), None),
            "images": 0})
        entry["images"] += 1
    boards = []
    current = store.current()
    built = store.builds_of(flash.image_sha256 for _, flash in current)
    for location, flash in current:
        state = flash_state(flash.payload)
        build = built.get(flash.image_sha256) if state == "runs" else None
        s = build_summary(build) if build else {}
        boards.append({"location": location, "board": flash.payload.get("board"),
                       "state": state,
                       "image_sha256": flash.image_sha256 if state == "runs" else None,
                       "app": s.get("app"), "since": flash.time,
                       "user": flash.payload.get("user"),
                       "verified": bool(flash.payload.get("verified")) and state == "runs"})
    head_seq, head_hash = store.head()
    verdicts.sort(key=lambda v: v["time"], reverse=True)
    return {"generated": now_iso(), "hil_version": __version__, "store": store.location,
            "since": since, "head_seq": head_seq, "head_hash": head_hash,
            "images": list(images.values()), "toolchains": list(toolchains.values()),
            "boards": boards, "verdicts": verdicts,
            "flaky": flaky(store, since=since)}  # the same query as ``hil audit flaky``


# Nothing may be fetched: a report that loads anything from the network is a bug.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
code{font:12px ui-monospace,monospace}
.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}
.bar{width:240px;height:14px;background:#e6e6e6;border:1px solid #999;position:relative}
.fill{height:100%;background:#3b78c2}.fill.high{background:#d08a00}.fill.full{background:#b00020}
.meta{color:#666}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(sha: str | None) -> str:
    return f'<code title="{_e(sha)}">{_e((sha or "")[:16])}</code>'


def _rows(headers: list[str], rows: list[str], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}">(none)</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(data: dict[str, Any]) -> str:
    """The report as one HTML document."""
    images = [
        f'<tr data-sha256="{_e(i["image_sha256"])}"><td>{_short(i["image_sha256"])}</td>'
        f'<td>{_e(i["board"])}</td><td>{_e(i["app"])}</td><td>{_e(i["app_version"])}</td>'
        f'<td>{_e(i["toolchain"]["name"])} {_e(i["toolchain"]["version"])}</td>'
        f'<td>{_short((i["git"] or {}).get("commit"))}'
        f'{" (dirty)" if (i["git"] or {}).get("dirty") else ""}</td>'
        f'<td>{_e(i["time"])}</td><td>{"yes" if i["reproducible_checked"] else "no"}</td>'
        f'<td>{"yes" if i["signed"] else "no"}</td><td>{i["flash_count"]}</td>'
        f'<td class="{"fail" if i["tests_failed"] else "pass"}">{i["tests_passed"]} passed, '
        f'{i["tests_failed"]} failed</td></tr>'
        for i in data["images"]]
    toolchains = [
        f'<tr data-id="{_e(t["id"])}"><td>{_e(t["name"])}</td><td>{_e(t["version"])}</td>'
        f'<td>{_short(t["id"])}</td><td>{_e(t["compiler_version"])}</td>'
        f'<td>{"<br>".join(f"{_e(r)}: <code>{_e(s)}</code>" for r, s in t["compiler"].items())}'
        f'</td><td>{t["images"]}</td></tr>'
        for t in data["toolchains"]]
    boards = [
        f'<tr data-location="{_e(b["location"])}" data-state="{_e(b.get("state", "runs"))}">'
        f'<td>{_e(b["location"])}</td><td>{_e(b["board"])}</td>'
        + (f'<td>{_short(b["image_sha256"])}</td><td>{_e(b["app"])}</td>'
           if b.get("state", "runs") == "runs" else
           '<td colspan="2" class="fail">unknown, needs re-flash (a flash failed or was '
           'interrupted after writing began)</td>')
        + f'<td>{_e(b["since"])}</td><td>{_e(b["user"])}</td>'
        f'<td>{"yes" if b["verified"] else "no"}</td></tr>'
        for b in data["boards"]]
    verdicts = [
        f'<tr data-sha256="{_e(v["image_sha256"])}"><td>{_e(v["time"])}</td>'
        f'<td>{_short(v["image_sha256"])}</td><td>{_e(v["app"])}</td><td>{_e(v["board"])}</td>'
        f'<td>{_e(v["rack_id"] or "")}</td><td>{_e(v["executor"])}</td>'
        f'<td class="{"fail" if v["failed"] else "pass"}">'
        f'{"FAIL" if v["failed"] else "PASS"}</td><td>{_e(v["passed"])}</td>'
        f'<td>{_e(v["failed"])}</td><td>{_e(v["skipped"])}</td><td>{_e(v["junit"])}</td></tr>'
        for v in data["verdicts"]]
    memory = []
    for i in data["images"]:
        for r in i["regions"]:
            length = int(r.get("length") or 0)
            used = int(r.get("used") or 0)
            pct = 100.0 * used / length if length else 0.0
            level = "full" if pct > 95 else "high" if pct > 80 else ""
            memory.append(
                f'<tr data-sha256="{_e(i["image_sha256"])}" data-region="{_e(r.get("name"))}">'
                f'<td>{_e(i["board"])}/{_e(i["app"])} ({_e(i["toolchain"]["name"])})</td>'
                f'<td>{_short(i["image_sha256"])}</td>'
                f'<td>{_e(r.get("name"))} ({_e(r.get("kind"))})</td>'
                f'<td><div class="bar" title="{pct:.1f}%"><div class="fill {level}" '
                f'style="width:{min(pct, 100.0):.1f}%"></div></div></td>'
                f'<td data-used="{used}" data-length="{length}">{used} / {length} bytes '
                f'({pct:.1f}%)</td></tr>')
    flaky_tests, flaky_boards, flaky_note = _flaky_rows(data.get("flaky") or {})
    since = f" since {_e(data['since'])}" if data.get("since") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<link rel="icon" href="data:,">
<title>hil audit report</title><style>{_CSS}</style></head>
<body>
<h1>hil audit report</h1>
<p class="meta">Generated {_e(data["generated"])} by hil {_e(data["hil_version"])} from
<code>{_e(data["store"])}</code>{since}. Store head: record {_e(data["head_seq"])},
hash <code id="head-hash">{_e(data["head_hash"])}</code>
(run <code>hil audit verify</code> to check the chain).</p>
<h2>Images ({len(data["images"])})</h2>
{_rows(["image (HEX sha256)", "board", "app", "version", "toolchain", "commit", "built",
        "reproducible checked", "signed", "flashes", "tests"], images, "images")}
<h2>Toolchains ({len(data["toolchains"])})</h2>
{_rows(["name", "version", "toolchain id", "compiler version", "compiler sha256", "images"],
       toolchains, "toolchains")}
<h2>Boards: what runs now ({len(data["boards"])})</h2>
{_rows(["rack id", "board", "image", "app", "flashed", "by", "verified"], boards, "boards")}
<h2>Test verdicts ({len(data["verdicts"])})</h2>
{_rows(["time", "image", "app", "board", "rack id", "executor", "verdict", "passed", "failed",
        "skipped", "junit"], verdicts, "verdicts")}
<h2>Flaky tests: per test and board</h2>
<p class="meta">{flaky_note}</p>
{_rows(["app", "test case", "board", "runs", "failures", "flaky", "flake rate", "diagnosis"],
       flaky_tests, "flaky")}
<h2>Flaky runs per board</h2>
{_rows(["board", "test runs", "failures", "flaky", "flake rate"], flaky_boards,
       "flaky-boards")}
<h2>Memory use per region</h2>
{_rows(["image", "sha256", "region", "use", "bytes"], memory, "memory")}
</body></html>
"""


def _rate(flaky_runs: int, runs: int) -> str:
    return f"{100 * flaky_runs / runs:.0f}%" if runs else "-"


def _flaky_rows(d: dict[str, Any]) -> tuple[list[str], list[str], str]:
    """Rows of the flaky tables (the tests that failed at least once, per board; every
    board's runs over all tests) and the sentence above them, from ``queries.flaky``."""
    tests = d.get("tests") or []
    shown = [t for t in tests if t["failures"]]
    rows = []
    for t in shown:
        for n, b in enumerate(t["boards"]):
            first = (f'<td rowspan="{len(t["boards"])}">{_e(t["app"])}</td>'
                     f'<td rowspan="{len(t["boards"])}"><code>{_e(t["case"])}</code></td>'
                     if n == 0 else "")
            last = f'<td rowspan="{len(t["boards"])}">{_e(t["diagnosis"])}</td>' \
                if n == 0 else ""
            rows.append(
                f'<tr data-app="{_e(t["app"])}" data-case="{_e(t["case"])}" '
                f'data-board="{_e(b["board"])}" data-runs="{b["runs"]}" '
                f'data-failures="{b["failures"]}" data-flaky="{b["flaky"]}">{first}'
                f'<td>{_e(b["board"])}</td><td>{b["runs"]}</td><td>{b["failures"]}</td>'
                f'<td class="{"fail" if b["flaky"] else ""}">{b["flaky"]}</td>'
                f'<td>{_rate(b["flaky"], b["runs"])}</td>{last}</tr>')
    per_board: dict[str, list[int]] = {}
    for t in tests:
        for b in t["boards"]:
            counts = per_board.setdefault(b["board"], [0, 0, 0])
            for i, key in enumerate(("runs", "failures", "flaky")):
                counts[i] += int(b[key])
    boards = [f'<tr data-board="{_e(name)}" data-runs="{r}" data-flaky="{f}">'
              f'<td>{_e(name)}</td><td>{r}</td><td>{fail}</td>'
              f'<td class="{"fail" if f else ""}">{f}</td><td>{_rate(f, r)}</td></tr>'
              for name, (r, fail, f) in sorted(per_board.items())]
    note = (f"{len(tests)} test case(s) in {d.get('cell_runs', 0)} cell run(s) of the test "
            f"plan; {sum(1 for t in tests if t['flaky'])} flaky; "
            f"{len(tests) - len(shown)} never failed (not listed). A run is flaky where the "
            "case failed, then passed in a later attempt of the same cell run (hil audit "
            "flaky).")
    if d.get("records_without_cases"):
        note += f" {d['records_without_cases']} older test record(s) without per-case " \
            "outcomes are left out."
    return rows, boards, _e(note)


def write(path: Path, data: dict[str, Any]) -> Path:
    """Render ``data`` to ``path`` (atomically); AuditError if it cannot be written."""
    text = render(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
    except OSError as exc:
        raise AuditError(f"cannot write the report {path}: {exc.strerror}") from exc
    return path
