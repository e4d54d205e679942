"""Clients behind a firewall (issue 15): Chromium with the unmodified @millicast/sdk in its own
network namespace, hubbub in another, nftables between them.

    root namespace   the test, GatewayPages (the repository root) and aiortc talkers, on
                     the bridge gateway 10.231.N.1
    "s" 10.231.N.11  three `hubbub serve` (NetnsNode, --announce-ip their address): one with
                     ICE-TCP (the default), one with `--media-tcp-port off` (UDP only), one
                     with ICE-TCP and `--turn-server`s (UDP, then TCP) of the coturn in "t"
    "c" 10.231.N.12  Chromium (NetnsBrowser) and the firewall (tests/helpers/firewall.py)
    "t" 10.231.N.13  coturn (tests/helpers/coturn.py, `use-auth-secret`), listening and
                     relaying on its address

Without a firewall the SDK publishes the fake camera and microphone from "c" and views there,
over UDP (hubbub's TCP candidates have the lower priority), and hears a known tone from a
talker in the root namespace. With all UDP between "c" and "s" dropped, the UDP-only hubbub
cannot be reached (no connection, the STUN checks counted by the firewall) and the default one
is reached over ICE-TCP: video decoded, the tone heard, packetsLost reported
(`expect_outcome_with_udp_blocked`). With hubbub's TCP media port and all UDP (also to coturn)
dropped as well, the SDK reaches the TURN hubbub only through coturn over TURN/TCP, with the
credentials of the Director's `iceServers`; a plain RTCPeerConnection with expired credentials
gets no relay candidate. What the browser reports (`connection_report`: the
selected candidate pair's protocol and type, packetsLost) is written to
test-artifacts/browser/firewalled-clients.json for every case.

Everything is module-scoped (one network, one Chromium, the hubbubs) and so is the event loop:
the Playwright connection of NetnsBrowser belongs to the loop that launched it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
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
from tests.helpers.coturn import Coturn
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
from hubbub.control.auth import turn

pytestmark = [pytest.mark.chromium, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.asyncio(loop_scope="module")]

CONNECT_BOUND = 6.0
"""Seconds a client gets to connect (and a blocked one is watched): unblocked, the SDK connects
in well under 1 s here, over ICE-TCP in about 1 s."""
TONE = 440.0
HTTP_PORT, MEDIA_PORT = 8080, 10000  # each namespace has its own ports
TURN_CONNECT_BOUND = 10.0
"""Seconds to connect through coturn: a TCP connection and an allocation come first."""
TURN_SECRET = "firewalled-coturn-secret-0123456789"
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
    net = VirtualNetwork(["s", "c", "t"])
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
def site(network: VirtualNetwork, label: str, offset: int, ice_tcp: bool,
         extra_args: Sequence[str] = ()) -> Iterator[Site]:
    host = network.hosts["s"]
    tcp_port = MEDIA_PORT + offset if ice_tcp else None
    node = NetnsNode(host, name=f"firewalled-{label}-{network.tag}",
                     http_port=HTTP_PORT + offset, media_port=MEDIA_PORT + offset,
                     options={"announce_ip": host.ip, "api_secret": ADMIN,
                              # after any --media-tcp-port of RunningServer: the last one counts
                              "media_tcp_port": tcp_port if ice_tcp else "off"})
    node.args.remove("--allow-any-stream")  # tokens, as a Millicast app uses them
    node.args += extra_args
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


@contextlib.asynccontextmanager
async def tone_talker(at: Site, network: VirtualNetwork, stream: str) -> AsyncIterator[str]:
    """An aiortc publisher of a 440 Hz tone (the main source of `stream`) on `at`, from the
    root namespace: never firewalled. Yields the stream name."""
    info = await connect_info(at.node.http_url, "publish", stream, at.publish_token)
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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def talker(ice_tcp_site: Site, network: VirtualNetwork) -> AsyncIterator[str]:
    async with tone_talker(ice_tcp_site, network, "fw-tone") as stream:
        yield stream


@pytest.fixture(scope="module")
def coturn(network: VirtualNetwork) -> Iterator[Coturn]:
    """coturn in "t" on 3478, TURN REST API credentials keyed by TURN_SECRET."""
    t = network.hosts["t"]
    with Coturn(secret=TURN_SECRET, host=t.ip, prefix=["ip", "netns", "exec", t.netns],
                name=f"coturn-firewalled-{network.tag}") as server:
        yield server


@pytest.fixture(scope="module")
def turn_site(network: VirtualNetwork, coturn: Coturn) -> Iterator[Site]:
    """An ICE-TCP hubbub whose Director hands out coturn: UDP first, as operators list it."""
    args = ["--turn-server", coturn.uri("udp"), "--turn-server", coturn.uri("tcp"),
            "--turn-secret", TURN_SECRET]
    with site(network, "turn", 2, ice_tcp=True, extra_args=args) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def turn_talker(turn_site: Site, network: VirtualNetwork) -> AsyncIterator[str]:
    async with tone_talker(turn_site, network, "fw-turn-tone") as stream:
        yield stream


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


async def video_decoded_and_tone_heard(clients: Clients) -> None:
    """The SDK viewer decodes video and receives audio; the listener hears the talker's tone."""
    viewer, listener = clients["viewer"][0], clients["listener"][0]
    await wait_grows(viewer, "0", "framesDecoded", 5)
    await wait_grows(viewer, "1", "packetsReceived", 10)
    await listener.evaluate("sdk.audioSamples('v', '1')")
    await asyncio.sleep(1.0)
    assert abs(await tone_in(listener, "1") - TONE) < 10


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
        await video_decoded_and_tone_heard(clients)
        drops = fw.dropped(udp)
        reports = await record("udp-blocked-ice-tcp", clients, drops=vars(drops),
                               secondsFromStartToAllConnected=took)
        for label, report in reports.items():
            expect_outcome_with_udp_blocked(ice_tcp_site, label, ["connected"], report, drops)
        for page, client in clients.values():
            await page.evaluate("(c) => sdk.stop(c)", client)


# --- through coturn -----------------------------------------------------------------------


def turn_entry(config: dict[str, Any]) -> dict[str, Any]:
    """The one TURN entry of an RTCPeerConnection's getConfiguration()."""
    [entry] = config["iceServers"]
    assert isinstance(entry, dict), config
    return entry


async def test_with_udp_and_the_tcp_media_port_dropped_the_sdk_goes_through_coturn_over_tcp(
    network: VirtualNetwork, turn_site: Site, coturn: Coturn, pages: PageFactory,
    turn_talker: str,
) -> None:
    c, s, t = network.hosts["c"], network.hosts["s"], network.hosts["t"]
    node = turn_site.node
    assert turn_site.tcp_port is not None
    with Firewall(c.netns) as fw:
        udp = fw.block_udp_between(s.ip)
        # All UDP, as such firewalls do: the browser's turn:...?transport=udp fails too.
        turn_udp = fw.block_udp_between(t.ip)
        tcp = fw.block_tcp_port(s.ip, turn_site.tcp_port)  # HTTP (Director, WebSocket) passes
        started = time.monotonic()
        clients = await start_clients(pages, turn_site, "fw-turn", turn_talker)
        await wait_connected(clients, TURN_CONNECT_BOUND)
        took = time.monotonic() - started
        await video_decoded_and_tone_heard(clients)
        drops = {"udp-hubbub": fw.dropped(udp), "udp-coturn": fw.dropped(turn_udp),
                 "tcp-media-port": fw.dropped(tcp)}
        reports = await record("turn-tcp", clients,
                               drops={k: vars(v) for k, v in drops.items()},
                               secondsFromStartToAllConnected=took)
        usernames = {}
        for label, (page, client) in clients.items():
            # The SDK's peer connection holds the Director's iceServers unchanged (harness.js
            # passes none): both URLs, a TURN REST username "<exp>:<jti>", and hubbub's
            # HMAC of it under the shared secret.
            entry = turn_entry(await page.evaluate("(c) => sdk.pc(c).getConfiguration()",
                                                   client))
            assert entry["urls"] == [coturn.uri("udp"), coturn.uri("tcp")], entry
            expiry, ident = entry["username"].split(":")
            assert int(expiry) > time.time() and ident, entry
            assert turn.credentials(TURN_SECRET, int(expiry), ident) == (
                entry["username"], entry["credential"]), entry
            usernames[label] = entry["username"]
            report = reports[label]
            assert report["connectionState"] == "connected", (label, report)
            pair = report["selectedPair"]
            assert pair is not None, (label, report)
            # Chromium's relay candidate on coturn's address, allocated over TCP, paired with
            # hubbub's UDP host candidate: coturn -> hubbub is UDP, never firewalled.
            assert (pair["local"]["candidateType"], pair["local"]["relayProtocol"],
                    pair["local"]["address"], pair["local"]["url"]) == (
                "relay", "tcp", t.ip, coturn.uri("tcp")), (label, pair)
            assert (pair["remote"]["address"], pair["remote"]["port"], pair["remote"]["protocol"],
                    pair["remote"]["candidateType"]) == (s.ip, node.media_port, "udp", "host")
            # No other local candidate got an answer: the relay was needed.
            relays = {x["id"] for x in report["localCandidates"]
                      if x["candidateType"] == "relay"}
            assert all(p["responsesReceived"] == 0 for p in report["pairs"]
                       if p["local"] not in relays), (label, report)
            if label == "publisher":
                assert report["packetsSent"] > 0, report
            else:
                assert isinstance(report["packetsLost"], int) and report["packetsLost"] >= 0
                assert report["packetsReceived"] > 0, report
        # The browsers tried the direct paths and the UDP TURN URL; the firewall took them.
        assert all(d.outbound > 0 for d in drops.values()), drops
        for page, client in clients.values():
            await page.evaluate("(c) => sdk.stop(c)", client)

    # coturn's side: an allocation under each Director username and, once the SDK closed its
    # peer connection (the allocation deleted), what its relay received from hubbub.
    assert len(set(usernames.values())) == len(usernames), usernames  # one JWT each
    for label, username in usernames.items():
        assert coturn.allocations(username), (label, username, coturn.log_tail())
        # The session's client end is the browser in "c" (coturn logs it when it ends).
        await asyncio.to_thread(
            coturn.wait_for_log, rf"closed \(2nd stage\), user <{username}> realm <[^>]*> "
            rf"origin <[^>]*>, local {re.escape(t.ip)}:{coturn.port}, remote {re.escape(c.ip)}:\d+")
    viewer_user = usernames["viewer"]
    await asyncio.to_thread(coturn.wait_for_log,
                            rf"peer usage: realm=<[^>]*>, username=<{viewer_user}>")
    received = max(p for p, _ in coturn.peer_usage(viewer_user))
    REPORTS["turn-tcp/coturn"] = {"usernames": usernames, "viewerRelayPacketsFromPeer": received}
    assert received > 100, received  # video and audio, a few seconds of it


# Gathers with a plain RTCPeerConnection, relay candidates only (no SDK): every candidate and
# every icecandidateerror until gathering completes or `seconds` pass.
_GATHER_JS = """
async ({ iceServers, seconds }) => {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  const candidates = [];
  const errors = [];
  pc.onicecandidate = (e) => {
    if (e.candidate && e.candidate.candidate)
      candidates.push({ type: e.candidate.type, address: e.candidate.address,
                        protocol: e.candidate.protocol,
                        relayProtocol: e.candidate.relayProtocol ?? null, url: e.url ?? null });
  };
  pc.onicecandidateerror = (e) =>
    errors.push({ errorCode: e.errorCode, errorText: e.errorText, url: e.url });
  const complete = new Promise((resolve) => {
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === 'complete') resolve();
    };
  });
  pc.createDataChannel('probe');
  await pc.setLocalDescription(await pc.createOffer());
  await Promise.race([complete, new Promise((r) => setTimeout(r, seconds * 1000))]);
  const gathering = pc.iceGatheringState;
  pc.close();
  return { candidates, errors, gathering };
}
"""


async def test_coturn_refuses_expired_credentials_to_chromium(
    network: VirtualNetwork, coturn: Coturn, pages: PageFactory,
) -> None:
    page = await pages("harness.html")
    now = int(time.time())
    results = {}
    for label, expiry in (("expired", now - 60), ("fresh", now + 600)):
        username, password = turn.credentials(TURN_SECRET, expiry, f"{label}-probe")
        ice = [{"urls": [coturn.uri("tcp")], "username": username, "credential": password}]
        results[label] = {"username": username,
                          **await page.evaluate(_GATHER_JS, {"iceServers": ice, "seconds": 10})}
    REPORTS["turn-credentials"] = results
    fresh, expired = results["fresh"], results["expired"]
    # The same page, helper and server allocate with credentials that have not expired ...
    assert [(x["type"], x["address"], x["relayProtocol"]) for x in fresh["candidates"]] == [
        ("relay", network.hosts["t"].ip, "tcp")], fresh
    assert fresh["errors"] == [], fresh
    assert coturn.allocations(fresh["username"]), coturn.log_tail()
    # ... and get nothing with expired ones: coturn answers 401 and allocates nothing.
    assert expired["candidates"] == [], expired
    assert expired["gathering"] == "complete", expired
    assert [(e["errorCode"], e["url"]) for e in expired["errors"]] == [
        (401, coturn.uri("tcp"))], expired
    assert coturn.allocations(expired["username"]) == []
    assert (f"user <{expired['username']}>: incoming packet message processed, error 401"
            in coturn.log_text())
