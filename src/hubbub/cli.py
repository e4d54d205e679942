"""Command line: `hubbub serve | publish | view`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from hubbub.config import Config


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="HTTP/WebSocket bind address")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--media-host", default=None, help="UDP bind address (default: --host)")
    parser.add_argument("--media-port", type=int, default=10000, help="the one UDP media port")
    parser.add_argument(
        "--announce-ip",
        action="append",
        default=[],
        help="address written in ICE candidates (repeatable; default: the bind address, "
        "or 127.0.0.1 when bound to all interfaces)",
    )
    parser.add_argument(
        "--allow-any-stream",
        action="store_true",
        help="DEVELOPMENT ONLY: accept publish/view on any stream without a token",
    )
    parser.add_argument("--consent-timeout", type=float, default=30.0)
    parser.add_argument("--media-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="info")


def _config_from(args: argparse.Namespace) -> Config:
    config = Config(log_level=args.log_level)
    config.control.host = args.host
    config.control.http_port = args.http_port
    config.control.allow_any_stream = args.allow_any_stream
    config.control.media_timeout = args.media_timeout
    config.media.host = args.media_host or args.host
    config.media.port = args.media_port
    config.media.announced_ips = list(args.announce_ip)
    config.media.consent_timeout = args.consent_timeout
    return config


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hubbub.control.app import create_app
    from hubbub.control.node import Node

    config = _config_from(args)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    node = Node(config)
    app = create_app(node)
    host = config.control.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"hubbub serving on http://{shown}:{config.control.http_port}")
    print(f"  publish:  ws://{shown}:{config.control.http_port}/ws/v2/pub")
    print(f"  view:     ws://{shown}:{config.control.http_port}/ws/v2/sub")
    print(f"  media:    udp {config.media.host}:{config.media.port}")
    if config.control.allow_any_stream:
        print("  WARNING: --allow-any-stream: anyone may publish or view any stream")
        print(f"  try:      hubbub publish --stream demo --url ws://{shown}:"
              f"{config.control.http_port}/ws/v2/pub")
        print(f"            hubbub view --stream demo --url ws://{shown}:"
              f"{config.control.http_port}/ws/v2/sub")
    else:
        print("  tokens are required; start with --allow-any-stream for local development")
    sys.stdout.flush()
    uvicorn.run(
        app,
        host=host,
        port=config.control.http_port,
        loop="uvloop",
        ws_max_size=config.control.max_message_bytes,
        log_level="warning",
        lifespan="on",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub", description="hubbub WebRTC SFU")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run a node (HTTP+WebSocket, UDP media)")
    _serve_args(serve_parser)
    serve_parser.set_defaults(func=serve)
    commands: ModuleType | None
    try:
        import hubbub.client.commands as commands
    except ImportError:  # the client (aiortc) is optional for a server-only install
        commands = None
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
