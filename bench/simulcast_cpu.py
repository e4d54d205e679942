#!/usr/bin/env python3
"""Simulcast relaying (issue 17): server CPU per forwarded video packet, simulcast ÷ single-layer.

For each N of `--viewers` and each of `--repeats`, back to back in one invocation, a fresh
`hubbub serve` pinned to `--server-cpu` per scenario, in an order rotated between repeats (the
shared machine's load drifts), all from one copy of src/ taken at the start (same build):

- `single`: one VP8 publisher (one SSRC, `--single-kbps`, 1280x720 keyframes), N viewers;
- `simulcast`: one VP8 publisher with three SSRCs in `a=ssrc-group:SIM` as the Millicast SDK
  sends (320x180 150 kb/s, 640x360 500 kb/s, 1280x720 1500 kb/s), N viewers pinned by `view`'s
  `layer` a third on each; then `switched`: the same server after every viewer did one
  `select` to the next layer (mod 3) and moved at that layer's keyframe (where VP8
  PictureID/TL0PICIDX continuity is kept across layers);
- `simulcast-notcc`: as `simulcast` but the viewers offer no transport-cc, so the server runs
  no downlink estimator for them: the difference is the estimator's cost.

Per scenario: `idle` (server with nothing), `ingest` (the publisher alone: the incoming side),
then the viewers join and the `forward` window is measured. Server CPU is the run time of its
threads (/proc/<pid>/task/*/schedstat); forwarded packets are the video packets the viewers
received (not padding), counted from the clear RTP header without decrypting. Windows where
the viewers did not get what the publisher sent, or the publisher fell behind its schedule
(a starved process on the shared machine), are left out of the summary (`valid`).

The bots are cheap (hubbub.client.bots: ICE/DTLS/SRTP, no decoding): the publisher sends
synthetic VP8 RTP at 30 fps (RFC 7741 descriptors with 15-bit PictureID, TL0PICIDX and an L1T3
temporal pattern, keyframes every `--gop` s on all layers with real VP8 keyframe headers so the
server sees sizes; no answer to PLI or NACK), stamps a transport-wide seq as Chrome does;
every viewer negotiates transport-cc and sends feedback every 100 ms from kernel arrival
times, so the server's downlink estimator runs for simulcast viewers as for browsers.

    python bench/simulcast_cpu.py                       # N = 20,100, 2 repeats (≈ 7 min)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402

from hubbub.client.bots import run as run_uvloop  # noqa: E402
from hubbub.client.bots.drain import Drain  # noqa: E402
from hubbub.client.bots.offer import LocalTransport, parse_answer  # noqa: E402
from hubbub.client.bots.peer import BotPeer  # noqa: E402
from hubbub.client.signaling import Signaling  # noqa: E402
from hubbub.media import sdp  # noqa: E402
from hubbub.media.dtls import Certificate  # noqa: E402
from hubbub.media.twcc import TwccResponder  # noqa: E402

VP8_PT = 96
EXT_TWCC = 3  # Chromium's ids
EXT_MID = 4
FPS = 30
MAX_PAYLOAD = 1100  # VP8 payload bytes per packet (~1200-byte datagrams, like libwebrtc)
TWCC_INTERVAL = 0.1  # feedback period of the viewers (libwebrtc: 50-250 ms, 100 typical)
_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True)
class Layer:
    width: int
    height: int
    kbps: int


SIMULCAST = (Layer(320, 180, 150), Layer(640, 360, 500), Layer(1280, 720, 1500))


def log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


# --- SDP ----------------------------------------------------------------------------------


def _video_lines(local: LocalTransport, direction: str, twcc: bool = True) -> list[str]:
    lines = [
        "v=0", f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
        "a=group:BUNDLE 0", "a=msid-semantic: WMS",
        f"m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT}", "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}", f"a=fingerprint:sha-256 {local.fingerprint}",
        "a=setup:actpass", "a=mid:0",
        f"a=extmap:{EXT_TWCC} {sdp.URI_TWCC}", f"a=extmap:{EXT_MID} {sdp.URI_MID}",
        f"a={direction}", "a=rtcp-mux", "a=rtcp-rsize", f"a=rtpmap:{VP8_PT} VP8/90000",
        f"a=rtcp-fb:{VP8_PT} transport-cc", f"a=rtcp-fb:{VP8_PT} ccm fir",
        f"a=rtcp-fb:{VP8_PT} nack", f"a=rtcp-fb:{VP8_PT} nack pli",
    ]
    if not twcc:
        lines = [x for x in lines if "transport-cc" not in x and sdp.URI_TWCC not in x]
    return lines


def publisher_offer(local: LocalTransport, ssrcs: Sequence[int]) -> str:
    """One sendonly VP8 m-line; several SSRCs become an SSRC-group simulcast (lowest first)."""
    lines = _video_lines(local, "sendonly") + ["a=msid:bench bench-video"]
    if len(ssrcs) > 1:
        lines.append("a=ssrc-group:SIM " + " ".join(map(str, ssrcs)))
    for ssrc in ssrcs:
        lines += [f"a=ssrc:{ssrc} cname:bench", f"a=ssrc:{ssrc} msid:bench bench-video"]
    return "\r\n".join(lines) + "\r\n"


# --- publisher ----------------------------------------------------------------------------


class VideoPublisher:
    """Synthetic VP8 at 30 fps on one SSRC per layer; all layers' packets of a frame in one
    burst, keyframes on every layer together every `gop` seconds."""

    def __init__(self, url: str, stream: str, layers: Sequence[Layer], gop: float,
                 certificate: Certificate) -> None:
        self.url, self.stream, self.layers = url, stream, list(layers)
        self.peer = BotPeer(certificate)
        self.ssrcs = [secrets.randbits(32) | 1 for _ in layers]
        self.gop_frames = max(1, round(gop * FPS))
        self._seqs = [secrets.randbits(16) for _ in layers]
        self._ts0 = [secrets.randbits(32) for _ in layers]
        self._pid = [secrets.randbits(15) for _ in layers]
        self._tl0 = [secrets.randbits(8) for _ in layers]
        self._twcc = 0
        self._filler = os.urandom(MAX_PAYLOAD)
        self._sizes = [self._frame_sizes(layer) for layer in layers]
        self.signaling: Signaling | None = None
        self.sent = 0
        self.sent_bytes = 0
        self.sent_layer = [0] * len(self.layers)
        self._n = 0
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def nominal_pps(self) -> float:
        """Packets a second the schedule sends when the loop keeps up."""
        g = self.gop_frames
        per_gop = sum((g - 1) * -(-delta // MAX_PAYLOAD) + -(-key // MAX_PAYLOAD)
                      for delta, key in self._sizes)
        return per_gop / g * FPS

    def _frame_sizes(self, layer: Layer) -> tuple[int, int]:
        """(delta, key) frame bytes: keyframes 4x a delta frame, `kbps` on average."""
        g = self.gop_frames
        delta = int(layer.kbps * 1000 / 8 / FPS * g / (g + 3))
        return delta, 4 * delta

    async def start(self) -> None:
        self.signaling = Signaling(self.url)
        await self.signaling.connect()
        reply = await self.signaling.command(
            "publish", {"name": self.stream, "sdp": publisher_offer(self.peer.local, self.ssrcs)})
        await self.peer.connect(parse_answer(str(reply["sdp"])))
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._timer = loop.call_at(self._t0, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        elapsed = loop.time() - self._t0
        if elapsed - self._n / FPS > 0.2:  # after a loop stall skip frames instead of bursting
            self._n = int(elapsed * FPS)
        n = self._n
        self._n += 1
        self._timer = loop.call_at(self._t0 + self._n / FPS, self._tick)
        for i in range(len(self.layers)):
            self._send_frame(i, n)

    def _send_frame(self, i: int, n: int) -> None:
        layer = self.layers[i]
        key = n % self.gop_frames == 0
        size = self._sizes[i][1 if key else 0]
        # L1T3 as libwebrtc's VP8 simulcast: TIDs 0,2,1,2; Y (layer sync) where the frame
        # depends on the base layer only; TL0PICIDX counts base-layer frames.
        tid, sync = ((0, 0), (2, 1), (1, 1), (2, 0))[0 if key else n % 4]
        if tid == 0:
            self._tl0[i] = (self._tl0[i] + 1) & 0xFF
        pid = self._pid[i] = (self._pid[i] + 1) & 0x7FFF
        ts = (self._ts0[i] + n * (90000 // FPS)) & 0xFFFFFFFF
        count = -(-size // MAX_PAYLOAD)
        per = -(-size // count)
        tail = bytes((0x80 | pid >> 8, pid & 0xFF, self._tl0[i], tid << 6 | sync << 5))
        for k in range(count):
            first = k == 0
            body = bytes((0x90 if first else 0x80, 0xE0)) + tail  # X, S on the first; I L T
            if first:
                # RFC 6386 §9.1 frame tag (P=0 on keyframes, show_frame), then for a keyframe
                # the start code and 14-bit width/height that the server reads sizes from.
                body += bytes((0x10 if key else 0x11, 0x02, 0x00))
                if key:
                    body += b"\x9d\x01\x2a" + struct.pack("<HH", layer.width, layer.height)
            body += self._filler[: max(0, per - len(body))]
            seq = self._seqs[i]
            self._seqs[i] = (seq + 1) & 0xFFFF
            twcc = self._twcc
            self._twcc = (twcc + 1) & 0xFFFF
            marker = 0x80 if k == count - 1 else 0
            ext = struct.pack("!HHBBBBB3x", 0xBEDE, 2, EXT_MID << 4, 0x30, EXT_TWCC << 4 | 1,
                              twcc >> 8, twcc & 0xFF)
            packet = _HEADER.pack(0x90, marker | VP8_PT, seq, ts, self.ssrcs[i]) + ext + body
            self.peer.send_rtp(packet)
            self.sent += 1
            self.sent_layer[i] += 1
            self.sent_bytes += len(packet)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.peer.close()
        if self.signaling is not None:
            await self.signaling.close()


# --- viewers ------------------------------------------------------------------------------


class ViewerPeer(BotPeer):
    """Counts the server's RTP from the clear header (no decryption) and records each
    transport-wide seq with its kernel arrival time for transport-cc feedback."""

    def __init__(self, certificate: Certificate) -> None:
        super().__init__(certificate)
        self.twcc: TwccResponder | None = None
        self.video = 0
        self.video_bytes = 0
        self.padding = 0
        self.lost = 0
        self.last_seq = -1
        self.feedbacks = 0  # transport-cc feedback packets sent

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] < 128:
            super().datagram_received(data, addr)
            return
        if 191 < data[1] < 224:
            return  # the server's SRs: nothing to do with them
        if self.twcc is not None:
            arrival = self.arrival_ns or time.monotonic_ns()
            self.twcc.record(data, arrival // 1000)
        seq = data[2] << 8 | data[3]
        if self.last_seq >= 0:
            gap = (seq - self.last_seq) & 0xFFFF
            if gap >= 0x8000:
                return  # late or duplicate
            self.lost += gap - 1
        self.last_seq = seq
        if data[0] & 0x20:  # P bit: the estimator's padding-only probes, not video
            self.padding += 1
        else:
            self.video += 1
            self.video_bytes += len(data)


@dataclass
class ViewerBot:
    url: str
    stream: str
    layer: str | None
    peer: ViewerPeer
    twcc: bool = True  # offer transport-cc (then the server's estimator runs for simulcast)
    signaling: Signaling | None = None
    timer: asyncio.TimerHandle | None = None

    async def start(self, drain: Drain | None) -> None:
        self.peer.drain = drain
        self.signaling = Signaling(self.url)
        await self.signaling.connect()
        data: dict[str, Any] = {"streamId": self.stream, "events": ["active", "inactive"],
                                "sdp": _viewer_offer(self.peer.local, self.twcc)}
        if self.layer is not None:
            data["layer"] = {"encodingId": self.layer}
        reply = await self.signaling.command("view", data, timeout=20)
        answer = parse_answer(str(reply["sdp"]))
        twcc_id = answer.ext_ids.get("0", {}).get(sdp.URI_TWCC, 0)
        if twcc_id:
            self.peer.twcc = TwccResponder(twcc_id, secrets.randbits(32) | 1)
        await self.peer.connect(answer, timeout=20)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(TWCC_INTERVAL * secrets.randbelow(100) / 100, self._feedback)

    def _feedback(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(TWCC_INTERVAL, self._feedback)
        if self.peer.twcc is not None and not self.peer.closed:
            packet = self.peer.twcc.build()
            if packet is not None:
                self.peer.send_rtcp(packet)
                self.peer.feedbacks += 1

    async def select(self, layer: str) -> None:
        assert self.signaling is not None
        self.layer = layer
        await self.signaling.command("select", {"layer": {"encodingId": layer}})

    async def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.peer.close()
        if self.signaling is not None:
            await self.signaling.close()


def _viewer_offer(local: LocalTransport, twcc: bool) -> str:
    return "\r\n".join(_video_lines(local, "recvonly", twcc)) + "\r\n"


# --- measuring ----------------------------------------------------------------------------


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def server_cpu_ns(pid: int) -> int:
    """Run time of all the server's threads (/proc/<pid>/task/*/schedstat, ns): finer than
    /proc/<pid>/stat's 10 ms ticks, which are coarse for a lightly loaded server."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended meanwhile
    return total


@dataclass
class Snapshot:
    wall: float
    server_cpu: float
    server_ns: int
    bots_cpu: float
    machine: tuple[int, int]
    sent: int
    sent_layer: list[int]
    per_layer: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    per_viewer: list[int] = field(default_factory=list)  # video packets, in viewer order
    feedbacks: int = 0


def snapshot(pid: int, publisher: VideoPublisher | None, viewers: Sequence[ViewerBot]
             ) -> Snapshot:
    per: dict[str, list[int]] = {}
    for v in viewers:
        p = v.peer
        acc = per.setdefault(v.layer or "-", [0, 0, 0, 0])
        acc[0] += p.video
        acc[1] += p.video_bytes
        acc[2] += p.padding
        acc[3] += p.lost
    cpu = common.process_cpu(pid)
    assert cpu is not None
    return Snapshot(time.monotonic(), cpu, server_cpu_ns(pid), time.process_time(), _busy_jiffies(),
                    publisher.sent if publisher is not None else 0,
                    list(publisher.sent_layer) if publisher is not None else [],
                    {k: (a[0], a[1], a[2], a[3]) for k, a in per.items()},
                    [v.peer.video for v in viewers], sum(v.peer.feedbacks for v in viewers))


async def window(pid: int, seconds: float, publisher: VideoPublisher | None,
                 viewers: Sequence[ViewerBot]) -> dict[str, Any]:
    a = snapshot(pid, publisher, viewers)
    await asyncio.sleep(seconds)
    b = snapshot(pid, publisher, viewers)
    wall = b.wall - a.wall
    cpu = (b.server_ns - a.server_ns) / 1e9
    busy = (b.machine[0] - a.machine[0]) / max(1, b.machine[1] - a.machine[1])
    layers: dict[str, Any] = {}
    for key, after in b.per_layer.items():
        before = a.per_layer.get(key, (0, 0, 0, 0))
        d = [x - y for x, y in zip(after, before, strict=True)]
        mine = [(y - x) / wall for v, x, y in zip(viewers, a.per_viewer, b.per_viewer,
                                                  strict=True) if (v.layer or "-") == key]
        layers[key] = {"viewers": len(mine),
                       "pps_per_viewer": round(d[0] / wall / max(1, len(mine)), 1),
                       "pps_min_max": [round(min(mine), 1), round(max(mine), 1)],
                       "video": d[0], "bytes": d[1], "padding": d[2], "lost": d[3]}
    forwarded = sum(x["video"] for x in layers.values())
    # What the viewers should have got: their layer's packets as the publisher sent them.
    # Short of it (no seq gaps) means a starved bot or server lagging behind the window.
    expected = sum(b.sent_layer[int(v.layer or 0)] - a.sent_layer[int(v.layer or 0)]
                   for v in viewers)
    nbytes = sum(x["bytes"] for x in layers.values())
    sent = b.sent - a.sent
    return {
        "seconds": round(wall, 2), "server_cpu_s": round(cpu, 4),
        "server_cpu_s_proc_stat": round(b.server_cpu - a.server_cpu, 2),
        "server_core": round(cpu / wall, 3),
        "incoming_pps": round(sent / wall, 1),
        "nominal_pps": round(publisher.nominal_pps, 1) if publisher is not None else None,
        "forwarded": forwarded, "forwarded_pps": round(forwarded / wall, 1),
        "delivered": round(forwarded / expected, 4) if expected else None,
        "avg_forwarded_bytes": round(nbytes / forwarded) if forwarded else None,
        "padding": sum(x["padding"] for x in layers.values()),
        "feedback_per_s": round((b.feedbacks - a.feedbacks) / wall, 1),
        "lost": sum(x["lost"] for x in layers.values()),
        "us_per_forwarded": round(cpu / forwarded * 1e6, 3) if forwarded else None,
        "bots_core": round((b.bots_cpu - a.bots_cpu) / wall, 3),
        "machine_busy": round(busy, 3),
        "by_layer": layers,
    }


async def _gather_limited(coros: Sequence[Any], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


async def scenario(kind: str, viewers_n: int, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh server: idle, ingest, forward (and for `simulcast` the switched window)."""
    layers = SIMULCAST if kind.startswith("simulcast") else (Layer(1280, 720, args.single_kbps),)
    certificate = Certificate()
    drain = Drain(args.poll_ms / 1000) if Drain.available() else None
    result: dict[str, Any] = {"scenario": kind, "viewers": viewers_n,
                              "layers": [vars(layer) for layer in layers]}
    cpu = args.server_cpu if args.server_cpu >= 0 else None
    with common.server(None, cpu=cpu, src=args.src,
                       log_name=".simulcast_cpu.server.log") as (base, pid):
        assert pid is not None
        await asyncio.sleep(1.0)
        result["idle"] = await window(pid, args.idle, None, [])
        publisher = VideoPublisher(f"{base}/ws/v2/pub", "bench", layers, args.gop, certificate)
        viewers: list[ViewerBot] = []
        try:
            await publisher.start()
            await asyncio.sleep(args.warmup)
            result["ingest"] = await window(pid, args.window, publisher, [])
            for i in range(viewers_n):
                layer = str(i % len(layers)) if len(layers) > 1 else None
                viewers.append(ViewerBot(f"{base}/ws/v2/sub", "bench", layer,
                                         ViewerPeer(certificate), twcc=not kind.endswith("notcc")))
            t = time.monotonic()
            await _gather_limited([v.start(drain) for v in viewers], 16)
            result["join_s"] = round(time.monotonic() - t, 2)
            # Every viewer's first keyframe (a GOP at most), then the estimator's start.
            await asyncio.sleep(args.gop + args.warmup)
            result["forward"] = await window(pid, args.window, publisher, viewers)
            if kind == "simulcast":
                await asyncio.gather(*(v.select(str((int(v.layer or 0) + 1) % len(layers)))
                                       for v in viewers))
                await asyncio.sleep(args.gop + args.warmup)
                result["switched"] = await window(pid, args.window, publisher, viewers)
        finally:
            await asyncio.gather(*(v.stop() for v in viewers), return_exceptions=True)
            await publisher.stop()
            if drain is not None:
                drain.close()
        log_text = (common.RESULTS_DIR / ".simulcast_cpu.server.log").read_text(errors="replace")
        path = next((line.split("forward path:", 1)[1].strip()
                     for line in log_text.splitlines() if "forward path:" in line), None)
        result["forward_path"] = path
    return result


def _median(values: list[float]) -> float | None:
    data = sorted(values)
    if not data:
        return None
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2


def _net(point: dict[str, Any], name: str) -> float | None:
    """µs per forwarded packet of window `name` less the incoming side (the ingest window's
    server CPU rate): what the viewers add."""
    w, ingest = point.get(name), point.get("ingest")
    if not w or not ingest or not w["forwarded"]:
        return None
    forwarded: int = w["forwarded"]
    extra: float = w["server_cpu_s"] - ingest["server_core"] * w["seconds"]
    return round(extra / forwarded * 1e6, 3)


DELIVERY_TOLERANCE = 0.03
SENDING_TOLERANCE = 0.1


def valid(w: dict[str, Any] | None) -> bool:
    """A window whose viewers got what the publisher sent (within 3 %: a server starved by
    other users of the machine lags behind in its 4 MB receive buffer, so its CPU and the
    packets counted are not the same work) and whose publisher kept its schedule (within
    10 %: a starved bot process skips frames)."""
    if not w or w["delivered"] is None or abs(w["delivered"] - 1) > DELIVERY_TOLERANCE:
        return False
    nominal = w.get("nominal_pps")
    return not nominal or w["incoming_pps"] >= (1 - SENDING_TOLERANCE) * nominal


# (scenario, window) pairs summarized; "switched" is the simulcast server after the selects.
CASES = {"single": ("single", "forward"), "simulcast": ("simulcast", "forward"),
         "switched": ("simulcast", "switched"),
         "simulcast_notcc": ("simulcast-notcc", "forward")}


def summarize(points: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sorted({p["viewers"] for p in points}):
        at = [p for p in points if p["viewers"] == n]
        gross: dict[str, list[float]] = {}
        net: dict[str, list[float]] = {}
        for case, (kind, name) in CASES.items():
            ws = [p for p in at if p["scenario"] == kind and valid(p.get(name))]
            gross[case] = [p[name]["us_per_forwarded"] for p in ws
                           if p[name]["us_per_forwarded"] is not None]
            net[case] = [v for v in (_net(p, name) for p in ws) if v is not None]

        def ratio(values: dict[str, list[float]], a: str, b: str) -> float | None:
            ma, mb = _median(values[a]), _median(values[b])
            return round(ma / mb, 3) if ma is not None and mb else None

        kinds = sorted({p["scenario"] for p in at})
        # Same traffic with and without transport-cc: the difference is the estimator's.
        core = {k: _median([p["forward"]["server_core"] for p in at
                            if p["scenario"] == k and valid(p["forward"])]) for k in kinds}
        fb = _median([p["forward"]["feedback_per_s"] for p in at
                      if p["scenario"] == "simulcast" and valid(p["forward"])])
        tcc, notcc = core.get("simulcast"), core.get("simulcast-notcc")
        estimator = (round((tcc - notcc) / fb * 1e6, 1)
                     if tcc is not None and notcc is not None and fb else None)
        ingest = {k: [p["ingest"]["server_core"] - p["idle"]["server_core"] for p in at
                      if p["scenario"] == k] for k in kinds}
        pps = {k: [p["ingest"]["incoming_pps"] for p in at if p["scenario"] == k] for k in kinds}
        out[str(n)] = {
            "us_per_forwarded": gross,
            "windows_excluded": [f"{p['scenario']}/{name} repeat {p['repeat']}: delivered "
                                 f"{p[name]['delivered']}, sent {p[name]['incoming_pps']} of "
                                 f"{p[name].get('nominal_pps')} pps" for p in at
                                 for name in ("forward", "switched")
                                 if p.get(name) and not valid(p[name])],
            "median_us_per_forwarded": {k: _median(v) for k, v in gross.items()},
            "ratio_simulcast_over_single": ratio(gross, "simulcast", "single"),
            "ratio_switched_over_single": ratio(gross, "switched", "single"),
            "ratio_switched_over_simulcast": ratio(gross, "switched", "simulcast"),
            "ratio_simulcast_notcc_over_single": ratio(gross, "simulcast_notcc", "single"),
            "net_of_ingest_us_per_forwarded": net,
            "median_server_core": core,
            "feedback_per_s": fb,
            "estimator_us_per_feedback": estimator,
            "net_ratio_simulcast_over_single": ratio(net, "simulcast", "single"),
            "net_ratio_switched_over_single": ratio(net, "switched", "single"),
            "ingest_core_over_idle": {k: [round(x, 4) for x in v] for k, v in ingest.items()},
            "ingest_incoming_pps": pps,
            "ingest_us_per_incoming_packet": {
                k: [round(c / r * 1e6, 1) for c, r in zip(ingest[k], pps[k], strict=True) if r]
                for k in kinds},
            "ratio_ingest_core_simulcast_over_single": ratio(ingest, "simulcast", "single")
            if "simulcast" in ingest and "single" in ingest else None,
        }
    return out


async def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    kinds: list[str] = args.scenarios
    turn = 0
    for n in args.viewers:
        for rep in range(args.repeats):
            # Rotate the order every time: the shared machine's load drifts during a run.
            order = kinds[turn % len(kinds):] + kinds[:turn % len(kinds)]
            turn += 1
            for kind in order:
                log(f"N={n} repeat {rep + 1}: {kind}", args.quiet)
                point = await scenario(kind, n, args)
                point["repeat"] = rep
                points.append(point)
                for name in ("ingest", "forward", "switched"):
                    w = point.get(name)
                    if w:
                        log(f"  {name:8} server {w['server_core']:.3f} core, "
                            f"{w['forwarded_pps']:.0f} fwd pps, "
                            f"{w['us_per_forwarded']} µs/fwd pkt, lost {w['lost']}, "
                            f"padding {w['padding']}, machine {w['machine_busy']:.2f}",
                            args.quiet)
    return points


def tree_state(root: Path) -> dict[str, Any]:
    """The commit, what in src/ differed from it, and the C extension's hash: what ran."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=root, capture_output=True,
                              text=True).stdout.strip()

    diff = git("diff", "HEAD", "--", "src")
    built = sorted((root / "src" / "hubbub").glob("_speedups*.so"))
    return {"root": str(root), "commit": git("rev-parse", "HEAD") or None,
            "src_dirty": git("status", "--porcelain", "--", "src").splitlines(),
            "src_diff_sha1": hashlib.sha1(diff.encode()).hexdigest() if diff else None,
            "speedups_sha1": hashlib.sha1(built[0].read_bytes()).hexdigest() if built else None}


def snapshot_src(tmp: Path) -> str:
    """Copy src/ (with the built C extension) once, so every server of the run is the same
    build even while other engineers edit and rebuild the working tree."""
    shutil.copytree(common.REPO_ROOT / "src", tmp / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return str(tmp)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], "simulcast_cpu.json", server=False)
    p.add_argument("--viewers", type=lambda s: [int(x) for x in s.split(",")], default=[20, 100])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--scenarios", type=lambda s: s.split(","),
                   default=["single", "simulcast", "simulcast-notcc"],
                   help="single, simulcast (+ the switched window), simulcast-notcc (viewers "
                        "without transport-cc: no downlink estimator)")
    p.add_argument("--window", type=float, default=8.0, help="seconds per measured window")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of the idle window")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--gop", type=float, default=2.0, help="seconds between keyframes")
    p.add_argument("--single-kbps", type=int, default=1500)
    p.add_argument("--server-cpu", type=int, default=1, help="-1: do not pin the server")
    p.add_argument("--src", default=None,
                   help="run the server from another checkout (its src/; build its C "
                        "extension there first), e.g. an export of a commit to compare with; "
                        "default: a copy of this tree's src/ taken at the start")
    p.add_argument("--bots-cpu", type=int, default=0, help="-1: do not pin this process")
    p.add_argument("--poll-ms", type=float, default=4.0,
                   help="the viewers' sockets are read every this many ms (see drain.py)")
    args = p.parse_args()
    if args.bots_cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.bots_cpu})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="simulcast_cpu.") as tmp:
        tree = tree_state(Path(args.src) if args.src else common.REPO_ROOT)
        if args.src is None:
            args.src = snapshot_src(Path(tmp))
        points = run_uvloop(sweep(args))
    params = {k: v for k, v in vars(args).items() if k not in ("output", "quiet", "src")}
    common.write_result(args.output, params, {
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "tree": tree,
        "summary": summarize(points), "points": points})
    log(f"wrote {args.output}", args.quiet)


if __name__ == "__main__":
    main()
