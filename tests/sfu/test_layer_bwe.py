"""The whole downlink loop in process: a simulcast publisher's three layers, one viewer behind a
simulated bottleneck (tests/sfu/bwe_sim.py's Link) that sends real transport-cc feedback every
100 ms. The viewer settles on the largest layer the link carries, moves up within 6 s of the
link widening (a probe, then the switch), down within 3 s of it narrowing, and does not
oscillate in between."""

from __future__ import annotations

from dataclasses import replace

from hubbub.media import rtcp, rtp
from hubbub.sfu import DownTrackParams, SfuConfig, Streams
from tests.sfu.bwe_sim import Link
from tests.sfu.fakes import VIEW_EXT, VP8_DELTA, VP8_PT, FakeClock, FakeSink, Recorder, video_params
from tests.sfu.test_simulcast import vp8_key

TWCC_OUT = 11
FPS = 30
# (ssrc, size, bytes per frame): about 150 kb/s, 500 kb/s and 1.5 Mb/s at 30 fps.
LAYERS = [(11, (320, 180), 625), (22, (640, 360), 2100), (33, (1280, 720), 6250)]


class LinkedViewer:
    """The viewer's transport: stamps transport seqs as SrtpPeer does, sends through the
    simulated link, and turns arrivals into transport-cc feedback for the Viewer."""

    def __init__(self, clock: FakeClock, link: Link) -> None:
        self.clock = clock
        self.link = link
        self.send_twcc_id = 0
        self.last_twcc_seq = -1
        self._seq = 0
        self._sent: list[tuple[int, int, float]] = []
        self._arrivals: dict[int, float | None] = {}
        self._next_report = 0
        self._fb_count = 0
        self.sent_bytes = 0

    def enable_send_twcc(self, ext_id: int) -> None:
        self.send_twcc_id = ext_id

    def drain_sent(self) -> list[tuple[int, int, float]]:
        sent, self._sent = self._sent, []
        return sent

    def send_rtp(self, data: bytes) -> None:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        stamped = rtp.stamp_transport_seq(data, self.send_twcc_id, seq)
        assert stamped is not None, "every packet to this viewer reserves the element"
        self.last_twcc_seq = seq
        now = self.clock()
        self._sent.append((seq, len(stamped), now))
        self.sent_bytes += len(stamped)
        self._arrivals[seq] = self.link.send(now, len(stamped) + 28)  # + IP/UDP

    def send_rtcp(self, data: bytes) -> None:
        pass

    def feedback(self) -> bytes | None:
        """transport-cc for what arrived by now, from the first seq not yet reported."""
        now = self.clock()
        first = self._next_report
        seqs = []
        seq = first
        while seq in self._arrivals:
            arrival = self._arrivals[seq]
            if arrival is not None and arrival > now:
                break  # still in flight: the next feedback
            seqs.append(arrival)
            seq += 1
        if not any(a is not None for a in seqs):
            return None
        for s in range(first, seq):
            del self._arrivals[s]
        self._next_report = seq
        self._fb_count += 1
        arrivals = [None if a is None else int(a * 1_000_000) for a in seqs]
        return rtcp.TransportCC.from_arrivals(first & 0xFFFF, arrivals, self._fb_count & 0xFF,
                                              sender_ssrc=1, media_ssrc=2).serialize()


def test_the_viewer_follows_the_link_up_and_down_without_oscillating() -> None:
    clock = FakeClock(0.0)
    streams = Streams(Recorder(), SfuConfig(), clock)
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None), layer_ssrcs=[s for s, _, _ in LAYERS])
    source = stream.publish(None, [params], FakeSink())
    link = Link(700_000, delay=0.02)
    sink = LinkedViewer(clock, link)
    ext = {**VIEW_EXT, rtp.TRANSPORT_CC: TWCC_OUT}
    viewer = stream.add_viewer([DownTrackParams("video", "v0", 0xB1, {"VP8": 120}, ext)], sink)
    down = viewer.main_video
    assert down is not None and viewer.estimator is None  # until there are layers
    layers = source.tracks[0].layers
    seqs = {ssrc: 0 for ssrc, _, _ in LAYERS}
    history: list[tuple[float, int]] = []  # (time, layer index) at every change

    def run(seconds: float) -> None:
        frames = int(seconds * FPS)
        for _ in range(frames):
            frame = round(clock.now * FPS)
            for ssrc, size, frame_bytes in LAYERS:
                key = frame % FPS == 0
                remaining = frame_bytes
                while remaining > 0:
                    chunk = min(remaining, 1100)
                    payload = vp8_key(*size) if key else VP8_DELTA
                    payload += bytes(max(0, chunk - len(payload)))
                    seqs[ssrc] += 1
                    source.on_rtp(rtp.build_packet(VP8_PT, seqs[ssrc], frame * 3000, ssrc,
                                                   payload))
                    key = False
                    remaining -= chunk
            for _ in range(3):  # feedback every ~11 ms of simulated time, like a tick
                clock.advance(1 / FPS / 3)
                streams.pace(clock.now)  # as control's pacer does while a probe is sent
                if round(clock.now * 1000) % 100 < 12:
                    packet = sink.feedback()
                    if packet is not None:
                        viewer.on_rtcp(packet)
            streams.tick()
            index = layers.index(down.track) if down.track in layers else -1
            if not history or history[-1][1] != index:
                history.append((clock.now, index))

    def layer_at_end() -> int:
        return history[-1][1]

    run(15)
    assert viewer.estimator is not None
    assert layer_at_end() == 1, (history, viewer.estimator.estimate_bps)  # 500 kb/s fits 700
    settled = len(history)
    run(10)
    assert len(history) == settled, f"oscillated: {history}"

    link.capacity = 3_000_000  # the link widens
    widened = clock.now
    run(12)
    up = next((t for t, i in history if t > widened and i == 2), None)
    # The next probe is at most PROBE_MAX_INTERVAL (4 s) away, then two carried probes.
    assert up is not None and up - widened <= 6, (history, viewer.estimator.estimate_bps)
    assert down.padding_sent > 0, "no probe before the upgrade"

    link.capacity = 350_000  # and narrows
    narrowed = clock.now
    run(6)
    low = next((t for t, i in history if t > narrowed and i == 0), None)
    assert low is not None and low - narrowed <= 3, (history, viewer.estimator.estimate_bps)
    print(f"layer changes (t, layer): {history}; up {up - widened:.1f} s after the link "
          f"widened, down {low - narrowed:.1f} s after it narrowed; "
          f"padding packets {down.padding_sent}")
