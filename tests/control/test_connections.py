"""Connection admission and timeouts (hubbub.control.connections) in process: the per-address
counting and its log with a fake clock, then uvicorn's own protocols wrapped by it on a real
loopback socket (refusal, silent/slow/oversize heads, WebSocket hand-off, trusted proxies)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hubbub.config import ControlConfig
from hubbub.control.connections import (
    OVER_CAP,
    OVER_RATE,
    Admission,
    ClientLimits,
    client_key,
    protocol_classes,
)

LOGGER = "hubbub.control.connections"


def limits(**fields: object) -> ControlConfig:
    control = ControlConfig()
    for name, value in fields.items():
        setattr(control, name, value)
    return control


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- counting ----------------------------------------------------------------------------------


def test_client_key_groups_ipv6_by_its_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "?" and client_key("") == "?"
    assert client_key("x" * 500) == "x" * 64


def test_concurrent_cap_per_address() -> None:
    admission = Admission(limits(max_connections_per_ip=3, new_connections_per_ip=0),
                          fd_limit=1000)
    assert [admission.admit("a") for _ in range(4)] == [None, None, None, OVER_CAP]
    assert admission.admit("b") is None  # another address has its own cap
    admission.release("a")
    assert admission.admit("a") is None and admission.admit("a") == OVER_CAP
    assert admission.open_count("a") == 3 and admission.open_count("b") == 1


def test_new_connections_per_second_after_a_burst_of_the_cap() -> None:
    clock = Clock()
    admission = Admission(limits(max_connections_per_ip=5, new_connections_per_ip=2),
                          clock=clock, fd_limit=1000)
    verdicts = []
    for _ in range(6):  # the burst is the cap: all 5 at once, then the rate
        verdicts.append(admission.admit("a"))
        admission.release("a")
    assert verdicts == [None] * 5 + [OVER_RATE]
    clock.now += 0.5
    assert admission.admit("a") is None and admission.admit("a") == OVER_RATE
    clock.now += 10
    assert admission.admit("a") is None


def test_zero_turns_the_limits_off() -> None:
    admission = Admission(limits(max_connections_per_ip=0, new_connections_per_ip=0),
                          fd_limit=1000)
    assert all(admission.admit("a") is None for _ in range(10_000))


def test_addresses_with_nothing_open_and_a_full_budget_are_forgotten() -> None:
    clock = Clock()
    admission = Admission(limits(max_connections_per_ip=2, new_connections_per_ip=10),
                          clock=clock, fd_limit=1000)
    assert admission.admit("holder") is None  # stays open throughout
    most = 0
    for i in range(20_000):  # one connection each from many addresses, 100 a second
        key = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        assert admission.admit(key) is None
        admission.release(key)
        clock.now += 0.01
        most = max(most, len(admission._clients))
    assert most <= 2048  # budgets refill in 0.2 s: swept, not kept
    assert admission.open_count("holder") == 1


def test_whole_process_cap_leaves_descriptors_over() -> None:
    assert Admission(limits(), fd_limit=20_000).max_total == 18_000
    assert Admission(limits(), fd_limit=1024).max_total == 896
    assert Admission(limits(max_connections=77), fd_limit=1024).max_total == 77


def test_trusted_proxies_by_address_network_or_star() -> None:
    admission = Admission(limits(), ["10.1.0.0/16", "192.0.2.1"], fd_limit=1000)
    assert admission.trusted("10.1.200.3") and admission.trusted("192.0.2.1")
    assert not admission.trusted("192.0.2.2") and not admission.trusted(None)
    assert not admission.trusted("not an address")
    assert Admission(limits(), ["*"], fd_limit=1000).trusted("203.0.113.9")
    assert not Admission(limits(), [], fd_limit=1000).trusted("127.0.0.1")


def test_a_limit_is_logged_once_per_address_then_counted_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    admission = Admission(limits(max_connections_per_ip=2, new_connections_per_ip=0,
                                 limits_log_interval=60), fd_limit=1000)
    admission.admit("198.51.100.1")
    admission.admit("198.51.100.1")
    for _ in range(1000):
        admission.admit("198.51.100.1")
    for _ in range(3):
        admission.admit("198.51.100.2")
        admission.admit("198.51.100.2")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # the first refusal of each address, not 1,004 lines
    assert "198.51.100.1 refused: cap of 2 open per address reached (2 open)" in lines[0]
    caplog.clear()
    admission.log.flush()
    [summary] = [r for r in caplog.records]
    assert summary.levelno == logging.WARNING
    text = summary.getMessage()
    # 999 + 3 refusals after the first of each; the busiest address first, with its counts.
    assert "1002 refused (cap of 2 open per address: 1002)" in text
    assert "by address: 198.51.100.1 999 refused, 2 open; 198.51.100.2 3 refused, 2 open" in text
    caplog.clear()
    admission.admit("198.51.100.1")  # still under attack: counted, no new line
    assert not caplog.records
    admission.log.flush()
    assert "198.51.100.1 1 refused" in caplog.records[0].getMessage()
    caplog.clear()
    admission.log.flush()  # a quiet interval: no line, and the address is forgotten
    assert not caplog.records
    admission.admit("198.51.100.1")
    assert "198.51.100.1 refused" in caplog.records[0].getMessage()


def test_the_interval_line_names_the_busiest_ten(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    admission = Admission(limits(max_connections_per_ip=1, new_connections_per_ip=0),
                          fd_limit=1000)
    for i in range(50):
        for _ in range(i + 2):
            admission.admit(f"203.0.113.{i}")
    caplog.clear()
    admission.log.flush()
    [line] = [r.getMessage() for r in caplog.records]
    assert line.count("refused") == 11  # the total and ten addresses
    # Each address: one admitted, its first refusal logged at once, the rest counted.
    assert "by address: 203.0.113.49 49 refused, 1 open; 203.0.113.48 48 refused" in line
    assert "and 39 more addresses" in line
    assert len(line) < 1500


# -- through uvicorn ---------------------------------------------------------------------------


async def app(scope: dict[str, object], receive: Callable[..., object],
              send: Callable[..., object]) -> None:
    """Echoes the client address; /hold waits a while; WebSockets echo messages."""
    if scope["type"] == "http":
        while True:
            message = await receive()  # type: ignore[misc]
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if scope["path"] == "/hold":
            await asyncio.sleep(1.0)
        client = scope["client"]
        body = str(client[0] if isinstance(client, tuple) else "").encode()
        await send({"type": "http.response.start", "status": 200,  # type: ignore[misc]
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})  # type: ignore[misc]
    elif scope["type"] == "websocket":
        await receive()  # type: ignore[misc]
        await send({"type": "websocket.accept"})  # type: ignore[misc]
        while True:
            message = await receive()  # type: ignore[misc]
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text")})  # type: ignore[misc]


@asynccontextmanager
async def serving(admission: Admission) -> AsyncIterator[int]:
    http_protocol, ws_protocol = protocol_classes(admission)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(ClientLimits(app, admission), http=http_protocol,  # type: ignore[arg-type]
                            ws=ws_protocol or "none", lifespan="off", log_level="warning",
                            proxy_headers=False)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        admission.log.stop()


async def raw(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader,
                                                                asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def drained(admission: Admission) -> None:
    for _ in range(100):
        if admission.open_total == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{admission.open_total} connections still counted")


async def test_over_the_cap_is_answered_429_and_closed_at_once() -> None:
    admission = Admission(limits(max_connections_per_ip=3, request_timeout=5), fd_limit=1000)
    async with serving(admission) as port:
        held = [await raw(port, "127.0.0.2") for _ in range(3)]
        reader, _ = await raw(port, "127.0.0.2")
        refused = await asyncio.wait_for(reader.read(), 2)
        assert refused.startswith(b"HTTP/1.1 429 ") and b"over_cap" in refused
        other, writer = await raw(port, "127.0.0.3")  # another address is unaffected
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(other.read(), 2)).endswith(b"127.0.0.3")
        assert admission.open_count("127.0.0.2") == 3
        for _, w in held:
            w.close()
        await drained(admission)
        assert admission.open_count("127.0.0.2") == 0


async def test_at_the_process_cap_everyone_gets_503_until_one_closes() -> None:
    admission = Admission(limits(max_connections=2, request_timeout=5), fd_limit=1000)
    async with serving(admission) as port:
        _, first = await raw(port, "127.0.0.2")
        await raw(port, "127.0.0.3")
        reader, _ = await raw(port, "127.0.0.4")
        assert (await asyncio.wait_for(reader.read(), 2)).startswith(b"HTTP/1.1 503 ")
        first.close()
        for _ in range(50):
            if admission.open_total < 2:
                break
            await asyncio.sleep(0.02)
        reader, writer = await raw(port, "127.0.0.4")
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 2)).startswith(b"HTTP/1.1 200 ")


async def test_silent_slow_and_oversize_heads_are_closed() -> None:
    admission = Admission(limits(request_timeout=0.5, max_head_bytes=1000), fd_limit=1000)
    async with serving(admission) as port:
        loop = asyncio.get_running_loop()
        start = loop.time()
        silent, _ = await raw(port)
        slow, slow_writer = await raw(port)
        slow_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        big, big_writer = await raw(port)
        big_writer.write(b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 2000 + b"\r\n")
        quick, quick_writer = await raw(port)  # a head in pieces, complete in time
        for piece in (b"GET / HTTP/1.1\r", b"\nHost: x\r\n", b"\r", b"\n"):
            quick_writer.write(piece)
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(silent.read(), 2) == b""  # closed without an answer
        assert 0.4 < loop.time() - start < 1.0
        assert (await asyncio.wait_for(slow.read(), 2)).startswith(b"HTTP/1.1 408 ")
        assert (await asyncio.wait_for(big.read(), 2)).startswith(b"HTTP/1.1 431 ")
        reply = await asyncio.wait_for(quick.readuntil(b"127.0.0.1"), 2)
        assert reply.startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.6)  # past the head timeout: the answered one stays open
        assert not quick.at_eof()
        quick_writer.close()
        await drained(admission)


async def test_a_slow_body_gets_408() -> None:
    admission = Admission(limits(body_timeout=0.5), fd_limit=1000)
    async with serving(admission) as port:
        reader, writer = await raw(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        reply = await asyncio.wait_for(reader.read(), 2)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"connection: close" in reply
        await drained(admission)


async def test_websockets_are_counted_until_they_close_and_must_speak_first() -> None:
    admission = Admission(limits(max_connections_per_ip=4, request_timeout=0.5), fd_limit=1000)
    async with serving(admission) as port:
        url = f"ws://127.0.0.1:{port}/"
        sockets = [await connect(url) for _ in range(4)]
        for ws in sockets:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        assert admission.open_count("127.0.0.1") == 4
        with pytest.raises(Exception, match="429"):
            await connect(url)
        await asyncio.sleep(0.6)  # past the timeouts: they spoke, so they stay
        await sockets[0].send("still")
        assert await sockets[0].recv() == "still"
        for ws in sockets:
            await ws.close()
        await drained(admission)
        assert admission.open_count("127.0.0.1") == 0  # released once each, never below
        silent = await connect(url)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(silent.recv(), 2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "no message within 0.5 s" in closed.value.rcvd.reason
        await drained(admission)


async def test_clients_of_a_trusted_proxy_are_limited_by_forwarded_address() -> None:
    admission = Admission(limits(max_connections_per_ip=2, request_timeout=5),
                          ["127.0.0.1"], fd_limit=1000)

    async def get(path: str, forwarded: str) -> bytes:
        reader, writer = await raw(port)  # from the proxy's address
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded}\r\n"
                     "Connection: close\r\n\r\n".encode())
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return reply

    async with serving(admission) as port:
        holding = [asyncio.ensure_future(get("/hold", "198.51.100.7")) for _ in range(2)]
        await asyncio.sleep(0.3)
        third = await get("/", "198.51.100.7")
        assert third.startswith(b"HTTP/1.1 429 ")
        other = await get("/", "198.51.100.8")
        assert other.startswith(b"HTTP/1.1 200 ") and other.endswith(b"198.51.100.8")
        for reply in await asyncio.gather(*holding):
            assert reply.endswith(b"198.51.100.7")
        # Not limited per TCP connection: more than the cap from the proxy itself.
        idle = [await raw(port) for _ in range(5)]
        assert admission.open_total >= 5
        for _, writer in idle:
            writer.close()
        await drained(admission)
        assert admission.open_count("198.51.100.7") == 0
