"""Opening SQLite state files (audit store, lease store): say at once what is wrong.

A read-only or full directory, a file where a directory should be and a damaged database
each get their own message naming the path and the fix, before SQLite is asked to wait for
a lock that will never come (its busy timeout is 60 s). Callers pass their own error class
so the audit store raises AuditError and the lease store LeaseError.

Both stores open SQLite the same way (``connect_sqlite``: WAL, busy timeout) and name a
PostgreSQL server in messages the same way (``redact_url``: no password shown).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from hil.errors import HilError

ErrorFactory = Callable[..., HilError]  # (message, hint=...) -> the caller's error


def check_store_path(path: Path, what: str, fix: str, error: ErrorFactory) -> None:
    """Make the directory of ``path`` and check a database there can be written.

    ``what`` names the store ("audit store"), ``fix`` says how to use another place
    ("set HIL_STATE_DIR to a writable directory"). Raises ``error(message, hint=...)``."""
    directory = path.parent
    for parent in (directory, *directory.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise error(f"cannot open the {what} {path}: {parent} is a file, not a "
                            "directory", hint=f"move that file away, or {fix}")
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message, hint = os_problem(exc, directory, what, fix)
        raise error(message, hint=hint) from None
    if _read_only_fs(directory) or not os.access(directory, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        where = "file system of " if _read_only_fs(directory) else ""
        raise error(f"cannot open the {what} {path}: the {where}{directory} is read-only",
                    hint=f"make it writable, or {fix}")
    if not path.exists() and _no_space(directory):
        raise error(f"cannot open the {what} {path}: no space left on the device of "
                    f"{directory}", hint=f"free some space, or {fix}")


def os_problem(exc: OSError, directory: Path, what: str, fix: str) -> tuple[str, str]:
    """(message, hint) for an OSError met while preparing a store's directory."""
    where = f"cannot create the directory of the {what}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{where}: {directory} is read-only ({exc.strerror})", \
            f"make it writable, or {fix}"
    if exc.errno == errno.ENOSPC:
        return f"{where}: no space left on the device of {directory}", \
            f"free some space, or {fix}"
    if exc.errno == errno.ENOTDIR:
        return f"{where}: a file is in the way of {directory}", f"move that file away, or {fix}"
    return f"{where} {directory}: {exc.strerror}", fix


def sqlite_problem(exc: sqlite3.Error, path: Path, what: str, fix: str) -> tuple[str, str]:
    """(message, hint) for an SQLite error opening or using the store at ``path``."""
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text:
        restore = (f"move it aside (mv {path} {path}.damaged) and restore it from a backup; "
                   "a new empty one is created in its place otherwise")
        return f"the {what} {path} is damaged ({exc}): it is not a usable SQLite database", \
            restore
    if "readonly" in text or "read-only" in text or "read only" in text:
        return f"cannot write the {what} {path}: it or its directory is read-only ({exc})", \
            f"make it writable, or {fix}"
    if "full" in text or _no_space(path.parent):
        return f"cannot write the {what} {path}: no space left on the device ({exc})", \
            f"free some space, or {fix}"
    return f"cannot open the {what} {path}: {exc}", \
        f"check the directory is writable and on a local disk, or {fix}"


def is_lock_wait(exc: sqlite3.Error) -> bool:
    """True when SQLite answered "locked"/"busy": worth retrying, unlike every other error."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


BUSY_TIMEOUT_S = 60


def connect_sqlite(path: Path, *, synchronous: str = "NORMAL",
                   check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the store at ``path`` in autocommit mode, WAL journal, waiting up to
    BUSY_TIMEOUT_S for locks, with ``synchronous`` (NORMAL or FULL) set.

    Switching a new database to WAL takes an exclusive lock and may answer "locked" at once,
    without a busy wait, while another process creates it too: that is retried until the
    timeout. Raises sqlite3.Error (the caller turns it into its own error with
    ``sqlite_problem``); the connection is closed then."""
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=check_same_thread)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if not is_lock_wait(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


_SECRET_PARAMS = {"password", "passfile", "sslpassword"}


def redact_url(url: str) -> str:
    """A database URL fit for messages: the password of ``user:password@`` and the value of
    any ``password=`` (``sslpassword=``, ``passfile=``) query parameter become ``***``; user,
    host, port, database and the other parameters stay as written. A path is returned as is.

    Errs on hiding: everything before the last ``@`` ahead of the query counts as user and
    password, so a password with an unescaped ``@`` or ``/`` is hidden whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    before_query, qmark, query = rest.partition("?")
    if "@" in before_query:
        creds, host = before_query.rsplit("@", 1)
        if ":" in creds:
            before_query = f"{creds.split(':', 1)[0]}:***@{host}"
    if qmark:
        query, hashmark, fragment = query.partition("#")
        pairs = []
        for pair in query.split("&"):
            key, eq, _value = pair.partition("=")
            pairs.append(f"{key}=***" if eq and key.lower() in _SECRET_PARAMS else pair)
        query = "&".join(pairs) + hashmark + fragment
    return f"{scheme}://{before_query}{qmark}{query}"


def _read_only_fs(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _no_space(directory: Path) -> bool:
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return st.f_blocks > 0 and free == 0


def describe_os_error(exc: OSError) -> tuple[str, str | None]:
    """(message, hint) for an OSError on a file hil reads or writes: a file where a
    directory should be, a read-only or full file system, named by path with the setting
    (HIL_STATE_DIR, HIL_BUILD_DIR, HIL_CACHE_DIR) that moves it elsewhere."""
    name = exc.filename2 if exc.errno == errno.ENOSPC and exc.filename2 else exc.filename
    if name is None:
        return str(exc.strerror or exc), None
    path = Path(os.fsdecode(name))
    fix = _setting_for(path)
    if exc.errno == errno.ENOTDIR:
        blocker = next((p for p in (path, *path.parents)
                        if (p.exists() or p.is_symlink()) and not p.is_dir()), None)
        if blocker is not None:
            return f"{path}: {blocker} is a file, not a directory", \
                f"move that file away{', or ' + fix if fix else ''}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        kind = "file system is read-only" if exc.errno == errno.EROFS else "is not writable"
        return f"{path}: {kind} ({exc.strerror})", \
            f"make it writable{', or ' + fix if fix else ''}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path}: no space left on the device ({exc.strerror})", \
            f"free some space{', or ' + fix if fix else ''}"
    return f"{path}: {exc.strerror or exc}", None


def _setting_for(path: Path) -> str | None:
    """The environment variable that moves the hil directory holding ``path``."""
    from hil.paths import build_root, cache_dir, state_dir

    for env, root in (("HIL_STATE_DIR", state_dir()), ("HIL_BUILD_DIR", build_root()),
                      ("HIL_CACHE_DIR", cache_dir())):
        try:
            if path.absolute().is_relative_to(root.absolute()):
                return f"set {env} to another directory"
        except ValueError:  # pragma: no cover - different drives on Windows
            continue
    return None
