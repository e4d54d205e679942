"""The WebSocket transaction envelope (PROTOCOL.md "WebSocket transactions").

command  {"type": "cmd", "transId": n, "name": "...", "data": {...}}
reply    {"type": "response", "transId": n, "data": {...}}
error    {"type": "error", "transId": n, "data": "reason"}
event    {"type": "event", "name": "...", "data": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hubbub.logs import clip

MAX_DEPTH = 32
"""Nesting of a command's JSON; ours need 4 (`project` mapping entries), SDP is a string."""

MAX_NAME = 64


class ProtocolError(ValueError):
    """A message we cannot act on; the reason goes back to the client verbatim."""

    def __init__(self, reason: str, trans_id: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.trans_id = trans_id


@dataclass(frozen=True)
class Command:
    trans_id: Any
    name: str
    data: dict[str, Any]


def too_deep(text: str, limit: int) -> bool:
    """Whether JSON `text` nests deeper than `limit`, found before parsing (a deeply nested
    message costs a scan, never a recursion). Brackets in strings are skipped."""
    if text.count("[") + text.count("{") <= limit:  # the usual case, at C speed
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_command(text: str, max_depth: int = MAX_DEPTH) -> Command:
    if too_deep(text, max_depth):
        raise ProtocolError(f"JSON nested deeper than {max_depth} levels")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"invalid JSON: {clip(exc)}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message must be a JSON object")
    trans_id = message.get("transId")
    if trans_id is not None and (not isinstance(trans_id, int) or isinstance(trans_id, bool)):
        raise ProtocolError("transId must be an integer")
    if message.get("type") != "cmd":
        raise ProtocolError(f"unexpected message type {clip(message.get('type'), 32)}",
                            trans_id)
    name = message.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("command has no name", trans_id)
    if len(name) > MAX_NAME:
        raise ProtocolError(f"command name longer than {MAX_NAME} characters", trans_id)
    data = message.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError("command data must be an object", trans_id)
    return Command(trans_id, name, data)


def response(trans_id: Any, data: dict[str, Any]) -> str:
    return json.dumps({"type": "response", "transId": trans_id, "data": data})


def error(trans_id: Any, reason: str) -> str:
    return json.dumps({"type": "error", "transId": trans_id, "data": reason})


def event(name: str, data: dict[str, Any] | None) -> str:
    return json.dumps({"type": "event", "name": name, "data": data if data is not None else {}})


def optional_str(data: dict[str, Any], key: str, max_len: int = 256) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string")
    if len(value) > max_len:
        raise ProtocolError(f"{key} is longer than {max_len} characters")
    return value


def required_str(data: dict[str, Any], key: str, max_len: int = 256) -> str:
    value = optional_str(data, key, max_len)
    if not value:
        raise ProtocolError(f"missing {key}")
    return value


def str_list(data: dict[str, Any], key: str, max_items: int = 256) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{key} must be a list of strings")
    if len(value) > max_items:
        raise ProtocolError(f"{key} has more than {max_items} items")
    return list(value)
