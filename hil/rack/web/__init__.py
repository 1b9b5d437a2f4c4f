"""`hil rack serve`: the live rack page, a Starlette app served by uvicorn.

``serve`` binds the socket itself (so a busy port or a refused address is an error before
anything runs, and port 0 picks a free port it can announce), then runs uvicorn on it until
SIGINT, SIGTERM or SIGHUP. A non-loopback address is served only with a token
(``token_for``): without one ``check_bind`` refuses before binding.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from hil.errors import ConfigError, UsageError
from hil.rack.inventory import Rack
from hil.rack.leases import LeaseStore
from hil.settings import current

__all__ = ["check_bind", "is_loopback", "serve", "token_for"]

MIN_TOKEN = 16  # characters
TOKEN_HINT = ("make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' "
              "> FILE; chmod 600 FILE")


def is_loopback(host: str) -> bool:
    """``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``; names other
    than ``localhost`` are not looked up and count as not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_for(token_file: Path | None = None) -> tuple[str | None, str]:
    """The page's token and where it came from: ``--token-file``, else HIL_RACK_TOKEN,
    else the project file's ``[rack_serve] token_file``; (None, "") when none is set.
    Raises ConfigError for an unreadable, empty or short token file or value."""
    settings = current()
    if token_file is None and settings.rack_token:
        token, where = settings.rack_token.strip(), "HIL_RACK_TOKEN"
    else:
        path = token_file or settings.rack_token_file
        if path is None:
            return None, ""
        where = str(path) if token_file else \
            f"{path} ({settings.source('rack_token_file')}: rack_serve.token_file)"
        try:
            token = path.read_text(encoding="utf-8").strip()
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"cannot read the rack page's token file {where}: {reason}",
                              hint=f"fix the path, or {TOKEN_HINT}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"hil rack serve: warning: the token file {path} is readable by other "
                  "users (chmod 600 it)", file=sys.stderr)
    if len(token) < MIN_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(f"the rack page's token from {where} is too short or has spaces "
                          f"or control characters (at least {MIN_TOKEN} printable "
                          "characters, no spaces)", hint=TOKEN_HINT)
    return token, where


def check_bind(host: str, token: str | None) -> None:
    """Refuse (UsageError, exit 2) a non-loopback ``host`` without a token."""
    if token is None and not is_loopback(host):
        raise UsageError(
            f"refusing to serve the rack page on {host}, which is not a loopback address, "
            "without a token: anyone who can reach it would see who holds which board",
            hint="give a token with --token-file FILE, HIL_RACK_TOKEN, or [rack_serve] "
            f"token_file in hil.toml ({TOKEN_HINT}); or bind 127.0.0.1 and reach it "
            "through an SSH tunnel")


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}",
                         hint="give an address of this host, e.g. 127.0.0.1") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}",
                         hint="another server (an earlier hil rack serve?) may use the port:"
                         " pick another with --port, or --port 0 for any free one") from exc
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(rack: Rack, store: LeaseStore, *, host: str, port: int, token: str | None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the rack page until SIGINT, SIGTERM or SIGHUP, which then reach the caller's
    handlers (the CLI turns them into its cancel exit codes). ``on_ready(url)`` is called
    once the socket listens."""
    import uvicorn

    from hil.rack.web.app import RackData, build_app
    from hil.rack.web.runs import Runs

    check_bind(host, token)
    data = RackData(rack, store, Runs())
    app = build_app(data, token=token, allowed_hosts=(host.strip("[]"),))
    sock = _bind(host, port)
    try:
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, server_header=False)
        server = uvicorn.Server(config)
        if on_ready is not None:
            on_ready(url_of(sock))
        _run(server, sock)
    finally:
        sock.close()


def _run(server: object, sock: socket.socket) -> None:
    """uvicorn's run, with SIGHUP (which uvicorn leaves alone) stopping it like SIGTERM;
    a signal that stopped it is raised again afterwards for the caller's handler."""
    hups: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGHUP) if main else None
    if main and previous is not signal.SIG_IGN:
        def hup(signum: int, frame: object) -> None:
            hups.append(signum)
            server.handle_exit(signum, frame)  # type: ignore[attr-defined]

        signal.signal(signal.SIGHUP, hup)
    try:
        server.run(sockets=[sock])  # type: ignore[attr-defined]
    finally:
        if main and previous is not signal.SIG_IGN:
            signal.signal(signal.SIGHUP, previous)
    if hups:
        signal.raise_signal(signal.SIGHUP)
