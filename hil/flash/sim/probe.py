"""A simulated SWD debug probe for pyOCD: unique ids ``hilsim:<name>`` (plugin: hil.flash.simprobe).

pyOCD drives it exactly like a USB probe at the DAP register level: it answers DP register
accesses (DPIDR, CTRL/STAT power-up handshake, SELECT, RDBUFF, ABORT) and one AHB-AP MEM-AP
(CSW, TAR with auto-increment, DRW, BD0-3, CFG, BASE, IDR) in front of a
``SimChip`` (hil/flash/sim/chip.py). The probe is built from its unique id alone plus the
environment and state directory (hil/flash/sim/registry.py says how it learns its board), so
``pyocd server --probe hilsim:f4-a`` serves it to other processes too.

Faults (hil/flash/sim/faults.py) come from the rack entry and ``HIL_SIM_FAULTS``.
"""

from __future__ import annotations

import logging
import struct
import threading

from pyocd.core import exceptions
from pyocd.probe.debug_probe import DebugProbe

from hil.errors import ConfigError, HilError
from hil.flash.probe_id import ProbeId
from hil.flash.sim.chip import BusFault, SectorLayoutError, SimChip
from hil.flash.sim.registry import PREFIX, SimSpec, known_names, resolve
from hil.flash.sim.store import SimFlashStore, release_probe, sim_dir, take_probe

LOG = logging.getLogger(__name__)

DPIDR_VALUE = 0x2BA01477  # ARM SW-DP v1 (Cortex-M3/M4)
AHB_AP_IDR = 0x24770011  # AHB-AP of a Cortex-M4
CSYSPWRUPREQ, CSYSPWRUPACK = 1 << 30, 1 << 31
CDBGPWRUPREQ, CDBGPWRUPACK = 1 << 28, 1 << 29
STICKYERR = 1 << 5
CSW_DEVICEEN = 1 << 6
AP_CSW, AP_TAR, AP_DRW, AP_CFG, AP_BASE, AP_IDR = 0x00, 0x04, 0x0C, 0xF4, 0xF8, 0xFC


class SectorLayoutFault(SectorLayoutError, exceptions.TargetError):
    """SectorLayoutError that is also a pyOCD error: ``pyocd server`` answers the request
    with its message (and goes on serving) instead of dropping the client."""


# One chip per simulated probe name and process: pyOCD opens and closes probes freely while
# enumerating, and the chip (core state, RAM) must survive that like real hardware does.
_CHIPS: dict[tuple[str, str], SimChip] = {}
_CHIPS_LOCK = threading.Lock()


def _chip_for(spec: SimSpec) -> SimChip:
    with _CHIPS_LOCK:
        key = (str(sim_dir()), spec.name)  # tests switch state directories in one process
        chip = _CHIPS.get(key)
        meta = SimFlashStore.read_metadata(spec.name)
        stale = chip is not None and meta is not None and \
            int(meta.get("generation", 0)) != chip.store.generation  # another process flashed
        if chip is None or stale or chip.board != spec.board or chip.faults != spec.faults:
            store = SimFlashStore.for_board(spec.name, spec.board)
            chip = SimChip(spec.board, store, spec.faults, SectorLayoutFault)
            _CHIPS[key] = chip
        return chip


def forget_chips() -> None:
    """Drop the in-process chips (tests switching state directories call this)."""
    with _CHIPS_LOCK:
        for chip in _CHIPS.values():
            chip.persist()
        _CHIPS.clear()


def _take(name: str, unique_id: str):
    from hil.errors import ProbeLostError

    try:
        return take_probe(name)
    except ProbeLostError as exc:  # pyOCD's own error type, mapped back by the flasher
        raise exceptions.ProbeError(f"{unique_id} is busy: {exc.message}") from None


class SimProbe(DebugProbe):
    """A simulated SWD probe wired to one simulated chip."""

    @classmethod
    def get_all_connected_probes(cls, unique_id=None, is_explicit=False):
        probes = []
        for name in known_names():
            try:
                spec = resolve(name)
            # A bad rack or board file must not break pyOCD's enumeration of other probes.
            except Exception as exc:  # noqa: BLE001
                LOG.warning("simulated probe %s:%s unusable: %s", PREFIX, name, exc)
                continue
            if spec is not None:
                probes.append(cls(spec))
        return probes

    @classmethod
    def get_probe_with_id(cls, unique_id, is_explicit=False):
        # pyOCD hands over the name alone ("f4-a") or, called directly, "hilsim:f4-a"
        try:
            name = ProbeId.parse(unique_id).address
        except ConfigError as exc:
            LOG.warning("simulated probe %s unusable: %s", unique_id, exc)
            return None
        if not is_explicit and name not in known_names():
            return None
        try:
            spec = resolve(name)
        except Exception as exc:  # noqa: BLE001
            LOG.warning("simulated probe %s:%s unusable: %s", PREFIX, name, exc)
            return None
        if spec is None:
            LOG.info("simulated probe %s:%s: no rack entry, state file or board hint names "
                     "its board", PREFIX, name)
            return None
        return cls(spec)

    def __init__(self, spec: SimSpec) -> None:
        super().__init__()
        self.spec = spec
        self._chip: SimChip | None = None
        self._is_open = False
        self._protocol = None
        self._ctrl = 0
        self._select = 0
        self._rdbuff = 0
        self._csw = 0x23000002
        self._tar = 0
        self._transfers = 0
        self._lost = False
        self._reset_asserted = False
        self._lock_file = None

    # ------------------------------------------------------------------ description
    @property
    def vendor_name(self) -> str:
        return "hil"

    @property
    def product_name(self) -> str:
        return f"simulated SWD probe ({self.spec.board.name})"

    @property
    def unique_id(self) -> str:
        return f"{PREFIX}:{self.spec.name}"

    @property
    def supported_wire_protocols(self):
        return [DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD]

    @property
    def wire_protocol(self):
        return self._protocol

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def capabilities(self):
        return set()

    @property
    def associated_board_info(self):
        from pyocd.board.board_ids import BoardInfo

        from hil.flash import target

        name = None
        try:
            name = target.register(self.spec.board)[0]
        except HilError:  # no flash algorithm for the family: no target to offer
            LOG.debug("no pyOCD target for board %s", self.spec.board.name)
        return BoardInfo(name=self.spec.board.name, target=name, vendor="hil")

    @property
    def chip(self) -> SimChip:
        if self._chip is None:
            self._chip = _chip_for(self.spec)
        return self._chip

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Take the probe (like a USB probe, one process at a time) and load its flash."""
        self._check()
        if self._lock_file is None:
            self._lock_file = _take(self.spec.name, self.unique_id)
        try:
            self._chip = None
            self.chip  # noqa: B018 - (re)load the persisted flash now
        except BaseException:
            self._release()
            raise
        self._is_open = True

    def close(self) -> None:
        if self._chip is not None:
            self._chip.persist()
        self._release()
        self._is_open = False

    def _release(self) -> None:
        if self._lock_file is not None:
            release_probe(self._lock_file)
            self._lock_file = None

    def connect(self, protocol=None) -> None:
        self._check()
        self._powered()
        self._protocol = DebugProbe.Protocol.SWD

    def disconnect(self) -> None:
        self._protocol = None

    def set_clock(self, frequency) -> None:
        self._check()

    def swj_sequence(self, length, bits) -> None:
        pass

    def reset(self) -> None:
        self._check()
        self._powered()
        self.chip.system_reset()

    def assert_reset(self, asserted) -> None:
        self._check()
        self._powered()
        was = self._reset_asserted
        self._reset_asserted = bool(asserted)
        self.chip.in_reset = self._reset_asserted
        if was and not asserted:
            self.chip.system_reset()
        else:
            self.chip.publish_state()  # rack host hook (hil/flash/sim/runstate.py)

    def is_reset_asserted(self) -> bool:
        return self._reset_asserted

    def flush(self) -> None:
        self._check()

    # ------------------------------------------------------------------ faults
    def _powered(self) -> None:
        """An unpowered target (``hil rack power ID off``) answers no SWD transfer; the probe
        itself stays enumerated, as a USB probe does."""
        from hil.flash.sim.power import read_power_state

        if not read_power_state(sim_dir(), self.spec.name).on:
            entry = self.spec.rack_entry or self.spec.name
            raise exceptions.TransferError(
                f"{self.unique_id}: no answer from the target: virtual board {entry} is "
                f"powered off (switch it on: hil rack power {entry} on)")

    def _check(self, count: int = 0) -> None:
        if self._lost:
            raise exceptions.ProbeDisconnected(f"{self.unique_id}: probe disconnected")
        limit = self.spec.faults.disconnect_after
        self._transfers += count
        if limit is not None and self._transfers > limit:
            self._lost = True
            if self._chip is not None:
                self._chip.persist()  # what was flashed stays flashed
            raise exceptions.ProbeDisconnected(
                f"{self.unique_id}: probe disconnected after {limit} transfers (injected fault)")

    def _fault(self, exc: BusFault):
        self._ctrl |= STICKYERR
        return exceptions.TransferFaultError(str(exc), fault_address=exc.address)

    # ------------------------------------------------------------------ DP
    def read_dp(self, addr, now=True):
        self._check(1)
        addr &= 0xC
        if addr == 0x0:
            self._powered()  # the first read of every connect
            value = DPIDR_VALUE
        elif addr == 0x4:
            value = self._ctrl
            if value & CSYSPWRUPREQ:
                value |= CSYSPWRUPACK
            if value & CDBGPWRUPREQ:
                value |= CDBGPWRUPACK
        elif addr == 0xC:
            value = self._rdbuff
        else:
            value = self._select
        return value if now else (lambda: value)

    def write_dp(self, addr, data) -> None:
        self._check(1)
        addr &= 0xC
        if addr == 0x0:  # ABORT: clear sticky flags
            if data & 0x1E:
                self._ctrl &= ~(STICKYERR | 0x80 | 0x10 | 0x2)
        elif addr == 0x4:
            self._ctrl = (self._ctrl & (STICKYERR | 0x80 | 0x10 | 0x2)) | (data & 0x5FFFFF0D)
        elif addr == 0x8:
            self._select = data & 0xFFFFFFFF

    # ------------------------------------------------------------------ AP
    def _ap_reg(self, addr: int) -> tuple[int, int]:
        return (self._select >> 24) & 0xFF, (self._select & 0xF0) | (addr & 0xC)

    def _size(self) -> int:
        return {0: 1, 1: 2}.get(self._csw & 7, 4)

    def _advance(self, size: int) -> None:
        if (self._csw >> 4) & 3 == 1:
            # Real AHB-APs carry past the 1 KiB boundary pyOCD splits transfers at, and
            # pyOCD's TAR cache relies on it.
            self._tar = (self._tar + size) & 0xFFFFFFFF

    def _read_ap_reg(self, addr: int) -> int:
        apsel, reg = self._ap_reg(addr)
        if apsel != 0:
            return 0
        if reg == AP_CSW:
            return self._csw | CSW_DEVICEEN
        if reg == AP_TAR:
            return self._tar
        if reg == AP_DRW:
            size = self._size()
            try:
                value = self.chip.read_sized(self._tar, size)
            except BusFault as exc:
                raise self._fault(exc) from None
            self._advance(size)
            return value
        if 0x10 <= reg <= 0x1C:
            try:
                return self.chip.read32((self._tar & ~0xF) | (reg & 0xC))
            except BusFault as exc:
                raise self._fault(exc) from None
        if reg == AP_CFG:
            return 0
        if reg == AP_BASE:
            return 0xE00FF003
        if reg == AP_IDR:
            return AHB_AP_IDR
        return 0

    def read_ap(self, addr, now=True):
        self._check(1)
        value = self._read_ap_reg(addr)
        self._rdbuff = value
        return value if now else (lambda: value)

    def write_ap(self, addr, data) -> None:
        self._check(1)
        apsel, reg = self._ap_reg(addr)
        if apsel != 0:
            return
        data &= 0xFFFFFFFF
        if reg == AP_CSW:
            size = data & 7
            self._csw = (data & ~7 & ~CSW_DEVICEEN) | (min(size, 2))
        elif reg == AP_TAR:
            self._tar = data
        elif reg == AP_DRW:
            size = self._size()
            try:
                self.chip.write_sized(self._tar, data, size)
            except BusFault as exc:
                raise self._fault(exc) from None
            self._advance(size)
        elif 0x10 <= reg <= 0x1C:
            try:
                self.chip.write32((self._tar & ~0xF) | (reg & 0xC), data)
            except BusFault as exc:
                raise self._fault(exc) from None

    def _block_ok(self, addr: int) -> bool:
        apsel, reg = self._ap_reg(addr)
        return apsel == 0 and reg == AP_DRW and self._csw & 7 == 2 and (self._csw >> 4) & 3 == 1

    def read_ap_multiple(self, addr, count=1, now=True):
        self._check(count)
        if not self._block_ok(addr):
            self._transfers -= count
            values = [self.read_ap(addr) for _ in range(count)]
        else:
            values = []
            remaining = count
            while remaining:
                n = min(remaining, (0x400 - (self._tar & 0x3FF)) // 4)
                try:
                    blob = self.chip.read_block(self._tar, 4 * n)
                except BusFault as exc:
                    raise self._fault(exc) from None
                values.extend(struct.unpack(f"<{n}I", blob))
                self._advance(4 * n)
                remaining -= n
            if values:
                self._rdbuff = values[-1]
        return values if now else (lambda: values)

    def write_ap_multiple(self, addr, values) -> None:
        self._check(len(values))
        if not self._block_ok(addr):
            self._transfers -= len(values)
            for value in values:
                self.write_ap(addr, value)
            return
        pos = 0
        while pos < len(values):
            n = min(len(values) - pos, (0x400 - (self._tar & 0x3FF)) // 4)
            blob = struct.pack(f"<{n}I", *(v & 0xFFFFFFFF for v in values[pos:pos + n]))
            try:
                self.chip.write_block(self._tar, blob)
            except BusFault as exc:
                raise self._fault(exc) from None
            self._advance(4 * n)
            pos += n


# Register the real class: when this module is what first imports pyOCD, pyOCD loads the
# hilsim plugin while this module is half-initialised and gets a placeholder (simprobe.py).
from pyocd.probe.aggregator import PROBE_CLASSES  # noqa: E402

PROBE_CLASSES[PREFIX] = SimProbe
