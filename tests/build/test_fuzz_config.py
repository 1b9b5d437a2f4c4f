"""Fuzzing board and rack files: random mutations of the shipped files (keys deleted or
given random values, random and non-UTF-8 bytes, duplicated lines, deep nesting, truncation)
read through the CLI in-process must end in an exit code and a message, never a traceback,
and never hang. Deterministic (derandomize) and bounded (max_examples) so it runs in
``make test``."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.cli import main
from hil.errors import ExitCode

ROOT = Path(__file__).parents[2]
BOARD_FILES = sorted((ROOT / "boards").glob("*.yaml"))
RACK_TEXT = (ROOT / "rack.yaml").read_text()
CALL_LIMIT = 60.0  # seconds: far above any honest answer; a hang fails the test
EXIT_CODES = {int(code) for code in ExitCode}

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 16, 274877906944, 30000000, 2**32, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.sampled_from(["..", "../x", "0x08000000", "512K", "4096G", "1e300", ".nan", "-.inf",
                     "hilsim:../x", "slow=nan", "disconnect_after=-1", "0x", "K", "16KiB"]),
    st.lists(st.integers(min_value=0, max_value=300), max_size=3),
    st.dictionaries(st.sampled_from(["size", "count", "name", "x"]),
                    st.integers(min_value=-5, max_value=2**40), max_size=3),
)

STRUCTURED = st.one_of(
    st.tuples(st.just("delete"), st.integers(min_value=0)),
    st.tuples(st.just("replace"), st.integers(min_value=0), SCALARS),
)
TEXTUAL = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("duplicate_line"), st.integers(min_value=0)),
    st.tuples(st.just("nest"), st.integers(min_value=0), st.integers(1, 5000)),
    st.tuples(st.just("digits"), st.integers(min_value=0), st.integers(1, 6000)),
    st.tuples(st.just("truncate"), st.integers(min_value=0)),
)


def _paths(node, prefix=()):
    """Every key path of a parsed YAML tree (mapping keys and list indexes)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _apply_structured(data, mutation) -> None:
    paths = list(_paths(data))
    if not paths:
        return
    *parent_keys, last = paths[mutation[1] % len(paths)]
    parent = data
    for key in parent_keys:
        parent = parent[key]
    if mutation[0] == "delete":
        del parent[last]
    else:
        parent[last] = mutation[2]


def _apply_textual(raw: bytes, mutation) -> bytes:
    kind, where = mutation[0], mutation[1] % (len(raw) + 1)
    lines = raw.splitlines(keepends=True) or [b""]
    line_no = mutation[1] % len(lines)
    if kind == "flip":
        return raw[:where] + bytes([mutation[2]]) + raw[where + 1:]
    if kind == "insert":
        return raw[:where] + mutation[2] + raw[where:]
    if kind == "duplicate_line":
        return b"".join([*lines[:line_no + 1], lines[line_no], *lines[line_no + 1:]])
    if kind in ("nest", "digits"):
        line = lines[line_no]
        head = line.split(b":", 1)[0] if b":" in line else b"deep"
        value = (b"[" * mutation[2] + b"]" * mutation[2]) if kind == "nest" \
            else b"9" * mutation[2]
        lines[line_no] = head + b": " + value + b"\n"
        return b"".join(lines)
    return raw[:where]  # truncate


def mutated(source: str, structured, textual, rename: dict | None = None) -> bytes:
    data = yaml.safe_load(source)
    if rename:
        data.update(rename)
    for mutation in structured:
        _apply_structured(data, mutation)
    raw = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    for mutation in textual:
        raw = _apply_textual(raw, mutation)
    return raw


def bounded_main(argv: list[str]) -> tuple[int, str]:
    """``hil ARGV`` in-process in a thread; fails the test if it does not return in time or
    raises anything (main turns every error it expects into an exit code)."""
    result: dict[str, object] = {}
    err = io.StringIO()

    def call() -> None:
        try:
            result["code"] = main(argv)
        except BaseException as exc:  # noqa: BLE001 - reported below as the finding
            result["raised"] = exc

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(CALL_LIMIT)
    assert not worker.is_alive(), f"hil {' '.join(argv)} did not return in {CALL_LIMIT} s"
    if "raised" in result:
        raise AssertionError(f"hil {' '.join(argv)} raised") from result["raised"]
    code = result["code"]
    assert code in EXIT_CODES, code
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return int(code), err.getvalue()


@FUZZ
@given(source=st.sampled_from(BOARD_FILES),
       structured=st.lists(STRUCTURED, max_size=3),
       textual=st.lists(TEXTUAL, max_size=2))
def test_fuzzed_board_files_never_crash_or_hang(source, structured, textual):
    raw = mutated(source.read_text(), structured, textual,
                  rename={"name": "fuzz-board", "aliases": []})
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "fuzz.yaml").write_bytes(raw)
        saved = os.environ.get("HIL_BOARDS_PATH")
        os.environ["HIL_BOARDS_PATH"] = directory
        try:
            code, err = bounded_main(["boards"])
            if code != 0:
                assert code == ExitCode.USAGE and "hil: error: " in err, err
            code, err = bounded_main(["boards", "fuzz-board"])
            if code != 0:
                assert code == ExitCode.USAGE and "hil: error: " in err, err
        finally:
            if saved is None:
                os.environ.pop("HIL_BOARDS_PATH", None)
            else:
                os.environ["HIL_BOARDS_PATH"] = saved


@FUZZ
@given(structured=st.lists(STRUCTURED, max_size=3), textual=st.lists(TEXTUAL, max_size=2))
def test_fuzzed_rack_files_never_crash_or_hang(structured, textual):
    raw = mutated(RACK_TEXT, structured, textual)
    with tempfile.TemporaryDirectory() as directory:
        rack = Path(directory) / "rack.yaml"
        rack.write_bytes(raw)
        code, err = bounded_main(["rack", "--rack", str(rack), "status", "--no-probes"])
        if code != 0:
            assert "hil: error: " in err, err


APP_TEXT = "name: shell\nversion: 1.0.0\nsources: ['*.c', '../lib/*.c']\ninclude: ['../lib']\n" \
           "stack: 2K\nheap: 0\ndefines: {LINE_MAX: 128}\nboards: [nucleo-f4]\n"


@FUZZ
@given(structured=st.lists(STRUCTURED, max_size=3), textual=st.lists(TEXTUAL, max_size=2))
def test_fuzzed_app_manifests_are_config_errors_at_worst(structured, textual):
    from hil.app import load_app
    from hil.errors import ConfigError

    raw = mutated(APP_TEXT, structured, textual)
    with tempfile.TemporaryDirectory() as directory:
        app = Path(directory) / "app"
        (Path(directory) / "lib").mkdir()
        (Path(directory) / "lib" / "util.c").write_text("int util(void) { return 1; }\n")
        app.mkdir()
        (app / "main.c").write_text("int main(void) { return 0; }\n")
        (app / "app.yaml").write_bytes(raw)
        with contextlib.suppress(ConfigError):
            load_app(app)
