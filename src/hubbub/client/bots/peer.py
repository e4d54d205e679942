"""One bot's media path: a UDP socket to the server's candidate, ICE checks, DTLS client, SRTP.

Demux by first byte (RFC 7983 §7): 0–3 STUN, 20–63 DTLS, 128–191 RTP/RTCP. Inbound SRTP is
only decrypted when the owner asked for it (`on_rtp`): a publisher bot ignores the server's RTCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from hubbub.client.bots.drain import Drain, DrainLink
from hubbub.client.bots.dtls import DtlsClient, DtlsError
from hubbub.client.bots.ice import IceClient
from hubbub.client.bots.offer import LocalTransport, ServerAnswer
from hubbub.media import ice
from hubbub.media.dtls import Certificate
from hubbub.media.srtp import SrtpError, SrtpPair

CONSENT_INTERVAL = 5.0  # RFC 7675 §5.1: consent checks every ~5 s (server drops us after 30 s)
CHECK_INTERVAL = 0.05  # first checks: RFC 8445 §14.2 Ta, fast on loopback


class _IceTcp(asyncio.Protocol):
    """The bot's end of an ICE-TCP connection (RFC 6544 active, RFC 4571 framing), shaped
    like a connected datagram transport for `BotPeer`: `sendto(data)` sends one frame, and
    each frame received is handed to the peer as a datagram."""

    def __init__(self, peer: BotPeer, remote: tuple[str, int]) -> None:
        self.peer = peer
        self.remote = remote
        self.tcp: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        while len(buf) - pos >= 2:
            size = (buf[pos] << 8) | buf[pos + 1]
            if len(buf) - pos - 2 < size:
                break
            self.peer.datagram_received(bytes(buf[pos + 2 : pos + 2 + size]), self.remote)
            pos += 2 + size
        del buf[:pos]

    def sendto(self, data: bytes) -> None:
        if self.tcp is not None:
            self.tcp.write(len(data).to_bytes(2, "big") + data)

    def close(self) -> None:
        if self.tcp is not None:
            self.tcp.close()


class BotPeer(asyncio.DatagramProtocol):
    """Create with a certificate, put `local` into the offer, then `await connect(answer)`.
    `tcp = True` before connecting: over the answer's ICE-TCP candidate instead of UDP."""

    def __init__(
        self,
        certificate: Certificate,
        on_rtp: Callable[[bytes], None] | None = None,
    ) -> None:
        self.certificate = certificate
        ufrag, pwd = ice.new_credentials()
        self.local = LocalTransport(ufrag, pwd, certificate.fingerprint)
        self.on_rtp = on_rtp
        self.srtp: SrtpPair | None = None
        self.srtp_errors = 0
        self.rtp_in = 0
        self.rtcp_in = 0
        self.bytes_in = 0
        # Receive through a shared `Drain` instead of an asyncio transport (set before
        # connect); `counting` asks the Drain to count SRTP in C instead of passing it up.
        self.drain: Drain | None = None
        self.counting = False
        self.arrival_ns = 0  # kernel arrival time of the datagram being handled (Drain), or 0
        self._transport: asyncio.DatagramTransport | DrainLink | _IceTcp | None = None
        self._ice: IceClient | None = None
        self._dtls: DtlsClient | None = None
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._consent: asyncio.TimerHandle | None = None
        self._checked: asyncio.Event = asyncio.Event()
        self._connected: asyncio.Future[None] | None = None
        self.closed = False
        self.tcp = False

    async def connect(self, answer: ServerAnswer, timeout: float = 10.0) -> None:
        """ICE, then DTLS; returns once SRTP is keyed. Raises TimeoutError or DtlsError."""
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self._ice = IceClient(self.local.ice_ufrag, answer.ice_ufrag, answer.ice_pwd)
        self._dtls = DtlsClient(self.certificate, answer.fingerprints, self._send_raw)
        if self.tcp:
            if answer.tcp_address is None:
                raise ValueError("the answer has no ICE-TCP candidate")
            self._transport = await self._open_tcp(answer.tcp_address)
        else:
            self._transport = await self._open(answer.address)
        async with asyncio.timeout(timeout):
            while not self._checked.is_set():
                self._send_raw(self._ice.request(nominate=True))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECK_INTERVAL):
                        await self._checked.wait()
            self._consent = loop.call_later(CONSENT_INTERVAL, self._refresh_consent)
            self._dtls.start()
            self._arm_dtls_timer()
            await self._connected

    async def _open_tcp(self, remote: tuple[str, int]) -> _IceTcp:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _IceTcp(self, remote), *remote)
        return protocol

    async def _open(
        self, remote: tuple[str, int], sock: socket.socket | None = None
    ) -> asyncio.DatagramTransport | DrainLink:
        """A transport to `remote`: on the Drain when one is set, else an asyncio endpoint."""
        loop = asyncio.get_running_loop()
        if self.drain is not None:
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect(remote)
            sock.setblocking(False)
            return self.drain.attach(self, sock, self.counting)
        if sock is not None:
            transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        else:
            transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=remote)
        return transport

    # -- asyncio.DatagramProtocol ---------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data:
            return
        first = data[0]
        if first > 127:
            self.bytes_in += len(data)
            srtp = self.srtp
            if srtp is None or self.on_rtp is None:
                return
            # RFC 5761 §4: RTCP packet types 192..223 sit where RTP's M+PT is.
            if 191 < data[1] < 224:
                self.rtcp_in += 1
                return  # bots do not act on the server's SR/RTCP
            try:
                plain = srtp.unprotect(data)
            except SrtpError:
                self.srtp_errors += 1
                return
            self.rtp_in += 1
            self.on_rtp(plain)
        elif first < 4:
            if self._ice is not None and self._ice.handle(data):
                self._checked.set()
        elif 19 < first < 64:
            self._receive_dtls(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable while the server restarts; consent checks carry on

    # -- sending --------------------------------------------------------------------------

    def send_rtp(self, packet: bytes) -> None:
        srtp = self.srtp
        transport = self._transport
        if srtp is None or transport is None:
            return
        transport.sendto(srtp.protect(packet))

    def send_rtcp(self, packet: bytes) -> None:
        srtp = self.srtp
        transport = self._transport
        if srtp is None or transport is None:
            return
        transport.sendto(srtp.protect_rtcp(packet))

    def _send_raw(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.sendto(data)

    # -- ICE consent and DTLS -------------------------------------------------------------

    def _refresh_consent(self) -> None:
        if self.closed or self._ice is None:
            return
        self._send_raw(self._ice.request(nominate=True))
        self._consent = asyncio.get_running_loop().call_later(
            CONSENT_INTERVAL, self._refresh_consent
        )

    def _receive_dtls(self, data: bytes) -> None:
        dtls = self._dtls
        if dtls is None:
            return
        try:
            keys = dtls.receive(data)
        except DtlsError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # OpenSSL errors on garbage must not escape the protocol
            self._fail(DtlsError(f"DTLS error: {exc}"))
            return
        if keys is not None:
            self.srtp = SrtpPair(keys)
            self._cancel_dtls_timer()
            if self._connected is not None and not self._connected.done():
                self._connected.set_result(None)
        else:
            self._arm_dtls_timer()

    def _fail(self, exc: Exception) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(exc)

    def _arm_dtls_timer(self) -> None:
        self._cancel_dtls_timer()
        delay = self._dtls.timeout() if self._dtls is not None else None
        if delay is not None:
            self._dtls_timer = asyncio.get_running_loop().call_later(
                max(delay, 0.01), self._on_dtls_timer
            )

    def _on_dtls_timer(self) -> None:
        self._dtls_timer = None
        if self._dtls is None or self.closed:
            return
        try:
            self._dtls.handle_timeout()
        except Exception as exc:
            self._fail(DtlsError(f"DTLS retransmission failed: {exc}"))
            return
        self._arm_dtls_timer()

    def _cancel_dtls_timer(self) -> None:
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None

    def close(self) -> None:
        """close_notify, stop timers, close the socket. Idempotent."""
        if self.closed:
            return
        if self._dtls is not None:
            self._dtls.close()
        self.closed = True
        self._cancel_dtls_timer()
        if self._consent is not None:
            self._consent.cancel()
        if self._transport is not None:
            self._transport.close()
        self.srtp = None
