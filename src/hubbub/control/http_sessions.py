"""WHIP and WHEP sessions: the resource behind a `Location` URL, and what both endpoints share.

A WHIP session wraps a PublisherSession and a WHEP session a ViewerSession: the same SDP
answer, transport and sfu objects as a WebSocket client gets, so a source published over WHIP
is an ordinary source and a WHEP viewer an ordinary viewer. What differs is the wire:
- the session URL is a capability (RFC 9725 §4.1 and §7: whoever knows it can end the
  session, so it carries 128 random bits) and the only handle the client keeps;
- the session ends on DELETE, or when its transport fails or times out (ICE consent, RFC 7675),
  or when another publisher replaces its source: the registry forgets it then;
- ICE is lite on our side (RFC 8445 §2.5): the answer lists every candidate, so a client's
  trickled candidates (PATCH, RFC 8840 fragments) add nothing and are accepted and dropped,
  and an ICE restart is refused with 422 (RFC 9725 §4.3.2) while the session goes on;
- errors are text/plain with the reason (PROTOCOL.md: Millicast answers text).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from hubbub.control import messages
from hubbub.control.auth import turn
from hubbub.control.auth.http import ApiError, bearer
from hubbub.control.session import Session
from hubbub.control.sse import EventChannel
from hubbub.logs import clip
from hubbub.ratelimit import address_key

if TYPE_CHECKING:
    from hubbub.config import AuthConfig
    from hubbub.media.transport import WebRtcTransport

log = logging.getLogger(__name__)

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"  # RFC 8840 §9.1
MAX_SESSIONS = 10_000
"""WHIP and WHEP sessions one node holds; each also holds a transport until ICE times out."""
MAX_PER_ADDRESS = 500
"""Sessions one client address (IPv6: its /64) holds: unlike a WebSocket's, a WHIP/WHEP
session outlives its HTTP connection, so the connection caps (control/connections.py) do not
bound them; this does, at the connection cap's figure."""

_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)\s*$", re.MULTILINE)
_PWD = re.compile(r"^a=ice-pwd:(\S+)\s*$", re.MULTILINE)


class HttpError(Exception):
    """A request we refuse: status, text reason, headers (e.g. WWW-Authenticate)."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return PlainTextResponse(self.reason, self.status, headers=self.headers)


def bearer_token(request: Request, required: bool) -> str | None:
    try:
        return bearer(request.headers.get("authorization"), required)
    except ApiError as exc:
        raise HttpError(exc.status, exc.message, exc.headers) from None


async def read_sdp(request: Request) -> str:
    """The SDP offer of a POST: `application/sdp` (RFC 9725 §4.2), UTF-8."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != SDP:
        raise HttpError(415, f"Unsupported Media Type: the offer must be {SDP}",
                        {"Accept-Post": SDP})
    try:
        return (await request.body()).decode()
    except UnicodeDecodeError:
        raise HttpError(400, "Bad Request: the offer is not UTF-8") from None


class HttpSession:
    """One WHIP or WHEP session, reachable at `location`."""

    def __init__(self, kind: str, session: Session, transport: WebRtcTransport,
                 client: str | None) -> None:
        self.kind = kind  # "whip" | "whep"
        self.address = address_key(client)
        self.id = secrets.token_urlsafe(16)
        self.session = session
        self.transport = transport
        self.created = time.monotonic()
        self.channel: EventChannel | None = None  # WHEP's SSE extension, once asked for
        # The entity-tag of the ICE session (RFC 9725 §4.3.1): it changes with an ICE restart,
        # which we do not offer, so it is the one our answer started.
        self.etag = f'"{transport.local_ufrag}"'

    @property
    def location(self) -> str:
        return f"/api/{self.kind}/session/{self.id}"

    def close(self, reason: str) -> None:
        if self.channel is not None:
            self.channel.close()
        self.session.end(reason)
        self.session.close()


class HttpSessions:
    """The live WHIP/WHEP sessions of one node, by id."""

    def __init__(self, limit: int = MAX_SESSIONS,
                 per_address: int = MAX_PER_ADDRESS) -> None:
        self.limit = limit
        self.per_address = per_address
        self._by_id: dict[str, HttpSession] = {}
        self._by_address: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def check_room(self, client: str | None) -> None:
        if len(self._by_id) >= self.limit:
            raise HttpError(503, "Service Unavailable: too many WHIP/WHEP sessions on this "
                            "node", {"Retry-After": "10"})
        if self._by_address.get(address_key(client), 0) >= self.per_address:
            raise HttpError(429, f"Too Many Requests: at most {self.per_address} WHIP/WHEP "
                            "sessions per client address", {"Retry-After": "10"})

    def add(self, entry: HttpSession) -> None:
        self._by_id[entry.id] = entry
        self._by_address[entry.address] = self._by_address.get(entry.address, 0) + 1

        def ended(code: int, reason: str) -> None:
            # The session asks to close (transport failed or closed, source replaced): the
            # resource is gone, a later DELETE gets 404.
            if self._by_id.get(entry.id) is entry:
                self._forget(entry)
                log.info("%s session %s ended: %s", entry.kind, entry.id[:8], clip(reason, 200))
                entry.close(reason)

        entry.session.on_close_request = ended

    def get(self, kind: str, session_id: str) -> HttpSession:
        entry = self._by_id.get(session_id)
        if entry is None or entry.kind != kind:
            raise HttpError(404, f"Not Found: no {kind.upper()} session here (ended, or "
                            "never created)")
        return entry

    def delete(self, entry: HttpSession, reason: str) -> None:
        if self._by_id.get(entry.id) is entry:
            self._forget(entry)
            entry.close(reason)

    def _forget(self, entry: HttpSession) -> None:
        del self._by_id[entry.id]
        left = self._by_address[entry.address] - 1
        if left:
            self._by_address[entry.address] = left
        else:
            del self._by_address[entry.address]

    def close_all(self, reason: str) -> None:
        for entry in list(self._by_id.values()):
            self.delete(entry, reason)


async def patch(entry: HttpSession, request: Request) -> Response:
    """PATCH on a session URL: trickle ICE (accepted and dropped: we are ICE-lite and already
    gave every candidate) or an ICE restart (refused with 422; the session goes on)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != SDPFRAG:
        raise HttpError(415, f"Unsupported Media Type: PATCH takes {SDPFRAG} (RFC 8840)",
                        {"Accept-Patch": SDPFRAG})
    try:
        fragment = (await request.body()).decode()
    except UnicodeDecodeError:
        raise HttpError(400, "Bad Request: the fragment is not UTF-8") from None
    if_match = request.headers.get("if-match")
    ufrag, pwd = _UFRAG.search(fragment), _PWD.search(fragment)
    remote = entry.transport.remote
    restart = if_match == "*" or (
        ufrag is not None and pwd is not None
        and (ufrag.group(1), pwd.group(1)) != (remote.ice_ufrag, remote.ice_pwd))
    if restart:
        raise HttpError(422, "Unprocessable Content: ICE restart is not supported; the "
                        "session goes on with its ICE credentials (start a new session "
                        "to move)")
    # RFC 9725 §4.3.1: a mismatching entity-tag is 412. A missing one is tolerated: deployed
    # clients (whip-whep's WHEPClient) never send it on a trickle.
    if if_match is not None and if_match != entry.etag:
        raise HttpError(412, "Precondition Failed: If-Match is not this ICE session's ETag")
    return Response(status_code=204)


def ice_server_links(config: AuthConfig, label: str) -> list[str]:
    """`Link: <turn:…>; rel="ice-server"` headers (RFC 9725 §4.6) with TURN REST credentials
    for this session, as the Director's `iceServers` carry them; none without --turn-server."""
    uris = turn.check_settings(config.turn_servers, config.turn_secret)
    if not uris:
        return []
    expires = int(time.time() + config.jwt_minutes * 60)
    username, password = turn.credentials(config.turn_secret, expires, label)
    return [f'<{uri}>; rel="ice-server"; username="{username}"; credential="{password}"; '
            'credential-type="password"' for uri in uris]


def created(entry: HttpSession, answer: str, links: list[str]) -> Response:
    """The 201 of a POST (RFC 9725 §4.2): the answer, the session URL and its ETag."""
    response = Response(answer, status_code=201, media_type=SDP)
    response.headers["Location"] = entry.location
    response.headers["ETag"] = entry.etag
    response.headers["Accept-Patch"] = SDPFRAG
    for link in links:
        response.headers.append("Link", link)
    return response


async def answered(kind: str, post: Awaitable[Response]) -> Response:
    """The response of a WHIP/WHEP POST, or its refusal as text, logged (rate-limited per
    cause by hubbub.logs)."""
    try:
        return await post
    except HttpError as exc:
        log.info("%s refused (%d): %s", kind, exc.status, clip(exc.reason, 300))
        return exc.response()


def plain_options() -> Response:
    """A plain OPTIONS on an endpoint (a CORS preflight is PathCors's): RFC 9725 §4.2."""
    return Response(status_code=204, headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"})


def refusal(exc: Exception) -> HttpError:
    """An offer the session could not answer: 422 with the reason (RFC 9725 §4.2: an offer
    is accepted whole or refused). The query and the token were checked before."""
    reason = exc.reason if isinstance(exc, messages.ProtocolError) else str(exc)
    return HttpError(422, f"Unprocessable Content: {clip(reason, 300)}")
