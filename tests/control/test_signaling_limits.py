"""Limits of the signaling layer in process: JSON depth before parsing, command names,
token buckets, the bounded send queue."""

from __future__ import annotations

import asyncio
import json

import pytest

from hubbub.control import messages
from hubbub.control.ratelimit import TokenBucket
from hubbub.control.session import CLOSE_POLICY, Session


def test_deep_json_is_refused_before_parsing_without_recursion() -> None:
    deep = '{"type": "cmd", "name": "view", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(messages.ProtocolError, match="nested deeper than 32 levels"):
        messages.parse_command(deep)
    # Brackets inside strings do not count; a real command is far from the limit.
    sdp = '"' + "[{" * 5000 + '"'
    ok = messages.parse_command('{"type": "cmd", "name": "view", "data": {"sdp": ' + sdp + "}}")
    assert ok.name == "view"
    nested = '{"a": [[{"b": "]]]"}]]}'
    assert messages.too_deep(nested, 3) and not messages.too_deep(nested, 4)


def test_command_names_are_bounded() -> None:
    with pytest.raises(messages.ProtocolError, match="longer than 64"):
        messages.parse_command('{"type": "cmd", "name": "' + "x" * 200_000 + '"}')
    with pytest.raises(messages.ProtocolError) as refused:
        messages.parse_command('{"type": "' + "y" * 100_000 + '"}')
    assert len(refused.value.reason) < 100


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.1
    assert bucket.take() and not bucket.take()
    now[0] = 100
    assert sum(bucket.take() for _ in range(10)) == 3


async def test_a_client_that_does_not_read_is_closed_at_the_queue_bound() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def stuck(text: str) -> None:  # a socket whose peer never reads
        await never

    session = Session(stuck, max_queue_bytes=10_000)
    closes: list[tuple[int, str]] = []
    session.on_close_request = lambda code, reason: closes.append((code, reason))
    for _ in range(1000):
        session.send(messages.event("viewercount", {"viewercount": 1}))
    assert session.queued_bytes <= 10_000
    assert closes == [(CLOSE_POLICY, "more than 10000 bytes queued for this client: it "
                       "does not read")]
    session.close()


async def test_a_failed_transport_is_told_to_the_client_whatever_events_it_asked_for() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    session = Session(send)
    session.events = frozenset({"active"})  # no "error" asked for: it is sent all the same
    session.media_failed("ICE failed: no connectivity check reached the server", True)
    session.media_failed("DTLS handshake failed: fingerprint mismatch", False)
    session.send_event("vad", {"mediaId": "1"})  # filtered out, as asked
    await session.flush()
    assert [json.loads(text) for text in sent] == [
        {"type": "event", "name": "error", "data": {
            "code": "ice-failed", "message": "ICE failed: no connectivity check reached the "
            "server"}},
        {"type": "event", "name": "error", "data": {
            "code": "transport-failed",
            "message": "DTLS handshake failed: fingerprint mismatch"}},
    ]
    session.close()
