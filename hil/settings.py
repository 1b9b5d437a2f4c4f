"""The project and its settings: one frozen object, read once, with where each value came from.

hil finds its project by walking up from the current directory to the first ``hil.toml``
(or a ``pyproject.toml`` with a ``[tool.hil]`` table). Values come, lowest first, from hil's
defaults, the project file, ``HIL_*`` environment variables and command-line options;
:class:`Settings` records the source of each (``hil config`` prints them).

This module and ``hil.cli`` are the only places that read the process environment. The CLI
loads the settings once and activates them with :func:`use`; library code asks
:func:`current` (outside the CLI, e.g. in the pytest plugin or a test, the settings are
loaded from the environment and the current directory on first use).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hil.errors import ConfigError

PROJECT_FILE = "hil.toml"
PYPROJECT = "pyproject.toml"
ON_CHOICES = ("auto", "hardware", "qemu")
TOOLCHAINS = ("gcc", "clang")

# environment variable -> settings field (README "Environment" lists the same)
ENV_VARS = {
    "HIL_BOARDS_PATH": "board_dirs",
    "HIL_BUILD_DIR": "build_dir",
    "HIL_STATE_DIR": "state_dir",
    "HIL_CACHE_DIR": "cache_dir",
    "HIL_RACK": "rack",
    "HIL_AUDIT_DB": "audit_db",
    "HIL_AUDIT_KEY": "audit_key",
    "HIL_LEASE_DB": "lease_db",
    "HIL_LEASE_WAIT": "lease_wait",
    "HIL_LEASE": "lease_token",
    "HIL_SIM_FAULTS": "sim_faults",
    "HIL_SIM_BOARDS": "sim_boards",
    "HIL_RACK_TOKEN": "rack_token",
}
# CI systems' job identifiers, recorded with every lease (first one set wins)
CI_JOB_VARS = ("HIL_CI_JOB", "CI_JOB_ID", "GITHUB_RUN_ID", "BUILD_TAG", "BUILD_ID")


@dataclass(frozen=True)
class Settings:
    """Everything hil reads from the project file and the environment, typed and resolved.

    Paths are absolute. ``sources`` maps a field name to where its value came from:
    ``default``, the project file's name, ``env HIL_X`` or ``option --x``.
    """

    root: Path
    project_file: Path | None = None
    board_dirs: tuple[Path, ...] = ()  # the project's board directories, searched first
    apps: tuple[str, ...] = ("apps/*",)  # globs of app directories, relative to the root
    rack: Path = Path("rack.yaml")
    build_dir: Path = Path("build")
    state_dir: Path = Path(".hil")
    cache_dir: Path = Path("~/.cache/hil")
    toolchains: tuple[str, ...] = ("gcc",)
    test_harness: str = "pytest"
    test_timeout: float = 10.0
    test_on: str = "auto"
    # [test] pytest_plugins: pytest plugins loaded into hil test's pytest run (installed
    # plugins are not auto-loaded there: each costs start-up time on every run)
    test_pytest_plugins: tuple[str, ...] = ()
    gate_require_hardware: tuple[str, ...] = ()  # [gate] require_hardware: boards
    gate_allow_flaky: bool = True  # [gate] allow_flaky
    audit_db: str | None = None  # None: audit.sqlite in the state directory
    audit_key: str | None = None  # None: the default key if it exists; "": signing off
    lease_db: str | None = None  # None: the rack file's, else leases.sqlite in the state dir
    lease_wait: float | None = 1800.0  # None: wait for ever
    lease_token: str | None = None
    sim_faults: str | None = None
    sim_boards: str | None = None
    ci_job: str | None = None
    size_baseline: str | None = None  # [size] baseline: a baseline file's path, or git:REF
    size_threshold: str | None = None  # [size] threshold: growth allowed per region
    tool_path: str = ""  # where external tools are searched: PATH, then beside python
    # `hil rack serve`: the access token (HIL_RACK_TOKEN) or the file holding it
    # ([rack_serve] token_file); the token itself is never printed
    rack_token: str | None = None
    rack_token_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def explicit(self, name: str) -> bool:
        """The value was set by the project file, the environment or an option."""
        return self.source(name) != "default"

    def override(self, source: str, **values: Any) -> Settings:
        """A copy with ``values`` set (None values are ignored), each marked as ``source``."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        for name in ("rack", "build_dir", "state_dir", "cache_dir"):
            if name in values:
                values[name] = _absolute(Path(values[name]), Path.cwd())
        sources = dict(self.sources)
        sources.update(dict.fromkeys(values, source))
        return replace(self, **values, sources=sources)

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a hil process started by this one (the pytest harness):
        the same project root, and each setting that came from the environment or an
        option as its HIL_* variable (defaults and the project file the child reads itself,
        so they keep their source: a default rack file may be absent, a chosen one not)."""
        env = dict(os.environ if base is None else base)
        for var in [v for v in env if v.startswith("PYTEST_XDIST_")]:
            del env[var]  # hil run from an xdist worker: the child is not that worker
        env["HIL_PROJECT_ROOT"] = str(self.root)
        for var, name in ENV_VARS.items():
            value = getattr(self, name)
            if not self.source(name).startswith(("env ", "option ")):
                env.pop(var, None)
            elif name == "board_dirs":
                env[var] = os.pathsep.join(str(p) for p in value)
            elif value is None:
                env.pop(var, None)
            else:
                env[var] = _format(value)
        return env

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value, source) rows for ``hil config``."""
        rows = [("root", str(self.root), "project file" if self.project_file else
                 "current directory (no project file)"),
                ("project_file", str(self.project_file or "-"), "")]
        for f in fields(self):
            if f.name in ("root", "project_file", "sources", "tool_path"):
                continue
            value = getattr(self, f.name)
            if f.name in SECRETS and value:
                value = "(set, not shown)"
            rows.append((f.name, _format(value), self.source(f.name)))
        return rows


def _format(value: object) -> str:
    if value is None or value == ():
        return "-"
    if isinstance(value, tuple):
        return os.pathsep.join(str(v) for v in value) if value and isinstance(value[0], Path) \
            else ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path)


# --------------------------------------------------------------------------- project file


def find_project(start: Path) -> tuple[Path, Path | None]:
    """(root, project file) of the first ``hil.toml`` or ``pyproject.toml`` with
    ``[tool.hil]`` at or above ``start``; (start, None) when there is none."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return directory, candidate
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and _has_tool_hil(pyproject):
            return directory, pyproject
    return start, None


def _has_tool_hil(path: Path) -> bool:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # not ours to judge: only [tool.hil] makes it a hil project file
    return isinstance(data.get("tool"), dict) and "hil" in data["tool"]


_TOP_KEYS = ("boards", "apps", "rack", "build_dir", "state_dir", "toolchains", "test",
             "gate", "size", "rack_serve")
SECRETS = ("rack_token",)  # settings whose value `hil config` does not print
_TEST_KEYS = ("harness", "timeout", "on", "pytest_plugins")
_GATE_KEYS = ("require_hardware", "allow_flaky")
_SIZE_KEYS = ("baseline", "threshold")


def read_project_file(path: Path, root: Path) -> dict[str, Any]:
    """The project file's values as settings fields; raises ConfigError naming file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=path,
                          hint="save the file as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=path) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from exc
    prefix = ""
    if path.name == PYPROJECT:
        data = data.get("tool", {}).get("hil", {})
        prefix = "tool.hil."
        if not isinstance(data, dict):
            raise ConfigError("expected a table", path=path, key="tool.hil")
    return _parse_table(data, path, root, prefix)


def _unknown(table: dict[str, Any], known: tuple[str, ...], path: Path, prefix: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError("unknown key", path=path, key=prefix + key, hint=hint)


def _parse_table(data: dict[str, Any], path: Path, root: Path, prefix: str) -> dict[str, Any]:
    _unknown(data, _TOP_KEYS, path, prefix)
    out: dict[str, Any] = {}

    def strings(key: str) -> tuple[str, ...]:
        value = data[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError("expected a list of strings", path=path, key=prefix + key,
                              hint=f'e.g. {key} = ["{_EXAMPLES.get(key, "x")}"]')
        return tuple(value)

    def one_path(key: str) -> Path:
        value = data[key]
        if not isinstance(value, str) or not value:
            raise ConfigError("expected a path (a non-empty string)", path=path,
                              key=prefix + key,
                              hint=f'e.g. {key} = "{_EXAMPLES.get(key, "x")}"')
        return _absolute(Path(value), root)

    if "boards" in data:
        dirs = []
        for i, entry in enumerate(strings("boards")):
            directory = _absolute(Path(entry), root)
            if not directory.is_dir():
                raise ConfigError(f"board directory {directory} does not exist", path=path,
                                  key=f"{prefix}boards[{i}]",
                                  hint="create it, or remove it from the list")
            dirs.append(directory)
        out["board_dirs"] = tuple(dirs)
    if "apps" in data:
        out["apps"] = strings("apps")
    for key in ("rack", "build_dir", "state_dir"):
        if key in data:
            out[key] = one_path(key)
    if "toolchains" in data:
        names = strings("toolchains")
        for i, name in enumerate(names):
            if name not in TOOLCHAINS:
                raise ConfigError(f"unknown toolchain '{name}'", path=path,
                                  key=f"{prefix}toolchains[{i}]",
                                  hint=f"one of: {', '.join(TOOLCHAINS)}")
        out["toolchains"] = names
    if "test" in data:
        test = data["test"]
        if not isinstance(test, dict):
            raise ConfigError("expected a table", path=path, key=prefix + "test",
                              hint='e.g. [test] with harness = "pytest", timeout = 10')
        _unknown(test, _TEST_KEYS, path, prefix + "test.")
        if "harness" in test:
            from hil import harnesses  # entry points: a team's harness may be the default

            value = test["harness"]  # a built-in one is known without the entry points
            out["test_harness"] = value if isinstance(value, str) and \
                harnesses.known(value) else _choice(value, harnesses.names(), path,
                                                    prefix + "test.harness")
        if "on" in test:
            out["test_on"] = _choice(test["on"], ON_CHOICES, path, prefix + "test.on")
        if "timeout" in test:
            out["test_timeout"] = _seconds(test["timeout"], f"{path}: {prefix}test.timeout")
        if "pytest_plugins" in test:
            out["test_pytest_plugins"] = _names(
                test["pytest_plugins"], "pytest plugin module names", path,
                prefix + "test.pytest_plugins", 'e.g. pytest_plugins = ["pytest_timeout"]')
    if "gate" in data:
        out.update(_gate_table(data["gate"], path, prefix))
    if "size" in data:
        out.update(_size_table(data["size"], path, root, prefix + "size"))
    if "rack_serve" in data:
        out.update(_rack_serve_table(data["rack_serve"], path, root, prefix + "rack_serve"))
    return out


def _names(value: object, what: str, path: Path, key: str, hint: str) -> tuple[str, ...]:
    """A list of non-empty strings from the project file, or a ConfigError naming the key."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"expected a list of {what}", path=path, key=key, hint=hint)
    return tuple(value)


def _gate_table(gate: object, path: Path, prefix: str) -> dict[str, Any]:
    """The ``[gate]`` policy of ``hil test`` (board names are checked when the plan is made:
    the project's board directories may not be known yet)."""
    if not isinstance(gate, dict):
        raise ConfigError("expected a table", path=path, key=prefix + "gate",
                          hint='e.g. [gate] with require_hardware = ["nucleo-f4"]')
    _unknown(gate, _GATE_KEYS, path, prefix + "gate.")
    out: dict[str, Any] = {}
    if "require_hardware" in gate:
        out["gate_require_hardware"] = _names(
            gate["require_hardware"], "board names", path, prefix + "gate.require_hardware",
            'e.g. require_hardware = ["nucleo-f4"]')
    if "allow_flaky" in gate:
        if not isinstance(gate["allow_flaky"], bool):
            raise ConfigError("expected true or false", path=path,
                              key=prefix + "gate.allow_flaky")
        out["gate_allow_flaky"] = gate["allow_flaky"]
    return out


def _rack_serve_table(table: object, path: Path, root: Path, key: str) -> dict[str, Any]:
    """``[rack_serve]``: ``token_file``, the file holding `hil rack serve`'s access token."""
    if not isinstance(table, dict):
        raise ConfigError("expected a table", path=path, key=key,
                          hint='e.g. [rack_serve] with token_file = "/etc/hil/rack-token"')
    _unknown(table, ("token_file",), path, key + ".")
    out: dict[str, Any] = {}
    if "token_file" in table:
        value = table["token_file"]
        if not isinstance(value, str) or not value:
            raise ConfigError("expected a path (a non-empty string)", path=path,
                              key=key + ".token_file",
                              hint='e.g. token_file = "/etc/hil/rack-token"')
        out["rack_token_file"] = _absolute(Path(value), root)
    return out


def _size_table(size: object, path: Path, root: Path, key: str) -> dict[str, Any]:
    """[size] baseline (a path, or git:REF) and threshold (bytes, K, %, or REGION=SIZE,...)."""
    if not isinstance(size, dict):
        raise ConfigError("expected a table", path=path, key=key,
                          hint='e.g. [size] with baseline = "sizes.json", threshold = "1K"')
    _unknown(size, _SIZE_KEYS, path, key + ".")
    out: dict[str, Any] = {}
    if "baseline" in size:
        value = size["baseline"]
        if not isinstance(value, str) or not value:
            raise ConfigError("expected a path (a non-empty string)", path=path,
                              key=key + ".baseline", hint='e.g. baseline = "sizes.json"')
        out["size_baseline"] = value if value.startswith("git:") else \
            str(_absolute(Path(value), root))
    if "threshold" in size:
        from hil.size import parse_threshold

        value = size["threshold"]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError("expected bytes or a percent as a string", path=path,
                              key=key + ".threshold", hint='e.g. threshold = "1K" or "2%"')
        try:
            parse_threshold(value)
        except ValueError as exc:
            raise ConfigError(str(exc), path=path, key=key + ".threshold") from None
        out["size_threshold"] = value
    return out


_EXAMPLES = {"boards": "boards", "apps": "apps/*", "rack": "rack.yaml", "build_dir": "build",
             "state_dir": ".hil", "toolchains": "gcc"}


def _choice(value: object, choices: tuple[str, ...], path: Path, key: str) -> str:
    if value not in choices:
        raise ConfigError(f"{value!r} is not one of {', '.join(choices)}", path=path, key=key)
    return str(value)


def _seconds(value: object, where: str) -> float:
    """A timeout from the project file, in the range every timeout option has."""
    from hil.limits import TIMEOUT

    why = TIMEOUT.problem(value)  # type: ignore[arg-type]
    if why:
        raise ConfigError(f"{where}: {why}: {TIMEOUT.what} must be {TIMEOUT.describe()}")
    return float(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- loading


def load(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings for a hil run in ``cwd``: defaults < project file < environment."""
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    if env.get("HIL_PROJECT_ROOT"):  # a hil process started by another (the pytest harness)
        root = Path(env["HIL_PROJECT_ROOT"])
        project = next((p for p in (root / PROJECT_FILE, root / PYPROJECT)
                        if p.is_file() and (p.name == PROJECT_FILE or _has_tool_hil(p))), None)
    else:
        root, project = find_project(cwd)
    values: dict[str, Any] = {
        "root": root,
        "rack": root / "rack.yaml",
        "build_dir": root / "build",
        "state_dir": root / ".hil",
        "cache_dir": _default_cache(env),
        "tool_path": os.pathsep.join([env.get("PATH", ""), os.path.dirname(sys.executable)]),
        "ci_job": next((env[v] for v in CI_JOB_VARS if env.get(v)), None),
    }
    default_boards = root / "boards"
    if default_boards.is_dir():
        values["board_dirs"] = (default_boards,)
    sources: dict[str, str] = {}
    if project is not None:
        values["project_file"] = project
        from_file = read_project_file(project, root)
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, project.name))
    for var, name in ENV_VARS.items():
        if var not in env:
            continue
        raw = env[var]
        if name == "board_dirs":
            extra = tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())
            if not extra:
                continue
            have = tuple(values.get(name, ()))
            values[name] = have + tuple(p for p in extra if p not in have)
        elif name in ("build_dir", "state_dir", "cache_dir", "rack"):
            if not raw:
                continue
            values[name] = _absolute(Path(raw), cwd)
        elif name == "lease_wait":
            values[name] = _lease_wait(raw)
        elif name == "audit_key":
            values[name] = raw  # "" turns signing off
        else:
            if not raw:
                continue
            values[name] = raw
        sources[name] = f"env {var}"
    return Settings(**values, sources=sources)


def _default_cache(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hil"


def _lease_wait(text: str) -> float | None:
    """HIL_LEASE_WAIT: seconds, or 'forever'/'inf'/'' (no end); ConfigError naming it."""
    from hil.limits import LEASE_WAIT

    if not text.strip():
        return None
    return LEASE_WAIT.from_env("HIL_LEASE_WAIT", text)


# --------------------------------------------------------------------------- the active settings

_active: Settings | None = None
_loaded: dict[tuple[Path, tuple[tuple[str, str], ...]], Settings] = {}


def current() -> Settings:
    """The settings of this run: those the CLI activated with :func:`use`, else loaded
    from the environment and the current directory (memoised per directory and
    environment, so a test that changes either gets fresh settings)."""
    if _active is not None:
        return _active
    key = (Path.cwd(), tuple(sorted((k, v) for k, v in os.environ.items()
                                    if k.startswith("HIL_") or k in CI_JOB_VARS
                                    or k in ("PATH", "XDG_CACHE_HOME"))))
    settings = _loaded.get(key)
    if settings is None:
        settings = _loaded[key] = load()
    return settings


@contextlib.contextmanager
def use(settings: Settings) -> Iterator[Settings]:
    """Make ``settings`` the settings of the process (every thread) inside the block."""
    global _active  # noqa: PLW0603 - the settings of this process
    previous, _active = _active, settings
    try:
        yield settings
    finally:
        _active = previous


def xdist_worker() -> str:
    """The pytest-xdist worker id of this process ("main" outside xdist)."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
