"""ListenerBot: views a stream with a main audio m-line plus N multiplexed slots, decrypts and
records per mid what arrives and from which publisher bot. Nothing is decoded.

The mid of a packet comes from its MID header extension (the server writes it on every packet,
PROTOCOL.md "view"), read once per SSRC and cached; the sender comes from the payload bytes
(`FrameBook.owner`), because the server rewrites SSRC, sequence number and timestamp.
"""

from __future__ import annotations

import array
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from hubbub.client.bots.frames import FrameBook
from hubbub.client.bots.offer import listener_offer, parse_answer
from hubbub.client.bots.peer import BotPeer
from hubbub.client.signaling import Signaling
from hubbub.media import rtp, sdp
from hubbub.media.dtls import Certificate

_SEQ = struct.Struct("!H")
_SSRC = struct.Struct("!I")
MAX_LATENCY_NS = 1_000_000_000  # one 50-frame cycle: beyond it the send-time ring has moved on
ONSET_GAP_NS = 100_000_000  # 5 missing frames: the sender was in DTX silence, a new talkspurt
EVENTS = ["active", "inactive", "vad", "stopped"]


@dataclass
class MidStats:
    """What one m-line received. Times are `time.monotonic_ns()`."""

    mid: str
    packets: int = 0
    bytes: int = 0  # payload bytes
    first_ns: int = 0
    last_ns: int = 0
    lost: int = 0  # sequence numbers skipped (RFC 3550 §A.3 style, without reordering repair)
    out_of_order: int = 0  # late or duplicate sequence numbers
    unknown: int = 0  # payloads not in the FrameBook
    silence: int = 0  # non-DTX silence frames
    per_bot: dict[int, int] = field(default_factory=dict)
    bot: int | None = None  # sender of the last packet
    talking: bool = False  # was the last packet a tone frame
    changes: list[tuple[int, int]] = field(default_factory=list)  # (arrival, bot) on change
    # (arrival, bot) of the first tone packet after another sender, silence or a DTX gap
    onsets: list[tuple[int, int]] = field(default_factory=list)
    latency_ns: array.array[int] = field(default_factory=lambda: array.array("q"))
    last_seq: int = -1


class ListenerBot:
    """One viewing bot. `await start()` sends `view` and connects; stats fill in `mids`."""

    def __init__(
        self,
        url: str,
        stream: str,
        book: FrameBook,
        *,
        slots: int = 0,
        video: bool = False,
        pinned_source_id: str | None = None,
        excluded_source_ids: list[str] | None = None,
        token: str | None = None,
        certificate: Certificate | None = None,
        record_latency: bool = True,
        tcp: bool = False,
    ) -> None:
        if slots < 0:
            raise ValueError(f"slots must be >= 0, got {slots}")
        self.url = url
        self.stream = stream
        self.book = book
        self.slots = slots
        self.video = video
        self.pinned_source_id = pinned_source_id
        self.excluded_source_ids = excluded_source_ids
        self.token = token
        self.record_latency = record_latency
        self.peer = BotPeer(certificate or Certificate(), on_rtp=self._on_rtp)
        self.peer.tcp = tcp  # over the answer's ICE-TCP candidate
        self.signaling: Signaling | None = None
        self.main_mid = ""
        self.slot_mids: list[str] = []
        self.mids: dict[str, MidStats] = {}
        self.vad: list[tuple[int, str, str | None]] = []  # (arrival, mid, sourceId)
        self.slot_sources: dict[str, str | None] = {}  # mid -> sourceId, from vad events
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # other events
        self.unrouted = 0  # packets whose SSRC/MID named no m-line of ours
        self._by_ssrc: dict[int, MidStats] = {}
        self._mid_ext = 0

    async def start(self, timeout: float = 10.0) -> None:
        offer, audio_mids = listener_offer(self.peer.local, self.slots, self.video)
        self.main_mid, self.slot_mids = audio_mids[0], audio_mids[1:]
        self.mids = {mid: MidStats(mid) for mid in audio_mids}
        self.slot_sources = dict.fromkeys(self.slot_mids)
        self.signaling = Signaling(self.url, self.token, on_event=self._on_event)
        await self.signaling.connect()
        data: dict[str, Any] = {"streamId": self.stream, "sdp": offer, "events": EVENTS,
                                "vad": self.slots > 0}
        if self.pinned_source_id is not None:
            data["pinnedSourceId"] = self.pinned_source_id
        if self.excluded_source_ids is not None:
            data["excludedSourceIds"] = list(self.excluded_source_ids)
        reply = await self.signaling.command("view", data, timeout=timeout)
        answer = parse_answer(str(reply["sdp"]))
        self._mid_ext = answer.ext_ids.get(self.main_mid, {}).get(sdp.URI_MID, 0)
        for mid, ssrcs in answer.ssrcs.items():  # a=ssrc lines, if any; MID ext otherwise
            if mid in self.mids:
                for ssrc in ssrcs:
                    self._by_ssrc[ssrc] = self.mids[mid]
        await self.peer.connect(answer, timeout=timeout)

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        if name == "vad":
            mid = data.get("mediaId")
            if isinstance(mid, str):
                source = data.get("sourceId")
                source = source if isinstance(source, str) else None
                self.vad.append((now, mid, source))
                self.slot_sources[mid] = source
        else:
            self.events.append((now, name, data))

    def _route(self, plain: bytes, ssrc: int) -> MidStats | None:
        if not self._mid_ext:
            return None
        found = rtp.find_extension(plain, self._mid_ext)
        if found is None:
            return None
        offset, length = found
        stats = self.mids.get(plain[offset : offset + length].decode("ascii", "replace"))
        if stats is not None:
            self._by_ssrc[ssrc] = stats
        return stats

    def _on_rtp(self, plain: bytes) -> None:
        """Hot path: one dict lookup for the m-line, one for the sender, a few counters."""
        now = self.peer.arrival_ns or time.monotonic_ns()  # kernel arrival time on a Drain
        if len(plain) < 12:
            return
        ssrc = _SSRC.unpack_from(plain, 8)[0]
        stats = self._by_ssrc.get(ssrc)
        if stats is None:
            stats = self._route(plain, ssrc)
            if stats is None:
                self.unrouted += 1
                return
        try:
            payload = plain[rtp.payload_offset(plain) :]
        except ValueError:
            stats.unknown += 1
            return
        seq = _SEQ.unpack_from(plain, 2)[0]
        last = stats.last_seq
        if last < 0:
            stats.first_ns = now
        else:
            gap = (seq - last) & 0xFFFF
            if gap == 0 or gap >= 0x8000:
                stats.out_of_order += 1
            else:
                stats.lost += gap - 1
        if last < 0 or ((seq - last) & 0xFFFF) < 0x8000:
            stats.last_seq = seq
        previous = stats.last_ns
        stats.packets += 1
        stats.bytes += len(payload)
        stats.last_ns = now
        owner = self.book.owner.get(payload)
        if owner is None:
            stats.unknown += 1
            return
        bot, index = owner
        stats.per_bot[bot] = stats.per_bot.get(bot, 0) + 1
        if bot != stats.bot:
            stats.changes.append((now, bot))
        talking = not self.book.is_silence(bot, index)
        if talking:
            if not stats.talking or bot != stats.bot or now - previous > ONSET_GAP_NS:
                stats.onsets.append((now, bot))
            if self.record_latency:
                latency = now - self.book.sent_ns[bot][index]
                if 0 < latency < MAX_LATENCY_NS:
                    stats.latency_ns.append(latency)
        else:
            stats.silence += 1
        stats.bot = bot
        stats.talking = talking

    @property
    def packets(self) -> int:
        return sum(s.packets for s in self.mids.values())

    async def stop(self) -> None:
        self.peer.close()
        if self.signaling is not None:
            await self.signaling.close()
