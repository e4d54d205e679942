"""What Publisher and Viewer share: one signaling socket, one aiortc peer connection, one offer.

Lifecycle: ``connect()`` creates the peer connection, lets the subclass add its transceivers,
gathers ICE (the offer carries every candidate, no trickle), sends the subclass's command, applies
the answer and waits for the connection to reach ``connected``. ``close()`` closes the socket and
the peer connection; it is idempotent and also runs when ``connect()`` fails.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from hubbub.client.events import EventLog, Predicate
from hubbub.client.patches import (
    is_ipv6_url,
    is_loopback_url,
    use_empty_frame_guard,
    use_loopback_only,
    use_mid_routing,
)
from hubbub.client.signaling import EventCallback, Signaling, SignalingError


class PeerSession:
    command_name = ""  # "publish" or "view"

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        ice_servers: list[RTCIceServer] | None,
        on_event: EventCallback | None,
        ice_transport_policy: str = "all",
    ) -> None:
        self.url = url
        self.token = token
        self.response: dict[str, Any] = {}
        self._ice_servers = ice_servers or []  # no default STUN server: no network in tests
        # "relay" (W3C webrtc-pc §4.2.1): gather only TURN candidates, so media goes through
        # the TURN server or not at all. ValueError for anything but "all" / "relay".
        self._ice_transport_policy = RTCIceTransportPolicy(ice_transport_policy)
        self._log = EventLog()
        self._log.on_event = on_event
        self._pc: RTCPeerConnection | None = None
        self._signaling: Signaling | None = None

    # -- subclass hooks -------------------------------------------------------------------

    def _add_transceivers(self, pc: RTCPeerConnection) -> None:
        raise NotImplementedError

    def _command_data(self, sdp: str) -> dict[str, Any]:
        raise NotImplementedError

    def _on_answer(self, pc: RTCPeerConnection, reply: dict[str, Any]) -> None:
        """Called after the answer is applied."""

    def _answer_sdp(self, sdp: str) -> str:
        """The answer as applied; a subclass may rewrite it (the tests send media through an
        ICE-TCP bridge this way: aioice has no ICE-TCP)."""
        return sdp

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        """Called for each event before it is logged (and waiters wake)."""

    # -- public API -----------------------------------------------------------------------

    @property
    def pc(self) -> RTCPeerConnection:
        if self._pc is None:
            raise RuntimeError("not connected")
        return self._pc

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Every event received, in order."""
        return self._log.events

    @property
    def on_event(self) -> EventCallback | None:
        return self._log.on_event

    @on_event.setter
    def on_event(self, callback: EventCallback | None) -> None:
        self._log.on_event = callback

    @property
    def closed(self) -> bool:
        """True once the signaling socket is closed (by us or by the server)."""
        return self._signaling is not None and self._signaling.closed

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        """Negotiate and wait until media flows; return the command's reply data."""
        if self._pc is not None:
            raise RuntimeError("connect() called twice")
        if is_loopback_url(self.url):
            use_loopback_only(ipv6=is_ipv6_url(self.url))
        use_mid_routing()
        use_empty_frame_guard()
        # max-bundle: with aiortc's default "balanced" policy, a second m-line of a kind starts on
        # the first one's transport and stays there when BUNDLE moves that one to the primary
        # transport, so it never receives anything (multiplexed audio after a video m-line).
        self._pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=self._ice_servers,
                iceTransportPolicy=self._ice_transport_policy,
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        try:
            self._add_transceivers(self._pc)
            await self._pc.setLocalDescription(await self._pc.createOffer())
            self._signaling = Signaling(
                self.url, self.token, on_event=self._handle_event, on_close=self._log.close
            )
            await self._signaling.connect()
            reply = await self._signaling.command(
                self.command_name, self._command_data(self._pc.localDescription.sdp), timeout
            )
            answer = reply.get("sdp")
            if not isinstance(answer, str):
                raise SignalingError("reply has no sdp string", self.command_name)
            self.response = reply
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=self._answer_sdp(answer), type="answer"))
            self._on_answer(self._pc, reply)
            await self.wait_connected(timeout)
        except BaseException:
            await self.close()
            raise
        return reply

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait for ICE + DTLS to finish; ``ConnectionError`` if the connection fails."""
        pc = self.pc
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def check() -> None:
            if done.done():
                return
            if pc.connectionState == "connected":
                done.set_result(None)
            elif pc.connectionState in ("failed", "closed"):
                done.set_exception(ConnectionError(f"peer connection {pc.connectionState}"))

        pc.on("connectionstatechange", check)
        try:
            check()
            async with asyncio.timeout(timeout):
                await done
        finally:
            pc.remove_listener("connectionstatechange", check)

    async def wait_for_event(
        self,
        name: str,
        predicate: Predicate | None = None,
        *,
        since: int = 0,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """See ``EventLog.wait_for``: first matching event at index >= ``since``."""
        return await self._log.wait_for(name, predicate, since=since, timeout=timeout)

    async def command(self, name: str, data: dict[str, Any], timeout: float = 10.0) -> Any:
        """Send another command on this session's socket (e.g. ``project``, ``select``)."""
        if self._signaling is None:
            raise RuntimeError("not connected")
        return await self._signaling.command(name, data, timeout)

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the server (or we) closed the signaling socket."""
        if self._signaling is None:
            raise RuntimeError("not connected")
        await self._signaling.wait_closed(timeout)

    async def close(self) -> None:
        if self._signaling is not None:
            await self._signaling.close()
        if self._pc is not None:
            await self._pc.close()
        self._log.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _handle_event(self, name: str, data: dict[str, Any]) -> None:
        self._on_event(name, data)
        self._log.append(name, data)
