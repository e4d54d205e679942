"""Presence bookkeeping in-process: online sets, the grace period, reconnects within it."""

from __future__ import annotations

import asyncio

from hubbub.apps.spaces.presence import Connection, Presence

GRACE = 0.05


class Sink:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: list[tuple[int, str]] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


def setup() -> tuple[Presence, list[tuple[str, str]]]:
    gone: list[tuple[str, str]] = []

    async def on_absent(room: str, user: str) -> None:
        gone.append((room, user))

    return Presence(GRACE, on_absent), gone


async def test_member_leaves_after_the_grace_period_unless_back() -> None:
    presence, gone = setup()
    sink = Sink()
    first = Connection("r", "ann", sink.send, sink.close)
    presence.add(first)
    assert presence.online("r") == {"ann"}
    assert presence.remove(first) is True
    assert presence.online("r") == set()
    # Back within the grace period (a reload): the seat is kept.
    second = Connection("r", "ann", sink.send, sink.close)
    presence.add(second)
    await asyncio.sleep(GRACE * 3)
    assert gone == []
    presence.remove(second)
    await asyncio.sleep(GRACE * 3)
    assert gone == [("r", "ann")]
    await presence.stop()


async def test_second_tab_keeps_a_member_online() -> None:
    presence, gone = setup()
    sink = Sink()
    a = Connection("r", "bob", sink.send, sink.close)
    b = Connection("r", "bob", sink.send, sink.close)
    presence.add(a)
    presence.add(b)
    assert presence.remove(a) is False
    await asyncio.sleep(GRACE * 3)
    assert gone == [] and presence.online("r") == {"bob"}
    await presence.stop()


async def test_events_go_to_the_room_or_one_member_in_order() -> None:
    presence, _ = setup()
    ann, bob, other = Sink(), Sink(), Sink()
    presence.add(Connection("r", "ann", ann.send, ann.close))
    presence.add(Connection("r", "bob", bob.send, bob.close))
    presence.add(Connection("q", "cat", other.send, other.close))
    presence.broadcast("r", {"type": "state", "n": 1})
    presence.send_to("r", "ann", {"type": "promoted"})
    presence.broadcast("r", {"type": "state", "n": 2})
    presence.close_user("r", "bob", 4003, "removed")
    await asyncio.sleep(0.01)
    assert ann.sent == ['{"type": "state", "n": 1}', '{"type": "promoted"}',
                        '{"type": "state", "n": 2}']
    assert bob.sent == ['{"type": "state", "n": 1}', '{"type": "state", "n": 2}']
    assert bob.closed == [(4003, "removed")] and other.sent == []
    await presence.stop()


async def test_expected_member_who_never_connects_leaves() -> None:
    presence, gone = setup()
    presence.expect("r", "restored")
    await asyncio.sleep(GRACE * 3)
    assert gone == [("r", "restored")]
    await presence.stop()
