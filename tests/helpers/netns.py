"""Hubbub nodes in their own Linux network namespaces, joined by a bridge, for tests.

`VirtualNetwork(["a", "b", "c"]).up()` makes, per name, a namespace `hubbub-<tag>-<name>` with
loopback up and one veth whose other end is on a bridge in the root namespace; the bridge has
the subnet's `.1` (the test process, its clients and redis-server use it), the hosts `.11`,
`.12`, ... The subnet is a free /24 of 10.231.0.0/16 (a test-only range). `down()` always
removes everything `up()` made, also after a partial `up()`.

`NetnsNode` is a `RunningServer` started with `ip netns exec <ns>` and bound to its host's
address. `capture_udp` reads frames off a root-namespace veth end with an AF_PACKET socket.
Everything here needs root: `unavailable_reason()` says why a test must skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import aioice.ice

from tests.helpers.server import OptionValue, RunningServer

RANGE = "10.231"
_ETH_P_ALL = 0x0003
_ETH_P_IP = 0x0800


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def unavailable_reason() -> str | None:
    """Why namespaces, veths and bridges cannot be made here (None: they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create network namespaces, veth pairs and a bridge"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"hbprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("link", "add", probe, "type", "veth", "peer", "name", "eth0", "netns", probe)
        _ip("link", "add", probe + "b", "type", "bridge")
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` / veth / bridge unavailable: {exc}"
    finally:
        _ip("link", "del", probe + "b", check=False)
        _ip("link", "del", probe, check=False)
        _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str
    netns: str
    ip: str
    veth: str
    """The root-namespace end of this host's veth (on the bridge): capture its traffic here."""


class VirtualNetwork:
    def __init__(self, names: Sequence[str], tag: str | None = None) -> None:
        self.tag = tag or str(os.getpid())
        if len(f"hb{self.tag}br") > 15 or not all(len(n) <= 2 for n in names):
            raise ValueError("interface names are limited to 15 characters")
        self.names = list(names)
        self.bridge = f"hb{self.tag}br"
        self.gateway = ""
        self.subnet = ""
        self.hosts: dict[str, Host] = {}
        self._made_bridge = False

    def _free_subnet(self) -> str:
        used = _ip("-4", "-o", "addr").stdout + _ip("-4", "route").stdout
        start = int(self.tag) % 200 + 20 if self.tag.isdigit() else 20
        for i in range(250):
            third = (start + i) % 250 + 1
            if f"{RANGE}.{third}." not in used:
                return f"{RANGE}.{third}"
        raise NetnsError(f"no free /24 in {RANGE}.0.0/16")

    def up(self) -> VirtualNetwork:
        try:
            self.subnet = self._free_subnet()
            self.gateway = f"{self.subnet}.1"
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made_bridge = True
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, name in enumerate(self.names):
                host = Host(name, f"hubbub-{self.tag}-{name}", f"{self.subnet}.{11 + i}",
                            f"hb{self.tag}{name}")
                _ip("netns", "add", host.netns)
                self.hosts[name] = host
                _ip("-n", host.netns, "link", "set", "lo", "up")
                _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
                    "netns", host.netns)
                _ip("link", "set", host.veth, "master", self.bridge, "up")
                _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
                _ip("-n", host.netns, "link", "set", "eth0", "up")
            self._wait_reachable()
        except BaseException:
            self.down()
            raise
        return self

    def _wait_reachable(self, timeout: float = 5.0) -> None:
        """Until every host answers ARP through the bridge (the veths are forwarding)."""
        deadline = time.monotonic() + timeout
        pending = list(self.hosts.values())
        while pending:
            host = pending[0]
            # A TCP connect to a closed port gets a RST once the path works.
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                try:
                    sock.connect((host.ip, 9))
                    pending.pop(0)
                except ConnectionRefusedError:
                    pending.pop(0)
                except OSError:
                    if time.monotonic() > deadline:
                        raise NetnsError(f"{host.ip} in {host.netns} unreachable") from None

    def down(self) -> list[str]:
        """Kill what still runs in our namespaces, delete them, the veths and the bridge.
        Idempotent, never raises; returns what could not be removed."""
        leftovers: list[str] = []
        for host in self.hosts.values():
            pids = _ip("netns", "pids", host.netns, check=False).stdout.split()
            for pid in pids:  # only processes this test started live in this namespace
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", host.netns, check=False)  # also deletes the veth pair
            _ip("link", "del", host.veth, check=False)
        if self._made_bridge:
            _ip("link", "del", self.bridge, check=False)
        listing = _ip("-o", "link", check=False).stdout
        netns = _ip("netns", "list", check=False).stdout
        for host in self.hosts.values():
            if re.search(rf"^{re.escape(host.netns)}\b", netns, re.M):
                leftovers.append(f"netns {host.netns}")
            if f" {host.veth}@" in listing or f" {host.veth}:" in listing:
                leftovers.append(f"link {host.veth}")
        if self._made_bridge and f" {self.bridge}:" in listing:
            leftovers.append(f"link {self.bridge}")
        self.hosts.clear()
        self._made_bridge = False
        return leftovers

    def __enter__(self) -> VirtualNetwork:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


class NetnsNode(RunningServer):
    """`hubbub serve` inside `host`'s namespace, HTTP and media bound to the host's address.
    Ports may be fixed: each namespace has its own."""

    def __init__(self, host: Host, *, name: str, http_port: int = 8080, media_port: int = 10000,
                 options: Mapping[str, OptionValue] | None = None) -> None:
        super().__init__(name=name, http_port=http_port, media_port=media_port,
                         options=options)
        self.host = host
        args = list(self.args)
        args[args.index("--host") + 1] = host.ip
        self.args = ["ip", "netns", "exec", host.netns, *args]  # ip execs: same pid

    @property
    def http_url(self) -> str:
        return f"http://{self.host.ip}:{self.http_port}"

    @property
    def ws_pub_url(self) -> str:
        return f"ws://{self.host.ip}:{self.http_port}/ws/v2/pub"

    @property
    def ws_sub_url(self) -> str:
        return f"ws://{self.host.ip}:{self.http_port}/ws/v2/sub"


@contextlib.contextmanager
def ice_host_addresses(*addresses: str) -> Iterator[None]:
    """aiortc (aioice) gathers a host candidate on every interface of the root namespace; here
    only on the bridge's address, the one the nodes can answer. A patch in a test, not a server
    feature: the client patches only loopback URLs (hubbub.client.patches)."""
    original = aioice.ice.get_host_addresses

    def bridge_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return list(addresses) if use_ipv4 else []

    aioice.ice.get_host_addresses = bridge_only
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


@dataclass(frozen=True)
class Datagram:
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def capture_udp(interface: str, seconds: float,
                keep: Callable[[Datagram], bool] = lambda d: True,
                limit: int = 1000) -> list[Datagram]:
    """UDP/IPv4 datagrams seen on `interface` (root namespace) for `seconds`, both directions.
    Blocking: run it in a thread from async code."""
    out: list[Datagram] = []
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    try:
        sock.bind((interface, 0))
        sock.setblocking(False)
        deadline = time.monotonic() + seconds
        while len(out) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                continue
            frame = sock.recv(65535)
            datagram = _parse_udp(frame)
            if datagram is not None and keep(datagram):
                out.append(datagram)
    finally:
        sock.close()
    return out


def _parse_udp(frame: bytes) -> Datagram | None:
    if len(frame) < 14 + 20 + 8 or struct.unpack_from("!H", frame, 12)[0] != _ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP or len(ip) < ihl + 8:
        return None
    total = struct.unpack_from("!H", ip, 2)[0]
    sport, dport, length = struct.unpack_from("!HHH", ip, ihl)
    src = socket.inet_ntoa(ip[12:16])
    dst = socket.inet_ntoa(ip[16:20])
    end = min(ihl + length, total, len(ip))
    return Datagram((src, sport), (dst, dport), bytes(ip[ihl + 8:end]))


@contextlib.contextmanager
def running_network(names: Sequence[str]) -> Iterator[VirtualNetwork]:
    """A VirtualNetwork up for the block, then torn down (failing if anything is left)."""
    net = VirtualNetwork(names)
    try:
        net.up()
        yield net
    finally:
        leftovers = net.down()
        assert not leftovers, f"could not remove {leftovers}"
