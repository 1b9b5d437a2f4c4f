"""Small typed readers for YAML config files, with errors naming file, key and fix.

Board, app and rack files are validated by the same helpers so every config error reads
the same way: ``boards/x.yaml: memory[1].origin: expected an address ... hint: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hil.errors import ConfigError

_SIZE_RE = re.compile(r"^\s*(0x[0-9a-fA-F]+|\d+)\s*([KkMmGg])?(i?B)?\s*$")
_UNITS = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def load_yaml(path: Path) -> Any:
    """Read a YAML file; syntax errors become ConfigError with line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", path=path) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"invalid YAML{where}: {problem}",
            path=path,
            hint="check indentation and quote values that contain ':' or '#'",
        ) from exc


class Reader:
    """Typed access to one mapping of a config file; every error names the file and key."""

    def __init__(self, data: Any, path: Path, key: str = "") -> None:
        self.path = path
        self.key = key
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"expected a mapping, got {_kind(data)}",
                path=path,
                key=key or None,
                hint="write 'key: value' lines here",
            )
        self.data = dict(data)
        self._seen: set[str] = set()

    def _full(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, key=self._full(name), hint=hint)

    def has(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def raw(self, name: str, default: Any = ..., *, required: bool = False) -> Any:
        self._seen.add(name)
        if name not in self.data or self.data[name] is None:
            if required or default is ...:
                raise self.error(name, "is required", hint=f"add '{name}:' to the file")
            return default
        return self.data[name]

    def str(self, name: str, default: Any = ..., *, choices: tuple[str, ...] = ()) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {_kind(value)}",
                             hint="quote the value")
        if choices and value not in choices:
            raise self.error(
                name,
                f"'{value}' is not one of {', '.join(choices)}",
                hint=_did_you_mean(value, choices),
            )
        return value

    def int(self, name: str, default: Any = ..., *, minimum: int | None = None) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        return value

    def address(self, name: str, default: Any = ...) -> Any:
        """An address: an integer (write it as 0x0800_0000 in YAML) in 0..0xFFFFFFFF."""
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        parsed = parse_size(value)
        if parsed is None:
            raise self.error(
                name,
                f"expected an address, got {_kind(value)} {value!r}",
                hint="write a hex number such as 0x08000000",
            )
        if not 0 <= parsed <= 0xFFFFFFFF:
            raise self.error(name, f"address 0x{parsed:X} is outside the 32-bit address space")
        return parsed

    def size(self, name: str, default: Any = ..., *, minimum: int = 0) -> Any:
        """A byte count: an integer or a string such as '512K', '16KiB', '1M'."""
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        parsed = parse_size(value)
        if parsed is None:
            raise self.error(
                name,
                f"expected a size, got {_kind(value)} {value!r}",
                hint="write a number of bytes or a size such as 16K, 512K, 1M",
            )
        if parsed < minimum:
            raise self.error(name, f"must be at least {minimum} bytes, got {parsed}")
        return parsed

    def bool(self, name: str, default: Any = ...) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_kind(value)}")
        return value

    def list(self, name: str, default: Any = ...) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if not isinstance(value, list):
            raise self.error(name, f"expected a list, got {_kind(value)}",
                             hint="write a YAML list: [a, b] or '- a' lines")
        return value

    def str_list(self, name: str, default: Any = ...) -> Any:
        value = self.list(name, default)
        if value is default and default is not ...:
            return value
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{name}[{i}]", f"expected a string, got {_kind(item)}",
                                 hint="quote the value")
        return tuple(value)

    def sub(self, name: str, *, required: bool = True) -> Reader | None:
        value = self.raw(name, None if not required else ...)
        if value is None:
            return None
        return Reader(value, self.path, self._full(name))

    def items(self, name: str, default: Any = ...) -> list[Reader]:
        value = self.list(name, default)
        if value is default and default is not ...:
            return value
        return [Reader(item, self.path, f"{self._full(name)}[{i}]") for i, item in enumerate(value)]

    def done(self) -> None:
        """Reject keys nobody read: a typo must not be silently ignored."""
        unknown = [k for k in self.data if k not in self._seen]
        if unknown:
            name = str(unknown[0])
            raise self.error(
                name,
                "unknown key",
                hint=_did_you_mean(name, tuple(sorted(self._seen)))
                or f"remove it; known keys here: {', '.join(sorted(self._seen))}",
            )


def parse_size(value: Any) -> int | None:
    """Parse 4096, 0x1000, '4K', '4KiB', '0x1000' into an int; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    match = _SIZE_RE.match(value.replace("_", ""))
    if not match:
        return None
    number, unit, _ = match.groups()
    base = int(number, 0)
    return base * _UNITS[unit.lower() if unit else None]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _did_you_mean(value: str, choices: tuple[str, ...]) -> str | None:
    import difflib

    close = difflib.get_close_matches(value, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return None
