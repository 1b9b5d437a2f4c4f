"""hil rack power ID on|off|cycle: switch one rack board's power by hand (hil.power drivers)."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime

from hil.errors import ConfigError, HilError, UsageError
from hil.power import ACTIONS, driver_for
from hil.rack.inventory import Rack
from hil.rack.leases import Holder, LeaseInfo, LeaseStore
from hil.settings import current

log = logging.getLogger(__name__)

HELP = "switch a board's power on, off, or cycle it (its rack entry's power: driver)"
DESCRIPTION = """\
Switch the power of one rack board through the driver in its rack entry's power: key
(uhubctl, pdudaemon, command, virtual, or a site's own). A board leased by someone else is
refused unless --force: switching it would break their run. Your own lease (HIL_LEASE) is
fine. Each switch is kept in the board's health history (hil rack status).

examples:
  hil rack power f4-a cycle            # off, a pause, on: f4-a: power cycled (uhubctl ...)
  hil rack power f4-a off              # keep a board dark: out of service until switched on
  hil rack power f4-a cycle --force    # even while another job holds it

exit status: 0 switched, 2 no such entry / no power: key / leased by another holder,
3 the switch failed (hub, PDU, relay command).
"""
EXAMPLE = """\
add a power: key to the entry, e.g.
    power:
      driver: uhubctl      # or pdudaemon, command, virtual
      location: "1-1.4"    # the hub, as 'uhubctl' lists it
      port: 2
(README: "Power control" lists each driver's keys)"""
DONE = {"on": "power on", "off": "power off", "cycle": "power cycled"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("power", help=HELP, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rack_id", metavar="ID", help="rack entry id (hil rack status lists them)")
    p.add_argument("power_action", metavar="ACTION", choices=ACTIONS,
                   help="on, off or cycle")
    p.add_argument("--force", action="store_true",
                   help="switch even while another holder leases the board")


def _who(lease: LeaseInfo) -> str:
    h = lease.holder
    parts = [f"{h.user}@{h.host}"]
    if h.pid:
        parts.append(f"pid {h.pid}")
    if h.ci_job:
        parts.append(f"CI job {h.ci_job}")
    if h.purpose:
        parts.append(f"for {h.purpose}")
    try:
        since = datetime.fromtimestamp(lease.acquired_at).strftime("%H:%M:%S")
        until = datetime.fromtimestamp(lease.expires_at).strftime("%H:%M:%S")
        parts.append(f"since {since}, until {until}")
    except (OverflowError, ValueError, OSError, TypeError):
        pass
    return ", ".join(parts)


def run(rack: Rack, store: LeaseStore, rack_id: str, action: str, *, force: bool) -> int:
    """Switch ``rack_id``'s power; PowerError (exit 3) when the switch fails."""
    entry = rack.entry(rack_id)
    if entry is None:
        raise UsageError(f"no rack entry '{rack_id}' in {rack.path or 'the rack'}",
                         hint="'hil rack status' lists the entries")
    if entry.power is None:
        index = rack.entries.index(entry)
        raise ConfigError(f"rack entry '{rack_id}' has no power: key, so hil cannot switch "
                          "its power", path=rack.path, key=f"boards[{index}]", hint=EXAMPLE)
    driver = driver_for(entry)
    assert driver is not None
    lease = store.leases().get(rack_id)
    forced = ""
    if lease is not None and lease.token != current().lease_token:
        if not force:
            raise UsageError(f"{rack_id} is leased by {_who(lease)}: switching its power "
                             "would break that run",
                             hint=f"wait until it is released ('hil rack status'), or pass "
                             f"--force: hil rack power {rack_id} {action} --force")
        forced = f" (--force over the lease of {lease.holder.user}@{lease.holder.host})"
        print(f"hil: warning: {rack_id} is leased by {_who(lease)}; switching anyway "
              "(--force)", file=sys.stderr)
    what = driver.describe(action)
    print(f"{rack_id}: switching power {action} ({what})...", file=sys.stderr, flush=True)
    me = Holder.current()
    detail = f"by hand: {me.user}@{me.host}{forced}"
    try:
        getattr(driver, action)()
    except HilError as exc:
        store.record_health_event(rack_id, "power", ok=False, step=action,
                                  detail=f"{detail}: {exc.message}")
        raise
    except BaseException:
        if action in ("off", "cycle"):
            print(f"hil: {rack_id} may be left without power: 'hil rack power {rack_id} on' "
                  "switches it on", file=sys.stderr)
        raise
    store.record_health_event(rack_id, "power", ok=True, step=action, detail=detail)
    log.info("%s: %s (%s) %s", rack_id, DONE[action], what, detail)
    print(f"{rack_id}: {DONE[action]} ({what})")
    _out_of_service_while_off(store, rack_id, action, me)
    return 0


def _out_of_service_while_off(store, rack_id: str, action: str, me: Holder) -> None:
    from hil.rack.leases import OFF_BY_HAND

    """A board a person switched off stays out of service (no job leases it and powers it
    on again) until it is switched on; switching it on returns it."""
    if action == "off":
        store.mark_unhealthy(rack_id, f"{OFF_BY_HAND} by {me.user}@{me.host}; switch it on "
                             f"with 'hil rack power {rack_id} on'")
        print(f"{rack_id}: out of service until switched on", file=sys.stderr)
        return
    health = store.health().get(rack_id)
    reason = health.unhealthy_reason if health else None
    if isinstance(reason, str) and reason.startswith(OFF_BY_HAND):
        store.reset(rack_id)
        store.record_health_event(rack_id, "returned", ok=True,
                                  detail=f"switched {action} by hand by {me.user}@{me.host}")
        print(f"{rack_id}: back in service", file=sys.stderr)
