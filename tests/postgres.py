"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

Debian's binaries (``/usr/lib/postgresql/<version>/bin``; ``KB_TEST_PG_BIN`` overrides) run a
cluster made in a temporary folder: listening on 127.0.0.1 on a free port, its socket in that
folder, stopped when the session ends. initdb refuses to run as root, so under root (as in CI)
the server runs as the ``postgres`` user. Without the binaries the PostgreSQL tests are skipped
and say why.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import free_port

TEMPLATE = "kb_template"


def _bin_dir() -> Path | None:
    given = os.environ.get("KB_TEST_PG_BIN")
    candidates = [Path(given)] if given else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
        if p.parent.name.isdigit() else 0, reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


class Server:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="kb-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("PostgreSQL tests: running as root and there is no 'postgres' user "
                            "to run the server as")
            self.user = "postgres"
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        done = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "kb",
                         "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        for _ in range(5):  # another process may take the free port first
            self.port = free_port()
            options = (f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200")
            done = self._run("pg_ctl", "-D", str(self.data), "-o", options,
                             "-l", str(self.root / "log"), "-w", "-t", "60", "start")
            if done.returncode == 0:
                return
        log = (self.root / "log").read_text(errors="replace") if (self.root / "log").exists() \
            else ""
        raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{log[-2000:]}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def make_template(self) -> None:
        """A database migrated once, that each test's database is copied from."""
        import psycopg

        from kb.storage import SqlStore

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        SqlStore(self.url(TEMPLATE)).close()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://kb@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        # A developer's machine may lack the server; CI installs it, and must run these tests.
        missing = pytest.fail if os.environ.get("CI") else pytest.skip
        missing("PostgreSQL tests: no initdb/pg_ctl in /usr/lib/postgresql/*/bin (install "
                "Debian's postgresql package; .ci/run does)")
    server = Server(bin_dir)
    server.start()
    try:
        server.make_template()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Server) -> Iterator[str]:
    """A new database on the session's server, its schema at the latest migration."""
    import psycopg

    name = f"t_{secrets.token_hex(6)}"
    admin = f"postgresql://kb@127.0.0.1:{postgres_server.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}" STRATEGY FILE_COPY')
    try:
        yield postgres_server.url(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
