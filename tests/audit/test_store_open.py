"""Opening the SQLite stores (audit store, lease database) in a bad place: a read-only or
full directory, a file where the state directory should be, or a damaged database file is
said at once, naming the path and the fix, instead of a 60 s wait and "disk I/O error"."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hil.audit.store import open_store
from hil.errors import AuditError, LeaseError
from hil.rack.leases import SqliteLeaseStore
from hil.storage import os_problem

OPEN_BOTH = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hil.audit.store import open_store
    from hil.errors import HilError
    from hil.rack.leases import SqliteLeaseStore
    state = Path(sys.argv[1])
    for name, open_it in (("audit", lambda: open_store(str(state / "audit.sqlite"))),
                          ("lease", lambda: SqliteLeaseStore(state / "leases.sqlite"))):
        try:
            with open_it():
                print(name, "opened")
        except HilError as exc:
            print(name, type(exc).__name__, exc)
""")


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root and mount namespaces "
                                 "(unshare -m) to mount a small or read-only tmpfs")


def in_private_mount(tmp_path: Path, setup: str) -> str:
    """Mount a tmpfs at tmp_path/mnt in a private mount namespace, run ``setup`` (shell), then
    open both stores in tmp_path/mnt/state; returns what the opener printed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"set -e; mount -t tmpfs -o size=64k none {mnt}; mkdir {mnt}/state; {setup}; "
              f'"{sys.executable}" -c \'{OPEN_BOTH}\' {mnt}/state')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, check=False, timeout=50)  # the stall took 60 s per store
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_mount
def test_read_only_file_system_is_said_at_once(tmp_path):
    mnt = tmp_path / "mnt"
    out = in_private_mount(tmp_path, f"mount -o remount,ro {mnt}")
    assert f"audit AuditError cannot open the audit store {mnt}/state/audit.sqlite: the file " \
           f"system of {mnt}/state is read-only" in out
    assert f"lease LeaseError cannot open the lease database {mnt}/state/leases.sqlite: the " \
           "file system of" in out
    assert "HIL_STATE_DIR" in out
    assert "disk I/O error" not in out


@needs_mount
def test_full_file_system_says_no_space_left(tmp_path):
    mnt = tmp_path / "mnt"
    out = in_private_mount(tmp_path, f"dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null || true")
    assert f"audit AuditError cannot open the audit store {mnt}/state/audit.sqlite: no space " \
           "left on the device" in out
    assert "lease LeaseError cannot open the lease database" in out
    assert out.count("no space left") == 2
    assert "free some space" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions; the "
                    "read-only file system test covers root")
def test_read_only_directory_is_said_at_once(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o555)
    with pytest.raises(AuditError, match=r"state is read-only"), \
            open_store(str(state / "audit.sqlite")):
        pass
    with pytest.raises(LeaseError, match=r"state is read-only"):
        SqliteLeaseStore(state / "leases.sqlite")


@pytest.mark.parametrize("code, words", [
    pytest.param(errno.EROFS, "is read-only", id="EROFS"),
    pytest.param(errno.EACCES, "is read-only", id="EACCES"),
    pytest.param(errno.ENOSPC, "no space left on the device", id="ENOSPC"),
    pytest.param(errno.ENOTDIR, "a file is in the way", id="ENOTDIR"),
])
def test_errno_of_the_state_directory_maps_to_its_own_message(tmp_path, code, words):
    message, hint = os_problem(OSError(code, os.strerror(code)), tmp_path, "audit store",
                               "set HIL_STATE_DIR")
    assert words in message and str(tmp_path) in message
    assert hint.endswith("set HIL_STATE_DIR")


def test_state_dir_that_is_a_file_names_the_file(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    with pytest.raises(AuditError) as err, open_store(str(blocker / "audit.sqlite")):
        pass
    assert f"{blocker} is a file, not a directory" in str(err.value)
    assert "move that file away" in str(err.value)
    with pytest.raises(LeaseError, match="is a file, not a directory"):
        SqliteLeaseStore(blocker / "sub" / "leases.sqlite")


@pytest.mark.parametrize("content", [
    pytest.param(b"this is not a database at all\n" * 200, id="not-a-database"),
    pytest.param(b"SQLite format 3\x00" + b"\xff" * 4000, id="damaged-header"),
])
def test_damaged_store_gets_a_hint_about_damage_not_permissions(tmp_path, content):
    audit_db = tmp_path / "audit.sqlite"
    audit_db.write_bytes(content)
    with pytest.raises(AuditError) as err, open_store(str(audit_db)):
        pass
    text = str(err.value)
    assert f"the audit store {audit_db} is damaged" in text
    assert f"mv {audit_db} {audit_db}.damaged" in text
    assert "writable" not in text

    lease_db = tmp_path / "leases.sqlite"
    lease_db.write_bytes(content)
    with pytest.raises(LeaseError, match=r"the lease database .* is damaged"):
        SqliteLeaseStore(lease_db)
