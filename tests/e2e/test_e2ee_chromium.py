"""End-to-end encryption through the SFU, multiplexed audio slots included.

Chromium publishers (the official `@millicast/sdk` Publish, unmodified) send WebAudio oscillator
tones whose Opus frames an RTCRtpScriptTransform encrypts whole with AES-128-GCM (page-side, see
tests/e2e/e2ee/e2ee.js: hubbub has no E2EE feature; it forwards payloads it never reads and
ranks talkers by the RFC 6464 levels in the clear RTP header extensions). Checked:

- a Chromium View with the key (a receiver transform) hears each talker's tone in the
  multiplexed slot its `vad` event names;
- a Chromium View without the key gets the same packets in the same slots and hears no tone
  (Opus decoding ciphertext gives silence or noise: under a quarter of it near either tone);
- an aiortc viewer records every RTP payload it is forwarded (a test-side hook on aiortc's
  RTCRtpReceiver): each one is byte for byte an encrypted frame the publisher's transform
  produced (the only other packets are padding-only bandwidth probes, with no payload);
  decoded as Opus they hold no tone, decrypted with the key they hold the talker's.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import av
import numpy as np
import pytest
import pytest_asyncio
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from playwright.async_api import Browser, Page
from tests.e2e.test_millicast_sdk import (
    ADMIN,
    SDK_FILE,
    create_token,
    events,
    harness,
    inbound,
    settle_slots,
)
from tests.e2e.test_millicast_sdk import repo_pages as repo_pages  # the module fixture
from tests.helpers.browser import PageFactory, StaticServer, wait_until
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.director import connect_info
from hubbub.client.media import to_mono
from hubbub.client.viewer import Viewer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

E2EE_DIR = "/tests/e2e/e2ee"
STREAM = "e2ee-room"
TONES = {"a": 440.0, "b": 660.0}  # "host" (no sourceId, the main source) sends silence
IV_BYTES = 12  # tests/e2e/e2ee/frame-cipher.js: IV || AES-GCM(frame) || tag
# Share of a signal's energy within 20 Hz of a tone (`tone_share`): a clean tone has about 1.0
# (the keyed viewer measures 1.000); noise from decoding ciphertext measured at most 0.09.
TONE = 0.8
NO_TONE = 0.25

Json = dict[str, Any]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    args = ["--api-secret", ADMIN]
    with RunningServer(name="e2ee-chromium", allow_any_stream=False, extra_args=args) as s:
        yield s


@pytest_asyncio.fixture
async def pages(
    browser: Browser, repo_pages: StaticServer, request: pytest.FixtureRequest
) -> AsyncIterator[PageFactory]:
    factory = PageFactory(browser, repo_pages.url + E2EE_DIR, name=f"e2ee-{request.node.name}")
    yield factory
    await factory.close()


# --- helpers ------------------------------------------------------------------------------


async def heard(page: Page, client: str, mid: str) -> tuple[np.ndarray, int]:
    """The newest samples the page's WebAudio tap holds for `client`'s track at `mid` (the first
    call starts the tap) and their sample rate."""
    got: Json = await page.evaluate("([c, m]) => sdk.audioSamples(c, m)", [client, mid])
    return np.array(got["samples"], dtype=np.float64), int(got["sampleRate"])


def tone_share(samples: np.ndarray, rate: int, freq: float, band: float = 20.0) -> float:
    """Which part of the signal's energy lies within `band` Hz of `freq` (0 for silence): about
    1 for a clean tone, close to 0 for noise or another tone."""
    if samples.size < 4 or rms(samples) < 1e-4:
        return 0.0
    data = samples - samples.mean()
    power = np.abs(np.fft.rfft(data * np.hanning(data.size))) ** 2
    freqs = np.fft.rfftfreq(data.size, 1.0 / rate)
    total = float(power[1:].sum())
    return float(power[np.abs(freqs - freq) <= band].sum()) / total if total > 0 else 0.0


async def listen(page: Page, client: str, mid: str, freq: float,
                 timeout: float = 15.0) -> tuple[np.ndarray, int]:
    """Look at the page's tap of `client`'s track at `mid` until it plays `freq` (within 10 Hz,
    with most of its energy) or `timeout` passes (a loaded machine starts playout late or
    conceals a moment); the samples and rate of the last look, for the caller to assert on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        samples, rate = await heard(page, client, mid)
        playing = abs(dominant_frequency(samples, rate) - freq) < 10
        if (playing and tone_share(samples, rate, freq) > TONE) or loop.time() > deadline:
            return samples, rate
        await asyncio.sleep(0.3)


def decode_opus(payloads: list[bytes]) -> tuple[np.ndarray, int]:
    """The payloads decoded in order as Opus (PyAV, as aiortc's decoder does) and how many of them
    the decoder refused."""
    codec = av.CodecContext.create("opus", "r")
    chunks: list[np.ndarray] = []
    refused = 0
    for payload in payloads:
        try:
            frames = codec.decode(av.Packet(payload))
        except av.FFmpegError:
            refused += 1
            continue
        chunks.extend(to_mono(frame) for frame in frames)
    return (np.concatenate(chunks) if chunks else np.zeros(0)), refused


async def publish_encrypted(page: Page, token: str, key: bytes, source: str | None,
                            frequency: float, gain: float = 0.3) -> None:
    """SDK Publish `source` ("host": the main source, no sourceId) of an encrypted tone."""
    name = source or "host"
    options: Json = {"token": token, "streamName": STREAM, "keyHex": key.hex(),
                     "frequency": frequency, "gain": gain}
    if source is not None:
        options["sourceId"] = source
    result = await page.evaluate("([n, o]) => e2ee.publish(n, o)", [name, options])
    assert result == {"ok": True}, result
    await wait_until(page, "(n) => e2ee.state(n) === 'connected'", name, timeout=20)


async def e2ee_view(pages: PageFactory, srv: RunningServer, token: str, key: bytes | None) -> Page:
    """A page whose SDK View `v` (three multiplexed slots) decrypts with `key`, or not at all."""
    page = await harness(pages, srv)
    await wait_until(page, "() => !!window.e2ee")
    if key is not None:
        await page.evaluate("(k) => e2ee.decryptWith(k)", key.hex())
    result = await page.evaluate(
        "(o) => sdk.view('v', o)",
        {"streamName": STREAM, "subscriberToken": token, "multiplexedAudioTracks": 3})
    assert result["ok"], (result, pages.log_tail())
    return page


async def talkers_in_slots(page: Page) -> dict[str, str]:
    """mid -> sourceId of the slots that carry "a" and "b" (the third slot stays idle), once
    their taps ran for a second."""
    placed = await settle_slots(page, {"a", "b", None}, timeout=20)
    talking = {mid: source for mid, source in placed.items() if source is not None}
    for mid in talking:
        await heard(page, "v", mid)  # start the taps
    await asyncio.sleep(1.2)
    return talking


class RtpCapture:
    """What aiortc receivers get, per receiver and in arrival order: every non-empty RTP payload,
    and how many packets had none (padding-only: bandwidth probes carry no media). A test-side
    wrap of RTCRtpReceiver._handle_rtp_packet: nothing of hubbub is touched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.payloads: dict[int, list[bytes]] = {}
        self.padding_only = 0
        self.empty_unpadded = 0  # no payload and no padding: should never come
        self.recording = True
        original = RTCRtpReceiver._handle_rtp_packet
        capture = self

        async def handle(receiver: RTCRtpReceiver, packet: Any, arrival_time_ms: int) -> None:
            if capture.recording:
                if packet.payload:
                    capture.payloads.setdefault(id(receiver), []).append(bytes(packet.payload))
                elif packet.padding_size:
                    capture.padding_only += 1
                else:
                    capture.empty_unpadded += 1
            await original(receiver, packet, arrival_time_ms)

        monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle)

    def by_mid(self, viewer: Viewer) -> dict[str, list[bytes]]:
        return {str(t.mid): self.payloads.get(id(t.receiver), [])
                for t in viewer.pc.getTransceivers()}


# --- the test -----------------------------------------------------------------------------


async def test_only_the_viewer_with_the_key_hears_the_encrypted_talkers(
    srv: RunningServer, pages: PageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_bytes(16)
    publish_token = str(create_token(srv, "publish", pattern="e2ee-*", multisource=True)["token"])
    subscribe_token = str(create_token(srv, "subscribe", pattern="e2ee-*")["token"])

    # One page, three SDK Publish clients: the silent main source, then the two talkers.
    publisher = await harness(pages, srv)
    await wait_until(publisher, "() => !!window.e2ee")
    await publish_encrypted(publisher, publish_token, key, None, 300.0, gain=0.0)
    for source, freq in TONES.items():
        await publish_encrypted(publisher, publish_token, key, source, freq)
    transforms = await publisher.evaluate("e2ee.transforms()")
    assert transforms == [{"op": "encrypt", "senders": 1, "receivers": 0}] * 3, transforms

    # The aiortc viewer records what the SFU forwards, from its first packet on.
    capture = RtpCapture(monkeypatch)
    info = await connect_info(srv.http_url, "subscribe", STREAM, subscribe_token)
    spy = Viewer(info.url, STREAM, token=info.jwt, video=False, multiplexed_audio_tracks=2)
    await spy.connect(timeout=20)
    try:
        # With the key: each talker's tone in the slot its vad event names.
        keyed = await e2ee_view(pages, srv, subscribe_token, key)
        with_key = await talkers_in_slots(keyed)
        report: list[str] = []
        for mid, source in with_key.items():
            samples, rate = await listen(keyed, "v", mid, TONES[source])
            freq = dominant_frequency(samples, rate)
            share = tone_share(samples, rate, TONES[source])
            report.append(f"key: slot {mid} = {source}: {freq:.1f} Hz, share {share:.3f}, "
                          f"rms {rms(samples):.3f}")
            assert abs(freq - TONES[source]) < 10, report
            assert share > TONE, report
        decryption = await keyed.evaluate("e2ee.decryption()")
        report.append(f"key: {decryption['decrypted']} frames decrypted, {decryption['failed']} "
                      f"refused, {decryption['empty']} empty (padding-only) passed on")
        assert decryption["decrypted"] >= 100, decryption
        assert decryption["failed"] == 0, decryption
        assert await keyed.evaluate("e2ee.transforms()") == [
            {"op": "decrypt", "senders": 0, "receivers": 4}]  # main audio + 3 slots

        # Without the key: the same packets arrive in the same slots, and no tone plays.
        keyless = await e2ee_view(pages, srv, subscribe_token, None)
        without_key = await talkers_in_slots(keyless)
        for mid, source in without_key.items():
            samples, rate = await heard(keyless, "v", mid)
            shares = {s: round(tone_share(samples, rate, f), 4) for s, f in TONES.items()}
            dominant = dominant_frequency(samples, rate)
            report.append(f"no key: slot {mid} = {source}: shares {shares}, rms "
                          f"{rms(samples):.4f}, dominant {dominant:.1f} Hz")
            assert max(shares.values()) < NO_TONE, report
        first = await inbound(keyless)
        await asyncio.sleep(1.0)
        later = await inbound(keyless)
        for mid in without_key:
            arrived = later[mid]["packetsReceived"] - first[mid]["packetsReceived"]
            report.append(f"no key: slot {mid}: {arrived} packets in 1 s")
            assert arrived >= 25, report
        assert await keyless.evaluate("e2ee.transforms()") == [
            {"op": None, "senders": 0, "receivers": 0}]
        vads = [e["data"] for e in await events(keyless, "vad")]
        assert {v["sourceId"] for v in vads} == {"a", "b"}, vads

        # What the SFU forwarded to aiortc: only the publishers' ciphertext, each talker's in
        # the slot the server reported.
        capture.recording = False
        await asyncio.sleep(0.5)  # the last frames' records reach the page from the worker
        sent: dict[str, list[str]] = await publisher.evaluate("e2ee.ciphertexts()")
        owner = {bytes.fromhex(h): label for label, frames in sent.items() for h in frames}
        assert len(owner) == sum(len(frames) for frames in sent.values())  # all distinct
        received = capture.by_mid(spy)
        assert spy.audio_mid is not None
        expected = {spy.audio_mid: "host", **{m: s for m, s in spy.slots.items() if s}}
        assert set(expected.values()) == {"host", "a", "b"}, spy.slots
        for mid, label in expected.items():
            payloads = received[mid]
            strangers = [p for p in payloads if owner.get(p) != label]
            report.append(f"aiortc mid {mid} ({label}): {len(payloads)} payloads, "
                          f"{len(strangers)} not {label}'s ciphertext")
            assert len(payloads) >= 100, report
            assert strangers == [], (report, [p.hex()[:40] for p in strangers[:5]])
        report.append(f"aiortc: {capture.padding_only} padding-only packets (no payload)")
        assert capture.empty_unpadded == 0, report

        # The forwarded bytes carry the tone only for whoever holds the key.
        for mid, label in expected.items():
            if label == "host":
                continue
            payloads = received[mid]
            garbage, refused = decode_opus(payloads)
            aead = AESGCM(key)
            plain, _ = decode_opus([aead.decrypt(p[:IV_BYTES], p[IV_BYTES:], None)
                                    for p in payloads])
            share_raw = tone_share(garbage, 48000, TONES[label])
            share_plain = tone_share(plain[-48000:], 48000, TONES[label])
            freq = dominant_frequency(plain[-48000:], 48000)
            report.append(f"aiortc {label}: as Opus {len(garbage)} samples, {refused} refused, "
                          f"tone share {share_raw:.3f}; decrypted {freq:.1f} Hz, "
                          f"share {share_plain:.3f}")
            assert share_raw < NO_TONE, report
            assert abs(freq - TONES[label]) < 10, report
            assert share_plain > TONE, report
        print("\n".join(report))
    finally:
        await spy.close()
