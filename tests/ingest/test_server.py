"""RtmpServer: `::` listens on both families, and closing it with connections open ends them
without a traceback in the log."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from hubbub.ingest.rtmp import Publisher, PublishRequest, Refusal, RtmpServer


async def refuse(request: PublishRequest) -> Publisher | Refusal:
    return Refusal("hubbub: no")


def free_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_double_colon_listens_on_ipv4_and_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    async with RtmpServer(refuse, host="::", port=free_port()) as server:
        for host in ("127.0.0.1", "::1"):
            _, writer = await asyncio.open_connection(host, server.port)
            writer.close()


async def test_close_ends_open_connections_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    async with RtmpServer(refuse, host="127.0.0.1", port=0) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(50):
            if server.sessions:
                break
            await asyncio.sleep(0.01)
        assert server.sessions == 1
    assert server.sessions == 0
    await asyncio.sleep(0.05)  # asyncio's stream callback would log here
    writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
