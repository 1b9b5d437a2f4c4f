"""An image that is up to date is taken as it is: no staging, conversion or git query again;
any change (a source, a tampered artifact) makes the build finish the image anew."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hil.boards import load_board
from hil.build import build

MAIN = '#include "hil.h"\nint main(void) { hil_puts("%s\\n"); for (;;) { } }\n'


def _app(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.yaml").write_text("name: uptodate\nversion: 1.0.0\n")
    (directory / "main.c").write_text(MAIN % text)
    return directory


def _stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.iterdir())
            if p.name.startswith("firmware.") or p.name in ("build.json", "hil_board.h")}


def test_an_unchanged_app_keeps_its_output_files(tmp_path: Path):
    board = load_board("nucleo-f4")
    app = _app(tmp_path / "app", "first")
    first = build(board, app, out=tmp_path / "out")
    before = _stamps(first.out_dir)
    again = build(board, app, out=tmp_path / "out")
    assert _stamps(again.out_dir) == before  # nothing rewritten
    assert again.hex_sha256 == first.hex_sha256 and again.regions == first.regions
    assert again.from_cache
    assert _build_records(first.hex_sha256) == 1  # the build is recorded once, when made


def _build_records(sha: str) -> int:
    from hil.audit.store import open_store

    with open_store() as store:
        return sum(1 for r in store.since(None, ("build",)) if r.image_sha256 == sha)


def test_an_up_to_date_image_is_recorded_in_a_store_that_lacks_it(tmp_path: Path,
                                                                  monkeypatch):
    board = load_board("nucleo-f4")
    app = _app(tmp_path / "app", "first")
    first = build(board, app, out=tmp_path / "out")
    monkeypatch.setenv("HIL_STATE_DIR", str(tmp_path / "another-state"))
    assert _build_records(first.hex_sha256) == 0
    again = build(board, app, out=tmp_path / "out")
    assert again.reused and _build_records(first.hex_sha256) == 1


def test_an_edited_source_or_a_touched_artifact_is_built_again(tmp_path: Path):
    board = load_board("nucleo-f4")
    app = _app(tmp_path / "app", "first")
    first = build(board, app, out=tmp_path / "out")
    (app / "main.c").write_text(MAIN % "second, longer text")
    edited = build(board, app, out=tmp_path / "out")
    assert edited.hex_sha256 != first.hex_sha256
    assert json.loads((edited.out_dir / "build.json").read_text())["artifacts"]["hex"][
        "sha256"] == edited.hex_sha256
    # someone overwrote the HEX after the build: it is written from the ELF again
    edited.hex.write_text(":00000001FF\n")
    later = edited.hex.stat().st_mtime_ns + 10**9
    os.utime(edited.hex, ns=(later, later))
    again = build(board, app, out=tmp_path / "out")
    assert again.hex.read_text() != ":00000001FF\n"
    assert again.hex_sha256 == edited.hex_sha256
