"""Small typed readers for YAML config files, with errors naming file, key and fix.

Board, app and rack files are validated by the same helpers so every config error reads
the same way: ``boards/x.yaml: memory[1].origin: expected an address ... hint: ...``.
"""

from __future__ import annotations

import builtins
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hil.errors import ConfigError

_SIZE_RE = re.compile(r"^\s*(0x[0-9a-fA-F]+|\d+)\s*([KkMmGg])?(i?B)?\s*$")
_UNITS = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}
#: Bounds of integers and sizes in config files unless a key gives its own: a 32-bit
#: target has nothing larger, and a bound keeps a typo from costing memory or time.
MAX_INT = 1 << 32
MAX_SIZE = 1 << 32
#: Board names and aliases become directory names (build/<board>/): lowercase, no '/',
#: no leading dot, no '..', so a build can never land outside the build directory.
BOARD_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: App names become directory names too (build/<board>/<app>/); case is the user's.
APP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


#: Largest config file hil reads: board files are a few KiB; anything near this is a mistake
#: (a log, an image, a device) and is refused before it is read.
MAX_CONFIG_BYTES = 1024 * 1024
_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice (YAML would silently keep the last)."""


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The one YAML loader of hil: safe tags only, and a key given twice is an error.

    Built on libyaml's parser when PyYAML has it (10x faster, and it caps nesting depth)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except (yaml.YAMLError, TypeError):
                    continue  # the base class reports an unhashable key
                if key in seen:
                    raise DuplicateKeyError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key '{key}' (first given at line {seen[key].line + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def read_config(path: Path) -> bytes:
    """The bytes of a config file: a regular file of at most MAX_CONFIG_BYTES.

    Opened non-blocking and checked with fstat before reading, so a FIFO, a device (a link
    to /dev/zero) or a directory is refused at once instead of hanging or crashing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", path=path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"is {_file_kind(info.st_mode)}, not a regular file", path=path,
                              hint="config files must be regular files; remove it, rename "
                              "it, or replace it with the real file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"file is {info.st_size} bytes, more than the {MAX_CONFIG_BYTES} bytes a "
                "config file may have", path=path,
                hint="is this the right file? board, rack and app files are a few KiB")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:  # grew while we read it
        raise ConfigError(f"file is more than {MAX_CONFIG_BYTES} bytes", path=path,
                          hint="is this the right file? board, rack and app files are a few "
                          "KiB")
    return data


def parse_yaml(data: bytes, path: Path) -> Any:
    """Parse config bytes as UTF-8 YAML; every problem is a ConfigError naming the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02X} at offset {exc.start} "
            f"(line {line}) cannot be decoded",
            path=path, hint="save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"invalid YAML{where}: {exc.problem}",
            path=path, hint="give each key once; remove or rename one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"invalid YAML{where}: {problem}",
            path=path,
            hint="check indentation and quote values that contain ':' or '#'",
        ) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", path=path,
                          hint="config files nest a few levels; check the brackets") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"invalid YAML: {exc}", path=path,
                          hint="check the numbers in the file") from None


def load_yaml(path: Path) -> Any:
    """Read a YAML config file (see read_config and parse_yaml); raises ConfigError."""
    return parse_yaml(read_config(path), path)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


class Reader:
    """Typed access to one mapping of a config file; every error names the file and key."""

    def __init__(self, data: Any, path: Path, key: builtins.str = "") -> None:
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

    def _full(self, name: builtins.str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: builtins.str, message: builtins.str,
              hint: builtins.str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, key=self._full(name), hint=hint)

    def has(self, name: builtins.str) -> bool:
        return name in self.data and self.data[name] is not None

    def raw(self, name: builtins.str, default: Any = ..., *,
            required: builtins.bool = False) -> Any:
        self._seen.add(name)
        if name not in self.data or self.data[name] is None:
            if required or default is ...:
                raise self.error(name, "is required", hint=f"add '{name}:' to the file")
            return default
        return self.data[name]

    def str(self, name: builtins.str, default: Any = ..., *,
            choices: tuple[builtins.str, ...] = ()) -> Any:
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

    def int(self, name: builtins.str, default: Any = ..., *, minimum: builtins.int | None = None,
            maximum: builtins.int = MAX_INT, hint: builtins.str | None = None) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {_short(value)}", hint=hint)
        if value > maximum:
            raise self.error(name, f"must be at most {maximum}, got {_short(value)}", hint=hint)
        return value

    def address(self, name: builtins.str, default: Any = ...) -> Any:
        """An address: an integer (write it as 0x0800_0000 in YAML) in 0..0xFFFFFFFF."""
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        parsed = parse_size(value)
        if parsed is None:
            raise self.error(
                name,
                f"expected an address, got {_kind(value)}{_show(value)}",
                hint="write a hex number such as 0x08000000",
            )
        if not 0 <= parsed <= 0xFFFFFFFF:
            raise self.error(name, f"address 0x{parsed:X} is outside the 32-bit address space")
        return parsed

    def size(self, name: builtins.str, default: Any = ..., *, minimum: builtins.int = 0,
             maximum: builtins.int = MAX_SIZE) -> Any:
        """A byte count: an integer or a string such as '512K', '16KiB', '1M'."""
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        parsed = parse_size(value)
        if parsed is None:
            raise self.error(
                name,
                f"expected a size, got {_kind(value)}{_show(value)}",
                hint="write a number of bytes or a size such as 16K, 512K, 1M",
            )
        if parsed < minimum:
            raise self.error(name, f"must be at least {minimum} bytes, got {parsed}")
        if parsed > maximum:
            raise self.error(name, f"must be at most {maximum} bytes (0x{maximum:X}), got "
                             f"{_short(parsed)}", hint="sizes on a 32-bit target fit in 4 GiB")
        return parsed

    def bool(self, name: builtins.str, default: Any = ...) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_kind(value)}")
        return value

    def list(self, name: builtins.str, default: Any = ...) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if not isinstance(value, list):
            raise self.error(name, f"expected a list, got {_kind(value)}",
                             hint="write a YAML list: [a, b] or '- a' lines")
        return value

    def str_list(self, name: builtins.str, default: Any = ...) -> Any:
        value = self.list(name, default)
        if value is default and default is not ...:
            return value
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{name}[{i}]", f"expected a string, got {_kind(item)}",
                                 hint="quote the value")
        return tuple(value)

    def sub(self, name: builtins.str, *, required: builtins.bool = True) -> Reader | None:
        value = self.raw(name, None if not required else ...)
        if value is None:
            return None
        return Reader(value, self.path, self._full(name))

    def items(self, name: builtins.str, default: Any = ...) -> builtins.list[Reader]:
        value = self.list(name, default)
        if value is default and default is not ...:
            return value
        return [Reader(item, self.path, f"{self._full(name)}[{i}]") for i, item in enumerate(value)]

    def name(self, name: builtins.str, value: builtins.str, pattern: re.Pattern[builtins.str],
             what: builtins.str) -> builtins.str:
        """Check a name that becomes a path component against ``pattern`` (and no '..')."""
        if not pattern.match(value) or ".." in value:
            case = "lowercase " if pattern is BOARD_NAME_RE else ""
            raise self.error(
                name, f"{value!r} is not a valid {what} name",
                hint=f"use 1 to 64 {case}letters, digits, '-', '_' and '.', starting with a "
                "letter or digit, and no '..'")
        return value

    def done(self, known: tuple[builtins.str, ...] = ()) -> None:
        """Reject keys nobody read: a typo must not be silently ignored. ``known``: keys this
        mapping takes that were not read (optional ones read only when present), for the
        hint."""
        unknown = [k for k in self.data if k not in self._seen]
        if unknown:
            name = str(unknown[0])
            keys = tuple(sorted(self._seen | set(known)))
            raise self.error(
                name,
                "unknown key",
                hint=_did_you_mean(name, keys)
                or f"remove it; known keys here: {', '.join(keys)}",
            )


def parse_size(value: Any) -> int | None:
    """Parse 4096, 0x1000, '4K', '4KiB', '0x1000' into an int; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or len(value) > 40:  # no address or size is that long
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


def _short(value: int) -> str:
    """An integer for a message: huge ones (YAML reads any number of digits) abbreviated."""
    return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit number"


def _show(value: Any) -> str:
    """A short quote of a scalar for a message; nothing for a list or mapping (whose repr can
    be huge: YAML aliases share one object many times over)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "..."
        return " " + (text if len(text) <= 60 else text[:57] + "...")
    return ""


def _did_you_mean(value: str, choices: tuple[str, ...]) -> str | None:
    import difflib

    close = difflib.get_close_matches(value, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return None
