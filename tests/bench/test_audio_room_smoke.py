"""Smoke run of bench/audio_room.py for both servers: the harness works and packets flow.

Not a speed test: 3 publishers, 5 listeners, 3 s. It checks that every listener received the
3 speakers through each server (with a loose lower bound on the count) and that the result
file has the figures the bench promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO_ROOT / "bench" / "janus"))
import janus_server  # noqa: E402

from hubbub.client.bots.janus import server_description, subscriber_answer  # noqa: E402
from hubbub.client.bots.offer import LocalTransport  # noqa: E402
from hubbub.media import sdp  # noqa: E402

LISTENERS = 5
DURATION = 3.0

JANUS_OFFER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=VideoRoom 1", "t=0 0", "a=group:BUNDLE 0 1",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=ice-lite",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 127.0.0.1", "a=sendonly", "a=mid:0",
    "a=rtcp-mux", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijkl", "a=setup:actpass",
    "a=rtpmap:111 opus/48000/2", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=ssrc:1111 cname:janus", "a=candidate:1 1 udp 2015363327 127.0.0.1 20001 typ host",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 127.0.0.1", "a=sendonly", "a=mid:1",
    "a=rtcp-mux", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijkl", "a=setup:actpass",
    "a=rtpmap:111 opus/48000/2", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=ssrc:2222 cname:janus", "",
])


def test_janus_offer_is_read_and_answered_as_dtls_client() -> None:
    server = server_description(JANUS_OFFER)
    assert server.address == ("127.0.0.1", 20001)
    assert server.ice_ufrag == "abcd" and server.ssrcs == {"0": [1111], "1": [2222]}
    local = LocalTransport("ufra", "p" * 22, ":".join(["CD"] * 32))
    text, mids = subscriber_answer(JANUS_OFFER, local)
    assert mids == ["0", "1"]
    answer = sdp.parse(text)
    assert [m.mid for m in answer.media] == ["0", "1"]
    for m in answer.media:
        assert m.setup == "active" and m.direction == "recvonly" and m.rtcp_mux
        assert m.ice_ufrag == "ufra" and [c.payload_type for c in m.codecs] == [111]
        # only the extensions we understand are answered, with Janus's ids
        assert m.extmaps == {1: sdp.URI_MID}
    with pytest.raises(ValueError, match="setup:active"):
        server_description(JANUS_OFFER.replace("a=setup:actpass", "a=setup:active"))
    with pytest.raises(ValueError, match="no UDP host candidate"):
        server_description(JANUS_OFFER.replace("a=candidate:1 1 udp", "a=candidate:1 1 tcp"))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("server", ["hubbub", "janus"])
def test_audio_room_smoke(server: str, tmp_path: Path) -> None:
    if server == "janus" and not janus_server.available():
        pytest.skip("janus is not installed")
    out = tmp_path / "audio_room.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "audio_room.py"), "--servers", server,
         "--listeners", str(LISTENERS), "--duration", str(DURATION), "--warmup", "1",
         "--latency-listeners", "2", "--server-cpu", "-1", "--bots-cpu", "-1", "--quiet",
         "--output", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    [point] = result["points"]
    assert point["server"] == server and point["listeners"] == LISTENERS
    # 3 speakers x 50 pps to every listener; allow for a slow, shared test machine
    expected = 3 * 50 * LISTENERS * point["window_s"]
    assert point["forwarded_packets"] > 0.8 * expected
    assert point["loss_pct"] < 5
    assert point["latency_ms"]["count"] > 0 and point["latency_ms"]["p50"] < 100
    assert point["server_cpu_s"] > 0 and point["cpu_s_per_million_packets"] > 0
    assert point["bots_cpu_s"] > 0
    assert result["summary"]["capacity"][server] in (0, LISTENERS)
    assert out.with_suffix(".png").exists() or "matplotlib" in proc.stderr
