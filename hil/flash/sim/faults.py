"""Fault injection for the simulated probe: parsed from HIL_SIM_FAULTS or a rack entry.

Syntax: comma-separated items, each optionally prefixed ``<sim name>:`` to apply to one
simulated probe only::

    erase@0x08004000        the flash controller fails to erase the sector holding this
                            address and sets its error flags (FlashProgramError, 13)
    program@0x08000400      the controller fails to program the word holding this address
                            (13, reported at the page pyOCD was writing)
    corrupt@0x08000010      that byte silently keeps its old value (read-back VerifyError, 14)
    wrp=4                   the option bytes write-protect sector 4 (the chip's numbering):
                            erasing or programming it fails with WRPERR, as on the chip (13)
    locked                  the flash control register is locked until reset, as after a wrong
                            unlock key: the algorithm's unlock bus-faults and flash init times
                            out (13)
    disconnect_after=5000   the probe vanishes after this many DAP transfers (ProbeLostError, 11)
    device_id=0x413         the chip reports this device id (WrongChipError, 12)
    slow[=SECONDS]          every flash-algorithm call runs this long (default 0.05 s); past
                            pyOCD's flash timeouts this is a timed-out erase/program (13)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hil import limits
from hil.errors import ConfigError
from hil.settings import current

ENV = "HIL_SIM_FAULTS"
DEFAULT_SLOW = 0.05


@dataclass(frozen=True)
class Faults:
    """The faults one simulated probe injects; the default injects none."""

    erase_at: tuple[int, ...] = ()
    program_at: tuple[int, ...] = ()
    corrupt_at: tuple[int, ...] = ()
    disconnect_after: int | None = None
    device_id: int | None = None
    slow: float = 0.0
    wrp: tuple[int, ...] = ()
    locked: bool = False
    source: tuple[str, ...] = field(default=(), compare=False)

    @property
    def any(self) -> bool:
        return bool(self.erase_at or self.program_at or self.corrupt_at or self.slow
                    or self.wrp or self.locked or self.disconnect_after is not None
                    or self.device_id is not None)

    def merged(self, other: Faults) -> Faults:
        return replace(
            self,
            erase_at=self.erase_at + other.erase_at,
            program_at=self.program_at + other.program_at,
            corrupt_at=self.corrupt_at + other.corrupt_at,
            disconnect_after=other.disconnect_after if other.disconnect_after is not None
            else self.disconnect_after,
            device_id=other.device_id if other.device_id is not None else self.device_id,
            slow=other.slow or self.slow,
            wrp=self.wrp + other.wrp,
            locked=self.locked or other.locked,
            source=self.source + other.source,
        )


def _number(text: str, item: str, origin: str, limit: limits.Limit) -> float | int:
    """The number in one fault item, within ``limit``; ConfigError naming the item else."""
    try:
        value = limit.parse(text)
    except ValueError as exc:
        raise ConfigError(f"fault '{item}': {exc}", key=origin,
                          hint="write addresses as 0x08004000, counts as 5000 and delays as "
                          "0.2 (seconds)") from None
    assert value is not None  # no fault limit allows 'forever'
    return value


def parse_faults(spec: str | None, sim_name: str, origin: str = ENV) -> Faults:
    """Parse a fault spec, keeping items without a prefix or prefixed with ``sim_name:``
    (``sim_name`` ``*``: every item, to check a whole spec)."""
    faults = Faults()
    if not spec:
        return faults
    erase: list[int] = []
    program: list[int] = []
    corrupt: list[int] = []
    wrp: list[int] = []
    kwargs: dict[str, object] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if ":" in item:
            prefix, item = item.split(":", 1)
            if prefix.strip() != sim_name and sim_name != "*":
                continue
            item = item.strip()
        if "@" in item:
            kind, _, where = item.partition("@")
            address = _number(where, item, origin, limits.ADDRESS32)
            target = {"erase": erase, "program": program, "corrupt": corrupt}.get(kind)
            if target is None:
                raise ConfigError(f"unknown fault '{kind}@'", key=origin,
                                  hint="use erase@ADDR, program@ADDR or corrupt@ADDR")
            target.append(int(address))
        elif item.startswith("disconnect_after="):
            kwargs["disconnect_after"] = _number(item.split("=", 1)[1], item, origin,
                                                 limits.SIM_COUNT)
        elif item.startswith("device_id="):
            kwargs["device_id"] = _number(item.split("=", 1)[1], item, origin, limits.DEVICE_ID)
        elif item.startswith("wrp="):
            wrp.append(int(_number(item.split("=", 1)[1], item, origin, limits.SIM_SECTOR)))
        elif item == "locked":
            kwargs["locked"] = True
        elif item == "slow" or item.startswith("slow="):
            value = item.split("=", 1)[1] if "=" in item else str(DEFAULT_SLOW)
            kwargs["slow"] = _number(value, item, origin, limits.SIM_SLOW)
        else:
            raise ConfigError(
                f"unknown fault '{item}'", key=origin,
                hint="known: erase@ADDR, program@ADDR, corrupt@ADDR, wrp=SECTOR, locked, "
                "disconnect_after=N, device_id=0xID, slow[=SECONDS]")
    return Faults(tuple(erase), tuple(program), tuple(corrupt), wrp=tuple(wrp),
                  source=(origin,),
                  **kwargs)  # type: ignore[arg-type]


def faults_for(sim_name: str, rack_spec: str | None = None) -> Faults:
    """The faults for one simulated probe: its rack entry's, then HIL_SIM_FAULTS on top."""
    faults = parse_faults(rack_spec, sim_name, "rack: sim_faults")
    return faults.merged(parse_faults(current().sim_faults, sim_name, ENV))
