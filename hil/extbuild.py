"""Run a team's own CMake or Make build (``build: cmake`` / ``build: make`` in app.yaml)
with the toolchain hil resolved, and hand its ELF to the rest of the build pipeline.

The team's build tree lives in ``<out_dir>.work/`` beside the output directory (kept
between builds, so they are incremental): ``hil/`` holds the exported toolchain file, linker
script and hil_board.h, ``build/`` the CMake binary directory or Make's working directory.
The sources recorded for provenance and the SBOM come from ``compile_commands.json``
(CMake) or the compiler's dependency files (``-MD``, Make).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from hil import procs
from hil.cmake_export import Exported, export
from hil.errors import BuildError
from hil.fsutil import sha256_file

if TYPE_CHECKING:
    from hil.app import ExternalBuild
    from hil.build import _Plan

TAIL_LINES = 30
TIMEOUT_S = 1800.0
SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".s", ".S", ".asm"}


def work_dir(out_dir: Path) -> Path:
    """Where the team's build runs for the image in ``out_dir``."""
    return out_dir.parent / f"{out_dir.name}.work"


def run_external(p: _Plan) -> Path:
    """Run the app's own build; returns a directory with firmware.elf and firmware.map and
    fills the plan's sources, flags and record fields for build.json."""
    app, board, tc = p.request.app, p.request.board, p.toolchain
    ext = app.external
    assert ext is not None
    work = work_dir(p.out_dir).resolve()
    tree = work / "build"
    stamp = work / "toolchain.id"
    if tree.exists() and (not stamp.is_file() or stamp.read_text().strip() != tc.id):
        shutil.rmtree(tree)  # another compiler: CMake caches the old one, objects are stale
    tree.mkdir(parents=True, exist_ok=True)
    stamp.write_text(tc.id + "\n")
    source = ext.source.resolve()
    root = p.cwd  # the common root of the app and its sources: its name is kept
    maps = (f"-ffile-prefix-map={root}={root.name}", f"-ffile-prefix-map={work}=build")
    map_file = work / "firmware.map"
    exported = export(board, tc, work / "hil", app=app, extra_cflags=maps,
                      extra_ldflags=(f"-Wl,-Map={map_file}",))
    if ext.system == "cmake":
        commands = _cmake_commands(ext, source, tree, exported)
    else:
        commands = [_make_command(ext, source, tree, exported, p)]
    for args in commands:
        _run(args, tree, f"{ext.system} build of {app.name} for {board.name} ({tc.label})")
    elf = _find_elf(ext, tree)
    linked = work / "linked"
    shutil.rmtree(linked, ignore_errors=True)
    linked.mkdir()
    shutil.copyfile(elf, linked / "firmware.elf")
    if map_file.is_file():
        shutil.copyfile(map_file, linked / "firmware.map")
    else:
        (linked / "firmware.map").write_text("")
    p.linked = True
    p.linker_script = exported.linker_script.read_text(encoding="utf-8") \
        if app.linker_script is None else app.linker_script.read_text(encoding="utf-8")
    found = _cmake_sources(tree) if ext.system == "cmake" else _make_sources(tree)
    p.sources = [_source_record(path, root) for path in found if not path.is_relative_to(work)]
    p.record_extra = {
        "flags": {"cflags": list(exported.cflags), "ldflags": [*exported.ldflags,
                                                              *exported.libs]},
        "external_build": {"system": ext.system, "source": _rel(source),
                           "target": ext.target, "elf": _rel(elf),
                           "commands": [shlex.join(c) for c in commands]},
    }
    return linked


def _cmake_commands(ext: ExternalBuild, source: Path, tree: Path,
                    exported: Exported) -> list[list[str]]:
    cmake = _tool("cmake")
    generator = ["-G", "Ninja"] if shutil.which("ninja") and not (tree / "Makefile").exists() \
        else []
    configure = [cmake, "-S", str(source), "-B", str(tree), *generator,
                 f"-DCMAKE_TOOLCHAIN_FILE={exported.toolchain_file}",
                 "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *ext.options]
    build = [cmake, "--build", str(tree)]
    if ext.target:
        build += ["--target", ext.target]
    return [configure, build]


def _make_command(ext: ExternalBuild, source: Path, tree: Path, exported: Exported,
                  p: _Plan) -> list[str]:
    script = p.request.app.linker_script or exported.linker_script
    cc = p.toolchain.tool("cc").path
    # CMake passes clang's --target itself (CMAKE_C_COMPILER_TARGET); make gets it in CFLAGS
    target = [f for f in p.toolchain.cpu_flags if f.startswith("--target=")]
    cflags = " ".join([*target, *exported.cflags, "-MD"])
    return [
        _tool("make"), "-C", str(tree), "-f", str(source / "Makefile"),
        f"VPATH={source}", f"HIL_SOURCE_DIR={source}", f"CC={cc}", f"AS={cc}",
        f"OBJCOPY={p.toolchain.tool('objcopy').path}",
        f"CFLAGS={cflags}", f"ASFLAGS={cflags}",
        f"LDFLAGS={' '.join([*exported.ldflags, f'-T{script}'])}",
        f"LDLIBS={' '.join(exported.libs)}", f"HIL_LINKER_SCRIPT={script}",
        *ext.options, *([ext.target] if ext.target else []),
    ]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        from hil.errors import ToolchainError

        package = {"cmake": "cmake ninja-build", "make": "make"}[name]
        raise ToolchainError(f"'{name}' was not found on PATH (the app has build: {name})",
                             hint=f"install it with: sudo apt-get install {package} "
                             "('make test' installs it)")
    return path


def _run(args: list[str], cwd: Path, what: str) -> None:
    rerun = f"cd {shlex.quote(str(cwd))} && {shlex.join(args)}"
    try:
        proc = procs.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what}: {args[0]} did not finish in {TIMEOUT_S:.0f} s",
                         hint=f"rerun it with: {rerun}") from exc
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {args[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        tail = "\n".join(lines[-TAIL_LINES:])
        raise BuildError(f"{what} failed (exit {proc.returncode}); last "
                         f"{min(len(lines), TAIL_LINES)} lines of its output:\n{tail}",
                         hint=f"rerun it with: {rerun}")


def _is_elf_executable(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return False
    return head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little") == 2  # ET_EXEC


def _find_elf(ext: ExternalBuild, tree: Path) -> Path:
    if ext.elf:
        path = tree / ext.elf
        if not _is_elf_executable(path):
            raise BuildError(f"the {ext.system} build did not produce the executable ELF "
                             f"'{ext.elf}' (looked for {path})",
                             hint=f"fix '{ext.system}.elf' in app.yaml: a path relative to "
                             f"{tree}")
        return path
    candidates = sorted(
        p for p in tree.rglob("*") if p.is_file() and "CMakeFiles" not in p.parts
        and (ext.target is None or p.name in (ext.target, f"{ext.target}.elf"))
        and _is_elf_executable(p))
    if len(candidates) == 1:
        return candidates[0]
    listed = ", ".join(str(p.relative_to(tree)) for p in candidates) or "none"
    raise BuildError(f"the {ext.system} build of target '{ext.target or 'all'}' left "
                     f"{len(candidates)} executable ELF files in {tree}: {listed}",
                     hint=f"name the image with '{ext.system}.elf' (or 'target') in app.yaml")


def _cmake_sources(tree: Path) -> list[Path]:
    db = tree / "compile_commands.json"
    try:
        entries = json.loads(db.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read {db}: {exc}",
                         hint="the toolchain file sets CMAKE_EXPORT_COMPILE_COMMANDS; the "
                         "generator must support it (Ninja or Makefiles)") from exc
    found = {(Path(e["directory"]) / e["file"]).resolve() for e in entries}
    return sorted(found, key=str)


def _make_sources(tree: Path) -> list[Path]:
    """Every file named in the dependency files the compiler wrote (-MD): sources and the
    headers they included."""
    found: set[Path] = set()
    for dep in tree.rglob("*.d"):
        text = dep.read_text(encoding="utf-8", errors="replace").replace("\\\n", " ")
        for line in text.splitlines():
            _, sep, deps = line.partition(": ")
            if not sep:
                continue
            for name in deps.split():
                path = (tree / name).resolve()
                if path.is_file():
                    found.add(path)
    return sorted(found, key=str)


def _rel(path: Path) -> str:
    from hil.build import _relative

    return _relative(path)


def _source_record(path: Path, source: Path) -> dict[str, str]:
    compiled_as = f"{source.name}/{path.relative_to(source)}" if path.is_relative_to(source) \
        else str(path)
    return {"path": _rel(path), "compiled_as": compiled_as, "sha256": sha256_file(path)}
