"""``hil test`` and ``hil run`` as users call them: in-process main(argv), once as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import junit_rules
import pytest
from runsupport import BOARDS, qemu_pids_for, write_app

from hil.cli import main
from hil.errors import ExitCode

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _props(junit: Path) -> list[dict[str, str]]:
    junit_rules.assert_valid(junit)
    return [{p.get("name"): p.get("value") for p in ts.iter("property")}
            for ts in ET.parse(junit).getroot().iter("testsuite")]


def _suite(tmp_path: Path, body: str, name: str = "suite") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "test_it.py").write_text(textwrap.dedent(body))
    return d


@pytest.mark.parametrize("board", BOARDS)
def test_shell_passes_in_qemu_and_says_so(board, tmp_path: Path, capsys):
    junit = tmp_path / "verdict.xml"
    assert main(["test", "--board", board, "shell", "--junit", str(junit)]) == ExitCode.OK
    out, err = capsys.readouterr()
    assert "not a hardware pass" in out and "PASSED in QEMU" in out
    assert f"{board}: running in QEMU" in err
    (props,) = _props(junit)
    assert props["hil.board"] == board
    assert props["hil.executor"] == "qemu"
    assert len(props["hil.image.sha256"]) == 64
    assert props["hil.toolchain"].startswith("gcc ")


def test_selftest_with_unity_harness_reports_each_test(tmp_path: Path, capsys):
    junit = tmp_path / "u.xml"
    rc = main(["test", "--board", "nucleo-f4", "selftest", "--harness", "unity",
               "--junit", str(junit)])
    assert rc == ExitCode.OK
    junit_rules.assert_valid(junit)
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) > 3
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(skipped) >= 1 and skipped[0].find("skipped").get("message")


UNITY_APP = """\
#include "hil.h"
int main(void)
{
    hil_println("my own unity project");
    hil_println("t.c:10:test_one:PASS");
    hil_println("t.c:11:test_two:FAIL: Expected 1 Was 2");
    hil_println("t.c:12:test_three:IGNORE: not yet");
    hil_println("");
    hil_println("-----------------------");
    hil_println("3 Tests 1 Failures 1 Ignored ");
    hil_println("FAIL");
    for (;;) {
    }
}
"""


def test_unity_harness_works_for_any_unity_image(tmp_path: Path):
    app = write_app(tmp_path / "myunity", UNITY_APP)
    junit = tmp_path / "u.xml"
    rc = main(["test", "--board", "hifive1-revb", str(app), "--harness", "unity",
               "--junit", str(junit)])
    assert rc == ExitCode.TEST_FAILED
    junit_rules.assert_valid(junit)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"test_one", "test_two", "test_three"}
    assert cases["test_two"].find("failure").get("message") == "Expected 1 Was 2"
    assert cases["test_three"].find("skipped").get("message") == "not yet"


def test_require_hardware_without_hardware_exits_4_naming_the_board(capsys):
    assert main(["test", "--board", "nucleo-f446re", "--require-hardware"]) == \
        ExitCode.NO_HARDWARE
    err = capsys.readouterr().err
    assert "nucleo-f446re" in err and "--require-hardware" in err


def test_on_hardware_without_hardware_exits_4(capsys):
    assert main(["test", "--board", "hifive1-revb", "--on", "hardware"]) == ExitCode.NO_HARDWARE


def test_failing_test_exits_1_with_transcript_tail_in_junit(tmp_path: Path):
    suite = _suite(tmp_path, """\
        def test_passes(dut):
            assert dut.command("ping") == ["pong"]

        def test_fails(dut):
            assert dut.command("echo marker-in-tail") == ["something else"]
        """)
    junit = tmp_path / "j.xml"
    rc = main(["test", "--board", "nucleo-f4", "shell", "--suite", str(suite),
               "--junit", str(junit)])
    assert rc == ExitCode.TEST_FAILED
    junit_rules.assert_valid(junit)
    failure = next(c for c in ET.parse(junit).getroot().iter("testcase")
                   if c.get("name") == "test_fails").find("failure")
    assert "hil console of nucleo-f4" in failure.text
    assert "marker-in-tail" in failure.text and "transcript:" in failure.text


def test_unexpected_crash_fails_with_decoded_function(tmp_path: Path):
    suite = _suite(tmp_path, """\
        def test_crashes(dut):
            dut.command("fault")

        def test_next_test_gets_a_fresh_board(dut):
            assert dut.command("ping") == ["pong"]
        """)
    junit = tmp_path / "j.xml"
    rc = main(["test", "--board", "lm3s6965evb", "shell", "--suite", str(suite),
               "--junit", str(junit)])
    assert rc == ExitCode.TEST_FAILED
    junit_rules.assert_valid(junit)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert "shell_fault" in cases["test_crashes"].find("failure").text
    assert cases["test_next_test_gets_a_fresh_board"].find("failure") is None


def test_timeout_fails_the_test_and_the_next_one_gets_a_fresh_board(tmp_path: Path):
    suite = _suite(tmp_path, """\
        import pytest
        from hil.console import ConsoleTimeout

        def test_times_out(dut):
            dut.send("echo partial")
            dut.expect("never-printed", timeout=0.5)

        def test_next(dut):
            assert dut.command("ping") == ["pong"]
        """)
    junit = tmp_path / "j.xml"
    rc = main(["test", "--board", "nucleo-f4", "shell", "--suite", str(suite),
               "--junit", str(junit)])
    assert rc == ExitCode.TEST_FAILED
    junit_rules.assert_valid(junit)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    text = cases["test_times_out"].find("failure").text
    assert "no match for /never-printed/" in text and "| partial" in text
    assert cases["test_next"].find("failure") is None


def test_qemu_killed_mid_suite_is_an_infrastructure_failure(tmp_path: Path, hil_env: Path):
    suite = _suite(tmp_path, """\
        import os, signal

        def test_killed(dut, hil_executor):
            os.kill(hil_executor.proc.pid, signal.SIGKILL)
            dut.command("ping")

        def test_after_the_kill_a_fresh_board(dut):
            assert dut.command("ping") == ["pong"]
        """)
    assert main(["test", "--board", "nucleo-f4", "shell", "--suite", str(suite)]) == \
        ExitCode.INFRASTRUCTURE
    assert qemu_pids_for(hil_env / "runs") == []  # the run's HEX is under its state dir


def test_no_tests_collected_is_an_error_not_a_pass(tmp_path: Path, capsys):
    suite = _suite(tmp_path, "X = 1\n")
    assert main(["test", "--board", "nucleo-f4", "shell", "--suite", str(suite)]) == ExitCode.USAGE
    assert "no tests collected" in capsys.readouterr().err


def test_missing_suite_is_a_usage_error(tmp_path: Path):
    assert main(["test", "--board", "nucleo-f4", "shell", "--suite", str(tmp_path / "none")]) == \
        ExitCode.USAGE


def test_image_built_elsewhere_as_elf(built, tmp_path: Path):
    elf = tmp_path / "app.elf"
    shutil.copy(built("nucleo-f446re").elf, elf)
    rc = main(["test", "--board", "nucleo-f446re", "--image", str(elf), "--suite",
               str(ROOT / "firmware_examples" / "shell" / "tests"), "--junit",
               str(tmp_path / "j.xml")])
    assert rc == ExitCode.OK
    assert len(_props(tmp_path / "j.xml")[0]["hil.image.sha256"]) == 64


def test_two_boards_in_parallel_with_two_workers_each(tmp_path: Path, capsys):
    junit = tmp_path / "j.xml"
    rc = main(["test", "--board", "nucleo-f4", "--board", "hifive1-revb", "shell", "-n", "2",
               "--junit", str(junit)])
    assert rc == ExitCode.OK
    assert sorted(p["hil.board"] for p in _props(junit)) == ["hifive1-revb", "nucleo-f4"]
    out = capsys.readouterr().out
    assert out.count("not a hardware pass") == 2


def test_end_to_end_subprocess(tmp_path: Path):
    hil = shutil.which("hil") or str(Path(sys.executable).parent / "hil")
    junit = tmp_path / "j.xml"
    proc = subprocess.run([hil, "test", "--board", "hifive1-revb", "--junit", str(junit)],
                          check=False, capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED in QEMU (sifive_e,revb=on) - not a hardware pass" in proc.stdout
    assert _props(junit)[0]["hil.executor"] == "qemu"


def test_hil_run_attaches_and_exits_on_ctrl_close_bracket(built, tmp_path: Path):
    hil = shutil.which("hil") or str(Path(sys.executable).parent / "hil")
    proc = subprocess.Popen([hil, "run", "--board", "nucleo-f4", "--image",
                             str(built("nucleo-f4").hex)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(b"ping\n\x1d", timeout=60)
    assert proc.returncode == 0, err
    assert b"READY" in out


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background jobs ignore it


def test_ctrl_c_during_hil_test_exits_130_and_leaves_no_qemu(tmp_path: Path, hil_env: Path):
    import signal
    import time

    suite = _suite(tmp_path, """\
        import time

        def test_slow(dut):
            time.sleep(120)
        """)
    hil = shutil.which("hil") or str(Path(sys.executable).parent / "hil")
    proc = subprocess.Popen([hil, "test", "--board", "nucleo-f4", "--board", "hifive1-revb",
                             "shell", "-n", "2", "--suite", str(suite)], start_new_session=True,
                            preexec_fn=_default_sigint, stdout=subprocess.PIPE,  # noqa: PLW1509
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while len(qemu_pids_for(hil_env / "runs")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(qemu_pids_for(hil_env / "runs")) == 2
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == ExitCode.INTERRUPTED, out
    deadline = time.monotonic() + 15
    while qemu_pids_for(hil_env / "runs") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert qemu_pids_for(hil_env / "runs") == []
