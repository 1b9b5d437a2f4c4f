"""The rack: the inventory of boards (``rack.yaml``) and the leases that share them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hil.errors import ConfigError
from hil.paths import state_dir
from hil.rack.inventory import Rack, RackEntry, load_rack
from hil.rack.leases import Lease, LeaseStore, hold, open_store
from hil.settings import current

__all__ = ["Rack", "RackEntry", "lease_board", "lease_store", "load_rack", "matching_entries"]


def lease_store(rack: Rack) -> LeaseStore:
    """The rack's lease database: HIL_LEASE_DB, else the rack file's ``leases.database``,
    else SQLite in the state directory."""
    url = current().lease_db or rack.leases_url
    return open_store(url or state_dir() / "leases.sqlite")


def matching_entries(rack: Rack, board: str, tags: Sequence[str] = ()) -> list[RackEntry]:
    """Rack entries for ``board`` (a name or alias) carrying every tag in ``tags``."""
    from hil.boards import load_board

    name = load_board(board).name
    found = [e for e in rack.entries if e.board == name and set(tags) <= set(e.tags)]
    if not found:
        where = rack.path or "the rack"
        with_tags = f" with tags {', '.join(tags)}" if tags else ""
        raise ConfigError(f"no rack entry for board {name}{with_tags} in {where}",
                          hint="add one to rack.yaml (see 'hil probes' for connected probes) "
                          "or pick another --board / --tag")
    return found


def lease_board(rack: Rack, board: str, *, tags: Sequence[str] = (), wait: float | None = 0.0,
                ttl: float = 60.0, purpose: str | None = None,
                on_wait: Callable[[int, int], None] | None = None,
                store: LeaseStore | None = None) -> tuple[Lease, RackEntry]:
    """Lease a free healthy rack entry for ``board``; the lease renews itself until released."""
    entries = matching_entries(rack, board, tags)
    lease = hold(store or lease_store(rack), [e.id for e in entries], ttl=ttl, wait=wait,
                 purpose=purpose, on_wait=on_wait)
    entry = next(e for e in entries if e.id == lease.rack_id)
    return lease, entry
