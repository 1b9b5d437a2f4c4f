"""Fuzz: any text given as a number option or environment number, and any rack file, ends in
one of hil's exit codes or a ConfigError: never a traceback, never a hang.

Deterministic (derandomized, no example database) and bounded, so it runs in `make test`.
Nothing here waits for a board or boots QEMU: every command either fails fast (a missing
image, an unknown board) or acts on a lease database of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.cli import main
from hil.errors import ConfigError, ExitCode
from hil.rack import load_rack
from hil.schema import load_yaml

HANG_S = 30.0  # generous: each call here takes well under a second
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CODES = {int(c) for c in ExitCode}
RACK = "schema: 1\nboards:\n  - {id: fz-a, board: nucleo-f4, probe: 'hilsim:fz-a'}\n"


class Hang(BaseException):
    """Raised in the main thread when one call outlives HANG_S."""


def _alarm(signum, frame):
    raise Hang(f"no answer within {HANG_S} s")


def run_hil(argv: list[str], env: dict[str, str] | None = None) -> int:
    """``hil ARGV`` in-process under a hang guard; argparse's usage exit is an exit code."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


NUMBERISH = st.one_of(
    st.floats().map(repr),  # includes nan, inf, -0.0, 5e-324, 1.7976931348623157e+308
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(["0", "-0", "1", "1e300", "-1e300", "nan", "NaN", "-inf", "Infinity",
                     "forever", "0x10", "0b11", "1_000", " 7 ", "", "4e6", "1e-300", "9" * 5000,
                     "١٢", "0.5", "604800", "604801", "86400.0001", "100000001"]),
    st.text(max_size=24),
)


@pytest.fixture
def fuzz_env(tmp_path, monkeypatch):
    rack = tmp_path / "rack.yaml"
    rack.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(rack))
    for var in ("HIL_LEASE", "HIL_LEASE_WAIT", "HIL_SIM_FAULTS"):
        monkeypatch.delenv(var, raising=False)
    counter = itertools.count()

    def fresh_db() -> str:  # every example leases from an empty database: nothing waits
        return str(tmp_path / f"leases-{next(counter)}.sqlite")

    return tmp_path, fresh_db


def _commands(value: str, missing: str, token: str) -> dict[str, tuple[list[str], dict]]:
    env_safe = value.replace("\x00", "")
    return {
        "lease --ttl": (["rack", "lease", "--board", "nucleo-f4", f"--ttl={value}", "--json"], {}),
        "lease --wait": (["rack", "lease", "--board", "nucleo-f4", f"--wait={value}"], {}),
        "renew --ttl": (["rack", "renew", token, f"--ttl={value}"], {}),
        "flash --wait": (["flash", "--board", "nucleo-f4", "--image", missing, f"--wait={value}"],
                         {}),
        "flash --frequency": (["flash", "--board", "nucleo-f4", "--image", missing,
                               f"--frequency={value}"], {}),
        "test --timeout": (["test", "--board", "nucleo-f4", "--image", missing, "--harness",
                            "unity", f"--timeout={value}"], {}),
        "test -n": (["test", "--board", "nucleo-f4", "--image", missing, "--harness", "unity",
                     f"--workers={value}"], {}),
        "build -j": (["build", "--board", "no-such-board", f"--jobs={value}"], {}),
        "audit --limit": (["audit", "board", "fz-a", f"--limit={value}"], {}),
        "HIL_LEASE_WAIT": (["flash", "--board", "nucleo-f4", "--image", missing],
                           {"HIL_LEASE_WAIT": env_safe}),
        "HIL_SIM_FAULTS slow": (["flash", "--board", "nucleo-f4", "--image", missing],
                                {"HIL_SIM_FAULTS": f"slow={env_safe}"}),
        "HIL_SIM_FAULTS count": (["flash", "--board", "nucleo-f4", "--image", missing],
                                 {"HIL_SIM_FAULTS": f"fz-a:disconnect_after={env_safe}"}),
        "HIL_SIM_FAULTS address": (["flash", "--board", "nucleo-f4", "--image", missing],
                                   {"HIL_SIM_FAULTS": f"erase@{env_safe}"}),
    }


OPTIONS = sorted(_commands("1", "x", "t"))


@FUZZ
@given(option=st.sampled_from(OPTIONS), value=NUMBERISH)
def test_fuzz_number_options_end_in_an_exit_code(fuzz_env, capsys, option, value):
    tmp_path, fresh_db = fuzz_env
    db = fresh_db()
    token = "0" * 32
    if option == "renew --ttl":  # renew a real lease
        assert run_hil(["rack", "lease", "--board", "nucleo-f4", "--json"],
                       {"HIL_LEASE_DB": db}) == 0
        token = json.loads(capsys.readouterr().out)["lease"]
    argv, env = _commands(value, str(tmp_path / "missing.hex"), token)[option]
    code = run_hil(argv, {"HIL_LEASE_DB": db, **env})
    err = capsys.readouterr().err
    assert code in CODES, (option, value, code, err)
    assert "Traceback" not in err, err
    if code == 0:  # only a lease or renewal in range succeeds
        assert option in ("lease --ttl", "lease --wait", "renew --ttl"), (option, value)
    if "error: argument --" in err:  # a number out of range names its range
        assert "must be" in err, err


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
    st.text(max_size=20),
    st.sampled_from(["nucleo-f4", "hifive1-revb", "hilsim:a", "hilsim:../x", "remote:h:1",
                     "remote::0", "qemu", "virtual", "slow=nan", "disconnect_after=-3",
                     "erase@0x1ffffffff", "1e300", "..", "f4-a", "sqlite:", "~"]),
)
KEYS = st.sampled_from(["schema", "boards", "leases", "database", "id", "board", "probe",
                        "console", "tags", "emulator", "sim_faults", "extra"])
YAML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), inner,
                                            max_size=5)),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries(
    {"id": SCALARS, "board": SCALARS, "probe": SCALARS},
    optional={"console": SCALARS, "tags": YAML_VALUES, "emulator": SCALARS,
              "sim_faults": SCALARS, "extra": SCALARS},
)
RACK_SHAPED = st.fixed_dictionaries(
    {"schema": st.one_of(st.just(1), SCALARS), "boards": st.lists(ENTRY, max_size=3)},
    optional={"leases": YAML_VALUES},
)


def _dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


RACK_TEXT = st.one_of(
    RACK_SHAPED.map(_dump),
    YAML_VALUES.map(_dump),
    st.text(max_size=200),
    st.lists(st.sampled_from(["schema: 1\n", "boards:\n", "  - id: a\n", "    board: x\n",
                              "  - {id: a, board: nucleo-f4, probe: 'hilsim:a'}\n", "- [\n",
                              "&a [*a]\n", "!!python/object:os.system x\n", "key: &x 1\n",
                              "? [a]\n: b\n", "\t\n", "---\n", "...\n", "'\n", "{\n"]),
             max_size=8).map("".join),
)


def _check_rack_file(path: Path, capsys, fresh_db) -> None:
    try:
        load_rack(path)
    except ConfigError as exc:
        assert str(path) in str(exc), exc  # names the file
    code = run_hil(["rack", "status", "--no-probes", "--json"],
                   {"HIL_RACK": str(path), "HIL_LEASE_DB": fresh_db()})
    out, err = capsys.readouterr()
    assert code in (ExitCode.OK, ExitCode.USAGE), (code, err)
    assert "Traceback" not in err, err
    if code == ExitCode.OK:
        json.loads(out)


@FUZZ
@given(text=RACK_TEXT)
def test_fuzz_rack_files_load_or_give_a_config_error(fuzz_env, capsys, text):
    tmp_path, fresh_db = fuzz_env
    path = tmp_path / "fuzz-rack.yaml"
    path.write_text(text, encoding="utf-8")
    _check_rack_file(path, capsys, fresh_db)


def _reads_any_bytes() -> bool:
    """Whether load_yaml already turns a file that is not UTF-8 into a ConfigError."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.yaml"
        path.write_bytes(b"\xff\xfe")
        with contextlib.suppress(ConfigError):
            try:
                load_yaml(path)
            except UnicodeDecodeError:
                return False
    return True


@pytest.mark.skipif(not _reads_any_bytes(), reason="a rack file that is not UTF-8 is still a "
                    "traceback in load_yaml: fixed by the inputs part of issue 10")
@FUZZ
@given(data=st.one_of(st.binary(max_size=200),
                      RACK_TEXT.map(lambda t: t.encode("utf-16")),
                      RACK_TEXT.map(lambda t: t.encode("utf-8") + b"\xc3")))
def test_fuzz_rack_file_bytes_load_or_give_a_config_error(fuzz_env, capsys, data):
    tmp_path, fresh_db = fuzz_env
    path = tmp_path / "fuzz-rack.yaml"
    path.write_bytes(data)
    _check_rack_file(path, capsys, fresh_db)
