"""Bot adapters for Janus (VideoRoom plugin over the Janus HTTP API), for side-by-side benches.

Same media as the hubbub bots (pre-encoded tagged Opus, RFC 6464 levels, ICE controlling, DTLS
client, SRTP); only the signaling differs:

- `JanusApi`: one Janus session, long-poll event loop (`GET /janus/<session>?maxev=N`), requests
  matched to their events by transaction id.
- `JanusPublisherBot`: `joinandconfigure` as a VideoRoom publisher with our offer as jsep. The
  offer says `a=setup:active` (RFC 5763 §5 lets the offerer pick), so Janus answers passive and
  the bot stays the DTLS client as against hubbub.
- `JanusListenerBot`: one multistream subscriber handle (Janus 1.x) for several feeds. Janus
  offers; the bot answers recvonly with `a=setup:active` and runs ICE as the controlling agent
  toward Janus's ice-lite host candidate.
- `CountingPeer`: a `BotPeer` that counts SRTP packets and sequence gaps per SSRC from the clear
  RTP header without decrypting (RFC 3711 §3.1 leaves the header unencrypted), so hundreds of
  listeners cost the load generator little; a few full listeners measure latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import socket
import struct
from collections.abc import Callable
from typing import Any

import httpx

from hubbub.client.bots.drain import DrainLink
from hubbub.client.bots.dtls import DtlsClient
from hubbub.client.bots.frames import FrameBook
from hubbub.client.bots.ice import HOST_PRIORITY, IceClient
from hubbub.client.bots.listener import ListenerBot, MidStats
from hubbub.client.bots.offer import LocalTransport, ServerAnswer, publisher_offer
from hubbub.client.bots.opus import FrameSet
from hubbub.client.bots.peer import CHECK_INTERVAL, CONSENT_INTERVAL, BotPeer
from hubbub.client.bots.publisher import PublisherBot
from hubbub.media import ice, sdp
from hubbub.media.dtls import Certificate

VIDEOROOM = "janus.plugin.videoroom"
_SEQ_SSRC = struct.Struct("!H4xI")


class JanusError(RuntimeError):
    """Janus answered a request with an error."""


class JanusApi:
    """One Janus session over the HTTP transport; `await open()`, attach handles, `close()`."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session_id = 0
        self._http = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=64))
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reply = await self._post(self.base_url, {"janus": "create"})
        self.session_id = int(reply["data"]["id"])
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def attach(self, plugin: str = VIDEOROOM) -> int:
        reply = await self._post(f"{self.base_url}/{self.session_id}",
                                 {"janus": "attach", "plugin": plugin})
        return int(reply["data"]["id"])

    async def request(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request (create, list...): the plugin's data comes back inline."""
        reply = await self._post(f"{self.base_url}/{self.session_id}/{handle}",
                                 {"janus": "message", "body": body})
        data: dict[str, Any] = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data['error']}")
        return data

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None,
                      timeout: float = 10.0) -> dict[str, Any]:
        """An asynchronous plugin request: acked, then answered by an event (long poll)."""
        transaction = f"t{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        payload: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            payload["jsep"] = jsep
        try:
            await self._post(f"{self.base_url}/{self.session_id}/{handle}", payload, transaction)
            async with asyncio.timeout(timeout):
                event = await future
        finally:
            self._waiting.pop(transaction, None)
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data['error']}")
        return event

    async def trickle(self, handle: int, candidate: str, mid: str = "0") -> None:
        """Our one host candidate, then end-of-candidates (RFC 8838 §4)."""
        url = f"{self.base_url}/{self.session_id}/{handle}"
        await self._post(url, {"janus": "trickle", "candidates": [
            {"candidate": candidate, "sdpMid": mid, "sdpMLineIndex": 0}, {"completed": True}]})

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.session_id:
            with contextlib.suppress(httpx.HTTPError, JanusError):
                await self._post(f"{self.base_url}/{self.session_id}", {"janus": "destroy"})
        await self._http.aclose()

    async def _post(self, url: str, payload: dict[str, Any],
                    transaction: str | None = None) -> dict[str, Any]:
        payload.setdefault("transaction", transaction or f"t{next(self._ids)}")
        response = await self._http.post(url, json=payload)
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        if reply.get("janus") == "error":
            raise JanusError(f"{payload['janus']}: {reply.get('error')}")
        return reply

    async def _poll(self) -> None:
        url = f"{self.base_url}/{self.session_id}"
        while True:
            try:
                response = await self._http.get(url, params={"maxev": 50})
                events = response.json()
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(0.1)
                continue
            for event in events if isinstance(events, list) else [events]:
                future = self._waiting.get(str(event.get("transaction")))
                if future is not None and not future.done() and event.get("janus") == "event":
                    future.set_result(event)


class JanusPeer(BotPeer):
    """A bot peer whose socket exists before ICE starts, so its host candidate can be trickled.

    libnice in lite mode (Janus) answers checks from a peer-reflexive address but never
    nominates that pair, so the bot trickles its real host candidate (RFC 8838) first and keeps
    sending nominating checks until DTLS has keyed SRTP."""

    _sock: socket.socket | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # libnice sends triggered checks even in lite mode and nominates only once we answer
        # one (RFC 8445 §7.3: a Binding request gets a success response signed with our pwd).
        if len(data) > 1 and data[0] == 0 and data[1] == 1:  # Binding request
            self._answer_check(data, addr)
            return
        super().datagram_received(data, addr)

    def _answer_check(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = ice.parse_binding_request(data)
        except ValueError:
            return
        # We are the controlling agent and Janus says ICE-CONTROLLED: no role conflict here,
        # so only the message integrity is checked (RFC 8445 §7.3.1.1).
        if not request.message.check_message_integrity(self.local.ice_pwd.encode()):
            return
        self._send_raw(ice.success_response(request, addr, self.local.ice_pwd))

    def prepare(self, server: tuple[str, int]) -> str:
        """Bind a UDP socket toward `server`; returns our host candidate's a=candidate value."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(server)  # binds to the source address the route to `server` uses
        sock.setblocking(False)
        self._sock = sock
        ip, port = sock.getsockname()[:2]
        return f"candidate:1 1 udp {HOST_PRIORITY} {ip} {port} typ host"

    async def connect(self, answer: ServerAnswer, timeout: float = 10.0) -> None:
        sock = self._sock
        if sock is None:
            await super().connect(answer, timeout)
            return
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self._ice = IceClient(self.local.ice_ufrag, answer.ice_ufrag, answer.ice_pwd)
        self._dtls = DtlsClient(self.certificate, answer.fingerprints, self._send_raw)
        self._transport = await self._open(answer.address, sock)
        async with asyncio.timeout(timeout):
            while not self._checked.is_set():
                self._send_raw(self._ice.request(nominate=True))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECK_INTERVAL):
                        await self._checked.wait()
            self._consent = loop.call_later(CONSENT_INTERVAL, self._refresh_consent)
            self._dtls.start()
            self._arm_dtls_timer()
            while not self._connected.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECK_INTERVAL * 2):
                        await asyncio.shield(self._connected)
                if not self._connected.done():
                    self._send_raw(self._ice.request(nominate=True))
            await self._connected


class CountingPeer(BotPeer):
    """Counts inbound SRTP per SSRC (packets, sequence gaps) without decrypting anything."""

    def __init__(self, certificate: Certificate) -> None:
        super().__init__(certificate, on_rtp=None)
        self.counting = True  # on a Drain, SRTP is counted in C and never reaches Python
        # ssrc -> [packets, last seq, lost]
        self.by_ssrc: dict[int, list[int]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
            self.rtp_in += 1
            seq, ssrc = _SEQ_SSRC.unpack_from(data, 2)
            entry = self.by_ssrc.get(ssrc)
            if entry is None:
                self.by_ssrc[ssrc] = [1, seq, 0]
                return
            gap = (seq - entry[1]) & 0xFFFF
            entry[0] += 1
            if gap < 0x8000:
                entry[1] = seq
                entry[2] += gap - 1
            return
        super().datagram_received(data, addr)

    def totals(self) -> tuple[int, int]:
        """(packets, lost) over all SSRCs."""
        if isinstance(self._transport, DrainLink):
            return self._transport.counts()
        return (sum(e[0] for e in self.by_ssrc.values()),
                sum(e[2] for e in self.by_ssrc.values()))


class JanusCountingPeer(CountingPeer, JanusPeer):
    """`CountingPeer` with Janus's check behaviour."""


def use_counting_peer(bot: ListenerBot) -> CountingPeer:
    """Swap a listener's decrypting peer for a counting one (call before `start`)."""
    kind = JanusCountingPeer if isinstance(bot.peer, JanusPeer) else CountingPeer
    peer = kind(bot.peer.certificate)
    peer.drain = bot.peer.drain
    peer.tcp = bot.peer.tcp
    bot.peer = peer
    return peer


# --- publishers -------------------------------------------------------------------------


class JanusPublisherBot(PublisherBot):
    """A VideoRoom publisher; `feed_id` is Janus's publisher id once `start` returned."""

    def __init__(self, api: JanusApi, room: int, frames: FrameSet, book: FrameBook,
                 **options: Any) -> None:
        super().__init__(api.base_url, f"room-{room}", frames, book, **options)
        self.peer = JanusPeer(self.peer.certificate)
        self.api = api
        self.room = room
        self.feed_id = 0
        self.handle = 0

    async def start(self, timeout: float = 10.0) -> None:
        offer = publisher_offer(self.peer.local, self.ssrc, f"bot{self.bot_id}", self.dtx)
        offer = offer.replace("a=setup:actpass", "a=setup:active")
        self.handle = await self.api.attach()
        body = {"request": "joinandconfigure", "room": self.room, "ptype": "publisher",
                "display": f"bot{self.bot_id}", "audio": True, "video": False}
        event = await self.api.message(self.handle, body, {"type": "offer", "sdp": offer},
                                       timeout=timeout)
        self.feed_id = int(event["plugindata"]["data"]["id"])
        answer = server_description(event["jsep"]["sdp"])
        if isinstance(self.peer, JanusPeer):
            await self.api.trickle(self.handle, self.peer.prepare(answer.address))
        await self.peer.connect(answer, timeout=timeout)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.peer.close()


# --- listeners --------------------------------------------------------------------------


class JanusListenerBot(ListenerBot):
    """One multistream subscriber handle receiving `feeds` in one PeerConnection.

    Janus's m-lines become this bot's `slot_mids` (there is no main m-line: `main_mid` is "").
    """

    def __init__(self, api: JanusApi, room: int, feeds: Callable[[], list[int]], book: FrameBook,
                 **options: Any) -> None:
        super().__init__(api.base_url, f"room-{room}", book, **options)
        self.peer = JanusPeer(self.peer.certificate, on_rtp=self._on_rtp)
        self.api = api
        self.room = room
        self.feeds = feeds
        self.handle = 0

    async def start(self, timeout: float = 10.0) -> None:
        self.handle = await self.api.attach()
        body = {"request": "join", "room": self.room, "ptype": "subscriber",
                "streams": [{"feed": feed} for feed in self.feeds()]}
        event = await self.api.message(self.handle, body, timeout=timeout)
        offer_text = event["jsep"]["sdp"]
        offer = server_description(offer_text)
        answer, mids = subscriber_answer(offer_text, self.peer.local)
        self.main_mid, self.slot_mids = "", mids
        self.mids = {mid: MidStats(mid) for mid in mids}
        self.slot_sources = dict.fromkeys(mids)
        self._mid_ext = next((ids[sdp.URI_MID] for ids in offer.ext_ids.values()
                              if sdp.URI_MID in ids), 0)
        for mid, ssrcs in offer.ssrcs.items():
            if mid in self.mids:
                for ssrc in ssrcs:
                    self._by_ssrc[ssrc] = self.mids[mid]
        await self.api.message(self.handle, {"request": "start"},
                               {"type": "answer", "sdp": answer}, timeout=timeout)
        if isinstance(self.peer, JanusPeer):
            await self.api.trickle(self.handle, self.peer.prepare(offer.address), mids[0])
        await self.peer.connect(offer, timeout=timeout)

    async def stop(self) -> None:
        self.peer.close()


# --- SDP --------------------------------------------------------------------------------


def server_description(text: str) -> ServerAnswer:
    """What a bot needs from Janus's SDP (offer or answer): ICE credentials, fingerprint, the
    UDP host candidate, extension ids and SSRCs per mid. Raises `sdp.SdpError`."""
    description = sdp.parse(text)
    live = [m for m in description.media if m.port != 0]
    if not live:
        raise sdp.SdpError("Janus SDP has no live m-line")
    first = live[0]
    if first.ice_ufrag is None or first.ice_pwd is None or not first.fingerprints:
        raise sdp.SdpError("Janus SDP has no ICE credentials or fingerprint")
    if first.setup == "active":
        raise sdp.SdpError("Janus SDP has a=setup:active; bots can only be DTLS clients")
    address: tuple[str, int] | None = None
    for m in live:
        for candidate in m.candidates:
            # RFC 8839 §5.1: foundation component transport priority address port typ type
            parts = candidate.split()
            if len(parts) >= 8 and parts[1] == "1" and parts[2].lower() == "udp":
                address = (parts[4], int(parts[5]))
                break
        if address is not None:
            break
    if address is None:
        raise sdp.SdpError("Janus SDP has no UDP host candidate")
    return ServerAnswer(
        ice_ufrag=first.ice_ufrag,
        ice_pwd=first.ice_pwd,
        fingerprints=list(first.fingerprints),
        address=address,
        ext_ids={m.mid: {uri: i for i, uri in m.extmaps.items()} for m in live},
        ssrcs={m.mid: list(m.ssrcs) for m in live},
    )


def subscriber_answer(offer_text: str, local: LocalTransport) -> tuple[str, list[str]]:
    """Answer Janus's subscriber offer (RFC 8829 §5.3): every audio m-line recvonly with its
    first Opus payload type and the offered MID/audio-level extensions, one BUNDLE transport,
    `a=setup:active` (we are the DTLS client, RFC 5763 §5). Returns (answer, accepted mids)."""
    offer = sdp.parse(offer_text)
    mids = [m.mid for m in offer.media if m.kind == "audio" and m.port != 0]
    lines = ["v=0", f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE " + " ".join(m.mid for m in offer.media), "a=msid-semantic: WMS"]
    for m in offer.media:
        opus = next((c for c in m.codecs if c.name.lower() == "opus"), None)
        if m.kind != "audio" or m.port == 0 or opus is None:
            lines += [f"m={m.kind} 0 {m.protocol} {' '.join(m.raw_formats)}",
                      "c=IN IP4 0.0.0.0", f"a=mid:{m.mid}", "a=inactive"]
            if m.mid in mids:
                mids.remove(m.mid)
            continue
        pt = opus.payload_type
        lines += [
            f"m=audio 9 UDP/TLS/RTP/SAVPF {pt}",
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{local.ice_ufrag}",
            f"a=ice-pwd:{local.ice_pwd}",
            f"a=fingerprint:sha-256 {local.fingerprint}",
            "a=setup:active",
            f"a=mid:{m.mid}",
            *(f"a=extmap:{i} {uri}" for i, uri in m.extmaps.items()
              if uri in (sdp.URI_MID, sdp.URI_AUDIO_LEVEL)),
            "a=recvonly",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} opus/48000/2",
            f"a=fmtp:{pt} minptime=10;useinbandfec=1",
        ]
    return "\r\n".join(lines) + "\r\n", mids
