"""Probe ids: the one place that reads a probe's unique id text (``stlink:SERIAL``, ``SERIAL``,
``hilsim:NAME``, ``remote:HOST:PORT``...) and says what kind of probe it names.

Everything else asks a ``ProbeId`` (``simulated``, ``remote``, ``usb``, ``address``) instead
of looking at the text. Case rules, decided here once: the kind before the first ``:`` is
read in any case (as pyOCD does: ``HILSIM:f4-a`` is ``hilsim:f4-a``); two ids name the same
probe when their kinds match and their addresses match ignoring case; ``str()`` gives the
text as written, for messages, reports and the audit trail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hil.errors import ConfigError

#: Simulated probes (hil's pyOCD plugin) and probes served by ``pyocd server``.
SIMULATED, REMOTE = "hilsim", "remote"
#: Probe kinds on this machine's USB: pyOCD's probe plugins, and ``openocd`` for the probe
#: OpenOCD finds itself (boards flashed with OpenOCD).
USB_KINDS = ("stlink", "cmsisdap", "jlink", "picoprobe", "pemicro", "openocd")
KINDS = (*USB_KINDS, SIMULATED, REMOTE)
#: A bare id without a kind: a serial number any pyOCD plugin may own.
SERIAL = "serial"
_SIM_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: A serial number: printable, no whitespace, quotes or characters a shell or Tcl reads
#: (OpenOCD gets J-Link serials inside a command, so those stay letters, digits, ._-).
_SERIAL_RE = re.compile(r"[^\s\x00-\x1f\x7f;{}\[\]\"'$\\`]+")
_JLINK_SERIAL_RE = re.compile(r"[A-Za-z0-9._-]+")
_FORMS = "stlink:SERIAL, SERIAL, hilsim:NAME or remote:HOST:PORT"


@dataclass(frozen=True, eq=False)
class ProbeId:
    """One probe's unique id, parsed: ``kind`` (one of KINDS, or SERIAL for a bare serial),
    ``address`` (serial number, simulated probe name, or HOST:PORT; empty for "any probe of
    this kind") and ``text`` as written. Build it with ``ProbeId.parse``."""

    kind: str
    address: str
    text: str = field(default="")

    @classmethod
    def parse(cls, text: str) -> ProbeId:
        """Read ``text``; raises ConfigError naming it when it is not a probe id."""
        if not isinstance(text, str) or not text:
            raise ConfigError(f"{text!r} is not a probe id", hint=f"write {_FORMS}")
        head, colon, address = text.partition(":")
        kind = head.lower()
        if not colon:
            if kind in USB_KINDS:
                return cls(kind, "", text)  # any probe of that kind (OpenOCD picks one)
            if kind not in (SIMULATED, REMOTE):  # those name nothing here: refused below
                kind, address = SERIAL, text
        elif kind not in KINDS:
            raise ConfigError(f"'{text}' is not a probe id: unknown probe kind '{head}'",
                              hint=f"the kinds are {', '.join(KINDS)}; write {_FORMS}")
        if kind == SIMULATED:
            check_sim_name(address)
        elif kind == REMOTE:
            _check_remote(text, address)
        elif not address:
            raise ConfigError(f"'{text}' names no serial number",
                              hint=f"write {_FORMS} ('hil probes' lists the probes' ids)")
        elif kind in ("jlink", "openocd") and not _JLINK_SERIAL_RE.fullmatch(address):
            raise ConfigError(f"'{text}' is not a probe id: '{address}' is not a J-Link serial "
                              "number (letters, digits, '.', '_' and '-')",
                              hint="use jlink:SERIAL (the number printed on the probe)")
        elif not _SERIAL_RE.fullmatch(address):
            raise ConfigError(f"'{text}' is not a probe id: '{address}' is not a serial number "
                              "(no spaces, quotes or ;{}[]$\\`)",
                              hint=f"write {_FORMS} ('hil probes' lists the probes' ids)")
        return cls(kind, address, text)

    @classmethod
    def of(cls, value: ProbeId | str) -> ProbeId:
        """``value`` itself, or parsed when it is text."""
        return value if isinstance(value, ProbeId) else cls.parse(value)

    @classmethod
    def simulated_probe(cls, name: str) -> ProbeId:
        """The id of simulated probe ``name`` (``hilsim:<name>``)."""
        return cls.parse(f"{SIMULATED}:{name}")

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", self.pyocd_id)

    # ------------------------------------------------------------------ what it names
    @property
    def simulated(self) -> bool:
        """A simulated SWD probe of this machine's state directory."""
        return self.kind == SIMULATED

    @property
    def remote(self) -> bool:
        """A probe served by ``pyocd server`` on another host (see ``host``, ``port``)."""
        return self.kind == REMOTE

    @property
    def usb(self) -> bool:
        """A probe on this machine's USB: present only when listing probes finds it."""
        return not (self.simulated or self.remote)

    @property
    def any(self) -> bool:
        """No serial named: whichever probe of this kind the tool finds."""
        return not self.address

    @property
    def host(self) -> str | None:
        return self.address.rpartition(":")[0] if self.remote else None

    @property
    def port(self) -> int | None:
        from hil.limits import PORT

        return int(PORT.parse(self.address.rpartition(":")[2]) or 0) if self.remote else None

    @property
    def pyocd_id(self) -> str:
        """The unique id to hand pyOCD (kind in lower case, as its probe plugins are named)."""
        if self.kind == SERIAL:
            return self.address
        return f"{self.kind}:{self.address}" if self.address else self.kind

    def short_name(self, length: int = 4) -> str:
        """The last ``length`` letters and digits of the serial (lower case), for a name a
        person can tell apart, e.g. a rack entry id ``nucleo-f4-3f2a``; empty when none."""
        return re.sub(r"[^a-z0-9]", "", self.address.lower())[-length:] if length > 0 else ""

    # ------------------------------------------------------------------ comparing
    @property
    def key(self) -> tuple[str, str]:
        """What makes two ids the same probe (kind, address ignoring case)."""
        return self.kind, self.address.lower()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProbeId) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text

    def matches(self, other: ProbeId | str) -> bool:
        """Whether ``other`` (an id pyOCD reports, or another ProbeId) names this probe: the
        same id, or a bare serial equal to the other's address (pyOCD lists USB probes by
        serial alone: ``stlink:066DFF`` is the probe listed as ``066DFF``)."""
        if isinstance(other, str):
            try:
                other = ProbeId.parse(other)
            except ConfigError:
                return False
        if self.key == other.key:
            return True
        mine, theirs = self.address.lower(), other.address.lower()
        return bool(mine) and mine == theirs and SERIAL in (self.kind, other.kind)


def check_sim_name(name: str) -> str:
    """A simulated probe's name names files: refuse anything but a plain file name."""
    if not _SIM_NAME_RE.fullmatch(name):
        raise ConfigError(f"'{name}' is not a valid simulated probe name (it names a file: "
                          "a letter or digit, then letters, digits, '.', '_' and '-')",
                          hint="e.g. hilsim:f4-a")
    return name


def _check_remote(text: str, address: str) -> None:
    from hil.limits import PORT

    hint = "write remote:HOST:PORT, e.g. remote:rack-host:5555"
    host, _, port = address.rpartition(":")
    try:
        PORT.parse(port)
    except ValueError as exc:
        raise ConfigError(f"'{text}': {exc}", hint=hint) from None
    if not host:
        raise ConfigError(f"'{text}' names no host", hint=hint)
