"""The nftables helper (tests/helpers/firewall.py) really cuts what it says, and only that.

Two namespaces on the test bridge, "s" (a UDP and TCP echo server) and "c" (where the firewall
is); probes run inside a namespace with `ip netns exec`. UDP between c and s is lost in both
directions with `block_udp_between`, TCP still passes, the root namespace still reaches s over
UDP (the rule lives in c only), and everything works again once the rule is removed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.helpers.firewall import Firewall, FirewallError, require_nft, unavailable_reason
from tests.helpers.netns import Host, VirtualNetwork

pytestmark = [pytest.mark.netns]

PORT = 7007
TCP_PORT = 7008

# UDP and TCP echo on the host's address; prints "ready" once both listen.
ECHO = """
import socket, sys, threading
ip, port, tcp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((ip, port))
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((ip, tcp_port)); tcp.listen()
def serve_tcp():
    while True:
        conn, _ = tcp.accept()
        with conn:
            conn.sendall(conn.recv(100))
threading.Thread(target=serve_tcp, daemon=True).start()
print("ready", flush=True)
while True:
    data, peer = udp.recvfrom(100)
    udp.sendto(data, peer)
"""

# Sends over UDP (three tries) and TCP; prints {"udp": bool, "tcp": bool, "send_error": str}.
PROBE = """
import json, socket, sys
ip, port, tcp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {"udp": False, "tcp": False, "send_error": ""}
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.settimeout(0.3)
    for _ in range(3):
        try:
            s.sendto(b"ping", (ip, port))
        except OSError as e:
            out["send_error"] = type(e).__name__
        try:
            out["udp"] = s.recv(100) == b"ping"
            break
        except OSError:
            pass
try:
    with socket.create_connection((ip, tcp_port), timeout=1.0) as t:
        t.settimeout(1.0)
        t.sendall(b"ping")
        out["tcp"] = t.recv(100) == b"ping"
except OSError:
    pass
print(json.dumps(out))
"""


def in_netns(host: Host | None, *args: str) -> list[str]:
    """The command run in `host`'s namespace (None: the root namespace)."""
    return [*(["ip", "netns", "exec", host.netns] if host else []), *args]


def probe(origin: Host | None, target: Host) -> dict[str, bool]:
    """{"udp": echoed, "tcp": echoed} from `origin` (None: root namespace) to `target`. A UDP
    datagram the firewall drops must leave without an error, as through a real firewall."""
    proc = subprocess.run(in_netns(origin, sys.executable, "-c", PROBE, target.ip, str(PORT),
                                   str(TCP_PORT)), capture_output=True, text=True, timeout=15)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result.pop("send_error") == "", f"sendto() failed: the drop is not silent {result}"
    return {key: bool(value) for key, value in result.items()}


@pytest.fixture(scope="module")
def network() -> Iterator[VirtualNetwork]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        require_nft()
    except FirewallError as exc:
        pytest.fail(str(exc), pytrace=False)
    net = VirtualNetwork(["s", "c"])
    try:
        net.up()
        echoes = []
        for host in net.hosts.values():  # an echo server in each namespace
            echo = subprocess.Popen(in_netns(host, sys.executable, "-c", ECHO, host.ip, str(PORT),
                                             str(TCP_PORT)),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            echoes.append(echo)
            assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        yield net
    finally:
        leftovers = net.down()  # kills the echo servers (they live in the namespaces)
        assert not leftovers, f"could not remove {leftovers}"


def test_udp_between_two_namespaces_is_dropped_both_ways_and_tcp_still_passes(
    network: VirtualNetwork,
) -> None:
    s, c = network.hosts["s"], network.hosts["c"]
    assert probe(c, s) == {"udp": True, "tcp": True}  # without a rule: both work
    assert probe(s, c) == {"udp": True, "tcp": True}

    with Firewall(c.netns) as fw:
        rule = fw.block_udp_between(s.ip)
        assert probe(c, s) == {"udp": False, "tcp": True}, fw.listing()
        # c's three pings went out and were dropped in c's output chain.
        assert fw.dropped(rule).outbound >= 3
        before = fw.dropped(rule)
        assert probe(s, c) == {"udp": False, "tcp": True}, fw.listing()
        # s -> c: the pings arrive in c and are dropped in its input chain.
        assert fw.dropped(rule).inbound >= before.inbound + 3
        # The root namespace (the bridge gateway) still reaches s over UDP: the rule is c's.
        assert probe(None, s) == {"udp": True, "tcp": True}

        fw.remove(rule)
        assert fw.rules == []
        assert probe(c, s) == {"udp": True, "tcp": True}
        with pytest.raises(FirewallError):
            fw.dropped(rule)
    assert fw.listing() == ""  # the table is gone


def test_a_blocked_tcp_port_leaves_udp_and_other_ports_alone(network: VirtualNetwork) -> None:
    s, c = network.hosts["s"], network.hosts["c"]
    with Firewall(c.netns) as fw:
        rule = fw.block_tcp_port(s.ip, TCP_PORT)
        assert probe(c, s) == {"udp": True, "tcp": False}, fw.listing()
        assert fw.dropped(rule).outbound >= 1  # the SYN (and its retransmissions)
        # Another TCP port on s is untouched: a connect gets s's RST at once.
        refused = subprocess.run(
            in_netns(c, sys.executable, "-c",
                     "import socket,sys\n"
                     "try:\n socket.create_connection((sys.argv[1], 9), timeout=2)\n"
                     "except ConnectionRefusedError: print('refused')\n"
                     "except OSError as e: print(type(e).__name__)\n", s.ip),
            capture_output=True, text=True, timeout=10)
        assert refused.stdout.strip() == "refused"
        # Both rules at once, then the table goes with clear().
        fw.block_udp_between(s.ip)
        assert probe(c, s) == {"udp": False, "tcp": False}
    assert probe(c, s) == {"udp": True, "tcp": True}
