"""Every limit and timeout of a hubbub node, in one place.

Defaults are chosen for a single node serving browsers; each field says why.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hubbub.sfu.config import SfuConfig


@dataclass
class MediaConfig:
    """The media plane (media/)."""

    host: str = "0.0.0.0"
    """Address the media ports bind to; "::" binds IPv4 and IPv6 (one socket each)."""

    port: int = 10000
    """The one UDP port of the node: all peers share it (RFC 7983 demux, ICE-lite)."""

    tcp_port: int | None = None
    """The ICE-TCP port (RFC 6544 passive candidates, RFC 4571 framing); None = the UDP port's
    number, -1 = no ICE-TCP."""

    tcp_check_timeout: float = 10.0
    """A TCP connection whose first authenticated STUN check has not arrived by then is
    closed (the UDP side needs no such timer: an unchecked address holds nothing)."""

    tcp_max_connections: int = 10000
    """Open ICE-TCP connections, all addresses together; more are refused at accept."""

    tcp_connections_per_ip: int = 500
    """Open ICE-TCP connections one client address may hold (an office behind one NAT)."""

    tcp_send_queue_bytes: int = 256 * 1024
    """Packets one ICE-TCP connection may hold for a peer that reads slower than it is sent
    to, past the kernel's send buffer and `tcp_write_buffer`; then the oldest are dropped
    (`TcpStats.send_dropped`). 256 KiB is about a second of 2 Mb/s video."""

    tcp_send_buffer: int = 256 * 1024
    """SO_SNDBUF of each ICE-TCP connection. Fixed, not left to the kernel's autotuning (up to
    4 MiB): a peer that reads too slowly would otherwise collect seconds of stale media there
    before our queue could drop any. 256 KiB carries 10 Mb/s at 200 ms round trip."""

    tcp_write_buffer: int = 16 * 1024
    """asyncio's write buffer high-water mark per ICE-TCP connection, before packets go to the
    bounded queue above."""

    announced_ips: list[str] = field(default_factory=list)
    """Addresses written as host candidates; empty = derived from `host`."""

    consent_timeout: float = 30.0
    """RFC 7675 §5.1: a peer whose consent is not refreshed for 30 s is dropped."""

    dtls_timeout: float = 15.0
    """A transport that has not finished ICE + DTLS by then is failed (`--ice-timeout`)."""

    dtls_mtu: int = 1200
    """Largest DTLS datagram we send (handshake flights are split at record boundaries)."""

    srtp_replay_window: int = 1024
    """libsrtp replay window, packets (RFC 3711 §3.3.2); 1024 tolerates reordering on video."""

    allowed_peer_networks: list[str] = field(default_factory=list)
    """If set, STUN from other networks is ignored (tests keep everything on 127.0.0.0/8)."""

    recv_buffer: int = 4 * 1024 * 1024
    """SO_RCVBUF of the media port, bytes (0 = the kernel default, 208 KiB on Linux). The
    kernel charges each queued datagram's bookkeeping too: the default holds 256 small
    datagrams (25 ms of a 10k/s flood), 4 MiB holds about 10,000 (92 vs 3,600 full-size), so
    a loop stall of a few hundred ms under load or junk loses nothing. Capped by
    net.core.rmem_max unless the process has CAP_NET_ADMIN (the port logs what it got)."""

    stun_rate: float = 40.0
    """Binding requests per second one source address may have checked for a live ufrag
    (before the HMAC). Browsers ping a weak pair every 48 ms (~21/s), consent every 1-5 s."""

    stun_burst: int = 80
    """Binding requests one source address may send at once before `stun_rate` applies."""

    dtls_rate: float = 20.0
    """DTLS records per second from an ICE-checked address: a handshake is 2-3 flights with
    retransmissions at 1, 2, 4 s (RFC 6347 §4.2.4); nothing flows after it but close_notify."""

    dtls_burst: int = 40
    """DTLS records one address may send at once before `dtls_rate` applies."""

    budget_addresses: int = 16384
    """Source addresses the STUN and the DTLS budget each remember (about 200 bytes each);
    past that, refilled and then the oldest are forgotten (media/budget.py)."""

    def problems(self) -> list[str]:
        """What is wrong with these settings, for a clear error at start."""
        out = []
        try:
            bound = ipaddress.ip_address(self.host)
        except ValueError:
            bound = None  # a name (localhost): its family is the resolver's to say
        for ip in self.announced_ips:
            try:
                announced = ipaddress.ip_address(ip)
            except ValueError:
                out.append(f"--announce-ip {ip!r} is not an IP address")
                continue
            # "::" binds both families (media/udp.bind_hosts); otherwise one family only.
            if bound is not None and self.host != "::" and announced.version != bound.version:
                out.append(f"--announce-ip {ip} is IPv{announced.version} but the media ports "
                           f"bind IPv{bound.version} only ({self.host}); bind :: for both")
        return out

    def peer_allowed(self, ip: str) -> bool:
        if not self.allowed_peer_networks:
            return True
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_network(n) for n in self.allowed_peer_networks)


@dataclass
class ControlConfig:
    """The control plane (control/)."""

    host: str = "0.0.0.0"
    http_port: int = 8080
    rtmp_port: int = -1
    """RTMP ingest port (control/rtmp.py, `rtmp://host:1935/v2/pub/<stream>?token=...`), bound
    on `host`; -1 = off. Off here so in-process nodes (tests) never contend for 1935;
    `hubbub serve --rtmp-port` defaults to 1935. With `--workers N`, worker i uses this + i."""

    public_url: str = ""
    """Base URL clients reach this node at (for Director replies); empty = from the request."""

    allow_any_stream: bool = False
    """Development only: accept publish/view on any stream without a token."""

    max_message_bytes: int = 256 * 1024
    """Largest WebSocket text frame accepted; an SDP is a few KiB."""

    command_rate: float = 20.0
    """Commands a socket may send per second on average (token bucket); a client sends a
    handful in its life (`view`/`publish`, then `project`/`select` now and then)."""

    command_burst: int = 40
    """Commands a socket may send at once before `command_rate` applies."""

    command_flood_close: int = 100
    """Commands refused for the rate within 10 s after which the socket is closed (1008)."""

    send_queue_bytes: int = 1024 * 1024
    """Bytes of replies and events queued for one socket; a client that does not read
    past this is closed (1008). Events are small: a reading client never comes near it."""

    ws_compression: bool = False
    """Offer permessage-deflate (RFC 7692) to WebSocket clients. Off: each compressing socket
    holds about 50 KB of zlib state for its life (window 4 KiB, memLevel 5, both directions)
    and costs CPU per message, to save a few hundred bytes on an SDP answer."""

    viewercount_interval: float = 1.0
    """`viewercount` events are coalesced to at most one per interval (PROTOCOL.md)."""

    media_timeout: float = 10.0
    """A publisher that sends no RTP for this long is treated as gone (`inactive`)."""

    # Connections (control/connections.py): what one client address may hold and open.
    max_connections_per_ip: int = 500
    """Open HTTP/WebSocket connections one client address (IPv6: its /64) may hold; 0 = no cap.
    Sized for an office behind one NAT: ~150 people each with a signaling socket or two and
    the browser's keep-alive connections. One address can no longer take every descriptor."""

    new_connections_per_ip: float = 50.0
    """New connections one address may open per second (0 = no limit), after a burst of
    `max_connections_per_ip`: that office may reconnect all at once after a network blip;
    after that a join costs ~3 connections (page, Director, WebSocket), so 15 joins a second."""

    request_timeout: float = 10.0
    """Seconds a new connection has to send its whole request head, and a WebSocket its first
    message. Clients send at once (hubbub's and the SDK's send `view`/`publish` right after
    connecting); only silent sockets — a browser's unused preconnect, or an attack — hit it."""

    body_timeout: float = 30.0
    """Seconds a request body has to arrive (bodies here are ≤ 64 KiB: 5 s at 100 kbit/s)."""

    max_head_bytes: int = 32 * 1024
    """Largest first request head (request line and headers), as nginx's default 4 × 8 KiB; a
    JWT in the query and the cookies are well under it."""

    max_connections: int = 0
    """Connections of the whole process; 0 = its descriptor limit (RLIMIT_NOFILE) less a tenth
    (at least 128) kept for the database, the media port and the logs."""

    limits_log_interval: float = 60.0
    """Refusals and timeouts are counted and logged once per this many seconds (the first
    refusal of an address at once)."""

    metrics_token: str = ""
    """Bearer token `/metrics` asks for (`Authorization: Bearer <token>`, else 401); empty =
    `/metrics` is open, for operators who bind or proxy it privately (docs/OPERATIONS.md)."""


@dataclass
class AuthConfig:
    """Tokens, the Director and the JWTs it hands out (control/auth/)."""

    data_dir: str = "./hubbub-data"
    """Holds the SQLite token store, the JWT signing key and the admin API secret; created on
    first start."""

    database_url: str = ""
    """SQLAlchemy async URL of the token store (`postgresql+asyncpg://...`); empty = SQLite file
    `tokens.db` in `data_dir`."""

    api_secret: str = ""
    """Bearer secret of the admin REST API; empty = generated once and kept in `data_dir`."""

    jwt_minutes: float = 10.0
    """Lifetime of a Director JWT. Short, because a revoked token's JWTs live until they expire."""

    jwt_leeway: float = 45.0
    """Clock skew tolerated on `exp`/`nbf`/`iat` (RFC 8725 §3.10 asks for a small one)."""

    issuer: str = "hubbub"
    """`iss` of issued JWTs; nodes that share a signing key must share it."""

    open_viewing: list[str] = field(default_factory=list)
    """Stream patterns (`*` wildcards) anyone may view without a subscribe token; empty = every
    stream requires subscribe auth."""

    max_body_bytes: int = 64 * 1024
    """Largest HTTP request body on /api (413 above it); a token is well under 1 KiB."""

    turn_servers: list[str] = field(default_factory=list)
    """TURN URIs (RFC 7065: turn:host[:port][?transport=udp|tcp], turns:host[:port]) the
    Director hands out in `iceServers`, in this order; empty = `iceServers: []`."""

    turn_secret: str = ""
    """The TURN server's shared secret (coturn `static-auth-secret`): each Director reply gets
    credentials made with it that expire with the JWT (control/auth/turn.py)."""


@dataclass
class WebhookConfig:
    """Webhooks to the operator's backend (control/webhooks/, docs/WEBHOOKS.md). Registrations
    live in the token store's database; these are the sender's limits."""

    max_attempts: int = 10
    """Attempts per event and receiver, the first included; then it is logged as failed."""

    retry_base: float = 1.0
    """Seconds before the first retry; each later one waits twice as long (1, 2, 4 ... s),
    ±20 % jitter so receivers coming back are not hit by every node at once."""

    retry_max_delay: float = 300.0
    """Cap on one wait between attempts, seconds."""

    max_age: float = 3600.0
    """An event older than this is not attempted again (its receiver was down too long)."""

    timeout: float = 10.0
    """Seconds one attempt may take (connect, send, answer) before it counts as failed."""

    concurrency: int = 16
    """Attempts in flight at once, all receivers together. Each receiver is sent its events
    one at a time, in order, so a slow one holds one of these, never the others."""

    queue_size: int = 1000
    """Events waiting per receiver; a full queue drops its oldest (counted, logged)."""

    viewer_interval: float = 5.0
    """`viewerConnection` `count` events: at most one per stream per this many seconds."""

    refresh_interval: float = 10.0
    """Seconds between re-reads of the registrations (other processes of a cluster may have
    changed them); changes through this node's own API apply at once."""

    log_keep: int = 1000
    """Delivery-log rows kept per webhook (newest); older ones are deleted."""

    max_webhooks: int = 100
    """Registrations accepted (each costs a queue and a sender task)."""


@dataclass
class RecordingConfig:
    """Server-side recording (recording/, control/recordings.py): each recorded source's media
    kept as published, without transcoding."""

    enabled: bool = True
    """Honour the publish token's `record` flag and the admin `record` endpoint; off = neither
    records (the endpoint answers 409)."""

    directory: str = "recordings"
    """Where the files go; a relative path is under the auth data dir (`AuthConfig.data_dir`)."""

    h264_format: str = "mkv"
    """Container of H.264 sources: `mkv` (Matroska, readable when cut short) or `mp4`
    (fragmented at each keyframe: a crash loses at most the fragment being written). VP8/VP9
    sources are always WebM."""

    def __post_init__(self) -> None:
        if self.h264_format not in ("mkv", "mp4"):
            raise ValueError(f"h264_format must be mkv or mp4, got {self.h264_format!r}")
        if not self.directory:
            raise ValueError("directory must not be empty")


@dataclass
class Config:
    media: MediaConfig = field(default_factory=MediaConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    sfu: SfuConfig = field(default_factory=SfuConfig)
    """The forwarding core's knobs (`[sfu]` in the config file); its `media_timeout` is
    `control.media_timeout`, which the Node applies."""
    log_level: str = "info"
    log_format: str = "text"
    """`text` (one line each, context as key=value) or `json` (one object per line)."""
