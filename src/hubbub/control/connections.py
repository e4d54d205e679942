"""Admission and timeouts of the node's TCP/HTTP connections (issue 13).

Why: 20,100 TCP connections from one client that sent nothing used up the process's file
descriptors; /healthz, the Director and new viewers failed and nothing was logged. uvicorn
closes idle keep-alive connections (5 s) and pings WebSockets (dead peers go within 40 s), but
it has no timeout for a connection that never completes a request head and no per-client limit.

What `hubbub serve` adds (flags in the CLI's "limits" group, defaults in `ControlConfig`):

- **Per client address** (`hubbub.ratelimit.address_key`: IPv4, or IPv6 by its /64): at most
  `max_connections_per_ip` open connections, and new ones at `new_connections_per_ip` a second
  after a burst of `max_connections_per_ip`. Over either, the connection is answered 429 and
  closed as soon as it is accepted, before anything is parsed (best effort: a client that
  already sent its request may see a reset instead).
- **The whole process** keeps below its descriptor limit (`max_connections`, by default
  RLIMIT_NOFILE, raised from soft to hard at start, less a reserve): past it, 503 and close,
  but the database, the media port and the logs still get descriptors, so connected clients
  are unaffected.
- **Timeouts**: a connection's request head must be complete within `request_timeout` and at
  most `max_head_bytes` long (408 / 431 and close), its body must arrive within `body_timeout`
  (408), and a WebSocket must send its first message within `request_timeout` of its accept
  (close 1008) — every hubbub client sends `view`/`publish`/`hello` at once. Only the first
  head of a connection is timed (where later requests start is uvicorn's to know): a client
  that dribbles a later head holds that connection, within its address's cap.
- **Trusted proxies** (`--trusted-proxy`) carry many clients on their connections, so those
  are not limited per TCP connection; their requests and WebSockets are limited by the
  forwarded client address instead (`ClientLimits`, after uvicorn's ProxyHeadersMiddleware),
  each request or WebSocket counting as one connection.
- **The log**: the first refusal of an address is logged at once; after that its refusals and
  timeouts are counted and reported in one line per interval, with counts, for all addresses.

The TCP part wraps uvicorn's own protocol classes (`protocol_classes`), overriding only the
asyncio Protocol methods; after a WebSocket upgrade uvicorn hands the transport to its WebSocket
protocol, whose `connection_lost` then releases the connection (exactly once: by transport).
Limits are per worker process (`--workers`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.config import ControlConfig
from hubbub.ratelimit import TokenBucket
from hubbub.ratelimit import address_key as client_key

log = logging.getLogger(__name__)

# Why a connection was refused or closed; the first three are refusals.
OVER_CAP = "over_cap"
OVER_RATE = "over_rate"
SERVER_FULL = "server_full"
TIMEOUT = "timeout"
SLOW_BODY = "slow_body"
OVERSIZE = "oversize"
REFUSALS = (OVER_CAP, OVER_RATE, SERVER_FULL)
CLOSES = (TIMEOUT, SLOW_BODY, OVERSIZE)

FD_RESERVE = 128
"""Descriptors kept back from connections at the least: listening and media sockets, database
and Redis connections, log files, the event loop's own."""

MAX_TALLIES = 10_000
"""Addresses counted per log interval; more are folded into one "other addresses" entry."""


def _response(status: str, text: str, extra: str = "") -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n").encode() + body


class _Client:
    """What one address holds: open connections and its new-connection budget."""

    __slots__ = ("open", "bucket", "last")

    def __init__(self, bucket: TokenBucket | None, now: float) -> None:
        self.open = 0
        self.bucket = bucket
        self.last = now


class _Conn:
    """One admitted TCP connection; `timer` runs until its first request head is complete."""

    __slots__ = ("key", "host", "transport", "timer", "head", "tail")

    def __init__(self, key: str | None, host: str, transport: asyncio.BaseTransport) -> None:
        self.key = key  # None: a trusted proxy, not limited per address
        self.host = host
        self.transport = transport
        self.timer: asyncio.TimerHandle | None = None
        self.head = 0  # bytes of the head so far
        self.tail = b""  # its last bytes, to find the empty line across reads


class LimitLog:
    """Refusals and timeouts in bounded log output: an address's first refusal at once, then one
    line per interval with the counts of every address (the busiest named)."""

    def __init__(self, interval: float, describe: Callable[[str], str],
                 open_count: Callable[[str], int], logger: logging.Logger = log) -> None:
        self.interval = interval
        self._describe = describe
        self._open_count = open_count
        self._log = logger
        self._tallies: dict[str, Counter[str]] = {}
        self._announced: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    def note(self, key: str, reason: str) -> None:
        if reason in REFUSALS and key not in self._announced:
            self._announced.add(key)
            hint = ""
            if key.startswith("127.") or key == "::/64":  # loopback
                hint = "; a reverse proxy on this host? see --trusted-proxy"
            self._log.warning(
                "connections from %s refused: %s reached (%d open)%s; further refusals are "
                "counted and reported every %.0f s", key, self._describe(reason),
                self._open_count(key), hint, self.interval)
        else:
            if key not in self._tallies and len(self._tallies) >= MAX_TALLIES:
                key = "other addresses"
            self._tallies.setdefault(key, Counter())[reason] += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit tests call flush() themselves)
            return
        self._timer = loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()
        if self._announced or self._tallies:
            self._schedule()

    def flush(self) -> None:
        """Log the counts since the last flush, if any; forget addresses that were quiet."""
        tallies, self._tallies = self._tallies, {}
        self._announced &= tallies.keys()  # still busy: no new first line for it
        if not tallies:
            return
        total: Counter[str] = Counter()
        for counts in tallies.values():
            total.update(counts)
        refused = sum(total[r] for r in REFUSALS)
        closed = sum(total[r] for r in CLOSES)
        parts = []
        if refused:
            parts.append(f"{refused} refused (" + ", ".join(
                f"{self._describe(r)}: {total[r]}" for r in REFUSALS if total[r]) + ")")
        if closed:
            parts.append(f"{closed} closed (" + ", ".join(
                f"{self._describe(r)}: {total[r]}" for r in CLOSES if total[r]) + ")")
        busiest = sorted(tallies.items(), key=lambda kv: -sum(kv[1].values()))
        named = []
        for key, counts in busiest[:10]:
            shown = []
            if any(counts[r] for r in REFUSALS):
                shown.append(f"{sum(counts[r] for r in REFUSALS)} refused")
            if any(counts[r] for r in CLOSES):
                shown.append(f"{sum(counts[r] for r in CLOSES)} closed")
            shown.append(f"{self._open_count(key)} open")
            named.append(f"{key} {', '.join(shown)}")
        more = f"; and {len(busiest) - 10} more addresses" if len(busiest) > 10 else ""
        self._log.log(
            logging.WARNING if refused else logging.INFO,
            "connection limits, last %.0f s: %s; by address: %s%s",
            self.interval, ", ".join(parts), "; ".join(named), more)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Admission:
    """Per-address and whole-process limits on connections, and their head timeouts."""

    def __init__(self, control: ControlConfig, trusted_proxies: Sequence[str] = (),
                 clock: Callable[[], float] = time.monotonic,
                 fd_limit: int | None = None) -> None:
        self.per_ip = max(0, control.max_connections_per_ip)
        self.rate = max(0.0, control.new_connections_per_ip)
        self.burst = max(self.per_ip, self.rate, 1.0)
        self.request_timeout = control.request_timeout
        self.body_timeout = control.body_timeout
        self.max_head = control.max_head_bytes
        if control.max_connections > 0:
            self.max_total = control.max_connections
        else:
            soft = fd_limit if fd_limit is not None else _fd_limit()
            self.max_total = max(16, soft - max(FD_RESERVE, soft // 10))
        self._clock = clock
        self._trust_all = "*" in trusted_proxies
        self._trusted_names = {t for t in trusted_proxies if t != "*"}
        self._trusted_nets = []
        for entry in self._trusted_names:
            try:
                self._trusted_nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                pass  # a literal (a Unix socket name): matched by name
        self.trusted_proxies = list(trusted_proxies)
        self._clients: dict[str, _Client] = {}
        self._sweep_at = 1024
        self._conns: dict[asyncio.BaseTransport, _Conn] = {}
        self.log = LimitLog(control.limits_log_interval, self.describe, self.open_count)

    # -- addresses ----------------------------------------------------------------------------

    def trusted(self, host: str | None) -> bool:
        if host is None:
            return False
        if self._trust_all or host in self._trusted_names:
            return True
        if not self._trusted_nets:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._trusted_nets)

    def describe(self, reason: str) -> str:
        return {
            OVER_CAP: f"cap of {self.per_ip} open per address",
            OVER_RATE: f"rate of {self.rate:g} new a second per address",
            SERVER_FULL: f"server's cap of {self.max_total} connections",
            TIMEOUT: f"no request or first message within {self.request_timeout:g} s",
            SLOW_BODY: f"request body not in within {self.body_timeout:g} s",
            OVERSIZE: f"request head over {self.max_head} bytes",
        }.get(reason, reason)

    def open_count(self, key: str) -> int:
        client = self._clients.get(key)
        return client.open if client is not None else 0

    @property
    def open_total(self) -> int:
        """TCP connections admitted and not yet closed."""
        return len(self._conns)

    # -- per-address counting (TCP connections, and requests behind a trusted proxy) ----------

    def admit(self, key: str) -> str | None:
        """Count a new connection of `key`: None if admitted (call `release(key)` when it
        ends), else why it is refused (logged)."""
        if not self.per_ip and not self.rate:
            return None
        now = self._clock()
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= self._sweep_at:
                self._sweep(now)
            bucket = TokenBucket(self.rate, self.burst, self._clock) if self.rate else None
            client = self._clients[key] = _Client(bucket, now)
        reason = None
        if self.per_ip and client.open >= self.per_ip:
            reason = OVER_CAP
        elif client.bucket is not None:
            client.last = now
            if not client.bucket.take():
                reason = OVER_RATE
        if reason is not None:
            self.log.note(key, reason)
            return reason
        client.open += 1
        return None

    def release(self, key: str) -> None:
        client = self._clients.get(key)
        if client is not None and client.open > 0:
            client.open -= 1

    def _sweep(self, now: float) -> None:
        """Forget addresses with nothing open whose budget has refilled (a new one is equal)."""
        refill = self.burst / self.rate if self.rate else 0.0
        for key in [k for k, c in self._clients.items()
                    if c.open == 0 and now - c.last >= refill]:
            del self._clients[key]
        self._sweep_at = max(1024, 2 * len(self._clients))

    # -- TCP connections (called by the protocol classes) -------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> _Conn | None:
        """Admit a new connection (and start its head timer), or answer it and close it."""
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")
        key = None if self.trusted(host) else client_key(host)
        reason: str | None = None
        if len(self._conns) >= self.max_total:
            reason = SERVER_FULL
            self.log.note(key or client_key(host), reason)
        elif key is not None:
            reason = self.admit(key)
        if reason is not None:
            self._refuse(transport, reason)
            return None
        conn = _Conn(key, host, transport)
        self._conns[transport] = conn
        conn.timer = asyncio.get_running_loop().call_later(
            self.request_timeout, self._head_timeout, conn)
        return conn

    def head_data(self, conn: _Conn, data: bytes) -> bool:
        """Watch the first request head for its end; False if the connection was closed."""
        if conn.timer is None:
            return True
        seen = conn.tail + data
        ends = [i for i in (seen.find(b"\n\n"), seen.find(b"\n\r\n")) if i >= 0]
        length = conn.head - len(conn.tail) + (min(ends) if ends else len(seen))
        if length > self.max_head:
            self._close(conn, OVERSIZE, "431 Request Header Fields Too Large",
                        f"request head over {self.max_head} bytes")
            return False
        if ends:
            conn.timer.cancel()
            conn.timer = None
            conn.tail = b""
        else:
            conn.head += len(data)
            conn.tail = seen[-3:]
        return True

    def connection_lost(self, transport: asyncio.BaseTransport) -> bool:
        """Release an admitted connection; False if it was never admitted (or already gone)."""
        conn = self._conns.pop(transport, None)
        if conn is None:
            return False
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.key is not None:
            self.release(conn.key)
        return True

    def _head_timeout(self, conn: _Conn) -> None:
        conn.timer = None
        if conn.head or conn.tail:
            self._close(conn, TIMEOUT, "408 Request Timeout",
                        f"no complete request within {self.request_timeout:g} s")
        else:  # silent (a browser's unused preconnect, or an attack): no answer, just close
            self._close(conn, TIMEOUT)

    def _close(self, conn: _Conn, reason: str, status: str = "", text: str = "") -> None:
        self.log.note(conn.key or client_key(conn.host), reason)
        transport: Any = conn.transport
        if status:
            transport.write(_response(status, text + "\n"))
        transport.close()

    def _refuse(self, transport: asyncio.BaseTransport, reason: str) -> None:
        writer: Any = transport
        if reason == SERVER_FULL:
            writer.write(_response("503 Service Unavailable", "server busy\n",
                                   "retry-after: 5\r\n"))
        else:
            writer.write(_response("429 Too Many Requests",
                                   f"too many connections from your address ({reason})\n",
                                   "retry-after: 1\r\n"))
        transport.close()


def _fd_limit() -> int:
    """The descriptor limit, first raised from the soft to the hard limit: a server should
    not stop at the 1024 a login shell starts with when the system allows more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.info("could not raise the descriptor limit from %d: %s", soft, exc)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


# -- uvicorn protocols -------------------------------------------------------------------------


def protocol_classes(
    admission: Admission,
) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol] | None]:
    """uvicorn's HTTP and WebSocket protocol classes (the ones it would pick itself), with
    `admission` deciding on each new connection, timing its first request head and counting it
    until the socket closes, whichever protocol then holds it. For `uvicorn.Config(http=, ws=)`.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    http_base: Any = AutoHTTPProtocol

    class AdmittedHTTPProtocol(http_base):  # type: ignore[misc]
        _hubbub_conn: _Conn | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._hubbub_conn = admission.connection_made(transport)
            if self._hubbub_conn is not None:
                super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            conn = self._hubbub_conn
            if conn is not None and admission.head_data(conn, data):
                super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            conn = self._hubbub_conn
            if conn is not None and admission.connection_lost(conn.transport):
                super().connection_lost(exc)

    if AutoWebSocketsProtocol is None:
        return AdmittedHTTPProtocol, None
    ws_base: Any = AutoWebSocketsProtocol

    class AdmittedWebSocketProtocol(ws_base):  # type: ignore[misc]
        # Made by the HTTP protocol on an upgrade, for a connection admitted there.
        def connection_lost(self, exc: Exception | None) -> None:
            admission.connection_lost(self.transport)
            super().connection_lost(exc)

    return AdmittedHTTPProtocol, AdmittedWebSocketProtocol


# -- ASGI ----------------------------------------------------------------------------------------


class ClientLimits:
    """ASGI middleware, outermost: the body timeout of HTTP requests and the first-message
    timeout of WebSockets; and for a connection from a trusted proxy, the forwarded client
    address (uvicorn's ProxyHeadersMiddleware) and the per-address limits by it."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.app = app
        self.admission = admission
        self._forwarded: Any = None
        if admission.trusted_proxies:
            limited: Any = self._limited  # uvicorn types ASGI apps its own way
            self._forwarded = ProxyHeadersMiddleware(
                limited, trusted_hosts=",".join(admission.trusted_proxies))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if self._forwarded is not None and client and self.admission.trusted(client[0]):
            await self._forwarded(scope, receive, send)
        else:
            await self._timed(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        key = client_key(client[0] if client else None)
        reason = self.admission.admit(key)
        if reason is not None:
            await _deny(scope, send, f"too many connections from your address ({reason})")
            return
        try:
            await self._timed(scope, receive, send)
        finally:
            self.admission.release(key)

    async def _timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    def _note(self, scope: Scope, reason: str) -> None:
        client = scope.get("client")
        self.admission.log.note(client_key(client[0] if client else None), reason)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.admission.request_timeout
        deadline: float | None = None  # from the accept: the client cannot speak before it
        waiting = True  # for the client's first message
        closed = False

        async def first_message() -> Message:
            nonlocal waiting, closed
            if not waiting or deadline is None:
                return await receive()
            try:
                # A floor: a message already queued is taken even if the app comes late.
                message = await asyncio.wait_for(receive(), max(0.05, deadline - loop.time()))
            except TimeoutError:
                waiting, closed = False, True
                self._note(scope, TIMEOUT)
                await send({"type": "websocket.close", "code": 1008,
                            "reason": f"no message within {timeout:g} s"})
                return {"type": "websocket.disconnect", "code": 1008}
            if message["type"] != "websocket.connect":
                waiting = False
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal deadline
            if closed:
                return
            if message["type"] == "websocket.accept":
                deadline = loop.time() + timeout
            await send(message)

        try:
            await self.app(scope, first_message, guarded_send)
        except Exception:
            if not closed:
                raise

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.admission.body_timeout
        deadline = loop.time() + timeout
        reading = True  # until the body is complete
        started = timed_out = False

        async def body() -> Message:
            nonlocal reading, timed_out
            if not reading:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.05, deadline - loop.time()))
            except TimeoutError:
                reading, timed_out = False, True
                self._note(scope, SLOW_BODY)
                if not started:
                    text = f"request body not received within {timeout:g} s\n".encode()
                    await send({"type": "http.response.start", "status": 408, "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(text)).encode()),
                        (b"connection", b"close")]})
                    await send({"type": "http.response.body", "body": text})
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                reading = False
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, body, guarded_send)
        except Exception:
            if not timed_out:
                raise


async def _deny(scope: Scope, send: Send, text: str) -> None:
    """429 to a request or WebSocket that has not started (a WebSocket without the
    denial-response extension gets a plain refusal, 403)."""
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), (b"retry-after", b"1")]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
