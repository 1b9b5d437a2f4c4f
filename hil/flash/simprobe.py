"""pyOCD's entry point for the simulated probe (``pyocd.probe`` group: ``hilsim``).

The probe itself is ``hil.flash.sim.probe.SimProbe``. This module imports nothing from pyOCD
at import time: pyOCD loads its probe plugins while it is being imported, so a module that is
both the plugin and the first importer of pyOCD would be half-initialised when pyOCD asks it
for the plugin. ``SimProbePlugin`` is therefore built on first access (PEP 562).
"""

from __future__ import annotations

import functools
import sys

from hil.flash.probe_id import SIMULATED as PLUGIN_NAME


@functools.cache
def _plugin_class() -> type:
    from pyocd.core.plugin import Plugin

    class SimProbePlugin(Plugin):
        """Vends hil.flash.sim.probe.SimProbe for unique ids ``hilsim:<name>``."""

        def load(self):
            probe = sys.modules.get("hil.flash.sim.probe")
            if probe is not None and not hasattr(probe, "SimProbe"):
                # hil.flash.sim.probe is importing pyOCD right now; it registers SimProbe in
                # pyOCD's probe classes itself once it is defined.
                from pyocd.probe.debug_probe import DebugProbe

                return DebugProbe
            from hil.flash.sim.probe import SimProbe

            return SimProbe

        @property
        def name(self):
            return PLUGIN_NAME

        @property
        def description(self):
            return "hil simulated SWD probe (flash persisted under hil's state directory)"

    return SimProbePlugin


def __getattr__(name: str):
    if name == "SimProbePlugin":
        return _plugin_class()
    if name == "SimProbe":
        from hil.flash.sim.probe import SimProbe

        return SimProbe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
