"""A throwaway PostgreSQL server for tests, from Debian's postgresql-15 binaries.

``PgServer`` is a context manager: initdb into a fresh temp dir, start it with trust auth
listening only on a Unix socket in that dir (no TCP port: nothing to race other servers for),
stop and delete on exit. As root the server runs as the ``postgres``
user (``runuser``), since PostgreSQL refuses to run as root. Fixtures:

- ``pg_server`` (session): one server per pytest worker; skips if the binaries are absent;
- ``pg_url`` (function): a fresh, empty database on it for one test.

Use from a conftest: ``from pgserver import pg_server, pg_url`` with ``tests/`` on sys.path.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("HIL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres"
PORT = 5432  # only names the socket file in the server's own dir: no TCP port is opened


def pg_available() -> str | None:
    """None if a server can be started here, else the reason it cannot."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL binaries not found ({PG_BIN / tool}); apt-get install postgresql-15"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run the server as"
        if not shutil.which("runuser"):
            return "running as root and runuser is not installed"
    return None


class PgServer:
    """One PostgreSQL server in a temp dir. No I/O until entered."""

    def __init__(self) -> None:
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        return self._url("postgres")

    def _url(self, database: str) -> str:
        return f"postgresql://{self.user}@/{database}?host={self.dir}&port={PORT}"

    @property
    def user(self) -> str:
        return RUN_AS if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)

    def __enter__(self) -> PgServer:
        self.dir = Path(tempfile.mkdtemp(prefix="hil-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        r = self._run(str(PG_BIN / "initdb"), "-D", str(data), "-U", self.user,
                      "--auth=trust", "--encoding=UTF8", "--no-sync")
        if r.returncode:
            self.__exit__()
            raise RuntimeError(f"initdb failed: {r.stderr}")
        opts = (f"-p {PORT} -k {self.dir} -c listen_addresses='' "
                "-c fsync=off -c full_page_writes=off")
        r = self._run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                      str(self.dir / "server.log"), "-o", opts, "-w", "-t", "60", "start")
        if r.returncode == 0:
            return self
        log = (self.dir / "server.log").read_text(errors="replace")[-2000:]
        self.__exit__()
        raise RuntimeError(f"pg_ctl start failed: {r.stderr}\n{log}")

    def __exit__(self, *exc: object) -> None:
        if self.dir is None:
            return
        data = self.dir / "data"
        if (data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self._url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = pg_available()
    if reason:
        pytest.skip(reason)
    with PgServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.create_database()
