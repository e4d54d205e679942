"""A Node and its FastAPI app in this process, started and stopped around a test, with an
httpx client on the app (ASGI, no socket): control code tested without a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.auth import datadir
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node


@asynccontextmanager
async def node_app(tmp_path: Path, api_secret: str,
                   configure: Callable[[Config], None] | None = None,
                   base_url: str = "http://node.test",
                   ) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    """A started Node (media on 127.0.0.1, a free port) with its data in `tmp_path`;
    `configure` may change the Config first. Requests come from 127.0.0.1."""
    config = Config()
    config.media.host = "127.0.0.1"
    config.media.port = 0
    config.auth.data_dir = str(tmp_path / "data")
    config.auth.api_secret = api_secret
    if configure is not None:
        configure(config)
    node = Node(config)
    auth = Auth(config.auth, datadir.prepare(config.auth))
    app = create_app(node, auth)
    await auth.start()
    await node.start()
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield node, client
    finally:
        await node.stop()
        await auth.stop()
