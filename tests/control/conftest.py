"""Fixtures for control/auth tests: token stores on SQLite and on a private PostgreSQL cluster."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.helpers.server import free_tcp_port

from hubbub.control.auth.store import TokenStore, default_url


class PostgresCluster:
    """initdb + pg_ctl in a temp dir on a free loopback port (as `postgres` when we are root:
    PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.bin = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="hubbub-pg-"))
        self.port = free_tcp_port()
        self._names = itertools.count()
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresCluster:
        if self._as_root:
            shutil.chown(self.root, "postgres")
        data = self.root / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "hubbub",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-w",
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    async def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import asyncpg  # type: ignore[import-untyped]

        name = f"hubbub_test_{next(self._names)}"
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="hubbub", database="postgres"
        )
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return f"postgresql+asyncpg://hubbub@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.fail(f"cannot start PostgreSQL: {exc} {detail.decode(errors='replace')}")
    yield cluster
    cluster.stop()


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty token database URL, once per backend."""
    if request.param == "sqlite":
        return default_url(str(tmp_path))
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return await cluster.new_database()


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[TokenStore]:
    opened = await TokenStore.open(database_url)
    yield opened
    await opened.close()
