"""`hubbub serve` mounts Spaces (unless --no-spaces); `hubbub spaces` runs it alone against a
remote node: `hubbub spaces --hubbub-url https://media.example.com --api-secret ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hubbub.apps.spaces.app import SpacesApp
from hubbub.apps.spaces.config import SpacesConfig, default_database_url


def embedded(http_base: str, api_secret: str, data_dir: str, database_url: str) -> SpacesApp:
    """The Spaces app served by `hubbub serve` itself, calling the node over loopback HTTP.

    `database_url` is the node's (PostgreSQL shares it: the tables are prefixed `spaces_`);
    empty means SQLite `spaces.db` in the data dir."""
    return SpacesApp(
        SpacesConfig(
            hubbub_url=http_base,
            api_secret=api_secret,
            database_url=database_url or default_database_url(data_dir),
            forward_host=True,
        )
    )


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
    parser.add_argument("--log-level", default="info")


def run_standalone(args: argparse.Namespace) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Mount, Route

    if not args.hubbub_url or not args.api_secret:
        print("hubbub spaces: --hubbub-url and --api-secret are required", file=sys.stderr)  # noqa: T201
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.makedirs(args.data_dir, mode=0o700, exist_ok=True)
    spaces = SpacesApp(
        SpacesConfig(
            hubbub_url=args.hubbub_url,
            api_secret=args.api_secret,
            database_url=args.database_url or default_database_url(args.data_dir),
            path=args.path,
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
    uvicorn.run(app, host=args.host, port=args.http_port, log_level="warning", lifespan="on")
    return 0
