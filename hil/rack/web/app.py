"""The rack page's Starlette app: the page, its JSON endpoints and the run transcripts.

Endpoints (all GET; with a token every one needs it, see ``TokenGuard``):

- ``/``: the page (static HTML, CSS and JS shipped in the wheel; it polls ``/api/rack`` and
  ``/api/runs`` every second and builds the DOM with ``textContent``);
- ``/api/rack``: every board (health, last check, recoveries, holder) and the queue per
  board type (``hil.rack.snapshot.rack_snapshot``);
- ``/api/runs``: the last test runs with verdicts and transcript links;
- ``/api/boards/{id}``: one board, its health history and its runs (404 for an unknown id);
- ``/runs/{seq}/{path}``: a transcript a run lists, as text;
- ``/healthz``: ``{"ok": true}`` while the server answers.

Read-only: nothing here takes a lease or writes to a database.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hil.errors import HilError
from hil.rack.inventory import Rack, load_rack
from hil.rack.leases import LeaseStore
from hil.rack.snapshot import board_json, board_rows, rack_snapshot
from hil.rack.web.runs import Runs

COOKIE = "hil_rack_token"
CACHE_S = 0.25  # one database read serves every page polling within this time
STATIC = resources.files("hil.rack.web") / "static"
# nothing is loaded from anywhere but this server; no framing, no forms, no plugins
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RackSource:
    """The rack file, read again when it changes; a broken edit keeps the last good rack
    and is reported on the page (``error``)."""

    def __init__(self, rack: Rack) -> None:
        self.rack = rack
        self.error: str | None = None
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        try:
            return self.rack.path.stat().st_mtime if self.rack.path else None
        except OSError:
            return None

    def get(self) -> Rack:
        mtime = self._stat()
        if mtime is not None and mtime != self._mtime:
            self._mtime = mtime
            try:
                self.rack = load_rack(self.rack.path, required=True)
                self.error = None
            except HilError as exc:
                self.error = f"{exc} (showing the rack as it was before the edit)"
        return self.rack


@dataclass
class _Cached:
    at: float
    data: dict[str, Any]


class RackData:
    """What the endpoints serve, read at most every CACHE_S seconds (one reader at a time,
    so many open pages cost the databases no more than one)."""

    def __init__(self, rack: Rack, store: LeaseStore, runs: Runs) -> None:
        self.source = RackSource(rack)
        self.store = store
        self.runs = runs
        self._lock = threading.Lock()
        self._rack: _Cached | None = None
        self._runs: _Cached | None = None

    def rack(self) -> dict[str, Any]:
        with self._lock:
            if self._rack is None or time.monotonic() - self._rack.at > CACHE_S:
                data = self._read_rack()
                self._rack = _Cached(time.monotonic(), data)
            return self._rack.data

    def _read_rack(self) -> dict[str, Any]:
        rack = self.source.get()
        try:
            view = self.store.view()
        # the lease database is down or restarting (a dropped PostgreSQL connection is
        # opened again next time): say so on the page and keep serving
        except Exception as exc:  # noqa: BLE001
            return {"at": time.time(), "rack_file": str(rack.path) if rack.path else None,
                    "boards": [], "queue": [], "waiting": 0,
                    "error": f"cannot read the lease database: {exc}"}
        data = rack_snapshot(rack, view)
        data["error"] = self.source.error
        return data

    def recent_runs(self) -> dict[str, Any]:
        with self._lock:
            if self._runs is None or time.monotonic() - self._runs.at > CACHE_S:
                self._runs = _Cached(time.monotonic(), self.runs.recent())
            return self._runs.data

    def board(self, rack_id: str) -> dict[str, Any] | None:
        with self._lock:
            rack = self.source.get()
            view = self.store.view(events=2000)
            row = next((r for r in board_rows(rack, view.leases, view.health, now=view.at)
                        if r.id == rack_id), None)
            if row is None:
                return None
            out = board_json(row, view, rack, history=100)
            out["runs"] = self.runs.recent(rack_id=rack_id)["runs"]
            return out

    def transcript(self, seq: int, rel: str) -> Path | None:
        with self._lock:
            return self.runs.transcript_file(seq, rel)


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def build_app(data: RackData, *, token: str | None = None,
              allowed_hosts: tuple[str, ...] = ()) -> Starlette:
    """The ASGI app over ``data``. With ``token`` every request must carry it; without one
    only requests naming a loopback host (or one of ``allowed_hosts``) in their Host
    header are answered, so a web page elsewhere cannot read the rack through DNS
    rebinding."""

    def page(request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html",
                            headers={"Cache-Control": "no-store"})

    def api_rack(request: Request) -> Response:
        return _json(data.rack())

    def api_runs(request: Request) -> Response:
        return _json(data.recent_runs())

    def api_board(request: Request) -> Response:
        rack_id = request.path_params["rack_id"]
        found = data.board(rack_id)
        if found is None:
            return _json({"error": f"no board {rack_id!r} in the rack",
                          "hint": "/api/rack lists the boards"}, 404)
        return _json(found)

    def transcript(request: Request) -> Response:
        path = data.transcript(request.path_params["seq"], request.path_params["path"])
        if path is None:
            return Response("no such transcript\n", 404, media_type="text/plain")
        return FileResponse(str(path), media_type="text/plain; charset=utf-8",
                            headers={"Content-Disposition": "inline"})

    def healthz(request: Request) -> Response:
        return _json({"ok": True})

    routes = [
        Route("/", page),
        Route("/api/rack", api_rack),
        Route("/api/runs", api_runs),
        Route("/api/boards/{rack_id}", api_board),
        Route("/runs/{seq:int}/{path:path}", transcript),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    hosts = None if token else (*LOOPBACK_NAMES, *allowed_hosts)
    return Starlette(routes=routes, middleware=[
        Middleware(TokenGuard, token=token, hosts=hosts)])  # type: ignore[arg-type]


def _same(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the real one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               token.encode("utf-8"))


def _host_name(header: str) -> str:
    """The host of a Host header, without its port: ``[::1]:8700`` -> ``::1``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class TokenGuard:
    """ASGI middleware: the token check (``Authorization: Bearer T``, or the cookie that
    ``?token=T`` sets once, redirecting to the same URL without it), the Host check when
    there is no token, and the security headers of every response."""

    def __init__(self, app: ASGIApp, token: str | None, hosts: tuple[str, ...] | None) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self._refusal(request)
        if refused is not None:
            await refused(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            host = _host_name(request.headers.get("host", ""))
            if self.hosts is not None and host not in self.hosts:
                return Response("hil rack serve: this server answers only requests to a "
                                "loopback address (start it with a token to serve others)\n",
                                421, media_type="text/plain")
            return None
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer " and _same(header[7:].strip(), self.token):
            return None
        cookie = request.cookies.get(COOKIE)
        if cookie and _same(cookie, self.token):
            return None
        given = request.query_params.get("token")
        if given and _same(given, self.token):  # once: from now on the cookie carries it
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            url = URL(path=request.url.path, query=urlencode(rest))
            response = RedirectResponse(str(url), 303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict",
                                path="/")
            return response
        return Response("hil rack serve: a token is required (Authorization: Bearer TOKEN, "
                        "or open the page once with ?token=TOKEN)\n", 401,
                        media_type="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="hil rack"'})
