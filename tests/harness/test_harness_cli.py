"""``hil test`` with the ztest and console harnesses on real firmware in QEMU (nucleo-f4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hsupport import firmware_app, junit_cases, status

from hil.boards import load_board
from hil.build import build
from hil.cli import main
from hil.errors import ExitCode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def ztest_elf(tmp_path_factory: pytest.TempPathFactory):
    """variant -> the ELF of firmware/ztest built by hil for nucleo-f4 (once per session)."""
    cache: dict[int, Path] = {}

    def get(variant: int) -> Path:
        if variant not in cache:
            root = tmp_path_factory.mktemp(f"ztest{variant}")
            app = firmware_app("ztest", root / f"ztest{variant}",
                               f"defines: {{ZT_VARIANT: {variant}}}\n")
            cache[variant] = build(load_board("nucleo-f4"), app, out=root / "out").elf
        return cache[variant]

    return get


def _test(*args: str | Path) -> list[str]:
    return ["test", "--board", "nucleo-f4", "--on", "qemu", *map(str, args)]


def test_ztest_one_case_per_test_failure_with_assertion_exits_1(ztest_elf, tmp_path, capsys):
    junit = tmp_path / "zt.xml"
    rc = main(_test("--image", ztest_elf(0), "--harness", "ztest", "--junit", junit))
    assert rc == ExitCode.TEST_FAILED
    cases = junit_cases(junit)
    assert {k: status(c) for k, c in cases.items()} == {
        ("arith", "test_add"): "passed", ("arith", "test_sum"): "failed",
        ("arith", "test_later"): "skipped", ("strings", "test_len"): "passed"}
    failure = cases[("arith", "test_sum")].find("failure")
    assert failure.get("message").startswith("Assertion failed at main.c:")
    assert failure.get("message").endswith(
        "arith_test_sum: (sum(2, 2) not equal to EXPECTED_SUM)")
    assert failure.text.splitlines() == ["adding two and two", failure.get("message"),
                                         "sum is wrong"]
    assert "FAILED in QEMU" in capsys.readouterr().out


def test_ztest_all_pass_exits_0(ztest_elf, tmp_path):
    junit = tmp_path / "zt.xml"
    rc = main(_test("--image", ztest_elf(1), "--harness", "ztest", "--junit", junit))
    assert rc == ExitCode.OK
    assert sorted(status(c) for c in junit_cases(junit).values()) == \
        ["passed", "passed", "passed", "skipped"]


def test_ztest_fatal_error_is_a_crash_decoded_through_the_elf(ztest_elf, tmp_path):
    junit = tmp_path / "zt.xml"
    rc = main(_test("--image", ztest_elf(2), "--harness", "ztest", "--junit", junit))
    assert rc == ExitCode.TEST_FAILED
    cases = junit_cases(junit)
    assert status(cases[("arith", "test_add")]) == "passed"  # what finished before the crash
    error = cases[("arith", "test_null")].find("error")
    assert error is not None
    assert "ZEPHYR FATAL ERROR 0: CPU exception" in error.get("message")
    assert "in crash_test_null" in error.get("message")  # the PC Zephyr printed, symbolized
    assert "called from" in error.text and "arith_test_add" in error.text
    assert ("strings", "test_len") not in cases  # the run ended at the crash


CONSOLE_APP = """\
harness: console
expect: ["^boot v1", "sensor ok", "ready [0-9]+"]
"""


@pytest.mark.parametrize(("yaml", "rc", "failed"), [
    pytest.param(CONSOLE_APP + "ordered: true\n", ExitCode.OK, [], id="ordered-in-order"),
    pytest.param(CONSOLE_APP.replace('"^boot v1", "sensor ok"', '"sensor ok", "^boot v1"')
                 + "ordered: true\n", ExitCode.TEST_FAILED,
                 ["expect[1] /^boot v1/", "expect[2] /ready [0-9]+/"],
                 id="ordered-out-of-order"),
    pytest.param(CONSOLE_APP.replace('"^boot v1", "sensor ok"', '"sensor ok", "^boot v1"'),
                 ExitCode.OK, [], id="any-order"),
    pytest.param(CONSOLE_APP.replace("ready", "never"), ExitCode.TEST_FAILED,
                 ["expect[2] /never [0-9]+/"], id="missing"),
])
def test_console_harness_from_app_yaml(tmp_path, yaml, rc, failed):
    app = firmware_app("console", tmp_path / "bootlog", yaml)
    junit = tmp_path / "c.xml"
    assert main(_test(app, "--timeout", "2", "--junit", junit)) == rc
    cases = junit_cases(junit)
    assert len(cases) == 3 and all(k[0] == "nucleo-f4.bootlog" for k in cases)
    assert sorted(k[1] for k, c in cases.items() if status(c) == "failed") == failed
    for i, name in enumerate(failed):
        failure = cases[("nucleo-f4.bootlog", name)].find("failure")
        assert ("not seen within 2 s" if i == 0 else "not reached") in failure.get("message")
        assert "| ready 42" in failure.text  # the last lines received


@pytest.fixture(scope="session")
def console_hex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console")
    app = firmware_app("console", root / "bootlog")
    return build(load_board("nucleo-f4"), app, out=root / "out").hex


@pytest.mark.parametrize(("args", "rc"), [
    pytest.param(["--expect", "sensor ok", "--expect", "^boot"], ExitCode.OK, id="any-order"),
    pytest.param(["--expect", "sensor ok", "--expect", "^boot", "--ordered"],
                 ExitCode.TEST_FAILED, id="ordered"),
    pytest.param(["--expect", "^boot", "--expect", r"ready \d+", "--harness", "console",
                  "--ordered"], ExitCode.OK, id="explicit-harness"),
])
def test_console_harness_from_the_command_line(console_hex, tmp_path, args, rc):
    junit = tmp_path / "c.xml"
    assert main(_test("--image", console_hex, "--timeout", "1", "--junit", junit,
                      *args)) == rc
    assert len(junit_cases(junit)) == 2


def test_expect_with_another_harness_is_a_usage_error(console_hex, capsys):
    assert main(_test("--image", console_hex, "--harness", "unity", "--expect", "x")) == \
        ExitCode.USAGE
    assert "--expect goes with the console harness" in capsys.readouterr().err


def test_bad_expect_regex_is_refused_before_qemu_starts(console_hex, capsys):
    assert main(_test("--image", console_hex, "--expect", "ok", "--expect", "(x")) == \
        ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--expect[1]: '(x' is not a regular expression" in err
    assert "running in QEMU" in err and "JUnit" not in err


def test_project_apps_with_a_line_harness_need_no_suite(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "apps").mkdir(parents=True)
    (project / "hil.toml").write_text('apps = ["apps/*"]\n')
    firmware_app("console", project / "apps" / "bootlog", CONSOLE_APP)
    monkeypatch.setenv("HIL_BUILD_DIR", str(tmp_path / "build"))
    junit = tmp_path / "p.xml"
    monkeypatch.chdir(project)  # the project is found from the current directory
    rc = main(["test", "--board", "nucleo-f4", "--on", "qemu", "--junit", str(junit)])
    assert rc == ExitCode.OK
    assert {k[0] for k in junit_cases(junit)} == {"nucleo-f4.bootlog"}
