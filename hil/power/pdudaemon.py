"""The ``pdudaemon`` power driver: an outlet of a PDU that a pdudaemon server drives.

    power:
      driver: pdudaemon
      server: "pdu-host:16421"   # host[:port] of pdudaemon's HTTP listener (port 16421 default)
      pdu: lab-pdu-1             # the PDU's name in pdudaemon's config ("pdus" section)
      port: 3                    # the outlet
      delay: 3                   # optional: seconds off in a cycle (pdudaemon's default: 5)
      timeout: 60                # optional: seconds to wait for pdudaemon's answer

Uses pdudaemon's HTTP API: ``GET /power/control/on|off|reboot?hostname=PDU&port=N`` (reboot
with ``&delay=S``). pdudaemon answers once it has run the request (200 "OK"), 500 when it
does not know the PDU. It answers OK even when its own PDU driver failed after its retries:
check pdudaemon's log when an outlet does not switch.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from hil.errors import PowerError
from hil.power import PowerDriver, PowerSpec
from hil.power._common import seconds
from hil.schema import Reader

if TYPE_CHECKING:
    from hil.rack.inventory import RackEntry

DEFAULT_PORT = 16421
#: pdudaemon retries a failing PDU (5 times, 5 s apart) before it answers: wait for that.
DEFAULT_TIMEOUT_S = 60.0
_REQUESTS = {"on": "on", "off": "off", "cycle": "reboot"}


def _server(r: Reader) -> tuple[str, int]:
    """``server`` as (host, port): host, host:port, [v6]:port, or an http:// URL."""
    text = r.str("server")
    hint = "write host or host:port, e.g. \"pdu-host:16421\""
    if "://" in text and not text.startswith("http://"):
        raise r.error("server", f"'{text}': pdudaemon speaks plain http", hint=hint)
    try:
        parts = urllib.parse.urlsplit(text if text.startswith("http://") else "//" + text)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise r.error("server", f"'{text}' is not host[:port]: {exc}", hint=hint) from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise r.error("server", f"'{text}' is not host[:port]", hint=hint)
    return parts.hostname, port


@dataclass(frozen=True)
class PdudaemonDriver(PowerDriver):
    """Asks a pdudaemon server to switch one PDU outlet."""

    name = "pdudaemon"

    rack_id: str
    host: str
    server_port: int
    pdu: str
    port: int
    delay: int | None = None
    timeout: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_options(cls, spec: PowerSpec, entry: RackEntry) -> Self:
        r = spec.reader()
        host, server_port = _server(r)
        pdu = r.str("pdu")
        if not pdu.strip():
            raise r.error("pdu", "is empty", hint="the PDU's name in pdudaemon's config")
        port = r.int("port", minimum=0, maximum=65535, hint="the PDU's outlet number")
        delay = r.int("delay", None, minimum=0, maximum=600,
                      hint="whole seconds the outlet stays off in a cycle")
        timeout = seconds(r, "timeout", DEFAULT_TIMEOUT_S + (delay or 5), minimum=0.1)
        r.done()
        return cls(entry.id, host, server_port, pdu, port, delay, timeout)

    @property
    def server(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.server_port}"

    def url(self, action: str) -> str:
        """The pdudaemon request of ``action`` (on, off or cycle)."""
        query = {"hostname": self.pdu, "port": str(self.port)}
        if action == "cycle" and self.delay is not None:
            query["delay"] = str(self.delay)
        return (f"http://{self.server}/power/control/{_REQUESTS[action]}?"
                + urllib.parse.urlencode(query))

    def on(self) -> None:
        self._request("on")

    def off(self) -> None:
        self._request("off")

    def cycle(self) -> None:
        self._request("cycle")

    def describe(self, action: str | None = None) -> str:
        return f"pdudaemon {self.server} pdu {self.pdu} port {self.port}"

    def _request(self, action: str) -> None:
        what = (f"{self.rack_id}: power {action} (pdudaemon {self.server}, pdu {self.pdu} "
                f"port {self.port})")
        # No proxy: the request goes to the server named in the rack file, nowhere else.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url(action), timeout=self.timeout) as response:
                response.read(4096)
        except urllib.error.HTTPError as exc:
            body = exc.read(500).decode("utf-8", "replace").strip()
            raise PowerError(f"{what}: pdudaemon answered HTTP {exc.code} "
                             f"{body or exc.reason}",
                             hint=f"is '{self.pdu}' a PDU in pdudaemon's config (its 'pdus' "
                             "section) and the port one of its outlets? pdudaemon's log says "
                             "why") from None
        except urllib.error.URLError as exc:
            raise PowerError(f"{what}: cannot reach pdudaemon: {exc.reason}",
                             hint="is pdudaemon running with the http listener on that host "
                             "and port ('listener': 'http' in its config)?") from None
        except (TimeoutError, OSError) as exc:
            raise PowerError(f"{what}: no answer from pdudaemon within {self.timeout:g} s "
                             f"({exc})", hint="is pdudaemon stuck on an unreachable PDU? its "
                             "log says; raise the entry's 'timeout' key if it is just slow"
                             ) from None
