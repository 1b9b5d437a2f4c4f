"""Harnesses: how a test run's console output becomes test cases.

Line harnesses (``unity``, ``ztest``, ``console``, and any a team adds) are found through the
``hil.harness`` entry-point group: each entry point names a factory taking a
``HarnessConfig`` and returning a ``Harness`` (see ``hil.harnesses.base``). ``pytest`` is
apart: it runs a suite of its own, in a subprocess (``hil.testrun``).

A team adds one in its own distribution's metadata, e.g. in its pyproject.toml::

    [project.entry-points."hil.harness"]
    mytests = "mypkg.harness:MyHarness"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.errors import UsageError

if TYPE_CHECKING:
    from importlib import metadata

GROUP = "hil.harness"
PYTEST = "pytest"
# hil's own entry points (pyproject.toml): used only when the installed metadata predates
# them (an editable install not reinstalled), so the built-ins never vanish.
BUILTIN = {
    "unity": "hil.harnesses.unity:UnityHarness",
    "ztest": "hil.harnesses.ztest:ZtestHarness",
    "console": "hil.harnesses.console:ConsoleHarness",
}


def entry_points() -> dict[str, metadata.EntryPoint]:
    """The line harnesses by name: the ``hil.harness`` group, first one of a name wins."""
    from importlib import metadata  # scanning the installed distributions: only when asked

    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    for name, value in BUILTIN.items():
        found.setdefault(name, metadata.EntryPoint(name, value, GROUP))
    return found


def known(name: str) -> bool:
    """Whether ``--harness NAME`` names a harness (a built-in one without scanning the
    installed distributions' entry points)."""
    return name == PYTEST or name in BUILTIN or name in entry_points()


def names() -> tuple[str, ...]:
    """Every harness name ``--harness`` accepts: pytest, then the line harnesses sorted."""
    return (PYTEST, *sorted(n for n in entry_points() if n != PYTEST))


def factory(name: str):
    """The factory registered as ``name``; UsageError naming the known ones if none is."""
    eps = entry_points()
    if name not in eps or name == PYTEST:
        raise UsageError(f"unknown harness '{name}'",
                         hint=f"known harnesses: {', '.join(names())} (a harness is added "
                         f"through the '{GROUP}' entry-point group)")
    ep = eps[name]
    try:
        return ep.load()
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"harness '{name}' ({ep.value}) cannot be loaded: {exc}",
                         hint="check the entry point of the distribution that registers it"
                         ) from exc
