"""A junk sender for testing a media port under abuse (issue 13): run it as its own process,
as an attacker would be, so it does not share an event loop with what it measures.

    python -m hubbub.client.bots.junk 127.0.0.1:10000 --kind bad-mi --ufrag SERVERUFRAG \\
        --rate 10000 --duration 5 --sources 1

Kinds (RFC 7983 first bytes): `bad-mi` STUN Binding requests for a live server ufrag with a
MESSAGE-INTEGRITY under a wrong password; `unknown-ufrag` the same for ufrags nobody has;
`dtls` records that look like a DTLS 1.2 handshake (first byte 22) and are random after the
header; `rtp` RTP version 2 with random bytes; `mix` all four in turn (`bad-mi` needs
`--ufrag`; without it `mix` leaves it out). `--sources N` sends from N source ports: one
socket for 1; for more, a raw socket that writes the UDP header itself when the process may
(root), so every datagram can come from another port as in a spray, else a pool of up to
1,000 UDP sockets. The datagrams are made up front; sending is paced in 1 ms steps. It prints
`sending` when the first datagram goes out (wait for it: starting Python takes most of a
second) and one JSON line at the end: what was sent and the rate reached (a saturated sender
falls short of `--rate`: compare the two).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import random
import socket
import struct
import sys
import time
import zlib
from collections.abc import Callable

KINDS = ("bad-mi", "unknown-ufrag", "dtls", "rtp", "mix")
_COOKIE = 0x2112A442


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) % 4)


def binding_request(username: str, pwd: bytes) -> bytes:
    """A Binding request as a browser sends it (USERNAME, PRIORITY, ICE-CONTROLLING,
    USE-CANDIDATE, MESSAGE-INTEGRITY under `pwd`, FINGERPRINT)."""
    tid = os.urandom(12)
    body = (_attribute(0x0006, username.encode())
            + _attribute(0x0024, struct.pack("!I", 1853817087))
            + _attribute(0x802A, os.urandom(8))
            + _attribute(0x0025, b""))
    header = struct.pack("!HHI12s", 0x0001, len(body) + 24, _COOKIE, tid)
    integrity = hmac.digest(pwd, header + body, "sha1")
    body += _attribute(0x0008, integrity)
    header = struct.pack("!HHI12s", 0x0001, len(body) + 8, _COOKIE, tid)
    crc = (zlib.crc32(header + body) ^ 0x5354554E) & 0xFFFFFFFF
    return header + body + _attribute(0x8028, struct.pack("!I", crc))


def _ufrag(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                   for _ in range(8))


def payloads(kind: str, ufrag: str | None, count: int = 256, seed: int = 1) -> list[bytes]:
    """`count` datagrams of `kind` (distinct transaction ids, ufrags and random bytes)."""
    rng = random.Random(seed)
    if kind == "mix":
        kinds = [k for k in KINDS[:4] if k != "bad-mi" or ufrag]
        parts = [payloads(k, ufrag, count // len(kinds) + 1, seed + i)
                 for i, k in enumerate(kinds)]
        return [p[i] for i in range(count // len(kinds) + 1) for p in parts][:count]
    out: list[bytes] = []
    for _ in range(count):
        if kind == "bad-mi":
            if not ufrag:
                raise ValueError("bad-mi needs the server's ufrag")
            out.append(binding_request(f"{ufrag}:{_ufrag(rng)}", rng.randbytes(24)))
        elif kind == "unknown-ufrag":
            out.append(binding_request(f"{_ufrag(rng)}:{_ufrag(rng)}", rng.randbytes(24)))
        elif kind == "dtls":
            body = rng.randbytes(rng.randrange(60, 200))
            out.append(struct.pack("!BHH6sH", 22, 0xFEFD, 0, rng.randbytes(6), len(body))
                       + body)
        elif kind == "rtp":
            out.append(bytes([0x80, 111]) + rng.randbytes(rng.randrange(60, 200)))
        else:
            raise ValueError(f"unknown kind {kind!r}")
    return out


def _raw_sender(target: tuple[str, int]) -> Callable[[bytes, int], None] | None:
    """send(datagram, source port) over a raw IPv4 socket (root only), else None."""
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except (PermissionError, OSError):
        return None
    src = socket.inet_aton("127.0.0.1" if target[0].startswith("127.") else
                           _local_address_for(target))
    dst = socket.inet_aton(target[0])
    addr = (target[0], 0)
    ip_header = struct.Struct("!BBHHHBBH4s4s")
    udp_header = struct.Struct("!HHHH")

    def send(data: bytes, source_port: int) -> None:
        length = 28 + len(data)
        # IP_HDRINCL: Linux fills in the IP checksum (and the id when 0); a UDP checksum of 0
        # means none (RFC 768), which IPv4 receivers accept.
        packet = (ip_header.pack(0x45, 0, length, 0, 0, 64, socket.IPPROTO_UDP, 0, src, dst)
                  + udp_header.pack(source_port, target[1], 8 + len(data), 0) + data)
        raw.sendto(packet, addr)

    return send


def _local_address_for(target: tuple[str, int]) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(target)
        address: str = probe.getsockname()[0]
        return address


def run(target: tuple[str, int], data: list[bytes], rate: float, duration: float,
        sources: int, started: Callable[[], None] | None = None) -> dict[str, object]:
    """Send `data` round robin at `rate` datagrams/s for `duration` s from `sources` ports;
    `started()` is called just before the first datagram."""
    sockets: list[socket.socket] = []
    raw = _raw_sender(target) if sources > 1 else None
    if raw is None:
        for _ in range(max(1, min(sources, 1000))):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            sockets.append(sock)
    first_port = 20000
    sent = errors = 0
    n_data = len(data)
    n_socks = len(sockets)
    if started is not None:
        started()
    start = time.monotonic()
    end = start + duration
    while True:
        now = time.monotonic()
        if now >= end:
            break
        # At most 10 ms of datagrams between looks at the clock: a saturated sender stops
        # on time instead of catching up after `duration`.
        due = min(int((now - start) * rate), sent + max(1, int(rate / 100)))
        while sent < due:
            payload = data[sent % n_data]
            try:
                if raw is not None:
                    raw(payload, first_port + sent % sources)
                else:
                    sockets[sent % n_socks].sendto(payload, target)
            except OSError:  # ENOBUFS, or ECONNREFUSED from an earlier ICMP
                errors += 1
            sent += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    for sock in sockets:
        sock.close()
    return {"sent": sent, "errors": errors, "seconds": round(elapsed, 3),
            "rate": round(sent / elapsed, 1) if elapsed else 0.0,
            "sources": sources if raw is not None else max(1, min(sources, 1000)),
            "raw": raw is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("target", help="HOST:PORT of the media port")
    parser.add_argument("--kind", choices=KINDS, default="mix")
    parser.add_argument("--ufrag", default=None, help="a live server ufrag (bad-mi, mix)")
    parser.add_argument("--rate", type=float, default=10_000, help="datagrams per second")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--sources", type=int, default=1, help="source ports to send from")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    data = payloads(args.kind, args.ufrag, seed=args.seed)
    result = run((host, int(port)), data, args.rate, args.duration, args.sources,
                 started=lambda: say("sending"))
    say(json.dumps({"kind": args.kind, **result}))
    return 0


def say(line: str) -> None:
    """One line to stdout at once: what a test or bench reading this process waits for."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
