"""ICE-lite responder (RFC 8445 §2.5, §7.3): we only answer Binding requests.

A lite agent never sends checks. It validates each Binding request (short-term credentials,
RFC 8489 §9.2), answers with XOR-MAPPED-ADDRESS, and learns the peer's address from the
checks it receives; the controlling peer's nomination (USE-CANDIDATE) picks the address we send to.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

from aioice import stun

_ALPHABET = string.ascii_letters + string.digits + "+/"


def random_credential(length: int) -> str:
    """ICE ufrag/pwd characters are ice-chars (RFC 8839 §5.4): ALPHA / DIGIT / "+" / "/"."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_credentials() -> tuple[str, str]:
    # RFC 8445 §5.3: at least 24 bits of randomness in the ufrag, 128 bits in the password.
    return random_credential(8), random_credential(24)


@dataclass(frozen=True)
class BindingRequest:
    """A parsed, not yet authenticated Binding request."""

    message: Any  # aioice.stun.Message
    local_ufrag: str
    remote_ufrag: str


class StunError(ValueError):
    """A STUN message we must refuse; `code` is the RFC 8489 §14.8 error code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def parse_binding_request(data: bytes) -> BindingRequest:
    """Parse a STUN Binding request and split its USERNAME.

    Raises ValueError for anything that is not a well-formed Binding request (drop it) and
    StunError for a request we should answer with an error.
    """
    try:
        message = stun.parse_message(data)
    except ValueError:
        raise
    except Exception as exc:  # aioice raises struct.error on some truncated attributes
        raise ValueError(f"malformed STUN message: {exc}") from exc
    if message.message_method != stun.Method.BINDING:
        raise ValueError("STUN method is not Binding")
    if message.message_class == stun.Class.INDICATION:
        raise ValueError("STUN Binding indication (keepalive)")
    if message.message_class != stun.Class.REQUEST:
        raise ValueError("STUN Binding response is not expected by a lite agent")
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or ":" not in username:
        raise StunError(400, "missing or malformed USERNAME")
    local_ufrag, _, remote_ufrag = username.partition(":")
    return BindingRequest(message, local_ufrag, remote_ufrag)


def check_binding_request(request: BindingRequest, local_pwd: str) -> None:
    """Authenticate and validate a Binding request addressed to us (RFC 8445 §7.3).

    Raises StunError with the code to answer with.
    """
    message = request.message
    if "MESSAGE-INTEGRITY" not in message.attributes:
        raise StunError(400, "missing MESSAGE-INTEGRITY")
    if not message.check_message_integrity(local_pwd.encode()):
        raise StunError(401, "MESSAGE-INTEGRITY does not match")
    if "FINGERPRINT" not in message.attributes:
        raise StunError(400, "missing FINGERPRINT")
    if "PRIORITY" not in message.attributes:
        raise StunError(400, "missing PRIORITY")
    # A lite agent is always controlled (RFC 8445 §6.1.1); a peer claiming to be controlled
    # as well is in a role conflict we cannot resolve by switching (§7.3.1.1).
    if "ICE-CONTROLLED" in message.attributes:
        raise StunError(487, "role conflict: a lite agent is always controlled")


def success_response(request: BindingRequest, addr: tuple[str, int], local_pwd: str) -> bytes:
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=request.message.transaction_id,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
    response.add_message_integrity(local_pwd.encode())
    return bytes(response)


def error_response(
    request: BindingRequest, code: int, reason: str, local_pwd: str | None
) -> bytes:
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.ERROR,
        transaction_id=request.message.transaction_id,
    )
    response.attributes["ERROR-CODE"] = (code, reason)
    if local_pwd is not None and code != 401:
        response.add_message_integrity(local_pwd.encode())
    else:
        response.add_fingerprint()
    return bytes(response)


def is_nomination(request: BindingRequest) -> bool:
    return "USE-CANDIDATE" in request.message.attributes
