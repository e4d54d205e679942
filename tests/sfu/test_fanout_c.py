"""The C fan-out (hubbub._speedups.fanout) against the pure-Python DownTrack path: the same
scripted traffic (switches, late and malformed packets, keyframe waits, two-byte extension
forms, NACKs) must give byte-identical output and identical counters both ways; and with a
real SRTP Target the datagrams that arrive decrypt to exactly what the Python path sends."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtp
from hubbub.media.dtls import SrtpKeys
from hubbub.media.srtp import PROTECT_FN, SrtpPair
from hubbub.media.transport import sockaddr_bytes
from hubbub.sfu import DownTrackParams
from hubbub.sfu.downtrack import DownState
from tests.sfu.fakes import (
    ABS_OUT,
    LEVEL_OUT,
    VIEW_EXT,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    make_streams,
    video_packet,
    video_params,
)

speedups = pytest.importorskip("hubbub._speedups")


@contextlib.contextmanager
def python_path(enabled: bool) -> Iterator[None]:
    """HUBBUB_NO_SPEEDUPS=1 while the objects are built (they pick their path then)."""
    old = os.environ.pop("HUBBUB_NO_SPEEDUPS", None)
    if enabled:
        os.environ["HUBBUB_NO_SPEEDUPS"] = "1"
    try:
        yield
    finally:
        os.environ.pop("HUBBUB_NO_SPEEDUPS", None)
        if old is not None:
            os.environ["HUBBUB_NO_SPEEDUPS"] = old


def viewer_params() -> list[list[DownTrackParams]]:
    two_byte_mid = dict(VIEW_EXT)
    two_byte_mid[rtp.SDES_MID] = 15  # needs the two-byte form: the C path hands it back
    no_mid = {k: v for k, v in VIEW_EXT.items() if k != rtp.SDES_MID}
    return [
        [down_audio(), down_video()],
        [DownTrackParams("audio", "x", 0xA0000002, {"opus": 111}, two_byte_mid)],
        [DownTrackParams("audio", "y", 0xA0000003, {"opus": 109}, no_mid)],
        [DownTrackParams("audio", "z", 0xA0000004, {"PCMU": 0}, dict(VIEW_EXT))],  # no codec
        # NACK not negotiated: no cache, NACKs resend nothing, same bytes both ways
        [dataclasses.replace(down_audio(0xA0000005, "n"), nack=False),
         dataclasses.replace(down_video(0xB0000005, "m"), nack=False)],
    ]


Op = tuple[str, int]
ops = st.lists(st.tuples(st.sampled_from(["audio", "video", "key", "late", "switch",
                                          "malformed", "wait", "nack"]),
                         st.integers(0, 40)), max_size=60)


def run(script: list[Op], pure: bool) -> dict[str, Any]:
    with python_path(pure):
        streams, _, clock, ntp = make_streams()
        stream = streams.get_or_create("s")
        source = stream.publish("a", [audio_params(ssrc=1), video_params(ssrc=2)], FakeSink())
        sinks = []
        viewers = []
        for params in viewer_params():
            sink = FakeSink()
            sinks.append(sink)
            viewers.append(stream.add_viewer(params, sink))
        seq_a, seq_v, ts, generation = 60_000, 100, 0xFFFF_0000, 0
        for op, n in script:
            clock.advance(0.02)
            if op == "audio":
                seq_a += 1 + n % 3
                source.on_rtp(audio_packet(seq_a, ts + seq_a * 960, ssrc=1 + 10 * generation,
                                           level=n))
            elif op in ("video", "key"):
                seq_v += 1
                source.on_rtp(video_packet(seq_v, seq_v * 3000, ssrc=2 + 10 * generation,
                                           key=op == "key"))
            elif op == "late":
                source.on_rtp(audio_packet(seq_a - 1 - n, ts, ssrc=1 + 10 * generation))
            elif op == "switch":
                generation += 1
                seq_a = (seq_a * 7 + n) & 0xFFFF
                source = stream.publish("a", [audio_params(ssrc=1 + 10 * generation),
                                              video_params(ssrc=2 + 10 * generation)],
                                        FakeSink())
            elif op == "malformed":
                bad = bytearray(audio_packet(seq_a + 1, ts, ssrc=1 + 10 * generation))
                bad[13 + n % 8] = 0xFF  # breaks the extension block or its elements
                source.on_rtp(bytes(bad))
            elif op == "wait":
                clock.advance(n / 10)
            elif op == "nack":
                for viewer in viewers:
                    for down in viewer.down_tracks:
                        down.on_nack([(down.last_seq - k) & 0xFFFF for k in range(n % 5)],
                                     clock())
        counters = [
            (d.packets_sent, d.octets_sent, d.last_seq, d.last_ts, d.dropped_old,
             d.dropped_malformed, d.dropped_no_codec, d.dropped_waiting_keyframe,
             d.packets_resent, d.build_sender_report(clock(), (ntp()[0] << 32) | ntp()[1]))
            for viewer in viewers for d in viewer.down_tracks
        ]
        states = {type(d._st) for viewer in viewers for d in viewer.down_tracks}
        return {"rtp": [s.rtp_out for s in sinks], "counters": counters, "states": states}


@settings(max_examples=120, deadline=None)
@given(ops)
def test_c_fanout_matches_the_python_path(script: list[Op]) -> None:
    c = run(script, pure=False)
    py = run(script, pure=True)
    assert c["states"] == {speedups.DownState}
    assert py["states"] == {DownState}
    assert c["rtp"] == py["rtp"]
    assert c["counters"] == py["counters"]


def test_a_scripted_run_exercises_every_branch() -> None:
    script: list[Op] = [("audio", 0)] * 3 + [("malformed", 2), ("switch", 5), ("audio", 0),
                                             ("late", 0), ("audio", 0), ("video", 0),
                                             ("key", 0), ("video", 0), ("nack", 3)]
    c = run(script, pure=False)
    assert c == run(script, pure=True) | {"states": c["states"]}
    audio, video, two_byte, no_mid, no_codec, no_nack_audio, no_nack_video = c["counters"]
    # sent, dropped old / no codec / waiting keyframe (the Source drops malformed packets)
    assert (audio[0], audio[4]) == (5, 1)
    assert (video[0], video[7]) == (2, 1)
    assert two_byte[0] == no_mid[0] == 5 and no_codec[6] == 6  # every audio packet
    # Without NACK: same forwarding, nothing resent (index 8: packets_resent)
    assert no_nack_audio[:8] == audio[:8] and no_nack_video[:8] == video[:8]
    assert audio[8] + video[8] > 0 and no_nack_audio[8] == no_nack_video[8] == 0
    rtp_out = c["rtp"]
    # The two-byte MID form (id 15) came from the Python slow path, the rest from C.
    assert rtp.read_extensions(rtp_out[1][0])[-1] == (15, b"x")
    assert {i for i, _ in rtp.read_extensions(rtp_out[2][0])} == {LEVEL_OUT, ABS_OUT}  # no MID
    assert rtp_out[3] == []


def test_fanout_hands_back_slow_and_non_c_states() -> None:
    with python_path(False):
        streams, _, _, _ = make_streams()
        stream = streams.get_or_create("s")
        source = stream.publish(None, [audio_params()], FakeSink())
        sink = FakeSink()
        down = stream.add_viewer([down_audio()], sink).down_tracks[0]
    track = source.tracks[0]
    assert track.down_states == [down._st] and down._st.slow  # just bound: Python re-bases
    source.on_rtp(audio_packet(10, 960))
    assert not down._st.slow
    pkt = audio_packet(11, 1920)
    assert speedups.fanout(track.down_states, pkt, 11, 1920, 31, 1.0) is None
    assert rtp.read_header(sink.rtp_out[-1])[2] == 11 and down.packets_sent == 2
    py_state = DownState()
    py_state.owner = "python"
    assert speedups.fanout([py_state, down._st], audio_packet(12, 2880), 12, 2880, 31,
                           1.0) == (["python"], None)
    assert down.packets_sent == 3 and down.cache.get(12) == sink.rtp_out[-1]
    truncated = audio_packet(13, 3840)[:17]  # the extension block runs past the end
    assert speedups.fanout(track.down_states, truncated, 13, 3840, 0, 1.0) is None
    assert down.dropped_malformed == 1 and down.packets_sent == 3


@pytest.mark.skipif(not PROTECT_FN, reason="pylibsrtp exposes no srtp_protect")
@pytest.mark.parametrize("profile", ["SRTP_PROFILE_AES128_CM_SHA1_80",
                                     "SRTP_PROFILE_AEAD_AES_128_GCM"])
@pytest.mark.parametrize("nack", [True, False])
def test_target_sends_srtp_that_decrypts_to_the_python_output(profile: str, nack: bool) -> None:
    key_len = 30 if "CM" in profile else 28
    a, b = bytes(range(key_len)), bytes(range(100, 100 + key_len))
    sender = SrtpPair(SrtpKeys(profile, rx_key=b, tx_key=a))
    receiver = SrtpPair(SrtpKeys(profile, rx_key=a, tx_key=b))
    expected = FakeSink()
    with python_path(True):
        streams, _, _, _ = make_streams()
        stream = streams.get_or_create("s")
        py_source = stream.publish(None, [audio_params()], FakeSink())
        stream.add_viewer([down_audio()], expected)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        addr = rx.getsockname()
        raw: list[bytes] = []
        target = speedups.Target()
        assert not target.ready

        class TargetSink(FakeSink):
            c_target = target

        sink = TargetSink()
        with python_path(False):
            streams, _, _, _ = make_streams()
            stream = streams.get_or_create("s")
            source = stream.publish(None, [audio_params()], FakeSink())
            down = stream.add_viewer([dataclasses.replace(down_audio(), nack=nack)],
                                     sink).down_tracks[0]
        packets = [audio_packet(500 + i, 960 * i, level=i) for i in range(150)]
        source.on_rtp(packets[0])  # not ready yet: through the sink
        py_source.on_rtp(packets[0])
        target.set(tx.fileno(), PROTECT_FN, sender.tx_pointer, sockaddr_bytes(addr), sender,
                   raw.append)
        assert target.ready
        for p in packets[1:]:
            source.on_rtp(p)
            py_source.on_rtp(p)
        got = [receiver.unprotect(rx.recv(2048)) for _ in packets[1:]]
    assert sink.rtp_out == expected.rtp_out[:1]
    assert got == expected.rtp_out[1:] and raw == []
    assert target.packets == 149 and target.octets == sum(len(p) for p in got) + 149 * (
        sender.tag_length)
    if nack:
        assert down.cache is not None
        assert [down.cache.get(500 + i) for i in range(22, 150)] == expected.rtp_out[22:]  # 128
    else:
        assert down.cache is None
    target.clear()
    assert not target.ready
    source.on_rtp(audio_packet(650, 0))
    assert len(sink.rtp_out) == 2  # back to the sink once cleared
    # A NACK is answered from the cache only when NACK was negotiated (RFC 4585 §4.2).
    assert down.on_nack([649], 0.0) == (1 if nack else 0)
    assert sink.rtp_out[2:] == ([expected.rtp_out[149]] if nack else [])


@pytest.mark.skipif(not PROTECT_FN, reason="pylibsrtp exposes no srtp_protect")
def test_datagrams_the_kernel_refuses_go_to_send_raw() -> None:
    keys = SrtpKeys("SRTP_PROFILE_AEAD_AES_128_GCM", rx_key=bytes(28), tx_key=bytes(range(28)))
    sender = SrtpPair(keys)
    receiver = SrtpPair(SrtpKeys(keys.profile, rx_key=keys.tx_key, tx_key=keys.rx_key))
    raw: list[bytes] = []
    target = speedups.Target()

    class TargetSink(FakeSink):
        c_target = target

    sink = TargetSink()
    with python_path(False):
        streams, _, _, _ = make_streams()
        stream = streams.get_or_create("s")
        source = stream.publish(None, [audio_params()], FakeSink())
        stream.add_viewer([down_audio()], sink)
    source.on_rtp(audio_packet(1, 0))  # re-basing: Python path, to the sink
    # sendmmsg with an IPv4 address on a Unix datagram socket fails: every datagram of the
    # batch comes back and Track hands it to Target.send_raw, already protected.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        target.set(a.fileno(), PROTECT_FN, sender.tx_pointer, sockaddr_bytes(("127.0.0.1", 9)),
                   sender, raw.append)
        for i in range(2, 70):  # more than one 64-datagram batch is not needed: one per call
            source.on_rtp(audio_packet(i, 960 * i))
    assert len(raw) == 68 and len(sink.rtp_out) == 1
    assert [rtp.read_header(receiver.unprotect(p))[2] for p in raw] == list(range(2, 70))
    assert target.packets == 68  # protected and handed over; the transport sends them
