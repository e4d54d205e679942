"""Command line: `hubbub serve | token | publish | view`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from hubbub import logs
from hubbub.config import Config


def media_tcp_port(value: str | None) -> int | None:
    """`--media-tcp-port`: None = the UDP port's number, -1 = off."""
    if value is None:
        return None
    if value.lower() in ("off", "-1"):  # -1: how `hubbub config show` writes off
        return -1
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a port or off") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is out of range")
    return port


def rtmp_port(value: str) -> int:
    """`--rtmp-port`: a port, or -1 for off."""
    if value.lower() in ("off", "-1"):  # -1: how `hubbub config show` writes off
        return -1
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port or off") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is out of range")
    return port


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _serve_args(parser: argparse.ArgumentParser) -> None:
    """Every flag is also a config-file key and a HUBBUB_* env var (hubbub/settings/): keep
    adding flags here, before the last line."""
    parser.add_argument(
        "--config", default=os.environ.get("HUBBUB_CONFIG"), metavar="FILE",
        help="settings file, TOML or YAML (env HUBBUB_CONFIG): each flag is a key named as the "
        "flag (media_port = 10000), the sfu's knobs are [sfu] (deploy/hubbub.toml). "
        "Precedence: flag > env HUBBUB_<KEY> > file > default",
    )
    parser.add_argument("--host", default="0.0.0.0", help="HTTP/WebSocket bind address")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--media-host", default=None,
                        help="media bind address (default: --host); :: binds IPv4 and IPv6")
    parser.add_argument("--media-port", type=int, default=10000, help="the one UDP media port")
    parser.add_argument(
        "--media-tcp-port", default=None, metavar="PORT|off", type=media_tcp_port,
        help="ICE-TCP port (RFC 6544 passive candidates) for clients whose UDP is blocked; "
        "default: the --media-port number; off: no ICE-TCP",
    )
    parser.add_argument(
        "--rtmp-port", default=1935, metavar="PORT|off", type=rtmp_port,
        help="RTMP ingest port (tcp, on --host): rtmp://HOST:PORT/v2/pub/<stream>?token=<publish "
        "token>; default 1935; off: no RTMP",
    )
    parser.add_argument(
        "--announce-ip",
        action="append",
        default=[],
        help="address written in ICE candidates, IPv4 or IPv6 (repeatable; default: the bind "
        "address, or 127.0.0.1 (and ::1 for --media-host ::) when bound to all interfaces)",
    )
    parser.add_argument(
        "--allow-any-stream",
        action="store_true",
        help="DEVELOPMENT ONLY: accept publish/view on any stream without a token",
    )
    parser.add_argument(
        "--data-dir", default="./hubbub-data",
        help="token database, JWT signing key and API secret (created on first start)",
    )
    parser.add_argument(
        "--database-url", default="",
        help="token database URL, e.g. postgresql+asyncpg://user:pw@host/db "
        "(env HUBBUB_DATABASE_URL); default: SQLite in the data dir",
    )
    parser.add_argument(
        "--api-secret", default="",
        help="admin API bearer secret (env HUBBUB_API_SECRET); default: generated once and "
        "kept in the data dir",
    )
    parser.add_argument(
        "--metrics-token", default="",
        metavar="TOKEN",
        help="bearer token /metrics requires (env HUBBUB_METRICS_TOKEN); default: /metrics "
        "is open (bind or proxy it privately)",
    )
    parser.add_argument(
        "--public-url", default="",
        help="base URL clients reach this node at, e.g. https://media.example.com "
        "(Director replies); default: the Host of each request",
    )
    parser.add_argument("--jwt-minutes", type=float, default=10.0,
                        help="lifetime of Director JWTs (default 10)")
    parser.add_argument(
        "--open-viewing", action="append", default=[], metavar="PATTERN",
        help="streams (* wildcard) anyone may view without a subscribe token; repeatable. "
        "Default: every stream requires subscribe auth",
    )
    parser.add_argument(
        "--turn-server", action="append", default=[], metavar="URL",
        help="TURN server the Director hands to clients in iceServers, RFC 7065: "
        "turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT][?transport=tcp] (IPv6 "
        "hosts in brackets); repeatable. Needs --turn-secret",
    )
    parser.add_argument(
        "--turn-secret", default="", metavar="SECRET",
        help="the TURN server's shared secret (coturn use-auth-secret + static-auth-secret; "
        "env HUBBUB_TURN_SECRET, which keeps it out of ps): TURN credentials that expire with "
        "the JWT",
    )
    parser.add_argument(
        "--trusted-proxy", action="append", default=[], metavar="IP",
        help="reverse proxy whose X-Forwarded-For/-Proto are believed (client IP checks); "
        "repeatable. Default: none",
    )
    parser.add_argument(
        "--no-spaces", action="store_true",
        help="do not serve the Spaces audio-room app at /spaces",
    )
    from hubbub.apps.spaces.cli import add_limit_arguments

    add_limit_arguments(parser, prefix="spaces-")  # --spaces-user-rate ...
    cluster = parser.add_argument_group(
        "scale-out", "several worker processes on this host, or several hosts, as one cluster"
    )
    cluster.add_argument(
        "--workers", default="1", metavar="N|auto",
        help="worker processes on this host (auto: one per core). Default 1: a single "
        "process, no Redis needed. Worker i uses --http-port + i and --media-port + i "
        "(and --media-tcp-port + i, --rtmp-port + i)",
    )
    cluster.add_argument(
        "--redis", default="", metavar="URL",
        help="join the cluster whose registry is this Redis (redis://HOST:PORT/DB, "
        "rediss://..., unix://PATH; env HUBBUB_REDIS_URL). With --workers > 1 and no "
        "--redis, a private redis-server is started for this host's workers",
    )
    cluster.add_argument(
        "--cluster-ip", default="", metavar="IP",
        help="address other nodes send relayed media to (default: the first --announce-ip, "
        "else the media bind address, else 127.0.0.1)",
    )
    cluster.add_argument("--node-capacity", type=int, default=500, metavar="N",
                         help="peer connections per worker the Director weighs load by")
    cluster.add_argument("--heartbeat", type=float, default=1.0, help=argparse.SUPPRESS)
    cluster.add_argument("--node-ttl", type=float, default=5.0,
                         help="seconds after which a silent node leaves the registry")
    cluster.add_argument(
        "--drain-grace", type=float, default=30.0, metavar="SECONDS",
        help="on SIGTERM, keep serving connected clients this long (no new ones) then stop",
    )
    cluster.add_argument("--worker-index", type=int, default=-1, help=argparse.SUPPRESS)
    limits = parser.add_argument_group("limits", "what one client may cost the server")
    limits.add_argument("--max-connections-per-ip", type=int, default=500, metavar="N",
                        help="open HTTP/WebSocket connections one client address (IPv6: its "
                        "/64) may hold, per worker; 0: no cap (default 500: an office behind "
                        "one NAT)")
    limits.add_argument("--new-connections-per-ip", type=float, default=50.0,
                        metavar="PER_SECOND",
                        help="new connections one address may open per second, after a burst "
                        "of --max-connections-per-ip; 0: no limit (default 50)")
    limits.add_argument("--request-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="a new connection must send its request head, and a WebSocket its "
                        "first message, within this; else it is closed (default 10)")
    limits.add_argument("--limits-log-interval", type=float, default=60.0,
                        help=argparse.SUPPRESS)
    limits.add_argument("--command-rate", type=float, default=20.0, metavar="PER_SECOND",
                        help="commands a WebSocket may send per second on average (default 20)")
    limits.add_argument("--command-burst", type=int, default=40, metavar="N",
                        help="commands a WebSocket may send at once (default 40)")
    limits.add_argument("--send-queue-bytes", type=int, default=1024 * 1024, metavar="BYTES",
                        help="replies and events queued for a client that does not read, "
                        "before it is closed (default 1 MiB)")
    limits.add_argument("--ws-compression", action="store_true",
                        help="offer permessage-deflate to WebSocket clients (off by default: "
                        "~50 KB of zlib state per socket for a few hundred bytes saved)")
    limits.add_argument("--media-recv-buffer", type=int, default=4 * 1024 * 1024,
                        metavar="BYTES",
                        help="receive buffer of the UDP media port, so bursts and junk do not "
                        "make the kernel drop media (default 4 MiB; 0 = the kernel's default; "
                        "capped at net.core.rmem_max without CAP_NET_ADMIN)")
    limits.add_argument("--media-tcp-send-queue", type=int, default=256 * 1024,
                        metavar="BYTES",
                        help="media queued per ICE-TCP peer that reads too slowly, past the "
                        "socket's send buffer; then its oldest packets are dropped (default "
                        "256 KiB)")
    limits.add_argument("--media-tcp-send-buffer", type=int, default=256 * 1024,
                        metavar="BYTES",
                        help="SO_SNDBUF of each ICE-TCP connection (default 256 KiB; a "
                        "fixed size keeps stale media out of the kernel)")
    parser.add_argument("--ice-timeout", type=float, default=15.0, metavar="SECONDS",
                        help="a peer connection whose ICE and DTLS are not done by then fails "
                        "with an error event saying why (default 15)")
    parser.add_argument("--consent-timeout", type=float, default=30.0)
    parser.add_argument("--media-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="info", type=str.lower, choices=LOG_LEVELS)
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="text: one line each, with stream=... peer=... fields; json: one "
                        "JSON object per line (default text)")
    from hubbub.settings import Flags

    parser.set_defaults(flags=Flags(parser))  # last: takes every flag above as a setting


def _config_from(args: argparse.Namespace) -> Config:
    config = Config(log_level=args.log_level, log_format=args.log_format)
    from hubbub.settings import table_fields

    for table in table_fields():  # [sfu], [webhooks], ...: dataclasses, already checked
        setattr(config, table, getattr(args, table))
    config.control.host = args.host
    config.control.http_port = args.http_port
    config.control.rtmp_port = args.rtmp_port
    config.control.allow_any_stream = args.allow_any_stream
    config.control.media_timeout = args.media_timeout
    config.control.max_connections_per_ip = max(0, args.max_connections_per_ip)
    config.control.new_connections_per_ip = max(0.0, args.new_connections_per_ip)
    config.control.request_timeout = max(0.5, args.request_timeout)
    config.control.limits_log_interval = max(1.0, args.limits_log_interval)
    config.control.command_rate = max(0.1, args.command_rate)
    config.control.command_burst = max(1, args.command_burst)
    config.control.send_queue_bytes = max(64 * 1024, args.send_queue_bytes)
    config.control.ws_compression = args.ws_compression
    config.media.recv_buffer = max(0, args.media_recv_buffer)
    config.media.host = args.media_host or args.host
    config.media.port = args.media_port
    config.media.tcp_port = args.media_tcp_port
    config.media.announced_ips = list(args.announce_ip)
    config.media.consent_timeout = args.consent_timeout
    config.media.dtls_timeout = max(1.0, args.ice_timeout)
    config.media.tcp_send_queue_bytes = max(4096, args.media_tcp_send_queue)
    config.media.tcp_send_buffer = max(4096, args.media_tcp_send_buffer)
    config.control.public_url = args.public_url
    config.control.metrics_token = args.metrics_token
    config.auth.data_dir = args.data_dir
    config.auth.database_url = args.database_url
    config.auth.api_secret = args.api_secret
    config.auth.jwt_minutes = args.jwt_minutes
    config.auth.open_viewing = list(args.open_viewing)
    config.auth.turn_servers = list(args.turn_server)
    config.auth.turn_secret = args.turn_secret
    return config


def config_of(argv: Sequence[str]) -> Config:
    """The Config `hubbub serve ARGV` would run with (flags, HUBBUB_* env, `--config` file), for
    tests and tools; settings.SettingsError names what is wrong."""
    parser = argparse.ArgumentParser(prog="hubbub serve")
    _serve_args(parser)
    args = parser.parse_args(argv)
    return _config_from(args.flags.resolve(args))


def _check_turn(config: Config) -> None:
    """ValueError for a TURN URL that is malformed, or servers without a secret (or the other
    way round); the URLs are kept in their canonical form."""
    from hubbub.control.auth import turn

    uris = turn.check_settings(config.auth.turn_servers, config.auth.turn_secret)
    config.auth.turn_servers = [str(u) for u in uris]


def serve(args: argparse.Namespace) -> int:
    from hubbub import storage
    from hubbub.control.app import create_app
    from hubbub.control.auth import datadir
    from hubbub.control.auth.service import Auth
    from hubbub.control.node import Node

    try:
        args = args.flags.resolve(args)
    except ValueError as exc:  # settings.SettingsError: names the key, env var or file
        print(f"hubbub serve: {exc}", file=sys.stderr)
        return 2
    config = _config_from(args)
    logs.install(config.log_level, config.log_format)
    try:
        _check_turn(config)
        storage.require_driver(config.auth.database_url)  # hubbub[postgres] for PostgreSQL
        problems = config.media.problems()
        if problems:
            raise ValueError("; ".join(problems))
        data = datadir.prepare(config.auth)
        workers = _worker_count(args.workers)
    except (OSError, ValueError) as exc:
        print(f"hubbub serve: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        return _supervise(args, workers, data.path)
    coordinator = None
    if args.redis:
        try:
            coordinator = _join_cluster(args, config, data.signing_key.jwk)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"hubbub serve: {exc}", file=sys.stderr)
            return 2
    node = Node(config, coordinator)
    host = config.control.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{config.control.http_port}"
    apps = []
    if not args.no_spaces:
        from hubbub.apps.spaces.cli import embedded, limits_from

        apps.append(embedded(base, data.api_secret, str(data.path), config.auth.database_url,
                             limits_from(args)))
    auth = Auth(config.auth, data)
    if coordinator is not None:
        auth.peer_keys = coordinator.verify_keys
        auth.refresh_peer_keys = coordinator.refresh_keys
    app = create_app(node, auth, apps)
    if args.worker_index >= 0:
        print(f"hubbub worker {args.worker_index} ({node.cluster_id}) on {base}, media udp "
              f"{config.media.port}", flush=True)
        return _run(app, config, args, node)
    print(f"hubbub serving on {base}")
    print(f"  director: {base}/api/director/publish  {base}/api/director/subscribe")
    print(f"  publish:  ws://{shown}:{config.control.http_port}/ws/v2/pub")
    print(f"  view:     ws://{shown}:{config.control.http_port}/ws/v2/sub")
    if config.control.rtmp_port >= 0:
        print(f"  rtmp:     rtmp://{shown}:{config.control.rtmp_port}/v2/pub/<stream>?token="
              "<publish token>  (H.264 without B-frames + AAC)")
    if config.media.announced_ips:
        announced = ", ".join(config.media.announced_ips)
    elif config.media.host in ("0.0.0.0", "::"):
        loopback = "127.0.0.1 and ::1" if config.media.host == "::" else "127.0.0.1"
        announced = f"{loopback} (this machine only: --announce-ip <address> for others)"
    else:
        announced = config.media.host
    tcp = config.media.tcp_port
    ice_tcp = ("no ICE-TCP" if tcp is not None and tcp < 0
               else f"ICE-TCP tcp {config.media.port if tcp is None else tcp}")
    print(f"  media:    udp {config.media.host}:{config.media.port}, {ice_tcp}, announced as "
          f"{announced}")
    if apps:
        print(f"  spaces:   {base}/spaces/  (audio rooms in the browser)")
    print(f"  examples: {base}/examples/publisher.html  {base}/examples/viewer.html"
          "  (@millicast/sdk pages; need `npm ci` in the checkout)")
    print(f"  tokens:   {data.database_url.split('@')[-1]}  (API docs: {base}/docs)")
    if data.api_secret_created:
        print(f"  admin API secret (new, kept in {data.api_secret_file}):")
        print(f"            {data.api_secret}")
    dir_flag = "" if args.data_dir == "./hubbub-data" else f" --data-dir {args.data_dir}"
    print(f"  get a publish token:  hubbub token create --publish --stream 'demo*'{dir_flag}")
    print(f"  or over HTTP:         curl -H 'Authorization: Bearer <admin API secret>' "
          f"-H 'Content-Type: application/json' -d '{{\"streams\": [{{\"streamName\": "
          f"\"demo*\"}}]}}' {base}/api/publish_token")
    if config.control.allow_any_stream:
        print("  WARNING: --allow-any-stream: anyone may publish or view any stream")
        print(f"  try:      hubbub publish --stream demo --url ws://{shown}:"
              f"{config.control.http_port}/ws/v2/pub")
        print(f"            hubbub view --stream demo --url ws://{shown}:"
              f"{config.control.http_port}/ws/v2/sub")
    if coordinator is not None:
        print(f"  cluster:  node {node.cluster_id}, registry {coordinator.store.stats()['url']}")
    sys.stdout.flush()
    return _run(app, config, args, node)


def _run(app: Any, config: Config, args: argparse.Namespace, node: Any) -> int:
    import uvicorn

    grace = max(0.0, args.drain_grace)

    class DrainingServer(uvicorn.Server):
        """SIGTERM drains: the registry says "draining" at once (the Director places no one
        here), the listening socket closes (no new clients), and connected clients keep their
        media until they leave or --drain-grace runs out; then uvicorn shuts down. A second
        signal stops at once."""

        draining = False

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            from hubbub import runtime

            runtime.tune_collector()  # after the app started: its objects are frozen too

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.draining or grace == 0 or not self.started:
                super().handle_exit(sig, frame)
                return
            self.draining = True
            node.coordinator.begin_drain()
            for listener in self.servers:
                listener.close()
            loop = asyncio.get_running_loop()
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain()))

        async def _drain(self) -> None:
            deadline = time.monotonic() + grace
            while node.port.transports and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            self.should_exit = True

    from hubbub.control.connections import Admission, ClientLimits, protocol_classes

    # Per-address connection limits and request timeouts (control/connections.py).
    admission = Admission(config.control, args.trusted_proxy)
    http_protocol, ws_protocol = protocol_classes(admission)
    server = DrainingServer(uvicorn.Config(
        # Client addresses (allowedIpAddresses, the limits) come from the socket unless a proxy
        # is trusted: ClientLimits then applies uvicorn's ProxyHeadersMiddleware itself.
        ClientLimits(app, admission),
        host=config.control.host,
        port=config.control.http_port,
        loop="uvloop",
        http=http_protocol,
        ws=ws_protocol or "none",
        ws_max_size=config.control.max_message_bytes,
        ws_per_message_deflate=config.control.ws_compression,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through ours (logs.install): one format
        lifespan="on",
        timeout_graceful_shutdown=3,
        proxy_headers=False,
    ))
    server.run(sockets=_dual_stack(config.control.host, config.control.http_port))
    return 0 if server.started else 1


def _dual_stack(host: str, port: int) -> list[Any] | None:
    """`--host ::` serves IPv4 and IPv6, as the media ports do: one socket per family (the
    event loop would bind `::` as IPv6 only). None: let uvicorn bind `host`."""
    if host != "::":
        return None
    import socket

    out = []
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        out.append(sock)
    return out


def _worker_count(value: str) -> int:
    from hubbub.cluster.workers import worker_count

    return worker_count(value)


def _supervise(args: argparse.Namespace, workers: int, data_path: Any) -> int:
    from pathlib import Path

    from hubbub.cluster.workers import PrivateRedis, Supervisor

    private = None
    redis_url = args.redis
    if not redis_url:
        private = PrivateRedis(Path(data_path) / "run")
        try:
            private.start()
        except RuntimeError as exc:
            print(f"hubbub serve: {exc}", file=sys.stderr)
            return 2
        redis_url = private.url
    print(f"hubbub: {workers} workers, HTTP ports {args.http_port}-{args.http_port + workers - 1}"
          f", media ports {args.media_port}-{args.media_port + workers - 1}, registry "
          f"{'private redis-server' if private else redis_url}", flush=True)
    try:
        return Supervisor(sys.argv[2:], workers, args.http_port, args.media_port, redis_url,
                          args.drain_grace, args.media_tcp_port, args.rtmp_port).run()
    finally:
        if private is not None:
            private.stop()


def _advertised_host(config: Config) -> str:
    for candidate in (*config.media.announced_ips, config.control.host):
        if candidate not in ("0.0.0.0", "::", ""):
            return candidate
    return "127.0.0.1"


def _join_cluster(args: argparse.Namespace, config: Config, jwk: dict[str, str]) -> Any:
    """The ClusterCoordinator of this node, after checking that Redis answers."""
    import secrets
    import socket
    from urllib.parse import urlsplit

    import redis
    from redis.exceptions import RedisError

    from hubbub.cluster import ClusterConfig, ClusterCoordinator

    try:
        client = redis.Redis.from_url(args.redis, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (RedisError, OSError, ValueError) as exc:
        raise RuntimeError(f"cannot reach Redis at {args.redis}: {exc}") from None
    index = max(args.worker_index, 0)
    if config.control.public_url:
        parts = urlsplit(config.control.public_url)
        scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
        netloc = parts.netloc
        if index:
            if parts.port is None:
                raise ValueError("--workers with --public-url needs a port in the URL "
                                 "(worker i is reached at that port + i)")
            netloc = f"{parts.hostname}:{parts.port + index}"
        url = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    else:
        url = f"ws://{_advertised_host(config)}:{config.control.http_port}"
    relay_host = args.cluster_ip or (
        config.media.announced_ips[0] if config.media.announced_ips
        else config.media.host if config.media.host not in ("0.0.0.0", "::") else "127.0.0.1"
    )
    hostname = socket.gethostname()
    return ClusterCoordinator(
        ClusterConfig(
            redis_url=args.redis,
            node_id=f"{hostname}-{config.control.http_port}-{secrets.token_hex(3)}",
            url=url, relay_host=relay_host, heartbeat=args.heartbeat, ttl=args.node_ttl,
            capacity=max(1, args.node_capacity), host=hostname, worker=index,
        ),
        jwk,
        key_retention=config.auth.jwt_minutes * 60 + config.auth.jwt_leeway,
    )


CLIENT_EXTRA_MODULES = frozenset({"aiortc", "av", "numpy", "websockets"})  # hubbub[client]


def _add_client_hints(sub: Any, missing: str) -> None:
    """`publish` and `view` on a server-only install: they take any arguments and say what to
    install (exit 2) instead of argparse's "invalid choice"."""
    for name in ("publish", "view"):
        hint = sub.add_parser(name, help=f"{name} (needs: pip install 'hubbub[client]')",
                              add_help=False, prefix_chars="\0")  # every argument is "rest"
        hint.add_argument("rest", nargs="*")
        hint.set_defaults(func=lambda a, name=name: _client_missing(name, missing))


def _client_missing(command: str, missing: str) -> int:
    print(f"hubbub {command} needs the Python client, which this install does not have "
          f"(no module named {missing!r}).\nInstall it with: pip install 'hubbub[client]'",
          file=sys.stderr)
    return 2


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hubbub")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
        return "unknown (not installed)"


def _add_config_command(sub: Any) -> None:
    config = sub.add_parser("config", help="the settings of hubbub serve")
    actions = config.add_subparsers(dest="config_command", required=True)
    show = actions.add_parser(
        "show", help="print the settings hubbub serve would use (flags > env > file > "
        "defaults), secrets masked; takes the serve flags and --config")
    _serve_args(show)
    show.add_argument("--format", dest="show_format", choices=("toml", "json"), default="toml",
                      help="toml (loadable as --config) or json (default toml)")
    show.set_defaults(func=config_show)


def config_show(args: argparse.Namespace) -> int:
    import dataclasses

    from hubbub import settings

    try:
        resolved = args.flags.resolve(args)
    except ValueError as exc:  # settings.SettingsError
        print(f"hubbub config show: {exc}", file=sys.stderr)
        return 2
    values = {key: getattr(resolved, key) for key in args.flags.fields}
    values["sfu"] = dataclasses.asdict(values["sfu"])
    del values["sfu"]["media_timeout"]  # media_timeout (--media-timeout) sets it
    print(settings.render(values, args.show_format), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub", description="hubbub WebRTC SFU")
    parser.add_argument("--version", action="version", version=f"hubbub {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run a node (HTTP+WebSocket, UDP media)")
    _serve_args(serve_parser)
    serve_parser.set_defaults(func=serve)
    _add_config_command(sub)
    from hubbub.control.auth.cli import add_token_commands

    add_token_commands(sub)
    from hubbub.apps.spaces.cli import add_spaces_command

    add_spaces_command(sub)
    commands: ModuleType | None
    try:
        import hubbub.client.commands as commands
    except ModuleNotFoundError as missing:  # a server-only install: no hubbub[client]
        if (missing.name or "").partition(".")[0] not in CLIENT_EXTRA_MODULES:
            raise  # a broken install, not a missing extra: show it
        commands = None
        _add_client_hints(sub, (missing.name or "aiortc").partition(".")[0])
    if commands is not None:
        pub = sub.add_parser("publish", help="publish a tone / test pattern / media file")
        commands.add_publish_arguments(pub)
        pub.set_defaults(func=lambda a: asyncio.run(commands.publish(a)) or 0)
        view = sub.add_parser("view", help="view a stream, print events, optionally record")
        commands.add_view_arguments(view)
        view.set_defaults(func=lambda a: asyncio.run(commands.view(a)) or 0)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
