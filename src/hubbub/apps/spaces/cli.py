"""`hubbub serve` mounts Spaces (unless --no-spaces); `hubbub spaces` runs it alone against a
remote node: `hubbub spaces --hubbub-url https://media.example.com --api-secret ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hubbub import logs
from hubbub.apps.spaces.app import SpacesApp
from hubbub.apps.spaces.config import SpacesConfig, default_database_url

# Presence messages are tiny ({"type": "ping"}); `hubbub serve` sets its own bound.
MAX_WS_BYTES = 64 * 1024


def embedded(http_base: str, api_secret: str, data_dir: str, database_url: str,
             limits: dict[str, Any] | None = None) -> SpacesApp:
    """The Spaces app served by `hubbub serve` itself, calling the node over loopback HTTP.

    `database_url` is the node's (PostgreSQL shares it: the tables are prefixed `spaces_`);
    empty means SQLite `spaces.db` in the data dir. `limits`: `limits_from(args)`."""
    return SpacesApp(
        SpacesConfig(
            hubbub_url=http_base,
            api_secret=api_secret,
            database_url=database_url or default_database_url(data_dir),
            forward_host=True,
            **(limits or {}),
        )
    )


def add_limit_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The Spaces limits (SpacesConfig says why each default): `--user-rate` ... for
    `hubbub spaces`, `--spaces-user-rate` ... for `hubbub serve` (prefix "spaces-")."""
    d = SpacesConfig
    group = parser.add_argument_group(
        f"{'Spaces ' if prefix else ''}limits", "what one client may cost the Spaces app")
    group.add_argument(f"--{prefix}max-body", dest="spaces_max_body", type=int,
                       default=d.max_body_bytes, metavar="BYTES",
                       help=f"largest request body of the Spaces API, 413 above "
                       f"(default {d.max_body_bytes})")
    group.add_argument(f"--{prefix}user-rate", dest="spaces_user_rate", type=float,
                       default=d.user_rate, metavar="PER_SECOND",
                       help=f"new identities per second per client address "
                       f"(default {d.user_rate:g})")
    group.add_argument(f"--{prefix}user-burst", dest="spaces_user_burst", type=int,
                       default=d.user_burst, metavar="N",
                       help=f"new identities one address may make at once "
                       f"(default {d.user_burst})")
    group.add_argument(f"--{prefix}room-rate", dest="spaces_room_rate", type=float,
                       default=d.room_rate, metavar="PER_SECOND",
                       help=f"new rooms per second per client address (default {d.room_rate:g})")
    group.add_argument(f"--{prefix}room-burst", dest="spaces_room_burst", type=int,
                       default=d.room_burst, metavar="N",
                       help=f"new rooms one address may create at once (default {d.room_burst})")
    group.add_argument(f"--{prefix}rooms-per-owner", dest="spaces_rooms_per_owner", type=int,
                       default=d.max_rooms_per_owner, metavar="N",
                       help=f"rooms one identity may have open at once "
                       f"(default {d.max_rooms_per_owner})")
    group.add_argument(f"--{prefix}presence-grace", dest="spaces_presence_grace", type=float,
                       default=d.presence_grace, metavar="SECONDS",
                       help=f"how long a participant may be disconnected before leaving the "
                       f"room; a host gone this long ends it (default {d.presence_grace:g})")


def limits_from(args: argparse.Namespace) -> dict[str, Any]:
    """SpacesConfig fields from the flags of `add_limit_arguments` (clamped to sane values)."""
    return {
        "max_body_bytes": max(1024, args.spaces_max_body),
        "user_rate": max(0.001, args.spaces_user_rate),
        "user_burst": max(1, args.spaces_user_burst),
        "room_rate": max(0.001, args.spaces_room_rate),
        "room_burst": max(1, args.spaces_room_burst),
        "max_rooms_per_owner": max(1, args.spaces_rooms_per_owner),
        "presence_grace": max(0.5, args.spaces_presence_grace),
    }


def add_spaces_command(sub: Any) -> None:
    parser = sub.add_parser("spaces", help="run the Spaces audio-room app against a hubbub node")
    add_spaces_arguments(parser)
    parser.set_defaults(func=run_standalone)


def add_spaces_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hubbub-url", default=os.environ.get("HUBBUB_URL", ""),
                        help="HTTP base URL of the hubbub node (env HUBBUB_URL)")
    parser.add_argument("--api-secret", default=os.environ.get("HUBBUB_API_SECRET", ""),
                        help="the node's admin API secret (env HUBBUB_API_SECRET)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--http-port", type=int, default=8081)
    parser.add_argument("--path", default="/spaces", help="mount point of the app")
    parser.add_argument("--data-dir", default=os.environ.get("SPACES_DATA_DIR", "./spaces-data"),
                        help="holds spaces.db (rooms, users, the app's tokens)")
    parser.add_argument("--database-url", default=os.environ.get("SPACES_DATABASE_URL", ""),
                        help="SQLAlchemy async URL instead of SQLite in --data-dir")
    parser.add_argument(
        "--trusted-proxy", action="append", default=[], metavar="IP",
        help="reverse proxy whose X-Forwarded-For/-Proto are believed (the per-address limits "
        "use the client's address); repeatable. Default: none. Behind a proxy not listed, "
        "every client shares the proxy's address and its limits")
    parser.add_argument("--log-level", default="info")
    add_limit_arguments(parser)


def run_standalone(args: argparse.Namespace) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Mount, Route

    if not args.hubbub_url or not args.api_secret:
        print("hubbub spaces: --hubbub-url and --api-secret are required", file=sys.stderr)  # noqa: T201
        return 2
    logs.install(args.log_level)  # bounded lines, floods aggregated
    os.makedirs(args.data_dir, mode=0o700, exist_ok=True)
    spaces = SpacesApp(
        SpacesConfig(
            hubbub_url=args.hubbub_url,
            api_secret=args.api_secret,
            database_url=args.database_url or default_database_url(args.data_dir),
            path=args.path,
            **limits_from(args),
        )
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await spaces.start()
        try:
            yield
        finally:
            await spaces.stop()

    async def home(request: Any) -> RedirectResponse:
        return RedirectResponse(spaces.path.rstrip("/") + "/")

    app = Starlette(
        routes=[Route("/", home), Mount(spaces.path, app=spaces.asgi)], lifespan=lifespan
    )
    print(f"Spaces on http://127.0.0.1:{args.http_port}{spaces.path}/ using {args.hubbub_url}")  # noqa: T201
    sys.stdout.flush()
    uvicorn.run(
        app, host=args.host, port=args.http_port, log_level="warning", lifespan="on",
        ws_max_size=MAX_WS_BYTES,
        # The client address (per-address limits) is the socket's unless a proxy is trusted;
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1.
        proxy_headers=bool(args.trusted_proxy),
        forwarded_allow_ips=",".join(args.trusted_proxy) or None,
    )
    return 0
