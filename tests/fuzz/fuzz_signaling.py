"""Signaling JSON: hubbub.control.messages.parse_command (the envelope every WebSocket text
frame goes through) and the field readers the commands use on its `data` (messages'
optional_str / required_str / str_list, the `mediaId` reader of project / unproject).

Input: the frame's text (UTF-8; undecodable bytes become U+FFFD).

Documented errors: ProtocolError only (invalid JSON, too deep, wrong shapes, bounds).
"""

from __future__ import annotations

from hubbub.control import messages
from hubbub.control.view import _media_id

MAX_LEN = 4096
EXPECTED = (messages.ProtocolError,)
KEYS = ("sdp", "name", "streamId", "sourceId", "codec", "pinnedSourceId", "mediaId")
LISTS = ("excludedSourceIds", "events")


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        command = messages.parse_command(text)
    except EXPECTED:
        return
    assert isinstance(command.data, dict) and 0 < len(command.name) <= messages.MAX_NAME
    for key in KEYS:
        try:
            messages.optional_str(command.data, key)
            messages.required_str(command.data, key, 64)
        except EXPECTED:
            pass
    for key in LISTS:
        try:
            messages.str_list(command.data, key, 8)
        except EXPECTED:
            pass
    mapping = command.data.get("mapping")
    entries = [e for e in mapping if isinstance(e, dict)] if isinstance(mapping, list) else []
    media_ids = command.data.get("mediaIds")
    if isinstance(media_ids, list):
        entries += [{"mediaId": v} for v in media_ids]
    for entry in entries:
        try:
            _media_id(entry)
        except EXPECTED:
            pass


if __name__ == "__main__":
    from tests.fuzz.harness import fuzz_main

    fuzz_main(one_input, "signaling", MAX_LEN)
