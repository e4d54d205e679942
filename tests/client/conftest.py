"""Fixtures for the client SDK tests (helpers live in fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.client.fakes import FakeServer, FakeSfu, Handler


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[[Handler], Awaitable[FakeServer]]]:
    servers: list[FakeServer] = []

    async def make(handler: Handler) -> FakeServer:
        server = FakeServer(handler)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def sfu() -> AsyncIterator[FakeSfu]:
    fake = FakeSfu()
    yield fake
    await fake.close()
