"""Fixtures of the cluster tests: a real redis-server and a shared PostgreSQL token store per
test module (modules that restart Redis define their own function-scoped `redis`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.helpers.postgres import PostgresCluster
from tests.helpers.redis import RedisServer


@pytest.fixture(scope="module")
def redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with RedisServer(name=f"{name}-redis") as server:
        yield server


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh database on a private PostgreSQL: the token store every node shares."""
    postgres = PostgresCluster().start()
    try:
        yield asyncio.run(postgres.new_database())
    finally:
        postgres.stop()
