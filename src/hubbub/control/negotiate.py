"""What `publish` and `view` share: which stream a command may use, and answering its offer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubbub.control import messages
from hubbub.media import sdp
from hubbub.media.transport import RemoteParameters, WebRtcTransport

if TYPE_CHECKING:
    from hubbub.control.auth.jwts import Grant
    from hubbub.control.node import Node


def stream_for(node: Node, grant: Grant | None, requested: str | None, field: str) -> str:
    """The stream a command acts on: the one it names, else the JWT's (PROTOCOL.md: clients may
    omit it); never another stream than the JWT is bound to."""
    name = requested or (grant.stream if grant is not None else None)
    if not name:
        raise messages.ProtocolError(f"missing {field} (stream name)")
    # Millicast clients send either "streamName" or "accountId/streamName".
    name = node.strip_account(name)
    node.check_stream_name(name)
    if grant is not None and name != grant.stream:
        raise messages.ProtocolError(
            f"stream not allowed by token: {name!r} (the token is for {grant.stream!r})"
        )
    return name


def answer_offer(
    node: Node, offer: sdp.SessionDescription, role: str, **options: Any
) -> tuple[WebRtcTransport, str, list[sdp.Negotiated]]:
    """A transport for the offer's BUNDLE group and our answer; the transport is closed again
    if the offer cannot be answered."""
    ufrag, pwd, fingerprints = sdp.remote_credentials(offer)
    transport = node.port.create_transport(RemoteParameters(ufrag, pwd, fingerprints))
    try:
        text, negotiated = sdp.build_answer(
            offer,
            sdp.AnswerOptions(
                ice_ufrag=transport.local_ufrag,
                ice_pwd=transport.local_pwd,
                fingerprint=("sha-256", transport.local_fingerprint),
                candidates=node.port.candidates(),
                tcp_candidates=node.port.tcp_candidates(),
                role=role,
                **options,
            ),
        )
    except Exception:
        transport.close(f"{role} refused")
        raise
    return transport, text, negotiated
