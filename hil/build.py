"""Compile and link firmware images, with a content-addressed cache.

An object's cache key is the toolchain fingerprint, the flags, the source bytes, its
path as recorded in the object (after prefix mapping) and the digest of every header it
may include. An image's key is the toolchain, link flags, rendered linker script and the
object keys. Deleting ``build/`` and building again copies images from the cache without
running a compiler; editing one source recompiles that source only.

Outputs are staged next to the output directory and swapped in whole: a failed build
leaves no artifact, old or half-written, that a later flash could mistake for its result.
Temporary files and directories (``*.o.tmp``, ``.link-*``, ``.<out>.partial-*``) carry their
owner (pid@host): a cancelled build removes its own, and the next build sweeps those of a
build that was killed (owner gone, or older than an hour).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from hil import __version__, peripherals, procs
from hil.app import App
from hil.boards import Board
from hil.errors import BuildError, HilError, UsageError
from hil.fsutil import atomic_write, sha256_file
from hil.image import (
    RegionUse,
    check_placement,
    overflow_from_linker,
    region_use,
    write_bin,
    write_hex,
)
from hil.linker import render
from hil.paths import RUNTIME_DIR, build_root, cache_dir, project_root
from hil.toolchain import Toolchain, file_sha256, for_board

BUILD_SCHEMA = 1
ARTIFACTS = ("elf", "hex", "bin", "map")

Progress = Callable[[str], None]


@dataclass
class BuildResult:
    """What one image build produced; paths are in ``out_dir``."""

    board: Board
    app: App
    toolchain: Toolchain
    out_dir: Path
    record: dict
    regions: list[RegionUse]
    compiled: int = 0
    cached: int = 0
    linked: bool = False
    reused: bool = False  # the output directory held this very image already

    @property
    def elf(self) -> Path:
        return self.out_dir / "firmware.elf"

    @property
    def hex(self) -> Path:
        return self.out_dir / "firmware.hex"

    @property
    def bin(self) -> Path:
        return self.out_dir / "firmware.bin"

    @property
    def map(self) -> Path:
        return self.out_dir / "firmware.map"

    @property
    def linker_script(self) -> Path:
        return self.out_dir / "firmware.ld"

    @property
    def hex_sha256(self) -> str:
        return self.record["artifacts"]["hex"]["sha256"]

    @property
    def from_cache(self) -> bool:
        return self.compiled == 0 and not self.linked

    def summary(self) -> dict[str, object]:
        """The one-line JSON object ``hil build --json`` prints."""
        return {
            "board": self.board.name,
            "app": self.app.name,
            "toolchain": self.toolchain.name,
            "toolchain_version": self.toolchain.version,
            "out_dir": str(self.out_dir),
            "elf": str(self.elf),
            "hex": str(self.hex),
            "bin": str(self.bin),
            "hex_sha256": self.hex_sha256,
            "bin_sha256": self.record["artifacts"]["bin"]["sha256"],
            "elf_sha256": self.record["artifacts"]["elf"]["sha256"],
            "regions": [r.as_dict() for r in self.regions],
            "compiled": self.compiled,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class BuildRequest:
    board: Board
    app: App
    toolchain: str = "gcc"
    out_dir: Path | None = None


def default_out_dir(board: Board, app: App, toolchain: str, root: Path | None = None) -> Path:
    """build/<board>/<app>/ for GCC, build/<board>/<app>+clang/ for Clang."""
    name = app.name if toolchain == "gcc" else f"{app.name}+{toolchain}"
    return (root or build_root()) / board.name / name


# --------------------------------------------------------------------------- planning


@dataclass
class _Object:
    source: Path
    mapped: str  # the source path recorded in the object (after prefix mapping)
    key: str
    path: Path  # in the cache


@dataclass
class _Plan:
    request: BuildRequest
    toolchain: Toolchain
    out_dir: Path
    header: str
    header_dir: Path
    linker_script: str
    cflags: list[str]
    ldflags: list[str]
    objects: list[_Object]
    sources: list[dict[str, str]]
    link_key: str = ""
    compiled: int = 0
    linked: bool = False
    prefix_maps: list[str] = field(default_factory=list)
    cwd: Path = field(default_factory=project_root)
    record_extra: dict = field(default_factory=dict)  # external builds: their flags, commands


def board_header(board: Board, app: App | None, toolchain: Toolchain) -> str:
    """The generated ``hil_board.h``: everything the firmware knows about its board (and,
    given an app, its name, version and defines)."""
    cpu = board.cpu.upper().replace("-", "_")
    if board.arch == "riscv":
        cpu = board.march.upper() if board.march else cpu
    lines = [
        "/* Generated by hil from the board file; do not edit. */",
        "#ifndef HIL_BOARD_H",
        "#define HIL_BOARD_H",
        f'#define HIL_BOARD_NAME "{board.name}"',
        *([f'#define HIL_APP_NAME "{app.name}"',
           f'#define HIL_APP_VERSION "{app.version}"'] if app else []),
        f'#define HIL_TOOLCHAIN "{toolchain.label}"',
        f"#define HIL_ARCH_{board.arch.upper()} 1",
        f"#define HIL_CPU_{cpu} 1",
        f"#define HIL_CPU_CLOCK_HZ {board.cpu_clock_hz}u",
    ]
    lines += [f"#define {name} {value}"
              for name, value in peripherals.macros(board.console, board.led, board.timer)]
    ram = board.ram_region
    flash = board.app_region
    lines += [
        f"#define HIL_APP_START 0x{board.app_start:08X}u",
        f"#define HIL_FLASH_ORIGIN 0x{flash.origin:08X}u",
        f"#define HIL_FLASH_LENGTH 0x{flash.length:X}u",
        f"#define HIL_RAM_ORIGIN 0x{ram.origin:08X}u",
        f"#define HIL_RAM_LENGTH 0x{ram.length:X}u",
    ]
    for name, value in app.defines if app else ():
        lines.append(f"#define {name} {value}")
    lines += ["#endif", ""]
    return "\n".join(lines)


def _sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


# Files a C source may #include: all of them are part of every object's key.
INCLUDABLE = {".h", ".hh", ".hpp", ".inc", ".inl", ".def", ".tbl", ".x"}


def _includables(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in INCLUDABLE
                  and p.is_file())


def _headers_digest(directory: Path) -> str:
    """Content digest of every includable file below ``directory`` (read every time: a
    same-size edit within one mtime tick must still change it)."""
    h = hashlib.sha256()
    for path in _includables(directory):
        h.update(str(path.relative_to(directory)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _source_root(app: App) -> Path:
    paths = [str(app.dir), *(str(p.parent) for p in app.sources), *map(str, app.include_dirs)]
    if app.external is not None:
        paths.append(str(app.external.source))
    return Path(os.path.commonpath(paths))


def plan(request: BuildRequest, cache: Path) -> _Plan:
    """Work out every object and the image key without compiling anything."""
    board, app = request.board, request.app
    tc = for_board(board, request.toolchain)
    out_dir = request.out_dir or default_out_dir(board, app, request.toolchain)
    check_out_dir(out_dir, app)
    header = board_header(board, app, tc)
    header_dir = cache / "gen" / _sha(header)[:16]
    if not (header_dir / "hil_board.h").exists():
        header_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(header_dir / "hil_board.h", header.encode())
    script = linker_script_text(board, app)

    root = _source_root(app)
    maps = {
        str(RUNTIME_DIR): "hil/runtime",
        str(root): root.name,
        str(header_dir): "hil-gen",
    }
    prefix_flags = [f"-ffile-prefix-map={old}={new}" for old, new in maps.items()]
    runtime = [RUNTIME_DIR] if app.runtime == "hil" else []
    include_dirs = [*runtime, app.dir, *app.include_dirs, header_dir]
    cflags = [*tc.cflags(), *[f"-I{d}" for d in include_dirs]]
    # headers are found by the include path and next to each source ("..." includes)
    header_dirs = sorted({*include_dirs[:-1], *(src.parent for src in app.sources)})
    digest = _sha(*(_headers_digest(d) for d in header_dirs), header)

    flags_key = " ".join([*tc.cpu_flags, *tc.cflags()])  # include dirs: by content, below
    sources = [p for d in runtime for p in sorted(d.glob("*.c")) + sorted(d.glob("*.S"))]
    sources += app.sources
    objects, records = [], []
    for src in sources:
        mapped = _mapped(src, maps)
        src_hash = sha256_file(src)  # read every time: never a stale memo
        key = _sha(tc.id, flags_key, mapped, src_hash, digest)
        objects.append(_Object(src, mapped, key, cache / "obj" / key[:2] / f"{key}.o"))
        records.append({"path": _relative(src), "compiled_as": mapped, "sha256": src_hash})
    ldflags = [*tc.ldflags()]
    link_key = _sha(tc.id, " ".join(ldflags), script, *(o.key for o in objects),
                    " ".join(tc.link_libs))
    return _Plan(request, tc, out_dir, header, header_dir, script, cflags, ldflags, objects,
                 records, link_key, prefix_maps=prefix_flags, cwd=root)


def linker_script_text(board: Board, app: App) -> str:
    """The app's own linker script (``linker_script:``), else the one rendered for the board."""
    if app.linker_script is None:
        return render(board, stack_size=app.stack_size, heap_size=app.heap_size)
    try:
        return app.linker_script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read the app's linker script {app.linker_script}: {exc}",
                         hint="fix 'linker_script:' in app.yaml") from exc


def _mapped(path: Path, maps: dict[str, str]) -> str:
    for old, new in maps.items():
        if str(path).startswith(old + os.sep):
            return new + str(path)[len(old):]
    return str(path)


# --------------------------------------------------------------------------- running


def _run_tool(args: list[str], cwd: Path, what: str) -> str:
    try:
        # its own process group: a cancel stops the compiler proper (cc1) with its driver
        proc = procs.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                         start_new_session=True)
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {args[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what}: {args[0]} did not finish in 300 s") from exc
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        raise _ToolFailed(what, output, args)
    return proc.stderr


class _ToolFailed(BuildError):
    def __init__(self, what: str, output: str, args: list[str]) -> None:
        lines = output.splitlines()
        shown = "\n".join(lines[:40]) + ("\n..." if len(lines) > 40 else "")
        super().__init__(f"{what} failed:\n{shown}",
                         hint="rerun with -v to see the full command")
        self.output = output
        self.args_ = args


def _compile(p: _Plan, obj: _Object) -> bool:
    """Compile one object into the cache unless it is there; True if it compiled."""
    if obj.path.exists():
        return False
    obj.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=obj.path.parent, prefix=f".{_OWNER}-", suffix=".o.tmp")
    os.close(fd)
    try:
        args = [p.toolchain.cc, *p.cflags, *p.prefix_maps, "-c", str(obj.source), "-o", tmp]
        _run_tool(args, p.cwd, f"compiling {obj.mapped} for {p.request.board.name} "
                  f"({p.toolchain.label})")
        os.replace(tmp, obj.path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _link(p: _Plan, cache: Path) -> Path:
    """Link the image into the cache unless it is there; returns the cache directory."""
    target = cache / "img" / p.link_key[:2] / p.link_key
    if (target / "firmware.elf").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".link-{_OWNER}-"))
    try:
        (tmp / "firmware.ld").write_text(p.linker_script, encoding="utf-8")
        args = [p.toolchain.cc, *p.ldflags, "-T", str(tmp / "firmware.ld"),
                f"-Wl,-Map={tmp / 'firmware.map'}", "-o", str(tmp / "firmware.elf"),
                *(str(o.path) for o in p.objects), *p.toolchain.link_libs]
        try:
            _run_tool(args, p.cwd, f"linking {p.request.app.name} for {p.request.board.name} "
                      f"({p.toolchain.label})")
        except _ToolFailed as exc:
            overflow = overflow_from_linker(exc.output, p.request.board)
            if overflow:
                raise overflow from exc
            raise
        p.linked = True
        try:
            os.rename(tmp, target)
        except OSError:  # another process linked the same image first
            if not (target / "firmware.elf").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


_OWNER = f"{os.getpid()}@{socket.gethostname()}"
STALE_AFTER_S = 3600.0  # a temporary of an unknown or remote owner is stale after this


def _owner_gone(name: str) -> bool:
    """Whether the owner (pid@host) named in a temporary's name is known to be dead."""
    match = re.search(r"(\d+)@(.+)-[a-z0-9_]+(?:\.o\.tmp)?$", name)
    if match is None or match.group(2) != socket.gethostname():
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def sweep_stale(paths: Iterable[Path]) -> int:
    """Remove temporaries left by killed builds: owner dead, or older than STALE_AFTER_S.
    A live build's own temporaries are kept. Returns how many were removed."""
    removed = 0
    now = time.time()
    for path in paths:
        try:
            stale = _owner_gone(path.name) or now - path.lstat().st_mtime > STALE_AFTER_S
            if not stale:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError:  # gone already (another build swept it) or not ours to remove
            continue
    return removed


@lru_cache(maxsize=16)
def _git_state(directory: Path) -> dict[str, object]:
    try:
        commit = procs.run(["git", "rev-parse", "HEAD"], cwd=directory, text=True,
                                capture_output=True, timeout=20)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = procs.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=directory, text=True, capture_output=True, timeout=20)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def _shown(path: Path) -> str:
    """A path as the user can paste it: relative to the current directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def _up_to_date(p: _Plan) -> BuildResult | None:
    """The output directory's image when it is this plan's (same image key, board file,
    sources and hil version, every artifact older than its build.json): then nothing is
    staged, converted or asked of git again. None when anything differs."""
    out = p.out_dir
    try:
        record = json.loads((out / "build.json").read_text(encoding="utf-8"))
        written = (out / "build.json").stat().st_mtime_ns
        stale = any((out / f"firmware.{name}").stat().st_mtime_ns > written
                    for name in (*ARTIFACTS, "ld"))
    except (OSError, ValueError):
        return None
    board = p.request.board
    if stale or not isinstance(record, dict) or record.get("image_key") != p.link_key or \
            record.get("hil_version") != __version__ or \
            record.get("board_sha256") != board.sha256 or record.get("sources") != p.sources:
        return None
    try:
        regions = [RegionUse(**r) for r in record["regions"]]
    except (KeyError, TypeError):
        return None
    return BuildResult(board, p.request.app, p.toolchain, out, record, regions,
                       compiled=p.compiled, cached=len(p.objects) - p.compiled,
                       linked=p.linked, reused=True)


def _finish(p: _Plan, linked_dir: Path) -> BuildResult:
    """Stage the artifacts next to the output directory and swap them in (unless it holds
    this very image already)."""
    board, app, tc = p.request.board, p.request.app, p.toolchain
    out = p.out_dir
    if app.external is None and not p.linked:
        done = _up_to_date(p)
        if done is not None:
            return done
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out.parent.glob(f".{out.name}.partial-*"))
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-{_OWNER}-"))
    os.chmod(stage, 0o755)  # mkdtemp makes it private; the output is an ordinary directory
    try:
        shutil.copyfile(linked_dir / "firmware.elf", stage / "firmware.elf")
        shutil.copyfile(linked_dir / "firmware.map", stage / "firmware.map")
        (stage / "firmware.ld").write_text(p.linker_script, encoding="utf-8")
        (stage / "hil_board.h").write_text(p.header, encoding="utf-8")
        elf = stage / "firmware.elf"
        check_placement(board, elf)
        regions = region_use(board, elf)
        write_hex(elf, stage / "firmware.hex")
        bin_base = write_bin(elf, stage / "firmware.bin")
        record = {
            "schema": BUILD_SCHEMA,
            "hil_version": __version__,
            "board": board.name,
            "board_file": _relative(board.path) if board.path else None,
            "board_sha256": board.sha256,
            "app": app.name,
            "app_dir": _relative(app.dir),
            "app_version": app.version,
            "toolchain": tc.fingerprint(),
            "flags": {"cflags": [*tc.cflags()], "ldflags": [*p.ldflags, *tc.link_libs]},
            "linker_script": {"path": "firmware.ld",
                              "sha256": hashlib.sha256(p.linker_script.encode()).hexdigest()},
            "sources": p.sources,
            "artifacts": {
                name: {"path": f"firmware.{name}",
                       "sha256": file_sha256(stage / f"firmware.{name}")}
                for name in ARTIFACTS
            },
            "bin_base": bin_base,
            "image_key": p.link_key,  # the output is up to date while this key is the same
            "regions": [r.as_dict() for r in regions],
            "git": _git_state(app.dir),
            "host": socket.gethostname(),
            "reproducible_checked": False,
            **p.record_extra,
        }
        (stage / "build.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        with _locked(out.parent / f".{out.name}.lock"):  # two builds of one output dir
            if out.exists():
                shutil.rmtree(out)
            os.rename(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return BuildResult(board, app, tc, out, record, regions,
                       compiled=p.compiled, cached=len(p.objects) - p.compiled,
                       linked=p.linked)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _discard(out_dir: Path) -> None:
    """A failed build leaves no old image (nor its provenance) behind that could be
    mistaken for its result. Only a directory hil made (it has build.json) is removed."""
    if (out_dir / "build.json").is_file():
        shutil.rmtree(out_dir, ignore_errors=True)


def check_out_dir(out: Path, app: App) -> None:
    """An output directory must be new, empty, or an earlier hil output: hil replaces it
    whole, so it must never be a directory holding anything else."""
    out = out.resolve()
    for precious in (app.dir, Path.cwd().resolve(), project_root()):
        if out == precious or precious.is_relative_to(out):
            raise UsageError(f"output directory {out} contains {precious}: hil replaces its "
                             "output directory whole", hint="pick a new or empty directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "build.json").is_file():
        raise UsageError(f"output directory {out} exists and is not a hil output directory",
                         hint="pick a new or empty directory (hil replaces it whole)")


def build_many(requests: Sequence[BuildRequest], *, jobs: int | None = None,
               cache: Path | None = None, progress: Progress | None = None,
               keep_going: bool = False, check_reproducible: bool = False,
               audit: bool = True) -> list[BuildResult]:
    """Build several images, compiling all their sources through one pool of ``jobs``.

    Raises the first HilError unless ``keep_going``; then failures are re-raised at the end
    as one BuildError listing every failed image."""
    cache = cache or cache_dir()
    jobs = jobs or os.cpu_count() or 1
    plans = [plan(r, cache) for r in requests]
    sweep_stale([*cache.glob("obj/*/*.o.tmp"), *cache.glob("img/*/.link-*")])
    results: list[BuildResult] = []
    failures: list[tuple[_Plan, HilError]] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {id(p): [pool.submit(_compile, p, o) for o in p.objects] for p in plans}
        for i, p in enumerate(plans, 1):
            label = (f"{p.request.board.name}/{p.request.app.name} ({p.toolchain.label})")
            try:
                errors = []
                for fut in futures[id(p)]:
                    try:
                        p.compiled += int(fut.result())
                    except HilError as exc:
                        errors.append(exc)
                if errors:
                    raise errors[0]
                if p.request.app.external is not None:
                    from hil.extbuild import run_external

                    linked_dir = run_external(p)
                else:
                    linked_dir = _link(p, cache)
                result = _finish(p, linked_dir)
            except HilError as exc:
                _discard(p.out_dir)
                if progress:
                    progress(f"[{i}/{len(plans)}] {label}: FAILED")
                if not keep_going:
                    for fs in futures.values():
                        for f in fs:
                            f.cancel()
                    raise
                failures.append((p, exc))
                continue
            results.append(result)
            if progress:
                how = ("from cache" if result.from_cache else
                       f"{result.compiled} compiled, {result.cached} cached")
                if p.request.app.external is not None:
                    how = f"built by {p.request.app.external.system}"
                progress(f"[{i}/{len(plans)}] {label}: {how} -> {_shown(result.out_dir)}")
    if failures:
        text = "\n".join(f"- {p.request.board.name}/{p.request.app.name} "
                         f"({p.toolchain.label}): {e.message}" for p, e in failures)
        raise BuildError(f"{len(failures)} of {len(plans)} images failed:\n{text}")
    if check_reproducible:
        from hil.reproducible import check_reproducible as check

        for result in results:
            check(result, progress=progress)
    if audit:
        for result in results:
            _audit_hook(result)
    return results


def _audit_hook(result: BuildResult) -> None:
    """Record the build in the audit trail (provenance, SBOM, store); an image taken up to
    date whose build the store already holds is not recorded again."""
    try:
        from hil import audit
    except ImportError:  # pragma: no cover - audit is part of hil
        return
    hook = getattr(audit, "on_build", None)
    if hook is not None:
        out = result.out_dir
        with _locked(out.parent / f".{out.name}.lock"):  # no other build swaps it meanwhile
            if result.reused and audit.build_recorded(out, result.record):
                return
            hook(out, result.record)


def build(board: Board, app: App | str | Path, *, toolchain: str = "gcc",
          out: Path | None = None, jobs: int | None = None, cache: Path | None = None,
          progress: Progress | None = None) -> BuildResult:
    """Build one image of ``app`` for ``board``; see the module doc for caching."""
    from hil.app import load_app

    app_model = app if isinstance(app, App) else load_app(app)
    return build_many([BuildRequest(board, app_model, toolchain, out)], jobs=jobs, cache=cache,
                      progress=progress)[0]
