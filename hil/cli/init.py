"""hil init: turn a directory into a hil project (project file, rack, one app, CI examples)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hil.errors import UsageError

NAME = "init"
HELP = "make a directory a hil project: hil.toml, rack.yaml, boards/, apps/hello, CI examples"
DESCRIPTION = """\
Turn DIR (default: the current directory), empty or not, into a hil project:

  hil.toml                  the project file (boards, apps, rack, build and state dirs)
  rack.yaml                 a rack of two virtual nucleo-f4 boards (simulated probe + QEMU)
  boards/README.md          how to add a board of your own (or extend a built-in one)
  apps/hello/               a first app: main.c on the hil runtime, app.yaml, tests/
  .gitignore                build/ and .hil/ (lines added when missing)
  .github/workflows/hil.yml and .gitlab-ci.yml
                            the merge gate in CI: QEMU on any runner, hardware on the
                            rack runner with --require-hardware, JUnit uploaded

A file that exists is never overwritten: hil says which it kept.

Then, in DIR:
  hil boards
  hil build --board nucleo-f4 --all
  hil test --board nucleo-f4 --on qemu
  hil test --board nucleo-f4            (on the rack's virtual board)
"""

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "init"

# template file -> where it goes in the project
FILES = {
    "hil.toml": "hil.toml",
    "rack.yaml": "rack.yaml",
    "boards-README.md": "boards/README.md",
    "hello/app.yaml": "apps/hello/app.yaml",
    "hello/main.c": "apps/hello/main.c",
    "hello/tests/test_hello.py": "apps/hello/tests/test_hello.py",
    "github-workflow.yml": ".github/workflows/hil.yml",
    "gitlab-ci.yml": ".gitlab-ci.yml",
}
GITIGNORE = ("/build/", "/.hil/", "__pycache__/")  # for the hil.toml init writes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), metavar="DIR",
                   help="the project directory (default: the current directory; made if "
                   "missing)")


def run(args: argparse.Namespace) -> int:
    root = args.dir.resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="give a directory for the project")
    written, kept = init_project(root)
    for path in written:
        print(f"  wrote  {path}")
    for path in kept:
        print(f"  kept   {path} (exists; not overwritten)")
    for warning in check_kept_project(root):
        print(f"hil: warning: {warning}", file=sys.stderr)
    where = "" if root == Path.cwd().resolve() else f"cd {args.dir} && "
    print(f"\nhil project in {root}. Next:\n"
          f"  {where}hil boards\n"
          f"  hil build --board nucleo-f4 --all\n"
          f"  hil test --board nucleo-f4 --on qemu", file=sys.stderr)
    return 0


def init_project(root: Path) -> tuple[list[str], list[str]]:
    """Write the project files that do not exist yet; returns (written, kept) relative
    paths. .gitignore gets the missing ignore lines appended."""
    written: list[str] = []
    kept: list[str] = []
    for template, target in FILES.items():
        path = root / target
        if path.exists():
            kept.append(target)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (TEMPLATES / template).read_bytes()
        try:
            with open(path, "xb") as fh:  # never replace a file made meanwhile
                fh.write(data)
        except FileExistsError:
            kept.append(target)
            continue
        written.append(target)
    gitignore = root / ".gitignore"
    have = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    missing = [line for line in _ignored(root) if line not in have]
    if missing:
        text = "\n".join(missing) + "\n"
        if have and not gitignore.read_text(encoding="utf-8").endswith("\n"):
            text = "\n" + text
        with open(gitignore, "a", encoding="utf-8") as fh:
            fh.write(text)
        written.append(".gitignore" + (" (lines added)" if have else ""))
    else:
        kept.append(".gitignore")
    return written, kept


def _ignored(root: Path) -> list[str]:
    """The .gitignore lines for the project's build and state directories (those of a
    hil.toml that was kept, else the defaults)."""
    from hil.settings import load

    settings = load(root, env={})
    lines = []
    for directory in (settings.build_dir, settings.state_dir):
        try:
            lines.append(f"/{directory.resolve().relative_to(root.resolve()).as_posix()}/")
        except ValueError:
            continue  # outside the project: nothing to ignore here
    return [*lines, "__pycache__/"]


def check_kept_project(root: Path) -> list[str]:
    """Warnings when a kept hil.toml does not take in what init wrote (apps/hello)."""
    import fnmatch

    from hil.settings import load

    settings = load(root, env={})
    if settings.project_file is None or not (root / "apps" / "hello").is_dir():
        return []
    if any(fnmatch.fnmatch("apps/hello", pattern) for pattern in settings.apps):
        return []
    return [f"{settings.project_file} keeps apps = {list(settings.apps)}, which does not "
            "include apps/hello: add \"apps/*\" to it, or move apps/hello into one of "
            "those directories"]
