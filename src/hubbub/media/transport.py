"""WebRtcTransport: one peer's ICE-lite + DTLS-SRTP association on the node's media port.

State machine: NEW → CONNECTING (a valid STUN check arrived) → CONNECTED (DTLS done, SRTP
keyed) → CLOSED, or FAILED (bad certificate, handshake error, timeout, consent lost).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hubbub.media import heap, ice, rtp
from hubbub.media.dtls import DtlsError, DtlsServer
from hubbub.media.srtp import PROTECT_FN, SrtpError, SrtpPair
from hubbub.media.twcc import TwccResponder

if TYPE_CHECKING:
    from hubbub.media.tcp import TcpLink
    from hubbub.media.udp import MediaPort

log = logging.getLogger(__name__)

Address = tuple[str, int]

TWCC_INTERVAL = 0.1
"""Seconds between transport-cc feedback packets (the draft suggests ~100 ms)."""

DTLS_CONNECTION_BYTES = 140_000  # measured: malloc'd by one OpenSSL DTLS connection


class TransportState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass
class RemoteParameters:
    """What the peer's SDP told us about its transport."""

    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[tuple[str, str]]


@dataclass
class TransportStats:
    rtp_in: int = 0
    rtcp_in: int = 0
    rtp_out: int = 0
    rtcp_out: int = 0
    srtp_errors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def sockaddr_bytes(addr: Address) -> bytes:
    """`struct sockaddr_in` / `sockaddr_in6` for the C batch sender (sendmmsg msg_name)."""
    host = addr[0]
    try:  # inet_pton, not ipaddress: a tenth of the cost, once per peer address
        packed = socket.inet_pton(socket.AF_INET, host)
    except OSError:
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", addr[1], 0) + packed
                + struct.pack("=I", 0))
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", addr[1]) + packed + bytes(8)


def _ignore_bytes(data: bytes) -> None:
    pass


def _ignore_state(state: TransportState, reason: str) -> None:
    pass


_SENT_RECORD = struct.Struct("<HHd")  # the C Target's drain_sent() records
MAX_UNDRAINED = 4096  # send records kept between two feedbacks (a peer that never sends any)


class SrtpPeer:
    """An SRTP association with one remote address on a MediaPort: counters, protect + send
    (also for the C fan-out through `c_target`) and the receive split of RTP from RTCP.
    `WebRtcTransport` keys it through ICE + DTLS; `media.relay_link.RelayLink` keys it from
    an agreement between two hubbub nodes."""

    def __init__(self, port: MediaPort) -> None:
        self.port = port
        self.addr: Address | None = None
        self.link: TcpLink | None = None  # the ICE-TCP connection we send on; None: UDP
        self._batchable = False  # sends may join the port's C batch (UDP, its family)
        self._sockaddr = b""
        self._srtp: SrtpPair | None = None
        self._stats = TransportStats()
        # Where the C fan-out (Track.on_rtp -> hubbub._speedups.fanout) sends this peer's RTP;
        # ready once SRTP is keyed and the address known, cleared on teardown. None without
        # the extension (or with HUBBUB_NO_SPEEDUPS=1).
        c = rtp.speedups()
        self.c_target: Any = c.Target() if c is not None and PROTECT_FN else None
        self.on_rtp: Callable[[bytes], None] = _ignore_bytes
        self.on_rtcp: Callable[[bytes], None] = _ignore_bytes
        # Send-side bandwidth estimation (enable_send_twcc): the viewer's extension id, our
        # counter when there is no C Target, and what went out through send_rtp since the
        # last drain_sent() (the C fan-out keeps its own record in the Target).
        self.send_twcc_id = 0
        self.last_twcc_seq = -1  # the seq of the last packet send_rtp stamped
        self._twcc_seq = 0
        self._sent: list[tuple[int, int, float]] = []

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters, including what the C fan-out sent for this transport."""
        stats = self._stats
        target = self.c_target
        if target is None:
            return dataclasses.replace(stats, extra=dict(stats.extra))
        return dataclasses.replace(stats, rtp_out=stats.rtp_out + target.packets,
                                   bytes_out=stats.bytes_out + target.octets,
                                   extra=dict(stats.extra))

    def _update_target(self) -> None:
        target = self.c_target
        if target is None:
            return
        srtp = self._srtp
        fd = self.port.send_fd
        if (srtp is None or not srtp.tx_ctx or self.addr is None or fd < 0
                or not self._batchable):
            target.clear()  # over ICE-TCP or the other family: the fan-out calls send_rtp
        else:
            # The direct pair (libsrtp or our GcmSender), the same state SrtpPair.protect uses.
            target.set(fd, srtp.tx_protect_fn, srtp.tx_ctx, self._sockaddr, srtp,
                       self._send_raw)

    def _set_addr(self, addr: Address, link: TcpLink | None = None) -> None:
        self.addr = addr
        self.link = link
        self._batchable = link is None and self.port.batches_to(addr[0])
        self._sockaddr = sockaddr_bytes(addr)
        self._update_target()

    def receive_dtls(self, data: bytes) -> None:
        """A DTLS record from the peer's address (only WebRtcTransport expects any)."""
        self._stats.extra["dtls_ignored"] = self._stats.extra.get("dtls_ignored", 0) + 1

    def enable_send_twcc(self, ext_id: int) -> None:
        """Stamp a transport-wide sequence number on every RTP packet sent (in the element
        rewrite_packet reserved under `ext_id`) and record the sends for `drain_sent`, so the
        peer's transport-cc feedback can drive a bandwidth estimate
        (draft-holmer-rmcat-transport-wide-cc-extensions-01)."""
        self.send_twcc_id = ext_id
        if self.c_target is not None:
            self.c_target.enable_twcc()

    def drain_sent(self) -> list[tuple[int, int, float]]:
        """(transport seq, size, send time) of the packets sent since the last call."""
        sent, self._sent = self._sent, []
        target = self.c_target
        if target is not None and self.send_twcc_id:
            sent += _SENT_RECORD.iter_unpack(target.drain_sent())
        return sent

    def discard_sent(self) -> None:
        """Forget the send records (nobody estimates from them now): no tuples built."""
        self._sent = []
        target = self.c_target
        if target is not None and self.send_twcc_id:
            target.drain_sent()

    def _stamp(self, data: bytes) -> bytes:
        target = self.c_target
        if target is not None:
            seq = target.take_twcc_seq()
        else:
            seq = self._twcc_seq
            self._twcc_seq = (seq + 1) & 0xFFFF
        stamped = rtp.stamp_transport_seq(data, self.send_twcc_id, seq)
        if stamped is None:
            return data  # a packet without the reserved element (e.g. a relay's): as it is
        self.last_twcc_seq = seq
        if len(self._sent) < MAX_UNDRAINED:
            self._sent.append((seq, len(stamped), time.monotonic()))
        return stamped

    def send_rtp(self, data: bytes) -> None:
        srtp = self._srtp
        addr = self.addr
        if srtp is None or addr is None:
            return
        if self.send_twcc_id:
            data = self._stamp(data)
        batch = self.port.batch
        if batch is not None and srtp.tx_pointer and self._batchable:
            # Inside the port's receive: protect + send happen in C for the whole fan-out.
            batch.append((srtp.tx_pointer, data, self._sockaddr, srtp, addr))
            stats = self._stats
            stats.rtp_out += 1
            stats.bytes_out += len(data) + srtp.tag_length
            return
        try:
            out = srtp.protect(data)
        except SrtpError:
            self._stats.srtp_errors += 1
            return
        self._stats.rtp_out += 1
        self._stats.bytes_out += len(out)
        link = self.link
        if link is None:
            self.port.sendto(out, addr)
        else:
            link.send(out)

    def send_rtcp(self, data: bytes) -> None:
        srtp = self._srtp
        addr = self.addr
        if srtp is None or addr is None:
            return
        try:
            out = srtp.protect_rtcp(data)
        except SrtpError:
            self._stats.srtp_errors += 1
            return
        self._stats.rtcp_out += 1
        link = self.link
        if link is None:
            self.port.sendto(out, addr)
        else:
            link.send(out)

    def _send_raw(self, data: bytes) -> None:
        link = self.link
        if link is not None:
            link.send(data)
        elif self.addr is not None:
            self.port.sendto(data, self.addr)

    def receive_srtp(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self, reason: str = "closed") -> None:
        raise NotImplementedError


class WebRtcTransport(SrtpPeer):
    """Created by the control plane per peer connection; registered with a MediaPort."""

    def __init__(self, port: MediaPort, remote: RemoteParameters) -> None:
        super().__init__(port)
        self.remote = remote
        self.local_ufrag, self.local_pwd = ice.new_credentials()
        self.state = TransportState.NEW
        self.close_reason = ""
        self.ice_failed = False  # failed for want of connectivity checks (no path, consent)
        self.nominated = False
        self.tcp_link: TcpLink | None = None  # the peer's one ICE-TCP connection, if any
        self.last_consent = time.monotonic()
        self.created = self.last_consent
        self.on_state: Callable[[TransportState, str], None] = _ignore_state
        self._dtls = DtlsServer(
            port.certificate_context,
            remote.fingerprints,
            self._send_raw,
            mtu=port.config.dtls_mtu,
        )
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._twcc: TwccResponder | None = None
        self._twcc_timer: asyncio.TimerHandle | None = None

    def enable_twcc(self, ext_id: int, sender_ssrc: int) -> None:
        """Answer the peer's transport-wide seq numbers with feedback (we receive media)."""
        self._twcc = TwccResponder(ext_id, sender_ssrc)

    @property
    def local_fingerprint(self) -> str:
        return self.port.certificate.fingerprint

    # --- ICE -----------------------------------------------------------------------------

    def ice_checked(self, addr: Address, nominated: bool, link: TcpLink | None = None) -> None:
        """A valid Binding request from `addr`, over UDP or the ICE-TCP connection `link`
        (RFC 8445 §7.3.1.4 for a lite agent)."""
        self.last_consent = time.monotonic()
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        # Send to the nominated pair; before nomination, to the first address that checked
        # in, so a DTLS ClientHello that races the nomination can be answered.
        if self.addr is None or (nominated and (
                not self.nominated or addr != self.addr or link is not self.link)):
            if link is None:
                self.port.bind_address(self, addr)
            else:
                self.port.unbind_address(self)  # UDP from the old address is not ours now
            self._set_addr(addr, link)
        if nominated:
            self.nominated = True
        if self.state is TransportState.NEW:
            self._set_state(TransportState.CONNECTING)

    # --- DTLS ----------------------------------------------------------------------------

    def receive_dtls(self, data: bytes) -> None:
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        try:
            keys = self._dtls.receive(data)
        except DtlsError as exc:
            self.fail(str(exc))
            return
        except Exception as exc:  # OpenSSL errors on garbage records must not escape
            self.fail(f"DTLS error: {exc}")
            return
        if self._dtls.closed:
            self.close("DTLS close_notify from peer")
            return
        if keys is not None:
            # The OpenSSL connection (~140 KB) is freed now, before the SRTP contexts are
            # made: what DTLS still owes the peer is kept as bytes (DtlsEndpoint.release), and
            # freeing it before anything long-lived is allocated keeps the heap from
            # fragmenting around it when many peers join at once.
            self._release_dtls()  # also stops the handshake's retransmission timer
            self._srtp = SrtpPair(keys, self.port.config.srtp_replay_window)
            self._update_target()
            if self._twcc is not None:
                self._twcc_timer = asyncio.get_running_loop().call_later(
                    TWCC_INTERVAL, self._send_twcc
                )
            self._set_state(TransportState.CONNECTED)
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        self._cancel_timer()
        delay = self._dtls.timeout()
        if delay is not None:
            loop = asyncio.get_running_loop()
            self._dtls_timer = loop.call_later(max(delay, 0.01), self._on_dtls_timer)

    def _on_dtls_timer(self) -> None:
        self._dtls_timer = None
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        try:
            self._dtls.handle_timeout()
        except Exception as exc:
            self.fail(f"DTLS retransmission failed: {exc}")
            return
        self._arm_timer()

    def _send_twcc(self) -> None:
        self._twcc_timer = None
        if self._twcc is None or self._srtp is None:
            return
        feedback = self._twcc.build()
        if feedback is not None:
            self.send_rtcp(feedback)
        self._twcc_timer = asyncio.get_running_loop().call_later(TWCC_INTERVAL, self._send_twcc)

    def _release_dtls(self) -> None:
        self._cancel_timer()
        if not self._dtls.released and not self._dtls.closed:
            self._dtls.release()
            heap.TRIMMER.freed(DTLS_CONNECTION_BYTES)

    def _cancel_timer(self) -> None:
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None

    # --- SRTP (hot path) -----------------------------------------------------------------

    def receive_srtp(self, data: bytes) -> None:
        srtp = self._srtp
        if srtp is None:
            return
        stats = self._stats
        stats.bytes_in += len(data)
        # RFC 5761 §4: with rtcp-mux, RTCP packet types 192..223 sit where RTP's M+PT is.
        if 191 < data[1] < 224:
            try:
                plain = srtp.unprotect_rtcp(data)
            except SrtpError:
                stats.srtp_errors += 1
                return
            stats.rtcp_in += 1
            self.on_rtcp(plain)
        else:
            try:
                plain = srtp.unprotect(data)
            except SrtpError:
                stats.srtp_errors += 1
                return
            stats.rtp_in += 1
            if self._twcc is not None:
                self._twcc.record(plain, time.monotonic_ns() // 1000)
            self.on_rtp(plain)

    @property
    def connected(self) -> bool:
        return self.state is TransportState.CONNECTED

    # --- lifecycle -----------------------------------------------------------------------

    def _set_state(self, state: TransportState, reason: str = "") -> None:
        self.state = state
        self.close_reason = reason
        try:
            self.on_state(state, reason)
        except Exception:
            log.exception("transport state callback failed")

    def link_lost(self, link: TcpLink) -> None:
        """The peer closed its ICE-TCP connection: the transport fails if it was the path
        (the pair is gone, and a lite agent cannot pick another on its own)."""
        if self.tcp_link is link:
            self.tcp_link = None
        if self.link is link:
            self.fail(f"ICE-TCP connection from {link.addr[0]}:{link.addr[1]} closed by the "
                      "peer", ice_failed=True)

    def fail(self, reason: str, ice_failed: bool = False) -> None:
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        log.warning("transport %s failed: %s", self.local_ufrag, reason)
        self.ice_failed = ice_failed
        self._teardown()
        self._set_state(TransportState.FAILED, reason)

    def close(self, reason: str = "closed") -> None:
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        self._dtls.close()
        self._teardown()
        self._set_state(TransportState.CLOSED, reason)

    def _teardown(self) -> None:
        self._cancel_timer()
        if self._twcc_timer is not None:
            self._twcc_timer.cancel()
            self._twcc_timer = None
        self._srtp = None
        if self.c_target is not None:
            self.c_target.clear()
        self.port.unregister(self)
        link, self.tcp_link = self.tcp_link, None
        if link is not None:
            link.close("transport closed")
