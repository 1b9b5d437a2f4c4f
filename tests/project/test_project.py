"""The project file, the settings object, the board catalog's origins and `extends:`, and
`hil init`: hil serves any repository, not only its own checkout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from hil.boards import BoardCatalog
from hil.catalog import BOARDS_DIR
from hil.cli import main
from hil.errors import ConfigError
from hil.settings import load

F4 = yaml.safe_load((BOARDS_DIR / "nucleo-f4.yaml").read_text())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as the current directory, with no HIL_* settings."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    for var in ("HIL_STATE_DIR", "HIL_CACHE_DIR", "HIL_BUILD_DIR", "HIL_RACK",
                "HIL_BOARDS_PATH", "HIL_PROJECT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    return root


def config(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, str]]:
    assert main([*argv, "config", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------ finding the project


def test_without_a_project_file_the_current_directory_is_the_root(project, capsys):
    cfg = config(capsys)
    assert cfg["root"]["value"] == str(project)
    assert cfg["project_file"]["value"] == "-"
    assert cfg["state_dir"] == {"value": str(project / ".hil"), "source": "default"}
    assert main(["boards"]) == 0
    assert "no hil.toml in" in capsys.readouterr().err  # said once, on stderr


def test_the_project_is_found_from_a_subdirectory(project, capsys, monkeypatch):
    (project / "hil.toml").write_text('build_dir = "out"\n')
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    cfg = config(capsys)
    assert cfg["root"]["value"] == str(project)
    assert cfg["build_dir"] == {"value": str(project / "out"), "source": "hil.toml"}


def test_pyproject_with_a_tool_hil_table_is_a_project_file(project, capsys):
    (project / "pyproject.toml").write_text('[project]\nname = "fw"\n\n[tool.hil]\n'
                                            'state_dir = "var/hil"\n')
    cfg = config(capsys)
    assert cfg["project_file"]["value"] == str(project / "pyproject.toml")
    assert cfg["state_dir"] == {"value": str(project / "var" / "hil"),
                                "source": "pyproject.toml"}


def test_a_pyproject_without_tool_hil_is_passed_over(project, capsys):
    (project / "pyproject.toml").write_text('[project]\nname = "fw"\n')
    assert config(capsys)["project_file"]["value"] == "-"


def test_override_order_default_project_environment_option(project, capsys, monkeypatch):
    (project / "hil.toml").write_text('state_dir = "from-file"\nbuild_dir = "from-file"\n'
                                      'rack = "racks/lab.yaml"\n[test]\ntimeout = 30\n')
    monkeypatch.setenv("HIL_STATE_DIR", str(project / "from-env"))
    monkeypatch.setenv("HIL_BUILD_DIR", str(project / "from-env"))
    cfg = config(capsys, "--build-root", "from-option")
    assert cfg["cache_dir"]["source"] == "default"
    assert cfg["rack"] == {"value": str(project / "racks" / "lab.yaml"), "source": "hil.toml"}
    assert cfg["test_timeout"] == {"value": "30", "source": "hil.toml"}
    assert cfg["state_dir"] == {"value": str(project / "from-env"),
                                "source": "env HIL_STATE_DIR"}
    assert cfg["build_dir"] == {"value": str(project / "from-option"),
                                "source": "option --build-root"}


def test_hil_config_prints_a_table_with_sources(project, capsys):
    (project / "hil.toml").write_text('toolchains = ["clang", "gcc"]\n')
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("toolchains"))
    assert "clang, gcc" in row and row.rstrip().endswith("hil.toml")


# ------------------------------------------------------------------ project file errors


@pytest.mark.parametrize(("text", "key", "words"), [
    pytest.param('bulid_dir = "out"\n', "bulid_dir", "did you mean 'build_dir'",
                 id="unknown-key-suggests"),
    pytest.param('[test]\ntimout = 3\n', "test.timout", "did you mean 'timeout'",
                 id="unknown-key-in-test-table"),
    pytest.param('build_dir = 3\n', "build_dir", "expected a path", id="wrong-type-path"),
    pytest.param('apps = "apps/*"\nboards = [1]\n', "boards", "expected a list of strings",
                 id="wrong-type-list"),
    pytest.param('boards = ["hw/boards"]\n', "boards[0]", "does not exist",
                 id="missing-board-directory"),
    pytest.param('toolchains = ["icc"]\n', "toolchains[0]", "unknown toolchain",
                 id="unknown-toolchain"),
    pytest.param("[test]\ntimeout = -1\n", "test.timeout", "out of range",
                 id="negative-timeout"),
    pytest.param('[test]\non = "fpga"\n', "test.on", "not one of", id="bad-choice"),
])
def test_project_file_errors_name_the_file_and_key(project, capsys, text, key, words):
    (project / "hil.toml").write_text(text)
    assert main(["boards"]) == 2
    err = capsys.readouterr().err
    assert f"{project / 'hil.toml'}: {key}" in err and words in err
    assert "Traceback" not in err


def test_project_file_with_broken_toml_is_a_config_error(project, capsys):
    (project / "hil.toml").write_text("apps = [\n")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "hil.toml: not valid TOML" in err and "Traceback" not in err


def test_tool_hil_errors_name_the_table(project):
    (project / "pyproject.toml").write_text('[tool.hil]\nstate = ".hil"\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml: tool.hil.state: unknown key"):
        load(project, env={})


# ------------------------------------------------------------------ boards of the project


def write_board(directory: Path, data: dict, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_project_board_replaces_a_built_in_one_and_hil_boards_says_so(project, capsys):
    write_board(project / "boards", {**F4, "description": "our bench F411"}, "nucleo-f4")
    catalog = BoardCatalog()
    assert catalog.get("nucleo-f4").description == "our bench F411"
    assert catalog.get("nucleo-f4").origin == str(project / "boards")
    assert catalog.get("lm3s6965evb").origin == "built-in"
    assert main(["boards", "--json"]) == 0
    origins = {b["name"]: b["origin"] for b in json.loads(capsys.readouterr().out)}
    assert origins["nucleo-f4"] == str(project / "boards")
    assert origins["hifive1-revb"] == "built-in"


def test_extends_overrides_keys_and_merges_mappings(project):
    write_board(project / "boards", {"schema": 1, "name": "f4-usart-fast",
                                     "extends": "nucleo-f4",
                                     "console": {"baud": 921600}}, "f4-usart-fast")
    board = BoardCatalog().get("f4-usart-fast")
    f4 = BoardCatalog().get("nucleo-f4")
    assert board.console.baud == 921600
    assert board.console.base == f4.console.base  # the rest of the mapping is inherited
    assert board.regions == f4.regions and board.aliases == ()  # aliases are not inherited
    assert board.extends == "nucleo-f4" and board.sha256 != f4.sha256


def test_the_shipped_f446re_extends_the_f4(project):
    f446 = BoardCatalog().get("nucleo-f446re")
    assert f446.extends == "nucleo-f4"
    assert f446.flash.chip_id.value == 0x421
    assert f446.regions == BoardCatalog().get("nucleo-f4").regions


def test_extends_cycle_is_an_error_naming_the_chain(project):
    write_board(project / "boards", {"schema": 1, "name": "a", "extends": "b"}, "a")
    write_board(project / "boards", {"schema": 1, "name": "b", "extends": "a"}, "b")
    with pytest.raises(ConfigError, match=r"boards/[ab].yaml: extends: 'extends' makes a "
                                          r"cycle: (a -> b -> a|b -> a -> b)"):
        BoardCatalog().get("a")


def test_extends_a_missing_board_is_an_error(project):
    write_board(project / "boards", {"schema": 1, "name": "a", "extends": "nucleo-f9"}, "a")
    with pytest.raises(ConfigError, match=r"a.yaml: extends: extends unknown board "
                                          r"'nucleo-f9'") as err:
        BoardCatalog().get("a")
    assert "nucleo-f4" in str(err.value)  # the hint lists the boards that exist


# ------------------------------------------------------------------ hil init


def test_init_makes_a_project_that_hil_finds(project, capsys):
    assert main(["init"]) == 0
    capsys.readouterr()
    for path in ("hil.toml", "rack.yaml", "boards/README.md", "apps/hello/main.c",
                 "apps/hello/app.yaml", "apps/hello/tests/test_hello.py",
                 ".github/workflows/hil.yml", ".gitlab-ci.yml"):
        assert (project / path).is_file(), path
    assert "/build/" in (project / ".gitignore").read_text().splitlines()
    cfg = config(capsys)
    assert cfg["project_file"]["value"] == str(project / "hil.toml")
    assert cfg["apps"] == {"value": "apps/*", "source": "hil.toml"}
    ci = (project / ".gitlab-ci.yml").read_text()
    assert "--require-hardware" in ci and "junit" in ci


def test_init_keeps_existing_files_and_says_which(project, capsys):
    (project / "hil.toml").write_text('state_dir = "mine"\n')
    (project / ".gitignore").write_text("*.o")  # no newline at the end
    assert main(["init", str(project)]) == 0
    out = capsys.readouterr().out
    assert "kept   hil.toml" in out and "wrote  rack.yaml" in out
    assert (project / "hil.toml").read_text() == 'state_dir = "mine"\n'
    assert (project / ".gitignore").read_text().splitlines() == \
        ["*.o", "/build/", "/mine/", "__pycache__/"]  # the kept hil.toml's state_dir
    assert main(["init", str(project)]) == 0  # again: everything is kept
    out = capsys.readouterr().out
    assert "wrote" not in out and out.count("kept") == 9


def test_init_into_a_file_is_a_usage_error(project, capsys):
    (project / "afile").write_text("x")
    assert main(["init", "afile"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_apps_of_the_project_then_the_examples(project, capsys):
    main(["init"])
    from hil.app import load_app, project_apps

    assert [a.name for a in project_apps()] == ["hello"]
    assert load_app("hello").dir == project / "apps" / "hello"
    assert load_app("shell").name == "shell"  # an example shipped with hil
    with pytest.raises(ConfigError) as err:
        load_app("helo")
    assert "project apps: hello" in str(err.value) and "shell" in str(err.value)


# ------------------------------------------------------------------ the project's apps


@pytest.fixture
def initialised(project, capsys, shared_cache, monkeypatch):
    monkeypatch.setenv("HIL_CACHE_DIR", str(shared_cache))
    assert main(["init"]) == 0
    capsys.readouterr()
    return project


def test_build_all_builds_the_project_apps_into_its_build_dir(initialised, capsys):
    assert main(["build", "--board", "nucleo-f4", "--all"]) == 0
    built = sorted(p.name for p in (initialised / "build" / "nucleo-f4").iterdir() if p.is_dir())
    assert built == ["hello"]  # the project's apps, not hil's examples
    assert main(["build", "--board", "nucleo-f4", "blinky"]) == 0  # an example by name
    assert (initialised / "build" / "nucleo-f4" / "blinky" / "firmware.hex").is_file()


@pytest.mark.slow
def test_test_without_app_runs_every_app_with_a_suite(initialised, capsys):
    second = initialised / "apps" / "hello2"
    import shutil

    shutil.copytree(initialised / "apps" / "hello", second)
    (second / "app.yaml").write_text("name: hello2\nsources: ['*.c']\n")
    shutil.copytree(initialised / "apps" / "hello", initialised / "apps" / "nosuite")
    shutil.rmtree(initialised / "apps" / "nosuite" / "tests")
    junit = initialised / "verdict.xml"
    rc = main(["test", "--board", "nucleo-f4", "--on", "qemu", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith("nucleo-f4")]
    assert rows == [["nucleo-f4", "hello"], ["nucleo-f4", "hello2"]]
    import xml.etree.ElementTree as ET

    suites = ET.parse(junit).getroot().findall("testsuite")
    assert sorted(s.get("name") for s in suites) == ["nucleo-f4/hello", "nucleo-f4/hello2"]
    assert all(s.get("failures") == "0" and int(s.get("tests")) == 4 for s in suites)


def test_test_in_a_project_without_suites_says_so(project, capsys):
    (project / "hil.toml").write_text("")
    assert main(["test", "--board", "nucleo-f4", "--on", "qemu"]) == 2
    err = capsys.readouterr().err
    assert "the project has no apps with a test suite" in err and "hil init" in err


def test_init_warns_when_a_kept_project_file_leaves_out_apps_hello(project, capsys):
    (project / "hil.toml").write_text('apps = ["src/*"]\nbuild_dir = "out"\n')
    assert main(["init"]) == 0
    captured = capsys.readouterr()
    assert "does not include apps/hello" in captured.err and 'add "apps/*"' in captured.err
    assert "/out/" in (project / ".gitignore").read_text().splitlines()


@pytest.mark.slow
def test_test_in_a_project_without_a_rack_runs_in_qemu(project, capsys, shared_cache,
                                                      monkeypatch):
    """No rack.yaml (not chosen, just absent): QEMU, as hil says, not a missing-file error
    inside the pytest run."""
    monkeypatch.setenv("HIL_CACHE_DIR", str(shared_cache))
    (project / "hil.toml").write_text("")
    assert main(["test", "--board", "nucleo-f4", "shell"]) == 0
    captured = capsys.readouterr()
    assert "the project has no rack file" in captured.err
    assert "PASSED in QEMU" in captured.out


def test_a_state_directory_that_cannot_be_made_is_a_message(project, capsys, monkeypatch):
    monkeypatch.setenv("HIL_STATE_DIR", "/proc/hil-cannot-be-made")
    rc = main(["rack", "status"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err and "TypeError" not in err
    assert "/proc/hil-cannot-be-made" in err and "hint:" in err


def test_a_global_option_after_the_command_says_where_it_goes(project, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["config", "--build-root", "out"])
    assert exit_.value.code == 2
    assert "--build-root is an option of hil itself: put it before the command" in \
        capsys.readouterr().err


def test_flashing_an_unknown_simulated_probe_says_it_is_a_new_board(project, capsys,
                                                                    shared_cache,
                                                                    monkeypatch):
    monkeypatch.setenv("HIL_CACHE_DIR", str(shared_cache))
    main(["init"])
    capsys.readouterr()
    assert main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-aa", "hello"]) == 0
    err = capsys.readouterr().err
    assert "hilsim:f4-aa is not in the rack" in err and "hilsim:f4-a, hilsim:f4-b" in err
    assert main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-aa", "hello"]) == 0
    assert "is not in the rack" not in capsys.readouterr().err  # known now: no note


def test_audit_image_shows_a_rebuild_from_the_cache_once(initialised, capsys):
    out_dir = initialised / "build" / "nucleo-f4" / "hello"
    assert main(["build", "--board", "nucleo-f4", "hello"]) == 0
    assert main(["build", "--board", "nucleo-f4", "hello"]) == 0  # up to date: nothing new
    shutil.rmtree(out_dir)
    assert main(["build", "--board", "nucleo-f4", "hello"]) == 0  # linked again from the cache
    capsys.readouterr()
    assert main(["audit", "image", str(out_dir / "firmware.hex")]) == 0
    out = capsys.readouterr().out
    assert out.count("\nbuilt ") == 1
    assert "built again 1 time(s) from the same sources with the same toolchain" in out


def test_the_pytest_child_gets_env_and_option_settings_but_not_xdist_identity(project):
    from hil.settings import load

    (project / "hil.toml").write_text('state_dir = "from-file"\n')
    settings = load(project, env={"HIL_BUILD_DIR": "/b"}).override(
        "option --cache-dir", cache_dir="/c")
    env = settings.child_env({"PYTEST_XDIST_WORKER": "gw1", "PATH": "/bin"})
    assert env["HIL_PROJECT_ROOT"] == str(project)
    assert env["HIL_BUILD_DIR"] == "/b" and env["HIL_CACHE_DIR"] == "/c"
    assert "HIL_STATE_DIR" not in env  # from the project file: the child reads it itself
    assert "HIL_RACK" not in env  # a default: an absent default rack stays allowed
    assert "PYTEST_XDIST_WORKER" not in env and env["PATH"] == "/bin"


@pytest.mark.slow
def test_the_qemu_gate_command_of_the_ci_examples_passes_in_a_new_project(initialised,
                                                                         capsys):
    ci = yaml.safe_load((initialised / ".gitlab-ci.yml").read_text())
    command = ci["qemu"]["script"][0]
    assert command.startswith(".venv/bin/hil test ") and "--shard" in command
    argv = command.removeprefix(".venv/bin/hil ").replace(
        '"$CI_NODE_INDEX/$CI_NODE_TOTAL"', "1/1").split()
    assert main(argv) == 0, capsys.readouterr()
    assert (initialised / "build" / "junit.xml").is_file()
    assert (initialised / "build" / "report.html").is_file()
    github = yaml.safe_load((initialised / ".github" / "workflows" / "hil.yml").read_text())
    steps = [s.get("run", "") for s in github["jobs"]["qemu"]["steps"]]
    assert any(".venv/bin/hil test --on qemu --shard" in s for s in steps)
