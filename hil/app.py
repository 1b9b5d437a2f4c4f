"""Firmware apps: a directory of C sources with an optional ``app.yaml`` manifest."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from hil.catalog import EXAMPLES_DIR
from hil.errors import ConfigError
from hil.schema import APP_NAME_RE, Reader, load_yaml

MANIFEST = "app.yaml"
DEFAULT_SOURCES = ("*.c", "*.S")
RUNTIMES = ("hil", "none")
BUILDS = ("hil", "cmake", "make")


@dataclass(frozen=True)
class ExternalBuild:
    """The team's own CMake or Make build of an app (``build: cmake`` / ``build: make``)."""

    system: str  # "cmake" | "make"
    source: Path  # the CMake source directory or the directory holding the Makefile
    target: str | None  # CMake target / make goal; None: the default
    elf: str | None  # the ELF, relative to the build directory; None: found (CMake only)
    options: tuple[str, ...] = ()  # extra cmake -D... options or make VAR=value arguments


@dataclass(frozen=True)
class TestNeeds:
    """What an app's test needs (app.yaml keys read by the test plan, hil.gate.plan)."""

    exclude_boards: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    timeout: float | None = None  # None: --timeout, else the project's test.timeout
    requires: tuple[str, ...] = ()  # fixtures wired to the board: gpio-loopback, can, ...
    hardware_only: bool = False  # never run in QEMU (a virtual board is QEMU too)


@dataclass(frozen=True)
class App:
    """One firmware application: what to compile and with which stack and heap."""

    name: str
    version: str
    dir: Path
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    stack_size: int | None
    heap_size: int | None
    defines: tuple[tuple[str, str], ...] = ()
    boards: tuple[str, ...] = ()  # empty: every board
    runtime: str = "hil"  # "hil": link hil's startup and drivers; "none": the app brings its own
    linker_script: Path | None = None  # the app's own script instead of the generated one
    external: ExternalBuild | None = None  # built by the team's CMake or Make build
    harness: str | None = None  # app.yaml harness (None: --harness, else the project's)
    expect: tuple[str, ...] = ()  # console harness patterns
    ordered: bool = False  # the patterns must appear in order
    needs: TestNeeds = field(default_factory=TestNeeds)  # the test plan's keys


def project_apps_dirs() -> list[Path]:
    """The project's app directories: every directory matching the project's ``apps``
    globs that holds an ``app.yaml``, in name order."""
    from hil.settings import current

    settings = current()
    found: dict[Path, None] = {}
    for pattern in settings.apps:
        for match in sorted(glob.glob(str(settings.root / pattern))):
            path = Path(match)
            if path.is_dir() and (path / MANIFEST).is_file():
                found[path.resolve()] = None
    return sorted(found, key=lambda p: p.name)


def example_dirs() -> list[Path]:
    """The examples shipped with hil (blinky, shell, selftest)."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return [p for p in sorted(EXAMPLES_DIR.iterdir()) if (p / MANIFEST).is_file()]


def resolve_app_dir(app: str | Path) -> Path:
    """An app argument: a directory path, else the name of one of the project's apps,
    else the name of an example shipped with hil."""
    path = Path(app)
    if path.is_dir():
        return path.resolve()
    name = str(app)
    if "/" not in name and name not in ("", ".", ".."):
        for candidate in project_apps_dirs():
            if candidate.name == name:
                return candidate
        example = EXAMPLES_DIR / name
        if (example / MANIFEST).is_file():
            return example.resolve()
    project = [p.name for p in project_apps_dirs()]
    examples = [p.name for p in example_dirs()]
    raise ConfigError(
        f"app '{app}' is neither a directory, an app of the project, nor an example of hil",
        hint=f"project apps: {', '.join(project) or 'none'}; examples: "
        f"{', '.join(examples) or 'none'}; or pass the path of a directory with C sources",
    )


def load_app(app: str | Path) -> App:
    """Read an app directory and its manifest; every source glob must match something."""
    directory = resolve_app_dir(app)
    manifest = directory / MANIFEST
    data: object = {}
    if manifest.is_file():
        data = load_yaml(manifest) or {}
    r = Reader(data, manifest)
    name = r.name("name", r.str("name", directory.name), APP_NAME_RE, "app")
    version = r.str("version", "0.0.0")
    patterns = r.str_list("sources", DEFAULT_SOURCES)
    includes = r.str_list("include", ())
    stack = r.size("stack", None, minimum=256)
    heap = r.size("heap", None)
    defines_raw = r.raw("defines", {})
    if not isinstance(defines_raw, dict):
        raise r.error("defines", "expected a mapping of NAME: value")
    for key, value in defines_raw.items():
        if isinstance(value, (list, dict)):
            raise r.error(f"defines.{key}", f"expected a number or a string, got "
                          f"{'a list' if isinstance(value, list) else 'a mapping'}",
                          hint="a define's value is one C token or expression, e.g. 128")
    defines = tuple(sorted((str(k), str(v)) for k, v in defines_raw.items()))
    boards = r.str_list("boards", ())
    build = r.str("build", "hil", choices=BUILDS)
    runtime = r.str("runtime", "hil" if build == "hil" else "none", choices=RUNTIMES)
    if build != "hil" and runtime != "none":
        raise r.error("runtime", f"'build: {build}' links what the team's build links; hil's "
                      "runtime is not part of it", hint="remove 'runtime:' or set runtime: none")
    linker_script = None
    if r.has("linker_script"):
        linker_script = (directory / r.str("linker_script")).resolve()
        if not linker_script.is_file():
            raise r.error("linker_script", f"'{r.data['linker_script']}' is not a file in "
                          f"{directory}", hint="name the app's .ld file, relative to app.yaml")
    else:
        r.raw("linker_script", None)
    external = _external(r, build, directory)
    harness, expect, ordered = _harness_keys(r)
    needs = _needs(r, boards)
    r.done()
    if external is not None:
        return App(name, version, directory, (), (), stack, heap, defines, boards, runtime,
                   linker_script, external, harness, expect, ordered, needs)

    sources: list[Path] = []
    for i, pattern in enumerate(patterns):
        matched = sorted(glob.glob(str(directory / pattern)))
        if not matched and "sources" in r.data:
            raise r.error(f"sources[{i}]", f"'{pattern}' matches no file in {directory}",
                          hint="fix the glob or remove it")
        sources += [Path(m).resolve() for m in matched]
    sources = sorted(set(sources), key=str)
    if not sources:
        raise ConfigError(f"no C or assembly sources (*.c, *.S) in {directory}",
                          hint="add sources, or list them under 'sources:' in app.yaml")
    include_dirs = []
    for i, inc in enumerate(includes):
        path = (directory / inc).resolve()
        if not path.is_dir():
            raise r.error(f"include[{i}]", f"'{inc}' is not a directory")
        include_dirs.append(path)
    return App(name, version, directory, tuple(sources), tuple(include_dirs), stack, heap,
               defines, boards, runtime, linker_script, None, harness, expect,
               ordered, needs)


def _external(r: Reader, build: str, directory: Path) -> ExternalBuild | None:
    """The ``cmake:`` or ``make:`` block of an app built by the team's own build."""
    for other in ("cmake", "make"):
        if other != build and r.has(other):
            raise r.error(other, f"'{other}:' is only read with 'build: {other}' "
                          f"(this app has build: {build})")
        if other != build:
            r.raw(other, None)
    if build == "hil":
        return None
    if any(r.has(k) for k in ("sources", "include")):
        key = "sources" if r.has("sources") else "include"
        raise r.error(key, f"'build: {build}' compiles what the team's build lists",
                      hint=f"remove '{key}:' (list sources in the {build} project)")
    sub = r.sub(build, required=build == "make") or Reader({}, r.path, build)
    source = (directory / sub.str("source", ".")).resolve()
    if not source.is_dir():
        raise sub.error("source", f"'{sub.data['source']}' is not a directory in {directory}")
    marker = "CMakeLists.txt" if build == "cmake" else "Makefile"
    if not (source / marker).is_file():
        raise sub.error("source", f"no {marker} in {source}",
                        hint=f"point '{build}.source' at the directory with the {marker}")
    target = sub.str("target", None)
    elf = sub.str("elf", None)
    if build == "make" and elf is None:
        raise sub.error("elf", "is required: the path of the ELF the Makefile links, "
                        "relative to the build directory", hint="e.g. elf: fw.elf")
    if elf is not None and (Path(elf).is_absolute() or ".." in Path(elf).parts):
        raise sub.error("elf", f"'{elf}' must be a path inside the build directory")
    options = sub.str_list("options", ())
    sub.done()
    return ExternalBuild(build, source, target, elf, options)


FIXTURE_RE = r"[a-z0-9][a-z0-9_.-]*"


def _needs(r: Reader, boards: tuple[str, ...]) -> TestNeeds:
    """app.yaml ``exclude_boards``, ``tags``, ``timeout``, ``requires``, ``hardware_only``."""
    import re

    from hil.limits import TIMEOUT

    exclude = r.str_list("exclude_boards", ())
    for i, name in enumerate(exclude):
        if name in boards:
            raise r.error(f"exclude_boards[{i}]", f"'{name}' is also in 'boards'",
                          hint="list a board in one of them")
    tags = r.str_list("tags", ())
    requires = r.str_list("requires", ())
    for key, values in (("tags", tags), ("requires", requires)):
        for i, value in enumerate(values):
            if not re.fullmatch(FIXTURE_RE, value):
                raise r.error(f"{key}[{i}]", f"'{value}' is not a valid name",
                              hint="lower-case letters, digits, '-', '_' and '.', e.g. "
                              "gpio-loopback")
    timeout = r.raw("timeout", None)
    if timeout is not None:
        why = TIMEOUT.problem(timeout) if isinstance(timeout, (int, float)) and \
            not isinstance(timeout, bool) else "expected a number of seconds"
        if why:
            raise r.error("timeout", f"{why}: {TIMEOUT.what} must be {TIMEOUT.describe()}")
        timeout = float(timeout)
    hardware_only = r.bool("hardware_only", False)
    return TestNeeds(exclude, tags, timeout, requires, hardware_only)


def _harness_keys(r: Reader) -> tuple[str | None, tuple[str, ...], bool]:
    """app.yaml ``harness``, ``expect`` and ``ordered``, checked (errors name file and key)."""
    import re

    from hil import harnesses

    harness = r.str("harness", None)
    if harness is not None and not harnesses.known(harness):  # the error names them all
        r.str("harness", None, choices=harnesses.names())
    expect = r.str_list("expect", ())
    ordered = r.bool("ordered", False)
    if (expect or r.has("ordered")) and harness != "console":
        key = "expect" if expect else "ordered"
        raise r.error(key, "goes with 'harness: console'",
                      hint="add 'harness: console', or remove it")
    for i, pattern in enumerate(expect):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise r.error(f"expect[{i}]", f"{pattern!r} is not a regular expression: {exc}",
                          hint="patterns are Python regular expressions, matched against "
                          "each console line; quote them in YAML") from exc
    return harness, expect, ordered


def example_apps() -> list[App]:
    """Every example shipped with hil."""
    return [load_app(p) for p in example_dirs()]


def project_apps() -> list[App]:
    """Every app of the project (``apps`` in the project file; default ``apps/*``)."""
    return [load_app(p) for p in project_apps_dirs()]
