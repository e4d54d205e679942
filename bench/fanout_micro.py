#!/usr/bin/env python3
"""In-process microbenchmark of the fan-out: one publisher Track, N viewer DownTracks.

For each path (C fan-out, pure Python) and sink (`null`: rewrite + cache + bookkeeping only;
`srtp`: + SRTP protect (AES-GCM) and a UDP send to loopback sockets, like a real viewer
transport), feeds P packets through `Source.on_rtp` and reports process CPU µs per forwarded
packet; also the 100 ms tick (SRs) per viewer-second. No network beyond loopback, no server.

    python bench/fanout_micro.py --viewers 1000 --packets 300
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hubbub.media import rtp  # noqa: E402
from hubbub.media.dtls import SrtpKeys  # noqa: E402
from hubbub.media.srtp import PROTECT_FN, SrtpPair  # noqa: E402
from hubbub.media.transport import sockaddr_bytes  # noqa: E402
from hubbub.sfu import DownTrackParams, SfuConfig, Streams, TrackParams  # noqa: E402

PROFILE = "SRTP_PROFILE_AEAD_AES_128_GCM"
PUB_EXT = {rtp.SDES_MID: 3, rtp.AUDIO_LEVEL: 1, rtp.ABS_SEND_TIME: 2}
VIEW_EXT = {rtp.SDES_MID: 9, rtp.AUDIO_LEVEL: 5}


class Listener:
    def source_active(self, *a: Any) -> None: ...
    def source_inactive(self, *a: Any) -> None: ...
    def stopped(self, *a: Any) -> None: ...
    def viewer_count(self, *a: Any) -> None: ...
    def source_timed_out(self, *a: Any) -> None: ...
    def slot_changed(self, *a: Any) -> None: ...


class NullSink:
    c_target: Any = None

    def send_rtp(self, data: bytes) -> None:
        pass

    def send_rtcp(self, data: bytes) -> None:
        pass


class SrtpSink:
    """What WebRtcTransport does per packet, minus the event loop: protect + sendto (Python
    path) or a ready C Target (C path)."""

    def __init__(self, sock: socket.socket, addr: tuple[str, int], c: Any) -> None:
        key = os.urandom(28)
        self.srtp = SrtpPair(SrtpKeys(PROFILE, rx_key=key, tx_key=key))
        self.sock = sock
        self.addr = addr
        self.c_target = None
        if c is not None:
            self.c_target = c.Target()
            self.c_target.set(sock.fileno(), PROTECT_FN, self.srtp.tx_pointer,
                              sockaddr_bytes(addr), self.srtp, self.send_raw)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def send_rtp(self, data: bytes) -> None:
        self.sock.sendto(self.srtp.protect(data), self.addr)

    def send_rtcp(self, data: bytes) -> None:
        self.sock.sendto(self.srtp.protect_rtcp(data), self.addr)


def measure(path: str, sink_kind: str, viewers: int, packets: int) -> dict[str, Any]:
    if path == "python":
        os.environ["HUBBUB_NO_SPEEDUPS"] = "1"
    else:
        os.environ.pop("HUBBUB_NO_SPEEDUPS", None)
    c = rtp.speedups()
    now = [1000.0]
    streams = Streams(Listener(), SfuConfig(), lambda: now[0], lambda: (3_900_000_000, 0))
    stream = streams.get_or_create("s")
    params = TrackParams("audio", "0", "opus", 111, 48000, "", [1111], dict(PUB_EXT))
    source = stream.publish(None, [params], NullSink())
    receivers: list[socket.socket] = []
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    for i in range(viewers):
        if sink_kind == "null":
            sink: Any = NullSink()
        else:
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind(("127.0.0.1", 0))
            rx.setblocking(False)
            receivers.append(rx)
            sink = SrtpSink(tx, rx.getsockname(), c)
        down = DownTrackParams("audio", str(i), 0x10000 + i, {"opus": 111}, dict(VIEW_EXT))
        stream.add_viewer([down], sink)
    payload = b"\xfc" + bytes(80)
    ext = [(1, b"\x9e"), (2, b"\x01\x02\x03"), (3, b"0")]
    frames = [rtp.build_packet(111, i, 960 * i, 1111, payload, False, ext)
              for i in range(packets + 1)]
    source.on_rtp(frames[0])  # binds re-base on their first packet (the Python path)

    def drain() -> None:
        for rx in receivers:
            try:
                while rx.recv(2048):
                    pass
            except BlockingIOError:
                pass

    drain()
    cpu = 0.0
    for frame in frames[1:]:
        now[0] += 0.02
        t0 = time.process_time()
        source.on_rtp(frame)
        cpu += time.process_time() - t0
        drain()
    forwarded = packets * viewers
    # The tick: every DownTrack's SR once per sr_interval, checked every 100 ms.
    t0 = time.process_time()
    for _ in range(50):
        now[0] += 0.1
        streams.tick(now[0])
    tick_cpu = time.process_time() - t0
    drain()
    tx.close()
    for rx in receivers:
        rx.close()
    return {"path": path, "sink": sink_kind, "viewers": viewers, "packets": packets,
            "forward_path_active": c is not None,
            "us_per_forwarded_packet": round(cpu / forwarded * 1e6, 3),
            "tick_us_per_viewer_second": round(tick_cpu / (5.0 * viewers) * 1e6, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--packets", type=int, default=300)
    p.add_argument("--paths", default="c,python")
    p.add_argument("--sinks", default="null,srtp")
    p.add_argument("--output", default=None, help="JSON file (default: print only)")
    args = p.parse_args()
    results = []
    for path in args.paths.split(","):
        for sink in args.sinks.split(","):
            r = measure(path, sink, args.viewers, args.packets)
            results.append(r)
            print(f"{path:6} {sink:4} {r['viewers']} viewers: {r['us_per_forwarded_packet']:6.2f} "
                  f"µs / forwarded packet, tick {r['tick_us_per_viewer_second']:6.2f} µs per "
                  f"viewer-second", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps({"command": sys.argv, "results": results},
                                                indent=2) + "\n")


if __name__ == "__main__":
    main()
