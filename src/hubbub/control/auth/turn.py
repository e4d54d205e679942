"""TURN servers in Director replies: URIs (RFC 7065) and ephemeral credentials.

Credentials follow the TURN REST API (draft-uberti-behave-turn-rest-00 §2.2), which coturn
checks with `use-auth-secret` + `static-auth-secret`: username = "<expiry unix seconds>:<id>",
password = base64(HMAC-SHA1(secret, username)). The TURN server needs no call to us: it
recomputes the password from the username and refuses it once the expiry has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

SCHEMES = ("turn", "turns")
TRANSPORTS = ("udp", "tcp")
DEFAULT_PORT = {"turn": 3478, "turns": 5349}  # RFC 7065 §3, RFC 5766 §6

# RFC 7065 §3: turnURI = scheme ":" host [ ":" port ] [ "?transport=" transport ];
# host is RFC 3986's IP-literal / IPv4address / reg-name (checked further below).
_URI = re.compile(
    r"(?P<scheme>[A-Za-z]+):(?P<host>\[[^\]/?#@]*\]|[^:/?#@\[\]]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>[A-Za-z]+))?"
)
_REG_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


@dataclass(frozen=True)
class TurnUri:
    scheme: str                 # "turn" | "turns" (TLS)
    host: str                   # IPv6 without brackets
    port: int | None            # None: the scheme's default (3478, 5349)
    transport: str | None       # "udp" | "tcp"; None: the client's choice (turn: UDP)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORT[self.scheme]

    @property
    def effective_transport(self) -> str:
        if self.transport is not None:
            return self.transport
        return "tcp" if self.scheme == "turns" else "udp"

    def __str__(self) -> str:
        """The canonical form: lower-case scheme and transport, IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        transport = f"?transport={self.transport}" if self.transport is not None else ""
        return f"{self.scheme}:{host}{port}{transport}"


def parse_uri(text: str) -> TurnUri:
    """A `turn:` / `turns:` URI as RFC 7065 writes it; ValueError saying what is wrong."""
    match = _URI.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"malformed TURN URL {text!r}: expected turn:HOST[:PORT][?transport=udp|tcp] or "
            "turns:HOST[:PORT][?transport=tcp] (RFC 7065; IPv6 hosts in brackets)"
        )
    scheme = match["scheme"].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"TURN URL {text!r}: scheme must be turn or turns, not {scheme!r}")
    host = match["host"]
    if host.startswith("["):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"TURN URL {text!r}: {host} is not an IPv6 address") from None
    elif _REG_NAME.fullmatch(host) is None or (
        re.fullmatch(r"[0-9.]+", host) is not None and not _is_ipv4(host)
    ):
        raise ValueError(f"TURN URL {text!r}: {host!r} is not a host name or IPv4 address")
    port = int(match["port"]) if match["port"] is not None else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"TURN URL {text!r}: port {port} out of range")
    transport = match["transport"].lower() if match["transport"] is not None else None
    if transport is not None and transport not in TRANSPORTS:
        raise ValueError(f"TURN URL {text!r}: transport must be udp or tcp")
    if scheme == "turns" and transport == "udp":
        # RFC 7065 defines turns: over TLS/TCP only; DTLS to a TURN server is not offered here.
        raise ValueError(f"TURN URL {text!r}: turns: runs over TLS, so transport=tcp only")
    return TurnUri(scheme, host, port, transport)


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def check_settings(servers: Sequence[str], secret: str) -> list[TurnUri]:
    """The parsed servers; ValueError when the pair of settings cannot work."""
    uris = [parse_uri(s) for s in servers]
    if uris and not secret:
        raise ValueError("--turn-server needs --turn-secret (or HUBBUB_TURN_SECRET): the "
                         "shared secret of the TURN server's static-auth-secret")
    if secret and not uris:
        raise ValueError("--turn-secret is set (maybe through HUBBUB_TURN_SECRET) but no "
                         "--turn-server is given")
    return uris


def credentials(secret: str, expires_at: int, ident: str) -> tuple[str, str]:
    """(username, password) of the TURN REST API, valid until `expires_at` (unix seconds).

    draft-uberti-behave-turn-rest-00 §2.2: username "expiry:id" (coturn's rest-api-separator
    is ':' by default), password base64 of HMAC-SHA1 over the username keyed by the secret.
    """
    if ":" in ident:
        raise ValueError("a TURN username id cannot contain ':' (the expiry separator)")
    username = f"{int(expires_at)}:{ident}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    uris: Sequence[TurnUri], secret: str, expires_at: int, ident: str
) -> list[dict[str, object]]:
    """Director `iceServers`: one RTCIceServer dictionary (W3C webrtc-pc §4.2.2, the shape
    RTCPeerConnection takes; the SDK passes it on unchanged) for all URIs, or none."""
    if not uris:
        return []
    username, password = credentials(secret, expires_at, ident)
    return [{"urls": [str(u) for u in uris], "username": username, "credential": password}]
