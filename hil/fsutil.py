"""Small file helpers every stage shares: whole-or-nothing writes and file hashes.

``atomic_write`` writes into a temporary file with a name no other writer can pick (process
id plus random bits, created with O_EXCL) in the target's directory, fsyncs it and renames it
over the target, so a reader sees the old content or the new, never a mix, and concurrent
writers of one path never collide on a temporary name. Nothing is left behind on any error.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

_CHUNK = 1 << 20


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one rename.

    The directory of ``path`` must exist. The new file gets ``mode`` less the umask (0o600 keeps
    a secret private). OSError from any step propagates after the temporary file is removed."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _create_temp(target, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _create_temp(target: Path, mode: int) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {target}")  # pragma: no cover


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some file systems refuse to open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
