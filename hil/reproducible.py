"""Check that an image is reproducible: rebuild it elsewhere from scratch and compare."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hil.app import load_app
from hil.build import BuildRequest, BuildResult, Progress, _source_root, build_many
from hil.errors import BuildError
from hil.image import load_chunks, read_image


def _copy_app(result: BuildResult, dest: Path) -> Path:
    """Copy the app's sources, headers and manifest to ``dest``, keeping their layout."""
    app = result.app
    root = _source_root(app)
    if app.external is not None:  # the team's build may read any file of its tree
        shutil.copytree(root, dest / root.name, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "build", "*.work"))
        return dest / root.name / app.dir.relative_to(root)
    files = set(app.sources)
    for d in (app.dir, *app.include_dirs):
        files.update(d.rglob("*.h"))
    manifest = app.dir / "app.yaml"
    if manifest.exists():
        files.add(manifest)
    dest = dest / root.name  # the root's name is recorded in objects (__FILE__, debug info)
    for f in files:
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return dest / app.dir.relative_to(root)


def differences(first: BuildResult, second: BuildResult) -> list[str]:
    """Where two builds' loadable bytes differ, by section and first address."""
    a, b = read_image(first.hex), read_image(second.hex)
    out = []
    sections = load_chunks(first.elf)
    addresses = sorted(set(a.addresses()) | set(b.addresses()))
    diff = [addr for addr in addresses if a[addr] != b[addr] or
            (addr in a.addresses()) != (addr in b.addresses())]
    reported: set[str] = set()
    for addr in diff:
        name = next((c.section for c in sections
                     if c.address <= addr < c.address + len(c.data)), "(outside sections)")
        if name not in reported:
            reported.add(name)
            count = sum(1 for d in diff if any(
                c.section == name and c.address <= d < c.address + len(c.data)
                for c in sections))
            out.append(f"section {name}: first difference at 0x{addr:08X} "
                       f"({count} byte(s) differ)")
    if not out and first.bin.read_bytes() != second.bin.read_bytes():
        out.append("BIN files differ although the HEX contents match")
    return out


def check_reproducible(result: BuildResult, progress: Progress | None = None) -> None:
    """Rebuild ``result`` in a fresh directory with an empty cache; BuildError on a
    difference. On success build.json records ``reproducible_checked: true``."""
    with tempfile.TemporaryDirectory(prefix="hil-repro-") as tmp:
        tmp_path = Path(tmp)
        app_dir = _copy_app(result, tmp_path / "src")
        app = load_app(app_dir)
        if progress:
            progress(f"rebuilding {result.board.name}/{result.app.name} "
                     f"({result.toolchain.label}) in a fresh directory with an empty cache")
        second = build_many(
            [BuildRequest(result.board, app, result.toolchain.name, tmp_path / "out")],
            cache=tmp_path / "cache", audit=False)[0]
        diffs = differences(result, second)
    if diffs:
        raise BuildError(
            f"{result.board.name}/{result.app.name} ({result.toolchain.label}) is not "
            "reproducible:\n" + "\n".join(f"  {d}" for d in diffs),
            hint="look for __DATE__/__TIME__, absolute paths (__FILE__) or unordered inputs "
            "in the sources",
        )
    result.record["reproducible_checked"] = True
    (result.out_dir / "build.json").write_text(json.dumps(result.record, indent=2) + "\n",
                                              encoding="utf-8")
    if progress:
        progress(f"{result.board.name}/{result.app.name} ({result.toolchain.label}): "
                 "reproducible (HEX and BIN identical)")
