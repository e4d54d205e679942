"""`hubbub token create|list|show|update|revoke|delete`: the token store from a terminal.

Works on the database directly (the data dir's SQLite file or `--database-url`), so no server
needs to run; a running server sees the change at its next Director call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from datetime import datetime
from typing import Any

from hubbub.config import AuthConfig
from hubbub.control.auth import datadir
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE
from hubbub.control.auth.models import iso, to_timestamp, token_json
from hubbub.control.auth.store import StreamRule, TokenRecord, TokenSpec, TokenStore

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=os.environ.get("HUBBUB_DATA_DIR", "./hubbub-data"),
        help="data dir of the node (default ./hubbub-data, env HUBBUB_DATA_DIR)",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("HUBBUB_DATABASE_URL", ""),
        help="token database, e.g. postgresql+asyncpg://user:pw@host/db (env "
        "HUBBUB_DATABASE_URL); default: SQLite in the data dir",
    )


def parse_expiry(text: str, now: float | None = None) -> float:
    """`30d`, `12h`, `90m`, `1w` from now, or an ISO 8601 time (UTC if no zone)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip())
    if match:
        return now + int(match.group(1)) * _UNIT[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--expires {text!r}: expected a duration like 30d / 12h or an ISO 8601 time"
        ) from None
    stamp = to_timestamp(parsed, "--expires")
    assert stamp is not None
    return stamp


def add_token_commands(sub: Any) -> None:
    token = sub.add_parser("token", help="create, list and revoke publish/subscribe tokens")
    commands = token.add_subparsers(dest="token_command", required=True)

    def kind_flags(p: argparse.ArgumentParser, required: bool) -> None:
        group = p.add_mutually_exclusive_group(required=required)
        group.add_argument("--publish", dest="kind", action="store_const", const=PUBLISH)
        group.add_argument("--subscribe", dest="kind", action="store_const", const=SUBSCRIBE)

    def rights(p: argparse.ArgumentParser, create: bool) -> None:
        p.add_argument("--stream", action="append", default=[], required=create,
                       help="stream name or pattern (* wildcard); repeatable")
        p.add_argument("--regex", action="store_true",
                       help="the --stream values are regexes (matched against the whole name)")
        p.add_argument("--label", default=None)
        p.add_argument("--origin", action="append", default=None,
                       help="allowed Origin (https://app.example.com, *.example.com); repeatable")
        p.add_argument("--ip", action="append", default=None,
                       help="allowed client IP or CIDR; repeatable")
        p.add_argument("--expires", default=None, help="30d, 12h, ... or an ISO 8601 time")
        p.add_argument("--multisource", action=argparse.BooleanOptionalAction, default=None,
                       help="publish: allow sourceId (several sources per stream)")
        p.add_argument("--record", action=argparse.BooleanOptionalAction, default=None)

    create = commands.add_parser("create", help="create a token; its secret is shown once")
    kind_flags(create, True)
    rights(create, True)
    listing = commands.add_parser("list", help="list tokens")
    kind_flags(listing, False)
    listing.add_argument("--active", action="store_true", help="hide revoked tokens")
    show = commands.add_parser("show", help="show one token")
    update = commands.add_parser("update", help="change a token (only the options given)")
    rights(update, False)
    revoke = commands.add_parser("revoke", help="revoke a token for good")
    delete = commands.add_parser("delete", help="delete a token")
    for p in (create, listing, show, update, revoke, delete):
        add_store_arguments(p)
        p.add_argument("--json", action="store_true", help="print JSON")
    for p in (show, update, revoke, delete):
        p.add_argument("id", type=int)
    token.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except ValueError as exc:
        sys.stderr.write(f"hubbub token: {exc}\n")
        return 2


async def _run(args: argparse.Namespace) -> int:
    config = AuthConfig(data_dir=args.data_dir, database_url=args.database_url)
    url = config.database_url or datadir.prepare(config).database_url
    store = await TokenStore.open(url)
    try:
        handler = {
            "create": _create, "list": _list, "show": _show,
            "update": _update, "revoke": _revoke, "delete": _delete,
        }[args.token_command]
        return await handler(store, args)
    finally:
        await store.close()


def _spec_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.stream:
        changes["streams"] = [StreamRule(s, args.regex) for s in args.stream]
    if args.label is not None:
        changes["label"] = args.label
    if args.origin is not None:
        changes["allowed_origins"] = args.origin
    if args.ip is not None:
        changes["allowed_ips"] = args.ip
    if args.expires is not None:
        changes["expires_on"] = None if args.expires == "never" else parse_expiry(args.expires)
    if args.multisource is not None:
        changes["multisource"] = args.multisource
    if args.record is not None:
        changes["record"] = args.record
    return changes


async def _find(store: TokenStore, token_id: int) -> TokenRecord:
    for kind in (PUBLISH, SUBSCRIBE):  # ids are unique across both kinds
        record = await store.get(kind, token_id)
        if record is not None:
            return record
    raise ValueError(f"no token {token_id}")


def __out(record: TokenRecord, args: argparse.Namespace, secret: str | None = None) -> None:
    if args.json:
        _out(json.dumps({"kind": record.kind, **token_json(record, secret)}, indent=2))
        return
    spec = record.spec
    status = "revoked" if record.revoked_on else (record.refusal(time.time()) or "active")
    streams = ", ".join(f"{r.name} (regex)" if r.is_regex else r.name for r in spec.streams)
    _out(f"{record.kind} token {record.id}  {spec.label!r}  [{status}]")
    _out(f"  streams:     {streams}")
    if spec.allowed_origins:
        _out(f"  origins:     {', '.join(spec.allowed_origins)}")
    if spec.allowed_ips:
        _out(f"  addresses:   {', '.join(spec.allowed_ips)}")
    if record.kind == PUBLISH:
        _out(f"  multisource: {spec.multisource}   record: {spec.record}")
    _out(f"  expires:     {iso(spec.expires_on) or 'never'}   "
          f"last used: {iso(record.last_used_on) or 'never'}")
    if secret is not None:
        _out(f"  token:       {secret}")
        _out("  (the token is shown only now: the server keeps just a hash of it)")


async def _create(store: TokenStore, args: argparse.Namespace) -> int:
    spec = TokenSpec(**{"label": "", **_spec_changes(args)})
    if spec.expires_on is not None and spec.expires_on <= time.time():
        raise ValueError("--expires is in the past")
    record, secret = await store.create(args.kind, spec)
    __out(record, args, secret)
    return 0


async def _list(store: TokenStore, args: argparse.Namespace) -> int:
    records: list[TokenRecord] = []
    for kind in [args.kind] if args.kind else [PUBLISH, SUBSCRIBE]:
        offset = 0
        while True:
            page, total = await store.list_page(kind, offset, 1000, not args.active)
            records += page
            offset += len(page)
            if not page or offset >= total:
                break
    if args.json:
        _out(json.dumps([{"kind": r.kind, **token_json(r)} for r in records], indent=2))
        return 0
    now = time.time()
    for r in records:
        status = "revoked" if r.revoked_on else (r.refusal(now) or "active")
        streams = ",".join(s.name for s in r.spec.streams)
        _out(f"{r.id:>6}  {r.kind:<9}  {status:<13}  {streams:<30}  {r.spec.label}")
    if not records:
        _out("no tokens")
    return 0


async def _show(store: TokenStore, args: argparse.Namespace) -> int:
    __out(await _find(store, args.id), args)
    return 0


async def _update(store: TokenStore, args: argparse.Namespace) -> int:
    record = await _find(store, args.id)
    updated = await store.update(record.kind, record.id, _spec_changes(args))
    assert updated is not None
    __out(updated, args)
    return 0


async def _revoke(store: TokenStore, args: argparse.Namespace) -> int:
    record = await _find(store, args.id)
    revoked = await store.revoke(record.kind, record.id)
    assert revoked is not None
    __out(revoked, args)
    return 0


async def _delete(store: TokenStore, args: argparse.Namespace) -> int:
    record = await _find(store, args.id)
    await store.delete(record.kind, record.id)
    _out(json.dumps({"id": record.id, "deleted": True}) if args.json else f"deleted {record.id}")
    return 0
