from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hubbub.client.signaling import Signaling, SignalingError, event_data, with_token
from tests.client.fakes import FakeConnection, FakeServer, Handler

MakeServer = Callable[[Handler], Awaitable[FakeServer]]


async def echo(conn: FakeConnection, name: str, data: Any) -> dict[str, Any] | str | None:
    return {"echo": name, "data": data}


def test_with_token_adds_and_replaces_the_token_and_keeps_other_parameters() -> None:
    assert with_token("ws://h:1/ws/v2/pub", None) == "ws://h:1/ws/v2/pub"
    assert with_token("ws://h:1/ws/v2/pub", "a.b.c") == "ws://h:1/ws/v2/pub?token=a.b.c"
    url = with_token("ws://h:1/ws/v2/sub?x=1&token=old", "new+/=")
    assert parse_qs(urlsplit(url).query) == {"x": ["1"], "token": ["new+/="]}


def test_event_data_normalises_non_objects() -> None:
    assert event_data({"a": 1}) == {"a": 1}
    assert event_data(None) == {}
    assert event_data([1]) == {"value": [1]}


async def test_commands_count_trans_ids_from_zero_and_return_response_data(
    make_server: MakeServer,
) -> None:
    server = await make_server(echo)
    async with Signaling(server.url("/ws/v2/pub"), token="tok") as sig:
        assert await sig.command("publish", {"n": 1}) == {"echo": "publish", "data": {"n": 1}}
        assert await sig.command("record", {}) == {"echo": "record", "data": {}}
    conn = server.connections[0]
    assert conn.path == "/ws/v2/pub?token=tok"
    assert [(c["type"], c["transId"], c["name"]) for c in conn.commands] == [
        ("cmd", 0, "publish"),
        ("cmd", 1, "record"),
    ]
    assert conn.protocol_errors == []


async def test_error_reply_raises_signaling_error_with_the_reason(make_server: MakeServer) -> None:
    async def refuse(conn: FakeConnection, name: str, data: Any) -> str:
        return "Unauthorized: Invalid token"

    server = await make_server(refuse)
    async with Signaling(server.url()) as sig:
        with pytest.raises(SignalingError) as info:
            await sig.command("view", {})
        assert info.value.reason == "Unauthorized: Invalid token"
        assert info.value.command == "view"
        # the socket stays usable after an error reply
        with pytest.raises(SignalingError):
            await sig.command("view", {})
    assert [c["transId"] for c in server.connections[0].commands] == [0, 1]


async def test_replies_out_of_order_reach_their_own_commands(make_server: MakeServer) -> None:
    held: list[int] = []

    async def hold_first(conn: FakeConnection, name: str, data: Any) -> None:
        held.append(data["i"])
        if len(held) == 2:  # answer the second command first, then the first
            await conn.reply(1, {"i": 1})
            await conn.reply(0, {"i": 0})

    server = await make_server(hold_first)
    async with Signaling(server.url()) as sig:
        first, second = await asyncio.gather(
            sig.command("a", {"i": 0}), sig.command("b", {"i": 1})
        )
    assert (first, second) == ({"i": 0}, {"i": 1})


async def test_events_are_dispatched_in_order_and_junk_frames_are_skipped(
    make_server: MakeServer,
) -> None:
    async def events_then_reply(conn: FakeConnection, name: str, data: Any) -> dict[str, Any]:
        await conn.send_event("active", {"sourceId": None})
        await conn.send_raw("not json")
        await conn.send_raw("[1, 2]")
        await conn.send_raw('{"type": "response", "transId": 99, "data": {}}')
        await conn.send_event("stopped", None)
        return {"ok": True}

    server = await make_server(events_then_reply)
    seen: list[tuple[str, dict[str, Any]]] = []
    async with Signaling(server.url(), on_event=lambda n, d: seen.append((n, d))) as sig:
        assert await sig.command("view", {}) == {"ok": True}
    assert seen == [("active", {"sourceId": None}), ("stopped", {})]


async def test_a_failing_event_callback_does_not_stop_the_reader(make_server: MakeServer) -> None:
    async def event_then_reply(conn: FakeConnection, name: str, data: Any) -> dict[str, Any]:
        await conn.send_event("vad", {})
        return {"ok": True}

    def broken(name: str, data: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    server = await make_server(event_then_reply)
    async with Signaling(server.url(), on_event=broken) as sig:
        assert await sig.command("view", {}) == {"ok": True}


async def test_server_close_fails_pending_commands_and_calls_on_close(
    make_server: MakeServer,
) -> None:
    async def hang_up(conn: FakeConnection, name: str, data: Any) -> None:
        await conn.ws.close(4001, "replaced")

    closes: list[bool] = []
    server = await make_server(hang_up)
    sig = Signaling(server.url(), on_close=lambda: closes.append(True))
    await sig.connect()
    with pytest.raises(SignalingError, match=r"connection closed \(code 4001: replaced\)"):
        await sig.command("publish", {})
    await sig.wait_closed(timeout=2)
    assert sig.closed and sig.close_code == 4001 and closes == [True]
    with pytest.raises(SignalingError, match="connection closed"):
        await sig.command("publish", {})
    await sig.close()
    assert closes == [True]


async def test_command_times_out_when_no_reply_comes(make_server: MakeServer) -> None:
    async def silent(conn: FakeConnection, name: str, data: Any) -> None:
        return None

    server = await make_server(silent)
    async with Signaling(server.url()) as sig:
        with pytest.raises(TimeoutError):
            await sig.command("view", {}, timeout=0.1)
        assert sig._pending == {}


async def test_command_before_connect_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not connected"):
        await Signaling("ws://127.0.0.1:9/ws/v2/sub").command("view", {})
