"""The last test runs for the rack page, read from the audit store, and their transcripts.

A test record names its run's directory (``work_dir``, written by ``hil test``); the page
links to the logs in it. A transcript is served only when the record's directory lies
inside this host's ``<state dir>/runs`` and the file is one ``transcripts`` lists: a
record cannot make the page serve any other file (no ``..``, no symlink out, no absolute
path).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hil.audit.store import Record, default_location, open_store
from hil.errors import HilError
from hil.paths import state_dir

RUNS = 30  # runs on the page
MAX_TRANSCRIPTS = 20  # files listed per run
SUFFIXES = (".log", ".xml", ".jsonl")  # transcripts, pytest and QEMU logs, JUnit, run info
SKIP_DIRS = ("image", "pytest-tmp")  # the image under test, pytest's temporary files

# verdict -> the words on the page; a pass says where it ran (as the run report does)
VERDICTS = {
    "passed-hardware": "passed on hardware",
    "passed-virtual": "passed on a virtual board",
    "passed-qemu": "passed in QEMU only",
    "failed": "failed",
    "infrastructure": "infrastructure error",
    "error": "error",
    "cancelled": "cancelled",
}


def verdict(payload: dict[str, Any]) -> str:
    """A test record's verdict: a key of VERDICTS (records older than ``outcome`` are
    judged by their counts)."""
    outcome = payload.get("outcome")
    if payload.get("cancelled") or outcome == "cancelled":
        return "cancelled"
    if outcome in ("infrastructure", "error", "failed"):
        return str(outcome)
    if outcome is None and (_int(payload.get("failed")) or _int(payload.get("errors"))):
        return "failed"
    if outcome not in (None, "passed", "flaky"):
        return "error"
    if payload.get("executor") == "hardware":
        return "passed-hardware"
    return "passed-virtual" if payload.get("rack_id") else "passed-qemu"


def where(payload: dict[str, Any]) -> str:
    """Where a run ran: ``hardware``, ``virtual`` (a virtual board of the rack) or ``qemu``
    (a plain QEMU machine, no rack board)."""
    if payload.get("executor") == "hardware":
        return "hardware"
    return "virtual" if payload.get("rack_id") else "qemu"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def runs_root() -> Path:
    """Where ``hil test`` keeps its runs on this host."""
    return (state_dir() / "runs").resolve()


def run_dir(payload: dict[str, Any]) -> Path | None:
    """The record's run directory when it exists inside ``runs_root()``, else None."""
    text = payload.get("work_dir")
    if not isinstance(text, str) or not text or "\0" in text:
        return None
    try:
        path = Path(text).resolve()
    except (OSError, RuntimeError):
        return None
    root = runs_root()
    if path == root or not path.is_relative_to(root) or not path.is_dir():
        return None
    return path


def list_transcripts(directory: Path) -> list[str]:
    """The logs of one run (paths relative to its directory, sorted): transcripts, pytest's
    and QEMU's logs, JUnit files. A later attempt's directory (``attempt-N``) is its own
    run; symlinks are not followed."""
    found: list[str] = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("attempt-")
                         and not os.path.islink(os.path.join(top, d)))
        for name in sorted(files):
            path = Path(top, name)
            if name.endswith(SUFFIXES) and not path.is_symlink() and path.is_file():
                found.append(path.relative_to(directory).as_posix())
    found.sort(key=lambda rel: (rel.count("/"), rel))
    return found[:MAX_TRANSCRIPTS]


class Runs:
    """Reads runs from the audit store (``location``; default: HIL_AUDIT_DB or the state
    directory's store). Transcript listings of finished runs are remembered by record."""

    def __init__(self, location: str | None = None) -> None:
        self.location = location or default_location()
        self._listed: OrderedDict[int, list[str]] = OrderedDict()

    def _missing(self) -> bool:
        """A local store that does not exist yet (no run recorded): not created here."""
        if "://" in self.location and not self.location.startswith("sqlite:///"):
            return False
        return not Path(self.location.removeprefix("sqlite://")).exists()

    def _records(self, rack_id: str | None, limit: int) -> list[Record]:
        with open_store(self.location) as store:
            if rack_id is None:
                return store.since(None, ("test",), limit=limit)
            return [r for r in store.for_location(rack_id, limit * 4)
                    if r.kind == "test" and r.payload.get("rack_id") == rack_id][:limit]

    def recent(self, *, rack_id: str | None = None, limit: int = RUNS) -> dict[str, Any]:
        """The newest test runs (of one rack entry), newest first, with ``error`` set when
        the store cannot be read."""
        out: dict[str, Any] = {"store": self.location, "runs": [], "error": None}
        if self._missing():
            return out
        try:
            records = self._records(rack_id, limit)
        except HilError as exc:
            out["error"] = str(exc)
            return out
        out["runs"] = [self.run_json(r) for r in records]
        return out

    def transcripts(self, rec: Record) -> list[str]:
        cached = self._listed.get(rec.seq)
        if cached is not None:
            return cached
        directory = run_dir(rec.payload)
        listed = list_transcripts(directory) if directory is not None else []
        self._listed[rec.seq] = listed
        while len(self._listed) > 4 * RUNS:
            self._listed.popitem(last=False)
        return listed

    def run_json(self, rec: Record) -> dict[str, Any]:
        p = rec.payload
        v = verdict(p)
        return {
            "seq": rec.seq, "time": rec.time, "image_sha256": rec.image_sha256,
            "app": _text(p.get("app")), "board": _text(p.get("board")),
            "rack_id": _text(p.get("rack_id")), "executor": _text(p.get("executor")),
            "where": where(p), "verdict": v, "verdict_text": VERDICTS[v],
            "outcome": _text(p.get("outcome")),
            **{k: _int(p.get(k)) for k in ("passed", "failed", "errors", "skipped")},
            "seconds": _num(p.get("seconds")), "user": _text(p.get("user")),
            "attempt": _int(p.get("attempt")) or None, "retry": _text(p.get("retry")),
            "cancelled": _text(p.get("cancelled")),
            "transcripts": [{"name": rel, "url": f"runs/{rec.seq}/{quote(rel)}"}
                            for rel in self.transcripts(rec)],
        }

    def transcript_file(self, seq: int, rel: str) -> Path | None:
        """The file ``rel`` of run ``seq`` when the page lists it, else None."""
        if self._missing():
            return None
        try:
            with open_store(self.location) as store:
                rec = store.by_seq(seq)
        except HilError:
            return None
        if rec is None or rec.kind != "test" or rel not in self.transcripts(rec):
            return None
        directory = run_dir(rec.payload)
        if directory is None:
            return None
        path = (directory / rel).resolve()
        if not path.is_relative_to(directory) or not path.is_file():
            return None
        return path
