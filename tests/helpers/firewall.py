"""nftables rules inside a test's network namespace: "a client behind a firewall".

`Firewall(netns)` keeps its rules in a table of its own, `hubbub_test`, inside that namespace
(`ip netns exec <ns> nft -f -`), so nothing in the root namespace or in another namespace is
touched, a rule never outlives its namespace and never hits other tests. The chains hook the
namespace's interface (`eth0` in tests/helpers/netns.py): `ingress` for what arrives, `egress`
for what leaves (netdev family). Why not `input`/`output`: a drop in `output` fails the
sender's sendto() with EPERM, so the client would *know* at once that its datagram was refused;
a firewall on the path is silent, and a drop at egress is too (the kernel reports success).
The egress hook needs Linux 5.16 or later.

    fw = Firewall(net.hosts["c"].netns)
    udp = fw.block_udp_between(net.hosts["s"].ip)      # every UDP datagram c <-> s is dropped
    tcp = fw.block_tcp_port(net.hosts["s"].ip, 7881)   # c cannot reach s's TCP port 7881
    ...
    fw.dropped(udp)   # Drops(inbound=..., outbound=...): what the rule's counters saw
    fw.remove(udp)    # only that rule
    fw.clear()        # the whole table; never raises (deleting the namespace removes it too)

Rules drop silently (no ICMP, no RST), as corporate firewalls do, so a blocked path looks like
loss and timeouts, not like a refusal. Addresses may be IPv4 or IPv6.
Everything here needs root: `unavailable_reason()` says why a test must skip; a missing `nft`
binary is a setup error (scripts/test installs the Debian `nftables` package), see `require_nft`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.helpers import netns

TABLE = "hubbub_test"
DEVICE = "eth0"  # the one interface of a VirtualNetwork host
_ids = itertools.count(1)


class FirewallError(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    """Why firewalled namespaces cannot be made here (None: they can). Only a missing privilege
    or kernel feature is a reason to skip; a missing `nft` is not (see `require_nft`)."""
    return netns.unavailable_reason()


def require_nft() -> str:
    """Path of `nft`; FirewallError with a fix-it message when it is absent."""
    path = shutil.which("nft")
    if path is None:
        raise FirewallError("`nft` not found: run scripts/test (it installs the Debian "
                            "'nftables' package) or `apt-get install nftables`")
    return path


@dataclass(frozen=True)
class Rule:
    """One logical rule: an nft rule per direction, sharing the comment `name`."""

    name: str
    description: str


@dataclass(frozen=True)
class Drops:
    """Packets a rule dropped: `inbound` arriving in the namespace, `outbound` leaving it."""

    inbound: int
    outbound: int

    @property
    def total(self) -> int:
        return self.inbound + self.outbound


def _match(address: str, direction: str) -> str:
    """nft match for an address as source ("saddr") or destination ("daddr")."""
    version = ipaddress.ip_address(address).version
    return f"{'ip' if version == 4 else 'ip6'} {direction} {address}"


class Firewall:
    """The `hubbub_test` table inside the namespace `netns_name` (see the module docstring)."""

    def __init__(self, netns_name: str, device: str = DEVICE) -> None:
        self.netns = netns_name
        self.device = device
        self.nft = require_nft()
        self.table = f"netdev {TABLE}"
        self.chains = ("ingress", "egress")  # (inbound, outbound)
        self._table_ready = False
        self._rules: list[Rule] = []

    # -- rules -----------------------------------------------------------------------------

    def block_udp_between(self, peer_ip: str) -> Rule:
        """Drop all UDP between this namespace and `peer_ip`, both directions, every port."""
        rule = Rule(f"hb{next(_ids)}", f"udp <-> {peer_ip}")
        self._apply(rule, f"{_match(peer_ip, 'saddr')} meta l4proto udp",
                    f"{_match(peer_ip, 'daddr')} meta l4proto udp")
        return rule

    def block_tcp_port(self, peer_ip: str, port: int) -> Rule:
        """Drop TCP between this namespace and `peer_ip`:`port` (SYNs out, anything back)."""
        rule = Rule(f"hb{next(_ids)}", f"tcp <-> {peer_ip}:{port}")
        self._apply(rule, f"{_match(peer_ip, 'saddr')} tcp sport {port}",
                    f"{_match(peer_ip, 'daddr')} tcp dport {port}")
        return rule

    def remove(self, rule: Rule) -> None:
        handles = [(r["chain"], r["handle"]) for r in self._listed_rules()
                   if r.get("comment") == rule.name]
        if not handles:
            raise FirewallError(f"{rule.description} ({rule.name}) is not in {self.netns}")
        self._run("".join(f"delete rule {self.table} {chain} handle {handle}\n"
                          for chain, handle in handles))
        self._rules.remove(rule)

    def clear(self) -> None:
        """Delete the whole table (every rule made here). Never raises: also for teardown after
        the namespace is gone (which removes the table anyway)."""
        self._rules.clear()
        self._table_ready = False
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self._run(f"delete table {self.table}\n", check=False)

    # -- reading back ----------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def dropped(self, rule: Rule) -> Drops:
        """The rule's counters: packets dropped coming in and going out."""
        inbound, outbound = self.chains
        counts = {inbound: 0, outbound: 0}
        found = False
        for listed in self._listed_rules():
            if listed.get("comment") != rule.name:
                continue
            found = True
            for expr in listed.get("expr", []):
                if "counter" in expr:
                    counts[listed["chain"]] += int(expr["counter"]["packets"])
        if not found:
            raise FirewallError(f"{rule.description} ({rule.name}) is not in {self.netns}")
        return Drops(inbound=counts[inbound], outbound=counts[outbound])

    def listing(self) -> str:
        """`nft list table` as text, for failure messages ('' when there is no table)."""
        return self._run(f"list table {self.table}", check=False, script=False).stdout

    # -- plumbing --------------------------------------------------------------------------

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        # `add` is a no-op for a table or chain that exists. Chain names = hook names.
        self._run(f"add table {self.table}\n" + "".join(
            f"add chain {self.table} {chain} {{ type filter hook {chain} device "
            f"\"{self.device}\" priority 0; policy accept; }}\n" for chain in self.chains))
        self._table_ready = True

    def _apply(self, rule: Rule, inbound_match: str, outbound_match: str) -> None:
        self._ensure_table()
        inbound, outbound = self.chains
        # One nft transaction for both halves: a rule is never there in one direction only.
        self._run("".join(
            f'add rule {self.table} {chain} {match} counter drop comment "{rule.name}"\n'
            for chain, match in ((inbound, inbound_match), (outbound, outbound_match))))
        self._rules.append(rule)

    def _listed_rules(self) -> list[dict[str, Any]]:
        proc = self._run(f"list table {self.table}", script=False, json_output=True)
        listed = json.loads(proc.stdout)["nftables"]
        return [item["rule"] for item in listed if "rule" in item]

    def _run(self, commands: str, *, check: bool = True, script: bool = True,
             json_output: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = ["ip", "netns", "exec", self.netns, self.nft, *(["-j"] if json_output else [])]
        if script:  # a batch on stdin, applied atomically
            proc = subprocess.run([*cmd, "-f", "-"], input=commands, capture_output=True,
                                  text=True, timeout=10)
        else:
            proc = subprocess.run([*cmd, *commands.split()], capture_output=True, text=True,
                                  timeout=10)
        if check and proc.returncode != 0:
            raise FirewallError(f"nft in {self.netns}: {proc.stderr.strip()}\n{commands}")
        return proc

    def __enter__(self) -> Firewall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
