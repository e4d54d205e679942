"""aiortc as a WHIP publisher and a WHEP player, over plain HTTP (httpx).

Test-side patches, not server features: stock aiortc needs `bundlePolicy=MAX_BUNDLE` (a
second m-line of a kind otherwise stays on a transport BUNDLE dropped), it never offers
127.0.0.1 as a candidate (`use_loopback_only`), and it routes RTP by SSRC only
(`use_mid_routing`, for multiplexed audio announced without a=ssrc). The offer carries every
candidate: aiortc gathers before `setLocalDescription` returns, so there is nothing to trickle.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self
from urllib.parse import urljoin

import httpx
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from hubbub.client.patches import use_empty_frame_guard, use_loopback_only, use_mid_routing

SDP = "application/sdp"


class WhipError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text}")
        self.status = status
        self.text = text


class _HttpPeer:
    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint
        self.token = token
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.location: str | None = None
        self.etag: str | None = None
        self.links: list[str] = []
        self.http = httpx.AsyncClient(timeout=10)

    def headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _negotiate(self, timeout: float) -> None:
        use_loopback_only()
        use_mid_routing()
        use_empty_frame_guard()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = await self.http.post(self.endpoint, content=self.pc.localDescription.sdp,
                                     headers=self.headers(**{"Content-Type": SDP}))
        if reply.status_code != 201:
            raise WhipError(reply.status_code, reply.text)
        self.location = urljoin(self.endpoint, reply.headers["location"])
        self.etag = reply.headers.get("etag")
        self.links = reply.headers.get_list("link")
        await self.pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
        await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.pc.connectionState != "connected":
                if self.pc.connectionState in ("failed", "closed"):
                    raise ConnectionError(f"peer connection {self.pc.connectionState}")
                await asyncio.sleep(0.05)

    async def delete(self) -> httpx.Response:
        assert self.location is not None
        return await self.http.delete(self.location, headers=self.headers())

    async def close(self) -> None:
        if self.location is not None:
            try:
                await self.delete()
            except httpx.HTTPError:
                pass
        await self.pc.close()
        await self.http.aclose()

    async def start(self, timeout: float = 10.0) -> Self:
        try:
            await self._negotiate(timeout)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class WhipPublisher(_HttpPeer):
    """Publishes `tracks` (sendonly, `codec` video) to a WHIP endpoint."""

    def __init__(self, endpoint: str, token: str | None, tracks: list[MediaStreamTrack],
                 codec: str = "vp8") -> None:
        super().__init__(endpoint, token)
        for track in tracks:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                codecs = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in codecs if c.mimeType.lower() in (f"video/{codec}", "video/rtx")])


class WhepPlayer(_HttpPeer):
    """Plays a WHEP endpoint: recvonly audio (`audio` m-lines: the first is the main track, the
    others multiplexed slots) and, with `video`, one recvonly video."""

    def __init__(self, endpoint: str, token: str | None = None, audio: int = 1,
                 video: bool = True) -> None:
        super().__init__(endpoint, token)
        for _ in range(audio):
            self.pc.addTransceiver("audio", direction="recvonly")
        if video:
            self.pc.addTransceiver("video", direction="recvonly")

    @property
    def tracks_by_mid(self) -> dict[str, MediaStreamTrack]:
        return {t.mid: t.receiver.track for t in self.pc.getTransceivers() if t.mid is not None}

    def mid_of(self, kind: str, index: int = 0) -> str:
        mids = [t.mid for t in self.pc.getTransceivers() if t.kind == kind and t.mid]
        return str(mids[index])
