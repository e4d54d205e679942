"""`python -m tests.fuzz.seeds`: (re)write the seed-* files of every corpus: valid packets,
offers and commands from the test fixtures, each in its harness's input format."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from aioice import stun

from hubbub.media import rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.receive_stats import ReportValues
from tests.fuzz import fuzz_stun
from tests.fuzz.harness import TARGETS, corpus_of
from tests.media.test_rtcp import FIXTURES as RTCP_FIXTURES
from tests.media.test_rtcp import SR_SDES
from tests.media.test_rtp import CHROME_OPUS, raw_packet
from tests.sfu import fakes

SDP_DIR = Path(__file__).resolve().parents[1] / "media" / "data" / "sdp"


def stun_seeds() -> dict[str, bytes]:
    def request(pwd: str | None, **attrs: object) -> bytes:
        message = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST, transaction_id=b"T" * 12)
        message.attributes.update(attrs)
        if pwd is not None:
            message.add_message_integrity(pwd.encode())
        return bytes(message)

    browser = dict(USERNAME="SrvU:peer", PRIORITY=1853817087, **{"ICE-CONTROLLING": 42})
    seeds = {
        "browser-check": b"\x00" + request(fuzz_stun.PASSWORD, **browser),
        "nomination": b"\x00" + request(fuzz_stun.PASSWORD, **browser, **{"USE-CANDIDATE": None}),
        "wrong-password": b"\x00" + request("x" * 24, **browser),
        "unsigned": b"\x00" + request(None, **browser),
        "controlled": b"\x00" + request(fuzz_stun.PASSWORD, USERNAME="SrvU:peer",
                                        PRIORITY=1, **{"ICE-CONTROLLED": 7}),
    }
    indication = stun.Message(message_method=stun.Method.BINDING,
                              message_class=stun.Class.INDICATION, transaction_id=b"I" * 12)
    seeds["indication"] = b"\x00" + bytes(indication)
    # Signed mode: transaction id, then raw attributes (USERNAME, PRIORITY, ICE-CONTROLLING,
    # USE-CANDIDATE); the harness adds MESSAGE-INTEGRITY and FINGERPRINT.
    attrs = (struct.pack("!HH", 0x0006, 9) + b"SrvU:peer\x00\x00\x00"
             + struct.pack("!HHI", 0x0024, 4, 1853817087)
             + struct.pack("!HHQ", 0x802A, 8, 42)
             + struct.pack("!HH", 0x0025, 0))
    seeds["signed-check"] = b"\x01" + b"T" * 12 + attrs
    seeds["signed-no-priority"] = b"\x01" + b"T" * 12 + attrs[:16]
    return seeds


def rtp_seeds() -> dict[str, bytes]:
    packets = {
        "chrome-opus": CHROME_OPUS,
        "audio": fakes.audio_packet(7, 960, mid=b"0"),
        "video-key": fakes.video_packet(8, 3000, key=True, mid=b"1", marker=True),
        "two-byte": rtp.build_packet(96, 1, 2, 3, b"payload",
                                     extensions=[(1, b"\x10"), (20, b"x" * 20)]),
        "csrc-padding": raw_packet(csrcs=[1, 2], payload=b"abc", padding=3),
        "no-extension": raw_packet(payload=b"\xfc" + b"o" * 20),
        "id-15": raw_packet(ext_profile=0xBEDE, ext_body=bytes([0x10, 0x80, 0xF0, 0x11, 0x22])),
    }
    # Parameters: lookup id 1 (audio level), viewer MID id 9, identity or shuffled map, MID
    # of 1, 2 or 17 bytes (17 forces the two-byte form).
    prefixes = {"": bytes([1, 9, 0, 1]), "-shuffled": bytes([3, 4, 7, 2]),
                "-long-mid": bytes([2, 20, 5, 17])}
    return {name + suffix: prefix + packet for name, packet in packets.items()
            for suffix, prefix in prefixes.items()}


def rtcp_seeds() -> dict[str, bytes]:
    seeds = {f"packet-{i}": data for i, (data, _) in enumerate(RTCP_FIXTURES)}
    seeds["sr-sdes"] = SR_SDES
    values = ReportValues(fraction_lost=12, cumulative_lost=34, highest_seq=0x10005, jitter=7)
    seeds["rr-sdes"] = rtcp_io.receiver_report(1, 2, values, 0x11223344, 0x8000, "hubbub")
    seeds["viewer-feedback"] = (rtcp_io.receiver_report(1, 2, values, 0, 0, "c")
                                + rtcp_io.nack(1, 2, [65534, 65535, 0, 5, 30])
                                + rtcp_io.pli(1, 2))
    seeds["sr-compound"] = b"".join(rtcp_io.sender_report_compounds(
        [rtcp_io.sr_packet(i, 1 << 40, 90000, 10, 1000) for i in range(3)],
        [rtcp_io.cname_chunk(i, "hubbub") for i in range(3)]))
    return seeds


def sdp_seeds() -> dict[str, bytes]:
    seeds = {}
    for i, path in enumerate(sorted(SDP_DIR.glob("*.sdp"))):
        seeds[path.stem] = bytes([i % 6]) + path.read_bytes()
    return seeds


def signaling_seeds() -> dict[str, bytes]:
    offer = (SDP_DIR / "aiortc_view.sdp").read_text()
    commands = {
        "publish": {"type": "cmd", "transId": 1, "name": "publish",
                    "data": {"name": "demo", "sourceId": "cam", "codec": "vp8", "sdp": "v=0"}},
        "view": {"type": "cmd", "transId": 2, "name": "view",
                 "data": {"streamId": "acc/demo", "sdp": offer[:400], "pinnedSourceId": None,
                          "excludedSourceIds": ["a", "b"], "events": ["active", "layers"]}},
        "project": {"type": "cmd", "transId": 3, "name": "project",
                    "data": {"sourceId": "cam", "mapping": [
                        {"trackId": "0", "media": "audio", "mediaId": "1"},
                        {"media": "video", "mediaId": 2}]}},
        "unproject": {"type": "cmd", "transId": 4, "name": "unproject",
                      "data": {"mediaIds": ["1", 2, None]}},
        "select": {"type": "cmd", "transId": 5, "name": "select",
                   "data": {"layer": {"encodingId": "h"}}},
        "no-data": {"type": "cmd", "transId": 6, "name": "stop"},
    }
    seeds = {name: json.dumps(c).encode() for name, c in commands.items()}
    seeds["nested"] = (b'{"type": "cmd", "name": "x", "data": {"a": ' + b"[" * 31 + b"]" * 31
                       + b"}}")
    seeds["escapes"] = (b'{"type":"cmd","transId":7,"name":"\\u00e9\\n",'
                        b'"data":{"sdp":"\\ud83d"}}')
    return seeds


SEEDS = {"stun": stun_seeds, "rtp": rtp_seeds, "rtcp": rtcp_seeds, "sdp": sdp_seeds,
         "signaling": signaling_seeds}


def main() -> None:
    for target in TARGETS:
        directory = corpus_of(target)
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        for name, data in SEEDS[target]().items():
            (directory / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(SEEDS[target]())} seeds in {directory}")


if __name__ == "__main__":
    main()
