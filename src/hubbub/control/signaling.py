"""WebSocket endpoints /ws/v2/pub and /ws/v2/sub: the transaction loop of one socket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from hubbub import logs
from hubbub.control import messages
from hubbub.control.auth import gate
from hubbub.control.auth.jwts import UNKNOWN_KEY, Grant
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node
from hubbub.control.publish import PublisherSession
from hubbub.control.ratelimit import TokenBucket
from hubbub.control.session import CLOSE_POLICY, Session
from hubbub.control.view import ViewerSession
from hubbub.logs import clip

log = logging.getLogger(__name__)

FLOOD_WINDOW = 10.0  # seconds over which refused commands count towards closing


async def serve_socket(
    websocket: WebSocket, node: Node, role: str, auth: Auth | None = None
) -> None:
    if websocket.client is not None:  # every line of this socket's task carries the address
        logs.bind(peer=f"{websocket.client.host}:{websocket.client.port}")
    # Every socket shows a JWT of its role (`?token=`, as the SDK sends it) unless the node runs
    # with the development flag; a token given is verified either way.
    def check() -> Grant | gate.Refusal | None:
        return gate.check(
            auth,
            role,
            websocket.query_params.get("token"),
            websocket.headers.get("origin"),
            websocket.client.host if websocket.client else None,
            node.config.control.allow_any_stream,
        )

    verdict = check()
    if (isinstance(verdict, gate.Refusal) and verdict.reason == UNKNOWN_KEY
            and auth is not None and auth.refresh_peer_keys is not None):
        # Signed by a cluster node we have not heard of yet: look once more.
        await auth.refresh_peer_keys()
        verdict = check()
    await websocket.accept()
    if isinstance(verdict, gate.Refusal):
        if auth is not None:
            auth.refusals.count(verdict.reason)
        log.info("%s socket refused: %s", role, clip(verdict.reason))
        await websocket.close(code=verdict.code, reason=verdict.reason[:120])
        return
    session: PublisherSession | ViewerSession
    if role == "publish":
        session = PublisherSession(node, websocket.send_text)
    else:
        session = ViewerSession(node, websocket.send_text)
    session.grant = verdict  # binds the session to the JWT's stream and rights
    closing: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def request_close(code: int, reason: str) -> None:
        if not closing.done():
            closing.set_result((code, reason))

    session.on_close_request = request_close
    receiver: asyncio.Future[None] = asyncio.ensure_future(
        _receive_loop(websocket, node, session)
    )
    try:
        await asyncio.wait([receiver, closing], return_when=asyncio.FIRST_COMPLETED)
        if closing.done():
            code, reason = closing.result()
            receiver.cancel()
            await session.flush()
            try:
                await websocket.close(code=code, reason=reason[:120])
            except Exception:
                pass
    finally:
        receiver.cancel()
        session.close()


async def _receive_loop(websocket: WebSocket, node: Node, session: Session) -> None:
    logs.bind()  # this task carries on the socket's session: its lines show the peer
    limits = _CommandLimits(node)
    while True:
        # The message is passed on, never bound here: a local would keep the last one (a
        # viewer's SDP offer, ~2 KB) alive for as long as the socket waits for the next.
        try:
            if not await _on_message(await websocket.receive(), session, limits):
                return
        except WebSocketDisconnect:
            return


class _CommandLimits:
    """The per-socket command rate: a token bucket, and the refusals of the last
    FLOOD_WINDOW seconds (kept only once there are any) that close a flooding socket."""

    def __init__(self, node: Node) -> None:
        control = node.config.control
        self.control = control
        self.bucket = TokenBucket(control.command_rate, control.command_burst)
        self.refused: deque[float] | None = None

    def refuse(self) -> int:
        """Note one refusal; how many there were in the last FLOOD_WINDOW seconds."""
        now = time.monotonic()
        refused = self.refused
        if refused is None:
            refused = self.refused = deque()
        refused.append(now)
        while refused and now - refused[0] > FLOOD_WINDOW:
            refused.popleft()
        return len(refused)


async def _on_message(message: Message, session: Session, limits: _CommandLimits) -> bool:
    """Handle one received message; False when the socket is done."""
    if message["type"] == "websocket.disconnect":
        return False
    control = limits.control
    if not limits.bucket.take():
        # Before any parsing: a flood costs us a counter, not a JSON decode.
        refused = limits.refuse()
        if refused >= control.command_flood_close:
            log.info("closing a socket that keeps flooding commands (%d refused in %.0f s)",
                     refused, FLOOD_WINDOW)
            session.request_close(CLOSE_POLICY, "command flood: too many commands")
            return False
        session.send(messages.error(None, f"too many commands: at most "
                                    f"{control.command_rate:g} per second"))
        return True
    text = message.get("text")
    if text is None:
        session.send(messages.error(None, "binary frames are not supported"))
        return True
    if len(text) > control.max_message_bytes:
        log.info("oversize message (%d bytes) refused", len(text))
        session.send(messages.error(None, f"message larger than {control.max_message_bytes} "
                                    "bytes"))
        return True
    await _dispatch(text, session)
    return True


async def _dispatch(text: str, session: Session) -> None:
    trans_id = None
    try:
        command = messages.parse_command(text)
        trans_id = command.trans_id
        data = await session.handle(command)
    except messages.ProtocolError as exc:
        reason = clip(exc.reason, 300)
        log.info("command refused: %s", reason)
        session.send(messages.error(exc.trans_id if trans_id is None else trans_id, reason))
        return
    except ValueError as exc:  # SDP and other parse errors carry a clear message
        reason = clip(exc, 300)
        log.info("command refused: %s", reason)
        session.send(messages.error(trans_id, reason))
        return
    except Exception:
        log.exception("command failed")
        session.send(messages.error(trans_id, "internal server error"))
        return
    session.send(messages.response(trans_id, data))
    session.after_reply()
