"""Fixtures for control/auth tests: token stores on SQLite and on a private PostgreSQL cluster."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.helpers.postgres import PostgresCluster

from hubbub.control.auth.store import TokenStore, default_url


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
