"""hil config: the resolved settings of this project and where each value came from."""

from __future__ import annotations

import argparse
import json

from hil.settings import current
from hil.ui import table

NAME = "config"
HELP = "show the project's resolved settings and where each value came from"
DESCRIPTION = """\
Print the settings hil uses here: the project root and file (the first hil.toml, or
pyproject.toml with [tool.hil], in the current directory or above), and every setting with
its value and source. Sources, lowest first: default < project file < environment
(HIL_*) < command-line option (hil --state-dir, --build-root, --cache-dir, -C).

examples:
  hil config
  HIL_STATE_DIR=/tmp/state hil config --json
  hil --build-root out config
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="one JSON object: {setting: {value, source}}")


def run(args: argparse.Namespace) -> int:
    rows = current().describe()
    if args.json:
        print(json.dumps({name: {"value": value, "source": source}
                          for name, value, source in rows}, indent=2))
        return 0
    table(["setting", "value", "source"], [list(r) for r in rows])
    return 0
