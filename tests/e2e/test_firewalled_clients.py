"""Clients behind a firewall (issue 15): Chromium with the unmodified @millicast/sdk in its own
network namespace, hubbub in another, nftables between them.

    root namespace   the test, GatewayPages (the repository root) and an aiortc talker, on
                     the bridge gateway 10.231.N.1
    "s" 10.231.N.11  two `hubbub serve` (NetnsNode, --announce-ip their address): one with
                     ICE-TCP (the default), one with `--media-tcp-port off` (UDP only)
    "c" 10.231.N.12  Chromium (NetnsBrowser) and the firewall (tests/helpers/firewall.py)

Without a firewall the SDK publishes the fake camera and microphone from "c" and views there,
over UDP (hubbub's TCP candidates have the lower priority), and hears a known tone from a
talker in the root namespace. With all UDP between "c" and "s" dropped, the UDP-only hubbub
cannot be reached (no connection, the STUN checks counted by the firewall) and the default one
is reached over ICE-TCP: video decoded, the tone heard, packetsLost reported
(`expect_outcome_with_udp_blocked`). What the browser reports (`connection_report`: the
selected candidate pair's protocol and type, packetsLost) is written to
test-artifacts/browser/firewalled-clients.json for every case.

Everything is module-scoped (one network, one Chromium, the hubbubs) and so is the event loop:
the Playwright connection of NetnsBrowser belongs to the loop that launched it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page
from tests.e2e.test_millicast_sdk import (
    ADMIN,
    SDK_DIR,
    SDK_FILE,
    create_token,
    grows,
    harness,
    sdk_publish,
    sdk_view,
    tone_in,
    wait_grows,
)
from tests.helpers.browser import ARTIFACTS_DIR, REPO_ROOT, PageFactory
from tests.helpers.firewall import Drops, Firewall, FirewallError, require_nft, unavailable_reason
from tests.helpers.netns import NetnsNode, VirtualNetwork, ice_host_addresses
from tests.helpers.netns_browser import (
    ConnectionReport,
    GatewayPages,
    NetnsBrowser,
    connection_report,
)

from hubbub.client.director import connect_info
from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher

pytestmark = [pytest.mark.chromium, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.asyncio(loop_scope="module")]

CONNECT_BOUND = 6.0
"""Seconds a client gets to connect (and a blocked one is watched): unblocked, the SDK connects
in well under 1 s here, over ICE-TCP in about 1 s."""
TONE = 440.0
HTTP_PORT, MEDIA_PORT = 8080, 10000  # each namespace has its own ports
REPORTS: dict[str, Any] = {}  # written to test-artifacts/browser/firewalled-clients.json


@dataclass(frozen=True)
class Site:
    """A hubbub in namespace "s" with its tokens (each node has its own token store)."""

    node: NetnsNode
    publish_token: str
    subscribe_token: str
    tcp_port: int | None
    """hubbub's ICE-TCP port, None with `--media-tcp-port off`."""


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network() -> Iterator[VirtualNetwork]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        require_nft()
    except FirewallError as exc:
        pytest.fail(str(exc), pytrace=False)
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    net = VirtualNetwork(["s", "c"])
    try:
        net.up()
        yield net
    finally:
        # Also kills Chromium and anything else still running in the namespaces, and with the
        # namespaces go their nft tables.
        leftovers = net.down()
        assert not leftovers, f"could not remove {leftovers}"
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS_DIR / "firewalled-clients.json").write_text(json.dumps(REPORTS, indent=1))


@contextlib.contextmanager
def site(network: VirtualNetwork, label: str, offset: int, ice_tcp: bool) -> Iterator[Site]:
    host = network.hosts["s"]
    tcp_port = MEDIA_PORT + offset if ice_tcp else None
    node = NetnsNode(host, name=f"firewalled-{label}-{network.tag}",
                     http_port=HTTP_PORT + offset, media_port=MEDIA_PORT + offset,
                     options={"announce_ip": host.ip, "api_secret": ADMIN,
                              # after any --media-tcp-port of RunningServer: the last one counts
                              "media_tcp_port": tcp_port if ice_tcp else "off"})
    node.args.remove("--allow-any-stream")  # tokens, as a Millicast app uses them
    try:
        node.start()
        yield Site(node,
                   str(create_token(node, "publish", pattern="fw-*", multisource=True)["token"]),
                   str(create_token(node, "subscribe", pattern="fw-*")["token"]),
                   tcp_port)
    finally:
        node.stop()


@pytest.fixture(scope="module")
def ice_tcp_site(network: VirtualNetwork) -> Iterator[Site]:
    with site(network, "ice-tcp", 0, ice_tcp=True) as s:
        yield s


@pytest.fixture(scope="module")
def udp_only_site(network: VirtualNetwork) -> Iterator[Site]:
    with site(network, "udp-only", 1, ice_tcp=False) as s:
        yield s


@pytest.fixture(scope="module")
def gateway_pages(network: VirtualNetwork) -> Iterator[GatewayPages]:
    """The repository root (harness page, node_modules) on the gateway, reachable from "c"."""
    pages = GatewayPages(network.gateway, REPO_ROOT)
    pages.start()
    yield pages
    pages.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def netns_browser(network: VirtualNetwork,
                        gateway_pages: GatewayPages) -> AsyncIterator[NetnsBrowser]:
    async with NetnsBrowser(network.hosts["c"], network.gateway,
                            secure_origins=[gateway_pages.url], name="firewalled") as nb:
        yield nb


@pytest_asyncio.fixture(loop_scope="module")
async def pages(netns_browser: NetnsBrowser, gateway_pages: GatewayPages,
                request: pytest.FixtureRequest) -> AsyncIterator[PageFactory]:
    factory = netns_browser.page_factory(gateway_pages.url + SDK_DIR,
                                         name=f"firewalled-{request.node.name}")
    yield factory
    await factory.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def talker(ice_tcp_site: Site, network: VirtualNetwork) -> AsyncIterator[str]:
    """An aiortc publisher of a 440 Hz tone (the main source of stream "fw-tone") on the
    ICE-TCP site, from the root namespace: never firewalled. Yields the stream name."""
    stream = "fw-tone"
    info = await connect_info(ice_tcp_site.node.http_url, "publish", stream,
                              ice_tcp_site.publish_token)
    # aioice would gather on every root-namespace address; the bridge's is the one that works.
    with ice_host_addresses(network.gateway):
        pub = Publisher(info.url, stream, token=info.jwt,
                        tracks=[ToneTrack(TONE, amplitude=0.3)])
        await pub.connect()
        await pub.wait_connected()
    try:
        yield stream
    finally:
        await pub.close()


# --- helpers ------------------------------------------------------------------------------


def candidates(sdp: str, protocol: str) -> list[list[str]]:
    """The `a=candidate` lines of `protocol` ("udp", "tcp"), split into fields."""
    lines = [line.strip().split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return [fields for fields in lines if fields[2].lower() == protocol]


Clients = dict[str, tuple[Page, str]]
"""label -> (page, harness client name)"""


async def start_clients(pages: PageFactory, at: Site, stream: str,
                        tone_stream: str | None = None) -> Clients:
    """An SDK publisher of the fake devices on `stream`, an SDK viewer of it and, with
    `tone_stream`, an SDK viewer of the talker; none waits for its peer connection: only the
    Director and the WebSocket (TCP) are known to pass a firewall."""
    publisher = await harness(pages, at.node)
    result = await publisher.evaluate("(o) => sdk.publish('p', o)",
                                      {"token": at.publish_token, "streamName": stream,
                                       "codec": "vp8"})
    assert result["ok"], (result, pages.log_tail())
    clients = {"publisher": (publisher, "p"),
               "viewer": (await sdk_view(pages, at.node, at.subscribe_token, stream), "v")}
    if tone_stream is not None:
        listener = await sdk_view(pages, at.node, at.subscribe_token, tone_stream)
        clients["listener"] = (listener, "v")
    return clients


async def watch(clients: Clients, seconds: float) -> dict[str, list[str]]:
    """Every peer connection state each client passed through during `seconds`."""
    seen: dict[str, list[str]] = {label: [] for label in clients}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for label, (page, client) in clients.items():
            state = await page.evaluate("(c) => sdk.state(c)", client)
            if not seen[label] or seen[label][-1] != state:
                seen[label].append(state)
        await asyncio.sleep(0.1)
    return seen


async def wait_connected(clients: Clients, seconds: float) -> None:
    """Until every client's peer connection is "connected" (Playwright TimeoutError if not)."""
    deadline = time.monotonic() + seconds
    for page, client in clients.values():
        left = max(0.5, deadline - time.monotonic())
        await page.wait_for_function("(c) => sdk.state(c) === 'connected'", arg=client,
                                     timeout=left * 1000)


def expect_outcome_with_udp_blocked(at: Site, label: str, states: list[str],
                                    report: ConnectionReport, drops: Drops) -> None:
    """What a browser whose UDP to hubbub is dropped gets, by what hubbub offers.

    UDP only: no connection. The SDK's peer connection never reaches "connected", ICE selected
    no pair, no pair got a response to its checks, and the firewall dropped checks the browser
    sent. With ICE-TCP: connected over a pair of Chromium's active TCP candidate and hubbub's
    passive host candidate on its TCP media port, and a viewer reports packetsLost.
    """
    if at.tcp_port is None:
        assert "connected" not in states, (label, states, report)
        assert report["connectionState"] != "connected", (label, report)
        assert report["selectedPair"] is None, (label, report)
        assert report["pairs"], f"{label}: the browser formed no candidate pair: {report}"
        assert all(p["responsesReceived"] == 0 for p in report["pairs"]), (label, report)
        assert sum(p["requestsSent"] for p in report["pairs"]) > 0, (label, report)
        assert drops.outbound > 0, f"the firewall saw no UDP from the browser: {drops}"
        return
    assert report["connectionState"] == "connected", (label, states, report)
    pair = report["selectedPair"]
    assert pair is not None, (label, report)
    # Chromium's side of an ICE-TCP pair is an active TCP candidate (peer-reflexive here).
    assert (pair["local"]["protocol"], pair["local"]["tcpType"]) == ("tcp", "active"), pair
    assert (pair["remote"]["address"], pair["remote"]["port"]) == (at.node.host.ip, at.tcp_port)
    assert (pair["remote"]["protocol"], pair["remote"]["candidateType"],
            pair["remote"]["tcpType"]) == ("tcp", "host", "passive"), pair
    if label != "publisher":
        assert isinstance(report["packetsLost"], int) and report["packetsLost"] >= 0, report
        assert report["packetsReceived"] > 0, report


async def record(label: str, clients: Clients, **extra: Any) -> dict[str, ConnectionReport]:
    reports = {}
    for name, (page, client) in clients.items():
        reports[name] = await connection_report(page, client)
        REPORTS[f"{label}/{name}"] = {**reports[name], **extra}
    return reports


# --- tests --------------------------------------------------------------------------------


async def test_the_sdk_publishes_and_views_from_its_namespace_over_udp_without_a_firewall(
    network: VirtualNetwork, ice_tcp_site: Site, pages: PageFactory, talker: str,
) -> None:
    c, s = network.hosts["c"], network.hosts["s"]
    node = ice_tcp_site.node
    started = time.monotonic()  # Director, signaling and ICE for all clients
    clients = await start_clients(pages, ice_tcp_site, "fw-open", talker)
    await wait_connected(clients, CONNECT_BOUND)
    took = time.monotonic() - started
    viewer, listener = clients["viewer"][0], clients["listener"][0]
    await wait_grows(viewer, "0", "framesDecoded", 5)  # the fake camera, decoded
    await wait_grows(viewer, "1", "packetsReceived", 10)
    assert await grows(viewer, "1", "totalAudioEnergy") > 0  # the fake microphone's beeps
    # A known tone from the root namespace, heard in "c".
    await listener.evaluate("sdk.audioSamples('v', '1')")  # start the tap
    await asyncio.sleep(1.0)
    assert abs(await tone_in(listener, "1") - TONE) < 10

    # hubbub offers UDP and TCP host candidates on its announced address, TCP with the lower
    # priority, and the browsers pick a UDP host pair between "c" and that address.
    answer = await listener.evaluate("sdk.remoteSdp('v')")
    udp, tcp = candidates(answer, "udp"), candidates(answer, "tcp")
    assert {(f[4], int(f[5])) for f in udp} == {(s.ip, node.media_port)}, answer
    assert {(f[4], int(f[5]), f[9]) for f in tcp} == {(s.ip, ice_tcp_site.tcp_port, "passive")}
    assert max(int(f[3]) for f in tcp) < min(int(f[3]) for f in udp), answer
    reports = await record("open", clients, secondsFromStartToAllConnected=took)
    for label, report in reports.items():
        pair = report["selectedPair"]
        assert report["connectionState"] == "connected", report
        assert pair is not None, report
        assert (pair["local"]["address"], pair["local"]["protocol"],
                pair["local"]["candidateType"]) == (c.ip, "udp", "host"), pair
        assert (pair["remote"]["address"], pair["remote"]["port"], pair["remote"]["protocol"],
                pair["remote"]["candidateType"]) == (s.ip, node.media_port, "udp", "host"), pair
        if label == "publisher":
            assert report["packetsSent"] > 0, report
        else:
            assert isinstance(report["packetsLost"], int) and report["packetsLost"] >= 0, report
            assert report["packetsReceived"] > 0, report
    for page, client in clients.values():
        await page.evaluate("(c) => sdk.stop(c)", client)


async def test_with_udp_dropped_a_udp_only_hubbub_is_unreachable(
    network: VirtualNetwork, udp_only_site: Site, pages: PageFactory,
) -> None:
    c, s = network.hosts["c"], network.hosts["s"]
    with Firewall(c.netns) as fw:
        udp = fw.block_udp_between(s.ip)
        clients = await start_clients(pages, udp_only_site, "fw-udp-only")
        states = await watch(clients, CONNECT_BOUND)
        drops = fw.dropped(udp)
        reports = await record("udp-blocked-udp-only", clients, drops=vars(drops))
        for label, (page, client) in clients.items():
            answer = await page.evaluate("(c) => sdk.remoteSdp(c)", client)
            assert candidates(answer, "tcp") == [], answer  # --media-tcp-port off
            expect_outcome_with_udp_blocked(udp_only_site, label, states[label],
                                            reports[label], drops)
            await page.evaluate("(c) => sdk.stop(c)", client)

    # The firewall, nothing else, was in the way: the same namespace connects once it is gone.
    await sdk_publish(pages, udp_only_site.node, udp_only_site.publish_token, "fw-udp-only",
                      codec="vp8")


async def test_with_udp_dropped_the_sdk_publishes_and_views_over_ice_tcp(
    network: VirtualNetwork, ice_tcp_site: Site, pages: PageFactory, talker: str,
) -> None:
    c, s = network.hosts["c"], network.hosts["s"]
    with Firewall(c.netns) as fw:
        udp = fw.block_udp_between(s.ip)
        started = time.monotonic()  # Director, signaling and ICE for all clients
        clients = await start_clients(pages, ice_tcp_site, "fw-ice-tcp", talker)
        await wait_connected(clients, CONNECT_BOUND)
        took = time.monotonic() - started
        viewer, listener = clients["viewer"][0], clients["listener"][0]
        await wait_grows(viewer, "0", "framesDecoded", 5)
        await wait_grows(viewer, "1", "packetsReceived", 10)
        await listener.evaluate("sdk.audioSamples('v', '1')")
        await asyncio.sleep(1.0)
        assert abs(await tone_in(listener, "1") - TONE) < 10
        drops = fw.dropped(udp)
        reports = await record("udp-blocked-ice-tcp", clients, drops=vars(drops),
                               secondsFromStartToAllConnected=took)
        for label, report in reports.items():
            expect_outcome_with_udp_blocked(ice_tcp_site, label, ["connected"], report, drops)
        for page, client in clients.values():
            await page.evaluate("(c) => sdk.stop(c)", client)
